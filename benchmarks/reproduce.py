"""The paper's claims side by side on the synthetic corpus: ``make reproduce`` -> docs/RESULTS.md.

The recipe has the paper's shape: a supervised model first, then a semi-supervised stage that
starts from its weights with a schedule of its own.

1. **Corpus**: the ``base`` grid corpus and its caches; the labelled set is its first
   ``--labelled`` clips (few labelled clips, many unlabelled ones: every stream data-limited).
2. **Seed** (``synth_base_seed``): a labelled-only run of ``--seed-steps`` with its own warm-up
   and cosine, long enough for its teacher's greedy CTC labels to be mostly right.
3. **Arms** (``synth_base``): each a new run of ``--steps`` from the seed's weights, with its own
   warm-up (40 steps) and cosine from a peak of 1e-3, the teacher labelling from its first step,
   the same seed and data order (:func:`arms`):

   * ``labelled_only``: labelled clips only, at the seed's frames per step;
   * ``control``: labelled clips only, at the frames per step of an arm with unlabelled data
     (labelled + unlabelled batch): the honest control, since batch size alone moves WER;
   * ``ceiling``: the unlabelled clips as labelled data (their transcripts), the upper bound;
   * ``oracle``: the transcripts in the teacher's place through the unlabelled path;
   * ``usr1``: USR 1.0 (frame-wise CTC targets, AR attention targets, separate output layers);
   * ``mixed``: USR 2.0, CTC-driven or AR pseudo-labels with p_ar = 0.5.

   ``--ablations`` adds ``ar`` and ``ctc_driven`` (one PL mode only), ``oracle_masked`` (the
   paper's masks on the student's views) and ``oracle_wer20`` / ``oracle_wer40``.
4. **Evaluation** of each arm's final model: ``test`` (a / v / av, beam, CTC greedy and attention
   greedy, per-utterance errors kept for paired bootstrap intervals), ``test_long`` by length
   bucket, ``test_ood`` and babble noise at 10 to -5 dB (:func:`evaluate_arm`).
5. **Report** (``reproduce_report.py``): every verdict against both labelled-only arms.

Every stage records its result in ``--out`` when done, so a killed run picks up at the next
unfinished part (a half-trained run resumes from its newest checkpoint).

    make reproduce                                  (= .venv/bin/python benchmarks/reproduce.py)
    make reproduce-ablations                        (the same run folder, five more arms)
    python benchmarks/reproduce.py --device cuda    (GPU)
    python benchmarks/reproduce.py --smoke --out /tmp/r --results /tmp/r/RESULTS.md  (seconds)
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import reproduce_report

from unisr.demo import corpus_overrides, ensure_corpus, final_model, read_metrics
from unisr.files import atomic_write
from unisr.train import train
from unisr.train_config import load_config

ROOT = Path(__file__).resolve().parent.parent
STREAMS = ("a", "v", "av")
LABELLED_ONLY = ["pl.mode=supervised", "data.unlabelled=null"]
PAPER_MASKS = ["data.augment.video_mask_window=0.4", "data.augment.audio_mask_window=0.6"]
SNRS = (None, 10.0, 5.0, 0.0, -5.0)
SMOKE = ["model.enc_layers=1", "model.d_model=64", "model.heads=2", "trainer.ckpt_every=1",
         "trainer.average_last=1", "trainer.log_every=1", "data.frames_per_batch=400",
         "data.frames_per_batch_unlabelled=400"]  # fmt: skip


def arms(labelled: Path, unlabelled: Path, frames: int) -> dict[str, list[str]]:
    """What each arm changes in the recipe. ``frames``: what a step with unlabelled data sees
    (labelled + unlabelled batch), which the control and the ceiling get all labelled."""
    equal = f"data.frames_per_batch={frames}"
    return {
        "labelled_only": LABELLED_ONLY,
        "control": [*LABELLED_ONLY, equal],
        "ceiling": [*LABELLED_ONLY, equal, f"data.labelled=[{labelled},{unlabelled}]"],
        "oracle": ["pl.mode=oracle"],
        "usr1": ["pl.mode=usr1"],
        "mixed": ["pl.mode=mixed", "pl.p_ar=0.5"],
        # --ablations
        "ar": ["pl.mode=ar"],
        "ctc_driven": ["pl.mode=ctc_driven"],
        "oracle_masked": ["pl.mode=oracle", *PAPER_MASKS],
        "oracle_wer20": ["pl.mode=oracle", "pl.oracle_wer=0.2"],
        "oracle_wer40": ["pl.mode=oracle", "pl.oracle_wer=0.4"],
    }


ARMS = ("labelled_only", "control", "ceiling", "oracle", "usr1", "mixed")
ABLATIONS = ("ar", "ctc_driven", "oracle_masked", "oracle_wer20", "oracle_wer40")


# ---------------------------------------------------------------- 1. corpus


def labelled_subset(corpus: Path, clips: int) -> Path:
    """A manifest of the first ``clips`` labelled clips, beside the full one and sharing its
    decoded-clip cache (a cache is looked up by clip id)."""
    full = corpus / "train_labelled.tsv"
    lines = full.read_text().splitlines(keepends=True)
    if clips >= len(lines) - 1:
        return full
    subset = corpus / f"train_labelled_first{clips}.tsv"
    if not subset.is_file():
        atomic_write(subset, "".join(lines[: clips + 1]))
    cache = subset.with_name(subset.name + ".cache")
    if not cache.exists():
        cache.symlink_to(full.name + ".cache")
    return subset


# ---------------------------------------------------------------- 2./3. seed and arms


class Clock(pl.Callback):
    """Validation WER per stream and the training seconds so far at every validation, appended
    to ``clock.jsonl`` (seconds summed over resumed sessions), for WER against training time."""

    def __init__(self, path: Path):
        self.path = path
        lines = path.read_text().splitlines() if path.is_file() else []
        self.offset = json.loads(lines[-1])["seconds"] if lines else 0.0
        self.start = time.time()

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        row = {"step": trainer.global_step, "seconds": self.offset + time.time() - self.start}
        metrics = trainer.callback_metrics
        row.update(
            {s: float(metrics[f"val/wer_{s}"]) for s in STREAMS if f"val/wer_{s}" in metrics}
        )
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def train_run(run_dir: Path, recipe: str, overrides: list[str]) -> None:
    """Train one run to its end unless it is done (a started one resumes)."""
    if (run_dir / "model.pt").is_file():
        return
    cfg = load_config(recipe, [*overrides, f"trainer.out_dir={run_dir}"])
    resume = "auto" if (run_dir / "run.json").is_file() else None
    print(f"[reproduce] training {run_dir.name} -> {run_dir}", flush=True)
    train(cfg, resume=resume, callbacks=(Clock(run_dir / "clock.jsonl"),))


# ---------------------------------------------------------------- 4. evaluation


def long_edges(corpus: Path) -> tuple[int, ...]:
    """Bucket edges (frames) between the corpus's length buckets of ``test_long``."""
    buckets = json.loads((corpus / "summary.json").read_text())["test_long_buckets"].values()
    ordered = sorted(buckets, key=lambda b: b["min_frames"])
    return tuple((a["max_frames"] + b["min_frames"]) // 2 for a, b in zip(ordered, ordered[1:]))


def evaluate_arm(run_dir: Path, corpus: Path, beam: int, device: str, noise_clips: int) -> dict:
    """Every test condition of one arm's final model; cached in ``<arm>/results.json``."""
    from unisr.checkpoint import load_model
    from unisr.decoding import DecodingOptions
    from unisr.evaluate import EvalOptions, evaluate
    from unisr.manifest import read_manifest

    path = run_dir / "results.json"
    if path.is_file():
        return json.loads(path.read_text())
    print(f"[reproduce] evaluating {run_dir.name}", flush=True)
    model = load_model(final_model(run_dir), device=device)
    decoders = {
        "beam": DecodingOptions(method="beam", beam_size=beam, ctc_weight=0.1),
        "ctc": DecodingOptions(method="ctc"),
        "greedy": DecodingOptions(method="greedy"),
    }
    results: dict = {"errors": {}, "noise_beam": {}}

    def run(split: str, decoder: str, streams=STREAMS, clips=None, **kw):
        options = EvalOptions(streams=streams, decoding=decoders[decoder], **kw)
        summary, utterances = evaluate(model, read_manifest(corpus / f"{split}.tsv")[:clips],
                                       options)  # fmt: skip
        return summary["results"], utterances

    for decoder in decoders:
        summary, utterances = run("test", decoder)
        results[f"test_{decoder}"] = {r["stream"]: r["wer"] for r in summary}
        results["errors"][decoder] = {  # per utterance, for paired bootstrap intervals
            stream: [[u.id, u.word_errors, u.words] for u in utts]
            for (stream, _), utts in utterances.items()
        }
    for decoder in ("ctc", "greedy"):
        summary, _ = run("test_ood", decoder)
        results[f"ood_{decoder}"] = {r["stream"]: r["wer"] for r in summary}
    edges = long_edges(corpus)
    summary, _ = run("test_long", "greedy", buckets=edges)
    results["long_greedy"] = {r["stream"]: r["buckets"] for r in summary}
    summary, _ = run("test_long", "beam", streams=("av",), buckets=edges)
    results["long_beam"] = {r["stream"]: r["buckets"] for r in summary}
    summary, _ = run("test", "beam", ("a", "av"), clips=noise_clips, snrs=SNRS,
                     noise=str(corpus / "noise" / "babble.wav"))  # fmt: skip
    for r in summary:
        results["noise_beam"].setdefault(r["stream"], {})[r["condition"]] = r["wer"]
    atomic_write(path, json.dumps(results, indent=1))
    return results


# ---------------------------------------------------------------- logs


def timings(logged: list[dict]) -> dict:
    """Median wall seconds per step and per pseudo-labelling call in a run's logged rows, the
    calls also by mode (a mixed run makes both kinds)."""
    rows = [r for r in logged if "time/step" in r]
    calls = [r for r in rows if r.get("time/pseudo_labels", 0) > 0]

    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    return {
        "step_s": median([r["time/step"] for r in rows]),
        "pl_s": median([r["time/pseudo_labels"] for r in calls]),
        "pl_ar_s": median([r["time/pseudo_labels"] for r in calls if r.get("pl/ar_mode") == 1]),
        "pl_ctc_s": median([r["time/pseudo_labels"] for r in calls if r.get("pl/ar_mode") == 0]),
    }


def pl_quality(logged: list[dict]) -> list[dict]:
    """The pseudo-label quality rows (``pl_quality/*``) of a run's logged rows."""
    keep = ("step", "pl_quality/ctc_wer", "pl_quality/ctc_wer_accepted",
            "pl_quality/ctc_wer_rejected", "pl_quality/ctc_accepted", "pl_quality/att_wer",
            "pl_quality/ar_wer")  # fmt: skip
    rows = [r for r in logged if "pl_quality/ctc_wer" in r]
    return [{k: r[k] for k in keep if k in r} for r in rows]


def curve(run_dir: Path, origin: float = 0.0, first_step: int = 0) -> list[dict]:
    """Validation WER (CTC greedy) per stream against the step and the training seconds, both
    counted on from the seed's end for an arm (``origin`` seconds, ``first_step``)."""
    path = run_dir / "clock.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return [{**r, "step": first_step + r["step"], "seconds": origin + r["seconds"]}
            for r in rows if any(s in r for s in STREAMS)]  # fmt: skip


