"""Mouth regions of interest: any face video -> 25 fps, 96x96 grayscale mouth crops.

The conventions of the USR / auto_avsr family (the crops the official models were trained on):

1. 25 fps by picking frames at ``linspace(0, n - 1, int(n / fps * 25))`` (no blending);
2. 68 iBUG landmarks per frame (:mod:`unisr.prepare.landmarks`); frames without a face are linearly
   interpolated between detections (the ends copy the nearest one);
3. landmarks averaged over up to 6 frames either side (fewer at the ends), re-centred on the
   frame's own centroid, so shape jitter is smoothed and the face does not lag behind motion;
4. a similarity transform (rotation, uniform scale, translation) per frame, fitted by least
   squares from the stable points 28, 33, 36, 39, 42, 45, 48, 54 to the official reference mean
   face in a 256x256 frame (``assets/mean_face_20words.txt``);
5. a 96x96 crop of the aligned frame with its corner at ``round(mouth centre - 48)`` (the mean
   of points 48..67, kept inside the reference frame), bilinear, black outside the image, the
   colour rounded to 8 bits (the official warp writes an 8-bit image) and then grayscale
   0.2989 R + 0.587 G + 0.114 B.

Long videos add one rule the official pipeline (short clips) never needed: a run of more than
:data:`GAP_FRAMES` frames without a face (the speaker left the picture) is a gap, not a missed
detection. Its crops are black (:func:`face_gaps` finds them), and steps 2 and 3 work within each
stretch between gaps, so no position is made up across a gap or smeared into the faces beside it.

Only the 96x96 crop is sampled (the transform and the crop are one affine map), so cropping
costs well under a millisecond per frame. Everything here is numpy; only landmark detection needs
the optional extra.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from ..errors import UnisrError
from ..media import (
    FPS,
    MediaError,
    check_complete,
    fit_audio,
    model_audio,
    read_video,
    read_video_audio,
    upright,
)
from .face_model import FaceModelUnavailable, cached_model_path
from .landmarks import Landmarker, LandmarkerUnavailable, load_landmarker

CROP = 96
REFERENCE_SIZE = 256
STABLE_POINTS = (28, 33, 36, 39, 42, 45, 48, 54)
MOUTH = slice(48, 68)
SMOOTH_RADIUS = 6  # frames either side: the official window of 12
MIN_FRAMES = 12
GAP_FRAMES = 25  # more frames than this in a row (1 s) without a face are a gap in the video
GRAY_WEIGHTS = np.array([0.2989, 0.587, 0.114], dtype=np.float32)
MEAN_FACE_PATH = Path(__file__).resolve().parents[1] / "assets" / "mean_face_20words.txt"


class NoFaceError(UnisrError):
    """No face was found in any frame of a video."""


class TooShortError(UnisrError):
    """A video has fewer frames at 25 fps than the landmark smoothing needs."""


@lru_cache(maxsize=1)
def mean_face() -> np.ndarray:
    """The official reference face: float64 (68, 2) iBUG points in a 256x256 frame."""
    return np.loadtxt(MEAN_FACE_PATH, dtype=np.float64)


def resample_indices(n_frames: int, fps: float, target: float = FPS) -> np.ndarray:
    """Source frame indices that give ``target`` fps (all of them when the rate matches)."""
    if n_frames == 0 or abs(fps - target) < 1e-3:
        return np.arange(n_frames)
    count = int(n_frames / fps * target)
    return np.linspace(0, n_frames - 1, count).astype(np.int64)


def fill_missing(landmarks: Sequence[np.ndarray | None]) -> np.ndarray:
    """Per-frame (68, 2) landmarks or None -> (T, 68, 2), misses linearly interpolated."""
    found = [t for t, points in enumerate(landmarks) if points is not None]
    if not found:
        raise NoFaceError("no face found in any frame")
    known = np.stack([landmarks[t] for t in found]).reshape(len(found), -1).astype(np.float64)
    frames = np.arange(len(landmarks))
    filled = np.stack([np.interp(frames, found, column) for column in known.T], axis=1)
    return filled.reshape(len(landmarks), -1, 2)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def face_gaps(crops: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) frame indices of each run of all-black (T, H, W) crops: where
    :func:`crop_video` found no face, to be read as no video."""
    return _runs(crops.max(axis=tuple(range(1, crops.ndim))) == 0)


