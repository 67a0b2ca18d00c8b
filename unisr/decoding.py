"""Batched decoding: CTC greedy, attention greedy and joint CTC/attention beam search.

Every method decodes a padded batch (B, T, D) with per-utterance valid ``lengths`` in one pass, and
a padded batch gives the same hypotheses as its utterances decoded one by one: the CTC scorer
treats padding as certain blanks and ends at each utterance's last valid frame, the decoder masks
padded memory, and the length limit comes from each utterance's valid length.

Beam search reproduces the official USR 2.0 search (ESPnet ``BatchBeamSearch``): scores
``(1 - ctc_weight) * decoder + ctc_weight * ctc + penalty * length``; with ``0 < ctc_weight < 1``
only the ``int(1.5 * beam)`` best tokens by decoder score get CTC prefix scores (eos always does);
each step keeps the ``beam`` best (hypothesis, token) pairs, and those ending in eos join the
ended list; at the length limit eos is appended unscored (a hypothesis that chose eos there ends
with two); all ended hypotheses are kept and sorted by score. ``ctc_weight`` 0 is pure attention,
1 pure CTC. Hypotheses are rows of fixed-size (utterances, beam) tensors; rows whose hypothesis
ended carry a score of -inf until a later step refills them, and finished utterances leave the
batch. Host synchronisation per step: the check for finished utterances and the CTC scorer's
count of candidate tokens and check for underflow, nothing per hypothesis or frame.

One deliberate difference: ``minlenratio`` is applied (eos is masked before that many tokens);
the official code computes the bound but never uses it. With the default 0 the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
from torch import Tensor

from .ctc_prefix import LOGZERO, CTCPrefixScorer
from .errors import UnisrError
from .masks import length_mask

METHODS = ("ctc", "greedy", "beam")
END_DETECT_MARGIN = -10.0  # ESPnet end detection: ended lengths this far below the best stop it


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode. Defaults follow the official USR 2.0 settings except ``beam_size`` (the
    official evaluation uses 40)."""

    method: str = "beam"  # "ctc" (greedy CTC), "greedy" (greedy attention) or "beam"
    beam_size: int = 10
    ctc_weight: float = 0.1  # beam search: weight of the CTC prefix score
    penalty: float = 0.0  # beam search: bonus per output token
    maxlenratio: float = 1.0  # >0: ratio of frames; 0: frames, with end detection; <0: -tokens
    minlenratio: float = 0.0  # eos is not allowed before int(minlenratio * frames) tokens
    nbest: int | None = 1  # hypotheses returned per utterance (None: every ended one)
    # at most this many padded frames (utterances x longest) are searched at once (None: the
    # whole batch); beam search's memory grows with it times the beam (BENCHMARKS.md)
    decode_frames: int | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise UnisrError(f"decoding method must be one of {METHODS}, not {self.method!r}")
        if self.beam_size < 1:
            raise UnisrError(f"beam size must be at least 1, not {self.beam_size}")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise UnisrError(f"ctc weight must lie in [0, 1], not {self.ctc_weight}")
        if self.nbest is not None and self.nbest < 1:
            raise UnisrError(f"nbest must be at least 1 (or None for all), not {self.nbest}")
        if self.decode_frames is not None and self.decode_frames < 1:
            raise UnisrError(f"decode frames must be at least 1, not {self.decode_frames}")


@dataclass
class Hypothesis:
    """One decoded sequence. ``tokens`` excludes sos/eos; ``scores`` holds the unweighted totals
    per scorer ("decoder", "ctc"); ``ended`` is False for a hypothesis cut at the length limit."""

    tokens: list[int]
    text: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    ended: bool = True


# padded frames beam-searched at once for beams over 10 (the default of `unisr eval` and of
# long-form transcription): beam 40 at Base then stays near 1 GiB on 6 s clips (BENCHMARKS.md)
DECODE_FRAMES = 1500


