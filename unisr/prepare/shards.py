"""Splitting ``unisr prepare`` over N jobs (``--shard K/N``) and merging what they wrote.

A video belongs to shard ``crc32(relative path) % N``: the same split on every machine and in
every run, whatever else is in the folder, so a job that is rerun redoes only its own videos.
Shard K of N writes ``manifest.shard-K-of-N.tsv`` and ``summary.shard-K-of-N.json`` beside the
shared outputs; :func:`merge_shards` (``unisr merge-shards OUT_DIR``) joins all N into
``manifest.tsv`` and ``summary.json``, refusing while any shard is missing.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

from ..errors import UnisrError
from ..manifest import ManifestRow, read_manifest

SHARD_NAME = re.compile(r"^manifest\.shard-(\d+)-of-(\d+)\.tsv$")


def parse_shard(value: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N (K counts from 0, as SLURM_ARRAY_TASK_ID does)."""
    k, sep, n = value.partition("/")
    if sep and k.isdigit() and n.isdigit() and 0 <= int(k) < int(n):
        return int(k), int(n)
    raise UnisrError(f"--shard {value!r}: give K/N with 0 <= K < N, e.g. 0/4 .. 3/4")


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether the video with relative path ``key`` belongs to ``shard`` (all when None)."""
    return shard is None or zlib.crc32(key.encode("utf-8")) % shard[1] == shard[0]


def shard_suffix(shard: tuple[int, int] | None) -> str:
    """``""`` or ``".shard-K-of-N"``: what the shard's manifest and summary names carry."""
    return "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"


def merge_shards(out_dir: str | Path) -> tuple[list[ManifestRow], dict]:
    """The rows and summary of all shards in ``out_dir``, checked to be complete and disjoint."""
    out_dir = Path(out_dir)
    found = {}
    for path in sorted(out_dir.glob("manifest.shard-*-of-*.tsv")):
        match = SHARD_NAME.match(path.name)
        if match:
            found[(int(match[1]), int(match[2]))] = path
    counts = {n for _, n in found}
    if not found:
        raise UnisrError(f"{out_dir}: no manifest.shard-K-of-N.tsv files to merge")
    if len(counts) != 1:
        raise UnisrError(f"{out_dir}: shards of different splits ({sorted(counts)} jobs)")
    total = counts.pop()
    missing = sorted(set(range(total)) - {k for k, _ in found})
    if missing:
        names = ", ".join(f"{k}/{total}" for k in missing)
        raise UnisrError(f"{out_dir}: shard(s) {names} not finished (no manifest yet)")
    rows, seen, summary = [], set(), {"counts": {}, "clips": {}, "problems": []}
    for (k, _), path in sorted(found.items()):
        for row in read_manifest(path):
            if row.id in seen:
                raise UnisrError(f"{path}: clip {row.id!r} is in another shard too")
            seen.add(row.id)
            rows.append(row)
        part = json.loads(path.with_name(f"summary.shard-{k}-of-{total}.json").read_text())
        for section in ("counts", "clips"):
            for key, value in part[section].items():
                summary[section][key] = summary[section].get(key, 0) + value
        summary["problems"] += part["problems"]
    rows.sort(key=lambda r: r.id)
    summary["problems"].sort(key=lambda p: p["video"])
    return rows, summary
