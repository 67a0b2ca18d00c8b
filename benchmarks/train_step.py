"""Cost of one semi-supervised training step per pseudo-labelling mode, side by side.

For each mode (``usr1``, ``ar``, ``ctc_driven``, ``mixed``, and ``supervised`` for reference) the
same fixed random batches go through what ``unisr train`` does in a step: pseudo-labels from the
EMA teacher on the clean AV view, the student's unlabelled losses and backward, the labelled
losses and backward, clipping, AdamW, EMA update. Times are medians after warm-up steps.

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

import torch
from report import machine

from unisr.config import model_config
from unisr.ema import ema_update, make_teacher, momentum_at, set_teacher_mode
from unisr.losses import LossConfig, UnlabelledHeads, combine, labelled_losses, unlabelled_losses
from unisr.pseudo_labels import PseudoLabelConfig, draw_mode, generate

MODES = ("supervised", "usr1", "ar", "ctc_driven", "mixed")


def batch(frames: int, clip: int, size: int, vocab: int, device, labelled: bool, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    n = max(frames // clip, 1)
    out = {
        "video": torch.randn(n, clip, size, size, generator=g),
        "audio": 0.1 * torch.randn(n, clip * 640, generator=g),
        "lengths": torch.full((n,), clip, dtype=torch.long),
    }
    if labelled:
        units = max(clip // 5, 1)
        out["targets"] = torch.randint(1, vocab - 1, (n, units), generator=g)
        out["target_lengths"] = torch.full((n,), units, dtype=torch.long)
    else:
        out["video_student"], out["audio_student"] = out["video"].clone(), out["audio"].clone()
    return {k: v.to(device) for k, v in out.items()}


def calibrate_blank(teacher, unlabelled: dict, target: float) -> None:
    """Raise the teacher's CTC blank logit until collapsed CTC PLs are about ``target`` long."""
    bias = teacher.ctc_av.ctc_lo.bias
    for _ in range(60):
        pls = generate(teacher, unlabelled["video"], unlabelled["audio"], unlabelled["lengths"],
                       "ctc_driven", PseudoLabelConfig())  # fmt: skip
        if pls.ctc_lengths.float().mean() <= target:
            return
        with torch.no_grad():
            bias[0] += 0.25


def sync(device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def run_mode(mode: str, args, device) -> dict:
    torch.manual_seed(0)
    cfg = model_config(args.preset, vocab_size=args.vocab)
    from unisr.model import UnifiedModel

    model = UnifiedModel(cfg).to(device).train()
    teacher = make_teacher(model)
    heads = UnlabelledHeads(cfg.d_model, cfg.vocab_size).to(device) if mode == "usr1" else None
    params = list(model.parameters()) + (list(heads.parameters()) if heads else [])
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.98), weight_decay=0.04)
    loss_cfg, pl_cfg = (
        LossConfig(),
        PseudoLabelConfig(mode=mode if mode != "supervised" else "mixed"),
    )
    size = cfg.image_size
    lab = batch(args.labelled_frames, args.clip_frames, size, cfg.vocab_size, device, True, 1)
    unlab = batch(args.unlabelled_frames, args.clip_frames, size, cfg.vocab_size, device, False, 2)
    set_teacher_mode(teacher)
    calibrate_blank(teacher, unlab, 0.2 * args.clip_frames)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()
    )
    total = args.warmup + args.steps
    steps, pl_times, lengths = [], [], []
    for step in range(total):
        start = sync(device)
        pl_seconds = 0.0
        with autocast:
            zeros = {s: torch.zeros((), device=device) for s in loss_cfg.streams}
            if mode != "supervised":
                drawn = draw_mode(pl_cfg, step, total, seed=0)
                set_teacher_mode(teacher)
                pls = generate(teacher, unlab["video"], unlab["audio"], unlab["lengths"], drawn,
                               pl_cfg)  # fmt: skip
                pl_seconds = sync(device) - start
                stats = pls.stats()
                lengths.append((stats["pl/ctc_len"], stats.get("pl/att_len", 0.0)))
                losses = unlabelled_losses(model, unlab, pls, loss_cfg, heads)
                _, unlabelled_total, _ = combine(zeros, losses, loss_cfg)
                unlabelled_total.backward()
            losses = labelled_losses(model, lab, loss_cfg)
            labelled_total, _, _ = combine(
                losses, None if mode == "supervised" else zeros, loss_cfg
            )
            labelled_total.backward()
        torch.nn.utils.clip_grad_norm_(params, 3.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema_update(teacher, model, momentum_at(step, total))
        seconds = sync(device) - start
        if step >= args.warmup:
            steps.append(seconds)
            pl_times.append(pl_seconds)
    ctc_len = statistics.mean(c for c, _ in lengths) if lengths else 0.0
    att_len = statistics.mean(a for _, a in lengths) if lengths else 0.0
    return {
        "step": statistics.median(steps),
        "pl": statistics.median(pl_times),
        "ctc_len": ctc_len,
        "att_len": att_len,
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
