"""Pseudo-labels from the EMA teacher on clean audio-visual input.

USR 2.0 "CTC-driven" mode: greedy CTC on the teacher's AV stream, collapsed (merge repeats, drop
blanks), is fed to the teacher's decoder in ONE teacher-forced pass; the decoder's argmax at each
position gives attention pseudo-labels aligned one-to-one with the CTC ones (plus a final eos
position). "ar" mode decodes the teacher greedily and autoregressively, as USR 1.0 did. "mixed"
draws one of the two per training step. "usr1" is USR 1.0's recipe: frame-level CTC argmax targets
(blanks kept) and AR attention targets, used through separate output layers (see losses.py).

Confidence filtering (threshold 0.8): attention PLs token by token (max softmax probability);
CTC PLs per sequence, by the geometric mean over valid frames of the frame-wise max probability
(USR) and, with ``token_confidence``, also over the frames that emit a token: a weak teacher is
confident about its many blank frames, so the all-frame mean alone accepts 3-token labels of
15-word clips; its few emitting frames are not confident. A CTC PL with no token is rejected then.
AR PLs used as CTC targets per sequence, by the geometric mean of their token probabilities.
An AR PL that the length limit cut off before eos is rejected whole.

"oracle" is the upper bound of the unlabelled path: the clips' known transcripts (with seeded
word errors at ``oracle_wer``) take the teacher's place, laid out as CTC-driven labels with every
confidence mask true, so everything else (masked student views, shares, losses) is unchanged.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from .decoding import attention_greedy, ctc_collapse
from .masks import length_mask
from .model import UnifiedModel

MODES = ("ctc_driven", "ar", "mixed", "usr1", "oracle")
SCHEDULES = ("constant", "linear", "cosine")
IGNORE = -1  # padding value of token tensors


@dataclass(frozen=True)
class PseudoLabelConfig:
    mode: str = "mixed"
    p_ar: float = 0.5  # probability of AR mode per step in mixed sampling (the ramp's end value)
    p_ar_schedule: str = "constant"  # linear / cosine ramp the AR probability from 0 to p_ar
    threshold: float = 0.8
    ar_max_len_ratio: float = 0.2  # AR decoding stops after ratio * frames tokens (USR: T // 5)
    token_confidence: bool = True  # CTC PLs must also be confident on their emitting frames
    oracle_wer: float = 0.0  # oracle mode: rate of seeded word errors in the transcripts

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"pl.mode must be one of {MODES}, not {self.mode!r}")
        if self.p_ar_schedule not in SCHEDULES:
            raise ValueError(f"pl.p_ar_schedule must be one of {SCHEDULES}")
        if not 0.0 <= self.p_ar <= 1.0:
            raise ValueError("pl.p_ar must lie in [0, 1]")
        if not 0.0 <= self.oracle_wer <= 1.0:
            raise ValueError("pl.oracle_wer must lie in [0, 1]")


def ar_probability(cfg: PseudoLabelConfig, step: int, total_steps: int) -> float:
    progress = min(max(step, 0) / max(total_steps, 1), 1.0)
    if cfg.p_ar_schedule == "linear":
        return cfg.p_ar * progress
    if cfg.p_ar_schedule == "cosine":
        return cfg.p_ar * (1 - math.cos(math.pi * progress)) / 2
    return cfg.p_ar


def draw_mode(cfg: PseudoLabelConfig, step: int, total_steps: int, seed: int = 0) -> str:
    """The PL mode of one training step. Mixed sampling draws from a generator seeded by
    (seed, step), so every rank draws the same mode with no communication, and a resumed run
    draws what the uninterrupted run would have."""
    if cfg.mode != "mixed":
        return cfg.mode
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    u = torch.rand((), generator=generator).item()
    return "ar" if u < ar_probability(cfg, step, total_steps) else "ctc_driven"


@dataclass
class PseudoLabels:
    """Targets for one unlabelled batch. Token tensors are padded with -1."""

    mode: str
    ctc_tokens: Tensor  # (B, U) collapsed greedy CTC
    ctc_lengths: Tensor  # (B,)
    ctc_keep: Tensor  # (B,) bool, sequence-level confidence
    att_tokens: Tensor | None = None  # ctc_driven: (B, U+1) aligned with [ctc..., eos]; ar: (B, U')
    att_lengths: Tensor | None = None
    att_keep: Tensor | None = None  # (B, U*) bool, token-level confidence
    ar_seq_keep: Tensor | None = None  # ar/usr1: (B,) bool, AR PL accepted as a CTC target
    frame_targets: Tensor | None = None  # usr1: (B, T) CTC argmax incl. blanks
    frame_keep: Tensor | None = None  # usr1: (B, T) bool
    seconds: float = 0.0

    def stats(self) -> dict[str, float]:
        """Acceptance rates, lengths and cost, for logging."""
        out = {
            "pl/ctc_accept": self.ctc_keep.float().mean().item(),
            "pl/ctc_len": self.ctc_lengths.float().mean().item(),
            "pl/seconds": self.seconds,
            "pl/ar_mode": float(self.mode in ("ar", "usr1")),
        }
        if self.att_tokens is not None:
            valid = self.att_tokens != IGNORE
            out["pl/att_accept"] = (self.att_keep & valid).sum().item() / max(valid.sum().item(), 1)
            out["pl/att_len"] = self.att_lengths.float().mean().item()
        if self.frame_keep is not None:
            out["pl/frame_accept"] = self.frame_keep.float().mean().item()
        return out


def teacher_forcing_inputs(tokens: Tensor, sos: int) -> Tensor:
    """[sos] + tokens for the decoder; padding (-1) becomes sos (never seen by valid positions)."""
    inputs = torch.cat([tokens.new_full((tokens.shape[0], 1), sos), tokens], dim=1)
    return inputs.masked_fill(inputs == IGNORE, sos)


def append_eos(tokens: Tensor, lengths: Tensor, eos: int) -> Tensor:
    """tokens (B, U) padded with -1 -> (B, U + 1) with eos written after each sequence."""
    out = torch.cat([tokens, tokens.new_full((tokens.shape[0], 1), IGNORE)], dim=1)
    out[torch.arange(len(lengths), device=tokens.device), lengths] = eos
    return out


def oracle(tokens: Tensor, lengths: Tensor, eos: int) -> PseudoLabels:
    """Given labels (B, U) laid out as CTC-driven pseudo-labels, every one accepted: CTC targets
    ``tokens``, attention targets ``tokens + eos``."""
    keep = torch.ones(len(lengths), dtype=torch.bool, device=tokens.device)
    att = append_eos(tokens, lengths, eos)
    return PseudoLabels("ctc_driven", tokens, lengths, keep, att, lengths + 1, att != IGNORE)


@torch.no_grad()
def generate(
    teacher: UnifiedModel,
    video: Tensor,
    audio: Tensor,
    lengths: Tensor,
    mode: str,
    cfg: PseudoLabelConfig,
) -> PseudoLabels:
    """Pseudo-labels for one unlabelled batch (clean views) in the given per-step mode."""
    if mode not in ("ctc_driven", "ar", "usr1"):
        raise ValueError(f"cannot generate pseudo-labels in mode {mode!r}")
    start = time.perf_counter()
    memory = teacher.encode(video, audio, lengths, streams=("av",))["av"]  # computed once
    frame_logp = teacher.ctc_logits(memory, "av").float().log_softmax(-1)
    frame_best_logp, frame_ids = frame_logp.max(dim=-1)
    valid = length_mask(lengths, frame_ids.shape[1])
    ctc_tokens, ctc_lengths = ctc_collapse(frame_ids, lengths)
    mean_logp = (frame_best_logp * valid).sum(1) / lengths.clamp(min=1)
    ctc_keep = mean_logp.exp() >= cfg.threshold
    if cfg.token_confidence:
        emitting = valid & (frame_ids != 0)
        token_logp = (frame_best_logp * emitting).sum(1) / emitting.sum(1).clamp(min=1)
        ctc_keep &= (token_logp.exp() >= cfg.threshold) & emitting.any(1)
    pls = PseudoLabels(mode, ctc_tokens, ctc_lengths, ctc_keep)
    eos = teacher.config.eos
    log_threshold = math.log(cfg.threshold) if cfg.threshold > 0 else -math.inf

    if mode == "ctc_driven":
        inputs = teacher_forcing_inputs(ctc_tokens, eos)
        hidden = teacher.decoder(inputs, memory, valid)
        logp = teacher.decoder.output(hidden, "av").float().log_softmax(-1)
        best_logp, att = logp.max(dim=-1)
        positions = length_mask(ctc_lengths + 1, att.shape[1])
        pls.att_tokens = att.masked_fill(~positions, IGNORE)
        pls.att_lengths = ctc_lengths + 1
        pls.att_keep = (best_logp >= log_threshold) & positions
    else:
        max_lengths = (lengths.float() * cfg.ar_max_len_ratio).long().clamp(min=1)
        att, att_lengths, logps = attention_greedy(teacher, memory, lengths, "av", max_lengths)
        positions = length_mask(att_lengths, att.shape[1])
        # a hypothesis cut off by the length limit never ended: learning it teaches the student
        # not to stop, so the whole sequence is rejected
        ended = att.gather(1, (att_lengths - 1).clamp(min=0)[:, None])[:, 0] == eos
        pls.att_tokens, pls.att_lengths = att, att_lengths
        pls.att_keep = (logps >= log_threshold) & positions & ended[:, None]
        seq_logp = (logps * positions).sum(1) / att_lengths.clamp(min=1)
        pls.ar_seq_keep = (seq_logp >= log_threshold) & ended
        if mode == "usr1":
            pls.frame_targets = frame_ids.masked_fill(~valid, IGNORE)
            pls.frame_keep = (frame_best_logp >= log_threshold) & valid
    pls.seconds = time.perf_counter() - start
    return pls
