"""Corpus manifests: our typed TSV and the two CSV dialects of the USR / auto_avsr family.

Typed manifest (``.tsv``, UTF-8, header line): columns ``id video audio frames text`` and
optionally ``tokens speaker split``. Paths are relative to the manifest's folder (or absolute);
``frames`` counts 25 fps frames; ``tokens`` are space-separated ids (empty: tokenise ``text`` at
load time).

USR dialect (no header): ``tag,rel_path,frame_count,token_ids``. ``rel_path`` is relative to a
root chosen by ``tag``; audio is the same path with ``.wav`` (under the tag's audio root, which
defaults to its video root).

auto_avsr dialect (no header): ``dataset,rel_path,input_length,token_ids``. ``rel_path`` is
relative to ``<root>/<dataset>/``; audio is the same path with ``.wav``. The files usually live in
``<root>/labels/``, so ``<root>`` defaults to the labels folder's parent.

Every reader returns :class:`ManifestRow` with absolute paths. A malformed line raises
:class:`ManifestError` naming the file and the line number.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import UnisrError
from .files import atomic_write

REQUIRED_COLUMNS = ("id", "video", "audio", "frames", "text")
OPTIONAL_COLUMNS = ("tokens", "speaker", "split")
AUTO_AVSR_MARKERS = ("_video_seg", "_audio_seg")

RootsArg = str | Path | Mapping[str, str | Path] | None


class ManifestError(UnisrError):
    """A manifest file is missing or has a malformed line."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass
class ManifestRow:
    """One utterance: a mouth video, its 16 kHz audio, and a transcript and/or token ids."""

    id: str
    video: str
    audio: str
    frames: int
    text: str = ""
    tokens: list[int] | None = None
    speaker: str = ""
    split: str = ""


def _parse_tokens(field: str, path: Path, line: int) -> list[int] | None:
    field = field.strip()
    if not field:
        return None
    try:
        tokens = [int(t) for t in field.split()]
    except ValueError:
        raise ManifestError(path, f"token ids must be integers, got {field!r}", line) from None
    if any(t < 0 for t in tokens):
        raise ManifestError(path, "token ids must be non-negative", line)
    return tokens


def _parse_frames(field: str, path: Path, line: int) -> int:
    try:
        frames = int(field)
    except ValueError:
        raise ManifestError(path, f"frame count must be an integer, got {field!r}", line) from None
    if frames < 0:
        raise ManifestError(path, f"frame count must be >= 0, got {frames}", line)
    return frames


def _resolve(base: Path, value: str) -> str:
    p = Path(value)
    return str(p if p.is_absolute() else (base / p).resolve())


def _open_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ManifestError(path, "file not found")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()  # a BOM is not data
    except UnicodeDecodeError as err:
        raise ManifestError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from None


