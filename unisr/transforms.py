"""Frame transforms shared by training, evaluation and inference.

Official convention: grayscale mouth crops of 96x96, centre crop 88x88 at test time, pixel values
scaled to [0, 1] and normalised with a single mean and standard deviation.
"""

from __future__ import annotations

import numpy as np
import torch

MEAN = 0.421
STD = 0.165


def center_crop(frames: np.ndarray | torch.Tensor, size: int):
    """Crop the central ``size`` x ``size`` window of frames (..., H, W)."""
    height, width = frames.shape[-2:]
    if size > height or size > width:
        raise ValueError(f"crop {size} is larger than the frames ({height}x{width})")
    top, left = (height - size) // 2, (width - size) // 2
    return frames[..., top : top + size, left : left + size]


def normalize(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames -> float32 tensor, ``(x / 255 - MEAN) / STD``."""
    frames = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
    return (frames.float() / 255.0 - MEAN) / STD
