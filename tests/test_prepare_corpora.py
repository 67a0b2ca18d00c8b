"""``unisr prepare`` on folders laid out as LRS2 / LRS3 / VoxCeleb2 are downloaded: transcripts
from ``Text:`` lines, long pretrain clips cut at word boundaries, VoxCeleb2 metadata as an
unlabelled clip, the auto_avsr CSV, and sharding over jobs. Faces come from the stand-in
landmarker of test_prepare_roi (no mediapipe needed)."""

import json

import numpy as np
import pytest
import soundfile as sf
from test_prepare_roi import TO_SOURCE, StandIn, _pattern, _render

from unisr import cli, media
from unisr.manifest import load_manifest, read_manifest
from unisr.prepare import crop, labels
from unisr.tokenizer import Tokenizer

FACE = _render(_pattern(), TO_SOURCE)
LRS3_TEXT = """Text:  SO I WAS {VERY} EXCITED
Conf:  4

WORD START END ASDSCORE
SO 0.07 0.24 3.5
I 0.24 0.31 4.2
WAS 0.31 0.52 5.1
{VERY} 0.52 0.80 4.0
EXCITED 0.80 1.20 4.4
"""
VOXCELEB_TEXT = """Identity  : \tid00012
Reference : \t21Uxsk56VDQ
Offset    : \t1
FV Conf   : \t17.5\t(1)
ASD Conf  : \t4.2

FRAME \tX \tY \tW \tH
000026 \t0.289 \t0.113 \t0.266 \t0.475
000027 \t0.290 \t0.113 \t0.266 \t0.475
"""