# ---------------------------------------------------------------- typed TSV


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read a typed ``.tsv`` manifest; paths come back absolute."""
    path = Path(path)
    lines = _open_lines(path)
    if not lines:
        raise ManifestError(path, "empty file (expected a header line)")
    header = lines[0].split("\t")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(path, f"header lacks column(s) {', '.join(missing)}", 1)
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise ManifestError(path, f"unknown column(s) {', '.join(unknown)}", 1)
    base = path.parent.resolve()
    rows, seen = [], set()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ManifestError(
                path, f"expected {len(header)} tab-separated fields, got {len(fields)}", number
            )
        rec = dict(zip(header, fields, strict=True))
        if not rec["id"]:
            raise ManifestError(path, "empty id", number)
        if rec["id"] in seen:
            raise ManifestError(path, f"duplicate id {rec['id']!r}", number)
        seen.add(rec["id"])
        if not rec["video"] or not rec["audio"]:
            raise ManifestError(path, "empty video or audio path", number)
        rows.append(
            ManifestRow(
                id=rec["id"],
                video=_resolve(base, rec["video"]),
                audio=_resolve(base, rec["audio"]),
                frames=_parse_frames(rec["frames"], path, number),
                text=rec["text"],
                tokens=_parse_tokens(rec.get("tokens", ""), path, number),
                speaker=rec.get("speaker", ""),
                split=rec.get("split", ""),
            )
        )
    return rows


def _relative(value: str, base: Path) -> str:
    p = Path(value)
    if not p.is_absolute():
        return value
    try:
        return p.resolve().relative_to(base).as_posix()
    except ValueError:
        return str(p)


def write_manifest(path: str | Path, rows: Iterable[ManifestRow]) -> None:
    """Write a typed ``.tsv`` manifest atomically (temp file + rename).

    Absolute paths under the manifest's folder are stored relative to it, so a corpus can move.
    Optional columns are written only when some row uses them.
    """
    path = Path(path)
    rows = list(rows)
    base = path.parent.resolve()
    columns = list(REQUIRED_COLUMNS)
    if any(r.tokens is not None for r in rows):
        columns.append("tokens")
    if any(r.speaker for r in rows):
        columns.append("speaker")
    if any(r.split for r in rows):
        columns.append("split")
    out = ["\t".join(columns)]
    for r in rows:
        values = {
            "id": r.id,
            "video": _relative(str(r.video), base),
            "audio": _relative(str(r.audio), base),
            "frames": str(int(r.frames)),
            "text": r.text,
            "tokens": " ".join(map(str, r.tokens)) if r.tokens is not None else "",
            "speaker": r.speaker,
            "split": r.split,
        }
        for key in columns:
            if any(c in values[key] for c in "\t\r\n"):
                raise ManifestError(path, f"row {r.id!r}: field {key!r} contains a tab or newline")
        out.append("\t".join(values[c] for c in columns))
    atomic_write(path, "\n".join(out) + "\n")


# ---------------------------------------------------------------- CSV dialects


def _csv_records(path: Path):
    lines = _open_lines(path)
    for number, fields in enumerate(csv.reader(lines), start=1):
        if not fields or not "".join(fields).strip():
            continue
        if len(fields) not in (3, 4):
            raise ManifestError(
                path, f"expected 4 comma-separated fields, got {len(fields)}", number
            )
        tag, rel, count = (f.strip() for f in fields[:3])
        if not tag or not rel:
            raise ManifestError(path, "empty dataset tag or path", number)
        tokens = _parse_tokens(fields[3] if len(fields) == 4 else "", path, number)
        yield number, tag, rel, _parse_frames(count, path, number), tokens


def _root_for(roots: RootsArg, tag: str, default: Path, path: Path, line: int) -> Path:
    if roots is None:
        return default
    if isinstance(roots, str | Path):
        return Path(roots)
    if tag in roots:
        return Path(roots[tag])
    raise ManifestError(path, f"no root directory given for dataset tag {tag!r}", line)


def _row_id(rel: str) -> str:
    return Path(rel).with_suffix("").as_posix()


def read_usr_csv(
    path: str | Path, roots: RootsArg = None, audio_roots: RootsArg = None
) -> list[ManifestRow]:
    """Read the USR dialect. ``roots``: one folder or ``{tag: folder}`` (default: the CSV's
    folder); ``audio_roots`` likewise for the ``.wav`` files (default: ``roots``)."""
    path = Path(path)
    default = path.parent.resolve()
    rows = []
    for number, tag, rel, frames, tokens in _csv_records(path):
        video_root = _root_for(roots, tag, default, path, number)
        audio_root = _root_for(audio_roots, tag, video_root, path, number)
        rows.append(
            ManifestRow(
                id=f"{tag}/{_row_id(rel)}",
                video=str((video_root / rel).resolve()),
                audio=str((audio_root / rel).with_suffix(".wav").resolve()),
                frames=frames,
                tokens=tokens,
            )
        )
    return rows


def read_auto_avsr_csv(path: str | Path, root: str | Path | None = None) -> list[ManifestRow]:
    """Read the auto_avsr dialect; files live at ``root/dataset/rel_path``. ``root`` defaults to
    the parent of a ``labels/`` folder holding the CSV, else the CSV's folder."""
    path = Path(path)
    if root is None:
        folder = path.parent.resolve()
        root = folder.parent if folder.name == "labels" else folder
    root = Path(root)
    rows = []
    for _, dataset, rel, frames, tokens in _csv_records(path):
        video = (root / dataset / rel).resolve()
        rows.append(
            ManifestRow(
                id=f"{dataset}/{_row_id(rel)}",
                video=str(video),
                audio=str(video.with_suffix(".wav")),
                frames=frames,
                tokens=tokens,
            )
        )
    return rows


