"""One rank of the 2-process DDP test: train, then save this rank's parameters as rank<N>.pt
(BatchNorm running statistics are per rank; DDP broadcasts rank 0's at every step)."""

import os
import sys
from pathlib import Path

import torch

from unisr.train import train
from unisr.train_config import load_config

if __name__ == "__main__":
    out, overrides = Path(sys.argv[1]), sys.argv[2:]
    module = train(load_config(None, overrides))
    state = {
        "step": module.global_step,
        "model": {k: v.detach() for k, v in module.model.named_parameters()},
        "teacher": {k: v.detach() for k, v in module.teacher.named_parameters()},
        "share": module.trainer.datamodule.stream.iterator.unlabelled.sampler.batches(0),
    }
    torch.save(state, out / f"rank{os.environ['RANK']}.pt")