def default_decode_frames(beam: int, given: int | None) -> int | None:
    """``decode_frames`` when not given: :data:`DECODE_FRAMES` for beams wider than 10 (no limit
    for narrower ones): beam search's memory grows with frames times beam."""
    if given is not None:
        return given
    return DECODE_FRAMES if beam > 10 else None


def max_lengths(lengths: list[int], ratio: float) -> list[int]:
    """Output-length limit per utterance from its valid frames (the official rule)."""
    if ratio == 0:
        return list(lengths)
    if ratio < 0:
        return [int(-ratio)] * len(lengths)
    return [max(1, int(ratio * n)) for n in lengths]


def _valid_lengths(lengths: Tensor | None, encoded: Tensor) -> Tensor:
    batch, frames = encoded.shape[:2]
    if lengths is None:
        return torch.full((batch,), frames, dtype=torch.long, device=encoded.device)
    return lengths.to(encoded.device, torch.long)


def ctc_log_probs(model, encoded: Tensor, lengths: Tensor, stream: str) -> Tensor:
    """CTC log-probabilities (B, T, V), float32; the head sees the valid frames only, padding
    is zero."""
    valid = length_mask(lengths, encoded.shape[1])
    logp = encoded.new_zeros(*valid.shape, model.config.vocab_size, dtype=torch.float)
    logp[valid] = model.ctc_logits(encoded[valid], stream).float().log_softmax(-1)
    return logp


def frame_groups(lengths: list[int], budget: int) -> list[list[int]]:
    """Utterance indices in groups of similar length whose padded frames (utterances x
    longest) fit ``budget``, longest first; an utterance longer than the budget goes alone."""
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= budget:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


@torch.no_grad()
def decode_encoded(
    model, encoded: Tensor, lengths: Tensor | None, stream: str, options: DecodingOptions
) -> list[list[Hypothesis]]:
    """Decode encoder outputs (B, T, D) of ``stream``; returns the n-best list per utterance.
    Batches of more than ``options.decode_frames`` padded frames are decoded in groups."""
    if encoded.shape[0] == 0:
        return []
    lengths = _valid_lengths(lengths, encoded)
    budget = options.decode_frames
    if budget is not None and encoded.shape[0] > 1 and encoded.shape[0] * encoded.shape[1] > budget:
        found: list[list[Hypothesis]] = [[] for _ in range(encoded.shape[0])]
        whole = replace(options, decode_frames=None)
        for group in frame_groups(lengths.tolist(), budget):
            rows = torch.tensor(group, device=encoded.device)
            longest = int(lengths[rows].max())
            part = decode_encoded(model, encoded[rows, :longest], lengths[rows], stream, whole)
            for i, nbest in zip(group, part):
                found[i] = nbest
        return found
    if options.method == "ctc":
        tokens, counts, scores = ctc_greedy(ctc_log_probs(model, encoded, lengths, stream), lengths)
        found = [[(seq, {"ctc": s}, s, True)] for seq, s in zip(_rows(tokens, counts), scores)]
    elif options.method == "greedy":
        host = lengths.tolist()
        limits = torch.tensor(max_lengths(host, options.maxlenratio), device=encoded.device)
        floors = torch.tensor([int(options.minlenratio * n) for n in host], device=limits.device)
        tokens, counts, logps = attention_greedy(model, encoded, lengths, stream, limits, floors)
        eos, found = model.config.eos, []
        for seq, lp in zip(_rows(tokens, counts), logps.sum(1).tolist()):
            ended = bool(seq) and seq[-1] == eos
            found.append([(seq[:-1] if ended else seq, {"decoder": lp}, lp, ended)])
    else:
        found = beam_search(model, encoded, lengths, stream, options)
    tokenizer = getattr(model, "tokenizer", None)
    return [
        [
            Hypothesis(seq, tokenizer.decode(seq) if tokenizer else "", score, scores, ended)
            for seq, scores, score, ended in nbest[: options.nbest]
        ]
        for nbest in found
    ]


