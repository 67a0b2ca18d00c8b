"""How good the pseudo-labels are, where the unlabelled clips' transcripts are known.

The synthetic corpus and LRS3's ``pretrain`` set carry transcripts on clips that training treats
as unlabelled. :func:`label_errors` scores one step's pseudo-labels against them; a
:class:`QualityWindow` sums the counts over the last steps and gives the rates that training logs
(``pl_quality/...``). Diagnostics only: the transcripts reach no loss, filter or teacher.

* ``ctc_*``: greedy collapsed CTC labels; ``_accepted`` / ``_rejected``: the sequences the
  confidence filter kept / dropped (how well it separates good labels from bad), ``ctc_accepted``
  the share it kept.
* ``att_*``: CTC-driven attention labels (up to eos), ``ar_*``: AR labels, each also on the
  sequences whose every token the filter accepted, and that share (``*_accepted_share``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from torch import Tensor

from .evaluate import word_errors
from .pseudo_labels import IGNORE, PseudoLabels

Counts = dict[str, tuple[int, int]]  # name -> (numerator, denominator)


def _texts(tokens: Tensor, lengths: Tensor, decode: Callable[[list[int]], str], eos: int):
    out = []
    for row, n in zip(tokens.tolist(), lengths.tolist()):
        row = [t for t in row[:n] if t != IGNORE]
        out.append(decode(row[: row.index(eos)] if eos in row else row))
    return out


def _errors(refs: list[str], hyps: list[str], keep: list[bool]) -> tuple[int, int]:
    chosen = [(r, h) for r, h, k in zip(refs, hyps, keep) if k]
    return word_errors(*zip(*chosen)) if chosen else (0, 0)


def label_errors(
    pls: PseudoLabels, transcripts: Tensor, lengths: Tensor, decode, eos: int
) -> Counts:
    """Word errors of one batch's pseudo-labels against the known transcripts."""
    refs = _texts(transcripts, lengths, decode, eos)
    everything = [True] * len(refs)
    ctc = _texts(pls.ctc_tokens, pls.ctc_lengths, decode, eos)
    kept = pls.ctc_keep.tolist()
    counts: Counts = {
        "ctc_wer": _errors(refs, ctc, everything),
        "ctc_wer_accepted": _errors(refs, ctc, kept),
        "ctc_wer_rejected": _errors(refs, ctc, [not k for k in kept]),
        "ctc_accepted": (sum(kept), len(kept)),
    }
    if pls.att_tokens is not None:
        name = "att" if pls.mode == "ctc_driven" else "ar"
        att = _texts(pls.att_tokens, pls.att_lengths, decode, eos)
        valid = pls.att_tokens != IGNORE
        whole = ((pls.att_keep | ~valid).all(1) & valid.any(1)).tolist()
        counts[f"{name}_wer"] = _errors(refs, att, everything)
        counts[f"{name}_wer_accepted"] = _errors(refs, att, whole)
        counts[f"{name}_accepted_share"] = (sum(whole), len(whole))
    return counts


class QualityWindow:
    """Counts of the last ``steps`` steps, as logged rates (WERs in %, shares in [0, 1])."""

    def __init__(self, steps: int):
        self.window: deque[Counts] = deque(maxlen=max(steps, 1))

    def add(self, counts: Counts) -> dict[str, float]:
        self.window.append(counts)
        totals: dict[str, list[int]] = {}
        for step in self.window:
            for name, (num, den) in step.items():
                total = totals.setdefault(name, [0, 0])
                total[0] += num
                total[1] += den
        return {
            f"pl_quality/{name}": (100.0 if "wer" in name else 1.0) * num / den
            for name, (num, den) in totals.items()
            if den > 0
        }
