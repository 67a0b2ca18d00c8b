"""Training losses: supervised joint CTC/attention and the unlabelled losses of each PL mode.

Per stream m (v, a, av): L^m = lambda * CTC + (1 - lambda) * attention, lambda = 0.1. The
training step weights them (paper §2.7, :func:`unisr.step.loss_weights`): while pseudo-labelling
sum_m w_m [gamma_m L_u^m + (1 - gamma_m) L_l^m] with w = (v .3, a .7, av .7) and
gamma = (v .97, a .75, av .75), before that sum_m w_m L_l^m. Every loss is a sum over tokens
(or frames) divided by the batch size, as in USR; pseudo-label confidence masks zero the
rejected terms.

Unlabelled losses by mode (student sees the masked views of all three streams):
* ctc_driven: CTC on the collapsed CTC PLs; the decoder, teacher-forced on [sos] + CTC PLs, gets
  0.5 CE(attention PLs) + 0.5 CE(CTC PLs + eos).
* ar: the decoder is teacher-forced on the AR PLs with CE on them; the CTC head gets
  0.5 CTC(CTC PLs) + 0.5 CTC(AR PLs without eos).
* usr1: frame-wise CE against the teacher's CTC argmax (blanks kept) and label-smoothed CE on
  the AR PLs, both through separate unlabelled output layers (``UnlabelledHeads``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dataset import Batch
from .masks import length_mask
from .model import STREAMS, UnifiedModel
from .pseudo_labels import IGNORE, PseudoLabels, append_eos, teacher_forcing_inputs


@dataclass(frozen=True)
class LossConfig:
    ctc_weight: float = 0.1
    label_smoothing: float = 0.1
    stream_weights: dict[str, float] = field(
        default_factory=lambda: {"v": 0.3, "a": 0.7, "av": 0.7}
    )
    unlabelled_share: dict[str, float] = field(
        default_factory=lambda: {"v": 0.97, "a": 0.75, "av": 0.75}
    )
    decoder_att_share: float = 0.5  # ctc_driven: weight of CE(attention PLs) vs CE(CTC PLs)
    ctc_ctc_share: float = 0.5  # ar: weight of CTC(CTC PLs) vs CTC(AR PLs)
    streams: tuple[str, ...] = STREAMS


class UnlabelledHeads(nn.Module):
    """USR 1.0's extra output layers for unlabelled targets (decoder side and frame side)."""

    def __init__(self, d_model: int, vocab_size: int):
        super().__init__()
        for s in STREAMS:
            setattr(self, f"out_layer_unlabelled_{s}", nn.Linear(d_model, vocab_size))
            setattr(self, f"out_layer_unlabelled_ctc_{s}", nn.Linear(d_model, vocab_size))

    def decoder_logits(self, hidden: Tensor, stream: str) -> Tensor:
        return getattr(self, f"out_layer_unlabelled_{stream}")(hidden)

    def frame_logits(self, encoded: Tensor, stream: str) -> Tensor:
        return getattr(self, f"out_layer_unlabelled_ctc_{stream}")(encoded)


def ctc_loss(
    logits: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor, weights=None
) -> Tensor:
    """CTC summed over sequences (optionally weighted 0/1 per sequence) / batch size."""
    if targets.shape[1] == 0:
        targets = targets.new_zeros(targets.shape[0], 1)
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)
    per_seq = F.ctc_loss(
        log_probs,
        targets.clamp(min=0),
        lengths,
        target_lengths,
        blank=0,
        reduction="none",
        zero_infinity=True,
    )
    if weights is not None:
        per_seq = per_seq * weights.to(per_seq.dtype)
    return per_seq.sum() / logits.shape[0]


def token_loss(logits: Tensor, targets: Tensor, mask: Tensor | None, smoothing: float) -> Tensor:
    """Cross-entropy over non-padding (and unmasked) positions, summed / batch size."""
    per_token = F.cross_entropy(
        logits.float().transpose(1, 2),
        targets.clamp(min=0),
        reduction="none",
        label_smoothing=smoothing,
    )
    keep = targets != IGNORE
    if mask is not None:
        keep = keep & mask
    return (per_token * keep).sum() / logits.shape[0]


