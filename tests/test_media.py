"""Reading long videos in bounded memory, and audio whose channels cancel when mixed down."""

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from unisr import media


def _decoded(path, fmt: str = "gray") -> np.ndarray:
    """Every frame as PyAV gives it: what read_video must return."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format=fmt) for frame in container.decode(video=0)])


def _mkv(path, frames: np.ndarray) -> None:
    """A Matroska file, which declares no frame count."""
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264rgb", rate=Fraction(25))
        stream.pix_fmt, stream.width, stream.height = "rgb24", frames.shape[2], frames.shape[1]
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


PEAK = """
import sys
import numpy as np
from unisr.media import read_video

def status(key):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(key))

before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # the peak (VmHWM) starts again from here
frames, _ = read_video(sys.argv[1])
print((status("VmHWM") - before) / frames.nbytes)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc")
def test_read_video_peak_memory_is_about_one_copy(tmp_path):
    """Measured in a fresh process: a list of frames and its stack take 2.4 copies here."""
    path = tmp_path / "clip.mp4"
    media.write_video(path, np.random.default_rng(0).integers(0, 256, (600, 256, 256), np.uint8))
    run = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout) < 1.75  # the array, plus the decoder's own frames and buffers


def test_read_video_gives_every_frame_in_one_array(tmp_path):
    path = tmp_path / "clip.mp4"
    media.write_video(path, np.random.default_rng(0).integers(0, 256, (30, 64, 80), np.uint8))
    frames, fps = media.read_video(path)
    assert frames.shape == (30, 64, 80) and frames.dtype == np.uint8 and fps == 25.0
    assert frames.flags.owndata and frames.flags.c_contiguous
    np.testing.assert_array_equal(frames, _decoded(path))


@pytest.mark.parametrize("gray", [True, False])
def test_read_video_grows_past_an_undeclared_frame_count(tmp_path, gray):
    rng = np.random.default_rng(1)
    path = tmp_path / "clip.mkv"
    _mkv(path, rng.integers(0, 256, (37, 48, 64, 3), dtype=np.uint8))
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # nothing declared: the array must grow
    frames, fps = media.read_video(path, gray=gray)
    assert frames.shape == ((37, 48, 64) if gray else (37, 48, 64, 3)) and fps == 25.0
    np.testing.assert_array_equal(frames, _decoded(path, "gray" if gray else "rgb24"))


def test_read_video_errors_name_the_file(tmp_path):
    with pytest.raises(media.MediaError, match="missing.mp4: file not found"):
        media.read_video(tmp_path / "missing.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x01not a video" * 100)
    with pytest.raises(media.MediaError, match="broken.mp4: cannot decode video"):
        media.read_video(broken)


def _stereo(seconds: float, rate: int) -> np.ndarray:
    """A 220 Hz tone in noise as the left channel (S,)."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(2).normal(0, 0.05, len(t))
    return (0.3 * np.sin(2 * np.pi * 220 * t) + noise).astype(np.float32)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_anti_phase_stereo_uses_the_first_channel(capsys, monkeypatch, rate):
    monkeypatch.setattr(media, "_noted", set())
    left = _stereo(1.0, rate)
    audio = media.model_audio(np.stack([left, -left], axis=1), rate, "phone.wav")
    np.testing.assert_array_equal(audio, media.resample(left, rate))
    assert audio.dtype == np.float32 and audio.flags.c_contiguous
    lines = capsys.readouterr().err.splitlines()
    warning = (
        "unisr: phone.wav: its channels cancel when mixed down (anti-phase stereo); "
        "using the first channel"
    )
    assert lines[0] == warning
    assert lines[1:] == (["unisr: phone.wav: 44100 Hz 2-channel audio resampled to 16000 Hz "
                          "(said once for audio like this)"] if rate == 44100 else [])  # fmt: skip


def test_ordinary_and_silent_stereo_are_mixed_down(capsys, monkeypatch):
    monkeypatch.setattr(media, "_noted", set())
    left = _stereo(1.0, 16000)
    other = np.random.default_rng(3).normal(0, 0.1, len(left)).astype(np.float32)
    stereo = np.stack([left, 0.5 * left + other], axis=1)
    np.testing.assert_array_equal(media.model_audio(stereo, 16000, "a.wav"), stereo.mean(axis=1))
    quiet = 1e-5 * np.stack([left, -left], axis=1)  # cancels, but silence either way
    np.testing.assert_array_equal(media.model_audio(quiet, 16000, "b.wav"), quiet.mean(axis=1))
    assert media.model_audio(np.zeros((0, 2), np.float32), 16000, "c.wav").shape == (0,)
    err = capsys.readouterr().err
    assert "cancel" not in err and err.count("mixed down to mono") == 1
