"""Face landmarks per video frame, in the 68-point iBUG layout the mouth-crop pipeline uses.

Two MediaPipe backends, both offline:

* :class:`FaceMesh` (default): the legacy ``mp.solutions`` face mesh of mediapipe 0.10.21, whose
  wheel bundles its models. Later mediapipe releases removed it, and 0.10.21 needs numpy<2, so it
  lives in the optional extra ``pip install 'unisr[prepare]'``.
* :class:`TaskLandmarker`: the Tasks API ``FaceLandmarker`` of any mediapipe release, for users who
  have a ``face_landmarker.task`` model file (mediapipe ships none).

Both return the same 468/478-point mesh topology, reduced to 68 points by :data:`MESH_TO_IBUG68`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ..errors import UnisrError

INSTALL_HINT = "pip install 'unisr[prepare]'"

# Mesh vertex for each iBUG point 0..67. Derived from the mesh's own contours (mediapipe's
# face_mesh_connections: face oval, brows, eyes, nose, lips) on two real photos: contour ends and
# midline points are the iBUG anchors (eye and mouth corners, chin, nasion, nose tip, lip
# centres); the points between them are the contour vertices nearest to the iBUG spacing (equal
# arc length along the jaw, nose bridge and lips; 1/3 and 2/3 of the corner-to-corner width on
# the eyelids; the five upper-edge vertices of each brow). The subject's right side was derived
# and the left side taken as its mirror image, so the table is left/right symmetric.
MESH_TO_IBUG68: tuple[int, ...] = (
    # 0-16 jaw, from the subject's right ear (image left) over the chin (8)
    234, 93, 132, 58, 136, 150, 149, 148, 152, 377, 378, 379, 365, 288, 361, 323, 454,
    # 17-21 right brow (outer to inner), 22-26 left brow (inner to outer)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # 27-30 nose bridge (nasion to tip), 31-35 nostrils (33 below the septum)
    168, 197, 5, 1, 98, 97, 2, 326, 327,
    # 36-41 right eye, 42-47 left eye (corner, upper lid, corner, lower lid)
    33, 159, 158, 133, 153, 144, 362, 385, 386, 263, 373, 380,
    # 48-59 outer lips (48, 54 corners; 51 upper, 57 lower centre), 60-67 inner lips
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91, 78, 81, 13, 311, 308, 402, 14, 178,
)  # fmt: skip


class LandmarkerUnavailable(UnisrError):
    """No face-landmark backend can run in this environment."""


class Landmarker(ABC):
    """Finds one face per RGB frame. Frames of one video must be passed in order; call
    :meth:`reset` before the next video (trackers carry state from frame to frame)."""

    name: str

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        """RGB uint8 (H, W, 3) -> float32 (68, 2) pixel coordinates (x, y), or None (no face)."""
        mesh = self._mesh(np.ascontiguousarray(frame, dtype=np.uint8))
        if mesh is None:
            return None
        height, width = frame.shape[:2]
        return (mesh[MESH_TO_IBUG68, :2] * (width, height)).astype(np.float32)

    @abstractmethod
    def _mesh(self, frame: np.ndarray) -> np.ndarray | None:
        """The face mesh (N>=468, 2) in normalised [0, 1] image coordinates, or None."""

    @abstractmethod
    def reset(self) -> None:
        """Forget tracking state: the next frame starts a new video."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend's graph."""

    def __enter__(self) -> Landmarker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _normalised(landmarks) -> np.ndarray:
    return np.array([(p.x, p.y) for p in landmarks], dtype=np.float32)


class FaceMesh(Landmarker):
    """mediapipe 0.10.21's bundled face mesh in tracking (video) mode: a face detector finds the
    face, later frames track it from the previous landmarks (about 3 ms per frame on one core)."""

    name = "facemesh"

    def __init__(self, min_confidence: float = 0.5):
        self._solution = _legacy_face_mesh()
        self._min_confidence = min_confidence
        self._graph = None
        self.reset()

    def reset(self) -> None:
        self.close()
        self._graph = self._solution.FaceMesh(
            static_image_mode=False,
            max_num_faces=1,
            refine_landmarks=False,
            min_detection_confidence=self._min_confidence,
            min_tracking_confidence=self._min_confidence,
        )

    def _mesh(self, frame: np.ndarray) -> np.ndarray | None:
        faces = self._graph.process(frame).multi_face_landmarks
        return _normalised(faces[0].landmark) if faces else None

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None


class TaskLandmarker(Landmarker):
    """The mediapipe Tasks ``FaceLandmarker`` in video mode, from a ``.task`` model file."""

    name = "task"

    def __init__(self, model_path: str | Path, min_confidence: float = 0.5):
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise UnisrError(f"{self.model_path}: face landmarker model file not found")
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError:
            raise LandmarkerUnavailable(
                f"a .task face landmarker needs mediapipe: {INSTALL_HINT} or pip install mediapipe"
            ) from None
        self._mp, self._vision = mp, vision
        self._options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=1,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        self._task = None
        self.reset()

    def reset(self) -> None:
        self.close()
        try:
            self._task = self._vision.FaceLandmarker.create_from_options(self._options)
        except (RuntimeError, ValueError) as err:
            raise UnisrError(f"{self.model_path}: not a usable face landmarker ({err})") from None
        self._timestamp_ms = 0

    def _mesh(self, frame: np.ndarray) -> np.ndarray | None:
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=frame)
        result = self._task.detect_for_video(image, self._timestamp_ms)
        self._timestamp_ms += 40  # video mode wants increasing timestamps; 25 fps
        return _normalised(result.face_landmarks[0]) if result.face_landmarks else None

    def close(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None


def _legacy_face_mesh():
    """The ``mp.solutions.face_mesh`` module, or a LandmarkerUnavailable naming the fix."""
    try:
        import mediapipe as mp
    except ImportError:
        raise LandmarkerUnavailable(
            f"face landmarks need mediapipe 0.10.21: {INSTALL_HINT} "
            "(or pass a FaceLandmarker .task file with mediapipe installed)"
        ) from None
    solutions = getattr(mp, "solutions", None)
    if solutions is None:
        raise LandmarkerUnavailable(
            f"mediapipe {getattr(mp, '__version__', '?')} has no bundled face mesh (removed in "
            f"0.10.30): {INSTALL_HINT} to get 0.10.21, or pass a FaceLandmarker .task file"
        )
    return solutions.face_mesh


def load_landmarker(model_path: str | Path | None = None) -> Landmarker:
    """The Tasks landmarker for a ``.task`` file, else the bundled legacy face mesh."""
    if model_path is not None:
        return TaskLandmarker(model_path)
    return FaceMesh()
