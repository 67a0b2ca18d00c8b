"""Face landmarks and mouth crops with MediaPipe's Face Landmarker on real faces: the official
pipeline's crops and landmarks of two videos of a real face (../shared/fixtures/official_crops),
and photographs shipped inside wheels (scikit-image's astronaut, matplotlib's Grace Hopper) turned
into short talking videos by warping the lower lip down and back. The face model file is the
fixture's copy: nothing is downloaded.
"""

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import matplotlib.cbook
import numpy as np
import pytest
from PIL import Image
from skimage import data as photo_data

from unisr import cli, media
from unisr.errors import UnisrError
from unisr.manifest import read_manifest
from unisr.prepare import crop
from unisr.prepare.crop import CROP, GRAY_WEIGHTS, STABLE_POINTS, crop_mouths, crop_video, mean_face
from unisr.prepare.landmarks import FaceLandmarker

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
def mesh(face_model):
    with FaceLandmarker(face_model) as landmarker:
        yield landmarker


@pytest.fixture(scope="module")
def still(mesh):
    """68 landmarks of each photo."""
    return {name: mesh.detect(image) for name, image in PHOTOS.items()}


OFFICIAL = ("static", "moving")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, crops_dir, face_model):
    """``unisr prepare`` of the two official-crop videos: {name: (our crops, manifest row)}."""
    src, out = tmp_path_factory.mktemp("official_src"), tmp_path_factory.mktemp("official_out")
    for name in OFFICIAL:
        (src / f"{name}.mp4").symlink_to(crops_dir / f"{name}.mp4")
    argv = ["prepare", str(src), str(out), "--face-model", str(face_model), "--quiet"]
    assert cli.main(argv) == 0
    return {
        row.id: (media.read_video(row.video)[0], row) for row in read_manifest(out / "manifest.tsv")
    }


@pytest.mark.parametrize("name", OFFICIAL)
def test_prepare_gives_the_official_crops(prepared, crops_dir, name):
    crops, row = prepared[name]
    official = np.load(crops_dir / f"{name}_crops_rgb.npy").astype(np.float64) @ GRAY_WEIGHTS
    assert crops.shape == official.shape == (50, CROP, CROP) and row.frames == 50
    difference = np.abs(crops.astype(np.float64) - official)
    # our crops are uint8 gray: rounding alone costs 0.25 on average; a 1 px offset costs 4-6
    assert difference.mean() <= 1.0, difference.mean()
    assert np.percentile(difference, 99) <= 1.0


@pytest.mark.parametrize("name", OFFICIAL)
def test_landmarks_are_the_official_ones(mesh, crops_dir, name):
    frames, _ = media.read_video(crops_dir / f"{name}.mp4", gray=False)
    ours = np.stack([mesh.detect(frame) for frame in frames])
    official = np.load(crops_dir / f"{name}_landmarks68.npy")
    error = np.linalg.norm(ours - official, axis=-1)
    assert error[:, 48:68].max() <= 0.5 and error.max() <= 0.5, error.max()


def test_mean_face_is_the_official_one(crops_dir):
    np.testing.assert_array_equal(mean_face(), np.load(crops_dir / "mean_face_20words.npy"))


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
            cv2.remap(
                image,
                x,
                (y - a * across * down).astype(np.float32),
                cv2.INTER_LINEAR,
                cv2.BORDER_REPLICATE,
            )
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
    flipped = mesh.detect(np.ascontiguousarray(image[:, ::-1]))
    back = flipped[MIRROR] * (-1, 1) + (image.shape[1], 0)
    eye_span = np.linalg.norm(still[name][45] - still[name][36])
    assert np.median(np.linalg.norm(back - still[name], axis=1)) < 0.05 * eye_span


@pytest.fixture(scope="module", params=list(PHOTOS))
def talking(request, still):
    return request.param, _talking(PHOTOS[request.param], still[request.param])


def test_crops_follow_the_mouth_of_a_talking_face(mesh, talking):
    name, frames = talking
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


