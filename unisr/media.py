"""Reading and writing video (PyAV) and audio (soundfile) with checks that name the file.

Conventions used across unisr: video at 25 fps, audio at 16 kHz mono, so one video frame spans
640 audio samples. Grayscale frames are uint8 arrays (T, H, W); colour frames (T, H, W, 3) RGB,
turned upright when the container says the video is rotated (phones record that way).

Corpora for training and evaluation must already be 16 kHz mono (``unisr prepare`` writes them
so); single inputs, as people record them, are mixed down and resampled by
:func:`model_audio`, which says so once on stderr.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from .errors import UnisrError

FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640


class MediaError(UnisrError):
    """A media file is missing, unreadable or not in the expected format."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def read_video(path: str | Path, gray: bool = True) -> tuple[np.ndarray, float]:
    """Decode every frame of a video file. Returns (frames, fps); frames uint8 (T,H,W[,3]).

    The frames go straight into one array sized from the declared frame count (grown, then
    trimmed, in place when the count is off), so an hour of video needs one copy of memory.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            declared = stream.frames
            fmt = "gray" if gray else "rgb24"
            frames, count = None, 0
            for frame in container.decode(stream):
                image = upright(frame, fmt)
                if frames is None:
                    frames = np.empty((max(declared, 1), *image.shape), np.uint8)
                elif image.shape != frames.shape[1:]:
                    (h, w), (h2, w2) = frames.shape[1:3], image.shape[:2]
                    raise MediaError(path, f"frame size changes from {w}x{h} to {w2}x{h2}")
                elif count == len(frames):
                    _resize(frames, 2 * count)
                frames[count] = image
                count += 1
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise MediaError(path, f"cannot decode video ({err.__class__.__name__}: {err})") from None
    if frames is None:
        raise MediaError(path, "video has no frames")
    check_complete(path, count, declared)
    fps = float(rate) if rate else float(FPS)
    _resize(frames, count)
    return frames, fps


def _resize(frames: np.ndarray, count: int) -> None:
    """Grow or trim an array along its first axis in place (realloc: large blocks are remapped,
    not copied, and pages never written cost no memory). No other reference may see its data."""
    frames.resize((count, *frames.shape[1:]), refcheck=False)


def upright(frame: av.VideoFrame, fmt: str = "rgb24") -> np.ndarray:
    """A decoded frame as an array in ``fmt``, rotated as its display matrix says."""
    image = frame.to_ndarray(format=fmt)
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def check_complete(path: str | Path, decoded: int, declared: int) -> None:
    """A video that decodes to fewer frames than its container declares is truncated or damaged;
    a partial decode must not pass for the whole clip (one frame of slack for muxer rounding)."""
    if declared and decoded < declared - 1:
        raise MediaError(
            path,
            f"truncated or damaged video: decoded {decoded} of the {declared} frames it declares",
        )


def read_audio(path: str | Path, sample_rate: int | None = SAMPLE_RATE) -> np.ndarray:
    """Read a sound file as float32 mono in [-1, 1], averaging channels.

    With ``sample_rate`` set, a file at another rate is an error (resample it when preparing the
    corpus; :func:`model_audio` converts ad-hoc inputs).
    """
    audio, rate = read_sound(path)
    if sample_rate is not None and rate != sample_rate:
        raise MediaError(path, f"sample rate is {rate} Hz, expected {sample_rate} Hz")
    return audio.mean(axis=1)


def read_sound(path: str | Path) -> tuple[np.ndarray, int]:
    """A sound file as float32 samples (S, channels) and its sample rate."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise MediaError(path, f"cannot read audio ({err})") from None
    return data, int(rate)


