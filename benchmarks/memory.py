"""Peak memory of long inputs: beam search (beam 40) on one 30 s clip and on 32 clips of 6 s.

Model: random weights in the Base shape (``model_config("base")``, 1049 classes); memory does
not depend on the weights' values, only on how long hypotheses run. Random weights never end a
hypothesis, so ``--maxlenratio`` (default 0.15: 3.75 tokens/s, the token rate of real speech with
a 1000-unit vocabulary, as ``benchmarks/decode.py``) stands in for the length of real
transcripts; the official limit (1.0, one token per frame) is the worst case.

Each case runs in a fresh process, so its peak resident set (``ru_maxrss``) is its own:

* ``encode``: the AV encoder (both front-ends and the Transformer) on raw 88x88 video and
  16 kHz audio of the 30 s clip, as ``unisr eval`` runs it per loader batch (``--batch-frames``
  bounds the encoder's batch);
* ``beam``: joint CTC/attention beam search from encoder outputs (made by the Transformer from
  random front-end features), with and without ``decode_frames``, the decoding batch limit.

The table gives the peak minus the resident set before the measured call (model and inputs
loaded). On a GPU the same cases report ``torch.cuda.max_memory_allocated``.

    .venv/bin/python benchmarks/memory.py [--write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time

import torch
from report import machine, write_section

from unisr.config import model_config
from unisr.decoding import DecodingOptions, decode_encoded
from unisr.model import UnifiedModel

SECTION = "## Memory of long inputs (`benchmarks/memory.py`)"
# (name, clips, frames per clip, kind, decode_frames)
CASES = (
    ("one 30 s clip", 1, 750, "encode", None),
    ("one 30 s clip", 1, 750, "beam", None),
    ("32 clips of 6 s", 32, 150, "beam", None),
    ("32 clips of 6 s, decode_frames 1500", 32, 150, "beam", 1500),
    ("32 clips of 6 s, decode_frames 750", 32, 150, "beam", 750),
)


def rss_mib() -> float:
    """This process's resident set now, MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmRSS in /proc/self/status")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(case: dict) -> dict:
    """Run one case in this process; returns its memory and time."""
    torch.manual_seed(0)
    device = torch.device(case["device"])
    model = UnifiedModel(model_config("base")).eval().to(device)
    count, frames = case["clips"], case["frames"]
    lengths = torch.full((count,), frames, device=device)
    if case["kind"] == "encode":
        video = torch.randn(count, frames, 88, 88, device=device)
        audio = 0.1 * torch.randn(count, frames * 640, device=device)

        def call():
            return model.encode(video, audio, lengths, streams=("av",))
    else:
        with torch.no_grad():
            features = torch.randn(count, frames, model.config.d_model, device=device)
            encoded = model.encoder.transformer(features, None)
        options = DecodingOptions(beam_size=case["beam"], maxlenratio=case["maxlenratio"],
                                  decode_frames=case["decode_frames"])  # fmt: skip

        def call():
            return decode_encoded(model, encoded, lengths, "av", options)

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = rss_mib()
    start = time.perf_counter()
    with torch.inference_mode():
        call()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = peak_mib()
    return {"before": before, "peak": peak, "seconds": time.perf_counter() - start}


def run_case(case: dict) -> dict:
    """One case in a fresh interpreter (its own peak)."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(case)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def cases(args) -> list[dict]:
    return [
        {"name": name, "clips": clips, "frames": frames, "kind": kind, "decode_frames": limit,
         "beam": args.beam, "maxlenratio": args.maxlenratio, "device": args.device}
        for name, clips, frames, kind, limit in CASES
    ]  # fmt: skip


def table(rows: list[tuple[dict, dict]], unit: str) -> str:
    lines = [
        f"| input | measured call | {unit} before (MiB) | peak (MiB) | added by the call (MiB) "
        "| seconds |",
        "|---|---|---|---|---|---|",
    ]
    for case, r in rows:
        call = "AV encoder" if case["kind"] == "encode" else f"beam {case['beam']}"
        lines.append(
            f"| {case['name']} | {call} | {r['before']:.0f} | {r['peak']:.0f} "
            f"| {r['peak'] - r['before']:.0f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beam", type=int, default=40)
    parser.add_argument("--maxlenratio", type=float, default=0.15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="record the results in BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    rows = []
    for case in cases(args):
        rows.append((case, run_case(case)))
        print(table(rows[-1:], "RSS").splitlines()[-1], flush=True)
    unit = "allocated" if args.device.startswith("cuda") else "RSS"
    body = "\n".join(
        [
            f"Command: `{' '.join(['python', 'benchmarks/memory.py', *sys.argv[1:]])}`  ",
            f"Machine: {machine()}, {args.threads} threads; device {args.device}  ",
            f"Date: {datetime.date.today().isoformat()} (load average {os.getloadavg()[0]:.1f})  ",
            f"Random-weight Base model (d 512, 12 encoder and 6 decoder layers, 1049 classes), "
            f"beam {args.beam}, CTC weight 0.1, maxlenratio {args.maxlenratio}; each row a fresh "
            f"process; {'peak RSS' if unit == 'RSS' else 'torch.cuda.max_memory_allocated'}.",
            "",
            table(rows, unit),
        ]
    )
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
