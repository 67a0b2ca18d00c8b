"""Word timestamps from the CTC head: a hypothesis' tokens force-aligned on the CTC
log-probabilities of the frames it was decoded from (Viterbi over the CTC topology, blanks
optional between tokens and required between repeats), then grouped into words.

A frame is 40 ms (25 fps, the encoder's rate for every stream). A word starts at the first frame
of its first sounded token (not a bare word mark) and ends after the last frame of its last one;
its probability is the mean of its tokens' posteriors at the frames that best carry them (CTC
emits a token on one or two frames, the rest is blank).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .media import FPS
from .tokenizer import WORD_MARK

FRAME_SECONDS = 1.0 / FPS


@dataclass
class Word:
    """One word of a transcript: its text, times in seconds and the model's confidence."""

    word: str
    start: float
    end: float
    probability: float

    def to_dict(self) -> dict:
        return {
            "word": self.word,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "probability": round(self.probability, 4),
        }


def forced_align(logp: np.ndarray, tokens: list[int], blank: int = 0) -> np.ndarray | None:
    """The most likely CTC path of ``tokens`` through log-probabilities (T, V): for each token
    its (first frame, last frame, frame of its highest posterior) as an int array (U, 3), or None
    when the tokens cannot fit the frames (more tokens plus repeat-separating blanks than
    frames)."""
    frames, count = logp.shape[0], len(tokens)
    if count == 0:
        return np.zeros((0, 3), dtype=np.int64)
    labels = np.full(2 * count + 1, blank, dtype=np.int64)
    labels[1::2] = tokens
    states = len(labels)
    # a token state may be entered from two back when the token differs from the one before
    skip = np.zeros(states, dtype=bool)
    skip[3::2] = labels[3::2] != labels[1:-2:2]
    emit = logp[:, labels]  # (T, S)
    score = np.full(states, -np.inf)
    score[:2] = emit[0, :2]
    back = np.zeros((frames, states), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, frames):
        stay, step = score, np.concatenate(([-np.inf], score[:-1]))
        jump = np.where(skip, np.concatenate(([-np.inf, -np.inf], score[:-2])), -np.inf)
        choices = np.stack([stay, step, jump])
        back[t] = choices.argmax(axis=0)
        score = choices.max(axis=0) + emit[t]
    end = states - 1 if score[-1] >= score[-2] else states - 2
    if not np.isfinite(score[end]):
        return None
    path = np.empty(frames, dtype=np.int64)
    state = end
    for t in range(frames - 1, -1, -1):
        path[t] = state
        state -= back[t, state]
    spans = np.zeros((count, 3), dtype=np.int64)
    for u in range(count):
        at = np.flatnonzero(path == 2 * u + 1)
        best = at[np.argmax(logp[at, tokens[u]])]
        spans[u] = at[0], at[-1], best
    return spans


def words_of(
    tokens: list[int],
    pieces: list[str],
    logp: np.ndarray,
    offset: float = 0.0,
) -> list[Word]:
    """Timed words of one decoded segment: ``tokens`` (ids, pieces[i - 1] is id i) aligned on
    the segment's CTC log-probabilities (T, V); ``offset`` is the segment's start in seconds.
    Tokens that cannot be aligned share the segment's frames evenly."""
    tokens = [t for t in tokens if 1 <= t <= len(pieces)]
    if not tokens:
        return []
    spans = forced_align(logp, tokens)
    if spans is None:  # evenly spread, without confidence
        edges = np.linspace(0, len(logp), len(tokens) + 1).astype(np.int64)
        starts = edges[:-1]
        spans = np.stack([starts, np.maximum(starts, edges[1:] - 1), starts], axis=1)
        probs = np.zeros(len(tokens))
    else:
        probs = np.exp(logp[spans[:, 2], tokens])
    words: list[Word] = []
    members: list[int] = []
    for u, token in enumerate(tokens):
        if pieces[token - 1].startswith(WORD_MARK) and members:
            words.append(_word(members, tokens, pieces, spans, probs, offset))
            members = []
        members.append(u)
    words.append(_word(members, tokens, pieces, spans, probs, offset))
    return [w for w in words if w.word]


def _word(members, tokens, pieces, spans, probs, offset) -> Word:
    text = "".join(pieces[tokens[u] - 1] for u in members).replace(WORD_MARK, "").strip()
    # a bare word mark is silent: CTC puts it anywhere in the pause before the word
    sounded = [u for u in members if pieces[tokens[u] - 1] != WORD_MARK] or members
    start = offset + float(spans[sounded[0], 0]) * FRAME_SECONDS
    end = offset + float(spans[sounded[-1], 1] + 1) * FRAME_SECONDS
    return Word(text, start, end, float(np.mean(probs[members])))
