"""Long inputs: cut into segments at pauses the model finds (or overlapped where there is none),
words timed by forced alignment on the CTC head, and whole transcripts that lose or double no
word at a cut."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_corpus import WORDS

from unisr.align import forced_align, words_of
from unisr.errors import UnisrError
from unisr.evaluate import word_errors
from unisr.segment import Segment, owned, pauses, plan, windows
from unisr.transcribe import transcribe

PIECES = ["\u2581A", "B", "\u2581C", "\u2581D"]  # ids 1..4; "AB" is one word


def peaked(path: list[int], vocab: int = 6, sharp: float = 8.0) -> np.ndarray:
    """Log-probabilities (T, V) whose best label on frame t is ``path[t]``."""
    logits = np.zeros((len(path), vocab))
    logits[np.arange(len(path)), path] = sharp
    return logits - np.log(np.exp(logits).sum(1, keepdims=True))


def test_forced_alignment_finds_each_token_where_it_is_said():
    logp = peaked([0, 1, 1, 0, 2, 0, 0, 3, 3, 3, 0])
    spans = forced_align(logp, [1, 2, 3])
    assert spans.tolist() == [[1, 2, 1], [4, 4, 4], [7, 9, 7]]


def test_forced_alignment_puts_a_blank_between_repeats_and_refuses_what_cannot_fit():
    spans = forced_align(peaked([2, 2, 0, 2]), [2, 2])
    assert spans[0, 1] < spans[1, 0]  # two tokens, not one long one
    assert forced_align(peaked([2, 2]), [2, 2]) is None  # needs a blank between: 3 frames
    assert forced_align(peaked([1, 2]), [1, 2, 3]) is None


def test_words_join_pieces_and_carry_times_and_probabilities():
    path = [0, 1, 0, 2, 0, 0, 3, 0, 4, 4]
    words = words_of([1, 2, 3, 4], PIECES, peaked(path), offset=10.0)
    assert [w.word for w in words] == ["AB", "C", "D"]
    assert words[0].start == pytest.approx(10.04) and words[0].end == pytest.approx(10.16)
    assert words[2].start == pytest.approx(10.32) and words[2].end == pytest.approx(10.40)
    assert all(0.99 < w.probability <= 1.0 for w in words)
    # a hypothesis that cannot be aligned is spread over the frames, with no confidence
    spread = words_of([1, 2, 3, 4], PIECES, peaked([1, 2, 3]))
    assert [w.word for w in spread] == ["AB", "C", "D"] and spread[-1].probability == 0.0
    assert [w.start for w in spread] == sorted(w.start for w in spread)


def test_windows_tile_the_input_with_their_centres():
    for frames, size in ((1000, 100), (99, 100), (257, 60)):
        parts = windows(frames, size)
        assert all(end - start <= size for start, end, _, _ in parts)
        kept = [(a, b) for _, _, a, b in parts]
        assert kept[0][0] == 0 and kept[-1][1] == frames
        assert all(b == a2 for (_, b), (a2, _) in zip(kept, kept[1:]))
        assert all(s <= a < b <= e for s, e, a, b in parts)


STARTS = np.array([False, True, False, True, True, False])  # per id: blank, A, b, C, D, eos


def test_pauses_are_blank_runs_of_a_few_frames_marked_when_a_word_follows():
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 2, 0, 3, 0, 0, 0, 0, 3, 0, 0, 0])
    assert [(p.first, p.end, p.before_word) for p in pauses(labels, STARTS)] == [
        (0, 3, True),
        (4, 7, False),  # before "b", the rest of a word
        (10, 14, True),
        (15, 18, True),  # the input ends
    ]  # the single blank at 8 is the gap between two tokens


def test_segments_end_at_the_longest_pause_and_never_exceed_the_limit():
    rng = np.random.default_rng(0)
    labels, truth_cuts = [], []
    for _ in range(30):  # sentences of 20-40 frames of words, pauses of 2-10 blanks
        for _ in range(int(rng.integers(4, 9))):
            labels += [3] + [0] * int(rng.integers(1, 3)) + [2] * int(rng.integers(1, 2))
        gap = int(rng.integers(2, 11))
        labels += [0] * gap
        truth_cuts.append(len(labels) - gap // 2 - 1)
    labels = np.array(labels)
    segments = plan(labels, STARTS, max_frames=60)
    assert segments[0].start == 0 and segments[-1].end == len(labels)
    for a, b in zip(segments, segments[1:]):
        assert a.end == b.start and a.own_end == b.own_start  # cut at a pause: no overlap
        assert labels[a.end] == 0 and labels[a.end - 1] == 0  # inside a blank run
        assert b.end - b.start <= 60
    # each cut is in the middle of a blank run that ends at a word start
    for s in segments[:-1]:
        run_end = s.end + np.argmax(labels[s.end :] != 0)
        assert STARTS[labels[run_end]]


def test_speech_without_pause_is_cut_with_an_overlap_and_each_word_kept_once():
    labels = np.array(([3, 2, 2, 2] * 100)[:390])  # words every 4 frames, no pause
    segments = plan(labels, STARTS, max_frames=100)
    assert all(s.frames <= 100 for s in segments)
    assert segments[-1].end == len(labels)
    for a, b in zip(segments, segments[1:]):
        assert b.start < a.end  # overlapped
        assert a.own_end == b.own_start and b.start <= b.own_start <= a.end
    # every word (frames [4k, 4k + 3)) is owned by exactly one segment
    for k in range(len(labels) // 4):
        assert sum(owned(s, 4 * k, 4 * k + 3) for s in segments) == 1


def test_silent_stretches_are_not_decoded_and_short_limits_are_refused():
    labels = np.zeros(500, dtype=np.int64)
    labels[10:20], labels[400:410] = 3, 4
    segments = plan(labels, STARTS, max_frames=100)
    assert all((labels[s.start : s.end] != 0).any() for s in segments)
    assert sum(s.frames for s in segments) < 300
    with pytest.raises(UnisrError, match="too short"):
        plan(labels, STARTS, max_frames=10)
    assert plan(labels[:50], STARTS, 100) == [Segment(2, 28, 2, 28)]  # speech and 8 frames


@pytest.fixture(scope="module")
def joined(fitted):
    """The held-out clips of the fitted model joined into one input, with each word's true
    frames (every word of those clips lasts 4 frames)."""
    videos, audios = held_out_clips(fitted)
    video, audio = torch.cat(videos), torch.cat(audios)
    words = " ".join(fitted.references).split()
    return video, audio, words, np.arange(len(words)) * 4


def held_out_clips(fitted) -> tuple[list, list]:
    batch = fitted.held_out
    lengths = batch.lengths.tolist()
    return (
        [batch.video[i, :n] for i, n in enumerate(lengths)],
        [batch.audio[i, : n * 640] for i, n in enumerate(lengths)],
    )


@pytest.mark.parametrize("method", ["ctc", "beam"])
def test_a_long_input_is_cut_into_timed_segments_within_the_limit(fitted, joined, method):
    video, audio, words, starts = joined
    assert set(words) <= set(WORDS) and len(video) == 4 * len(words)
    model = fitted.model
    model.max_frames = 40  # 1.6 s segments: the joined input (7 s) needs 4 or more
    try:
        result = transcribe(model, video, audio, "av", method=method, beam_size=4)
    finally:
        model.max_frames = 600
    assert result["duration"] == pytest.approx(len(video) / 25)
    assert len(result["segments"]) >= 4
    assert all(s["end"] - s["start"] <= 40 / 25 + 1e-6 for s in result["segments"])
    timed = [w for s in result["segments"] for w in s["words"]]
    assert [w["start"] for w in timed] == sorted(w["start"] for w in timed)
    assert result["text"] == " ".join(s["text"] for s in result["segments"])
    assert all(s["text"] == " ".join(w["word"] for w in s["words"]) for s in result["segments"])
    if method == "ctc":  # the toy model's one-layer decoder knows 2-4 word clips only
        clips = transcribe(model, *held_out_clips(fitted), "av", method=method)
        reference = [" ".join(words)]
        clip_errors, total = word_errors(reference, [" ".join(c["text"] for c in clips)])
        long_errors, _ = word_errors(reference, [result["text"]])
        assert long_errors <= clip_errors + 0.1 * total, (long_errors, clip_errors, result)
        # each recognised word starts within one frame of a true start of the same word
        true = {(w, round(s / 25, 2)) for w, s in zip(words, starts)}
        near = sum(
            any((w["word"], round(w["start"] + d, 2)) in true for d in (-0.04, 0.0, 0.04))
            for w in timed
        )
        assert near >= 0.8 * len(timed), timed


@pytest.mark.parametrize("method", ["ctc", "greedy", "beam"])
def test_short_inputs_transcribe_as_they_decode_whole(fitted, method):
    """An input within the limit is one segment: the text is the whole-utterance decoding's."""
    videos, audios = held_out_clips(fitted)
    results = transcribe(fitted.model, videos, audios, "av", method=method, beam_size=4)
    hyps = fitted.model.decode(videos, audios, "av", method=method, beam_size=4)
    assert [r["text"] for r in results] == [h[0].text for h in hyps]
    assert all(len(r["segments"]) <= 1 for r in results)
    one = transcribe(fitted.model, videos[0], audios[0], "av", method=method, beam_size=4)
    assert one == results[0]