def write_usr_csv(path: str | Path, rows: Iterable[ManifestRow], tag: str) -> None:
    """Write rows in the USR dialect with paths relative to the CSV's folder (atomically).

    Every row needs token ids, its video under the CSV's folder, and its audio at the same path
    with ``.wav`` (the dialect has no audio column).
    """
    path = Path(path)
    base = path.parent.resolve()
    out = []
    for r in rows:
        rel = _relative(str(Path(r.video).resolve()), base)
        if Path(rel).is_absolute():
            raise ManifestError(path, f"row {r.id!r}: video {r.video} is not under {base}")
        if Path(r.audio).resolve() != (base / rel).with_suffix(".wav").resolve():
            raise ManifestError(path, f"row {r.id!r}: audio must be the video path with .wav")
        if r.tokens is None:
            raise ManifestError(path, f"row {r.id!r}: the USR dialect needs token ids")
        out.append(f"{tag},{rel},{int(r.frames)},{' '.join(map(str, r.tokens))}")
    atomic_write(path, "\n".join(out) + "\n" if out else "")


def write_auto_avsr_csv(path: str | Path, rows: Iterable[ManifestRow], dataset_dir: Path) -> None:
    """Write rows in the auto_avsr dialect (atomically): the dataset is ``dataset_dir``'s name
    and paths are relative to it, so the CSV reads back with ``dataset_dir``'s parent as root
    (the default when the CSV sits in ``<root>/labels/``). Rows without token ids (unlabelled
    clips) get an empty token field."""
    path, dataset_dir = Path(path), Path(dataset_dir).resolve()
    out = []
    for r in rows:
        rel = _relative(str(Path(r.video).resolve()), dataset_dir)
        if Path(rel).is_absolute():
            raise ManifestError(path, f"row {r.id!r}: video {r.video} is not under {dataset_dir}")
        tokens = " ".join(map(str, r.tokens or ()))
        out.append(f"{dataset_dir.name},{rel},{int(r.frames)},{tokens}")
    atomic_write(path, "\n".join(out) + "\n" if out else "")


# ---------------------------------------------------------------- detection


def detect_dialect(path: str | Path) -> str:
    """``"tsv"`` (typed, has a header with an ``id`` column), ``"auto_avsr"`` (paths inside
    ``*_video_seg*`` folders, or the file sits in ``labels/``) or ``"usr"``."""
    path = Path(path)
    lines = [line for line in _open_lines(path) if line.strip()]
    if not lines:
        raise ManifestError(path, "empty manifest")
    first = lines[0]
    if "\t" in first and "id" in first.split("\t"):
        return "tsv"
    fields = first.split(",")
    if len(fields) < 3:
        raise ManifestError(path, "neither a typed TSV (header with 'id') nor a 4-column CSV", 1)
    if any(m in fields[1] for m in AUTO_AVSR_MARKERS) or path.parent.name == "labels":
        return "auto_avsr"
    return "usr"


def load_manifest(
    path: str | Path, roots: RootsArg = None, audio_roots: RootsArg = None, dialect: str = "auto"
) -> list[ManifestRow]:
    """Read any supported manifest, detecting its dialect unless ``dialect`` names one
    (``tsv``, ``usr``, ``auto_avsr``). ``roots``/``audio_roots`` apply to the CSV dialects."""
    if dialect == "auto":
        dialect = detect_dialect(path)
    if dialect == "tsv":
        rows = read_manifest(path)
    elif dialect == "usr":
        rows = read_usr_csv(path, roots, audio_roots)
    elif dialect == "auto_avsr":
        if roots is not None and not isinstance(roots, str | Path):
            raise ManifestError(path, "the auto_avsr dialect takes a single root folder")
        rows = read_auto_avsr_csv(path, roots)
    else:
        raise ManifestError(path, f"unknown manifest dialect {dialect!r}")
    if not rows:  # a header alone: every command would report "no problems" on nothing
        raise ManifestError(path, "no utterances (the file has a header but no rows)")
    return rows


def parse_roots(values: list[str] | None) -> RootsArg:
    """Command-line roots: ``DIR`` (one root for every tag) or repeated ``TAG=DIR``."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    roots = {}
    for value in values:
        tag, sep, folder = value.partition("=")
        if not sep or not tag or not folder:
            raise UnisrError(f"--root {value!r}: give DIR, or TAG=DIR once per dataset tag")
        roots[tag] = folder
    return roots
