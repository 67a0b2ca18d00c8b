"""Cost of one semi-supervised training step per pseudo-labelling mode, side by side.

Each mode (``usr1``, ``ar``, ``ctc_driven``, ``mixed``, and ``supervised`` for reference) runs
:func:`unisr.step.training_step`, the function ``unisr train`` calls per step (PLs from the EMA
teacher, unlabelled and labelled losses with their two backward passes, clipping, AdamW and its
schedule, EMA, step seeding, skipping), on the same fixed random batches. Times are medians
after warm-up steps.

The model is untrained, so its pseudo-labels are made realistic by construction: the teacher's
CTC blank bias is raised until the collapsed CTC labels are about as long as the AR limit
(0.2 x frames, which an untrained decoder always reaches); the table shows the lengths.

    CPU:  .venv/bin/python benchmarks/train_step.py               (tiny model, 2 threads)
    GPU:  python benchmarks/train_step.py --device cuda --preset base --labelled-frames 600 \\
              --unlabelled-frames 4400 --clip-frames 150 --bf16    (paper's Base budget per GPU)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import time
from dataclasses import replace

import torch
from report import machine

from unisr.config import ModelConfig, model_config
from unisr.dataset import Batch
from unisr.ema import make_teacher, set_teacher_mode
from unisr.losses import UnlabelledHeads
from unisr.model import UnifiedModel
from unisr.pseudo_labels import PseudoLabelConfig, generate
from unisr.step import Hooks, Learner, TrainBatch, build_optimizer, training_step
from unisr.train_config import TrainConfig

MODES = ("supervised", "usr1", "ar", "ctc_driven", "mixed")


def step_config(mode: str, total_steps: int) -> TrainConfig:
    """The trainer's defaults (the paper's losses, EMA and schedule), pseudo-labelling with
    ``mode`` from step 0 (``supervised``: no unlabelled data); the teacher is not reset to the
    student at step 0, so its calibration (:func:`calibrate_blank`) stays."""
    cfg = TrainConfig()
    semi = mode != "supervised"
    return replace(
        cfg,
        data=replace(cfg.data, unlabelled="synthetic" if semi else None),
        pl=replace(cfg.pl, mode=mode),
        optim=replace(cfg.optim, max_steps=total_steps, warmup_steps=1),
        teacher=replace(cfg.teacher, reset_at_start=False),
    )


def synthetic_batch(
    frames: int, clip: int, model: ModelConfig, labelled: bool, seed: int, device
) -> Batch:
    """Random clips of ``clip`` frames filling a budget of ``frames``; labelled ones carry
    ``clip // 5`` random tokens, unlabelled ones a student view equal to the clean one."""
    g = torch.Generator().manual_seed(seed)
    n, size = max(frames // clip, 1), model.image_size
    video = torch.randn(n, clip, size, size, generator=g)
    audio = 0.1 * torch.randn(n, clip * 640, generator=g)
    batch = Batch([str(i) for i in range(n)], video, audio, torch.full((n,), clip))
    if labelled:
        units = max(clip // 5, 1)
        batch.targets = torch.randint(1, model.vocab_size - 1, (n, units), generator=g)
        batch.target_lengths = torch.full((n,), units)
    else:
        batch.video_student, batch.audio_student = video.clone(), audio.clone()
    return batch.to(device)


def make_learner(model_cfg: ModelConfig, cfg: TrainConfig, device) -> Learner:
    """Student, teacher and heads built in the order the trainer builds them, so a seed gives
    the trainer's initial weights; AdamW and the schedule as the trainer makes them."""
    model = UnifiedModel(model_cfg).to(device).train()
    teacher = make_teacher(model) if cfg.data.unlabelled else None
    heads = None
    if teacher is not None and cfg.pl.mode == "usr1":
        heads = UnlabelledHeads(model_cfg.d_model, model_cfg.vocab_size).to(device)
    params = list(model.parameters()) + (list(heads.parameters()) if heads else [])
    o = cfg.optim
    optimizer, scheduler = build_optimizer(params, o, o.max_steps, o.warmup_steps)
    return Learner(model, optimizer, scheduler, teacher, heads)


def calibrate_blank(teacher: UnifiedModel, unlabelled: Batch, target: float) -> None:
    """Raise the teacher's CTC blank logit until collapsed CTC PLs are about ``target`` long."""
    bias = teacher.ctc_av.ctc_lo.bias
    set_teacher_mode(teacher)
    for _ in range(60):
        pls = generate(teacher, unlabelled.video, unlabelled.audio, unlabelled.lengths,
                       "ctc_driven", PseudoLabelConfig())  # fmt: skip
        if pls.ctc_lengths.float().mean() <= target:
            return
        with torch.no_grad():
            bias[0] += 0.25


def run_steps(learner: Learner, batch: TrainBatch, cfg: TrainConfig, device, bf16=False) -> list:
    """The trainer's step, ``cfg.optim.max_steps`` times on one batch; the step results."""
    total = cfg.optim.max_steps

    def clock() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    results = []
    for step in range(total):
        with autocast:
            results.append(
                training_step(learner, batch, step, total, cfg, hooks=Hooks(clock=clock))
            )
    return results


def step_flops(learner: Learner, batch: TrainBatch, cfg: TrainConfig) -> int:
    """Floating-point operations of one training step (forward and backward of every matrix
    product, attention and convolution; torch's ``FlopCounterMode``). The step is taken."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        training_step(learner, batch, 0, cfg.optim.max_steps, cfg)
    return counter.get_total_flops()


def run_mode(mode: str, args, device) -> dict:
    total = args.warmup + args.steps
    cfg = step_config(mode, total)
    model_cfg = model_config(args.preset, vocab_size=args.vocab)
    torch.manual_seed(0)
    learner = make_learner(model_cfg, cfg, device)
    clip = args.clip_frames
    lab = synthetic_batch(args.labelled_frames, clip, model_cfg, True, 1, device)
    unlab = synthetic_batch(args.unlabelled_frames, clip, model_cfg, False, 2, device)
    batch = TrainBatch(lab, unlab if learner.teacher is not None else None)
    if learner.teacher is not None:
        calibrate_blank(learner.teacher, unlab, 0.2 * clip)
    results = run_steps(learner, batch, cfg, device, args.bf16)[args.warmup :]
    logs = [r.logs for r in results if r.applied]
    keys = {"step": "time/step", "pl": "time/pseudo_labels", "ctc_len": "pl/ctc_len",
            "att_len": "pl/att_len"}  # fmt: skip
    return {
        name: statistics.median(float(x.get(key, 0.0)) for x in logs) for name, key in keys.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--vocab", type=int, default=53, help="output classes (tiny grid: 53)")
    parser.add_argument("--labelled-frames", type=int, default=200)
    parser.add_argument("--unlabelled-frames", type=int, default=400)
    parser.add_argument("--clip-frames", type=int, default=50)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (as training on GPU)")
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"date {datetime.date.today().isoformat()}; {machine()}, {args.threads} threads; "
          f"preset {args.preset}; "
          f"{args.labelled_frames} labelled + {args.unlabelled_frames} unlabelled frames per step "
          f"in clips of {args.clip_frames}; bf16 {args.bf16}; medians of {args.steps} steps "
          f"after {args.warmup}")  # fmt: skip
    print("| mode | step (s) | PL generation (s) | PL share | CTC PL tokens | att PL tokens |")
    print("|---|---|---|---|---|---|")
    for mode in args.modes:
        r = run_mode(mode, args, device)
        share = f"{100 * r['pl'] / r['step']:.0f} %" if mode != "supervised" else "-"
        print(f"| {mode} | {r['step']:.3f} | {r['pl']:.3f} | {share} | {r['ctc_len']:.1f} | "
              f"{r['att_len']:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