def _rows(tokens: Tensor, counts: Tensor) -> list[list[int]]:
    return [row[:n] for row, n in zip(tokens.tolist(), counts.tolist())]


def ctc_collapse(best: Tensor, lengths: Tensor, blank: int = 0) -> tuple[Tensor, Tensor]:
    """Greedy CTC post-processing of per-frame ids (B, T): repeats merged, blanks and frames past
    each row's length dropped. Returns tokens (B, U) padded with -1 and counts (B,)."""
    previous = torch.nn.functional.pad(best[:, :-1], (1, 0), value=blank)
    keep = length_mask(lengths, best.shape[1]) & (best != blank) & (best != previous)
    counts = keep.sum(dim=1)
    # stable sort moves kept frames to the front in time order
    order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
    width = int(counts.max()) if len(counts) else 0
    tokens = best.gather(1, order)[:, :width]
    return tokens.masked_fill(~length_mask(counts, width), -1), counts


def ctc_greedy(logp: Tensor, lengths: Tensor, blank: int = 0) -> tuple[Tensor, Tensor, list]:
    """Best path per frame, collapsed (:func:`ctc_collapse`). logp (B, T, V) -> tokens (B, U)
    padded with -1, counts (B,), best-path log-probabilities (list of B floats)."""
    best_logp, best = logp.max(dim=-1)
    tokens, counts = ctc_collapse(best, lengths, blank)
    return tokens, counts, (best_logp * length_mask(lengths, logp.shape[1])).sum(1).tolist()


