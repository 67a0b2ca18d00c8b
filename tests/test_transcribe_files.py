"""``unisr transcribe FILE...``: long files as subtitles with word times, folders of files with a
bad one among them, outputs that are not redone, sound files and anti-phase stereo."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
from train_corpus import WORDS, _clip

from unisr.checkpoint import save_checkpoint
from unisr.cli import main
from unisr.evaluate import matched_words, word_errors
from unisr.media import write_audio, write_video

CUE = re.compile(r"(\d\d:\d\d:\d\d[.,]\d\d\d) --> (\d\d:\d\d:\d\d[.,]\d\d\d)\n((?:.+\n)+)")


def seconds(stamp: str) -> float:
    h, m, s = stamp.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@pytest.fixture(scope="module")
def world(fitted, tmp_path_factory):
    """The fitted model as a checkpoint that says it learnt from clips of at most 40 frames,
    a 7 s mouth video with its sound track (every word 4 frames long), the same sound alone,
    a folder with two good videos and a corrupt one, and the sound in anti-phase stereo."""
    root = tmp_path_factory.mktemp("files")
    checkpoint = root / "model.pt"
    save_checkpoint(checkpoint, fitted.model, fitted.model.tokenizer, max_frames=40)
    rng = np.random.default_rng(7)
    words = list(rng.choice(WORDS, size=44))
    frames, audio = _clip(words, rng)
    paths = {"checkpoint": checkpoint, "words": words, "root": root}
    paths["long"], paths["wav"] = root / "long.mp4", root / "long.wav"
    write_video(paths["long"], frames, audio=audio)
    write_audio(paths["wav"], audio)
    folder = root / "folder"
    folder.mkdir()
    for name, (start, end) in {"one": (0, 48), "two": (48, 120)}.items():
        write_video(folder / f"{name}.mp4", frames[start:end], audio=audio[start * 640 : end * 640])
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (folder / "notes.txt").write_text("not media")
    paths["folder"] = folder
    paths["antiphase"] = root / "antiphase.wav"
    sf.write(paths["antiphase"], np.stack([audio, -audio], axis=1), 16000, subtype="FLOAT")
    return paths


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_long_video_becomes_subtitles_with_true_word_times(capsys, world, tmp_path):
    out = tmp_path / "subs"
    code, stdout, err = run(capsys, "transcribe", "--checkpoint", world["checkpoint"],
                            world["long"], "--method", "ctc", "--output-dir", out)  # fmt: skip
    assert code == 0, err
    assert stdout == ""
    assert sorted(p.name for p in out.iterdir()) == [
        f"long.{x}" for x in ("json", "srt", "txt", "vtt")
    ]
    result = json.loads((out / "long.json").read_text())
    assert result["modality"] == "av" and result["duration"] == pytest.approx(44 * 4 / 25)
    assert len(result["segments"]) >= 4  # 7 s in segments of at most 1.6 s
    errors, total = word_errors([" ".join(world["words"])], [result["text"]])
    assert errors <= 0.3 * total
    timed = [w for s in result["segments"] for w in s["words"]]
    pairs = matched_words(world["words"], [w["word"] for w in timed])
    assert len(pairs) >= 0.7 * len(world["words"])
    # correct words start and end where they are said (words are 4 frames of 40 ms; next to a
    # missed word a time can be a frame or two off)
    for edge, true in (("start", 0), ("end", 1)):
        error = np.array([abs(timed[h][edge] - 4 * (r + true) / 25) for r, h in pairs])
        assert np.median(error) <= 0.041 and np.mean(error <= 0.081) >= 0.9, (edge, error)
    assert all(0.0 <= w["probability"] <= 1.0 and w["end"] > w["start"] for w in timed)
    # the subtitles: cues in order, not overlapping, their words the transcript's
    for name, header in (("long.srt", ""), ("long.vtt", "WEBVTT\n\n")):
        text = (out / name).read_text()
        assert text.startswith(header)
        cues = CUE.findall(text)
        spans = [(seconds(a), seconds(b)) for a, b, _ in cues]
        assert all(a < b for a, b in spans)
        assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))
        assert " ".join(" ".join(t.split()) for _, _, t in cues) == result["text"]
        assert spans[0][0] == pytest.approx(timed[0]["start"], abs=0.002)
    assert (out / "long.txt").read_text().split() == result["text"].split()


def test_a_folder_with_a_corrupt_file_is_done_but_that_one(capsys, world, tmp_path):
    out = tmp_path / "out"
    argv = ["transcribe", "--checkpoint", world["checkpoint"], world["folder"], "--method", "ctc"]
    code, _, err = run(capsys, *argv, "--output-dir", out, "--output-format", "json")
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["one.json", "two.json"]
    assert "broken.mp4" in err and "(skipped)" in err and "1 of 3 file(s) failed" in err
    assert "notes.txt" not in err and "Traceback" not in err
    # a second run leaves what is written alone, unless told to redo it
    (out / "one.json").write_text("{}")
    code, _, err = run(capsys, *argv, "--output-dir", out, "--output-format", "json")
    assert code == 1 and "one.mp4: already transcribed" in err
    assert (out / "one.json").read_text() == "{}"
    code, _, err = run(capsys, *argv, "--output-dir", out, "--output-format", "json", "--overwrite")
    assert json.loads((out / "one.json").read_text())["text"]
    # without --output-dir: a line per file, its path and its text
    code, stdout, _ = run(capsys, *argv)
    lines = stdout.splitlines()
    assert code == 1 and [line.split("\t")[0] for line in lines] == [
        str(world["folder"] / "one.mp4"),
        str(world["folder"] / "two.mp4"),
    ]


def test_sound_files_give_audio_transcripts_and_anti_phase_stereo_is_named(capsys, world):
    base = ["transcribe", "--checkpoint", world["checkpoint"], "--method", "ctc"]
    code, wav_text, err = run(capsys, *base, world["wav"])
    assert code == 0, err
    code, track_text, err = run(capsys, *base, world["long"], "--modality", "a")
    assert code == 0 and track_text == wav_text
    code, stereo_text, err = run(capsys, *base, world["antiphase"])
    assert code == 0 and "anti-phase" in err and "antiphase.wav" in err
    assert stereo_text == wav_text  # the first channel, not silence
    code, _, err = run(capsys, *base, world["wav"], "--modality", "v")
    assert code == 2 and "needs a video" in err


def test_inputs_that_would_write_the_same_file_are_refused(capsys, world, tmp_path):
    code, _, err = run(capsys, "transcribe", "--checkpoint", world["checkpoint"], world["long"],
                       world["wav"], "--output-dir", tmp_path)  # fmt: skip
    assert code == 2 and "would both write" in err and not list(tmp_path.iterdir())
