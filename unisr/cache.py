"""A decoded-clip cache, so that training on a small machine is not bound by mp4 decoding.

``unisr cache MANIFEST`` decodes and checks every utterance once and stores uint8 frames and
int16 audio (already aligned to 640 samples per frame) in flat binary shards next to the
manifest (``MANIFEST.cache/``), read back through memory maps. An index (``index.json``) maps
ids to shard offsets, records the clips that failed their checks (with the reason), and keeps
each source file's size and mtime: an entry whose source changed is ignored (the clip is decoded
again), so a stale cache is slow but never wrong. Sources may be deleted once cached.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checks import AV_TOLERANCE_FRAMES, BadData, BadSample, Clip, load_clip, problems_table
from .errors import UnisrError
from .manifest import ManifestRow, load_manifest, parse_roots

log = logging.getLogger("unisr.data")

CACHE_VERSION = 1
SHARD_BYTES = 1 << 30


def cache_dir_for(manifest: str | Path) -> Path:
    """Where the cache of a manifest lives: ``<manifest>.cache`` beside it."""
    manifest = Path(manifest)
    return manifest.with_name(manifest.name + ".cache")


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _load(args: tuple[ManifestRow, int]) -> Clip | BadSample:
    row, tolerance = args
    try:
        return load_clip(row, tolerance)
    except BadData as err:
        return BadSample(row.id, err.path, err.reason, err.kind)


@dataclass
class CacheSummary:
    clips: int
    bad: list[BadSample]
    frames: int
    bytes: int


def build_cache(
    rows: list[ManifestRow],
    out_dir: str | Path,
    workers: int = 1,
    tolerance: int = AV_TOLERANCE_FRAMES,
    shard_bytes: int = SHARD_BYTES,
    progress: bool = False,
) -> CacheSummary:
    """Decode ``rows`` into a cache at ``out_dir`` (built beside it, then renamed into place)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    clips: dict[str, dict] = {}
    bad: list[BadSample] = []
    shard, video_f, audio_f = -1, None, None
    total_frames = total_bytes = 0
    pool = None
    try:
        jobs = [(r, tolerance) for r in rows]
        if workers > 1:
            from multiprocessing import get_context

            pool = get_context("spawn").Pool(workers)
            results = pool.imap(_load, jobs, chunksize=4)
        else:
            results = map(_load, jobs)
        for row, result in tqdm(zip(rows, results), total=len(rows), disable=not progress):
            stamps = [_stamp(row.video), _stamp(row.audio)]
            if isinstance(result, BadSample):
                bad.append(result)
                clips[row.id] = {"bad": [result.path, result.reason, result.kind], "src": stamps}
                continue
            if video_f is None or video_f.tell() >= shard_bytes:
                for f in (video_f, audio_f):
                    if f is not None:
                        f.close()
                shard += 1
                video_f = open(tmp / f"video-{shard:05d}.u8", "wb")
                audio_f = open(tmp / f"audio-{shard:05d}.i16", "wb")
            clips[row.id] = {
                "shard": shard,
                "video": video_f.tell(),
                "shape": list(result.frames.shape),
                "audio": audio_f.tell() // 2,
                "samples": len(result.audio),
                "src": stamps,
            }
            video_f.write(result.frames.tobytes())
            audio_f.write(result.audio.astype("<i2").tobytes())
            total_frames += len(result.frames)
        for f in (video_f, audio_f):
            if f is not None:
                total_bytes += f.tell()
                f.close()
        index = {"version": CACHE_VERSION, "tolerance": tolerance, "clips": clips}
        (tmp / "index.json").write_text(json.dumps(index), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if pool is not None:
            pool.terminate()
    return CacheSummary(len(rows) - len(bad), bad, total_frames, total_bytes)


class ClipCache:
    """Read side of a cache directory; safe to hand to DataLoader workers (maps reopen lazily)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        index_path = self.directory / "index.json"
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UnisrError(f"{index_path}: cannot read cache index ({err})") from None
        if index.get("version") != CACHE_VERSION:
            raise UnisrError(f"{index_path}: cache version {index.get('version')}, rebuild it")
        self.clips: dict[str, dict] = index["clips"]
        self._maps: dict[tuple[str, int], np.memmap] = {}
        self._warned_stale = False

    @classmethod
    def find(cls, manifest: str | Path) -> ClipCache | None:
        """The cache built for ``manifest``, if there is one."""
        directory = cache_dir_for(manifest)
        return cls(directory) if (directory / "index.json").is_file() else None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": {}}

    def __len__(self) -> int:
        return len(self.clips)

    def _map(self, kind: str, shard: int) -> np.memmap:
        key = (kind, shard)
        if key not in self._maps:
            name, dtype = ("video", np.uint8) if kind == "video" else ("audio", np.dtype("<i2"))
            suffix = "u8" if kind == "video" else "i16"
            path = self.directory / f"{name}-{shard:05d}.{suffix}"
            self._maps[key] = np.memmap(path, dtype=dtype, mode="r")
        return self._maps[key]

    def _fresh(self, row: ManifestRow, entry: dict) -> bool:
        for path, stamp in zip((row.video, row.audio), entry["src"], strict=True):
            now = _stamp(path)
            if now is not None and now != stamp:
                if not self._warned_stale:
                    log.warning("%s is stale for %s (decoding it instead)", self.directory, path)
                    self._warned_stale = True
                return False
        return True

    def get(self, row: ManifestRow) -> Clip | None:
        """The cached clip of ``row``; None when absent or stale. A clip recorded as bad raises
        :class:`BadData` with the recorded reason."""
        entry = self.clips.get(row.id)
        if entry is None or not self._fresh(row, entry):
            return None
        if "bad" in entry:
            raise BadData(*entry["bad"])
        t, h, w = entry["shape"]
        video = self._map("video", entry["shard"])
        audio = self._map("audio", entry["shard"])
        frames = np.array(video[entry["video"] : entry["video"] + t * h * w]).reshape(t, h, w)
        samples = np.array(audio[entry["audio"] : entry["audio"] + entry["samples"]])
        return Clip(frames, samples.astype(np.int16, copy=False))


def cache_cli(args) -> int:
    """``unisr cache``: decode a manifest into its cache folder."""
    import sys

    rows = load_manifest(args.manifest, parse_roots(args.root), parse_roots(args.audio_root))
    out = Path(args.out) if args.out else cache_dir_for(args.manifest)
    summary = build_cache(
        rows, out, workers=args.workers, tolerance=args.tolerance, progress=sys.stderr.isatty()
    )
    print(
        f"{out}: {summary.clips} clips, {summary.frames} frames, "
        f"{summary.bytes / 2**20:.1f} MiB; {len(summary.bad)} bad"
    )
    if summary.bad:
        print(problems_table(summary.bad))
    return 0


class CacheChain:
    """The caches of several manifests read as one (a dataset over their concatenation): a clip
    comes from the first cache that holds it."""

    def __init__(self, caches: list[ClipCache]):
        self.caches = caches

    def __len__(self) -> int:
        return sum(len(c) for c in self.caches)

    def get(self, row: ManifestRow) -> Clip | None:
        for cache in self.caches:
            clip = cache.get(row)
            if clip is not None:
                return clip
        return None
