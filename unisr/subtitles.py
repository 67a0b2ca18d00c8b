"""Transcripts and subtitles from a transcription result: plain text, SRT, WebVTT and JSON.

A segment can run for 24 s, too long to read as one caption, so subtitle cues are built from the
timed words instead. A segment's words are packed greedily into cues of at most ``max_lines``
lines of ``max_chars`` characters (the usual broadcast limits); a new cue starts when the next
word would not fit, would make the cue last longer than ``max_seconds``, or follows a pause longer
than ``max_gap``. Cue times are then made valid for players, which reject or misplay odd ones: on
the millisecond grid the files use, every cue starts after the one before, lasts at least 40 ms
and ends no later than the next one starts.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import UnisrError
from .files import atomic_write

FORMATS = ("txt", "srt", "vtt", "json")
MIN_CUE_MS = 40


@dataclass
class Cue:
    """One subtitle: shown from ``start`` to ``end`` (seconds), its text as lines."""

    start: float
    end: float
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _add_word(lines: list[str], word: str, max_chars: int) -> list[str]:
    """``lines`` with ``word`` appended: on the last line if it still fits, else on a new one
    (so a word longer than ``max_chars`` gets a line of its own)."""
    if lines and len(lines[-1]) + 1 + len(word) <= max_chars:
        return [*lines[:-1], f"{lines[-1]} {word}"]
    return [*lines, word]


def _segment_cues(
    segment: dict, max_chars: int, max_lines: int, max_seconds: float, max_gap: float
) -> list[Cue]:
    """The cues of one segment, times as given: from its words, or one cue for the whole
    segment when it has text but no words."""
    words = [w for w in segment.get("words") or [] if w["word"].strip()]
    if not words:
        lines: list[str] = []
        for word in segment.get("text", "").split():
            lines = _add_word(lines, word, max_chars)
        return [Cue(segment["start"], segment["end"], lines)] if lines else []
    found: list[Cue] = []
    for w in words:
        word = w["word"].strip()
        if found:
            cue = found[-1]
            lines = _add_word(cue.lines, word, max_chars)
            end = max(cue.end, w["end"])
            if (
                len(lines) <= max_lines
                and end - cue.start <= max_seconds
                and w["start"] - cue.end <= max_gap
            ):
                cue.lines, cue.end = lines, end
                continue
        found.append(Cue(w["start"], w["end"], [word]))
    return found


def _valid_times(found: list[Cue]) -> list[Cue]:
    """``found`` on the millisecond grid, each cue starting at least 1 ms after the one before,
    lasting at least :data:`MIN_CUE_MS`, and ending no later than the next one starts."""
    starts: list[int] = []
    for cue in found:
        starts.append(max(round(cue.start * 1000), starts[-1] + 1 if starts else 0))
    ends = [max(round(cue.end * 1000), start + MIN_CUE_MS) for cue, start in zip(found, starts)]
    ends = [min(end, after) for end, after in zip(ends, starts[1:])] + ends[-1:]
    return [Cue(s / 1000, e / 1000, cue.lines) for s, e, cue in zip(starts, ends, found)]


def cues(
    result: dict,
    max_chars: int = 42,
    max_lines: int = 2,
    max_seconds: float = 7.0,
    max_gap: float = 1.0,
) -> list[Cue]:
    """Subtitle cues for a transcription result: its segments' words packed into cues (never
    across segments) as the module docstring says, with valid, non-overlapping times."""
    found = [
        cue
        for segment in result["segments"]
        for cue in _segment_cues(segment, max_chars, max_lines, max_seconds, max_gap)
    ]
    return _valid_times(found)


def timestamp(seconds: float, sep: str = ",") -> str:
    """``seconds`` as ``HH:MM:SS,mmm`` (SRT; ``sep="."`` for WebVTT), rounded to milliseconds;
    hours take more than two digits when needed."""
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def to_txt(result: dict) -> str:
    """The transcript as plain text, one line per segment."""
    return "".join(f"{s['text'].strip()}\n" for s in result["segments"] if s["text"].strip())


def to_srt(result: dict) -> str:
    """The transcript as SubRip subtitles."""
    return "\n".join(
        f"{i}\n{timestamp(cue.start)} --> {timestamp(cue.end)}\n{cue.text}\n"
        for i, cue in enumerate(cues(result), 1)
    )


def to_vtt(result: dict) -> str:
    """The transcript as WebVTT subtitles (``&``, ``<`` and ``>`` escaped, as cue text is
    markup)."""
    blocks = [
        f"{timestamp(c.start, '.')} --> {timestamp(c.end, '.')}\n{html.escape(c.text, False)}\n"
        for c in cues(result)
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def to_json(result: dict) -> str:
    """The result as it is, as JSON."""
    return json.dumps(result, ensure_ascii=False, indent=2) + "\n"


WRITERS = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "json": to_json}


def formats_of(name: str) -> tuple[str, ...]:
    """The output formats a name stands for: one of :data:`FORMATS`, or ``all`` of them."""
    if name == "all":
        return FORMATS
    if name in FORMATS:
        return (name,)
    raise UnisrError(f"unknown output format {name!r}: use one of {', '.join(FORMATS)} or all")


def write_outputs(
    result: dict, out_dir: str | Path, stem: str, formats: str | Sequence[str]
) -> list[Path]:
    """Write ``result`` to ``out_dir/stem.<format>`` for each format (``all`` for every one),
    each file whole or not at all; return the paths written. Every format is checked before
    anything is written."""
    names = (formats,) if isinstance(formats, str) else formats
    chosen = dict.fromkeys(fmt for name in names for fmt in formats_of(name))
    paths = []
    for fmt in chosen:
        path = Path(out_dir) / f"{stem}.{fmt}"
        atomic_write(path, WRITERS[fmt](result))
        paths.append(path)
    return paths
