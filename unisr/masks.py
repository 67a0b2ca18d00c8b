"""Padding masks of batches padded to a common length, from each row's valid length."""

from __future__ import annotations

import torch
from torch import Tensor


def length_mask(lengths: Tensor, size: int) -> Tensor:
    """(B, size) bool, True at the first ``lengths[b]`` positions of row ``b``."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]
