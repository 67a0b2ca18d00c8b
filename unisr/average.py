"""Checkpoint averaging: the mean of the student weights of the last k checkpoints of a run
(USR evaluates the average of its last 10 epoch checkpoints).

Inputs may be training checkpoints (written by ``unisr train``; they carry the model config and
vocabulary) or unisr model files; the output is a unisr model file.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .checkpoint import FORMAT, VERSION, atomic_torch_save, read_checkpoint
from .errors import UnisrError

STUDENT_PREFIX = "model."


def student_state(data: dict, path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The student's state dict from a training checkpoint or a unisr model file."""
    if data.get("format") == FORMAT:
        return data["model"]
    if "state_dict" in data:
        state = data["state_dict"]
        return {
            k[len(STUDENT_PREFIX) :]: v for k, v in state.items() if k.startswith(STUDENT_PREFIX)
        }
    raise UnisrError(f"{path}: neither a unisr model file nor a unisr training checkpoint")


def model_meta(data: dict, path: str | Path = "checkpoint") -> tuple[dict, dict]:
    """(model config dict, tokenizer dict) stored in either kind of file."""
    meta = data if data.get("format") == FORMAT else data.get("unisr")
    if not meta or "config" not in meta or "tokenizer" not in meta:
        raise UnisrError(f"{path}: has no model config / vocabulary (not written by unisr)")
    return meta["config"], meta["tokenizer"]


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating tensors (in float64, cast back); other tensors (counters)
    come from the last state. All states must have the same keys and shapes."""
    if not states:
        raise UnisrError("nothing to average")
    keys = list(states[-1])
    for i, state in enumerate(states):
        if list(state) != keys:
            raise UnisrError(f"checkpoint {i} has different parameters from the last one")
    out = {}
    for key in keys:
        last = states[-1][key]
        if not last.is_floating_point():
            out[key] = last.clone()
            continue
        total = torch.zeros_like(last, dtype=torch.float64)
        for state in states:
            if state[key].shape != last.shape:
                raise UnisrError(f"{key}: shapes differ between checkpoints")
            total += state[key].double()
        out[key] = (total / len(states)).to(last.dtype)
    return out


def step_of(path: Path) -> int:
    match = re.search(r"(\d+)", path.stem)
    return int(match.group(1)) if match else -1


def last_checkpoints(directory: str | Path, k: int) -> list[Path]:
    """The ``k`` latest ``step-*.ckpt`` files of a run's checkpoint folder, oldest first."""
    paths = sorted(Path(directory).glob("step-*.ckpt"), key=step_of)
    return paths[-k:] if k > 0 else []


def average_checkpoints(paths: list[str | Path], out: str | Path) -> Path:
    """Average the students of ``paths`` and write a unisr model file to ``out``."""
    if not paths:
        raise UnisrError("no checkpoints to average")
    datas = [read_checkpoint(p) for p in paths]
    config, tokenizer = model_meta(datas[-1], paths[-1])
    states = [student_state(d, p) for d, p in zip(datas, paths)]
    data = {
        "format": FORMAT,
        "version": VERSION,
        "config": config,
        "tokenizer": tokenizer,
        "model": average_states(states),
        "averaged": [Path(p).name for p in paths],
    }
    meta = datas[-1] if datas[-1].get("format") == FORMAT else datas[-1].get("unisr", {})
    if meta.get("max_frames"):
        data["max_frames"] = meta["max_frames"]
    atomic_torch_save(data, out)
    return Path(out)
