"""The public API (model.decode / model.transcribe) and the transcribe, features, convert and
tokenizer commands, on files the tests write themselves."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

import unisr
from unisr.cli import main
from unisr.media import write_audio, write_video
from unisr.tokenizer import Tokenizer
from unisr.transcribe import audio_samples
from unisr.transforms import MEAN, STD, center_crop, normalize, resize

FRAMES = 12


@pytest.fixture(scope="module")
def files(tmp_path_factory, official_dir, official_inputs):
    """A converted fixture checkpoint, a 96x96 mouth mp4 with its own sound track, a separate
    16 kHz wav, an mp4 without sound and the wav at 44.1 kHz in stereo (louder on the left)."""
    out = tmp_path_factory.mktemp("transcribe")
    checkpoint = out / "tiny.pt"
    units = official_dir / "unigram1000_units.txt"
    source = official_dir / "tiny_model.pth"
    assert main(["convert", str(source), str(checkpoint), "--units", str(units)]) == 0
    # the fixture's normalised 88x88 input back to pixels, framed by a 4-pixel border
    pixels = (official_inputs["video"][0] * STD + MEAN) * 255
    frames = np.full((FRAMES, 96, 96), 120, dtype=np.uint8)
    frames[:, 4:92, 4:92] = pixels.round().clamp(0, 255).to(torch.uint8).numpy()
    audio = official_inputs["audio"][0].numpy()
    paths = {"checkpoint": checkpoint, "frames": frames}
    paths["mp4"], paths["silent_mp4"] = out / "mouth.mp4", out / "silent.mp4"
    paths["wav"], paths["wav_44k"] = out / "speech.wav", out / "speech_44k_stereo.wav"
    write_video(paths["mp4"], frames, audio=audio[::-1].copy())
    write_video(paths["silent_mp4"], frames)
    write_audio(paths["wav"], audio)
    high = resample_poly(audio, 441, 160)
    sf.write(paths["wav_44k"], np.stack([1.2 * high, 0.8 * high], axis=1), 44100, "FLOAT")
    return paths


@pytest.fixture(scope="module")
def model(files):
    return unisr.load_model(files["checkpoint"])


@pytest.fixture(scope="module")
def small_model(official_dir):
    """A random CPU-preset model (narrow front-ends, 88 crops resized to 32) with the official
    vocabulary, for API tests that need no particular weights."""
    torch.manual_seed(0)
    model = unisr.UnifiedModel(unisr.model_config("tiny")).eval()
    model.tokenizer = Tokenizer.from_units(official_dir / "unigram1000_units.txt")
    return model


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_api_on_arrays_gives_the_official_transcripts(
    official_model, official_inputs, official_dir
):
    texts = torch.load(official_dir / "beam_search.pt")["texts"]["ctc0.1"]
    video, audio = official_inputs["video"][0], official_inputs["audio"][0]
    for stream in ("v", "a", "av"):
        nbest = official_model.decode(video=video, audio=audio, modality=stream, beam_size=4)
        assert len(nbest) == 1 and nbest[0].text == texts[stream]
    result = official_model.transcribe(video=video, audio=audio, beam_size=4)
    assert result["text"] == texts["av"] and result["modality"] == "av"
    assert len(official_model.decode(video=video, modality="v", beam_size=4, nbest=3)) == 3


def test_uint8_frames_are_centre_cropped_normalised_and_resized(small_model, files):
    frames = files["frames"]
    expected = resize(normalize(center_crop(frames, 88)), 32)
    options = unisr.decoding.DecodingOptions(beam_size=3, nbest=None)
    got = small_model.decode(video=frames, modality="v", options=options)
    want = small_model.decode(video=expected, modality="v", options=options)
    assert [(h.tokens, h.score) for h in got] == [(h.tokens, h.score) for h in want]


def test_lists_decode_as_one_padded_batch(small_model, files, official_inputs):
    frames, audio = files["frames"], official_inputs["audio"][0].numpy()
    videos, audios = [frames, frames[:9][:, ::-1]], [audio, audio[: 9 * 640] * 0.5]
    batched = small_model.decode(video=videos, audio=audios, beam_size=4, nbest=None)
    for nbest, v, a in zip(batched, videos, audios):
        single = small_model.decode(video=v, audio=a, beam_size=4, nbest=None)
        assert [h.tokens for h in nbest] == [h.tokens for h in single]
        assert [h.score for h in nbest] == pytest.approx([h.score for h in single], abs=1e-4)
    results = small_model.transcribe(video=videos, audio=audios, method="ctc")
    singles = [
        small_model.transcribe(video=v, audio=a, method="ctc") for v, a in zip(videos, audios)
    ]
    assert results == singles


@pytest.mark.parametrize("modality", [None, "v"])
def test_cli_transcribe_equals_the_api(capsys, model, files, modality):
    args = ["transcribe", "--checkpoint", files["checkpoint"], "--video", files["mp4"]]
    args += ["--audio", files["wav"], "--beam", 4, "--ctc-weight", 0.2]
    args += ["--modality", modality] if modality else []
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    expected = model.transcribe(
        video=str(files["mp4"]),
        audio=str(files["wav"]),
        modality=modality or "av",
        beam_size=4,
        ctc_weight=0.2,
    )["text"]
    assert out == expected + "\n" and expected


def test_cli_takes_audio_from_the_video_track(capsys, model, files):
    args = ["transcribe", "--checkpoint", files["checkpoint"], "--video", files["mp4"]]
    code, out, _ = run_cli(capsys, *args, "--modality", "a", "--method", "greedy")
    [track] = model.decode(video=str(files["mp4"]), modality="a", method="greedy")
    [separate] = model.decode(audio=str(files["wav"]), modality="a", method="greedy")
    assert code == 0 and out == track.text + "\n"
    assert track.score != separate.score  # the track holds the wav reversed


def test_sound_files_at_any_rate_and_channels_are_mixed_down_and_resampled(
    capsys, monkeypatch, model, files
):
    monkeypatch.setattr(unisr.media, "_noted", set())
    original = unisr.media.read_audio(files["wav"])
    converted = audio_samples(files["wav_44k"], None)
    assert converted.dtype == np.float32 and converted.shape == original.shape
    assert np.corrcoef(converted, original)[0, 1] > 0.99  # the fixture's audio is full-band
    gain = converted @ original / (original @ original)
    assert 0.95 < gain < 1.01  # channels averaged: not the left one (1.2), not summed (2.0)
    audio_samples(files["wav_44k"], None)
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and "44100 Hz 2-channel audio mixed down to mono and " in note

    args = ["transcribe", "--checkpoint", files["checkpoint"], "--video", files["mp4"]]
    code, out, err = run_cli(capsys, *args, "--audio", files["wav_44k"], "--beam", "3")
    assert code == 0 and err == ""  # said once per process: already said above
    expected = model.transcribe(video=str(files["mp4"]), audio=converted, beam_size=3)
    assert out == expected["text"] + "\n"


@pytest.mark.parametrize(
    "inputs, message",
    [
        (["--video", "missing.mp4"], "missing.mp4: file not found"),
        (["--video", "{silent_mp4}", "--modality", "av"], "no audio track"),
        (["--audio", "{wav}", "--modality", "v"], "needs a video"),
        (["--audio", "{wav}", "--beam", "0"], "beam size"),
        ([], "give files to transcribe"),
    ],
)
def test_cli_bad_inputs_give_one_line_and_exit_2(capsys, files, inputs, message):
    inputs = [a.format(**files) for a in inputs]
    code, out, err = run_cli(capsys, "transcribe", "--checkpoint", files["checkpoint"], *inputs)
    assert code == 2 and out == ""
    assert err.startswith("unisr transcribe: error:") and message in err
    assert err.count("\n") == 1


def test_console_script_fails_cleanly(files, tmp_path):
    command = [sys.executable, "-m", "unisr.cli", "transcribe", "--checkpoint"]
    result = subprocess.run(
        [*command, str(files["checkpoint"]), "--video", str(tmp_path / "none.mp4")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "none.mp4: file not found" in result.stderr


def test_cli_features(capsys, model, files, tmp_path):
    base = ["features", "--checkpoint", files["checkpoint"], "--video", files["mp4"]]
    code, _, err = run_cli(capsys, *base, "--audio", files["wav"], "--out", tmp_path / "f.pt")
    assert code == 0, err
    saved = torch.load(tmp_path / "f.pt")
    expected = model.encode(
        torch.from_numpy(normalize(center_crop(files["frames"], 88)).numpy())[None],
        torch.from_numpy(unisr.media.read_audio(files["wav"]))[None],
    )
    assert saved.keys() == {"v", "a", "av"}
    for stream, value in saved.items():
        torch.testing.assert_close(value, expected[stream][0].detach(), atol=1e-5, rtol=1e-5)
    code, _, _ = run_cli(capsys, *base, "--streams", "a", "--out", tmp_path / "a.npy")
    assert code == 0 and np.load(tmp_path / "a.npy").shape == (FRAMES, 64)
    code, _, err = run_cli(capsys, *base, "--out", tmp_path / "all.npy")
    assert code == 2 and "one stream" in err


def test_cli_tokenizer_train(capsys, tmp_path):
    lines = Path(unisr.__file__).with_name("assets").joinpath("wordnet_sentences.txt")
    text = tmp_path / "text.txt"
    text.write_text("\n".join(lines.read_text().splitlines()[:400]))
    out = tmp_path / "tok.model"
    code, stdout, err = run_cli(
        capsys, "tokenizer", "train", "--input", text, "--vocab-size", 60, "--out", out
    )
    assert code == 0, err
    tokenizer = Tokenizer.from_sentencepiece(out)
    assert tokenizer.vocab_size == 62
    assert tokenizer.decode(tokenizer.encode("the cat sat")) == "THE CAT SAT"
    code, _, err = run_cli(
        capsys,
        "tokenizer",
        "train",
        "--input",
        tmp_path / "no.txt",
        "--vocab-size",
        60,
        "--out",
        out,
    )
    assert code == 2 and "no.txt: file not found" in err


def test_cli_cropped_and_face_flags(capsys, files):
    import importlib.util

    base = ["transcribe", "--checkpoint", files["checkpoint"], "--video", files["mp4"]]
    base += ["--modality", "av", "--method", "greedy"]
    code, detected, err = run_cli(capsys, *base)
    assert code == 0, err
    code, forced, err = run_cli(capsys, *base, "--cropped")
    assert code == 0 and forced == detected  # a mouth crop is used as it is, with its own sound
    code, out, err = run_cli(capsys, *base, "--face")
    assert code == 2 and out == ""
    if importlib.util.find_spec("mediapipe") is None:
        assert "unisr[prepare]" in err
    else:
        assert "no face" in err


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_cli_transcribe_in_half_precision_equals_the_api_in_that_dtype(capsys, files, dtype):
    args = ["transcribe", "--checkpoint", files["checkpoint"], "--video", files["mp4"]]
    code, out, err = run_cli(capsys, *args, "--audio", files["wav"], "--beam", 4, "--dtype", dtype)
    assert code == 0, err
    model = unisr.load_model(files["checkpoint"], dtype=dtype)
    assert next(model.parameters()).dtype == getattr(torch, dtype)
    expected = model.transcribe(video=str(files["mp4"]), audio=str(files["wav"]), beam_size=4)
    assert out == expected["text"] + "\n"