def _clip(path, frames: int, text: str | None = None, audio: np.ndarray | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    media.write_video(path, np.stack([FACE] * frames), audio=audio, lossless=False)
    if text is not None:
        path.with_suffix(".txt").write_text(text, encoding="utf-8")


def _pretrain_table(words: int) -> str:
    """Word i of a one-word-per-second talk spans i + 0.1 .. i + 0.9 s."""
    rows = "".join(f"W{i} {i + 0.1:.2f} {i + 0.9:.2f} 3.0\n" for i in range(words))
    text = " ".join(f"W{i}" for i in range(words))
    return f"Text:  {text}\nConf:  3\n\nWORD START END ASDSCORE\n{rows}"


@pytest.fixture
def stand_in(monkeypatch):
    landmarker = StandIn(TO_SOURCE)
    monkeypatch.setattr("unisr.prepare.folder.load_landmarker", lambda face_model=None: landmarker)
    return landmarker


def test_transcripts_in_each_layout(tmp_path):
    assert labels._clean("{LG} A  {B}C") == "LG A BC"
    video = tmp_path / "clip.mp4"
    for text, expected in [
        (LRS3_TEXT, "SO I WAS VERY EXCITED"),
        ("Text:  THE FIRST THING\nConf:  5\n", "THE FIRST THING"),  # LRS2 main set
        (VOXCELEB_TEXT, None),
        ("Open wide.\nPlease. \n", "Open wide. Please."),  # a user's own transcript
    ]:
        video.with_suffix(".txt").write_text(text, encoding="utf-8")
        assert labels.read_labels(video).text == expected, text
    Segment = labels.Segment
    words = labels.Labels("", [labels.Word("A", 0.0, 30.0), labels.Word("B", 30.0, 31.0)])
    assert labels.segments(words, 800) == [Segment(0, 750, "A"), Segment(750, 775, "B")]
    assert labels.segments(words, 800, limit=0) == [Segment(0, 800, "")]


def test_lrs3_and_voxceleb2_folders(tmp_path, stand_in, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    _clip(src / "lrs3" / "trainval" / "0af00UcTOSc" / "00001.mp4", 30, LRS3_TEXT)
    _clip(src / "vox2" / "dev" / "mp4" / "id00012" / "21Uxsk56VDQ" / "00001.mp4", 20, VOXCELEB_TEXT)
    _clip(src / "own" / "no_text.mp4", 15)
    assert cli.main(["prepare", str(src), str(out), "--quiet"]) == 0
    assert "clips: 1 labelled, 2 unlabelled" in capsys.readouterr().out
    rows = {r.id: (r.frames, r.text) for r in read_manifest(out / "manifest.tsv")}
    assert rows == {
        "lrs3/trainval/0af00UcTOSc/00001": (30, "SO I WAS VERY EXCITED"),
        "own/no_text": (15, ""),
        "vox2/dev/mp4/id00012/21Uxsk56VDQ/00001": (20, ""),
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == {"labelled": 1, "unlabelled": 2}
    assert summary["counts"]["processed"] == 3


def test_a_42_second_pretrain_clip_becomes_two_segments_with_their_words(tmp_path, stand_in):
    src, out = tmp_path / "lrs3", tmp_path / "out"
    seconds = np.arange(42 * media.SAMPLE_RATE) / media.SAMPLE_RATE
    ramp = (0.8 * (seconds / 42) - 0.4).astype(np.float32)  # each instant its own level
    video = src / "pretrain" / "5ZkR0ddUvD4" / "00001.mp4"
    _clip(video, 42 * 25, _pretrain_table(42), audio=ramp)
    assert cli.main(["prepare", str(src), str(out), "--quiet"]) == 0
    rows = read_manifest(out / "manifest.tsv")
    first, second = (f"pretrain/5ZkR0ddUvD4/00001_0{k}" for k in (0, 1))
    assert [r.id for r in rows] == [first, second]
    # words 0-23 end at 23.9 s, 23.8 s after the first starts; word 24 would make it 24.8 s
    assert rows[0].text == " ".join(f"W{i}" for i in range(24))
    assert rows[1].text == " ".join(f"W{i}" for i in range(24, 42))
    spans = [(2, 598), (602, 1048)]  # frames from the first word's start to the last one's end
    assert [r.frames for r in rows] == [end - start for start, end in spans]
    for row, (start, end) in zip(rows, spans, strict=True):
        assert media.read_video(row.video)[0].shape == (end - start, crop.CROP, crop.CROP)
        sound, rate = sf.read(row.audio, dtype="float32")
        expected = ramp[start * 640 : end * 640]
        assert rate == 16000 and sound.shape == expected.shape
        assert np.abs(sound - expected).max() < 0.01  # the segment's own stretch of audio
    assert stand_in.calls == 42 * 25  # landmarks once for the whole clip

    calls = stand_in.calls  # a rerun finds both segments done
    assert cli.main(["prepare", str(src), str(out), "--quiet"]) == 0
    assert stand_in.calls == calls
    assert json.loads((out / "summary.json").read_text())["counts"]["already prepared"] == 1

    whole = tmp_path / "whole"
    assert cli.main(["prepare", str(src), str(whole), "--quiet", "--segment-seconds", "0"]) == 0
    [row] = read_manifest(whole / "manifest.tsv")
    assert row.frames == 42 * 25 and row.text == " ".join(f"W{i}" for i in range(42))


def test_a_broken_word_table_names_the_file_and_line(tmp_path, stand_in):
    src, out = tmp_path / "src", tmp_path / "out"
    _clip(src / "a.mp4", 15, "Text:  HI\nConf:  1\n\nWORD START END ASDSCORE\nHI zero 0.5 1\n")
    _clip(src / "b.mp4", 15, "HI")
    assert cli.main(["prepare", str(src), str(out), "--quiet"]) == 0
    [problem] = json.loads((out / "summary.json").read_text())["problems"]
    assert problem["problem"] == "unreadable"
    assert (
        problem["detail"]
        == f"{src / 'a.txt'}: line 5: expected 'WORD START END', got 'HI zero 0.5 1'"
    )


def test_auto_avsr_csv_for_a_tokenizer(tmp_path, stand_in, capsys):
    src, corpus = tmp_path / "src", tmp_path / "data" / "lrs3"
    _clip(src / "trainval" / "a" / "00001.mp4", 20, "Text:  PLACE RED AT F TWO NOW\n")
    _clip(src / "trainval" / "a" / "00002.mp4", 15, "Text:  SET BLUE BY A\n")
    _clip(src / "vox" / "00001.mp4", 12, VOXCELEB_TEXT)
    model = tmp_path / "spm.model"
    tokenizer = Tokenizer.train(["PLACE RED AT F TWO NOW", "SET BLUE BY A"] * 20, 30, model)
    csv = tmp_path / "data" / "labels" / "lrs3_train.csv"
    argv = ["prepare", str(src), str(corpus), "--csv", str(csv), "--tokenizer", str(model)]
    assert cli.main([*argv, "--quiet"]) == 0
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("lrs3,trainval/a/00001.mp4,20,")
    assert lines[2] == "lrs3,vox/00001.mp4,12,"  # unlabelled: no token ids
    rows = load_manifest(csv)  # auto_avsr dialect, root found from labels/
    assert [(r.id, r.frames) for r in rows] == [
        ("lrs3/trainval/a/00001", 20),
        ("lrs3/trainval/a/00002", 15),
        ("lrs3/vox/00001", 12),
    ]
    assert rows[0].tokens == tokenizer.encode("PLACE RED AT F TWO NOW")
    assert rows[0].video == str((corpus / "trainval" / "a" / "00001.mp4").resolve())
    assert all(media.read_audio(r.audio).shape == (r.frames * 640,) for r in rows)

    assert cli.main(["prepare", str(src), str(corpus), "--csv", str(csv)]) == 2
    assert "give --tokenizer too" in capsys.readouterr().err


def test_shards_split_a_corpus_and_merge_into_one_manifest(tmp_path, stand_in, capsys):
    src, out, whole = tmp_path / "src", tmp_path / "out", tmp_path / "whole"
    for k in range(6):
        _clip(src / f"s{k}" / "00001.mp4", 12 + k, f"Text:  WORD {k}\n")
    assert cli.main(["prepare", str(src), str(whole), "--quiet"]) == 0
    expected = [(r.id, r.frames, r.text) for r in read_manifest(whole / "manifest.tsv")]

    assert cli.main(["prepare", str(src), str(out), "--shard", "0/2", "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["merge-shards", str(out)]) == 2
    assert "shard(s) 1/2 not finished" in capsys.readouterr().err
    assert cli.main(["prepare", str(src), str(out), "--shard", "1/2", "--quiet"]) == 0
    parts = [read_manifest(out / f"manifest.shard-{k}-of-2.tsv") for k in range(2)]
    assert all(parts) and not {r.id for r in parts[0]} & {r.id for r in parts[1]}

    assert cli.main(["merge-shards", str(out)]) == 0
    merged = [(r.id, r.frames, r.text) for r in read_manifest(out / "manifest.tsv")]
    assert merged == expected
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == {"labelled": 6, "unlabelled": 0}
    assert summary["counts"]["processed"] == 6

    for bad in ("2/2", "1", "a/b"):
        assert cli.main(["prepare", str(src), str(out), "--shard", bad]) == 2
        assert "give K/N with 0 <= K < N" in capsys.readouterr().err
