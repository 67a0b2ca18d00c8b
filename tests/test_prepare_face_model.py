"""The face model file: given, cached, or fetched once with its SHA-256 checked. Fetches go to
local ``file://`` URLs only: nothing here touches the network."""

import hashlib

import numpy as np
import pytest

from unisr import cli, media
from unisr.prepare import face_model as fm


def _source(tmp_path, content: bytes = b"model bytes" * 1000):
    path = tmp_path / "published" / "face_landmarker.task"
    path.parent.mkdir()
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def test_fetch_keeps_the_file_only_when_its_hash_matches(tmp_path):
    source, digest = _source(tmp_path)
    dest = tmp_path / "cache" / "unisr" / "face_landmarker.task"
    assert fm.fetch_face_model(dest, source.as_uri(), digest) == dest
    assert dest.read_bytes() == source.read_bytes()

    other = tmp_path / "other" / "face_landmarker.task"
    with pytest.raises(fm.FaceModelUnavailable, match=f"SHA-256 {digest}, expected 0+; "):
        fm.fetch_face_model(other, source.as_uri(), "0" * 64)
    assert list(other.parent.iterdir()) == []  # neither the file nor a partial download


def test_cache_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(fm.PATH_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fm.cached_model_path() == tmp_path / "xdg" / "unisr" / "face_landmarker.task"
    monkeypatch.setenv(fm.PATH_VARIABLE, str(tmp_path / "models" / "face.task"))
    assert fm.cached_model_path() == tmp_path / "models" / "face.task"


def test_published_model_is_fetched_once_into_the_cache(tmp_path, monkeypatch, face_model):
    assert fm.sha256_of(face_model) == fm.MODEL_SHA256  # the fixture is the published file
    mirror = tmp_path / "mirror" / "face_landmarker.task"
    mirror.parent.mkdir()
    mirror.write_bytes(face_model.read_bytes())
    cached = tmp_path / "cache" / "face_landmarker.task"
    monkeypatch.setenv(fm.PATH_VARIABLE, str(cached))
    monkeypatch.setenv(fm.URL_VARIABLE, mirror.as_uri())
    assert fm.face_model_path() == cached and fm.sha256_of(cached) == fm.MODEL_SHA256
    mirror.unlink()
    assert fm.face_model_path() == cached  # from the cache: no second fetch
    assert fm.face_model_path(face_model) == face_model  # a given file comes first
    with pytest.raises(fm.FaceModelUnavailable, match=r"nothere\.task: .*not found"):
        fm.face_model_path(tmp_path / "nothere.task")


def test_offline_without_the_model_file_is_one_clear_line(tmp_path, monkeypatch, capsys):
    src = tmp_path / "videos"
    src.mkdir()
    media.write_video(src / "a.mp4", np.zeros((12, 64, 64, 3), np.uint8))
    monkeypatch.setenv(fm.PATH_VARIABLE, str(tmp_path / "cache" / "face_landmarker.task"))
    monkeypatch.setenv(fm.URL_VARIABLE, (tmp_path / "unreachable.task").as_uri())
    assert cli.main(["prepare", str(src), str(tmp_path / "out"), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("fetching the face landmarker model from file://")
    assert len(lines) == 2 and lines[1].startswith("unisr prepare: error: cannot fetch")
    assert fm.MODEL_URL in lines[1] and "--face-model FILE" in lines[1]
    assert not (tmp_path / "cache" / "face_landmarker.task").exists()


def test_guessing_whether_a_video_is_a_mouth_crop_never_fetches(tmp_path, monkeypatch, capsys):
    from unisr.prepare.crop import mouth_frames

    monkeypatch.setenv(fm.PATH_VARIABLE, str(tmp_path / "cache" / "face_landmarker.task"))
    clip = np.random.default_rng(0).integers(0, 255, (12, 96, 96), dtype=np.uint8)
    media.write_video(tmp_path / "mouth.mp4", clip)
    np.testing.assert_array_equal(mouth_frames(tmp_path / "mouth.mp4"), clip)
    assert capsys.readouterr().err == ""  # no fetch was tried: the frame size decided
