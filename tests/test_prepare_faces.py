"""Face landmarks and mouth crops on real photographs shipped inside wheels (scikit-image's
astronaut, matplotlib's Grace Hopper), turned into short talking videos by warping the lower lip
down and back. Needs the optional extra (mediapipe 0.10.21): `make test-prepare` runs these in
their own venv with UNISR_REQUIRE_PREPARE=1, where a missing package fails instead of skipping.
"""

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

REASON = "needs the optional extra: pip install 'unisr[prepare]' (run by make test-prepare)"
if os.environ.get("UNISR_REQUIRE_PREPARE") == "1":
    import cv2
    import mediapipe
    from skimage import data as photo_data
else:
    mediapipe = pytest.importorskip("mediapipe", reason=REASON)
    cv2 = pytest.importorskip("cv2", reason=REASON)
    photo_data = pytest.importorskip("skimage.data", reason=REASON)
    if not hasattr(mediapipe, "solutions"):
        pytest.skip(
            f"mediapipe {mediapipe.__version__} has no face mesh; {REASON}", allow_module_level=True
        )

import matplotlib.cbook  # noqa: E402
from PIL import Image  # noqa: E402

from unisr import cli, media  # noqa: E402
from unisr.errors import UnisrError  # noqa: E402
from unisr.manifest import read_manifest  # noqa: E402
from unisr.prepare import crop  # noqa: E402
from unisr.prepare.crop import CROP, STABLE_POINTS, crop_mouths, crop_video, mean_face  # noqa: E402
from unisr.prepare.landmarks import FaceMesh, TaskLandmarker  # noqa: E402

# iBUG point i of a face is point MIRROR[i] of its mirror image
MIRROR = np.array(
    [*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, *range(35, 30, -1)]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [*range(54, 47, -1), *range(59, 54, -1), *range(64, 59, -1), 67, 66, 65]
)
FRAMES = 25
WARP = 10 * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAMES) / 12))  # lower lip down, pixels


def _photos() -> dict[str, np.ndarray]:
    hopper = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    return {"astronaut": photo_data.astronaut(), "grace_hopper": np.asarray(hopper)}


PHOTOS = _photos()


@pytest.fixture(scope="module")
def mesh():
    with FaceMesh() as landmarker:
        yield landmarker


@pytest.fixture(scope="module")
def still(mesh):
    """68 landmarks of each photo."""
    found = {}
    for name, image in PHOTOS.items():
        mesh.reset()
        found[name] = mesh.detect(image)
    return found


def _talking(image: np.ndarray, points: np.ndarray, warp=WARP) -> np.ndarray:
    """Frames of ``image`` with the lower lip pushed down by ``warp`` pixels (cv2.remap)."""
    height, width = image.shape[:2]
    gap_y, lip_y, chin_y = points[[61, 62, 63, 65, 66, 67], 1].mean(), points[57, 1], points[8, 1]
    centre_x, half = points[48:60, 0].mean(), (points[54, 0] - points[48, 0]) / 2
    x, y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    across = np.exp(-(((x - centre_x) / (0.8 * half)) ** 4))
    down = np.clip((y - gap_y) / 2, 0, 1) * np.clip(1 - (y - lip_y) / (chin_y - lip_y), 0, 1)
    return np.stack(
        [
            cv2.remap(image, x, y - a * across * down, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE)
            for a in warp
        ]
    )


@pytest.mark.parametrize("name", PHOTOS)
def test_index_table_follows_face_anatomy(still, name):
    p = still[name]
    x, y = p[:, 0], p[:, 1]
    assert x[48] == x[48:68].min() and x[54] == x[48:68].max()  # mouth corners
    assert x[36] < x[39] < x[42] < x[45] and x[0] < x[36] and x[45] < x[16]
    assert y[8] == y[:17].max()  # chin
    assert y[17:27].max() < y[36:48].min()  # brows above the eyes
    assert np.all(np.diff(y[27:31]) > 0) and y[33] > y[30]  # nose bridge down to the tip
    assert y[51] < y[62] <= y[66] < y[57]  # outer upper, inner upper, inner lower, outer lower