def smooth(landmarks: np.ndarray, radius: int = SMOOTH_RADIUS) -> np.ndarray:
    """Average (T, K, 2) landmarks over ``min(radius, t, T-1-t)`` frames either side of each
    frame t, then move each average onto frame t's own centroid."""
    n = len(landmarks)
    t = np.arange(n)
    width = np.minimum(radius, np.minimum(t, n - 1 - t))
    sums = np.concatenate([np.zeros_like(landmarks[:1]), np.cumsum(landmarks, axis=0)])
    average = (sums[t + width + 1] - sums[t - width]) / (2 * width + 1)[:, None, None]
    return average - average.mean(axis=1, keepdims=True) + landmarks.mean(axis=1, keepdims=True)


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation taking (K, 2) source points onto
    target points, as a (2, 3) matrix acting on (x, y, 1)."""
    src = source[:, 0] + 1j * source[:, 1]
    dst = target[:, 0] + 1j * target[:, 1]
    src_c, dst_c = src - src.mean(), dst - dst.mean()
    a = np.vdot(src_c, dst_c) / np.vdot(src_c, src_c).real  # scale * exp(i * angle)
    shift = dst.mean() - a * src.mean()
    return np.array([[a.real, -a.imag, shift.real], [a.imag, a.real, shift.imag]])


def _invert(matrix: np.ndarray) -> np.ndarray:
    linear = np.linalg.inv(matrix[:, :2])
    return np.concatenate([linear, -linear @ matrix[:, 2:]], axis=1)


def crop_transforms(landmarks: np.ndarray) -> np.ndarray:
    """Smoothed (T, 68, 2) landmarks -> (T, 2, 3) affine maps from crop pixel (x, y) to source
    pixel (x, y): alignment to the mean face, then the 96x96 window around the mouth."""
    reference = mean_face()[list(STABLE_POINTS)]
    maps = []
    for points in landmarks:
        if np.isnan(points).any():  # a gap: nothing to align
            maps.append(np.full((2, 3), np.nan))
            continue
        to_reference = similarity(points[list(STABLE_POINTS)], reference)
        mouth = points[MOUTH] @ to_reference[:, :2].T + to_reference[:, 2]
        corner = np.clip(np.round(mouth.mean(axis=0) - CROP / 2), 0, REFERENCE_SIZE - CROP)
        from_reference = _invert(to_reference)
        from_reference[:, 2] += from_reference[:, :2] @ corner  # crop (0, 0) = reference corner
        maps.append(from_reference)
    return np.stack(maps)


_GRID = np.stack(np.meshgrid(np.arange(CROP), np.arange(CROP)), axis=-1).astype(np.float64)


def crop_frame(frame: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Bilinear 96x96 grayscale crop of an RGB (H, W, 3) or gray (H, W) uint8 frame through a
    crop -> source map from :func:`crop_transforms`; pixels outside the frame are black, and
    so is all of it for a gap's NaN map."""
    if np.isnan(transform).any():
        return np.zeros((CROP, CROP), np.uint8)
    height, width = frame.shape[:2]
    image = frame.reshape(height, width, -1)
    xy = _GRID @ transform[:, :2].T + transform[:, 2]
    x0, y0 = np.floor(xy[..., 0]).astype(np.int64), np.floor(xy[..., 1]).astype(np.int64)
    fx, fy = (xy[..., 0] - x0)[..., None], (xy[..., 1] - y0)[..., None]
    out = np.zeros((CROP, CROP, image.shape[-1]))
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            x, y = x0 + dx, y0 + dy
            inside = ((x >= 0) & (x < width) & (y >= 0) & (y < height))[..., None]
            pixels = image[np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)]
            out += np.where(inside, pixels, 0) * (wx * wy)
    # colour rounded to 8 bits first, as the official warp's uint8 output is
    gray = np.round(out) @ GRAY_WEIGHTS if out.shape[-1] == 3 else out[..., 0]
    return np.clip(np.round(gray), 0, 255).astype(np.uint8)


