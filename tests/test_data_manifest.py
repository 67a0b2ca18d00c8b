"""Manifest readers and writers: typed TSV, USR and auto_avsr CSV dialects."""

from pathlib import Path

import pytest

from unisr.manifest import (
    ManifestError,
    ManifestRow,
    detect_dialect,
    load_manifest,
    read_manifest,
    write_manifest,
    write_usr_csv,
)

USR_LINE = "lrs3,test/0Fi83BHQsMA/00002.avi,41,1005 811 442 2 217 997 294 175 208\n"
AUTO_AVSR_LINE = "lrs3,lrs3_video_seg24s/test/0Fi83BHQsMA/00002.mp4,41,12 4017 9 345\n"


def test_usr_dialect_sample_line(tmp_path):
    path = tmp_path / "test_with_tags_counts_unigram1000.csv"
    path.write_text(USR_LINE + "vox2,dev/id0001/abc/00001.mp4,100,\n")
    assert detect_dialect(path) == "usr"
    rows = load_manifest(path, roots={"lrs3": "/data/lrs3", "vox2": "/data/vox2"})
    first, second = rows
    assert first.id == "lrs3/test/0Fi83BHQsMA/00002"
    assert first.video == "/data/lrs3/test/0Fi83BHQsMA/00002.avi"
    assert first.audio == "/data/lrs3/test/0Fi83BHQsMA/00002.wav"
    assert first.frames == 41
    assert first.tokens == [1005, 811, 442, 2, 217, 997, 294, 175, 208]
    assert first.text == ""
    assert second.video.startswith("/data/vox2/") and second.tokens is None


def test_usr_dialect_audio_roots_and_default_root(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(USR_LINE)
    row = load_manifest(path, roots={"lrs3": "/v"}, audio_roots={"lrs3": "/a"})[0]
    assert row.video == "/v/test/0Fi83BHQsMA/00002.avi"
    assert row.audio == "/a/test/0Fi83BHQsMA/00002.wav"
    row = load_manifest(path)[0]  # no roots: relative to the CSV's folder
    assert row.video == str(tmp_path.resolve() / "test/0Fi83BHQsMA/00002.avi")
    with pytest.raises(ManifestError, match="no root directory given for dataset tag 'lrs3'"):
        load_manifest(path, roots={"vox2": "/v"})


def test_auto_avsr_dialect_sample_line(tmp_path):
    labels = tmp_path / "root" / "labels"
    labels.mkdir(parents=True)
    path = labels / "lrs3_test_transcript_lengths_seg24s.csv"
    path.write_text(AUTO_AVSR_LINE)
    assert detect_dialect(path) == "auto_avsr"
    (row,) = load_manifest(path)
    root = (tmp_path / "root").resolve()
    assert row.video == str(root / "lrs3/lrs3_video_seg24s/test/0Fi83BHQsMA/00002.mp4")
    assert row.audio == str(root / "lrs3/lrs3_video_seg24s/test/0Fi83BHQsMA/00002.wav")
    assert row.frames == 41 and row.tokens == [12, 4017, 9, 345]
    (row,) = load_manifest(path, roots="/elsewhere")
    assert row.video == "/elsewhere/lrs3/lrs3_video_seg24s/test/0Fi83BHQsMA/00002.mp4"


@pytest.mark.parametrize(
    "line, problem",
    [
        ("lrs3,a.mp4,x1,1 2\n", "frame count must be an integer"),
        ("lrs3,a.mp4,-3,1 2\n", "frame count must be >= 0"),
        ("lrs3,a.mp4,10,1 b 2\n", "token ids must be integers"),
        ("lrs3,a.mp4\n", "expected 4 comma-separated fields, got 2"),
        ("lrs3,a.mp4,10,1,2,3\n", "expected 4 comma-separated fields, got 6"),
    ],
)
def test_bad_csv_line_names_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.csv"
    path.write_text(USR_LINE + line)
    with pytest.raises(ManifestError, match=problem) as info:
        load_manifest(path)
    assert f"{path}:2:" in str(info.value)


def test_typed_tsv_round_trip(tmp_path):
    corpus = tmp_path / "corpus"
    rows = [
        ManifestRow("u1", str(corpus / "train/u1.mp4"), str(corpus / "train/u1.wav"), 50,
                    "HELLO THERE", [4, 5, 6], "spk1", "train"),
        ManifestRow("u2", "/abs/elsewhere/u2.mp4", "/abs/elsewhere/u2.wav", 12, "IT'S OK"),
    ]  # fmt: skip
    path = corpus / "train.tsv"
    write_manifest(path, rows)
    lines = path.read_text().splitlines()
    assert lines[0] == "id\tvideo\taudio\tframes\ttext\ttokens\tspeaker\tsplit"
    assert lines[1].split("\t")[1] == "train/u1.mp4"  # stored relative to the manifest
    assert lines[2].split("\t")[1] == "/abs/elsewhere/u2.mp4"
    assert not list(corpus.glob(".*tmp"))  # no temp file left behind
    assert detect_dialect(path) == "tsv"
    back = read_manifest(path)
    assert [r.id for r in back] == ["u1", "u2"]
    assert back[0].video == str((corpus / "train/u1.mp4").resolve())
    assert back[0].tokens == [4, 5, 6] and back[1].tokens is None
    assert back[0].speaker == "spk1" and back[0].split == "train"
    assert back[1].text == "IT'S OK" and back[1].frames == 12


def test_typed_tsv_minimal_columns_and_errors(tmp_path):
    path = tmp_path / "m.tsv"
    path.write_text("id\tvideo\taudio\tframes\ttext\nx\tx.mp4\tx.wav\t7\tHI\n")
    (row,) = load_manifest(path)
    assert row.tokens is None and row.speaker == "" and row.frames == 7
    path.write_text("id\tvideo\taudio\ttext\nx\tx.mp4\tx.wav\tHI\n")
    with pytest.raises(ManifestError, match=r"m.tsv:1: header lacks column\(s\) frames"):
        read_manifest(path)
    path.write_text(
        "id\tvideo\taudio\tframes\ttext\nx\tx.mp4\tx.wav\t7\tHI\nx\ty.mp4\ty.wav\t3\tA\n"
    )
    with pytest.raises(ManifestError, match="m.tsv:3: duplicate id 'x'"):
        read_manifest(path)
    path.write_text("id\tvideo\taudio\tframes\ttext\nx\tx.mp4\t7\tHI\n")
    with pytest.raises(ManifestError, match="m.tsv:2: expected 5 tab-separated fields, got 4"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="contains a tab or newline"):
        write_manifest(path, [ManifestRow("a", "a.mp4", "a.wav", 3, "TWO\nLINES")])
    with pytest.raises(ManifestError, match="file not found"):
        load_manifest(tmp_path / "missing.tsv")


def test_usr_csv_writer_round_trip(tmp_path):
    rows = [ManifestRow("a", str(tmp_path / "test/a.mp4"), str(tmp_path / "test/a.wav"), 9, "",
                        [3, 1, 2])]  # fmt: skip
    write_usr_csv(tmp_path / "test.csv", rows, tag="synth")
    assert Path(tmp_path / "test.csv").read_text() == "synth,test/a.mp4,9,3 1 2\n"
    (back,) = load_manifest(tmp_path / "test.csv")
    assert back.video == rows[0].video and back.audio == rows[0].audio and back.tokens == [3, 1, 2]
    with pytest.raises(ManifestError, match="needs token ids"):
        write_usr_csv(tmp_path / "x.csv", [ManifestRow("b", rows[0].video, rows[0].audio, 9)], "s")
