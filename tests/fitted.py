"""A small trained model for the tests that need a teacher which knows something: a tiny model
fitted in seconds, in process, on the tone-and-brightness words of ``train_corpus``, and
held-out clips to label or transcribe."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from train_corpus import WORDS, _clip

from unisr.config import model_config
from unisr.dataset import Batch
from unisr.losses import LossConfig, labelled_losses
from unisr.media import SAMPLES_PER_FRAME
from unisr.model import UnifiedModel
from unisr.tokenizer import Tokenizer
from unisr.transforms import AugmentConfig, video_view

IMAGE = 24
STEPS = 200


def padded(batch: Batch, lengths: list[int]) -> Batch:
    """``batch`` with its clips cut to ``lengths`` frames (zero padding after them)."""
    batch.lengths = torch.tensor(lengths)
    for i, n in enumerate(lengths):
        for name in ("video", "video_student"):
            if getattr(batch, name) is not None:
                getattr(batch, name)[i, n:] = 0
        for name in ("audio", "audio_student"):
            if getattr(batch, name) is not None:
                getattr(batch, name)[i, n * SAMPLES_PER_FRAME :] = 0
    return batch


def clips(count: int, seed: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(text, normalised video (T, 24, 24), audio) of ``count`` random 2-4 word clips."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        words = list(rng.choice(WORDS, size=int(rng.integers(2, 5))))
        frames, audio = _clip(words, rng)
        video = video_view(frames, AugmentConfig(crop=88, resize=IMAGE))
        out.append((" ".join(words), video, torch.from_numpy(audio)))
    return out


def collate(items, tokenizer: Tokenizer) -> Batch:
    """A padded labelled batch whose student views are the clean ones."""
    lengths = torch.tensor([len(video) for _, video, _ in items])
    frames = int(lengths.max())
    video = torch.zeros(len(items), frames, IMAGE, IMAGE)
    audio = torch.zeros(len(items), frames * SAMPLES_PER_FRAME)
    tokens = [tokenizer.encode(text) for text, _, _ in items]
    targets = torch.full((len(items), max(map(len, tokens))), -1)
    for i, (_, v, a) in enumerate(items):
        video[i, : len(v)], audio[i, : len(a)] = v, a
        targets[i, : len(tokens[i])] = torch.tensor(tokens[i])
    ids = [str(i) for i in range(len(items))]
    batch = Batch(ids, video, audio, lengths, targets, torch.tensor([len(t) for t in tokens]))
    batch.video_student, batch.audio_student = video, audio
    return batch


@dataclass
class Fitted:
    model: UnifiedModel  # eval mode, carries .tokenizer
    references: list[str]  # of the held-out batch
    held_out: Batch


@contextmanager
def pinned_torch_state(threads: int = 1) -> Iterator[None]:
    """Run the body with what a CPU fit depends on pinned, and put it back afterwards: the
    thread count (it changes the order of float sums, so a model fitted on 1 thread differs from
    one fitted on 2, and a training test leaves its own count behind), the global RNGs and
    deterministic algorithms. The fitted model is then the same whatever ran before it."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.get_rng_state(), np.random.get_state(), random.getstate())  # fmt: skip
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])
        torch.set_rng_state(saved[2])
        np.random.set_state(saved[3])
        random.setstate(saved[4])


def fitted_model(folder: Path, steps: int = STEPS) -> Fitted:
    """A tiny model trained on the labelled losses alone for ``steps`` AdamW steps, the same
    whatever state earlier tests left behind (``pinned_torch_state``)."""
    with pinned_torch_state():
        return _fit(folder, steps)


def _fit(folder: Path, steps: int) -> Fitted:
    tokenizer = Tokenizer.train([" ".join(WORDS)] * 4 + WORDS, 24, folder / "tokenizer.model")
    train, held_out = clips(48, seed=0), clips(16, seed=1)
    torch.manual_seed(0)
    config = model_config("tiny", vocab_size=tokenizer.vocab_size, d_model=64, ff_units=128,
                          frontend_width=4, image_size=IMAGE, enc_layers=2)  # fmt: skip
    model = UnifiedModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses_cfg = LossConfig(ctc_weight=0.3)
    order = np.random.default_rng(0)
    for _ in range(steps):
        batch = collate([train[i] for i in order.choice(len(train), 8, replace=False)], tokenizer)
        losses = labelled_losses(model, batch, losses_cfg)
        loss = sum(losses_cfg.stream_weights[s] * losses[s] for s in losses_cfg.streams)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        optimizer.step()
    model.eval()
    model.tokenizer = tokenizer
    return Fitted(model, [text for text, _, _ in held_out], collate(held_out, tokenizer))