def track(landmarks: Sequence[np.ndarray | None]) -> np.ndarray:
    """Per-frame detections (None = missed) -> filled, smoothed (T, 68, 2) landmarks, NaN in
    gaps (more than :data:`GAP_FRAMES` misses in a row); each stretch between gaps on its own."""
    if len(landmarks) < MIN_FRAMES:
        raise TooShortError(f"{len(landmarks)} frames at 25 fps, need at least {MIN_FRAMES}")
    missed = np.array([points is None for points in landmarks])
    if missed.all():
        raise NoFaceError("no face found in any frame")
    in_gap = np.zeros(len(landmarks), bool)
    for start, end in _runs(missed):
        in_gap[start:end] = end - start > GAP_FRAMES
    shape = next(points for points in landmarks if points is not None).shape
    tracked = np.full((len(landmarks), *shape), np.nan)
    for start, end in _runs(~in_gap):
        tracked[start:end] = smooth(fill_missing(landmarks[start:end]))
    return tracked


def crop_mouths(
    frames: np.ndarray, fps: float = FPS, landmarker: Landmarker | None = None
) -> np.ndarray:
    """RGB frames (T, H, W, 3) of a face video at ``fps`` -> uint8 (T', 96, 96) grayscale mouth
    crops at 25 fps. Raises :class:`NoFaceError` or :class:`TooShortError`."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UnisrError(f"expected RGB frames (T, H, W, 3), got shape {frames.shape}")
    picks = resample_indices(len(frames), fps)
    if len(picks) < MIN_FRAMES:
        raise TooShortError(f"{len(picks)} frames at 25 fps, need at least {MIN_FRAMES}")
    own = landmarker is None
    landmarker = load_landmarker() if own else landmarker
    try:
        found = {i: landmarker.detect(frames[i]) for i in np.unique(picks)}
    finally:
        if own:
            landmarker.close()
    transforms = crop_transforms(track([found[i] for i in picks]))
    return np.stack([crop_frame(frames[i], m) for i, m in zip(picks, transforms, strict=True)])


def looks_like_mouth_crop(frames: np.ndarray, landmarker: Landmarker | None = None) -> bool:
    """Cheap guess whether a video is already a mouth crop: small square frames (at most 128
    pixels a side) in which, when a landmarker is given, no face is found."""
    frames = np.asarray(frames)
    height, width = frames.shape[1:3]
    if height != width or height > 128:
        return False
    if landmarker is None:
        return True
    for i in sorted({0, len(frames) // 2, len(frames) - 1}):
        frame = frames[i] if frames.ndim == 4 else np.repeat(frames[i][..., None], 3, axis=-1)
        if landmarker.detect(frame) is not None:
            return False
    return True


def _decode(path: Path) -> Iterator[np.ndarray]:
    """RGB frames of a video file, one at a time."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield upright(frame)
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise MediaError(path, f"cannot decode video ({err.__class__.__name__}: {err})") from None


