"""The checks every entry point makes of its inputs: ``validate``, the training and evaluation
data path, ``transcribe``, ``features`` and ``prepare`` call these same functions, so an input
that one command rejects is never silently accepted (or crashed on) by another.

Each check raises :class:`BadData` (a :class:`~unisr.errors.UnisrError`) naming the file, the
problem and a short category (``kind``) used in summaries. Long jobs turn it into a skipped,
counted and named :class:`BadSample`; single-input commands print it as a one-line error.

:func:`load_clip` decodes and checks one manifest row: uint8 grayscale frames (T, H, W) at 25 fps
and int16 mono 16 kHz audio cut or padded to exactly T * 640 samples. Lengths may disagree by up
to ``tolerance`` frames (default 3 frames = 120 ms, the slack of typical audio/video muxing): the
video is trimmed to the manifest's frame count and the audio to the video; a larger disagreement
rejects the clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import UnisrError
from .manifest import ManifestRow
from .media import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME, MediaError, read_video

AV_TOLERANCE_FRAMES = 3
MIN_TRAIN_FRAMES = 2  # a one-frame clip alone in a batch leaves BatchNorm a single value
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


class BadData(UnisrError):
    """A sample fails a check; carries the offending file, the reason, and its kind (a short
    category such as "missing file" used in summaries)."""

    def __init__(self, path: str | Path, reason: str, kind: str):
        self.path, self.reason, self.kind = str(path), reason, kind
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class BadSample:
    """Stands in for an item that could not be used: which utterance, which file, why."""

    id: str
    path: str
    reason: str
    kind: str


def problems_table(problems: Sequence[BadSample]) -> str:
    """Problems as an aligned text table (id, file, problem)."""
    head = ("id", "file", "problem")
    rows = [head] + [(p.id, p.path, p.reason) for p in problems]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows)


def check_samples(samples: np.ndarray, name: str | Path) -> np.ndarray:
    """Audio samples must exist and be finite (a NaN would poison every loss it touches)."""
    if len(samples) == 0:
        raise BadData(name, "audio has no samples", "empty audio")
    if np.issubdtype(samples.dtype, np.floating) and not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise BadData(name, f"audio has {bad} non-finite sample(s) (NaN or inf)", "non-finite")
    return samples


def read_checked_audio(path: str | Path, dtype: str = "float32") -> np.ndarray:
    """A 16 kHz mono sound file as ``dtype`` samples. A missing or unreadable file, another
    rate, more than one channel, no samples or non-finite samples is a :class:`BadData`."""
    path = Path(path)
    if not path.is_file():
        raise BadData(path, "file not found", "missing file")
    try:
        with sf.SoundFile(str(path)) as f:
            if f.samplerate != SAMPLE_RATE:
                raise BadData(
                    path,
                    f"sample rate is {f.samplerate} Hz, expected {SAMPLE_RATE} Hz",
                    "sample rate",
                )
            if f.channels != 1:
                raise BadData(path, f"{f.channels} audio channels, expected mono", "not mono")
            floating = f.subtype in FLOAT_SUBTYPES
            audio = f.read(dtype="float32" if floating else dtype)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise BadData(path, f"cannot read audio ({err})", "corrupt audio") from None
    check_samples(audio, path)
    if floating and dtype == "int16":
        audio = np.round(np.clip(audio, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    return audio


def check_frames(
    frames: np.ndarray | Sequence, name: str | Path, crop: int | None = None, min_frames: int = 1
) -> None:
    """Grayscale frames (T, H, W) must be at least ``crop`` pixels a side (the model's centre or
    random crop) and at least ``min_frames`` long."""
    shape = tuple(frames.shape)
    if len(shape) != 3 or 0 in shape:
        raise BadData(name, f"expected grayscale frames (T, H, W), got shape {shape}", "frames")
    if crop is not None and min(shape[1:]) < crop:
        raise BadData(
            name,
            f"frames of {shape[1]}x{shape[2]} are smaller than the model's {crop}x{crop} crop",
            "frame size",
        )
    if shape[0] < min_frames:
        raise BadData(
            name, f"{shape[0]} frame(s), training needs at least {min_frames}", "too short"
        )


def check_lengths(
    frames: int,
    samples: int,
    audio_name: str | Path,
    tolerance: int = AV_TOLERANCE_FRAMES,
) -> None:
    """Audio may be longer or shorter than ``frames * 640`` samples by ``tolerance`` frames."""
    if abs(samples - frames * SAMPLES_PER_FRAME) > tolerance * SAMPLES_PER_FRAME:
        raise BadData(
            audio_name,
            f"audio is {samples / SAMPLE_RATE:.2f} s but video is {frames / FPS:.2f} s "
            f"(A/V mismatch over {tolerance} frames)",
            "length mismatch",
        )


def check_vocabulary(tokens: Sequence[int], tokenizer, name: str | Path) -> None:
    """Target token ids must be pieces of the vocabulary: never blank (0), never sos/eos or
    beyond (known only with a tokenizer)."""
    pieces = len(tokenizer.pieces) if tokenizer is not None else None
    bad = sorted({int(t) for t in tokens if t < 1 or (pieces is not None and t > pieces)})
    if bad:
        limit = f"1..{pieces}" if pieces is not None else "1 or more (0 is the CTC blank)"
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        raise BadData(name, f"token ids {shown} are outside the vocabulary ({limit})", "token ids")


# ---------------------------------------------------------------- clips


@dataclass
class Clip:
    """A checked clip: uint8 frames (T, H, W) and int16 audio of exactly T * 640 samples."""

    frames: np.ndarray
    audio: np.ndarray

    def audio_float(self) -> np.ndarray:
        return self.audio.astype(np.float32) / 32768.0


def _media_kind(problem: str) -> str:
    if problem == "file not found":
        return "missing file"
    return "zero frames" if problem == "video has no frames" else "corrupt video"


def read_wav_int16(path: str | Path) -> np.ndarray:
    """Read 16 kHz mono audio as int16; anything else is a :class:`BadData`."""
    return read_checked_audio(path, "int16")


def align(
    frames: np.ndarray, audio: np.ndarray, row: ManifestRow, tolerance: int = AV_TOLERANCE_FRAMES
) -> Clip:
    """Trim the video to the manifest's frame count and fit the audio to ``T * 640`` samples,
    rejecting either when it is off by more than ``tolerance`` frames."""
    if abs(len(frames) - row.frames) > tolerance:
        raise BadData(
            row.video,
            f"video has {len(frames)} frames, manifest says {row.frames}",
            "length mismatch",
        )
    frames = frames[: row.frames]
    target = len(frames) * SAMPLES_PER_FRAME
    check_lengths(len(frames), len(audio), row.audio, tolerance)
    if len(audio) >= target:
        audio = audio[:target]
    else:
        audio = np.pad(audio, (0, target - len(audio)))
    return Clip(np.ascontiguousarray(frames), np.ascontiguousarray(audio))


def load_clip(
    row: ManifestRow,
    tolerance: int = AV_TOLERANCE_FRAMES,
    crop: int | None = None,
    min_frames: int = 1,
) -> Clip:
    """Decode and check one utterance (see the module docstring); with ``crop``, frames must be
    at least that size. Raises :class:`BadData`."""
    if row.frames <= 0:
        raise BadData(row.video, "manifest gives 0 frames", "zero frames")
    try:
        frames, fps = read_video(row.video, gray=True)
    except MediaError as err:
        raise BadData(err.path, err.problem, _media_kind(err.problem)) from None
    if abs(fps - FPS) > 0.01:
        raise BadData(row.video, f"frame rate is {fps:g} fps, expected {FPS}", "frame rate")
    clip = align(frames, read_wav_int16(row.audio), row, tolerance)
    check_frames(clip.frames, row.video, crop, min_frames)
    return clip