def read_video_audio(path: str | Path) -> tuple[np.ndarray, int] | None:
    """The audio track of a video file as float32 samples (S, channels) and its rate, or None
    if it has none. Any codec and sample format (PyAV converts to packed float)."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            to_float = av.AudioResampler(format="flt")  # same layout and rate, float samples
            chunks = []
            for frame in [*container.decode(stream), None]:  # None flushes the converter
                for converted in to_float.resample(frame):
                    chunks.append(converted.to_ndarray().reshape(converted.samples, -1))
            rate = stream.rate
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise MediaError(path, f"cannot decode audio ({err.__class__.__name__}: {err})") from None
    if not chunks:
        return None
    return np.concatenate(chunks).astype(np.float32, copy=False), int(rate)


_noted: set[tuple[int, int, bool]] = set()
CANCELLED = 0.1  # mixdown RMS below this share of the channels' mean RMS: anti-phase channels
SILENT_RMS = 1e-4  # channels quieter than this are silence, not cancellation


def model_audio(samples: np.ndarray, rate: int, name: str | Path) -> np.ndarray:
    """Audio (S,) or (S, channels) at any rate -> float32 16 kHz mono: channels averaged, then
    resampled. The first conversion of each kind is said once on stderr.

    Channels that cancel when averaged (anti-phase stereo, a miswired microphone) would leave
    near-silence, so the first channel is used instead, and that is said for each such file.
    """
    samples = samples[:, None] if samples.ndim == 1 else samples
    channels = samples.shape[1]
    mono = samples.mean(axis=1)
    first = channels > 1 and _cancels(samples, mono)
    if first:
        print(
            f"unisr: {name}: its channels cancel when mixed down (anti-phase stereo); "
            "using the first channel",
            file=sys.stderr,
        )
        mono = np.ascontiguousarray(samples[:, 0])
    done = ["mixed down to mono"] * (channels > 1 and not first)
    done += [f"resampled to {SAMPLE_RATE} Hz"] * (rate != SAMPLE_RATE)
    if done and (rate, channels, first) not in _noted:
        _noted.add((rate, channels, first))
        layout = "mono" if channels == 1 else f"{channels}-channel"
        print(
            f"unisr: {name}: {rate} Hz {layout} audio {' and '.join(done)} "
            "(said once for audio like this)",
            file=sys.stderr,
        )
    return resample(mono, rate)


def _cancels(samples: np.ndarray, mono: np.ndarray) -> bool:
    """Whether the mixdown ``mono`` of audible channels (S, channels) is far quieter than they
    are. Dot products, so that an hour of audio needs no squared copy."""
    if not len(mono):
        return False
    channel_rms = np.sqrt([float(column @ column) / len(mono) for column in samples.T])
    mono_rms = np.sqrt(float(mono @ mono) / len(mono))
    return bool(channel_rms.min() > SILENT_RMS and mono_rms < CANCELLED * channel_rms.mean())


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling to ``target`` Hz (no-op when the rate already matches)."""
    if rate == target:
        return audio.astype(np.float32, copy=False)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(audio, target // g, rate // g).astype(np.float32)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write float audio in [-1, 1] as 16-bit PCM WAV."""
    sf.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: int = FPS,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    lossless: bool = True,
) -> None:
    """Encode frames (T,H,W) gray or (T,H,W,3) RGB uint8 as an mp4.

    ``lossless`` uses RGB H.264 at crf 0 (bit-exact, for corpora); otherwise yuv420p H.264 that
    every player opens (for previews). Optional audio is muxed as 16-bit PCM (sample exact).
    """
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    height, width = frames.shape[1:3]
    with av.open(str(path), "w", format="mp4") as container:
        if lossless:
            stream = container.add_stream("libx264rgb", rate=Fraction(fps))
            stream.pix_fmt = "rgb24"
            stream.options = {"crf": "0", "preset": "ultrafast"}
        else:
            stream = container.add_stream("libx264", rate=Fraction(fps))
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18"}
            width, height = width - width % 2, height - height % 2
            frames = frames[:, :height, :width]
        stream.width, stream.height = width, height
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("pcm_s16le", rate=sample_rate)
            audio_stream.layout = "mono"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)[None, :]
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = sample_rate
            for packet in audio_stream.encode(frame):
                container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)


def fit_audio(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Cut or zero-pad audio to exactly ``n_frames * 640`` samples."""
    target = n_frames * SAMPLES_PER_FRAME
    if len(audio) >= target:
        return audio[:target]
    return np.pad(audio, (0, target - len(audio)))