@torch.no_grad()
def attention_greedy(
    model,
    memory: Tensor,
    lengths: Tensor,
    stream: str,
    max_lengths: Tensor,
    min_lengths: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Batched greedy autoregressive decoding with cached keys/values (``method="greedy"``, and
    the AR pseudo-labels). Each row stops at eos (kept as its last token) or after
    ``max_lengths`` tokens; eos is masked before ``min_lengths``. Returns tokens (B, U) padded
    with -1, counts (B,) and each token's log-probability (B, U), float32, zero on padding."""
    batch = memory.shape[0]
    eos = model.config.eos
    steps = int(max_lengths.max()) if batch else 0
    tokens = torch.full((batch, max(steps, 1)), -1, dtype=torch.long, device=memory.device)
    logps = torch.zeros(tokens.shape, device=memory.device)
    counts = torch.zeros(batch, dtype=torch.long, device=memory.device)
    state = model.decoder.init_state(memory, length_mask(lengths, memory.shape[1]))
    active = torch.arange(batch, device=memory.device)
    previous = torch.full((batch,), eos, dtype=torch.long, device=memory.device)  # sos == eos
    for step in range(steps):
        hidden, state = model.decoder.step(previous, state)
        logp = model.decoder.output(hidden, stream).float().log_softmax(-1)
        if min_lengths is not None:
            logp[:, eos].masked_fill_(step < min_lengths[active], -torch.inf)
        best_logp, best = logp.max(dim=-1)
        tokens[active, step], logps[active, step] = best, best_logp
        counts[active] = step + 1
        running = (best != eos) & (step + 1 < max_lengths[active])
        if not running.all():  # the one host synchronisation per step
            keep = running.nonzero().squeeze(1)
            if len(keep) == 0:
                break
            active, state, best = active[keep], state.select(keep), best[keep]
        previous = best
    width = int(counts.max()) if batch else 0
    return tokens[:, :width], counts, logps[:, :width]


@dataclass
class _History:
    """What each step chose, per (step, utterance, beam rank), to rebuild ended hypotheses."""

    token: Tensor
    parent: Tensor
    score: Tensor
    decoder: Tensor
    ctc: Tensor
    ended: Tensor

    @classmethod
    def empty(cls, steps: int, batch: int, beam: int, device) -> _History:
        def zeros(dtype):
            return torch.zeros(steps, batch, beam, dtype=dtype, device=device)

        long_, float_ = zeros(torch.long), zeros(torch.float)
        return cls(long_, long_.clone(), float_, float_.clone(), float_.clone(), zeros(torch.bool))

    def record(self, step: int, utterances: Tensor, **values: Tensor) -> None:
        for name, value in values.items():
            getattr(self, name)[step].index_copy_(0, utterances, value)


@torch.no_grad()
def beam_search(
    model, encoded: Tensor, lengths: Tensor, stream: str, options: DecodingOptions
) -> list[list[tuple[list[int], dict[str, float], float, bool]]]:
    """Joint CTC/attention beam search over a padded batch. Returns per utterance every ended
    hypothesis, best first, as (tokens, per-scorer totals, score, ended-by-eos)."""
    batch, frames, _ = encoded.shape
    device, beam = encoded.device, options.beam_size
    vocab, eos = model.config.vocab_size, model.config.eos
    weight = options.ctc_weight
    use_decoder, use_ctc = weight < 1.0, weight > 0.0
    pre_beam = int(1.5 * beam)
    do_pre_beam = use_decoder and use_ctc and pre_beam < vocab
    host_lengths = lengths.tolist()
    limits = max_lengths(host_lengths, options.maxlenratio)
    limit = torch.tensor(limits, device=device)
    floor = torch.tensor([int(options.minlenratio * n) for n in host_lengths], device=device)
    steps = max(limits)
    # rows in order of decreasing length limit: utterances that stop at their limit leave from
    # the end of the batch, so what stays is a slice of the cached memory, not a copy
    utterances = torch.argsort(limit, descending=True, stable=True)  # original index of each row
    encoded, lengths, limit, floor = (t[utterances] for t in (encoded, lengths, limit, floor))

    if use_decoder:
        dec_state = model.decoder.init_state(encoded, length_mask(lengths, frames), group=beam)
    if use_ctc:
        scorer = CTCPrefixScorer(ctc_log_probs(model, encoded, lengths, stream), lengths)
        ctc_state = scorer.initial_state(beam)
    score = torch.full((batch, beam), -torch.inf, device=device)
    score[:, 0] = 0.0  # one running hypothesis, [sos]
    dec_total, ctc_total = torch.zeros_like(score), torch.zeros_like(score)
    last = torch.full((batch, beam), eos, dtype=torch.long, device=device)  # sos == eos
    history = _History.empty(steps, batch, beam, device)
    best_by_length = torch.full((batch, steps + 3), -torch.inf, device=device)
    best_ended = torch.full((batch,), -torch.inf, device=device)

    for step in range(steps):
        rows = utterances.shape[0]
        weighted = torch.zeros(rows, beam, vocab, device=device)
        if use_decoder:
            hidden, dec_state = model.decoder.step(last.flatten(), dec_state)
            dec = model.decoder.output(hidden, stream).float().log_softmax(-1).view_as(weighted)
            weighted = weighted + (1.0 - weight) * dec
        if options.penalty:
            weighted = weighted + options.penalty
        if use_ctc:
            if do_pre_beam:
                candidates = dec.topk(pre_beam, dim=-1).indices
            else:
                candidates = torch.arange(vocab, device=device).expand(rows, beam, vocab)
            psi, psi_eos = scorer.score(ctc_state, candidates, step)
            psi_full = torch.full_like(weighted, LOGZERO).scatter_(2, candidates, psi)
            psi_full[..., eos] = psi_eos
            psi_full[..., scorer.blank] = LOGZERO
            ctc = psi_full - ctc_state.psi[..., None]
            weighted = weighted + weight * ctc
        weighted = weighted + score[..., None]
        weighted[..., eos].masked_fill_((step < floor)[:, None], -torch.inf)

        top, flat = weighted.view(rows, -1).topk(beam, dim=-1)
        parent, token = flat // vocab, flat % vocab
        if use_decoder:
            dec_total = dec_total.gather(1, parent) + dec.view(rows, -1).gather(1, flat)
        if use_ctc:
            ctc_total = ctc_total.gather(1, parent) + ctc.view(rows, -1).gather(1, flat)
        at_limit = (step == limit - 1)[:, None]
        ended = (token == eos) | at_limit
        history.record(
            step,
            utterances,
            token=token,
            parent=parent,
            score=top,
            decoder=dec_total,
            ctc=ctc_total,
            ended=ended,
        )

        score, last = top.masked_fill(ended, -torch.inf), token
        finished = at_limit[:, 0] | ended.all(dim=1)
        if options.maxlenratio == 0:  # ESPnet end detection on yseq lengths (sos + tokens + eos)
            best_by_length[:, step + 2] = top.masked_fill(~ended, -torch.inf).max(dim=1).values
            best_ended = torch.maximum(best_ended, best_by_length[:, step + 2])
            if step >= 2:
                recent = best_by_length[:, step - 2 : step + 1]
                far = recent.isfinite() & (recent - best_ended[:, None] < END_DETECT_MARGIN)
                finished |= far.all(dim=1)
        sources = torch.arange(rows, device=device)[:, None] * beam + parent  # decoder rows
        psi = psi_full.view(rows, -1).gather(1, flat) if use_ctc else None
        keep = None
        if finished.any():  # host synchronisation
            keep = (~finished).nonzero().squeeze(1)
            if len(keep) == 0:
                break
            if keep[-1] == len(keep) - 1:  # the first rows: keep them as views
                keep = slice(len(keep))
            utterances, score, last, limit, floor = (
                t[keep] for t in (utterances, score, last, limit, floor)
            )
            dec_total, ctc_total, sources, parent = (
                t[keep] for t in (dec_total, ctc_total, sources, parent)
            )
            best_by_length, best_ended = best_by_length[keep], best_ended[keep]
            if use_ctc:
                scorer, ctc_state, psi = scorer.select(keep), ctc_state.select(keep), psi[keep]
        if use_decoder:
            dec_state = dec_state.select(sources.flatten(), keep)
        if use_ctc:
            ctc_state = scorer.extend(ctc_state, parent, last, psi, step)
    return _collect(history, batch, eos, use_decoder, use_ctc, options.penalty)


def _collect(history: _History, batch: int, eos: int, use_decoder, use_ctc, penalty: float):
    """Ended hypotheses per utterance, rebuilt from the step history and sorted by score (stable,
    so ties keep the order in which they ended, as officially)."""
    h = {f.name: getattr(history, f.name).cpu().numpy() for f in fields(history)}
    step, utt, rank = np.nonzero(h["ended"])  # in order of steps, then beam rank
    paths = np.full((len(step), h["token"].shape[0]), -1, dtype=np.int64)
    position = rank.copy()
    for s in range(h["token"].shape[0] - 1, -1, -1):  # walk the parent pointers back
        alive = step >= s
        paths[alive, s] = h["token"][s, utt[alive], position[alive]]
        position[alive] = h["parent"][s, utt[alive], position[alive]]
    found: list[list] = [[] for _ in range(batch)]
    for e, (s, b, k) in enumerate(zip(step.tolist(), utt.tolist(), rank.tolist())):
        path = paths[e, : s + 1].tolist()
        chose_eos = path[-1] == eos
        scores = {}
        if use_decoder:
            scores["decoder"] = float(h["decoder"][s, b, k])
        if use_ctc:
            scores["ctc"] = float(h["ctc"][s, b, k])
        if penalty:
            scores["length_bonus"] = float(len(path))
        tokens = path[:-1] if chose_eos else path
        found[b].append((tokens, scores, float(h["score"][s, b, k]), chose_eos))
    return [sorted(hyps, key=lambda hyp: -hyp[2]) for hyps in found]
