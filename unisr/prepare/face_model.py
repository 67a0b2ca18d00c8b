"""The MediaPipe Face Landmarker model file (``face_landmarker.task``): found, or fetched once.

mediapipe ships no model, so :func:`face_model_path` resolves one in this order:

1. a file the caller names (``--face-model FILE``);
2. the cached copy at ``$UNISR_FACE_MODEL``, or ``~/.cache/unisr/face_landmarker.task``
   (``$XDG_CACHE_HOME`` is honoured);
3. a download of MediaPipe's published model into that cache path, checked against its
   SHA-256 before it is kept (``$UNISR_FACE_MODEL_URL`` points at a mirror).

The download is written under a temporary name and renamed, so an interrupted or corrupt
transfer never leaves a file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import UnisrError

MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/"
    "float16/1/face_landmarker.task"
)
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
PATH_VARIABLE, URL_VARIABLE = "UNISR_FACE_MODEL", "UNISR_FACE_MODEL_URL"


class FaceModelUnavailable(UnisrError):
    """The face model file is neither given, cached nor downloadable."""


def cached_model_path() -> Path:
    """Where the face model is cached: ``$UNISR_FACE_MODEL`` or the user cache folder."""
    if os.environ.get(PATH_VARIABLE):
        return Path(os.environ[PATH_VARIABLE]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "unisr" / "face_landmarker.task"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_face_model(
    dest: Path, url: str = MODEL_URL, sha256: str = MODEL_SHA256, timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``dest``, keeping it only if its SHA-256 is ``sha256``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    hint = (
        f"download {MODEL_URL} (SHA-256 {MODEL_SHA256[:12]}...) yourself and pass it with "
        f"--face-model FILE or put it at {dest}"
    )
    print(f"fetching the face landmarker model from {url} to {dest}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
        found = sha256_of(partial)
        if found != sha256:
            raise FaceModelUnavailable(
                f"{url}: downloaded file has SHA-256 {found}, expected {sha256}; {hint}"
            )
        partial.replace(dest)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise FaceModelUnavailable(f"cannot fetch the face model ({reason}); {hint}") from None
    finally:
        partial.unlink(missing_ok=True)
    return dest


def face_model_path(model: str | Path | None = None) -> Path:
    """The face model file to use: ``model`` if given, else the cached copy (fetched once)."""
    if model is not None:
        path = Path(model).expanduser()
        if not path.is_file():
            raise FaceModelUnavailable(f"{path}: face landmarker model file not found")
        return path
    path = cached_model_path()
    if path.is_file():
        return path
    return fetch_face_model(path, os.environ.get(URL_VARIABLE) or MODEL_URL)
