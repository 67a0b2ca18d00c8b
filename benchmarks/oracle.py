"""What labels are worth through the unlabelled path: oracle arms, labelled-only, the ceiling.

Every arm continues one shared training state (``--start``, e.g. a run's
``checkpoints/pl-start.ckpt``) to ``--steps`` with the same seed and data order, and changes one
thing against the arm it is compared with:

* ``labelled_only``: no unlabelled clips (the continuation baseline);
* ``ceiling``: the unlabelled clips as labelled data, beside the labelled ones, with the frames
  of both parts of a semi-supervised step in each batch;
* ``oracle``: ``pl.mode=oracle``, the clips' transcripts in the teacher's place through the
  unlabelled path (masked student views, unlabelled shares, losses all unchanged);
* ``*_unmasked``: the same with the student's views not masked; ``oracle_wer<N>``: with N %
  seeded word errors in the oracle's labels (how good a teacher must be);
* ``mixed`` / ``mixed_unmasked``: USR 2.0 with the teacher's own labels.

Each final model (average of its last checkpoints) is decoded on ``test`` (a / v / av, beam 10
and CTC greedy); each difference from ``labelled_only`` comes with its 95 % paired bootstrap
interval over utterances. The report and plots go to ``--report``. Resumable: a finished arm is
kept, a half-trained one resumes from its newest checkpoint.

    python benchmarks/oracle.py --start runs/synth_demo/checkpoints/pl-start.ckpt --steps 900
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

from report import machine

from unisr.demo import DEFAULT_CORPUS, final_model, read_metrics
from unisr.train import train
from unisr.train_config import load_config

ROOT = Path(__file__).resolve().parent.parent
STREAMS = ("a", "v", "av")
NEVER = "teacher.start_step=1000000000"  # labelled-only: the teacher never starts
UNMASKED = ["data.augment.video_mask_window=0", "data.augment.audio_mask_window=0"]


def arm_overrides(arm: str, corpus: Path, frames: int) -> list[str]:
    """The overrides of one arm (see the module docstring) on the ``synth_demo`` recipe."""
    unmasked = UNMASKED if "unmasked" in arm else []
    if arm == "labelled_only":
        return [NEVER]
    if arm == "ceiling":
        both = f"[{corpus / 'train_labelled.tsv'},{corpus / 'train_unlabelled.tsv'}]"
        return [NEVER, f"data.labelled={both}", f"data.frames_per_batch={2 * frames}"]
    if arm.startswith("oracle"):
        rate = arm.removeprefix("oracle").removeprefix("_unmasked").removeprefix("_wer")
        return ["pl.mode=oracle", f"pl.oracle_wer={int(rate or 0) / 100}", *unmasked]
    if arm.startswith("mixed"):
        return ["pl.mode=mixed", *unmasked]
    raise SystemExit(f"unknown arm {arm!r}")


def train_arm(arm: str, args, base: list[str]) -> Path:
    run_dir = args.out / arm
    if (run_dir / "model.pt").is_file():
        return run_dir
    cfg = load_config("synth_demo", [*base, *arm_overrides(arm, args.corpus, args.frames),
                                     f"trainer.out_dir={run_dir}"])  # fmt: skip
    resume = "auto" if (run_dir / "run.json").is_file() else str(args.start)
    print(f"[oracle] training {arm} -> {run_dir}", flush=True)
    train(cfg, resume=resume)
    return run_dir


def evaluate_arm(run_dir: Path, corpus: Path, beam: int) -> dict:
    """Per-utterance word errors on ``test`` for beam and CTC greedy; cached in the run."""
    from unisr.checkpoint import load_model
    from unisr.decoding import DecodingOptions
    from unisr.evaluate import EvalOptions, evaluate
    from unisr.manifest import read_manifest

    path = run_dir / "test_errors.json"
    if path.is_file():
        return json.loads(path.read_text())
    model = load_model(final_model(run_dir))
    rows = read_manifest(corpus / "test.tsv")
    out = {}
    for name, decoding in (
        ("beam", DecodingOptions(method="beam", beam_size=beam, ctc_weight=0.1)),
        ("ctc", DecodingOptions(method="ctc")),
    ):
        _, utterances = evaluate(model, rows, EvalOptions(streams=STREAMS, decoding=decoding))
        out[name] = {
            stream: [[u.id, u.word_errors, u.words] for u in utts]
            for (stream, _), utts in utterances.items()
        }
    path.write_text(json.dumps(out))
    return out


def wer(rows: list) -> float:
    return 100 * sum(r[1] for r in rows) / max(sum(r[2] for r in rows), 1)


def difference(base: list, other: list) -> tuple[float, float, float]:
    from unisr.evaluate import Utterance, bootstrap_difference

    def utts(rows):
        return [Utterance(i, 0, "", "", e, w, 0, 0) for i, e, w in rows]

    return bootstrap_difference(utts(base), utts(other))


def cell(results: dict, arm: str, method: str, stream: str) -> str:
    value = wer(results[arm][method][stream])
    if arm == "labelled_only" or "labelled_only" not in results:
        return f"{value:.1f}"
    d, low, high = difference(results["labelled_only"][method][stream],
                              results[arm][method][stream])  # fmt: skip
    mark = "**" if high < 0 else ""
    return f"{mark}{value:.1f}{mark} ({d:+.1f} [{low:+.1f}, {high:+.1f}])"


def plots(args, arms: list[str], results: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = args.report.parent / "images"
    images.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for ax, stream in zip(axes, STREAMS):
        for arm in arms:
            rows = [r for r in read_metrics(args.out / arm) if f"val/wer_{stream}" in r]
            ax.plot([r["step"] for r in rows], [r[f"val/wer_{stream}"] for r in rows], marker=".",
                    label=arm)  # fmt: skip
        ax.set(title=f"{stream}: validation WER (CTC greedy)", xlabel="step")
    axes[0].set_ylabel("WER %")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(images / f"{args.prefix}_curves.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    rated = sorted((int(a.rsplit("wer", 1)[1]) if "wer" in a else 0, a)
                   for a in arms if a.startswith("oracle_unmasked"))  # fmt: skip
    if len(rated) > 1:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for stream in STREAMS:
            ax.plot([r for r, _ in rated], [wer(results[a]["beam"][stream]) for _, a in rated],
                    marker="o", label=f"{stream} oracle")  # fmt: skip
            if "labelled_only" in results:
                ax.axhline(wer(results["labelled_only"]["beam"][stream]), ls="--", lw=0.8,
                           color=ax.lines[-1].get_color())  # fmt: skip
        ax.set(xlabel="word errors in the oracle's labels (%)", ylabel="test WER %, beam",
               title="student WER against label WER (dashed: labelled-only)")  # fmt: skip
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(images / f"{args.prefix}_label_wer.png")
        fig.savefig(paths[-1], dpi=90)
        plt.close(fig)
    return paths


def report(args, arms: list[str], results: dict, seconds: float) -> None:
    lines = [
        "# Labels through the unlabelled path",
        "",
        f"Command: `python benchmarks/oracle.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today()}; {seconds / 60:.0f} min in this invocation",
        "",
        f"Every arm continues `{args.start}` to step {args.steps} with the same seed and data "
        "order (the arms are described in `benchmarks/oracle.py`). Test WER % on `test` "
        "(unseen speakers), average of the last checkpoints, a / v / av; in brackets the "
        "difference from labelled-only with its 95 % paired bootstrap interval over utterances; "
        "bold where the interval lies below zero.",
        "",
    ]
    for method, title in (("beam", f"beam {args.beam}"), ("ctc", "CTC greedy")):
        lines += [f"## {title}", "", "| arm | a | v | av |", "|---|---|---|---|"]
        for arm in arms:
            lines.append(f"| {arm} | " + " | ".join(cell(results, arm, method, s)
                                                     for s in STREAMS) + " |")  # fmt: skip
        lines.append("")
    for path in plots(args, arms, results):
        lines += [f"![{path.stem}]({os.path.relpath(path, args.report.parent)})", ""]
    args.report.write_text("\n".join(lines))
    print(f"[oracle] report: {args.report}")


def main(argv=None) -> int:
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=Path, required=True, help="shared training checkpoint")
    parser.add_argument("--steps", type=int, required=True, help="step every arm ends at")
    parser.add_argument("--arms", nargs="+", default=["labelled_only", "ceiling", "oracle",
                                                      "oracle_unmasked"])  # fmt: skip
    parser.add_argument("--corpus", type=Path, default=ROOT / DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "oracle")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "unlabelled_path.md")
    parser.add_argument("--prefix", default="unlabelled_path", help="file names of the plots")
    parser.add_argument("--frames", type=int, default=800, help="labelled frames per batch")
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--only-train", action="store_true", help="train, then stop")
    parser.add_argument("overrides", nargs="*", help="key=value for every arm")
    args = parser.parse_args(argv)
    start = time.time()
    base = [f"optim.max_steps={args.steps}", "trainer.val_every=100", "trainer.log_every=10",
            *(f"data.{k}={args.corpus / f}" for k, f in (
                ("labelled", "train_labelled.tsv"), ("unlabelled", "train_unlabelled.tsv"),
                ("val", "val.tsv"), ("tokenizer", "tokenizer.model"))),
            *args.overrides]  # fmt: skip
    results = {}
    for arm in args.arms:
        run_dir = train_arm(arm, args, base)
        if not args.only_train:
            results[arm] = evaluate_arm(run_dir, args.corpus, args.beam)
    if not args.only_train:
        report(args, args.arms, results, time.time() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
