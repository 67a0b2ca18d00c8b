"""The EMA teacher: a moving average of the student that makes the pseudo-labels."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def momentum_at(step: int, total_steps: int, start: float = 0.998, end: float = 1.0) -> float:
    """Cosine schedule from ``start`` at step 0 to ``end`` at ``total_steps`` (0.998 -> 1)."""
    progress = min(max(step, 0) / max(total_steps, 1), 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1) / 2


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen deep copy of the student."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """theta_t <- m * theta_t + (1 - m) * theta_s for every parameter (buffers are not averaged,
    as in USR)."""
    t_params = [p for p in teacher.parameters()]
    s_params = [p.detach() for p in student.parameters()]
    if len(t_params) != len(s_params):
        raise ValueError("teacher and student have different parameter lists")
    torch._foreach_lerp_(t_params, s_params, 1.0 - momentum)


def set_teacher_mode(teacher: nn.Module) -> None:
    """Dropout and drop-path off, BatchNorm on batch statistics (USR's ``target_dropout_off``:
    only the dropout-like modules of the teacher are switched to eval)."""
    teacher.eval()
    for module in teacher.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()
