"""A tiny audio-visual corpus for the training tests: each word is a tone and a brightness
pattern, so a model can fit it, and clips are short so that steps take milliseconds."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from unisr.manifest import ManifestRow, write_manifest
from unisr.media import SAMPLE_RATE, SAMPLES_PER_FRAME, write_audio, write_video
from unisr.tokenizer import Tokenizer

WORDS = ["BIN", "LAY", "PLACE", "SET", "RED", "BLUE", "GREEN", "NOW"]


def _clip(words: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    frames, audio = [], []
    for word in words:
        k = WORDS.index(word)
        n = 4
        level = 40 + 25 * k
        block = np.full((n, 96, 96), level, np.uint8)
        block[:, 30 + 4 * k : 50 + 4 * k, 20:76] = 255 - level
        frames.append(block + rng.integers(0, 8, block.shape, dtype=np.uint8))
        t = np.arange(n * SAMPLES_PER_FRAME) / SAMPLE_RATE
        audio.append(0.3 * np.sin(2 * np.pi * (200 + 120 * k) * t))
    return np.concatenate(frames), np.concatenate(audio).astype(np.float32)


def make_corpus(root: Path, labelled: int = 12, unlabelled: int = 12, val: int = 4) -> dict:
    """Write the corpus under ``root``; returns manifest and tokenizer paths."""
    rng = np.random.default_rng(0)
    paths = {}
    texts = []
    for split, count in (
        ("train_labelled", labelled),
        ("train_unlabelled", unlabelled),
        ("val", val),
    ):
        rows = []
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            words = list(rng.choice(WORDS, size=int(rng.integers(2, 5))))
            frames, audio = _clip(words, rng)
            video_path, audio_path = root / split / f"{i}.mp4", root / split / f"{i}.wav"
            write_video(video_path, frames)
            write_audio(audio_path, audio)
            text = " ".join(words)
            texts.append(text)
            rows.append(
                ManifestRow(f"{split}_{i}", str(video_path), str(audio_path), len(frames), text)
            )
        write_manifest(root / f"{split}.tsv", rows)
        paths[split] = str(root / f"{split}.tsv")
    Tokenizer.train(texts * 4 + WORDS, vocab_size=24, out_path=root / "tokenizer.model")
    paths["tokenizer"] = str(root / "tokenizer.model")
    return paths


def overrides(paths: dict, out_dir: Path, semi: bool = True, **extra) -> list[str]:
    """Overrides for a seconds-long CPU run on the corpus (from scratch; mixed sampling, or
    supervised without ``semi``)."""
    items = {
        "model.preset": "tiny",
        "model.d_model": 64,
        "model.ff_units": 128,
        "model.frontend_width": 4,
        "model.image_size": 24,
        "data.labelled": paths["train_labelled"],
        "data.unlabelled": paths["train_unlabelled"] if semi else "null",
        "data.val": paths["val"],
        "data.tokenizer": paths["tokenizer"],
        "pl.mode": "mixed" if semi else "supervised",
        "init.checkpoint": "null",
        "data.frames_per_batch": 64,
        "data.frames_per_batch_unlabelled": 64,
        "data.frames_per_batch_val": 64,
        "data.workers": 0,
        "optim.lr": 2e-3,
        "optim.max_steps": 6,
        "optim.warmup_steps": 2,
        "trainer.out_dir": str(out_dir),
        "trainer.log_every": 1,
        "trainer.ckpt_every": 2,
        "trainer.average_last": 2,
        "trainer.progress_bar": False,
        "trainer.seed": 7,
        "trainer.threads": 1,
    }
    items.update(extra)
    return [f"{k}={v}" for k, v in items.items()]


def metrics(out: Path) -> list[dict]:
    """Every row a run logged to CSV (all versions: across resumptions), empty cells dropped."""
    rows = []
    for path in sorted((out / "csv").glob("version_*/metrics.csv")):
        rows += [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(path.open())]
    return rows
