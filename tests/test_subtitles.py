"""Subtitles from hand-made transcription results: SRT and WebVTT parsed back and checked for
valid timing, line limits, greedy cue breaks and text that reads back the transcript."""

import json
import re
import textwrap

import pytest

from unisr.errors import UnisrError
from unisr.subtitles import (
    FORMATS,
    cues,
    formats_of,
    timestamp,
    to_json,
    to_srt,
    to_txt,
    to_vtt,
    write_outputs,
)

LONG = (
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG WHILE EVERYBODY ELSE WATCHES FROM A DISTANCE "
    "AND NOBODY SAYS ANYTHING ABOUT IT BECAUSE IT HAPPENS EVERY SINGLE MORNING AT EXACTLY "
    "SEVEN O'CLOCK IN THE UNREMARKABLE LITTLE VILLAGE BY THE SEA"
).split()
HUGE = "PNEUMONOULTRAMICROSCOPICSILICOVOLCANOCONIOSIS"  # 45 characters, longer than a line
STAMP = r"(\d{2,}):(\d\d):(\d\d)[,.](\d{3})"
TIMING = re.compile(rf"^{STAMP} --> {STAMP}$")


def segment(words: list[tuple[str, float, float]]) -> dict:
    return {
        "start": words[0][1],
        "end": words[-1][2],
        "text": " ".join(w for w, _, _ in words),
        "words": [{"word": w, "start": s, "end": e, "probability": 0.9} for w, s, e in words],
    }


def result_of(*segments: dict) -> dict:
    segments = [{"id": i, **s} for i, s in enumerate(segments)]
    return {
        "text": " ".join(s["text"] for s in segments),
        "segments": segments,
        "modality": "av",
        "duration": segments[-1]["end"] + 0.5 if segments else 0.0,
    }


def long_segment() -> dict:
    """40 words over 20 s, most 50 ms apart, some touching and one overlapping by 3 ms."""
    words = [(w, 0.5 * i, 0.5 * i + 0.45) for i, w in enumerate(LONG)]
    for i in (3, 4, 17, 30):
        words[i] = (words[i][0], words[i][1], words[i + 1][1])
    words[10] = (words[10][0], words[10][1], words[11][1] + 0.003)
    assert len(words) == 40 and words[-1][2] == pytest.approx(19.95)
    return segment(words)


def transcript() -> dict:
    pause = [("WELL", 21.0, 21.3), ("THEN", 21.3, 21.7), ("UM", 21.75, 22.0)]
    pause += [("LET'S", 24.5, 24.8), ("GO", 24.8, 25.1)]  # a 2.5 s pause before LET'S
    odd = [("A", 26.0, 26.0), ("SHORT", 26.0, 26.4), (HUGE, 26.5, 28.0), ("END", 28.0, 28.3)]
    wordless = {"start": 30.0, "end": 32.0, "text": "NO WORDS HERE"}
    return result_of(long_segment(), segment(pause), segment(odd), wordless)


def ms(groups: tuple[str, ...]) -> int:
    h, m, s, milli = map(int, groups)
    return ((h * 60 + m) * 60 + s) * 1000 + milli


def parse_blocks(body: str, numbered: bool) -> list[tuple[int, int, list[str]]]:
    """Cues as (start ms, end ms, lines), checking the layout: blocks one blank line apart,
    numbered 1..N when ``numbered``."""
    assert body.endswith("\n") and "\n\n\n" not in body
    parsed = []
    for i, block in enumerate(body[:-1].split("\n\n"), 1):
        lines = block.split("\n")
        if numbered:
            assert lines.pop(0) == str(i)
        timing = TIMING.match(lines.pop(0))
        assert timing, block
        parsed.append((ms(timing.groups()[:4]), ms(timing.groups()[4:]), lines))
    return parsed


def parse_srt(text: str) -> list[tuple[int, int, list[str]]]:
    return parse_blocks(text, numbered=True)


