"""The checks every entry point makes of its inputs: ``validate``, the training and evaluation
data path, ``transcribe``, ``features`` and ``prepare`` call these same functions, so an input
that one command rejects is never silently accepted (or crashed on) by another.

Each check raises :class:`BadData` (a :class:`~unisr.errors.UnisrError`) naming the file, the
problem and a short category (``kind``) used in summaries. Long jobs turn it into a skipped,
counted and named sample; single-input commands print it as a one-line error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import UnisrError
from .media import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

AV_TOLERANCE_FRAMES = 3
MIN_TRAIN_FRAMES = 2  # a one-frame clip alone in a batch leaves BatchNorm a single value
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


class BadData(UnisrError):
    """A sample fails a check; carries the offending file, the reason, and its kind (a short
    category such as "missing file" used in summaries)."""

    def __init__(self, path: str | Path, reason: str, kind: str):
        self.path, self.reason, self.kind = str(path), reason, kind
        super().__init__(f"{path}: {reason}")


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