def test_a_stretch_without_a_face_is_a_gap_in_the_video_stream(fitted, monkeypatch):
    """Black crops (where the face crop found no face) are read as no video: even a model that
    hears words everywhere gets no segment inside them."""
    from train_corpus import _clip

    from unisr.transcribe import _plan, load_source

    rng = np.random.default_rng(3)
    frames, _ = _clip(list(rng.choice(WORDS, size=20)), rng)
    video = np.concatenate([frames[:40], np.zeros((100, 96, 96), np.uint8), frames[40:]])
    model = fitted.model
    source = load_source(model, video, None, ("v",))
    word = next(i + 1 for i, p in enumerate(model.tokenizer.pieces) if p.startswith("\u2581"))
    talkative = torch.full((model.config.vocab_size,), -10.0)
    talkative[word] = 0.0
    monkeypatch.setattr(model, "ctc_logits", lambda x, stream: talkative.expand(*x.shape[:2], -1))
    segments = _plan(model, source, "v", 40)
    assert not [s for s in segments if s.start < 120 and s.end > 60]  # frames 40-140 are black
    assert segments[0].start == 0 and segments[-1].end == len(video)


def test_a_video_is_cut_where_the_lips_are_still():
    """Without sound, cuts follow lip motion: synthetic 'sentences' of moving frames between
    still stretches are each decoded whole."""
    from unisr.segment import lip_motion

    rng = np.random.default_rng(0)
    parts, stills = [], []
    for _ in range(12):
        speech = rng.integers(0, 255, (int(rng.integers(40, 60)), 8, 8), dtype=np.uint8)
        pause = np.repeat(speech[-1:], int(rng.integers(6, 12)), axis=0)
        start = sum(len(p) for p in parts) + len(speech)
        stills.append((start + 1, start + len(pause)))
        parts += [speech, pause]
    frames = np.concatenate(parts)
    motion = lip_motion(frames, chunk=7)  # chunks must not change it
    assert np.allclose(motion, lip_motion(frames))
    labels = np.full(len(frames), 3)  # a model that hears words everywhere
    segments = plan(labels, STARTS, max_frames=83, motion=motion)
    assert all(s.frames <= 83 for s in segments)
    for a, b in zip(segments, segments[1:]):
        assert a.end == b.start
        assert any(lo <= a.end <= hi for lo, hi in stills), (a, stills)
