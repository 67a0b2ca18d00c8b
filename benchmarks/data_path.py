"""The data path against a GPU's appetite: how many clips per second one GPU trains on at Base
size, and how many loader workers feed it.

1. FLOPs of a Base training step, counted (torch's ``FlopCounterMode``: forward and backward of
   every matrix product, attention and convolution) on the CPU for one labelled and one
   unlabelled clip of 150 frames, once in each USR 2.0 mode (``mixed`` draws each half the
   time); step FLOPs are linear in frames but for attention, so they are given per frame.
2. One GPU's rate: ``--peak`` (default an H100's dense bf16 datasheet rate, 989 TFLOP/s) times
   ``--mfu`` (default 0.35, an assumption until ``make gpu-check`` measures it); the Base
   recipe's budget is 600 labelled + 4400 unlabelled frames per step.
3. The loader: ``benchmarks/data.py`` clips/s per worker (mp4 decoding and from the cache) on
   this machine, measured here on clips of 2-4 s; workers per GPU = GPU clips/s / that.

    .venv/bin/python benchmarks/data_path.py [--write]
"""

from __future__ import annotations

import argparse

import torch
import train_step as step_bench
from report import publish

from unisr.config import model_config
from unisr.step import TrainBatch

SECTION = "## Data path against a GPU (`benchmarks/data_path.py`)"
LABELLED, UNLABELLED = 600, 4400  # frames per GPU step, base_lrs3_low.yaml
LOADER_CLIP_FRAMES = 75  # mean of benchmarks/data.py's 2-4 s clips


def flops_per_frame(mode: str, frames: int) -> tuple[float, float]:
    """(labelled, unlabelled) FLOPs per frame of a Base step in ``mode``."""
    cfg = step_bench.step_config(mode, 2)
    model_cfg = model_config("base")
    device = torch.device("cpu")
    torch.manual_seed(0)
    learner = step_bench.make_learner(model_cfg, cfg, device)
    lab = step_bench.synthetic_batch(frames, frames, model_cfg, True, 1, device)
    unlab = step_bench.synthetic_batch(frames, frames, model_cfg, False, 2, device)
    step_bench.calibrate_blank(learner.teacher, unlab, 0.2 * frames)
    both = step_bench.step_flops(learner, TrainBatch(lab, unlab), cfg)
    supervised = step_bench.step_config("supervised", 2)
    learner = step_bench.make_learner(model_cfg, supervised, device)
    labelled = step_bench.step_flops(learner, TrainBatch(lab, None), supervised)
    return labelled / frames, (both - labelled) / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--peak", type=float, default=989e12, help="bf16 FLOP/s of the GPU")
    parser.add_argument("--mfu", type=float, default=0.35, help="model FLOP utilisation")
    parser.add_argument("--clips", type=int, default=32, help="loader benchmark clips")
    parser.add_argument("--write", action="store_true", help="record the results in BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(2)
    per_mode = {mode: flops_per_frame(mode, args.frames) for mode in ("ctc_driven", "ar")}
    lab = sum(f[0] for f in per_mode.values()) / 2
    unl = sum(f[1] for f in per_mode.values()) / 2  # mixed: each mode half the steps
    step = LABELLED * lab + UNLABELLED * unl
    rate = args.peak * args.mfu
    steps_per_s = rate / step
    frames_per_s = steps_per_s * (LABELLED + UNLABELLED)
    clips_per_s = frames_per_s / LOADER_CLIP_FRAMES
    from data import run as loader_rates  # benchmarks/data.py (named like the data/ folder)

    loader = {name: rate for name, workers, rate in loader_rates(args.clips, 3) if workers == 1}
    lines = [
        "| mode | labelled GFLOPs per frame | unlabelled GFLOPs per frame |",
        "|---|---|---|",
        *(f"| {m} | {f[0] / 1e9:.2f} | {f[1] / 1e9:.2f} |" for m, f in per_mode.items()),
        "",
        f"Base step (mixed, {LABELLED} labelled + {UNLABELLED} unlabelled frames): "
        f"**{step / 1e12:.1f} TFLOPs**. At {args.peak / 1e12:.0f} TFLOP/s x MFU {args.mfu:.2f} "
        f"= {rate / 1e12:.0f} TFLOP/s: {1 / steps_per_s:.2f} s per step, "
        f"{frames_per_s:,.0f} frames/s, **{clips_per_s:,.0f} clips/s** of "
        f"{LOADER_CLIP_FRAMES} frames (3 s) per GPU.",
        "",
        "| loader (1 worker, clips of 2-4 s) | clips/s per worker | workers per GPU |",
        "|---|---|---|",
    ]
    for name in ("loader decode+aug", "loader cache+aug"):
        lines.append(f"| {name} | {loader[name]:.1f} | {clips_per_s / loader[name]:.0f} |")
    note = (
        f"FLOPs counted on clips of {args.frames} frames, random Base weights (the "
        "teacher's blank calibrated so CTC labels are 0.2 x frames long, as the AR limit)."
    )
    publish(SECTION, note, lines, args.write)


if __name__ == "__main__":
    main()
