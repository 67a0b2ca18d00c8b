"""``make gpu-check DRY=1``: the GPU machine's one command runs end to end at toy sizes on the
CPU (its device tests included), so it is ready when a GPU machine is."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "gpu_check.md"
    done = subprocess.run(["make", "-s", "gpu-check", "DRY=1", f"GPU_CHECK_OUT={out}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = out.read_text()
    tests = next(line for line in report.splitlines() if line.startswith("Device tests"))
    assert " passed" in tests and "failed" not in tests and "error" not in tests
    for row in ("| beam 2 |", "| ctc_driven |", "| ar |", "| usr1 |", "| mixed |"):
        assert row in report, row