@pytest.mark.parametrize("name", PHOTOS)
def test_index_table_is_left_right_consistent(mesh, still, name):
    image = PHOTOS[name]
    mesh.reset()
    flipped = mesh.detect(np.ascontiguousarray(image[:, ::-1]))
    back = flipped[MIRROR] * (-1, 1) + (image.shape[1], 0)
    eye_span = np.linalg.norm(still[name][45] - still[name][36])
    assert np.median(np.linalg.norm(back - still[name], axis=1)) < 0.05 * eye_span


def test_mean_face_is_reproducible_from_the_photos(still):
    """The shipped mean face: Procrustes mean of both photos and their mirror images, eyes
    level, outer eye corners 84 px apart, mouth centre at (128, 170)."""
    shapes = [s.astype(np.float64) for s in still.values()]
    shapes += [s[MIRROR] * (-1, 1) for s in shapes]
    mean = shapes[0]
    for _ in range(10):
        aligned = []
        for s in shapes:
            m = crop.similarity(s, mean)
            aligned.append(s @ m[:, :2].T + m[:, 2])
        mean = np.mean(aligned, axis=0)
        mean = (mean - mean.mean(0)) / np.linalg.norm(mean - mean.mean(0))
    eyes = mean[42:48].mean(0) - mean[36:42].mean(0)
    angle = -np.arctan2(eyes[1], eyes[0])
    mean = mean @ np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]).T
    mean *= 84.0 / np.linalg.norm(mean[45] - mean[36])
    mean += np.array([128.0, 170.0]) - mean[48:68].mean(0)
    np.testing.assert_allclose(mean_face(), mean, atol=0.05)


@pytest.fixture(scope="module", params=list(PHOTOS))
def talking(request, still):
    return request.param, _talking(PHOTOS[request.param], still[request.param])


def test_crops_follow_the_mouth_of_a_talking_face(mesh, talking):
    name, frames = talking
    mesh.reset()
    found = [mesh.detect(frame) for frame in frames]
    assert all(points is not None for points in found), "a face in every frame"

    gaps = np.array([points[66, 1] - points[62, 1] for points in found])
    assert np.corrcoef(gaps, WARP)[0, 1] > 0.85
    assert gaps[WARP > 7].mean() > gaps[WARP < 3].mean() + 2.0  # the lips part with the warp

    tracked = crop.track(found)
    transforms = crop.crop_transforms(tracked)
    centres = transforms[:, :, :2] @ np.array([CROP / 2 - 0.5] * 2) + transforms[:, :, 2]
    mouths = np.stack([points[48:68].mean(axis=0) for points in found])
    width = np.linalg.norm(found[0][54] - found[0][48])
    # centred on the detected mouth up to the smoothing of the moving lip (source pixels)
    assert np.linalg.norm(centres - mouths, axis=1).max() < 0.1 * width
    for points in tracked:  # alignment levels the eyes, whatever the head tilt
        matrix = crop.similarity(points[list(STABLE_POINTS)], mean_face()[list(STABLE_POINTS)])
        eyes = points[[36, 45]] @ matrix[:, :2].T + matrix[:, 2]
        assert abs(eyes[1, 1] - eyes[0, 1]) < 3.0

    crops = crop_mouths(frames, 25.0, mesh)
    assert crops.shape == (FRAMES, CROP, CROP) and crops.std() > 20
    assert crop.looks_like_mouth_crop(crops, mesh)
    assert not crop.looks_like_mouth_crop(frames, mesh)


def test_crop_video_file_with_audio(tmp_path, mesh, talking):
    name, frames = talking
    path = tmp_path / f"{name}.mp4"
    tone = 0.3 * np.sin(np.arange(FRAMES * 1764) / 20.0).astype(np.float32)
    media.write_video(path, frames, audio=tone, sample_rate=44100, lossless=False)
    crops = crop_video(path, mesh)
    assert crops.shape == (FRAMES, CROP, CROP)
    in_memory = crop_mouths(frames, 25.0, mesh)
    assert np.abs(crops.astype(float) - in_memory).mean() < 4.0  # only the mp4 coding differs
    audio = crop.video_audio(path, len(crops))
    assert audio.shape == (FRAMES * media.SAMPLES_PER_FRAME,) and np.abs(audio).max() > 0.2

    # what transcription reads: the face video is cropped, the crop video is kept as it is
    np.testing.assert_array_equal(crop.mouth_frames(path, landmarker=mesh), crops)
    media.write_video(tmp_path / "crops.mp4", crops)
    np.testing.assert_array_equal(crop.mouth_frames(tmp_path / "crops.mp4"), crops)