def probe_video(path: Path) -> tuple[int, float]:
    """(frame count, fps) of a video file from its packets, without decoding."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            count = sum(1 for packet in container.demux(stream) if packet.size)
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise MediaError(path, f"cannot read video ({err.__class__.__name__}: {err})") from None
    if count == 0:
        raise MediaError(path, "video has no frames")
    return count, float(rate) if rate else float(FPS)


def crop_video(path: str | Path, landmarker: Landmarker | None = None) -> np.ndarray:
    """A face video file -> uint8 (T, 96, 96) grayscale mouth crops at 25 fps; gaps without a
    face are black and said once on stderr.

    Decodes twice (landmarks, then crops) so that memory does not grow with the video length.
    Errors name the file: :class:`MediaError`, :class:`NoFaceError`, :class:`TooShortError`.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found")
    count, fps = probe_video(path)
    picks = resample_indices(count, fps)
    if len(picks) < MIN_FRAMES:
        raise TooShortError(f"{path}: {len(picks)} frames at 25 fps, need at least {MIN_FRAMES}")
    own = landmarker is None
    landmarker = load_landmarker() if own else landmarker
    wanted, found, decoded = set(picks.tolist()), {}, 0
    try:
        for index, frame in enumerate(_decode(path)):
            if index in wanted:
                found[index] = landmarker.detect(frame)
            decoded = index + 1
    finally:
        if own:
            landmarker.close()
    check_complete(path, decoded, count)  # a truncated file is refused, as everywhere
    if decoded != count:  # the packet count was off by a frame: pick again
        picks = resample_indices(decoded, fps)
    try:
        tracked = track([found.get(i) for i in picks])
    except (NoFaceError, TooShortError) as err:
        raise type(err)(f"{path}: {err}") from None
    gaps = _runs(np.isnan(tracked[:, 0, 0]))
    if gaps:
        spans = ", ".join(f"{start / FPS:.1f}-{end / FPS:.1f} s" for start, end in gaps)
        what = "1 stretch" if len(gaps) == 1 else f"{len(gaps)} stretches"
        are = "it is a gap" if len(gaps) == 1 else "they are gaps"
        print(
            f"unisr: {path}: no face in {what} ({spans}); {are} in the video stream",
            file=sys.stderr,
        )
    transforms = crop_transforms(tracked)
    crops = np.zeros((len(picks), CROP, CROP), dtype=np.uint8)
    positions = {}
    for k, index in enumerate(picks.tolist()):
        positions.setdefault(index, []).append(k)
    for index, frame in enumerate(_decode(path)):
        for k in positions.get(index, ()):
            crops[k] = crop_frame(frame, transforms[k])
    return crops


def video_audio(path: str | Path, frames: int) -> np.ndarray:
    """The audio track of a video file as float32 16 kHz mono of exactly ``frames * 640``
    samples (zeros when the file has none), whatever its rate and channels."""
    track = read_video_audio(path)
    audio = np.zeros(0, np.float32) if track is None else model_audio(*track, path)
    return fit_audio(audio, frames)


def mouth_frames(
    path: str | Path, cropped: bool | None = None, landmarker: Landmarker | None = None
) -> np.ndarray:
    """uint8 grayscale frames (T, H, W) at 25 fps of any video file: a mouth-crop video as it
    is, a face video cropped to the mouth (96x96). ``cropped=None`` guesses: small square frames
    in which no face is found (the face check needs the ``prepare`` extra and a cached face
    model; without them the frame size decides) are taken as a crop."""
    frames, fps = read_video(path, gray=True)
    if cropped is None:
        cropped = looks_like_mouth_crop(frames) and _faceless(frames, landmarker)
    if cropped:
        return frames[resample_indices(len(frames), fps)]
    return crop_video(path, landmarker)


def _faceless(frames: np.ndarray, landmarker: Landmarker | None) -> bool:
    if landmarker is not None:
        return looks_like_mouth_crop(frames, landmarker)
    if not cached_model_path().is_file():
        return True  # a guess is no reason to download the model: the frame size decides
    try:
        own = load_landmarker()
    except (LandmarkerUnavailable, FaceModelUnavailable):
        return True  # without mediapipe or a usable model, the frame size decides
    with own:
        return looks_like_mouth_crop(frames, own)
