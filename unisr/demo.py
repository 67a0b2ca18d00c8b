"""``unisr demo``: the whole pipeline on a CPU in minutes.

Builds the ``tiny`` synthetic corpus (grid domain) if it is absent, trains the ``synth_demo``
recipe (USR 2.0, mixed sampling), decodes the test set with greedy and beam search for the audio,
visual and audio-visual streams, and prints the WER table (with the labelled-only student where
pseudo-labelling began, beam search), where the model and logs are, and a plot of the training
curves.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

from .errors import UnisrError

DEFAULT_CORPUS = "data/synth_tiny_grid"


def ensure_corpus(corpus: Path, workers: int, size: str = "tiny") -> None:
    """Build a grid corpus (``tiny`` for the demo) unless a finished one is there, then decode
    the training and validation clips once into caches. The labelled clips are read many times;
    the unlabelled ones only a few times, but they are fetched from the first step on, and
    decoding them as they came held every step to the speed of video decoding (1.1 instead of
    1.6 steps/s)."""
    from .cache import build_cache, cache_dir_for
    from .manifest import read_manifest
    from .synth import build_corpus

    if not (corpus / "summary.json").is_file():
        print(f"building the {size} synthetic corpus in {corpus} ...", flush=True)
        build_corpus(corpus.resolve(), size=size, domain="grid", workers=workers)
    for split in ("train_labelled", "train_unlabelled", "val"):
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


DECODINGS = ("ctc", "greedy", "beam")


def evaluate_test(
    checkpoint: Path, manifest: Path, out_dir: Path, beam: int, methods=DECODINGS
) -> dict[str, dict[str, float]]:
    """WER per stream of each decoding method (CTC greedy, attention greedy, beam search),
    keyed by the method's display name; each method's hypotheses go to a folder of out_dir."""
    from .checkpoint import load_model
    from .decoding import DecodingOptions
    from .evaluate import EvalOptions, evaluate, write_outputs
    from .manifest import read_manifest

    model = load_model(checkpoint)
    rows = read_manifest(manifest)
    options = {
        "ctc": ("CTC greedy", DecodingOptions(method="ctc")),
        "greedy": ("att greedy", DecodingOptions(method="greedy")),
        "beam": (f"beam {beam}", DecodingOptions(method="beam", beam_size=beam, ctc_weight=0.1)),
    }
    table = {}
    for method in methods:
        name, decoding = options[method]
        summary, results = evaluate(model, rows, EvalOptions(decoding=decoding))
        write_outputs(out_dir / name.lower().replace(" ", "_"), summary, results)
        table[name] = {r["stream"]: r["wer"] for r in summary["results"]}
    return table


def wer_rows(run_dir: Path, test: Path, beam: int) -> list[dict]:
    """The WER table of a finished run, as rows {"model", "decoding", "wer": {stream: WER}}: the
    labelled-only student where pseudo-labelling began (beam search), when the run saved one,
    then the final model with every decoding. Hypotheses go to ``eval_labelled_only/`` and
    ``eval/`` in the run folder."""
    rows = []
    pl_start = run_dir / "labelled_only.pt"
    if pl_start.is_file():
        base = evaluate_test(pl_start, test, run_dir / "eval_labelled_only", beam, ("beam",))
        model = f"labelled-only, step {checkpoint_step(pl_start)}"
        rows += [{"model": model, "decoding": k, "wer": v} for k, v in base.items()]
    final = evaluate_test(final_model(run_dir), test, run_dir / "eval", beam)
    model = f"USR 2.0, step {checkpoint_step(run_dir / 'model.pt')}"
    rows += [{"model": model, "decoding": k, "wer": v} for k, v in final.items()]
    return rows


def format_wer_table(rows: list[dict]) -> str:
    """Rows of {"model", "decoding", "wer": {stream: WER}} as an aligned text table."""
    streams = ("a", "v", "av")
    width = max(len("model"), *(len(r["model"]) for r in rows)) + 2
    lines = [f"{'model':<{width}}{'decoding':<12}" + "".join(f"{s:>8}" for s in streams)]
    for r in rows:
        cells = "".join(f"{r['wer'][s]:>8.1f}" for s in streams)
        lines.append(f"{r['model']:<{width}}{r['decoding']:<12}{cells}")
    return "\n".join(lines)


def corpus_overrides(corpus: Path) -> list[str]:
    """The ``synth_demo`` recipe's data paths pointed at a corpus folder."""
    return [
        f"data.{key}={corpus / name}"
        for key, name in (
            ("labelled", "train_labelled.tsv"),
            ("unlabelled", "train_unlabelled.tsv"),
            ("val", "val.tsv"),
            ("tokenizer", "tokenizer.model"),
        )
    ]


def final_model(run_dir: Path) -> Path:
    """A finished run's model: the checkpoint average if there is one, else the last student."""
    for name in ("model_avg.pt", "model.pt"):
        if (run_dir / name).is_file():
            return run_dir / name
    raise UnisrError(f"training wrote no model into {run_dir}")


def checkpoint_step(path: Path) -> int:
    from .checkpoint import read_checkpoint

    return int(read_checkpoint(path).get("step", 0))


def demo_cli(args) -> int:
    from .train import train
    from .train_config import load_config

    start_time = time.time()
    corpus = Path(args.corpus)
    workers = args.workers or os.cpu_count() or 1
    ensure_corpus(corpus, workers)
    built = time.time()
    overrides = [*corpus_overrides(corpus), f"trainer.out_dir={args.out}", *args.overrides]
    cfg = load_config("synth_demo", overrides)
    run_dir = Path(cfg.trainer.out_dir)
    train(cfg, resume=args.resume, overwrite=args.overwrite)
    trained = time.time()
    model_path = final_model(run_dir)
    test = corpus / "test.tsv"
    rows = wer_rows(run_dir, test, args.beam)
    plot = plot_curves(run_dir, run_dir / "curves.png")
    done = time.time()
    timing = {
        "corpus_s": round(built - start_time, 1),
        "train_s": round(trained - built, 1),
        "eval_s": round(done - trained, 1),
        "total_s": round(done - start_time, 1),
    }
    (run_dir / "demo.json").write_text(json.dumps({"wer": rows, "seconds": timing}, indent=1))
    print(f"\nTest WER % ({test}, unseen speakers):")
    print(format_wer_table(rows))
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
