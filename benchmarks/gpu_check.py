"""Everything a GPU machine's few minutes should measure, as one command (``make gpu-check``).

1. The device tests (``tests/test_cuda.py``): parity with the CPU and the official outputs,
   padded batches, bf16 training steps in every mode, DDP on one device.
2. Benchmark rows, at Base size:
   * the device's bf16 matrix-product rate (8192^3 products), against which MFU is also given;
   * batched vs one-at-a-time beam search at beams 10 and 40 (32 utterances of 2-6 s);
   * CTC-driven vs autoregressive pseudo-labelling time on LRS3-like clips (the paper's ~40x);
   * a USR (``usr1``) vs USR 2.0 (``mixed``, ``ctc_driven``) training step in bf16 at the Base
     recipe's per-GPU budget (the paper's ~2x), with tokens (input frames) per second and
     model FLOP utilisation (FLOPs counted by torch's ``FlopCounterMode``).

Without ``--dry`` the results replace the GPU section of BENCHMARKS.md with the machine and
date. ``--dry`` runs the same code at toy sizes on the CPU (the test suite does) and writes to
``--out`` only. About 5 minutes on one H100/H200; ``--budget`` stops adding rows past it.

    make gpu-check            (python benchmarks/gpu_check.py)
    make gpu-check DRY=1      (python benchmarks/gpu_check.py --dry --out /tmp/gpu_check.md)
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import decode as decode_bench
import torch
import train_step as step_bench
from report import machine, write_section

from unisr.config import model_config
from unisr.decoding import DecodingOptions
from unisr.ema import set_teacher_mode
from unisr.model import UnifiedModel
from unisr.pseudo_labels import PseudoLabelConfig, generate
from unisr.step import TrainBatch

SECTION = "## GPU check (`benchmarks/gpu_check.py`)"
ROOT = Path(__file__).resolve().parent.parent
# dense bf16 Tensor Core peaks from NVIDIA's datasheets (FLOP/s, without sparsity)
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


@dataclass(frozen=True)
class Sizes:
    preset: str
    utterances: int  # beam-search batch
    beams: tuple[int, ...]
    pl_clips: int  # pseudo-labelling batch
    labelled_frames: int  # per-step budgets of the Base recipe (base_lrs3_low.yaml)
    unlabelled_frames: int
    clip_frames: int
    steps: int
    warmup: int
    matmul: int


GPU = Sizes("base", 32, (10, 40), 32, 600, 4400, 150, 5, 2, 8192)
DRY = Sizes("tiny", 3, (2, 3), 3, 60, 90, 30, 1, 1, 256)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device_tests(device: torch.device) -> str:
    """Run tests/test_cuda.py on ``device``; the pytest summary line (raises if any fails)."""
    env = {**os.environ, "UNISR_TEST_DEVICE": device.type}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    if done.returncode != 0:
        print(done.stdout[-6000:], done.stderr[-3000:], sep="\n")
        raise SystemExit(f"device tests failed: {summary}")
    return summary


def matmul_rate(size: int, device: torch.device) -> float:
    """bf16 FLOP/s of size^3 matrix products (on the CPU: float32)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    seconds = timed(lambda: [a @ b for _ in range(10)], device, 3) / 10
    return 2 * size**3 / seconds


def decode_rows(sizes: Sizes, device: torch.device) -> list[str]:
    torch.manual_seed(0)
    model = UnifiedModel(model_config(sizes.preset)).eval()
    encoded, lengths = decode_bench.make_batch(model, sizes.utterances, seed=0)
    model, encoded, lengths = model.to(device), encoded.to(device), lengths.to(device)
    rows = []
    for beam in sizes.beams:
        options = DecodingOptions(beam_size=beam, ctc_weight=0.1, maxlenratio=0.15)
        r = decode_bench.measure(model, encoded, lengths, options, repeats=1)
        batched, single = sizes.utterances / r["batched"], sizes.utterances / r["single"]
        rows.append(f"| beam {beam} | {batched:.1f} | {single:.1f} | {batched / single:.1f}x |")
    return rows


