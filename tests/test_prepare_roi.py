"""Mouth-crop geometry and the prepare pipeline with a stand-in landmarker (no mediapipe needed).

The stand-in "detects" the mean face under a known similarity transform, so every expected crop
is known exactly: a pattern drawn in the reference frame must come back out of the crop.
"""

import builtins
import json

import numpy as np
import pytest

from unisr import cli, media
from unisr.errors import UnisrError
from unisr.manifest import read_manifest
from unisr.prepare import crop, landmarks
from unisr.prepare.crop import CROP, crop_mouths, crop_video, looks_like_mouth_crop, mean_face


def _similarity(scale: float, angle: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, shift[0]], [s, c, shift[1]]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _pattern() -> np.ndarray:
    """A smooth 256x256 gray pattern in the reference frame (bilinear sampling is exact enough)."""
    y, x = np.mgrid[0:256, 0:256].astype(np.float64)
    return 128 + 60 * np.sin(x / 9.0) + 50 * np.cos(y / 7.0 + x / 23.0)


def _render(reference: np.ndarray, to_source: np.ndarray, size=(240, 320)) -> np.ndarray:
    """The RGB source frame showing ``reference`` mapped through ``to_source``."""
    inverse = crop._invert(to_source)
    y, x = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float64)
    rx = inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]
    ry = inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]
    from scipy.ndimage import map_coordinates

    gray = map_coordinates(reference, [ry, rx], order=1, cval=0.0)
    return np.repeat(np.clip(np.round(gray), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


class StandIn(landmarks.Landmarker):
    """Finds the mean face under ``to_source`` in every frame that is not black."""

    name = "stand-in"

    def __init__(self, to_source: np.ndarray):
        self.to_source, self.calls = to_source, 0

    def detect(self, frame):
        self.calls += 1
        if frame.max() < 10:
            return None
        return _apply(self.to_source, mean_face()).astype(np.float32)

    def close(self):
        pass


TO_SOURCE = _similarity(0.8, 0.2, (40.0, -30.0))
SMALL = 120  # a small square frame, as a mouth crop has, showing a whole face:
SMALL_TO_SOURCE = _similarity(0.5, 0.1, (SMALL / 2, SMALL / 2))
SMALL_TO_SOURCE[:, 2] -= SMALL_TO_SOURCE[:, :2] @ mean_face()[48:68].mean(axis=0)  # mouth centred


def _expected_crop(reference: np.ndarray) -> np.ndarray:
    corner = np.round(mean_face()[48:68].mean(axis=0) - CROP / 2).astype(int)
    return reference[corner[1] : corner[1] + CROP, corner[0] : corner[0] + CROP]


def test_crop_recovers_the_reference_pattern_through_a_rotation_and_scale():
    reference = _pattern()
    frames = np.stack([_render(reference, TO_SOURCE)] * 14)
    crops = crop_mouths(frames, 25.0, StandIn(TO_SOURCE))
    assert crops.shape == (14, CROP, CROP) and crops.dtype == np.uint8
    error = np.abs(crops.astype(float) - _expected_crop(reference))
    assert error.mean() < 1.0 and np.percentile(error, 99) < 3  # 1 px off gives a mean of 5


def test_missed_frames_are_interpolated_between_detections():
    points = [np.full((68, 2), 10.0), None, None, np.full((68, 2), 40.0), None]
    filled = crop.fill_missing(points)
    assert filled[:, 0, 0].tolist() == [10.0, 20.0, 30.0, 40.0, 40.0]
    with pytest.raises(crop.NoFaceError, match="no face"):
        crop.fill_missing([None] * 20)


def test_smoothing_removes_shape_jitter_but_follows_the_face():
    rng = np.random.default_rng(0)
    base = mean_face()
    moving = np.stack([base + (3.0 * t, 0.0) + rng.normal(0, 1.0, base.shape) for t in range(30)])
    smoothed = crop.smooth(moving)
    truth = np.stack([base + (3.0 * t, 0.0) for t in range(30)])
    middle = slice(6, 24)
    assert np.abs(smoothed - truth)[middle].std() < 0.5 * np.abs(moving - truth)[middle].std()
    # centroids are the frames' own: no lag behind the motion
    np.testing.assert_allclose(smoothed.mean(axis=1), moving.mean(axis=1), atol=1e-9)
    np.testing.assert_array_equal(smoothed[0], moving[0])  # no neighbours either side at the ends


def test_similarity_is_exact_on_transformed_points():
    points = mean_face()[list(crop.STABLE_POINTS)]
    matrix = _similarity(1.7, -0.4, (12.0, 5.0))
    np.testing.assert_allclose(crop.similarity(points, _apply(matrix, points)), matrix)


def test_frame_rate_is_resampled_by_picking_frames():
    np.testing.assert_array_equal(crop.resample_indices(5, 25.0), np.arange(5))
    picks = crop.resample_indices(60, 30.0)
    assert len(picks) == 50 and picks[0] == 0 and picks[-1] == 59
    assert np.all(np.diff(picks) >= 1)
    assert len(crop.resample_indices(30, 15.0)) == 50  # upsampling repeats frames


def test_too_short_and_wrong_shape_are_reported():
    frames = np.stack([_render(_pattern(), TO_SOURCE)] * 11)
    with pytest.raises(crop.TooShortError, match="11 frames"):
        crop_mouths(frames, 25.0, StandIn(TO_SOURCE))
    with pytest.raises(UnisrError, match="RGB frames"):
        crop_mouths(frames[..., 0], 25.0, StandIn(TO_SOURCE))


def test_looks_like_mouth_crop_by_frame_size():
    assert looks_like_mouth_crop(np.zeros((5, 96, 96), np.uint8))
    assert not looks_like_mouth_crop(np.zeros((5, 96, 128), np.uint8))
    assert not looks_like_mouth_crop(np.zeros((5, 256, 256, 3), np.uint8))


def test_small_square_videos_are_cropped_when_a_face_is_found_and_kept_when_not(tmp_path):
    """Small square frames look like a mouth crop; when a face is found in them (here only in
    the last frame) the video is a face video and comes out as its mouth crops, else as it is."""
    reference = _pattern()
    frames = np.zeros((14, SMALL, SMALL, 3), np.uint8)  # black: the stand-in finds no face
    frames[-1] = _render(reference, SMALL_TO_SOURCE, size=(SMALL, SMALL))
    late_face = tmp_path / "late_face.mp4"
    media.write_video(late_face, frames)
    crops = crop.mouth_frames(late_face, landmarker=StandIn(SMALL_TO_SOURCE))
    assert crops.shape == (14, CROP, CROP) and crops[:-1].max() == 0
    assert np.abs(crops[-1].astype(float) - _expected_crop(reference)).mean() < 1.0

    faceless = tmp_path / "faceless.mp4"
    clip = np.random.default_rng(0).integers(0, 10, (14, SMALL, SMALL), dtype=np.uint8)
    media.write_video(faceless, clip)
    np.testing.assert_array_equal(crop.mouth_frames(faceless, landmarker=StandIn(TO_SOURCE)), clip)


def test_index_table_is_a_68_point_selection_of_the_mesh():
    table = landmarks.MESH_TO_IBUG68
    assert len(table) == 68 and len(set(table)) == 68 and max(table) < 468
    assert table[8] == 152 and table[51] == 0 and table[57] == 17  # chin, lip centres


def test_missing_mediapipe_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_mediapipe(name, *args, **kwargs):
        if name.startswith("mediapipe"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mediapipe)
    with pytest.raises(landmarks.LandmarkerUnavailable, match=r"pip install 'unisr\[prepare\]'"):
        landmarks.load_landmarker()


def test_crop_video_resamples_30_fps_and_fits_the_audio(tmp_path):
    references = [0.5 * _pattern() + 3.0 * k for k in range(36)]  # every frame its own
    frames = np.stack([_render(reference, TO_SOURCE) for reference in references])
    audio = np.sin(np.arange(int(1.2 * 44100)) / 30.0).astype(np.float32) * 0.3
    path = tmp_path / "face.mp4"
    media.write_video(path, frames, fps=30, audio=audio, sample_rate=44100)
    stand_in = StandIn(TO_SOURCE)
    crops = crop_video(path, stand_in)
    assert crops.shape == (30, CROP, CROP) and stand_in.calls == 30
    picks = np.linspace(0, 35, 30).astype(int)  # 30 of the 36 frames, spread evenly
    for k, crop_k in zip(picks, crops, strict=True):
        assert np.abs(crop_k.astype(float) - _expected_crop(references[k])).mean() < 1.0, k
    sound = crop.video_audio(path, len(crops))
    assert sound.shape == (30 * media.SAMPLES_PER_FRAME,) and np.abs(sound).max() > 0.2


class Posed(landmarks.Landmarker):
    """Finds the mean face under ``poses[k]`` in the k-th frame asked, or nothing where that
    is None (frames asked in order: one call per frame at 25 fps)."""

    name = "posed"

    def __init__(self, poses):
        self.poses, self.calls = poses, 0

    def detect(self, frame):
        pose = self.poses[self.calls]
        self.calls += 1
        return None if pose is None else _apply(pose, mean_face()).astype(np.float32)

    def close(self):
        pass


def test_a_second_without_a_face_is_a_black_gap_said_once(tmp_path, capsys):
    """Frames 5-8 are missed (interpolated, as officially); frames 30-59 are a gap, after which
    the face comes back smaller and turned: the crops beside the gap follow their own stretch."""
    back = _similarity(0.6, -0.3, (90.0, 10.0))
    poses = [TO_SOURCE] * 30 + [None] * 30 + [back] * 15
    references = [0.5 * _pattern() + k for k in range(len(poses))]
    frames = [_render(r, TO_SOURCE if p is None else p) for r, p in zip(references, poses)]
    path = tmp_path / "clip.mp4"
    media.write_video(path, np.stack(frames))  # the face is in the picture all along
    detected = [None if 5 <= k < 9 else pose for k, pose in enumerate(poses)]

    crops = crop_video(path, Posed(detected))
    assert crops.shape == (75, CROP, CROP) and crops[30:60].max() == 0
    assert crop.face_gaps(crops) == [(30, 60)]
    for k in [*range(30), *range(60, 75)]:
        assert np.abs(crops[k].astype(float) - _expected_crop(references[k])).mean() < 1.0, k
    assert capsys.readouterr().err == (
        f"unisr: {path}: no face in 1 stretch (1.2-2.4 s); it is a gap in the video stream\n"
    )


def test_gaps_begin_after_a_second_of_misses():
    face = mean_face()
    assert np.isfinite(crop.track([None] * 25 + [face] * 20)).all()  # the end copies the face
    tracked = crop.track([None] * 26 + [face] * 20 + [None] * 26 + [face + 1.0] * 3)
    assert np.isnan(tracked[:26]).all() and np.isnan(tracked[46:72]).all()
    np.testing.assert_allclose(tracked[26:46], np.broadcast_to(face, (20, 68, 2)))
    np.testing.assert_allclose(tracked[72:], np.broadcast_to(face + 1.0, (3, 68, 2)))
    with pytest.raises(crop.NoFaceError, match="no face"):
        crop.track([None] * 40)
    black = np.ones((9, 4, 4), np.uint8)
    black[:2] = black[5] = black[8] = 0
    assert crop.face_gaps(black) == [(0, 2), (5, 6), (8, 9)]


def test_mouth_frames_crops_face_videos_and_keeps_mouth_crops(tmp_path):
    reference = _pattern()
    face = tmp_path / "face.mp4"
    media.write_video(face, np.stack([_render(reference, TO_SOURCE)] * 12))
    crops = crop.mouth_frames(face, landmarker=StandIn(TO_SOURCE))  # 240x320: a face video
    assert crops.shape == (12, CROP, CROP)
    assert np.abs(crops.astype(float) - _expected_crop(reference)).mean() < 1.0

    mouth = tmp_path / "mouth.mp4"
    clip = np.random.default_rng(0).integers(0, 10, (36, CROP, CROP), dtype=np.uint8)  # faceless
    media.write_video(mouth, clip, fps=30)
    kept = crop.mouth_frames(mouth, landmarker=StandIn(TO_SOURCE))
    np.testing.assert_array_equal(kept, clip[crop.resample_indices(36, 30.0)])
    forced = crop.mouth_frames(face, cropped=True)  # no landmarks needed
    assert forced.shape == (12, 240, 320)


def _corpus(folder):
    """good.mp4 (+ transcript), blank.mp4 (no face), short.mp4, broken.mp4, notes.txt."""
    folder.mkdir()
    face = _render(_pattern(), TO_SOURCE)
    media.write_video(folder / "good.mp4", np.stack([face] * 20), lossless=False)
    (folder / "good.txt").write_text("hello\nworld \n", encoding="utf-8")
    (folder / "sub").mkdir()
    media.write_video(folder / "sub" / "blank.mp4", np.zeros((15, 64, 64, 3), np.uint8))
    media.write_video(folder / "short.mp4", np.stack([face] * 5))
    (folder / "broken.mp4").write_bytes(b"\x00\x01not a video" * 100)
    (folder / "notes.txt").write_text("not a video", encoding="utf-8")


def test_prepare_writes_crops_manifest_and_summary_and_resumes(tmp_path, monkeypatch, capsys):
    stand_in = StandIn(TO_SOURCE)
    monkeypatch.setattr("unisr.prepare.folder.load_landmarker", lambda face_model=None: stand_in)
    src, out = tmp_path / "src", tmp_path / "out"
    _corpus(src)
    assert cli.main(["prepare", str(src), str(out), "--quiet"]) == 0
    printed = capsys.readouterr()
    assert "1 of 4 videos" in printed.out
    assert "skipped sub/blank.mp4: no face found" in printed.err

    rows = read_manifest(out / "manifest.tsv")
    assert [(r.id, r.frames, r.text) for r in rows] == [("good", 20, "hello world")]
    clip, _ = media.read_video(rows[0].video)
    assert clip.shape == (20, CROP, CROP)
    assert np.abs(clip.astype(float) - _expected_crop(_pattern())).mean() < 4.0  # yuv420p source
    assert len(media.read_audio(rows[0].audio)) == 20 * media.SAMPLES_PER_FRAME

    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {
        "processed": 1,
        "no face found": 1,
        "too short": 1,
        "unreadable": 1,
    }
    problems = {p["video"]: p["problem"] for p in summary["problems"]}
    assert problems == {
        "broken.mp4": "unreadable",
        "short.mp4": "too short",
        "sub/blank.mp4": "no face found",
    }

    calls = stand_in.calls
    assert cli.main(["prepare", str(src), str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["already prepared"] == 1 and summary["counts"]["processed"] == 0
    assert stand_in.calls - calls == 15  # only the blank video was looked at again
    assert [r.id for r in read_manifest(out / "manifest.tsv")] == ["good"]


def test_prepare_rejects_a_folder_without_videos(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("x")
    assert cli.main(["prepare", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "no videos found" in capsys.readouterr().err
