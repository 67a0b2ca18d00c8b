"""Two CPU processes on gloo under torchrun: a few semi-supervised steps leave both ranks with
identical student and teacher weights, each rank having trained on its own share of the data."""

import subprocess
import sys
from pathlib import Path

import torch
from train_corpus import make_corpus, overrides


def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", labelled=12, unlabelled=16, val=2)
    out = tmp_path / "run"
    out.mkdir()
    args = overrides(corpus, out, **{"optim.max_steps": 3, "trainer.ckpt_every": 0})
    worker = Path(__file__).with_name("train_ddp_worker.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(worker), str(out), *args]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    for part in ("model", "teacher"):
        for key, value in ranks[0][part].items():
            assert torch.equal(value, ranks[1][part][key]), f"{part}.{key} differs between ranks"
    shares = [{i for batch in r["share"] for i in batch} for r in ranks]
    assert shares[0] and shares[1] and not shares[0] & shares[1]  # disjoint shares of the data
    assert (out / "model.pt").is_file() and (out / "checkpoints" / "step-00000003.ckpt").is_file()