def pl_rows(sizes: Sizes, device: torch.device) -> list[str]:
    """Seconds per batch of pseudo-labels in each mode: a Base teacher (blank calibrated so CTC
    labels are about 0.2 x frames long, as the AR limit) on clips of 2-6 s."""
    torch.manual_seed(0)
    cfg = model_config(sizes.preset)
    teacher = UnifiedModel(cfg).to(device)
    set_teacher_mode(teacher)
    lengths = torch.randint(sizes.clip_frames // 3, sizes.clip_frames + 1, (sizes.pl_clips,))
    batch = step_bench.synthetic_batch(sizes.pl_clips * sizes.clip_frames, sizes.clip_frames,
                                       cfg, False, 3, "cpu")  # fmt: skip
    batch.lengths = lengths
    batch = batch.to(device)
    step_bench.calibrate_blank(teacher, batch, 0.2 * float(lengths.float().mean()))
    pl_cfg = PseudoLabelConfig()
    seconds, tokens = {}, {}
    for mode in ("ctc_driven", "ar"):

        def run(mode=mode):
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return generate(teacher, batch.video, batch.audio, batch.lengths, mode, pl_cfg)

        seconds[mode] = timed(run, device, 3)
        tokens[mode] = float(run().att_lengths.float().mean())
    ratio = seconds["ar"] / seconds["ctc_driven"]
    return [
        f"| {mode} | {seconds[mode] * 1000:.1f} | {tokens[mode]:.1f} | "
        f"{'1.0x' if mode == 'ar' else f'{ratio:.1f}x'} |"
        for mode in ("ctc_driven", "ar")
    ]


def step_rows(sizes: Sizes, device: torch.device, peaks: tuple[float | None, float]) -> list[str]:
    """bf16 step time, tokens/s and MFU per mode at the Base recipe's per-GPU budget."""
    rows = []
    for mode in ("usr1", "mixed", "ctc_driven"):
        total = sizes.warmup + sizes.steps
        cfg = step_bench.step_config(mode, total + 1)
        model_cfg = model_config(sizes.preset)
        torch.manual_seed(0)
        learner = step_bench.make_learner(model_cfg, cfg, device)
        clip = sizes.clip_frames
        lab = step_bench.synthetic_batch(sizes.labelled_frames, clip, model_cfg, True, 1, device)
        unlab = step_bench.synthetic_batch(
            sizes.unlabelled_frames, clip, model_cfg, False, 2, device
        )
        batch = TrainBatch(lab, unlab)
        step_bench.calibrate_blank(learner.teacher, unlab, 0.2 * clip)
        results = step_bench.run_steps(learner, batch, replace(cfg, optim=replace(
            cfg.optim, max_steps=total)), device, bf16=True)[sizes.warmup:]  # fmt: skip
        seconds = statistics.median(float(r.logs["time/step"]) for r in results if r.applied)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            flops = step_bench.step_flops(learner, batch, cfg)
        tokens = (lab.frames + unlab.frames) / seconds
        rate = flops / seconds
        datasheet, measured = peaks
        mfu = f"{100 * rate / datasheet:.1f} %" if datasheet else "-"
        rows.append(
            f"| {mode} | {seconds:.3f} | {flops / 1e9:,.1f} | {tokens:,.0f} | "
            f"{rate / 1e12:.1f} | {mfu} | {100 * rate / measured:.1f} % |"
        )
    return rows


def datasheet_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry", action="store_true", help="toy sizes on the CPU")
    parser.add_argument("--out", help="write the report here (default: BENCHMARKS.md's section)")
    args = parser.parse_args()
    started = time.perf_counter()
    if not args.dry and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or give --dry")
    device = torch.device("cpu" if args.dry else "cuda")
    sizes = DRY if args.dry else GPU
    tests = device_tests(device)
    print(f"device tests: {tests}", flush=True)
    measured = matmul_rate(sizes.matmul, device)
    peaks = (datasheet_peak(device), measured)
    decode = decode_rows(sizes, device)
    print(*decode, sep="\n", flush=True)
    pls = pl_rows(sizes, device)
    print(*pls, sep="\n", flush=True)
    steps = step_rows(sizes, device, peaks)
    print(*steps, sep="\n", flush=True)
    minutes = (time.perf_counter() - started) / 60
    peak = f"{peaks[0] / 1e12:.0f} TFLOP/s (datasheet)" if peaks[0] else "no datasheet peak known"
    body = "\n".join(
        [
            f"Command: `make gpu-check{' DRY=1' if args.dry else ''}` "
            f"({'toy sizes on the CPU' if args.dry else 'Base size'}; {minutes:.1f} min)  ",
            f"Machine: {machine()}  ",
            f"Date: {datetime.date.today().isoformat()}  ",
            f"Device tests (`tests/test_cuda.py` on {device.type}): {tests}.  ",
            f"Matrix products ({sizes.matmul}^3, "
            f"{'bf16' if device.type == 'cuda' else 'float32'}): "
            f"{measured / 1e12:.1f} TFLOP/s measured; {peak}.",
            "",
            f"Beam search, {sizes.utterances} utterances of 2-6 s, CTC weight 0.1, "
            "maxlenratio 0.15 (random weights):",
            "",
            "| beam | batched utt/s | one at a time utt/s | speed-up |",
            "|---|---|---|---|",
            *decode,
            "",
            f"Pseudo-labels of {sizes.pl_clips} clips of {sizes.clip_frames // 3}-"
            f"{sizes.clip_frames} frames from a random {sizes.preset} teacher, bf16 autocast:",
            "",
            "| mode | ms per batch | attention PL tokens | speed-up over AR |",
            "|---|---|---|---|",
            *pls,
            "",
            f"Training step in bf16 autocast, {sizes.preset}, {sizes.labelled_frames} labelled + "
            f"{sizes.unlabelled_frames} unlabelled frames in clips of {sizes.clip_frames}; "
            f"medians of {sizes.steps} steps after {sizes.warmup}; tokens = input frames:",
            "",
            "| mode | step (s) | GFLOPs per step | tokens/s | TFLOP/s | MFU (datasheet) "
            "| of measured matmul rate |",
            "|---|---|---|---|---|---|---|",
            *steps,
        ]
    )
    print(body)
    if args.out:
        Path(args.out).write_text(body + "\n", encoding="utf-8")
    elif not args.dry:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