def parse_vtt(text: str) -> list[tuple[int, int, list[str]]]:
    assert text.startswith("WEBVTT\n\n")
    return parse_blocks(text[len("WEBVTT\n\n") :], numbered=False)


def wrap(words: list[str]) -> list[str]:
    """Greedy wrapping at 42 characters, a long word alone on its line (the standard library's,
    to check ours against)."""
    return textwrap.wrap(" ".join(words), 42, break_long_words=False, break_on_hyphens=False)


def check(parsed: list[tuple[int, int, list[str]]], result: dict) -> None:
    """Cues that a player accepts and that read back ``result`` word by word, broken greedily:
    each cue as long as the limits allow."""
    # (word, start ms, end ms, segment); a wordless segment's words all span the segment
    timed = []
    for k, seg in enumerate(result["segments"]):
        for w in seg.get("words") or [{"word": w, **seg} for w in seg["text"].split()]:
            timed.append((w["word"], round(w["start"] * 1000), round(w["end"] * 1000), k))
    assert parsed
    at = 0
    for i, (start, end, lines) in enumerate(parsed):
        assert end > start and end - start <= 7000
        assert 1 <= len(lines) <= 2 and all(line.strip() for line in lines)
        assert all(len(line) <= 42 or " " not in line for line in lines)
        after = parsed[i + 1][0] if i + 1 < len(parsed) else None
        if after is not None:
            assert after > start and end <= after
        words = " ".join(lines).split()
        mine = timed[at : at + len(words)]
        at += len(words)
        assert [w for w, *_ in mine] == words
        assert lines == wrap(words)
        assert len({k for *_, k in mine}) == 1, "a cue spans two segments"
        assert all(b[1] - a[2] <= 1000 for a, b in zip(mine, mine[1:]))
        before = parsed[i - 1][0] if i else -1
        assert start == max(mine[0][1], before + 1)
        wanted = max(mine[-1][2], start + 40)
        assert end == wanted or end == after < wanted
        if at < len(timed) and timed[at][3] == mine[0][3]:  # the next word could not join
            nxt = timed[at]
            assert (
                len(wrap([*words, nxt[0]])) > 2
                or max(nxt[2], mine[-1][2]) - mine[0][1] > 7000
                or nxt[1] - max(w[2] for w in mine) > 1000
            )
    assert at == len(timed)


def test_srt_and_vtt_are_valid_and_read_back_the_transcript():
    result = transcript()
    srt, vtt = parse_srt(to_srt(result)), parse_vtt(to_vtt(result))
    assert srt == vtt
    check(srt, result)
    assert " ".join(" ".join(lines) for *_, lines in srt).split() == result["text"].split()
    # the 24 s-style segment is split into several cues, the pause breaks a cue, the long word
    # is alone on its line
    assert sum(end <= 20_000 for _, end, _ in srt) == 3
    assert ["WELL THEN UM"] in [lines for *_, lines in srt]
    assert any(HUGE in lines for *_, lines in srt)
    assert max(len(line) for *_, lines in srt for line in lines if line != HUGE) > 30


def test_lines_wrap_greedily_at_word_boundaries():
    result = result_of(
        segment(
            [(w, i, i + 0.5) for i, w in enumerate("AAAA BBBB CCCC DDDD EEEEEEEEEEEE F".split())]
        )
    )
    got = cues(result, max_chars=10, max_lines=2)
    assert [c.lines for c in got] == [["AAAA BBBB", "CCCC DDDD"], ["EEEEEEEEEEEE", "F"]]
    assert [(c.start, c.end) for c in got] == [(0.0, 3.5), (4.0, 5.5)]


