"""Face landmarks per video frame, in the 68-point iBUG layout the mouth-crop pipeline uses.

:class:`FaceLandmarker` runs MediaPipe's Tasks ``FaceLandmarker`` (``pip install
'unisr[prepare]'``) as the official USR 2.0 preprocessing does: IMAGE mode, every frame detected
on its own, one face, detection confidence 0.5, and the 478-point mesh reduced to 68 points by
:data:`MESH_TO_IBUG68`. On the official pipeline's own frames this gives its landmarks exactly.

MediaPipe's C++ runtime logs to the process's stderr (graph set-up notices, per-frame
warnings); those lines are kept off the terminal unless ``UNISR_MEDIAPIPE_LOG=1`` is set. Its
library also links a sampling CPU profiler with SIGPROF timers, and SIGPROF's default action
ends the process: a stray one has been seen to end long runs. So, unless Python code of the
process handles SIGPROF itself, the signal is ignored and blocked in the thread that starts
MediaPipe (its worker threads inherit the block).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..errors import UnisrError
from .face_model import face_model_path

INSTALL_HINT = "pip install 'unisr[prepare]'"
LOG_VARIABLE = "UNISR_MEDIAPIPE_LOG"

# Mesh vertex for each iBUG point 0..67: the table the official preprocessing uses (published in
# MediaPipe issue #1615).
MESH_TO_IBUG68: tuple[int, ...] = (
    # 0-16 jaw, from the subject's right ear (image left) over the chin (8)
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
    # 17-21 right brow (outer to inner), 22-26 left brow (inner to outer)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 301,
    # 27-30 nose bridge (nasion to tip), 31-35 nostrils
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    # 36-41 right eye, 42-47 left eye (corner, upper lid, corner, lower lid)
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    # 48-59 outer lips (48, 54 corners; 51 upper, 57 lower centre), 60-67 inner lips
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91, 78, 82, 13, 312, 308, 317, 14, 87,
)  # fmt: skip

Result = TypeVar("Result")


class LandmarkerUnavailable(UnisrError):
    """No face-landmark backend can run in this environment."""


class Landmarker(ABC):
    """Finds one face per RGB frame, each frame on its own."""

    name: str

    @abstractmethod
    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        """RGB uint8 (H, W, 3) -> float32 (68, 2) pixel coordinates (x, y), or None (no face)."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend."""

    def __enter__(self) -> Landmarker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to /dev/null for the duration (Python's
    own ``sys.stderr`` is flushed first, so nothing of ours is lost)."""
    if os.environ.get(LOG_VARIABLE) == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quietly(call: Callable[[], Result]) -> Result:
    with native_stderr_quiet():
        return call()


def _ignore_profiler_signal() -> None:
    """Ignore SIGPROF and block it in this thread, unless Python code handles it (SIGPROF drives
    nothing but sampling profilers; only the main thread may change a signal's handling)."""
    if callable(signal.getsignal(signal.SIGPROF)):
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPROF})
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGPROF, signal.SIG_IGN)  # sets it again even if C code changed it


class FaceLandmarker(Landmarker):
    """MediaPipe Tasks ``FaceLandmarker`` in IMAGE mode, from a ``face_landmarker.task`` file
    (``model``; default: the cached copy, fetched once, see :mod:`.face_model`)."""

    name = "face_landmarker"

    def __init__(self, model: str | Path | None = None, min_confidence: float = 0.5):
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError:
            raise LandmarkerUnavailable(
                f"face landmarks need mediapipe >= 1.2: {INSTALL_HINT}"
            ) from None
        self.model_path = face_model_path(model)
        self._mp, self._task = mp, None
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=1,
            min_face_detection_confidence=min_confidence,
        )
        _ignore_profiler_signal()  # before MediaPipe starts its threads, which inherit the mask
        try:
            self._task = _quietly(lambda: vision.FaceLandmarker.create_from_options(options))
        except (RuntimeError, ValueError) as err:
            raise UnisrError(f"{self.model_path}: not a usable face landmarker ({err})") from None

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=frame)
        faces = _quietly(lambda: self._task.detect(image)).face_landmarks
        if not faces:
            return None
        height, width = frame.shape[:2]
        mesh = np.array([(p.x, p.y) for p in faces[0]], dtype=np.float64)
        return (mesh[MESH_TO_IBUG68, :] * (width, height)).astype(np.float32)

    def close(self) -> None:
        if self._task is not None:
            _quietly(self._task.close)
            self._task = None
            _ignore_profiler_signal()


def load_landmarker(face_model: str | Path | None = None) -> Landmarker:
    """The face landmarker for ``face_model`` (a ``.task`` file; default: the cached copy)."""
    return FaceLandmarker(face_model)
