"""Time `unisr synth`: a whole corpus build, plus the cost of each stage on a sample.

    python benchmarks/synth.py --size small --workers 2            # full build, wall clock
    python benchmarks/synth.py --size small --stages-only          # per-stage cost only

The full build goes to a temporary folder (removed afterwards) unless --out is given. The
machine's load average is printed alongside: other processes on a shared machine slow a
CPU-bound build down in proportion.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from unisr.media import write_audio, write_video
from unisr.synth.corpus import build_corpus, format_summary, plan_corpus, speak
from unisr.synth.mouth import articulate, render


def stage_costs(size: str, domain: str, n: int = 40) -> dict[str, float]:
    """Milliseconds per video frame of each stage, on ``n`` utterances of the plan."""
    plan = plan_corpus(size, domain, seed=0)
    utts = plan.utterances[:: max(len(plan.utterances) // n, 1)][:n]
    totals = dict.fromkeys(("speech", "articulation", "drawing", "writing"), 0.0)
    frames = 0
    with tempfile.TemporaryDirectory() as tmp:
        for utt in utts:
            t0 = time.perf_counter()
            audio, phones, _, n_frames = speak(utt)
            t1 = time.perf_counter()
            track = articulate(phones, n_frames, utt.speaker.face, np.random.default_rng(0))
            t2 = time.perf_counter()
            video = render(track, utt.speaker.face, utt.take)
            t3 = time.perf_counter()
            write_audio(Path(tmp) / "a.wav", audio)
            write_video(Path(tmp) / "a.mp4", video)
            t4 = time.perf_counter()
            for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                totals[key] += dt
            frames += n_frames
    return {key: 1000 * value / frames for key, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="small", choices=["test", "tiny", "small", "medium"])
    parser.add_argument("--domain", default="grid", choices=["grid", "open", "both"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", help="keep the corpus here (default: a temporary folder)")
    parser.add_argument("--stages-only", action="store_true")
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    costs = stage_costs(args.size, args.domain)
    print("ms per frame: " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items()))
    if args.stages_only:
        return
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="unisr-synth-"))
    try:
        start = time.perf_counter()
        summary = build_corpus(out, args.size, args.domain, seed=0, workers=args.workers)
        seconds = time.perf_counter() - start
        print(format_summary(summary))
        frames = sum(s["hours"] for s in summary["splits"].values()) * 3600 * 25
        print(f"{args.size}/{args.domain} with {args.workers} workers: {seconds:.0f} s wall, "
              f"{frames / seconds:.0f} frames/s, {summary['hours_total'] * 3600 / seconds:.1f}x "
              f"real time, load average after {os.getloadavg()[0]:.1f}")  # fmt: skip
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