def test_cue_limits_by_duration_and_pause():
    words = [(f"W{i}", 0.9 * i, 0.9 * i + 0.8) for i in range(12)]
    got = cues(result_of(segment(words)), max_seconds=3.0)
    assert [len(c.text.split()) for c in got] == [3, 3, 3, 3]
    assert all(c.end - c.start <= 3.0 for c in got)
    paused = [("A", 0.0, 0.5), ("B", 1.5, 2.0), ("C", 3.01, 3.5)]
    assert [c.text for c in cues(result_of(segment(paused)))] == ["A B", "C"]


def test_degenerate_times_still_give_valid_cues():
    """A zero-length cue touching the next is kept and shortened to fit; cues that would start
    together are moved 1 ms apart; a short cue lasts 40 ms when there is room."""
    result = result_of(
        segment([("OK", 10.0, 10.0)]),
        segment([("SO", 10.0, 10.0), (HUGE, 10.0, 10.2), ("X" * 43, 10.2, 10.2)]),
        segment([("LATE", 12.0, 12.01)]),
    )
    got = [(c.start, c.end, c.text) for c in cues(result)]
    assert got == [
        (10.0, 10.001, "OK"),
        (10.001, 10.2, f"SO\n{HUGE}"),
        (10.2, 10.24, "X" * 43),
        (12.0, 12.04, "LATE"),
    ]
    check(parse_srt(to_srt(result)), result)


def test_segments_without_words_and_empty_results():
    result = result_of(
        {"start": 1.0, "end": 4.0, "text": " HELLO THERE "}, {"start": 5.0, "end": 6.0, "text": ""}
    )
    assert to_srt(result) == "1\n00:00:01,000 --> 00:00:04,000\nHELLO THERE\n"
    assert to_txt(result) == "HELLO THERE\n"
    empty = result_of()
    assert (to_srt(empty), to_vtt(empty), to_txt(empty)) == ("", "WEBVTT\n", "")


def test_vtt_escapes_markup():
    vtt = to_vtt(result_of(segment([("R&D", 0.0, 0.4), ("<3", 0.4, 0.8)])))
    assert vtt == "WEBVTT\n\n00:00:00.000 --> 00:00:00.800\nR&amp;D &lt;3\n"


def test_timestamps():
    assert timestamp(0) == "00:00:00,000"
    assert timestamp(3.4, ".") == "00:00:03.400"
    assert timestamp(59.9996) == "00:01:00,000"  # rounds up a unit, never to 1000 ms
    assert timestamp(3599.9999, ".") == "01:00:00.000"
    assert timestamp(3723.0456) == "01:02:03,046"
    assert timestamp(360_000.5) == "100:00:00,500"


def test_txt_and_json():
    result = transcript()
    txt = to_txt(result)
    assert txt.endswith("\n") and txt.splitlines() == [s["text"] for s in result["segments"]]
    assert json.loads(to_json(result)) == result
    assert "É" in to_json(result_of(segment([("ÉTÉ", 0.0, 0.5)])))


def test_write_outputs(tmp_path):
    result = transcript()
    out = tmp_path / "new" / "dir"
    paths = write_outputs(result, out, "clip", ["all"])
    assert paths == [out / f"clip.{fmt}" for fmt in FORMATS]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)
    assert (out / "clip.srt").read_text(encoding="utf-8") == to_srt(result)
    assert json.loads((out / "clip.json").read_text(encoding="utf-8")) == result
    assert write_outputs(result, out, "other", ["srt", "vtt", "srt"]) == [
        out / "other.srt",
        out / "other.vtt",
    ]
    assert write_outputs(result, out, "one", "txt") == [out / "one.txt"]


def test_unknown_formats_are_refused_before_writing(tmp_path):
    with pytest.raises(UnisrError, match=r"'docx'.*txt, srt, vtt, json or all"):
        write_outputs(transcript(), tmp_path / "out", "clip", ["srt", "docx"])
    assert not (tmp_path / "out").exists()
    assert formats_of("all") == FORMATS and formats_of("vtt") == ("vtt",)
    with pytest.raises(UnisrError, match="'SRT'"):
        formats_of("SRT")
