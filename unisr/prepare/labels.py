"""Transcripts beside videos, in the layouts LRS2, LRS3 and VoxCeleb2 are downloaded in.

A video's same-name ``.txt`` is read as one of:

* **LRS2 / LRS3**: a first line ``Text:  SO I WAS VERY EXCITED``, then ``Conf:`` and, in the
  pretrain sets, a ``WORD START END ASDSCORE`` table of word times in seconds. The transcript is
  the ``Text:`` line with ``{`` and ``}`` removed (auto_avsr's convention);
* **VoxCeleb2**: ``Identity :``, ``Reference :``, ``Offset :`` and a ``FRAME X Y W H`` face-box
  table, no transcript: the clip is unlabelled;
* anything else: the whole file is the transcript (a user's own ``clip.txt``).

No ``.txt`` at all is an unlabelled clip too. Long clips with a word table are cut at word
boundaries into segments of at most :data:`SEGMENT_SECONDS` (auto_avsr's ``seg_duration``), so
that pre-training clips fit in memory, each segment with its own words.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..media import FPS, MediaError

SEGMENT_SECONDS = 24.0
WORD_TABLE_HEADER = ("WORD", "START", "END")
VOXCELEB_KEYS = re.compile(r"^(Identity|Reference|Offset)\s*:")


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # seconds
    end: float


@dataclass
class Labels:
    """What a clip's ``.txt`` says: its transcript (None: unlabelled) and word times if any."""

    text: str | None
    words: list[Word] = field(default_factory=list)


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, end)`` of a clip at 25 fps and their transcript."""

    start: int
    end: int
    text: str | None


def _clean(text: str) -> str:
    return " ".join(text.replace("{", "").replace("}", "").split())


def read_labels(video: Path) -> Labels:
    """The labels of ``video`` from its same-name ``.txt`` (unlabelled when there is none)."""
    path = video.with_suffix(".txt")
    if not path.is_file():
        return Labels(None)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise MediaError(path, f"transcript is not UTF-8 ({err.reason})") from None
    first = next((line for line in lines if line.strip()), "")
    if first.startswith("Text:"):
        return Labels(_clean(first[len("Text:") :]), _word_table(lines, path))
    if VOXCELEB_KEYS.match(first):
        return Labels(None)
    return Labels(" ".join(" ".join(lines).split()))


def _word_table(lines: list[str], path: Path) -> list[Word]:
    """The rows after a ``WORD START END ...`` header line (none when there is no header)."""
    header = next(
        (i for i, line in enumerate(lines) if tuple(line.split()[:3]) == WORD_TABLE_HEADER), None
    )
    if header is None:
        return []
    words = []
    for number, line in enumerate(lines[header + 1 :], start=header + 2):
        fields = line.split()
        if not fields:
            continue
        try:
            start, end = float(fields[1]), float(fields[2])
        except (IndexError, ValueError):
            raise MediaError(
                path, f"line {number}: expected 'WORD START END', got {line!r}"
            ) from None
        if not 0 <= start <= end:
            raise MediaError(path, f"line {number}: word times {start} .. {end} out of order")
        words.append(Word(_clean(fields[0]), start, end))
    return words


def segments(labels: Labels, frames: int, limit: float = SEGMENT_SECONDS) -> list[Segment]:
    """The clip as it is (one segment) when it is at most ``limit`` seconds long or has no word
    table; else runs of whole words, each at most ``limit`` seconds from its first word's start
    to its last word's end (a single longer word stays one segment)."""
    if not labels.words or limit <= 0 or frames <= limit * FPS:
        return [Segment(0, frames, labels.text)]
    runs: list[list[Word]] = [[]]
    for word in labels.words:
        if runs[-1] and word.end - runs[-1][0].start > limit:
            runs.append([])
        runs[-1].append(word)
    cut = []
    for run in runs:
        start = min(math.floor(run[0].start * FPS), frames)
        end = min(max(math.ceil(run[-1].end * FPS), start + 1), frames)
        if end > start:
            cut.append(Segment(start, end, " ".join(w.text for w in run if w.text)))
    return cut
