"""Training/eval views: crops, flips, adaptive temporal masking, noise mixing."""

import math

import numpy as np
import pytest
import torch

from unisr.transforms import (
    MEAN,
    STD,
    AugmentConfig,
    add_noise,
    audio_view,
    random_crop,
    time_mask_spans,
    video_view,
)


@pytest.mark.parametrize("length", [1, 7, 25, 26, 80, 155, 600])
def test_video_mask_count_and_bounds(length):
    """Paper: ceil(T / 25) masks per clip, each shorter than 10 frames (0.4 s)."""
    rng = np.random.default_rng(length)
    widths = []
    for _ in range(200):
        spans = time_mask_spans(length, window=10, stride=25, rng=rng)
        assert len(spans) <= math.ceil(length / 25)
        for start, width in spans:
            assert 1 <= width < 10 and width <= length
            assert 0 <= start and start + width <= length
        widths += [w for _, w in spans]
    if length >= 10:
        assert max(widths) == 9  # the whole range [1, 10) is used


def test_audio_mask_bounds():
    """Paper: one mask per 2 s of audio, each shorter than 0.6 s (9600 samples)."""
    rng = np.random.default_rng(0)
    length = 5 * 16000
    counts = []
    for _ in range(100):
        spans = time_mask_spans(length, window=9600, stride=32000, rng=rng)
        counts.append(len(spans))
        assert all(0 < w < 9600 and s + w <= length for s, w in spans)
    assert max(counts) == 3


def test_student_views_are_masked_with_zeros_within_limits():
    cfg = AugmentConfig()
    frames = np.full((100, 96, 96), 200, dtype=np.uint8)
    rng = np.random.default_rng(1)
    video = video_view(frames, cfg, rng, mask=True)
    assert video.shape == (100, 88, 88) and video.dtype == torch.float32
    masked = (video == 0).all(dim=(1, 2))
    assert 0 < int(masked.sum()) <= 4 * 9  # at most ceil(100/25) masks of < 10 frames
    unmasked = video[~masked]
    assert torch.allclose(unmasked, torch.full_like(unmasked, (200 / 255 - MEAN) / STD))
    audio = audio_view(np.ones(100 * 640, np.float32), cfg, rng, mask=True)
    zeros = int((audio == 0).sum())
    assert 0 < zeros <= 2 * 9599  # ceil(4 s / 2 s) masks of < 0.6 s
    assert torch.equal(audio_view(np.ones(640, np.float32), cfg), torch.ones(640))


def test_random_crop_and_flip_are_per_clip():
    frames = np.stack([np.arange(96 * 96).reshape(96, 96)] * 3)  # unique value per pixel
    rng = np.random.default_rng(0)
    offsets = set()
    for _ in range(50):
        crop = random_crop(frames, 88, rng)
        assert crop.shape == (3, 88, 88)
        top, left = divmod(int(crop[0, 0, 0]), 96)
        assert np.array_equal(crop, frames[:, top : top + 88, left : left + 88])
        offsets.add((int(top), int(left)))
    assert len(offsets) > 10
    frames = frames.astype(np.uint8)
    cfg = AugmentConfig(flip_prob=1.0)
    flipped = video_view(frames, cfg, np.random.default_rng(0))
    plain = video_view(frames, AugmentConfig(flip_prob=0.0), np.random.default_rng(0))
    assert torch.equal(flipped, plain.flip(-1))


def test_eval_view_is_centre_crop_and_resize_option():
    frames = np.random.default_rng(0).integers(0, 256, (5, 96, 96), dtype=np.uint8)
    video = video_view(frames, AugmentConfig())
    expected = (torch.from_numpy(frames[:, 4:92, 4:92]).float() / 255 - MEAN) / STD
    assert torch.allclose(video, expected)
    small = video_view(frames, AugmentConfig(crop=80, resize=40), np.random.default_rng(0))
    assert small.shape == (5, 40, 40)


def test_noise_mixing_hits_the_target_snr():
    rng = np.random.default_rng(0)
    speech = np.sin(np.arange(16000) / 5).astype(np.float32) * 0.3
    noise = rng.normal(0, 1, 7000).astype(np.float32)  # shorter: looped
    for snr in (-5.0, 0.0, 10.0):
        mixed = add_noise(speech, noise, snr, np.random.default_rng(1))
        added = mixed - speech
        measured = 10 * np.log10(np.mean(speech**2) / np.mean(added**2))
        assert abs(measured - snr) < 0.01
    assert np.array_equal(add_noise(np.zeros(100, np.float32), noise, 0.0, rng), np.zeros(100))


def test_zero_mask_windows_switch_the_student_masks_off():
    """``video_mask_window: 0`` / ``audio_mask_window: 0`` (the CPU benchmark recipe) give the
    student the unmasked view instead of failing on an empty width range."""
    cfg = AugmentConfig(video_mask_window=0.0, audio_mask_window=0.0)
    frames = np.full((60, 96, 96), 200, dtype=np.uint8)
    video = video_view(frames, cfg, np.random.default_rng(0), mask=True)
    assert not (video == 0).all(dim=(1, 2)).any()
    audio = audio_view(np.ones(60 * 640, np.float32), cfg, np.random.default_rng(0), mask=True)
    assert not (audio == 0).any()