def test_blank_video_reports_no_face(tmp_path, mesh):
    path = tmp_path / "blank.mp4"
    media.write_video(path, np.zeros((FRAMES, 128, 128, 3), np.uint8))
    with pytest.raises(crop.NoFaceError, match=r"blank\.mp4: no face"):
        crop_video(path, mesh)


def test_prepare_folder_with_good_corrupt_and_faceless_videos(tmp_path, still, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    talking_frames = _talking(PHOTOS["astronaut"], still["astronaut"])
    media.write_video(src / "good.mp4", talking_frames, lossless=False)
    (src / "good.txt").write_text("Open wide.\n", encoding="utf-8")
    (src / "corrupt.mp4").write_bytes(Path(src / "good.mp4").read_bytes()[:300])
    coffee = photo_data.coffee()[:384, :512]  # a real photo without a face
    media.write_video(src / "faceless.mp4", np.stack([coffee] * 15), lossless=False)

    assert cli.main(["prepare", str(src), str(out), "--workers", "2", "--quiet"]) == 0
    rows = read_manifest(out / "manifest.tsv")
    assert [(r.id, r.frames, r.text) for r in rows] == [("good", FRAMES, "Open wide.")]
    crops, _ = media.read_video(rows[0].video)
    assert crops.shape == (FRAMES, CROP, CROP)
    summary = json.loads((out / "summary.json").read_text())
    problems = {p["video"]: p["problem"] for p in summary["problems"]}
    assert problems == {"corrupt.mp4": "unreadable", "faceless.mp4": "no face found"}
    assert "1 of 3 videos" in capsys.readouterr().out


def _legacy_task_file(path: Path) -> Path:
    """A .task bundle of mediapipe 0.10.21's own detector and mesh models: enough to exercise
    the Tasks code path (its landmarks are not meaningful; real .task files are downloads)."""
    modules = Path(mediapipe.__file__).parent / "modules"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.write(
            modules / "face_detection/face_detection_short_range.tflite", "face_detector.tflite"
        )
        bundle.write(
            modules / "face_landmark/face_landmark.tflite", "face_landmarks_detector.tflite"
        )
    return path


def test_task_landmarker_runs_a_task_file(tmp_path):
    with TaskLandmarker(_legacy_task_file(tmp_path / "face.task")) as landmarker:
        points = landmarker.detect(PHOTOS["astronaut"])
        assert points.shape == (68, 2) and points.dtype == np.float32
        assert landmarker.detect(np.zeros((256, 256, 3), np.uint8)) is None
    with pytest.raises(UnisrError, match="not found"):
        TaskLandmarker(tmp_path / "missing.task")
    (tmp_path / "bad.task").write_bytes(b"junk")
    with pytest.raises(UnisrError, match=r"bad\.task: not a usable face landmarker"):
        TaskLandmarker(tmp_path / "bad.task")


def test_transcribe_crops_a_raw_face_video_on_the_fly(official_model, tmp_path, still):
    from unisr.transcribe import read_mouth_video, transcribe

    frames = _talking(PHOTOS["grace_hopper"], still["grace_hopper"])
    tone = 0.3 * np.sin(np.arange(FRAMES * 640) / 9.0).astype(np.float32)
    raw = tmp_path / "face.mp4"
    media.write_video(raw, frames, audio=tone, lossless=False)
    crops = crop_video(raw)
    np.testing.assert_array_equal(read_mouth_video(raw), crops)
    media.write_video(tmp_path / "mouth.mp4", crops)
    np.testing.assert_array_equal(read_mouth_video(tmp_path / "mouth.mp4"), crops)
    forced = read_mouth_video(raw, cropped=True)  # taken as it is, even though it is a face
    assert forced.shape == (FRAMES, *frames.shape[1:3])
    # audio-visual decoding of the raw video: its crops and its own sound track
    assert isinstance(transcribe(official_model, video=raw, modality="av", method="ctc"), str)