def test_prepare_folder_with_good_corrupt_and_faceless_videos(tmp_path, still, face_model, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    talking_frames = _talking(PHOTOS["astronaut"], still["astronaut"])
    media.write_video(src / "good.mp4", talking_frames, lossless=False)
    (src / "good.txt").write_text("Open wide.\n", encoding="utf-8")
    (src / "corrupt.mp4").write_bytes(Path(src / "good.mp4").read_bytes()[:300])
    coffee = photo_data.coffee()[:384, :512]  # a real photo without a face
    media.write_video(src / "faceless.mp4", np.stack([coffee] * 15), lossless=False)

    argv = ["prepare", str(src), str(out), "--workers", "2", "--face-model", str(face_model)]
    assert cli.main([*argv, "--quiet"]) == 0
    rows = read_manifest(out / "manifest.tsv")
    assert [(r.id, r.frames, r.text) for r in rows] == [("good", FRAMES, "Open wide.")]
    crops, _ = media.read_video(rows[0].video)
    assert crops.shape == (FRAMES, CROP, CROP)
    summary = json.loads((out / "summary.json").read_text())
    problems = {p["video"]: p["problem"] for p in summary["problems"]}
    assert problems == {"corrupt.mp4": "unreadable", "faceless.mp4": "no face found"}
    assert "1 of 3 videos" in capsys.readouterr().out


def test_face_landmarker_errors_name_the_model_file(tmp_path):
    with pytest.raises(UnisrError, match=r"missing\.task: face landmarker model file not found"):
        FaceLandmarker(tmp_path / "missing.task")
    (tmp_path / "bad.task").write_bytes(b"junk")
    with pytest.raises(UnisrError, match=r"bad\.task: not a usable face landmarker"):
        FaceLandmarker(tmp_path / "bad.task")


DETECT_ONCE = """
import os, signal
import numpy as np
from unisr.prepare.landmarks import FaceLandmarker
with FaceLandmarker({model!r}) as landmarker:
    print(landmarker.detect(np.zeros((240, 320, 3), np.uint8)))
signal.signal(signal.SIGPROF, signal.SIG_DFL)  # as MediaPipe's profiler may leave it
os.kill(os.getpid(), signal.SIGPROF)  # blocked: it cannot end the process
"""


def test_mediapipe_logs_and_profiler_signal_stay_out_of_the_way(face_model, monkeypatch):
    def stderr(**env) -> str:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        code = DETECT_ONCE.format(model=str(face_model))
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert run.returncode == 0 and run.stdout.strip() == "None", run.stderr
        return run.stderr

    monkeypatch.delenv("UNISR_MEDIAPIPE_LOG", raising=False)
    assert stderr() == ""
    assert "face_landmarker_graph" in stderr(UNISR_MEDIAPIPE_LOG="1")


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
    assert isinstance(
        transcribe(official_model, video=raw, modality="av", method="ctc")["text"], str
    )


def _phone_video(path: Path, upright: np.ndarray, sound: np.ndarray) -> None:
    """An mp4 as a phone records it held upright: 30 fps H.264 stored sideways with a display
    rotation of -90 degrees, and a 48 kHz stereo AAC track (``sound`` is (S, 2))."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.pix_fmt, video.height, video.width = "yuv420p", *upright.shape[2:0:-1]
        video.set_display_rotation(-90)
        audio = container.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        for image in upright:
            stored = np.ascontiguousarray(np.rot90(image, 1))  # -90 on display: upright again
            container.mux(video.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        container.mux(video.encode())
        for start in range(0, len(sound), 1024):
            chunk = np.ascontiguousarray(sound[start : start + 1024].T, dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())


def test_a_phone_video_transcribes_as_it_comes(official_model, tmp_path, still):
    from unisr.transcribe import audio_samples, read_mouth_video, transcribe

    warp = 10 * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(36) / 14))
    upright = _talking(PHOTOS["grace_hopper"], still["grace_hopper"], warp)[:, :598, :510]
    seconds = np.arange(int(1.2 * 48000)) / 48000
    sound = 0.3 * np.stack([np.sin(2 * np.pi * 220 * seconds), np.sin(2 * np.pi * 330 * seconds)])
    phone = tmp_path / "phone.mp4"
    _phone_video(phone, upright, sound.T)

    crops = read_mouth_video(phone)  # 36 frames at 30 fps, shown upright -> 30 at 25 fps
    assert crops.shape == (30, CROP, CROP)
    in_memory = crop_mouths(upright, 30.0)
    assert np.abs(crops.astype(float) - in_memory).mean() < 4.0  # only the H.264 coding differs
    samples = audio_samples(None, phone)  # mixed down and resampled to 16 kHz
    assert abs(len(samples) - 1.2 * 16000) <= 2048 * 16000 / 48000
    spectrum = np.abs(np.fft.rfft(samples[2000:18000]))
    assert {round(f) for f in np.argsort(spectrum)[-2:]} == {220, 330}  # 1 Hz bins: both kept
    assert isinstance(
        transcribe(official_model, video=phone, modality="av", method="ctc")["text"], str
    )
