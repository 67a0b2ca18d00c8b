"""Vectorised CTC prefix scoring for batched joint CTC/attention beam search.

For a prefix ``g`` of ``L`` tokens the state is its forward log-probabilities per frame:
``r_n[t]`` (last token emitted at ``t``) and ``r_b[t]`` (blank at ``t``). The prefix score of an
extension ``g + c`` is

    psi(g + c) = logsumexp_{t >= L} phi[t - 1] + x[t, c],
    phi = logaddexp(r_n, r_b), or r_b alone when c repeats the last token of g,

``psi(g + eos) = phi`` at the utterance's last valid frame, and ``psi(g + blank) = LOGZERO``
(Watanabe et al., 2017; the official USR 2.0 semantics). Frame ``-1`` is stored as index 0 of the
time axis: the empty prefix has probability 1 there, which removes every special case of ``L = 0``.

There is no loop over frames or hypotheses. Only the candidate extensions are scored (the
pre-beam of joint decoding, a few tokens per hypothesis): per step one float64 matrix product
(B, K, T) x (B, T, U) over the U tokens that are a candidate of any of an utterance's K hypotheses,
of exponentials shifted by their maxima (with the exact logsumexp for any entry that underflows),
and the new states of the chosen extensions solve their linear recursions in closed form with
cumulative sums and ``logcumsumexp`` (float64, so that the large cumulative sums do not cost
precision).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from .masks import length_mask

LOGZERO = -1e10  # the official "log zero": finite in float32, so differences never give NaN
# (in fp16 it is -inf: the scorer's state is never kept in its input's dtype)


@dataclass
class CTCState:
    """Prefix states of ``K`` hypotheses per utterance; time axis = frames -1 .. T-1."""

    r_n: Tensor  # (B, K, T + 1)
    r_b: Tensor  # (B, K, T + 1)
    psi: Tensor  # (B, K) prefix score of each hypothesis
    last: Tensor  # (B, K) last token, -1 for the empty prefix

    def select(self, utterances: Tensor) -> CTCState:
        return CTCState(*(t[utterances] for t in (self.r_n, self.r_b, self.psi, self.last)))


class CTCPrefixScorer:
    """Prefix scores of a padded batch of CTC log-probabilities (B, T, V) with valid ``lengths``.

    Frames past an utterance's length become certain blanks, so padding changes no score.
    ``logp`` may have any floating dtype: the state is float32 (float64 where it sums), and
    log-probabilities below :data:`LOGZERO` (the -inf of an fp16 log-softmax that underflowed,
    or -1e10 rounded to fp16) are raised to it, so every state and score is finite.
    """

    def __init__(self, logp: Tensor, lengths: Tensor, blank: int = 0):
        padding = ~length_mask(lengths, logp.shape[1])
        logp = logp.float().clamp(min=LOGZERO)
        x = logp.masked_fill(padding[..., None], LOGZERO)
        x[..., blank] = logp[..., blank].masked_fill(padding, 0.0)
        self.x = x.transpose(1, 2).contiguous()  # (B, V, T): a token's frames are contiguous
        # exp(x - its maximum over frames), float64 (B, V, T): prefix scores as a matrix product
        self.x_max = self.x.amax(dim=2)
        self.emit = (self.x - self.x_max[..., None]).double().exp_()
        self.blank = blank
        self.last_frame = lengths.clamp(min=1)  # index of the last valid frame on the state axis
        # batch row of x of each utterance still decoded: selecting utterances copies no frames
        self.rows = torch.arange(len(lengths), device=logp.device)

    def select(self, utterances: Tensor) -> CTCPrefixScorer:
        scorer = copy.copy(self)
        scorer.rows, scorer.last_frame = self.rows[utterances], self.last_frame[utterances]
        return scorer

    def initial_state(self, hyps: int) -> CTCState:
        """The empty prefix in each of ``hyps`` rows per utterance."""
        batch, frames = len(self.rows), self.x.shape[2]
        r_b = torch.zeros(batch, 1, frames + 1, device=self.x.device)
        r_b[..., 1:] = self._frames(self.x, self._blanks(1), 0).cumsum(dim=-1)
        r_b = r_b.expand(-1, hyps, -1).contiguous()
        psi = torch.zeros(batch, hyps, device=self.x.device)
        last = torch.full((batch, hyps), -1, dtype=torch.long, device=self.x.device)
        return CTCState(torch.full_like(r_b, LOGZERO), r_b, psi, last)

    def _blanks(self, count: int) -> Tensor:
        return torch.full((len(self.rows), count), self.blank, device=self.x.device)

    def _frames(
        self, table: Tensor, tokens: Tensor, start: int, utterances: Tensor | None = None
    ) -> Tensor:
        """table[b, tokens[b, j], t] for t >= start, where table is x, emit or x_max[..., None]
        of the whole batch: (B, J) token ids -> (B, J, T - start); with ``utterances`` (N,),
        the rows of tokens (N, J) belong to those utterances."""
        rows = self.rows if utterances is None else self.rows[utterances]
        flat = (rows[:, None] * table.shape[1] + tokens).flatten()
        return table.flatten(0, 1)[:, start:].index_select(0, flat).view(*tokens.shape, -1)

    def score(self, state: CTCState, candidates: Tensor, length: int) -> tuple[Tensor, Tensor]:
        """psi of each candidate extension (B, K, C) of prefixes of ``length`` tokens, and
        psi of ending each prefix with eos (B, K)."""
        hyps, frames = candidates.shape[1], self.x.shape[2]
        r_sum = torch.logaddexp(state.r_n, state.r_b)
        eos = r_sum.gather(2, self.last_frame.view(-1, 1, 1).expand(-1, hyps, 1))[..., 0]
        if length >= frames:
            return candidates.new_full(candidates.shape, LOGZERO, dtype=torch.float), eos
        phi = r_sum[..., length:frames]  # frames t - 1 for t >= length
        # logsumexp_t phi[t-1] + x[t, c] for the utterance's candidate tokens at once: shift both
        # terms by their maxima, multiply in float64 (B, K, T') @ (B, T', U), take the log,
        # shift back; U counts the tokens that are a candidate of any of the utterance's rows
        tokens, column = _union(candidates, self.x.shape[1])
        top = phi.amax(dim=-1, keepdim=True)
        emit = self._frames(self.emit, tokens, length)
        sums = torch.bmm((phi - top).double().exp(), emit.transpose(1, 2)).gather(2, column)
        x_max = self._frames(self.x_max[..., None], candidates.flatten(1), 0).view_as(sums)
        psi = (sums.log() + top.double() + x_max.double()).float()
        lost = sums < torch.finfo(sums.dtype).tiny
        if lost.any():  # underflow (e.g. only padding left): the exact logsumexp there
            b, k, c = lost.nonzero(as_tuple=True)
            x = self._frames(self.x, candidates[b, k, c][:, None], length, b)[:, 0]
            psi[b, k, c] = torch.logsumexp(x + phi[b, k], dim=-1)
        if length > 0:  # repeating the last token needs a blank in between
            x_last = self._frames(self.x, state.last, length)
            psi_repeat = torch.logsumexp(x_last + state.r_b[..., length:frames], dim=-1)
            repeat = candidates == state.last[..., None]
            psi = torch.where(repeat, psi_repeat[..., None], psi)
        return psi, eos

    def extend(
        self, state: CTCState, parent: Tensor, token: Tensor, psi: Tensor, length: int
    ) -> CTCState:
        """States of the chosen extensions ``prefix[parent] + token`` (all (B, K)), where the
        prefixes have ``length`` tokens and ``psi`` are the extensions' scores."""
        index = parent[..., None].expand(-1, -1, state.r_n.shape[2])
        r_n, r_b = state.r_n.gather(1, index), state.r_b.gather(1, index)
        last = state.last.gather(1, parent)
        new_n, new_b = torch.full_like(r_n, LOGZERO), torch.full_like(r_b, LOGZERO)
        frames = self.x.shape[2]
        if length < frames:
            phi = torch.where((token == last)[..., None], r_b, torch.logaddexp(r_n, r_b))
            phi = phi[..., length:frames].double()  # frames t - 1 for t >= length
            # r_n[t] = (r_n[t-1] (+) phi[t-1]) + x[t, c]: a first-order linear recursion,
            # solved as A[t] + logcumsumexp(phi[s-1] - A[s-1]) with A the cumulative x[., c]
            n = _linear_recursion(phi, self._frames(self.x, token, length).double())
            # r_b[t] = (r_n[t-1] (+) r_b[t-1]) + x[t, blank], with r_b[length - 1] = log 0
            n_prev = torch.cat([torch.full_like(n[..., :1], LOGZERO), n[..., :-1]], dim=-1)
            b = _linear_recursion(n_prev, self._frames(self.x, self._blanks(1), length).double())
            new_n[..., length + 1 :], new_b[..., length + 1 :] = n.float(), b.float()
        return CTCState(new_n, new_b, psi, token)


def _linear_recursion(inflow: Tensor, log_gain: Tensor) -> Tensor:
    """y[t] = logaddexp(y[t-1], inflow[t]) + log_gain[t] with y[-1] = log 0, along the last dim."""
    gain = log_gain.cumsum(dim=-1)
    before = torch.cat([torch.zeros_like(gain[..., :1]), gain[..., :-1]], dim=-1)
    return gain + torch.logcumsumexp(inflow - before, dim=-1)


def _union(candidates: Tensor, vocab: int) -> tuple[Tensor, Tensor]:
    """The tokens that are a candidate of any row of each utterance, (B, U) in increasing order
    (rows with fewer are padded with other tokens), and each candidate's column there."""
    present = torch.zeros(candidates.shape[0], vocab, dtype=torch.bool, device=candidates.device)
    present.scatter_(1, candidates.flatten(1), True)
    width = int(present.sum(dim=1).max())
    tokens = torch.sort((~present).to(torch.uint8), dim=1, stable=True).indices[:, :width]
    column = (present.cumsum(dim=1) - 1).gather(1, candidates.flatten(1))
    return tokens, column.view_as(candidates)