# ---------------------------------------------------------------- main


def elapsed_minutes(out: Path, began: float, corpus_minutes: float) -> dict[str, float]:
    """Minutes spent on ``out`` by this invocation and the earlier ones (a resumed run's total),
    and of them the minutes spent building the corpus (0 when it was there already)."""
    path = out / "elapsed.json"
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    total = {"minutes": earlier.get("minutes", 0.0) + (time.time() - began) / 60,
             "corpus_minutes": earlier.get("corpus_minutes", 0.0) + corpus_minutes}  # fmt: skip
    path.write_text(json.dumps(total))
    return total


def main(argv: list[str] | None = None) -> Path | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed-recipe", default="synth_base_seed", help="the seed's recipe")
    p.add_argument("--recipe", default="synth_base", help="the arms' recipe")
    p.add_argument("--corpus", default="data/synth_base_grid", help="built there if absent")
    p.add_argument("--size", default="base", help="corpus size when it must be built")
    p.add_argument("--labelled", type=int, default=600, help="first labelled clips used")
    p.add_argument("--out", default="runs/reproduce", help="run folder (a rerun resumes it)")
    p.add_argument("--results", default=str(ROOT / "docs" / "RESULTS.md"))
    p.add_argument("--seed-steps", type=int, default=2400, help="labelled-only seed steps")
    p.add_argument("--steps", type=int, default=400, help="steps of every arm from the seed")
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--noise-clips", type=int, default=50, help="test clips decoded in noise")
    p.add_argument("--ablations", action="store_true", help=f"also {', '.join(ABLATIONS)}")
    p.add_argument("--arms", nargs="+", help="train and evaluate only these arms")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--smoke", action="store_true", help="a tiny model and a few steps (tests)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the recipe")
    args = p.parse_args(argv)
    began = time.time()
    corpus, out, results = Path(args.corpus), Path(args.out), Path(args.results)
    out.mkdir(parents=True, exist_ok=True)

    # 1. corpus
    fresh = not (corpus / "summary.json").is_file()
    ensure_corpus(corpus, workers=2, size=args.size)
    corpus_minutes = (time.time() - began) / 60 if fresh else 0.0
    labelled = labelled_subset(corpus, args.labelled)
    common = [
        *corpus_overrides(corpus),
        f"data.labelled={labelled}",
        "trainer.progress_bar=false",
        *(SMOKE if args.smoke else []),
        *args.overrides,
    ]
    if args.device == "cuda":
        common += ["trainer.accelerator=gpu", "trainer.devices=1", "data.workers=4"]

    # 2. seed
    seed_dir = out / "seed"
    seed = [*LABELLED_ONLY, f"optim.max_steps={args.seed_steps}",
            f"trainer.val_every={max(args.seed_steps // 6, 1)}"]  # fmt: skip
    train_run(seed_dir, args.seed_recipe, [*common, *seed])

    # 3. arms
    data = load_config(args.recipe, common).data
    frames = {"labelled_only": data.frames_per_batch,
              "control": data.frames_per_batch + data.frames_per_batch_unlabelled}  # fmt: skip
    recipes = arms(labelled, corpus / "train_unlabelled.tsv", frames["control"])
    names = args.arms or [*ARMS, *(ABLATIONS if args.ablations else ())]
    from_seed = [f"init.checkpoint={final_model(seed_dir)}", f"optim.max_steps={args.steps}",
                 f"trainer.val_every={max(args.steps // 4, 1)}"]  # fmt: skip
    for name in names:
        train_run(out / name, args.recipe, [*common, *from_seed, *recipes[name]])

    # 4. evaluation
    res = {name: evaluate_arm(out / name, corpus, args.beam, args.device, args.noise_clips)
           for name in names}  # fmt: skip
    if args.arms:  # a partial run: its arms are trained and evaluated, the report waits
        return None

    # 5. report
    seed_curve = curve(seed_dir)
    origin = max((p["seconds"] for p in seed_curve), default=0.0)
    summary = json.loads((corpus / "summary.json").read_text())
    logged = {name: read_metrics(out / name) for name in names}
    record = {
        "results": res,
        "times": {name: timings(logged[name]) for name in names},
        "quality": {name: pl_quality(logged[name]) for name in names},
        "curves": {
            "seed": seed_curve,
            **{n: curve(out / n, origin, args.seed_steps) for n in names},
        },  # fmt: skip
        "meta": {
            "command": " ".join(
                ["python benchmarks/reproduce.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "date": datetime.date.today().isoformat(),
            **elapsed_minutes(out, began, corpus_minutes),
            "seed_steps": args.seed_steps,
            "steps": args.steps,
            "recipe": args.recipe,
            "seed_recipe": args.seed_recipe,
            "labelled": min(args.labelled, summary["splits"]["train_labelled"]["utterances"]),
            "unlabelled": summary["splits"]["train_unlabelled"]["utterances"],
            "test_clips": summary["splits"]["test"]["utterances"],
            "beam": args.beam,
            "corpus": summary.get("size", args.size),
            "long_clips": min(b["utterances"] for b in summary["test_long_buckets"].values()),
            "longest_labelled": summary["longest_labelled_frames"],
            "frames": frames,
        },
    }
    (out / "results.json").write_text(json.dumps(record, indent=1))
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(reproduce_report.report(record, results))
    print(f"[reproduce] wrote {results}")
    return results


if __name__ == "__main__":
    main()