def _decode_streams(
    model: UnifiedModel, encoded: dict[str, Tensor], inputs: Tensor, lengths: Tensor, streams
) -> dict[str, Tensor]:
    """Teacher-forced decoder hidden states of all streams in one batched pass."""
    memory = torch.cat([encoded[s] for s in streams])
    mask = length_mask(lengths, memory.shape[1]).repeat(len(streams), 1)
    hidden = model.decoder(inputs.repeat(len(streams), 1), memory, mask)
    return dict(zip(streams, hidden.chunk(len(streams))))


def labelled_losses(model: UnifiedModel, batch: Batch, cfg: LossConfig) -> dict[str, Tensor]:
    """Joint CTC/attention loss per stream on ground truth; also "<stream>/ctc", "<stream>/att"."""
    streams, eos, lam = cfg.streams, model.config.eos, cfg.ctc_weight
    lengths, targets, target_lengths = batch.lengths, batch.targets, batch.target_lengths
    encoded = model.encode(batch.video, batch.audio, lengths, streams)
    hidden = _decode_streams(model, encoded, teacher_forcing_inputs(targets, eos), lengths, streams)
    decoder_targets = append_eos(targets, target_lengths, eos)
    out = {}
    for s in streams:
        ctc = ctc_loss(model.ctc_logits(encoded[s], s), lengths, targets, target_lengths)
        att = token_loss(
            model.decoder.output(hidden[s], s), decoder_targets, None, cfg.label_smoothing
        )
        out[s], out[f"{s}/ctc"], out[f"{s}/att"] = lam * ctc + (1 - lam) * att, ctc, att
    return out


def unlabelled_losses(
    model: UnifiedModel,
    batch: Batch,
    pls: PseudoLabels,
    cfg: LossConfig,
    heads: UnlabelledHeads | None = None,
) -> dict[str, Tensor]:
    """Per-stream unlabelled loss of the student on its masked views (see module docstring)."""
    streams, eos, lam, smooth = cfg.streams, model.config.eos, cfg.ctc_weight, cfg.label_smoothing
    lengths = batch.lengths
    encoded = model.encode(batch.video_student, batch.audio_student, lengths, streams)
    if pls.mode == "ctc_driven":
        inputs = teacher_forcing_inputs(pls.ctc_tokens, eos)
        ctc_targets = append_eos(pls.ctc_tokens, pls.ctc_lengths, eos)
    else:
        inputs = teacher_forcing_inputs(pls.att_tokens, eos)[:, :-1]
    hidden = _decode_streams(model, encoded, inputs, lengths, streams)
    out = {}
    for s in streams:
        if pls.mode == "ctc_driven":
            logits = model.decoder.output(hidden[s], s)
            a = cfg.decoder_att_share
            att = a * token_loss(logits, pls.att_tokens, pls.att_keep, smooth) + (
                1 - a
            ) * token_loss(logits, ctc_targets, pls.ctc_keep[:, None], smooth)
            ctc = ctc_loss(
                model.ctc_logits(encoded[s], s),
                lengths,
                pls.ctc_tokens,
                pls.ctc_lengths,
                pls.ctc_keep,
            )
        elif pls.mode == "ar":
            logits = model.decoder.output(hidden[s], s)
            att = token_loss(logits, pls.att_tokens, pls.att_keep, smooth)
            ar_tokens = pls.att_tokens.masked_fill(pls.att_tokens == eos, IGNORE)
            ar_lengths = (ar_tokens != IGNORE).sum(1)
            ctc_logits = model.ctc_logits(encoded[s], s)
            c = cfg.ctc_ctc_share
            ctc = c * ctc_loss(
                ctc_logits, lengths, pls.ctc_tokens, pls.ctc_lengths, pls.ctc_keep
            ) + (1 - c) * ctc_loss(ctc_logits, lengths, ar_tokens, ar_lengths, pls.ar_seq_keep)
        elif pls.mode == "usr1":
            if heads is None:
                raise ValueError("pl.mode usr1 needs the UnlabelledHeads module")
            att = token_loss(
                heads.decoder_logits(hidden[s], s), pls.att_tokens, pls.att_keep, smooth
            )
            ctc = token_loss(
                heads.frame_logits(encoded[s], s), pls.frame_targets, pls.frame_keep, 0.0
            )
        else:
            raise ValueError(f"unknown pseudo-label mode {pls.mode!r}")
        out[s], out[f"{s}/ctc"], out[f"{s}/att"] = lam * ctc + (1 - lam) * att, ctc, att
    return out
