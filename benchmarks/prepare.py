"""Face-video preparation speed: frames per second per core of ``unisr prepare``.

On the shared official-crop videos (``../shared/fixtures/official_crops``: two 50-frame 512x512
clips of a real face, and MediaPipe's face model file), each copied ``--copies`` times into a
temporary folder, times, each ``--repeats`` times (medians reported), with one thread per
process:

* ``cli``: the ``unisr prepare`` command in a fresh process, one worker, start-up (imports,
  model load) included, as a user runs it;
* ``in process``: :func:`unisr.prepare.crop.crop_video` with a loaded landmarker, split into
  landmarks (decoding + MediaPipe) and crops (decoding + alignment + sampling).

``--write`` records the table in BENCHMARKS.md (replacing this benchmark's earlier section).

    .venv/bin/python benchmarks/prepare.py [--copies 2] [--repeats 3] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mediapipe
import numpy as np
from report import machine, write_section

from unisr.prepare import crop
from unisr.prepare.landmarks import FaceLandmarker

SECTION = "## Face-video preparation (`benchmarks/prepare.py`)"
FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official_crops"
VIDEOS = ("static", "moving")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "TF_NUM_INTEROP_THREADS": "1"}


def _corpus(folder: Path, copies: int) -> int:
    """The fixture videos, ``copies`` times each; returns the total frame count."""
    frames = 0
    for k in range(copies):
        for name in VIDEOS:
            shutil.copy(FIXTURE / f"{name}.mp4", folder / f"{name}_{k}.mp4")
            frames += crop.probe_video(folder / f"{name}_{k}.mp4")[0]
    return frames


def time_cli(src: Path, out: Path, model: Path) -> float:
    """Wall seconds of one ``unisr prepare`` run in a fresh process (outputs removed first)."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "unisr.cli", "prepare", str(src), str(out)]
    command += ["--face-model", str(model), "--quiet", "--workers", "1"]
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, **ONE_THREAD}, capture_output=True)
    return time.perf_counter() - start


def time_in_process(videos: list[Path], landmarker: FaceLandmarker) -> tuple[float, float]:
    """(landmark seconds, crop seconds) over ``videos`` with an already loaded landmarker."""
    detect = sample = 0.0
    for video in videos:
        start = time.perf_counter()
        found = [landmarker.detect(frame) for frame in crop._decode(video)]
        middle = time.perf_counter()
        transforms = crop.crop_transforms(crop.track(found))
        crops = [crop.crop_frame(f, m) for f, m in zip(crop._decode(video), transforms)]
        assert np.stack(crops).shape[1:] == (crop.CROP, crop.CROP)
        detect += middle - start
        sample += time.perf_counter() - middle
    return detect, sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=2, help="copies of each fixture video")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = parser.parse_args()
    if not (FIXTURE / "face_landmarker.task").is_file():
        sys.exit(f"the shared fixture is not at {FIXTURE}")
    os.environ.update(ONE_THREAD)
    model = FIXTURE / "face_landmarker.task"
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "videos"
        src.mkdir()
        frames = _corpus(src, args.copies)
        videos = sorted(src.glob("*.mp4"))
        cli = [time_cli(src, Path(tmp) / "out", model) for _ in range(args.repeats)]
        with FaceLandmarker(model) as landmarker:
            runs = [time_in_process(videos, landmarker) for _ in range(args.repeats)]
    detect = statistics.median(r[0] for r in runs)
    sample = statistics.median(r[1] for r in runs)
    rows = [
        ("cli (`unisr prepare`, start-up included)", statistics.median(cli)),
        ("in process: landmarks + crops", detect + sample),
        ("in process: landmarks only (decode + MediaPipe)", detect),
        ("in process: crops only (decode + align + sample)", sample),
    ]
    table = "| measurement | seconds | frames/s on one core |\n|---|---|---|\n"
    table += "".join(f"| {name} | {s:.2f} | {frames / s:.1f} |\n" for name, s in rows)
    load_after = os.getloadavg()[0]
    command = f"python benchmarks/prepare.py --copies {args.copies} --repeats {args.repeats}"
    body = f"""Command: `{command} --write`
Machine: {machine()}, mediapipe {mediapipe.__version__}, numpy {np.__version__}
Date: {datetime.date.today()} (load average {load_before:.1f} before, {load_after:.1f} after)
{len(videos)} clips of 50 frames at 512x512 (the shared official-crop videos), MediaPipe Face
Landmarker in IMAGE mode, one worker, one thread per process; medians of {args.repeats} runs.

{table}
The official USR 2.0 preprocessing is not installed here, so it has no row: the same
IMAGE-mode MediaPipe calls are its landmark cost too (the crops above are the official ones,
see tests/test_prepare_faces.py).
"""
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
