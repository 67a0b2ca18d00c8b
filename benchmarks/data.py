"""Data-loading throughput: clips/s for mp4 decoding + training transforms, and from the cache.

Builds a small corpus of lossless 96x96 gray mp4 + 16 kHz wav clips (2-4 s) in a temporary
folder, then times, each ``--repeats`` times (medians reported):

* ``decode``: checked decoding only (``load_clip``), in the main process;
* ``decode+aug`` / ``cache+aug``: a labelled training item (crop, flip, normalise, masks) from
  the mp4/wav files or from the decoded cache, in the main process;
* ``loader``: whole batches (600-frame budget, collate included) through ``BatchLoader`` with 1
  and 2 worker processes, over an epoch of 4 passes of the corpus (worker start-up included).

``--write`` records the table in BENCHMARKS.md (replacing this benchmark's earlier section).

    .venv/bin/python benchmarks/data.py [--clips 32] [--repeats 5] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from report import machine, write_section

from unisr.cache import ClipCache, build_cache
from unisr.dataset import AVDataset, DataConfig, load_clip
from unisr.manifest import ManifestRow
from unisr.media import write_audio, write_video
from unisr.sampler import BatchLoader, FrameBatchSampler

SECTION = "## Data loading (`benchmarks/data.py`)"
LOADER_PASSES = 4  # loader epochs go over the corpus 4 times, so worker start-up is amortised


def make_corpus(folder: Path, n: int, seed: int = 0) -> list[ManifestRow]:
    """Mouth-like clips: a smooth random texture drifting over time plus mild sensor noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        frames = int(rng.integers(50, 101))
        coarse = rng.normal(0, 1, (frames // 5 + 2, 12, 12)).astype(np.float32)
        big = torch.nn.functional.interpolate(
            torch.from_numpy(coarse)[None, None], size=(frames, 96, 96), mode="trilinear"
        )[0, 0].numpy()
        video = np.clip(128 + 40 * big + rng.normal(0, 2, big.shape), 0, 255).astype(np.uint8)
        audio = (0.1 * rng.standard_normal(frames * 640)).astype(np.float32)
        write_video(folder / f"c{i}.mp4", video)
        write_audio(folder / f"c{i}.wav", audio)
        rows.append(
            ManifestRow(
                f"c{i}", str(folder / f"c{i}.mp4"), str(folder / f"c{i}.wav"), frames, "", [1, 2]
            )
        )
    return rows


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(clips: int, repeats: int) -> list[tuple[str, int, float]]:
    """Rows of (measurement, workers, clips/s)."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = make_corpus(folder, clips)
        build_cache(rows, folder / "cache")
        cache = ClipCache(folder / "cache")
        plain = AVDataset(rows, DataConfig())
        cached = AVDataset(rows, DataConfig(), cache=cache)

        def items(dataset):
            return lambda: [dataset[i] for i in range(len(dataset))]

        def batches(rows, cache, workers):
            dataset = AVDataset(rows * LOADER_PASSES, DataConfig(), cache=cache)
            sampler = FrameBatchSampler(dataset.lengths, 600, seed=0)
            loader = BatchLoader(dataset, sampler, workers=workers)
            return lambda: sum(len(b.ids) for b in loader)

        results = [
            ("decode", 0, timed(lambda: [load_clip(r) for r in rows], repeats)),
            ("decode+aug", 0, timed(items(plain), repeats)),
            ("cache+aug", 0, timed(items(cached), repeats)),
        ]
        for workers in (1, 2):
            loader_seconds = timed(batches(rows, None, workers), repeats) / LOADER_PASSES
            results.append(("loader decode+aug", workers, loader_seconds))
            loader_seconds = timed(batches(rows, cache, workers), repeats) / LOADER_PASSES
            results.append(("loader cache+aug", workers, loader_seconds))
    return [(name, workers, clips / seconds) for name, workers, seconds in results]


def table(results: list[tuple[str, int, float]]) -> str:
    lines = ["| measurement | workers | clips/s | clips/s per worker |", "|---|---|---|---|"]
    for name, workers, rate in results:
        per = rate / max(workers, 1)
        lines.append(f"| {name} | {workers or 'main process'} | {rate:.1f} | {per:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="record the results in BENCHMARKS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = run(args.clips, args.repeats)
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    body = "\n".join(
        [
            f"Command: `{' '.join(['python', 'benchmarks/data.py', *sys.argv[1:]])}`  ",
            f"Machine: {machine()}  ",
            f"Date: {datetime.date.today().isoformat()} ({load}; the machine is shared)  ",
            f"{args.clips} clips of 2-4 s (lossless 96x96 gray mp4 + 16 kHz wav), labelled "
            f"training view (crop 88, flip, masks); medians of {args.repeats} runs; "
            "torch threads = 1 per process.",
            "",
            table(results),
        ]
    )
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
