"""``unisr demo``: the whole pipeline on a CPU in minutes.

Builds the ``tiny`` synthetic corpus (grid domain) if it is absent, trains the ``synth_demo``
recipe (USR 2.0, mixed sampling), decodes the test set with greedy and beam search for the audio,
visual and audio-visual streams, and prints the WER table, where the model and logs are, and a
plot of the training curves.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

from .errors import UnisrError

DEFAULT_CORPUS = "data/synth_tiny_grid"


def ensure_corpus(corpus: Path, workers: int) -> None:
    """Build the tiny grid corpus unless a finished one is there, then decode the labelled and
    validation clips once into caches: training reads them many times. The unlabelled clips are
    decoded as they come (the demo sees each of them about once)."""
    from .cache import build_cache, cache_dir_for
    from .manifest import read_manifest
    from .synth import build_corpus

    if not (corpus / "summary.json").is_file():
        print(f"building the tiny synthetic corpus in {corpus} ...", flush=True)
        build_corpus(corpus.resolve(), size="tiny", domain="grid", workers=workers)
    for split in ("train_labelled", "val"):
        manifest = corpus / f"{split}.tsv"
        if not (cache_dir_for(manifest) / "index.json").is_file():
            build_cache(read_manifest(manifest), cache_dir_for(manifest), workers=workers)


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """Every logged row of a run (all CSV versions, i.e. across resumptions)."""
    rows = []
    for path in sorted((run_dir / "csv").glob("version_*/metrics.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                rows.append({k: float(v) for k, v in row.items() if v != ""})
    return rows


def plot_curves(run_dir: Path, out: Path) -> Path:
    """Training loss and validation WER per stream against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for part, style in (("labelled", "-"), ("unlabelled", "--")):
        for stream, color in (("a", "C0"), ("v", "C1"), ("av", "C2")):
            key = f"loss/{part}/{stream}"
            points = [(r["step"], r[key]) for r in rows if key in r]
            if points:
                left.plot(*zip(*points), style, color=color, label=f"{stream} {part}")
    left.set(xlabel="step", ylabel="loss per utterance", title="joint CTC/attention loss")
    left.legend()
    for stream in ("a", "v", "av"):
        points = [(r["step"], r[f"val/wer_{stream}"]) for r in rows if f"val/wer_{stream}" in r]
        if points:
            right.plot(*zip(*points), marker="o", label=stream)
    right.set(xlabel="step", ylabel="WER %", title="validation WER (greedy)", ylim=(0, 100))
    right.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def evaluate_test(checkpoint: Path, manifest: Path, out_dir: Path, beam: int) -> dict:
    """WER per stream for greedy CTC, greedy attention and beam search decoding."""
    from .checkpoint import load_model
    from .decoding import DecodingOptions
    from .evaluate import EvalOptions, evaluate, write_outputs
    from .manifest import read_manifest

    model = load_model(checkpoint)
    rows = read_manifest(manifest)
    table = {}
    for name, decoding in (
        ("CTC greedy", DecodingOptions(method="ctc")),
        ("att greedy", DecodingOptions(method="greedy")),
        (f"beam {beam}", DecodingOptions(method="beam", beam_size=beam, ctc_weight=0.1)),
    ):
        summary, results = evaluate(model, rows, EvalOptions(decoding=decoding))
        write_outputs(out_dir / name.lower().replace(" ", "_"), summary, results)
        table[name] = {r["stream"]: r["wer"] for r in summary["results"]}
    return table


def format_wer_table(table: dict) -> str:
    streams = ("a", "v", "av")
    lines = [f"{'decoding':<12}" + "".join(f"{s:>8}" for s in streams)]
    for name, wers in table.items():
        lines.append(f"{name:<12}" + "".join(f"{wers[s]:>8.1f}" for s in streams))
    return "\n".join(lines)


def demo_cli(args) -> int:
    from .train import train
    from .train_config import load_config

    start = time.time()
    corpus = Path(args.corpus)
    workers = args.workers or os.cpu_count() or 1
    ensure_corpus(corpus, workers)
    built = time.time()
    paths = [
        f"data.{key}={corpus / name}"
        for key, name in (
            ("labelled", "train_labelled.tsv"),
            ("unlabelled", "train_unlabelled.tsv"),
            ("val", "val.tsv"),
            ("tokenizer", "tokenizer.model"),
        )
    ]
    cfg = load_config("synth_demo", [*paths, f"trainer.out_dir={args.out}", *args.overrides])
    run_dir = Path(cfg.trainer.out_dir)
    train(cfg)
    trained = time.time()
    model_path = run_dir / "model_avg.pt"
    if not model_path.is_file():
        model_path = run_dir / "model.pt"
    if not model_path.is_file():
        raise UnisrError(f"training wrote no model into {run_dir}")
    table = evaluate_test(model_path, corpus / "test.tsv", run_dir / "eval", args.beam)
    plot = plot_curves(run_dir, run_dir / "curves.png")
    done = time.time()
    timing = {
        "corpus_s": round(built - start, 1),
        "train_s": round(trained - built, 1),
        "eval_s": round(done - trained, 1),
        "total_s": round(done - start, 1),
    }
    (run_dir / "demo.json").write_text(json.dumps({"wer": table, "seconds": timing}, indent=1))
    print(f"\nTest WER % ({corpus / 'test.tsv'}, unseen speakers):")
    print(format_wer_table(table))
    print(f"\nmodel:        {model_path}")
    print(f"logs:         {run_dir / 'tensorboard'} (TensorBoard), {run_dir / 'csv'} (CSV)")
    print(f"curves:       {plot}")
    print(f"hypotheses:   {run_dir / 'eval'}")
    minutes = {k: f"{v / 60:.1f} min" for k, v in timing.items()}
    print(
        f"time:         {minutes['total_s']} (corpus {minutes['corpus_s']}, "
        f"training {minutes['train_s']}, evaluation {minutes['eval_s']})"
    )
    return 0
