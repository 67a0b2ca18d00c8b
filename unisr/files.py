"""Writing files whole or not at all, so a reader or a resumed run never sees half a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def partial_path(path: Path) -> Path:
    """Where :func:`atomic_write` writes ``path`` first: a hidden name in the same folder (so
    the rename stays on one file system) that keeps the suffix (writers that choose a format by
    it still do), and the same name each time (a killed run's leftover is overwritten, or found
    and deleted, instead of piling up)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def atomic_write(
    path: str | Path, content: bytes | str | Callable[[Path], object], fsync: bool = False
) -> None:
    """Write ``content`` (bytes, UTF-8 text, or a function that writes the file it is given)
    to :func:`partial_path`, optionally fsync it, then rename it over ``path``. On any error the
    partial file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        if isinstance(content, str):
            content = content.encode("utf-8")
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            content(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
