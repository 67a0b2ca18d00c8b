"""WER of one checkpoint decoded in float32, bfloat16 and float16, side by side.

Each dtype loads the checkpoint with ``load_model(dtype=...)`` (weights and activations in that
dtype; log-mel, scores and the CTC prefix scorer in float32) and runs ``unisr eval``'s
:func:`~unisr.evaluate.evaluate` on the same manifest, every stream, beam search and CTC greedy.
The default is the ``make demo`` model on its test set.

    .venv/bin/python benchmarks/precision.py [--checkpoint runs/synth_demo/model_avg.pt]
        [--manifest data/synth_tiny_grid/test.tsv] [--write]
"""

from __future__ import annotations

import argparse

import torch
from report import publish

from unisr.checkpoint import DTYPES, load_model
from unisr.decoding import DecodingOptions
from unisr.evaluate import EvalOptions, evaluate
from unisr.manifest import load_manifest

SECTION = "## Decoding in half precision (`benchmarks/precision.py`)"
STREAMS = ("a", "v", "av")


def wers(checkpoint: str, rows, dtype: str, options: DecodingOptions) -> dict[str, float]:
    model = load_model(checkpoint, dtype=dtype)
    summary, _ = evaluate(model, rows, EvalOptions(streams=STREAMS, decoding=options))
    return {entry["stream"]: entry["wer"] for entry in summary["results"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="runs/synth_demo/model_avg.pt")
    parser.add_argument("--manifest", default="data/synth_tiny_grid/test.tsv")
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="record the results in BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = load_manifest(args.manifest)
    decoders = {f"beam {args.beam}": DecodingOptions(beam_size=args.beam),
                "CTC greedy": DecodingOptions(method="ctc")}  # fmt: skip
    lines = ["| decoding | dtype | " + " | ".join(f"WER {s} %" for s in STREAMS)
             + " | largest change vs float32 (points) |",
             "|---|---|" + "---|" * (len(STREAMS) + 1)]  # fmt: skip
    for name, options in decoders.items():
        reference = None
        for dtype in DTYPES:
            got = wers(args.checkpoint, rows, dtype, options)
            reference = reference or got
            change = max(abs(got[s] - reference[s]) for s in STREAMS)
            cells = " | ".join(f"{got[s]:.1f}" for s in STREAMS)
            lines.append(f"| {name} | {dtype} | {cells} | {change:.1f} |")
            print(lines[-1], flush=True)
    note = (f"Checkpoint `{args.checkpoint}`, {len(rows)} utterances of `{args.manifest}`, "
            f"{args.threads} threads.")  # fmt: skip
    publish(SECTION, note, lines, args.write)


if __name__ == "__main__":
    main()
