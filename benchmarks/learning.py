"""Does pseudo-labelling help? The demo recipe side by side with a labelled-only continuation
from the same start, at the same number of steps.

Run A is the ``synth_demo`` recipe as ``unisr demo`` trains it: labelled-only steps, then USR 2.0
(mixed sampling) from ``teacher.start_step`` (or a finished ``unisr demo`` run, ``--usr2-run``).
Run B resumes A's training state at that step (``checkpoints/pl-start.ckpt``) and continues to
the same last step on the labelled clips alone (pseudo-labelling never starts). Both log
validation WER (CTC greedy) per step and their wall time; both final models are decoded on
``test`` with beam search. Results go to BENCHMARKS.md and ``docs/images/learning.png``.

    .venv/bin/python benchmarks/learning.py --usr2-run runs/synth_demo   (after make demo)
    .venv/bin/python benchmarks/learning.py optim.max_steps=2000 teacher.start_step=800
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
from report import machine, write_section

from unisr.demo import corpus_overrides, ensure_corpus, evaluate_test, final_model
from unisr.train import train
from unisr.train_config import load_config

ROOT = Path(__file__).resolve().parent.parent
STREAMS = ("a", "v", "av")


class WallClock(pl.Callback):
    """Validation WER per stream against the step and the seconds since ``origin``."""

    def __init__(self, origin: float, rows: list[dict]):
        self.origin, self.rows = origin, rows

    def on_validation_end(self, trainer, module) -> None:
        metrics = trainer.callback_metrics
        row = {"step": trainer.global_step, "seconds": round(time.time() - self.origin, 1)}
        row.update(
            {s: float(metrics[f"val/wer_{s}"]) for s in STREAMS if f"val/wer_{s}" in metrics}
        )
        self.rows.append(row)


def csv_curve(run_dir: Path) -> list[dict]:
    """Validation WER rows of a finished run, from its CSV logs (for a run made elsewhere)."""
    from unisr.demo import read_metrics

    curve = []
    for r in read_metrics(run_dir):
        wers = {s: r[f"val/wer_{s}"] for s in STREAMS if f"val/wer_{s}" in r}
        if wers:
            curve.append({"step": int(r["step"]), **wers})
    return curve


def run(corpus: Path, out: Path, overrides: list[str], beam: int, usr2: Path | None) -> dict:
    paths = [*corpus_overrides(corpus), "trainer.progress_bar=false"]
    cfg = load_config("synth_demo", [*paths, *overrides, f"trainer.out_dir={out / 'usr2'}"])
    start, total = cfg.teacher.start_step, cfg.optim.max_steps
    if not 0 < start < total:
        sys.exit(f"teacher.start_step ({start}) must lie inside the run (max_steps {total})")
    curves: dict[str, list[dict]] = {"usr2": [], "labelled_only": []}
    if usr2 is None:  # A: the demo recipe, timed here
        usr2 = out / "usr2"
        began = time.time()
        train(cfg, callbacks=(WallClock(began, curves["usr2"]),))
        usr2_seconds = time.time() - began
    else:  # A was made by `unisr demo` with the same recipe
        curves["usr2"] = csv_curve(usr2)
        usr2_seconds = json.loads((usr2 / "demo.json").read_text())["seconds"]["train_s"]
    # B: the same state at the start step, then labelled-only steps to the same total
    cfg_b = load_config(
        "synth_demo",
        [*paths, *overrides, f"trainer.out_dir={out / 'labelled_only'}",
         f"teacher.start_step={total + 1}"],
    )  # fmt: skip
    began = time.time()
    train(cfg_b, resume=str(usr2 / "checkpoints" / "pl-start.ckpt"),
          callbacks=(WallClock(began, curves["labelled_only"]),))  # fmt: skip
    continuation_seconds = time.time() - began
    test = {}
    for name, folder in (("usr2", usr2), ("labelled_only", out / "labelled_only")):
        model = final_model(folder)
        table = evaluate_test(model, corpus / "test.tsv", out / name / "eval", beam, ("beam",))
        test[name] = next(iter(table.values()))
    result = {
        "start_step": start,
        "steps": total,
        "seconds": {"usr2": round(usr2_seconds, 1), "continuation": round(continuation_seconds, 1)},
        "curves": curves,
        "test_beam": test,
        "beam": beam,
    }
    (out / "learning.json").write_text(json.dumps(result, indent=1))
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    labels = {"usr2": "USR 2.0 (mixed)", "labelled_only": "labelled-only continuation"}
    for ax, stream in zip(axes, STREAMS):
        for name, style in (("labelled_only", "--"), ("usr2", "-")):
            points = [(r["step"], r[stream]) for r in result["curves"][name] if stream in r]
            if points:
                ax.plot(*zip(*points), style, marker="o", ms=3, label=labels[name])
        ax.axvline(result["start_step"], color="grey", lw=0.8)
        ax.set(title=f"stream {stream}", xlabel="step", ylim=(0, 100))
    axes[0].set_ylabel("validation WER % (CTC greedy)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(result: dict, command: str) -> str:
    t = result["test_beam"]
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}",
        "",
        f"Both runs share the first {result['start_step']} (labelled-only) steps of the demo "
        f"recipe, then run to step {result['steps']}: one with USR 2.0 pseudo-labelling (mixed "
        "sampling), one on the labelled clips only. Test WER % (unseen speakers, beam "
        f"{result['beam']}, averaged model):",
        "",
        "| run | a | v | av | wall time |",
        "|---|---|---|---|---|",
    ]
    seconds = result["seconds"]
    for name, label, spent in (
        ("labelled_only", "labelled-only continuation", f"{seconds['continuation'] / 60:.1f} min "
         f"for its {result['steps'] - result['start_step']} steps"),
        ("usr2", "USR 2.0", f"{seconds['usr2'] / 60:.1f} min for the whole run"),
    ):  # fmt: skip
        cells = " | ".join(f"{t[name][s]:.1f}" for s in STREAMS)
        lines.append(f"| {label} | {cells} | {spent} |")
    better = [s for s in STREAMS if t["usr2"][s] < t["labelled_only"][s]]
    lines += [
        "",
        f"USR 2.0 is better on {len(better)} of 3 streams ({', '.join(better) or 'none'}).",
        "",
        "![validation WER against the step](docs/images/learning.png)",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", help="key=value overrides of the synth_demo recipe")
    p.add_argument("--corpus", default="data/synth_tiny_grid", help="built there if absent")
    p.add_argument("--out", default="runs/learning", help="folder for both runs (must not exist)")
    p.add_argument("--beam", type=int, default=10)
    p.add_argument(
        "--usr2-run",
        type=Path,
        help="a finished `unisr demo` run to continue from "
        "(default: train the demo recipe here first)",
    )
    p.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md alone")
    args = p.parse_args()
    out = Path(args.out)
    if out.exists():
        sys.exit(f"{out} exists: give another --out (nothing there is replaced)")
    corpus = Path(args.corpus)
    ensure_corpus(corpus, workers=2)
    result = run(corpus, out, args.overrides, args.beam, args.usr2_run)
    plot(result, ROOT / "docs" / "images" / "learning.png")
    body = report(result, "python benchmarks/learning.py " + " ".join(sys.argv[1:]))
    print(body)
    if not args.no_write:
        write_section("## Learning: USR 2.0 vs labelled-only (`benchmarks/learning.py`)", body)


if __name__ == "__main__":
    main()
