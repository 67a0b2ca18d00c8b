"""Long inputs cut into segments the model can decode, at pauses the model itself finds.

The model is trained on clips of a few seconds (the official ones on at most 24 s) and falls
apart on minutes decoded whole. A first pass labels every frame with its greedy CTC label,
encoding the input in overlapping windows of the segment length and keeping each window's
centre. A pause is a run of blank frames (CTC emits a token on a frame or two and blanks between
them, so only runs of a few frames count; one followed by a word's first token is preferred).
Each segment ends in the middle of the longest pause in the second half of the frames it may
span (else in the first); where speech runs on with no pause, the cut is forced and the two
segments overlap, each keeping the words whose centre lies on its side of the overlap's middle
(:func:`owned`). Silences of a second or more are left out, but for a little either side of the
speech. The labels come from the audio head wherever there is sound; a video without sound is
cut where the lips move least (:func:`lip_motion`), because the lip-reading head places its
tokens too far from where the words are said.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UnisrError

DEFAULT_MAX_FRAMES = 600  # 24 s, the official training limit: for models that store none
OVERLAP_FRAMES = 50  # a forced cut's overlap (2 s), or a third of a shorter segment
MIN_FRAMES = 25  # the shortest segment length accepted (1 s)
SILENCE_FRAMES = 25  # blank runs this long (1 s) or longer are silence, not decoded ...
PAD_FRAMES = 8  # ... but for this much of it either side of speech (0.32 s)
MIN_PAUSE_FRAMES = 3  # shorter blank runs are the gaps between a word's tokens, not pauses


@dataclass(frozen=True)
class Pause:
    """Blank frames ``[first, end)``; ``before_word``: the next label starts a word."""

    first: int
    end: int
    before_word: bool


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, end)`` of an input, decoded as one utterance; the words whose centre
    lies in ``[own_start, own_end)`` are this segment's (the rest belong to a neighbour that
    overlaps it)."""

    start: int
    end: int
    own_start: int
    own_end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


def windows(frames: int, size: int) -> list[tuple[int, int, int, int]]:
    """Overlapping windows ``(start, end, keep_start, keep_end)`` covering ``frames`` for the
    first pass: each keeps its centre, a quarter of ``size`` away from its edges, except at the
    input's ends."""
    if frames <= size:
        return [(0, frames, 0, frames)]
    margin = size // 4
    hop = size - 2 * margin
    out, start = [], 0
    while True:
        end = min(start + size, frames)
        keep_start = 0 if start == 0 else start + margin
        if end == frames:
            out.append((start, end, keep_start, frames))
            return out
        out.append((start, end, keep_start, start + margin + hop))
        start += hop


def pauses(labels: np.ndarray, word_start: np.ndarray, blank: int = 0) -> list[Pause]:
    """Runs of at least ``MIN_PAUSE_FRAMES`` blank frames in per-frame labels (T,), each with
    whether the label after it starts a word (``word_start[i]``: id ``i`` begins a word) or the
    input ends there."""
    is_blank = labels == blank
    edges = np.flatnonzero(np.diff(np.concatenate(([0], is_blank.astype(np.int8), [0]))))
    return [
        Pause(first, end, end == len(labels) or bool(word_start[labels[end]]))
        for first, end in zip(edges[::2].tolist(), edges[1::2].tolist())
        if end - first >= MIN_PAUSE_FRAMES
    ]


def speech_spans(labels: np.ndarray, blank: int = 0) -> list[tuple[int, int]]:
    """Stretches ``[start, end)`` with labels, split at silences of ``SILENCE_FRAMES`` or more
    and kept with ``PAD_FRAMES`` of that silence on either side: long silences (or a video
    without a face) are never decoded."""
    spoken = np.flatnonzero(labels != blank)
    if len(spoken) == 0:
        return []
    breaks = np.flatnonzero(np.diff(spoken) > SILENCE_FRAMES)
    firsts = spoken[np.concatenate(([0], breaks + 1))]
    lasts = spoken[np.concatenate((breaks, [len(spoken) - 1]))]
    return [(max(0, int(f) - PAD_FRAMES), min(len(labels), int(e) + 1 + PAD_FRAMES))
            for f, e in zip(firsts, lasts)]  # fmt: skip


def lip_motion(frames: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """How much the lips move at each frame of mouth crops (T, H, W): the mean absolute change
    from the frame before, averaged over 5 frames. Computed in chunks, so an hour of uint8
    frames is never held as float."""
    frames = np.asarray(frames)
    motion = np.zeros(len(frames), dtype=np.float32)
    for start in range(1, len(frames), chunk):
        part = frames[start - 1 : start + chunk].astype(np.float32)
        motion[start : start + chunk] = np.abs(np.diff(part, axis=0)).mean(axis=(1, 2))
    return np.convolve(motion, np.ones(5) / 5, mode="same")


def _stillest(motion: np.ndarray, lo: int, hi: int) -> int:
    """The middle of the stillest stretch of frames ``[lo, hi]``: the run around the least
    motion that stays within a quarter of the way from it to the window's median."""
    window = motion[lo : hi + 1]
    best = len(window) - 1 - int(np.argmin(window[::-1]))  # of equals, the latest
    still = window <= window[best] + 0.25 * (np.median(window) - window[best])
    first, last = best, best
    while first > 0 and still[first - 1]:
        first -= 1
    while last < len(window) - 1 and still[last + 1]:
        last += 1
    return lo + (first + last + 1) // 2


def plan(
    labels: np.ndarray,
    word_start: np.ndarray,
    max_frames: int,
    blank: int = 0,
    motion: np.ndarray | None = None,
) -> list[Segment]:
    """Segments of at most ``max_frames`` covering the speech (:func:`speech_spans`) in
    per-frame greedy CTC labels (T,), cut at pauses (see the module docstring). A forced cut's
    overlap must hold any word that straddles it. With ``motion`` (:func:`lip_motion`), a
    segment ends instead where the lips move least in the second half of its frames."""
    if max_frames < MIN_FRAMES:
        raise UnisrError(f"segments of {max_frames} frames are too short: at least {MIN_FRAMES}")
    overlap = min(OVERLAP_FRAMES, max_frames // 3)
    # the longest pause wins; one before a word's first token is worth a little more
    cuts = [((p.first + p.end) // 2, p.end - p.first + 0.5 * p.before_word)
            for p in pauses(labels, word_start, blank)]  # fmt: skip
    segments: list[Segment] = []
    for start, total in speech_spans(labels, blank):
        own_start = start
        while total - start > max_frames:
            hi = start + max_frames
            if motion is not None:
                cut = _stillest(motion, start + max_frames // 2, hi)
            else:
                inside = [(n, c) for c, n in cuts if start + max_frames // 2 <= c <= hi]
                inside = inside or [(n, c) for c, n in cuts if start < c <= hi]
                cut = max(inside)[1] if inside else None  # the longest; of equals, the latest
            if cut is not None:
                segments.append(Segment(start, cut, own_start, cut))
                start = own_start = cut
            else:  # no pause: overlap, and split ownership in the overlap's middle
                end = start + max_frames
                middle = end - overlap // 2
                segments.append(Segment(start, end, own_start, middle))
                start, own_start = end - overlap, middle
        segments.append(Segment(start, total, own_start, total))
    return [s for s in segments if (labels[s.start : s.end] != blank).any()]


def owned(segment: Segment, start: int, end: int) -> bool:
    """Whether a word on frames ``[start, end)`` of the input belongs to ``segment``."""
    centre = (start + end) / 2
    return segment.own_start <= centre < segment.own_end
