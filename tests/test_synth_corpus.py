"""The synthetic corpus builder (unisr.synth.corpus) on its reduced "test" size."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_synth_mouth import mouth_opening

from unisr.errors import UnisrError
from unisr.manifest import read_manifest, read_usr_csv
from unisr.media import read_audio, read_video, read_video_audio
from unisr.synth.corpus import (
    OOD_ACCENTS,
    OOD_VARIANTS,
    SIZES,
    SPLITS,
    TRAIN_ACCENTS,
    TRAIN_VARIANTS,
    build_corpus,
    plan_corpus,
    write_preview,
)
from unisr.tokenizer import Tokenizer

IN_DOMAIN = ("train_labelled", "train_unlabelled", "val", "test")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "corpus"
    summary = build_corpus(out, size="test", domain="grid", seed=0, workers=1, progress=False)
    return out, summary


def _rows(out: Path, split: str):
    return read_manifest(out / f"{split}.tsv")


def test_every_row_loads_with_matching_lengths(corpus):
    out, summary = corpus
    tokenizer = Tokenizer.from_sentencepiece(out / "tokenizer.model")
    ids = set()
    for split in SPLITS:
        rows = _rows(out, split)
        assert len(rows) == SIZES["test"].counts[split] == summary["splits"][split]["utterances"]
        usr = read_usr_csv(out / f"{split}.csv")
        assert [(r.frames, r.tokens) for r in usr] == [(r.frames, r.tokens) for r in rows]
        for row in rows:
            frames, fps = read_video(row.video)
            audio = read_audio(row.audio)
            assert frames.shape == (row.frames, 96, 96) and frames.dtype == np.uint8
            assert fps == 25 and len(audio) == row.frames * 640
            assert row.tokens and max(row.tokens) < tokenizer.vocab_size - 1  # no sos/eos
            if split == "train_labelled":  # the tokenizer was trained on exactly this text
                assert tokenizer.decode(row.tokens) == row.text
            assert row.split == split and row.speaker and row.id not in ids
            ids.add(row.id)
            meta = json.loads(Path(row.video).with_suffix(".json").read_text())
            assert meta["frames"] == row.frames and meta["text"] == row.text
            assert meta["phones"][-1][2] <= row.frames / 25 + 1e-3


def test_split_structure(corpus):
    out, summary = corpus
    speakers = {s["id"]: s for s in json.loads((out / "speakers.json").read_text())}
    by_split = {split: {r.speaker for r in _rows(out, split)} for split in SPLITS}
    train = by_split["train_labelled"] | by_split["train_unlabelled"]
    for split in ("val", "test", "test_long", "test_ood"):
        assert not train & by_split[split], f"{split} shares speakers with training"
    for sid in train:
        voice = speakers[sid]["voice"]
        assert voice["language"] in TRAIN_ACCENTS and voice["variant"] in TRAIN_VARIANTS
    for sid in by_split["test_ood"]:  # unseen voices (accent and variant) and unusual faces
        voice = speakers[sid]["voice"]
        assert voice["language"] in OOD_ACCENTS and voice["variant"] in OOD_VARIANTS
    assert summary["splits"]["test_ood"]["domains"] == {"open": 3}  # the other text domain
    assert summary["splits"]["train_labelled"]["domains"] == {"grid": 8}
    longest = summary["longest_labelled_frames"]
    long_frames = [r.frames for r in _rows(out, "test_long")]
    assert max(long_frames) >= 4 * longest
    labelled_text = {r.text for r in _rows(out, "train_labelled")}
    assert not labelled_text & {r.text for r in _rows(out, "test")}  # held-out sentences
    babble = read_audio(out / "noise" / "babble.wav")
    assert len(babble) == SIZES["test"].babble_seconds * 16000
    assert 0.05 < np.sqrt(np.mean(babble**2)) < 0.2
    assert summary["babble"]["speakers"] >= 8
    assert sum(s["pool"] == "babble" for s in speakers.values()) >= 8


def test_real_sizes_have_the_intended_structure():
    """Planned (not rendered) tiny corpus: a learnable grid vocabulary in the labelled pool and
    about ten times as much unlabelled speech (counted in sentences, which are ~equally long)."""
    plan = plan_corpus(size="tiny", domain="grid", seed=0)
    sentences = {s: 0 for s in SPLITS}
    words = set()
    for utt in plan.utterances:
        sentences[utt.split] += len(utt.sentences)
        if utt.split == "train_labelled":
            words |= set(utt.text.split())
    assert sentences["train_unlabelled"] >= 9 * sentences["train_labelled"]
    assert len(words) == 51  # every word of the grammar is seen with a label
    for size in ("tiny", "small", "medium"):
        counts = SIZES[size].counts
        assert counts["train_unlabelled"] >= 6 * counts["train_labelled"]
    base = SIZES["base"]  # the benchmark's size: single sentences, three times the labelled
    assert base.counts["train_unlabelled"] == 3 * base.counts["train_labelled"]
    assert base.multi_sentence == 0.0


def test_mouth_opening_follows_speech_energy(corpus):
    """Per utterance, the mouth opening measured on the frames correlates with the frame's
    speech energy (dB). Threshold 0.35: natural speech shows mouth-area/envelope correlations of
    about 0.3-0.6 (Chandrasekaran et al., PLoS Comput Biol 2009), so a renderer driven by the
    audio's own phone timings must reach that range; video shifted by half its length against
    the audio (same statistics, broken alignment) must fall to about zero."""
    aligned, shifted = [], []
    for split in IN_DOMAIN:
        for row in _rows(corpus[0], split):
            opening = mouth_opening(read_video(row.video)[0])
            audio = read_audio(row.audio).reshape(row.frames, 640)
            energy = 10 * np.log10(np.mean(audio**2, axis=1) + 1e-10)
            aligned.append(np.corrcoef(opening, energy)[0, 1])
            shifted.append(np.corrcoef(opening, np.roll(energy, row.frames // 2))[0, 1])
    assert np.mean(aligned) >= 0.35
    assert np.mean(shifted) < 0.1


def test_deterministic_for_a_seed_whatever_the_workers(corpus, tmp_path):
    out, _ = corpus
    again = tmp_path / "again"
    build_corpus(again, size="test", domain="grid", seed=0, workers=2, progress=False, limit=6)
    built = sorted((again / "train_labelled").glob("*.mp4"))
    assert len(built) == 6
    for mp4 in built:
        ref = out / "train_labelled" / mp4.name
        assert np.array_equal(read_video(mp4)[0], read_video(ref)[0])
        assert mp4.with_suffix(".wav").read_bytes() == ref.with_suffix(".wav").read_bytes()
        assert mp4.with_suffix(".json").read_text() == ref.with_suffix(".json").read_text()
    other = tmp_path / "other"
    build_corpus(other, size="test", domain="grid", seed=1, workers=1, progress=False, limit=1)
    first = "train_labelled/train_labelled_000000.wav"
    assert (other / first).read_bytes() != (out / first).read_bytes()
    assert plan_corpus("test", "grid", 0).utterances == plan_corpus("test", "grid", 0).utterances
    assert plan_corpus("test", "grid", 0).utterances != plan_corpus("test", "grid", 1).utterances


def test_rerun_after_kill_completes_without_duplicates_or_corrupt_files(corpus, tmp_path):
    ref, _ = corpus
    out = tmp_path / "killed"
    code = (
        "from unisr.synth.corpus import build_corpus; "
        f"build_corpus({str(out)!r}, size='test', domain='grid', seed=0, workers=1, "
        "progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1])
    deadline = time.time() + 120
    while len(list(out.glob("train_labelled/*.mp4"))) < 4:
        assert proc.poll() is None, "the build ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: possibly in the middle of writing a file
    proc.wait()
    assert not (out / "summary.json").exists()
    # make the damage certain: a half-written temporary file and an utterance missing its video
    (out / "train_labelled" / ".train_labelled_000001.partial.mp4").write_bytes(b"\0" * 100)
    (out / "train_labelled" / "train_labelled_000001.mp4").unlink()

    summary = build_corpus(out, size="test", domain="grid", seed=0, workers=2, progress=False)
    assert summary["repaired_partial_files"] >= 1
    assert not list(out.rglob(".*.partial.*"))
    for split in SPLITS:
        rows = _rows(out, split)
        assert len({r.id for r in rows}) == len(rows) == SIZES["test"].counts[split]
        assert len(list((out / split).glob("*.mp4"))) == len(rows)
        for row in rows:
            mine, theirs = Path(row.audio), ref / split / Path(row.audio).name
            assert mine.read_bytes() == theirs.read_bytes()
            assert np.array_equal(
                read_video(row.video)[0], read_video(theirs.with_suffix(".mp4"))[0]
            )


def test_rebuilding_with_other_settings_is_refused(corpus):
    with pytest.raises(UnisrError, match="another --out"):
        build_corpus(corpus[0], size="test", domain="grid", seed=5, progress=False)


def test_preview(corpus):
    from PIL import Image

    png, mp4 = write_preview(corpus[0])
    sheet = Image.open(png)
    assert sheet.width >= 1000 and sheet.height >= 300
    frames, _ = read_video(mp4)
    audio, rate = read_video_audio(mp4)
    assert frames.shape[1] >= 192 and rate == 16000
    assert len(audio) == pytest.approx(len(frames) * 640, abs=640)
