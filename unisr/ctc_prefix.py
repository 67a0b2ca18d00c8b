"""Vectorised CTC prefix scoring for batched joint CTC/attention beam search.

For a prefix ``g`` of ``L`` tokens the state is its forward log-probabilities per frame:
``r_n[t]`` (last token emitted at ``t``) and ``r_b[t]`` (blank at ``t``). The prefix score of an
extension ``g + c`` is

    psi(g + c) = logsumexp_{t >= L} phi[t - 1] + x[t, c],
    phi = logaddexp(r_n, r_b), or r_b alone when c repeats the last token of g,

``psi(g + eos) = phi`` at the utterance's last valid frame, and ``psi(g + blank) = LOGZERO``
(Watanabe et al., 2017; the official USR 2.0 semantics). Frame ``-1`` is stored as index 0 of the
time axis: the empty prefix has probability 1 there, which removes every special case of ``L = 0``.

There is no loop over frames or hypotheses. The scores of every token after every hypothesis
are one float64 matrix product per step, (B, K, T) x (B, T, V), of exponentials shifted by their
maxima (with the exact logsumexp for any entry that underflows), and the new states of the chosen
extensions solve their linear recursions in closed form with cumulative sums and
``logcumsumexp`` (float64, so that the large cumulative sums do not cost precision).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

LOGZERO = -1e10  # the official "log zero": finite, so differences never give NaN


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
    """

    def __init__(self, logp: Tensor, lengths: Tensor, blank: int = 0):
        frames = logp.shape[1]
        padding = torch.arange(frames, device=logp.device)[None, :] >= lengths[:, None]
        x = logp.float().masked_fill(padding[..., None], LOGZERO)
        x[..., blank] = logp[..., blank].float().masked_fill(padding, 0.0)
        self.x = x.transpose(1, 2).contiguous()  # (B, V, T): a token's frames are contiguous
        # exp(x - its maximum over frames), float64 (B, T, V): prefix scores as a matrix product
        self.x_max = x.amax(dim=1)
        self.emit = (x - self.x_max[:, None, :]).double().exp()
        self.blank = blank
        self.last_frame = lengths.clamp(min=1)  # index of the last valid frame on the state axis

    def select(self, utterances: Tensor) -> CTCPrefixScorer:
        scorer = object.__new__(CTCPrefixScorer)
        scorer.x, scorer.x_max, scorer.emit = (
            t[utterances] for t in (self.x, self.x_max, self.emit)
        )
        scorer.blank = self.blank
        scorer.last_frame = self.last_frame[utterances]
        return scorer

    def initial_state(self, hyps: int) -> CTCState:
        """The empty prefix in each of ``hyps`` rows per utterance."""
        batch, _, frames = self.x.shape
        r_b = torch.zeros(batch, 1, frames + 1, device=self.x.device)
        r_b[..., 1:] = self.x[:, self.blank, None].cumsum(dim=-1)
        r_b = r_b.expand(-1, hyps, -1).contiguous()
        psi = torch.zeros(batch, hyps, device=self.x.device)
        last = torch.full((batch, hyps), -1, dtype=torch.long, device=self.x.device)
        return CTCState(torch.full_like(r_b, LOGZERO), r_b, psi, last)

    def _frames(self, tokens: Tensor, start: int) -> Tensor:
        """x[b, t, tokens[b, j]] for t >= start: (B, J) token ids -> (B, J, T - start)."""
        rows = torch.arange(len(tokens), device=tokens.device)[:, None]
        return self.x[:, :, start:][rows, tokens]

    def score(self, state: CTCState, candidates: Tensor, length: int) -> tuple[Tensor, Tensor]:
        """psi of each candidate extension (B, K, C) of prefixes of ``length`` tokens, and
        psi of ending each prefix with eos (B, K)."""
        hyps = candidates.shape[1]
        frames = self.x.shape[2]
        r_sum = torch.logaddexp(state.r_n, state.r_b)
        eos = r_sum.gather(2, self.last_frame.view(-1, 1, 1).expand(-1, hyps, 1))[..., 0]
        if length >= frames:
            return candidates.new_full(candidates.shape, LOGZERO, dtype=torch.float), eos
        phi = r_sum[..., length:frames]  # frames t - 1 for t >= length
        # logsumexp_t phi[t-1] + x[t, c] for every token at once: shift both terms by their
        # maxima, multiply in float64 (B, K, T') @ (B, T', V), take the log, shift back
        top = phi.amax(dim=-1, keepdim=True)
        sums = torch.bmm((phi - top).double().exp(), self.emit[:, length:])
        psi = (sums.log() + top.double() + self.x_max[:, None, :].double()).float()
        lost = sums < torch.finfo(sums.dtype).tiny
        if lost.any():  # underflow (e.g. only padding left): the exact logsumexp there
            b, k, c = lost.nonzero(as_tuple=True)
            psi[b, k, c] = torch.logsumexp(self.x[b, c, length:] + phi[b, k], dim=-1)
        psi = psi.gather(2, candidates)
        if length > 0:  # repeating the last token needs a blank in between
            x_last = self._frames(state.last, length)
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
            n = _linear_recursion(phi, self._frames(token, length).double())
            # r_b[t] = (r_n[t-1] (+) r_b[t-1]) + x[t, blank], with r_b[length - 1] = log 0
            n_prev = torch.cat([torch.full_like(n[..., :1], LOGZERO), n[..., :-1]], dim=-1)
            b = _linear_recursion(n_prev, self.x[:, self.blank, None, length:].double())
            new_n[..., length + 1 :], new_b[..., length + 1 :] = n.float(), b.float()
        return CTCState(new_n, new_b, psi, token)


def _linear_recursion(inflow: Tensor, log_gain: Tensor) -> Tensor:
    """y[t] = logaddexp(y[t-1], inflow[t]) + log_gain[t] with y[-1] = log 0, along the last dim."""
    gain = log_gain.cumsum(dim=-1)
    before = torch.cat([torch.zeros_like(gain[..., :1]), gain[..., :-1]], dim=-1)
    return gain + torch.logcumsumexp(inflow - before, dim=-1)
