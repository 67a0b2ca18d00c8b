"""Atomic writes: a file is replaced whole or not at all, and no partial file is left behind."""

import pytest

from unisr.files import atomic_write, partial_path


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "new" / "summary.json"
    atomic_write(path, "first")  # creates the folder
    assert path.read_text() == "first"

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fail, fsync=True)
    assert path.read_text() == "first"
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]
    atomic_write(path, lambda tmp: tmp.write_bytes(b"second"), fsync=True)
    assert path.read_bytes() == b"second"


def test_partial_files_are_hidden_and_keep_the_suffix(tmp_path):
    """Writers that pick a format by the suffix (soundfile, for one) still see it."""
    assert partial_path(tmp_path / "a" / "clip.wav") == tmp_path / "a" / ".clip.partial.wav"
