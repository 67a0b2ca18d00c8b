"""Frame and audio transforms shared by training, evaluation and inference.

Official convention: grayscale mouth crops of 96x96, centre crop 88x88 at test time, pixel values
scaled to [0, 1] and normalised with a single mean and standard deviation. Training adds a random
crop, a horizontal flip and, for the student's view, adaptive temporal masking (zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .media import FPS, SAMPLE_RATE

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
    frames = torch.as_tensor(
        np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames
    )
    return (frames.float() / 255.0 - MEAN) / STD


# ---------------------------------------------------------------- training augmentation


def random_crop(frames: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Crop one random ``size`` x ``size`` window, the same for every frame of the clip."""
    height, width = frames.shape[-2:]
    if size > height or size > width:
        raise ValueError(f"crop {size} is larger than the frames ({height}x{width})")
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return frames[..., top : top + size, left : left + size]


def hflip(frames: np.ndarray) -> np.ndarray:
    """Mirror frames (..., H, W) left-right."""
    return frames[..., ::-1]


def resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of float frames (T, H, W) to (T, size, size)."""
    if frames.shape[-2:] == (size, size):
        return frames
    out = torch.nn.functional.interpolate(
        frames[:, None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return out[:, 0]


def time_mask_spans(
    length: int, window: int, stride: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Adaptive temporal masking (USR): ``ceil(length / stride)`` masks, each of a width drawn
    uniformly from ``[0, window)`` at a uniform start, so longer clips get more masks but no
    single mask reaches ``window``. Returns (start, width) pairs, zero widths dropped; a window
    of 0 (masking switched off) gives none."""
    if window <= 0:
        return []
    spans = []
    for _ in range(-(-length // stride)):
        width = min(int(rng.integers(0, window)), length)
        start = int(rng.integers(0, length - width + 1))
        if width:
            spans.append((start, width))
    return spans


def apply_time_mask(x: torch.Tensor, spans: list[tuple[int, int]]) -> torch.Tensor:
    """Zero the given (start, width) spans along the first axis (in place; returns ``x``)."""
    for start, width in spans:
        x[start : start + width] = 0
    return x


def add_noise(
    audio: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator
) -> np.ndarray:
    """Mix a random segment of ``noise`` (looped if shorter) into ``audio`` at ``snr_db`` dB.

    The SNR is the ratio of the mean powers of the clip and of the scaled noise segment; silent
    audio or silent noise leaves the clip unchanged.
    """
    audio = np.asarray(audio, dtype=np.float32)
    n = len(audio)
    if n == 0 or len(noise) == 0:
        return audio
    if len(noise) < n:
        noise = np.tile(noise, -(-n // len(noise)))
    start = int(rng.integers(0, len(noise) - n + 1))
    segment = np.asarray(noise[start : start + n], dtype=np.float32)
    p_audio = float(np.mean(audio.astype(np.float64) ** 2))
    p_noise = float(np.mean(segment.astype(np.float64) ** 2))
    if p_audio == 0.0 or p_noise == 0.0:
        return audio
    scale = np.sqrt(p_audio / (p_noise * 10.0 ** (snr_db / 10.0)))
    return (audio + scale * segment).astype(np.float32)


# ---------------------------------------------------------------- views


@dataclass
class AugmentConfig:
    """Crop/flip/mask settings. Defaults follow the paper: random crop 88 of 96, flip p=0.5,
    video masks < 0.4 s, one per second; audio masks < 0.6 s, one per 2 s. ``resize`` rescales
    the crop (e.g. 44 for small CPU models)."""

    crop: int = 88
    resize: int | None = None
    flip_prob: float = 0.5
    video_mask_window: float = 0.4
    video_mask_stride: float = 1.0
    audio_mask_window: float = 0.6
    audio_mask_stride: float = 2.0


def video_view(
    frames: np.ndarray,
    cfg: AugmentConfig,
    rng: np.random.Generator | None = None,
    mask: bool = False,
) -> torch.Tensor:
    """uint8 frames (T,H,W) -> normalised float (T,S,S). With ``rng``: training view (random
    crop, flip, optional temporal mask applied after normalisation, as zeros); without: eval view
    (centre crop)."""
    if rng is None:
        frames = center_crop(frames, cfg.crop)
    else:
        frames = random_crop(frames, cfg.crop, rng)
        if rng.random() < cfg.flip_prob:
            frames = hflip(frames)
    video = normalize(frames)
    if cfg.resize:
        video = resize(video, cfg.resize)
    if mask and rng is not None:
        window = round(cfg.video_mask_window * FPS)
        stride = round(cfg.video_mask_stride * FPS)
        apply_time_mask(video, time_mask_spans(len(video), window, stride, rng))
    return video


def audio_view(
    audio: np.ndarray,
    cfg: AugmentConfig,
    rng: np.random.Generator | None = None,
    mask: bool = False,
) -> torch.Tensor:
    """float audio (S,) -> tensor, with the adaptive temporal mask when ``mask`` and ``rng``."""
    out = torch.from_numpy(np.array(audio, dtype=np.float32))
    if mask and rng is not None:
        window = round(cfg.audio_mask_window * SAMPLE_RATE)
        stride = round(cfg.audio_mask_stride * SAMPLE_RATE)
        apply_time_mask(out, time_mask_spans(len(out), window, stride, rng))
    return out
