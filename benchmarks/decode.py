"""Decoding throughput: utterances/s, batched vs one utterance at a time.

Model: random weights in the Base shape (``model_config("base")``, 1049 classes). Data: a batch
of ``--batch`` utterances of 2-6 s (50-150 frames at 25 fps, seeded); their encoder outputs come
from the model's own Transformer encoder on random front-end features, once, outside the timings:
what is timed is decoding (the AV stream) from encoder outputs to n-best lists.

Output length: random weights hardly ever choose eos, so every hypothesis runs to the length
limit, and the official limit (maxlenratio 1.0, one token per frame) would make ~6x more decoder
steps than real speech needs. ``--maxlenratio`` (default 0.15, i.e. 3.75 tokens per second, 7-22
tokens per utterance) sets the limit near the token rate of real speech with a 1000-unit
vocabulary instead; batched and one-at-a-time decoding make exactly the same steps.

Measured side by side in one run, each ``--repeats`` times (medians): joint CTC/attention beam
search for every ``--beams`` size at ``--ctc-weight``, attention greedy and CTC greedy; on CPU
with each of ``--threads`` thread counts, and on the GPU too when one is available.

    .venv/bin/python benchmarks/decode.py [--repeats 3] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from dataclasses import replace

import torch
from report import machine, write_section

from unisr.config import model_config
from unisr.decoding import DecodingOptions, decode_encoded
from unisr.model import UnifiedModel

SECTION = "## Decoding (`benchmarks/decode.py`)"


def make_batch(model: UnifiedModel, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder outputs (B, T, D) and valid lengths of ``count`` utterances of 50-150 frames."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(50, 151, (count,), generator=generator)
    frames = int(lengths.max())
    features = torch.randn(count, frames, model.config.d_model, generator=generator)
    mask = torch.arange(frames)[None, :] < lengths[:, None]
    with torch.no_grad():
        encoded = model.encoder.transformer(features, mask)
    return encoded, lengths


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(model, encoded, lengths, options: DecodingOptions, repeats: int) -> dict:
    """Medians of batched and one-at-a-time decoding of the whole batch, alternated."""

    def batched():
        return decode_encoded(model, encoded, lengths, "av", options)

    def one_at_a_time():
        for item, n in zip(encoded, lengths.tolist()):
            decode_encoded(model, item[None, :n], None, "av", options)

    decode_encoded(model, encoded[:2], lengths[:2], "av", options)  # warm-up
    times = {"batched": [], "single": []}
    for _ in range(repeats):
        seconds, results = timed(batched)
        times["batched"].append(seconds)
        times["single"].append(timed(one_at_a_time)[0])
    tokens = statistics.mean(len(nbest[0].tokens) for nbest in results)
    return {name: statistics.median(values) for name, values in times.items()} | {"tokens": tokens}


def run(args: argparse.Namespace, device: torch.device, label: str) -> list[tuple]:
    torch.manual_seed(args.seed)
    model = UnifiedModel(model_config("base")).eval()
    encoded, lengths = make_batch(model, args.batch, args.seed)
    model, encoded, lengths = model.to(device), encoded.to(device), lengths.to(device)
    settings = [
        (f"beam {beam}, CTC weight {args.ctc_weight}", DecodingOptions(beam_size=beam))
        for beam in args.beams
    ]
    settings.append(("attention greedy", DecodingOptions(method="greedy")))
    settings.append(("CTC greedy", DecodingOptions(method="ctc")))
    rows = []
    for name, options in settings:
        options = replace(options, ctc_weight=args.ctc_weight, maxlenratio=args.maxlenratio)
        result = measure(model, encoded, lengths, options, args.repeats)
        rate = {k: args.batch / result[k] for k in ("batched", "single")}
        rows.append((label, name, rate["batched"], rate["single"], result["tokens"]))
        speedup = rate["batched"] / rate["single"]
        print(f"{label} {name}: {rate['batched']:.2f} utt/s batched, ", end="")
        print(f"{rate['single']:.2f} one at a time, {speedup:.1f}x", flush=True)
    return rows


def table(rows: list[tuple]) -> str:
    lines = [
        "| device | decoding | batched utt/s | one at a time utt/s | speed-up | 1-best tokens |",
        "|---|---|---|---|---|---|",
    ]
    for device, name, batched, single, tokens in rows:
        lines.append(
            f"| {device} | {name} | {batched:.2f} | {single:.2f} | {batched / single:.1f}x "
            f"| {tokens:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--beams", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--ctc-weight", type=float, default=0.1)
    parser.add_argument("--maxlenratio", type=float, default=0.15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[2], help="CPU thread counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="record the results in BENCHMARKS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        rows += run(args, torch.device("cpu"), f"CPU, {threads} thread{'s' * (threads > 1)}")
    if torch.cuda.is_available():
        rows += run(args, torch.device("cuda"), "GPU")
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    body = "\n".join(
        [
            f"Command: `{' '.join(['python', 'benchmarks/decode.py', *sys.argv[1:]])}`  ",
            f"Machine: {machine()}  ",
            f"Date: {datetime.date.today().isoformat()} ({load}; the machine is shared)  ",
            f"Random-weight Base-shaped model, {args.batch} utterances of 50-150 frames (2-6 s), "
            f"AV stream, decoding from encoder outputs; maxlenratio {args.maxlenratio} (random "
            "weights never end a hypothesis, so this limit stands in for the length of real "
            f"transcripts); medians of {args.repeats} runs, "
            "batched and one-at-a-time runs alternated.",
            "",
            table(rows),
        ]
    )
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
