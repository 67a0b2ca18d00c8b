"""The paper's claims side by side on the synthetic corpus: ``make reproduce`` -> docs/RESULTS.md.

One labelled-only phase is trained once (the ``synth_base`` recipe on the ``base`` corpus,
``--start`` steps); its full training state (``checkpoints/pl-start.ckpt``) is the shared start
of every arm, which then runs ``--steps`` more steps with the same seed and data order:

* ``labelled_only``: no pseudo-labels (the continuation baseline);
* ``ceiling``: the unlabelled clips as labelled data (their transcripts), the upper bound;
* ``oracle``: the transcripts in the teacher's place through the unlabelled path
  (``pl.mode=oracle``): what the path can make of perfect labels;
* ``usr1``: USR 1.0 (frame-wise CTC targets, AR attention targets, separate output layers);
* ``mixed``: USR 2.0, CTC-driven or AR pseudo-labels with p_ar = 0.5 (its run makes the start).

``--ablations`` (``make reproduce-ablations``) adds ``ar`` and ``ctc_driven`` (one PL mode only),
``oracle_masked`` (the paper's masks on the student's views) and ``oracle_wer20`` /
``oracle_wer40`` (the oracle's labels with 20 / 40 % word errors: how good a teacher must be).

Each final model (average of the last checkpoints) is decoded on ``test`` (a / v / av, beam and
attention greedy; every difference from labelled-only with its 95 % paired bootstrap interval
over utterances), ``test_long`` by length bucket (greedy and beam), ``test_ood`` (greedy, as the
paper's OOD table) and the first ``--noise-clips`` of ``test`` with babble noise at 10 / 5 / 0 /
-5 dB (a and av, beam). Step and pseudo-labelling times and pseudo-label quality come from the
training logs. Every part records its result in ``--out`` when done, so a killed run picks up
at the next unfinished part (a half-trained arm resumes from its newest checkpoint).

    make reproduce                                  (= .venv/bin/python benchmarks/reproduce.py)
    make reproduce-ablations                        (the same run folder, five more arms)
    python benchmarks/reproduce.py --device cuda    (GPU)
    python benchmarks/reproduce.py --smoke --out /tmp/r --results /tmp/r/RESULTS.md  (seconds)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
from report import machine

from unisr.demo import corpus_overrides, ensure_corpus, final_model, read_metrics
from unisr.train import train
from unisr.train_config import load_config

ROOT = Path(__file__).resolve().parent.parent
STREAMS = ("a", "v", "av")
ARMS = ("labelled_only", "ceiling", "oracle", "usr1", "mixed")
ABLATIONS = ("ar", "ctc_driven", "oracle_masked", "oracle_wer20", "oracle_wer40")
LABELS = {"labelled_only": "labelled-only", "ceiling": "all labelled (ceiling)",
          "oracle": "oracle labels", "usr1": "USR (usr1)", "mixed": "USR 2.0 (mixed)",
          "ar": "AR only", "ctc_driven": "CTC-driven only",
          "oracle_masked": "oracle labels, masked views", "oracle_wer20": "oracle, 20 % WER",
          "oracle_wer40": "oracle, 40 % WER"}  # fmt: skip
NEVER = "teacher.start_step=1000000000"  # labelled-only arms: the teacher never starts
PAPER_MASKS = ["data.augment.video_mask_window=0.4", "data.augment.audio_mask_window=0.6"]
SNRS = (None, 10.0, 5.0, 0.0, -5.0)
NOISY = ("snr10", "snr5", "snr0", "snr-5")  # condition names of the noisy SNRS
SMOKE = ["model.enc_layers=1", "model.d_model=64", "model.heads=2", "trainer.ckpt_every=1",
         "trainer.average_last=1", "trainer.log_every=1", "data.frames_per_batch=400",
         "data.frames_per_batch_unlabelled=400"]  # fmt: skip


# ---------------------------------------------------------------- training


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


def arm_overrides(arm: str, corpus: Path, frames: int) -> list[str]:
    """What one arm changes in the recipe (see the module docstring)."""
    if arm == "labelled_only":
        return [NEVER]
    if arm == "ceiling":  # both parts of a semi-supervised step's frames, all labelled
        both = f"[{corpus / 'train_labelled.tsv'},{corpus / 'train_unlabelled.tsv'}]"
        return [NEVER, f"data.labelled={both}", f"data.frames_per_batch={2 * frames}"]
    if arm.startswith("oracle"):
        rate = int(arm.split("_wer")[1]) / 100 if "_wer" in arm else 0.0
        return ["pl.mode=oracle", f"pl.oracle_wer={rate}",
                *(PAPER_MASKS if arm == "oracle_masked" else [])]  # fmt: skip
    return ["pl.mode=mixed", "pl.p_ar=0.5"] if arm == "mixed" else [f"pl.mode={arm}"]


def train_arm(arm: str, out: Path, base: list[str], args) -> None:
    """Train one arm to its end unless it is done; ``mixed`` from scratch (it makes the shared
    start), the others from the shared start."""
    run_dir = out / arm
    if (run_dir / "model.pt").is_file():
        return
    frames = load_config(args.recipe, base).data.frames_per_batch
    overrides = [*base, *arm_overrides(arm, Path(args.corpus), frames)]
    cfg = load_config(args.recipe, [*overrides, f"trainer.out_dir={run_dir}"])
    resume = None
    if (run_dir / "run.json").is_file():
        resume = "auto"
    elif arm != "mixed":
        resume = str(out / "mixed" / "checkpoints" / "pl-start.ckpt")
        if not Path(resume).is_file():
            raise SystemExit(f"[reproduce] {arm} needs the shared start {resume}: train mixed")
    print(f"[reproduce] training {arm} -> {run_dir}", flush=True)
    train(cfg, resume=resume, callbacks=(Clock(run_dir / "clock.jsonl"),))


def timings(run_dir: Path, start: int) -> dict:
    """Median wall seconds per step and per pseudo-labelling call after the shared start, the
    calls also by mode (a mixed run makes both kinds)."""
    rows = [r for r in read_metrics(run_dir) if "time/step" in r and r["step"] >= start]
    calls = [r for r in rows if r.get("time/pseudo_labels", 0) > 0]

    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    return {
        "step_s": median([r["time/step"] for r in rows]),
        "pl_s": median([r["time/pseudo_labels"] for r in calls]),
        "pl_ar_s": median([r["time/pseudo_labels"] for r in calls if r.get("pl/ar_mode") == 1]),
        "pl_ctc_s": median([r["time/pseudo_labels"] for r in calls if r.get("pl/ar_mode") == 0]),
    }


def pl_quality(run_dir: Path, start: int) -> list[dict]:
    """The logged pseudo-label quality rows (``pl_quality/*``) after the shared start."""
    keep = ("step", "pl_quality/ctc_wer", "pl_quality/ctc_wer_accepted",
            "pl_quality/ctc_wer_rejected", "pl_quality/ctc_accepted", "pl_quality/att_wer",
            "pl_quality/ar_wer")  # fmt: skip
    rows = [r for r in read_metrics(run_dir) if "pl_quality/ctc_wer" in r and r["step"] >= start]
    return [{k: r[k] for k in keep if k in r} for r in rows]


def curve(run_dir: Path, origin: float = 0.0) -> list[dict]:
    """Validation WER (CTC greedy) per stream against the step and the training seconds, those
    counted from ``origin`` (for a continuation: the shared run's seconds at the start)."""
    path = run_dir / "clock.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return [{**r, "seconds": origin + r["seconds"]} for r in rows if any(s in r for s in STREAMS)]


def seconds_at(points: list[dict], step: int) -> float:
    """Training seconds of the last validation at or before ``step``."""
    return max((p["seconds"] for p in points if p["step"] <= step), default=0.0)


# ---------------------------------------------------------------- evaluation


def long_edges(corpus: Path) -> tuple[int, ...]:
    """Bucket edges (frames) between the corpus's length buckets of ``test_long``."""
    buckets = json.loads((corpus / "summary.json").read_text())["test_long_buckets"].values()
    ordered = sorted(buckets, key=lambda b: b["min_frames"])
    return tuple((a["max_frames"] + b["min_frames"]) // 2 for a, b in zip(ordered, ordered[1:]))


def evaluate_arm(
    arm: str, out: Path, corpus: Path, beam: int, device: str, noise_clips: int
) -> dict:
    """Every test condition of one arm's final model; cached in ``<arm>/results.json``."""
    from unisr.checkpoint import load_model
    from unisr.decoding import DecodingOptions
    from unisr.evaluate import EvalOptions, evaluate
    from unisr.manifest import read_manifest

    path = out / arm / "results.json"
    if path.is_file():
        return json.loads(path.read_text())
    print(f"[reproduce] evaluating {arm}", flush=True)
    model = load_model(final_model(out / arm), device=device)
    greedy = DecodingOptions(method="greedy")
    beam_opts = DecodingOptions(method="beam", beam_size=beam, ctc_weight=0.1)

    utterances = {}

    def run(split: str, decoding, streams=STREAMS, clips=None, **kw) -> list[dict]:
        rows = read_manifest(corpus / f"{split}.tsv")[:clips]
        options = EvalOptions(streams=streams, decoding=decoding, **kw)
        summary, utterances[split, decoding.method] = evaluate(model, rows, options)
        return summary["results"]

    def wer(results: list[dict]) -> dict:
        return {r["stream"]: r["wer"] for r in results}

    edges = long_edges(corpus)
    results = {
        "test_beam": wer(run("test", beam_opts)),
        "test_greedy": wer(run("test", greedy)),
        "ood_greedy": wer(run("test_ood", greedy)),
        "long_greedy": {r["stream"]: r["buckets"] for r in run("test_long", greedy, buckets=edges)},
        "long_beam": {  # the report's beam table by length is audio-visual
            r["stream"]: r["buckets"]
            for r in run("test_long", beam_opts, streams=("av",), buckets=edges)
        },
        "noise_beam": {},
    }
    results["test_beam_errors"] = {  # per utterance, for bootstrap intervals
        stream: [[u.id, u.word_errors, u.words] for u in utts]
        for (stream, _), utts in utterances["test", "beam"].items()
    }
    noise = run("test", beam_opts, ("a", "av"), clips=noise_clips, snrs=SNRS,
                noise=str(corpus / "noise" / "babble.wav"))  # fmt: skip
    for r in noise:
        results["noise_beam"].setdefault(r["stream"], {})[r["condition"]] = r["wer"]
    path.write_text(json.dumps(results, indent=1))
    return results


# ---------------------------------------------------------------- report


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def bucket_names(results: dict) -> list[str]:
    names = next(iter(results.values()))["long_greedy"]["av"].keys()
    return sorted(names, key=lambda n: int(n.split("-")[0].rstrip("+")))


def beam_difference(res: dict, arm: str, stream: str) -> tuple[float, float, float]:
    """WER(arm) - WER(labelled-only) on test (beam) with its 95 % paired bootstrap interval."""
    from unisr.evaluate import Utterance, bootstrap_difference

    def utterances(name: str) -> list[Utterance]:
        rows = res[name]["test_beam_errors"][stream]
        return [Utterance(uid, 0, "", "", errors, words, 0, 0) for uid, errors, words in rows]

    return bootstrap_difference(utterances("labelled_only"), utterances(arm))


def with_interval(res: dict, arm: str, stream: str) -> str:
    d, low, high = beam_difference(res, arm, stream)
    return f"{d:+.1f} [{low:+.1f}, {high:+.1f}]"


def beats_labelled_only(res: dict, arm: str) -> bool:
    """Better on every stream, each interval of the difference below zero."""
    return all(beam_difference(res, arm, s)[2] < 0 for s in STREAMS)


def share_of_ceiling(res: dict, arm: str, stream: str) -> float:
    """How far ``arm`` got from labelled-only towards the ceiling (1 = all the way)."""
    base = res["labelled_only"]["test_beam"][stream]
    gap = base - res["ceiling"]["test_beam"][stream]
    return (base - res[arm]["test_beam"][stream]) / gap if gap > 0 else float("nan")


def claims(res: dict, times: dict) -> list[str]:
    """The claims that decide this project and the paper's (1)-(4), each with its figures and
    its verdict."""
    mixed, usr1 = res["mixed"], res["usr1"]

    def streams(arm: str, key: str = "test_beam") -> str:
        return " / ".join(fmt(res[arm][key][s]) for s in STREAMS)

    def intervals(arm: str) -> str:
        return "; ".join(f"{s} {with_interval(res, arm, s)}" for s in STREAMS)

    out = []
    # (0) the unlabelled path pays off, and USR 2.0's labels make it pay
    shares = [share_of_ceiling(res, "oracle", s) for s in STREAMS]
    ok = beats_labelled_only(res, "oracle") and min(shares) >= 0.5
    out.append(
        f"0. **Perfect labels pay off through the unlabelled path (the oracle beats labelled-only "
        f"on every stream and gets at least half way to the all-labelled ceiling): "
        f"{'reproduced' if ok else 'not reproduced'}.** Test WER, beam: oracle "
        f"{streams('oracle')}, labelled-only {streams('labelled_only')}, ceiling "
        f"{streams('ceiling')}; oracle minus labelled-only with 95 % intervals: "
        f"{intervals('oracle')}; share of the way to the ceiling "
        + " / ".join(f"{x:.2f}" for x in shares)
        + "."
    )
    ok = beats_labelled_only(res, "mixed")
    out.append(
        f"0. **Unlabelled clips help: USR 2.0 beats the labelled-only continuation on every "
        f"stream, outside the noise: {'reproduced' if ok else 'not reproduced'}.** USR 2.0 "
        f"{streams('mixed')} against {streams('labelled_only')}; differences with 95 % "
        f"intervals: {intervals('mixed')}. USR 1.0: {streams('usr1')} ({intervals('usr1')})."
    )
    # (1) cheaper pseudo-labelling, faster training
    ar_pl, ctc_pl = times["mixed"]["pl_ar_s"], times["mixed"]["pl_ctc_s"]
    u_step, m_step = times["usr1"]["step_s"], times["mixed"]["step_s"]
    if None in (ar_pl, ctc_pl, u_step, m_step):
        out.append(
            "1. **Cheaper pseudo-labelling, faster training: not measured.** The mixed run drew "
            "no step of one of the two modes."
        )
    else:
        verdict = "reproduced" if ctc_pl < ar_pl and m_step < u_step else "not reproduced"
        out.append(
            f"1. **Cheaper pseudo-labelling, faster training: {verdict}.** In the mixed run, a "
            f"CTC-driven pseudo-labelling call takes {ctc_pl * 1000:.0f} ms against "
            f"{ar_pl * 1000:.0f} ms for AR decoding ({ar_pl / ctc_pl:.1f}x; the paper: about "
            f"40x on an H200); a mixed-sampling step takes {m_step:.2f} s against {u_step:.2f} s "
            f"for USR's ({u_step / m_step:.2f}x; the paper: about 2x end to end, partly from "
            "needing 50 instead of 75 epochs, which equal-step arms cannot show). Arms trained "
            "side by side share the cores, so step times are comparable only within one job."
        )
    # (2) in distribution
    better = [s for s in STREAMS if mixed["test_beam"][s] <= usr1["test_beam"][s] + 1.0]
    verdict = "reproduced" if len(better) == 3 else "not reproduced"
    out.append(
        f"2. **Matches or beats USR in distribution (within 1 point or better on every stream): "
        f"{verdict}.** Test WER, beam: USR 2.0 "
        + " / ".join(fmt(mixed["test_beam"][s]) for s in STREAMS)
        + " against USR "
        + " / ".join(fmt(usr1["test_beam"][s]) for s in STREAMS)
        + " (a / v / av; the paper, Base low-resource: 3.0 / 36.2 / 2.9 against 3.2 / 36.0 / 3.0)."
        + " Without pseudo-labels (labelled-only continuation): "
        + " / ".join(fmt(res["labelled_only"]["test_beam"][s]) for s in STREAMS)
        + "."
    )
    # (3) long utterances, OOD, noise
    names = bucket_names(res)
    last, first = names[-1], names[0]

    def growth(r: dict) -> float:
        return r["long_greedy"]["av"][last]["wer"] - r["test_greedy"]["av"]

    noisy = {
        k: statistics.mean(res[k]["noise_beam"]["a"][c] for c in NOISY) for k in ("mixed", "usr1")
    }
    long_ok = growth(mixed) < growth(usr1)
    ood_ok = sum(mixed["ood_greedy"][s] < usr1["ood_greedy"][s] for s in STREAMS) >= 2
    noise_ok = noisy["mixed"] < noisy["usr1"]
    parts = [("long utterances", long_ok), ("out of domain", ood_ok), ("noise", noise_ok)]
    held = [name for name, ok in parts if ok]
    out.append(
        f"3. **More robust on long utterances, out of domain and in noise: reproduced for "
        f"{', '.join(held) if held else 'none of the three'}.** Greedy AV WER from test "
        f"clips to the longest bucket ({last} frames): USR 2.0 "
        f"{fmt(mixed['test_greedy']['av'])} -> {fmt(mixed['long_greedy']['av'][last]['wer'])}, "
        f"USR {fmt(usr1['test_greedy']['av'])} -> {fmt(usr1['long_greedy']['av'][last]['wer'])} "
        f"(the paper: USR 2.0 stays near 23-34 %, "
        f"USR climbs to about 110 % at 600 frames). OOD greedy a / v / av: USR 2.0 "
        + " / ".join(fmt(mixed["ood_greedy"][s]) for s in STREAMS)
        + ", USR "
        + " / ".join(fmt(usr1["ood_greedy"][s]) for s in STREAMS)
        + f". Babble, audio, mean over 10 to -5 dB: USR 2.0 {noisy['mixed']:.1f}, USR "
        f"{noisy['usr1']:.1f} (the paper: 39.3 vs 43.3). The first length bucket is {first}."
    )
    # (4) ablation, with --ablations
    if "ar" not in res or "ctc_driven" not in res:
        return out
    ar, ctc = res["ar"], res["ctc_driven"]
    ood_ctc = statistics.mean(ctc["ood_greedy"].values())
    ood_ar = statistics.mean(ar["ood_greedy"].values())
    id_ctc = statistics.mean(ctc["test_beam"].values())
    id_ar = statistics.mean(ar["test_beam"].values())
    id_mixed = statistics.mean(mixed["test_beam"].values())
    ood_mixed = statistics.mean(mixed["ood_greedy"].values())
    mixed_best = id_mixed <= min(id_ctc, id_ar) + 1 and ood_mixed <= min(ood_ctc, ood_ar) + 1
    checks = [ood_ctc <= ood_ar, id_ar <= id_ctc, mixed_best]
    verdict = {3: "reproduced", 0: "not reproduced"}.get(sum(checks), "partly reproduced")
    out.append(
        f"4. **Ablation, CTC-only robust out of domain, AR-only better in domain, mixed best of "
        f"both: {verdict}.** Mean over a / v / av, in domain (test, beam) / out of domain "
        f"(test_ood, greedy): CTC-driven only {id_ctc:.1f} / {ood_ctc:.1f}, AR only "
        f"{id_ar:.1f} / {ood_ar:.1f}, mixed {id_mixed:.1f} / {ood_mixed:.1f} (the paper, AV: "
        "3.2 / 24.2, 2.9 / 40.1, 2.9 / 25.0). Checks: CTC-driven OOD <= AR OOD "
        f"{'yes' if checks[0] else 'no'}; AR ID <= CTC-driven ID {'yes' if checks[1] else 'no'}; "
        f"mixed within 1 point of the better one on both {'yes' if checks[2] else 'no'}."
    )
    return out


def finish(fig, axes, ylabel: str, path: Path) -> Path:
    """Label and save a row of panels that share their y axis."""
    import matplotlib.pyplot as plt

    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plots(res: dict, curves: dict, quality: dict, images: Path, prefix: str) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images.mkdir(parents=True, exist_ok=True)
    paths = {}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for ax, stream in zip(axes, STREAMS):
        for arm in res:
            points = [(p["seconds"] / 60, p[stream]) for p in curves[arm] if stream in p]
            if points:
                ax.plot(*zip(*points), marker="o", ms=3, label=LABELS[arm])
        ax.set(title=f"stream {stream}", xlabel="training minutes")
    paths["time"] = finish(
        fig, axes, "val WER % (CTC greedy)", images / f"{prefix}_wer_vs_time.png"
    )

    names = bucket_names(res)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for ax, stream in zip(axes, STREAMS):
        for arm in res:
            long = res[arm]["long_greedy"][stream]
            xs = [0, *range(1, len(names) + 1)]
            ys = [res[arm]["test_greedy"][stream], *(long[n]["wer"] for n in names)]
            ax.plot(xs, ys, marker="o", ms=3, label=LABELS[arm])
        ax.set_xticks(range(len(names) + 1), ["test", *names], rotation=30, fontsize=7)
        ax.set(title=f"stream {stream}, greedy", xlabel="frames")
    paths["length"] = finish(fig, axes, "WER %", images / f"{prefix}_wer_vs_length.png")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    conditions = ["clean", *NOISY]
    for ax, stream in zip(axes, ("a", "av")):
        for arm in res:
            noise = res[arm]["noise_beam"][stream]
            ax.plot(range(len(conditions)), [noise[c] for c in conditions], marker="o", ms=3,
                    label=LABELS[arm])  # fmt: skip
        ax.set_xticks(range(len(conditions)), ["clean", "10 dB", "5 dB", "0 dB", "-5 dB"])
        ax.set(title=f"stream {stream}, babble noise, beam", xlabel="SNR")
    paths["snr"] = finish(fig, axes, "WER %", images / f"{prefix}_wer_vs_snr.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for arm, style in (("mixed", "-"), ("usr1", "--")):
        rows = quality.get(arm, [])
        for key, color in (
            ("ctc_wer", "C0"),
            ("ctc_wer_accepted", "C1"),
            ("ctc_wer_rejected", "C3"),
            ("att_wer", "C2"),
            ("ar_wer", "C4"),
        ):
            points = [(r["step"], r[f"pl_quality/{key}"]) for r in rows if f"pl_quality/{key}" in r]
            if points:
                axes[0].plot(*zip(*points), style, color=color, label=f"{LABELS[arm]}: {key}")
        points = [(r["step"], r["pl_quality/ctc_accepted"]) for r in rows
                  if "pl_quality/ctc_accepted" in r]  # fmt: skip
        if points:
            axes[1].plot(*zip(*points), style, label=LABELS[arm])
    axes[0].set(title="pseudo-label WER against the transcripts", xlabel="step", ylabel="WER %")
    axes[1].set(title="CTC pseudo-labels accepted", xlabel="step", ylabel="share", ylim=(0, 1))
    axes[1].legend(fontsize=7)
    paths["quality"] = finish(fig, axes[:1], "WER %", images / f"{prefix}_pl_quality.png")

    rated = [(0, "oracle"), (20, "oracle_wer20"), (40, "oracle_wer40")]
    if all(arm in res for _, arm in rated):
        fig, axes = plt.subplots(1, 1, figsize=(5.5, 3.6))
        for stream in STREAMS:
            line = axes.plot([r for r, _ in rated], [res[a]["test_beam"][stream] for _, a in rated],
                             marker="o", label=f"{stream}: oracle")[0]  # fmt: skip
            axes.axhline(res["labelled_only"]["test_beam"][stream], ls="--", lw=0.8,
                         color=line.get_color())  # fmt: skip
        axes.set(title="student against label WER (dashed: labelled-only)",
                 xlabel="word errors in the labels (%)")  # fmt: skip
        paths["label_wer"] = finish(fig, [axes], "test WER %, beam",
                                    images / f"{prefix}_wer_vs_label_wer.png")  # fmt: skip
    return paths


def quality_rows(quality: dict) -> list[list[str]]:
    """Pseudo-label quality per arm: the first and last logged window after the start."""
    keys = ("ctc_wer", "ctc_wer_accepted", "ctc_wer_rejected", "ctc_accepted", "att_wer",
            "ar_wer")  # fmt: skip
    rows = []
    for arm, logged in quality.items():
        for name, row in (("first", logged[:1]), ("last", logged[-1:])):
            if row:
                values = [row[0].get(f"pl_quality/{k}") for k in keys]
                rows.append([LABELS[arm], f"{name} ({int(row[0]['step'])})",
                             *(f"{v:.2f}" if k == "ctc_accepted" and v is not None else fmt(v)
                               for k, v in zip(keys, values))])  # fmt: skip
    return rows


def report(res: dict, times: dict, quality: dict, images: dict, meta: dict, results: Path) -> str:
    rel = {k: Path(os.path.relpath(v, results.parent)).as_posix() for k, v in images.items()}
    beam = meta["beam"]
    lines = [
        "# Results: the paper's claims on the synthetic corpus",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {machine()}  ",
        f"Date: {meta['date']}; total time {meta['minutes']:.0f} min",
        "",
        f"Every arm starts from one shared state: the `{meta['recipe']}` recipe trained "
        f"{meta['start']} steps on the {meta['corpus']} corpus's labelled clips "
        f"({meta['labelled']} labelled, {meta['unlabelled']} unlabelled clips). Each then runs "
        f"{meta['steps']} more steps with the same seed and data order, with the unlabelled clips "
        "pseudo-labelled by its mode, labelled by their transcripts (ceiling, oracle) or not "
        "used (labelled-only). Models are the average of each arm's last checkpoints. Test "
        f"speakers are unseen ({meta['test_clips']} test clips); a difference counts only when "
        "its 95 % paired bootstrap interval over utterances excludes zero. The paper's numbers "
        "(Base, LRS3 low-resource, from `shared/docs/paper.md` §8) are on real data with "
        "pre-trained encoders: compare directions, not sizes.",
        "",
        "What differs from the paper's setting, whatever the numbers: the encoder is trained from "
        "scratch (the paper starts from self-supervised encoders), on a thousand labelled clips "
        "of synthetic speech, by a model of a few million parameters with a one-layer decoder, "
        "for minutes on a CPU, without masking the student's views.",
        "",
        "## The claims",
        "",
        *claims(res, times),
        "",
        "## Unlabelled clips against labelled-only: `test`, beam, WER % and the difference",
        "",
        table(
            ["arm", *(f"{s} (difference, 95 % interval)" for s in STREAMS)],
            [
                [
                    LABELS[a],
                    *(
                        f"{fmt(res[a]['test_beam'][s])} ({with_interval(res, a, s)})"
                        for s in STREAMS
                    ),
                ]
                for a in res
                if a != "labelled_only"
            ],
        ),  # fmt: skip
        "",
        "## Pseudo-label quality against the unlabelled clips' transcripts",
        "",
        "Logged during training over windows of the last logged steps (`pl_quality/*`); "
        "accepted / rejected: the sequences the confidence filter kept / dropped.",
        "",
        table(
            [
                "arm",
                "window (step)",
                "CTC WER",
                "accepted",
                "rejected",
                "accepted share",
                "CTC-driven attention WER",
                "AR WER",
            ],
            quality_rows(quality),
        ),  # fmt: skip
        "",
        f"![pseudo-label quality]({rel['quality']})",
        "",
        *(
            [f"![student WER against label WER]({rel['label_wer']})", ""]
            if "label_wer" in rel
            else []
        ),  # fmt: skip
        "## In distribution: `test`, WER % (a / v / av)",
        "",
        table(
            ["arm", f"beam {beam}", "attention greedy", "paper (beam 30)"],
            [
                [
                    LABELS[a],
                    " / ".join(fmt(res[a]["test_beam"][s]) for s in STREAMS),
                    " / ".join(fmt(res[a]["test_greedy"][s]) for s in STREAMS),
                    {"usr1": "3.2 / 36.0 / 3.0", "mixed": "3.0 / 36.2 / 2.9"}.get(a, "-"),
                ]
                for a in res
            ],
        ),  # fmt: skip
        "",
        "## Cost: median wall seconds after the shared start",
        "",
        table(
            ["arm", "step (s)", "pseudo-labelling call (s)", "share of the step"],
            [
                [
                    LABELS[a],
                    fmt3(times[a]["step_s"]),
                    fmt3(times[a]["pl_s"]),
                    f"{100 * times[a]['pl_s'] / times[a]['step_s']:.0f} %"
                    if times[a]["pl_s"]
                    else "-",
                ]
                for a in res
            ],
        ),  # fmt: skip
        "",
        "The paper: CTC decoding about 40x faster than AR decoding on an H200; training about 2x "
        "faster end to end (faster steps, and 50 instead of 75 epochs).",
        "",
        "## Long utterances: `test_long` by length, attention greedy, WER % (av)",
        "",
        length_table(res, "greedy"),
        "",
        "Beam search, av:",
        "",
        length_table(res, "beam"),
        "",
        f"Buckets of {meta['long_clips']} clips each, several sentences long; the longest labelled "
        f"clip has {meta['longest_labelled']} frames. The paper (greedy, read from its Fig. 3): "
        "USR 35.5 at 100 frames, 100 at 500, 110 at 600; USR 2.0 34.5, 26.5, 29.",
        "",
        f"![WER against utterance length]({rel['length']})",
        "",
        "## Out of domain: `test_ood` (unseen accents, faces, conditions, text), greedy, WER %",
        "",
        table(
            ["arm", "a", "v", "av"],
            [[LABELS[a], *(fmt(res[a]["ood_greedy"][s]) for s in STREAMS)] for a in res],
        ),  # fmt: skip
        "",
        "The paper (greedy): USR 25.3 (LibriSpeech, a) / 80.0 (WildVSR, v) / 34.7 (AVSpeech, av); "
        "USR 2.0 15.4 / 73.7 / 25.0. Its ablation (AV, OOD): CTC-driven only 24.2, AR only 40.1, "
        "mixed 25.0.",
        "",
        f"## Babble noise: `test`, beam {beam}, WER %",
        "",
        table(
            ["arm", "stream", "clean", "10 dB", "5 dB", "0 dB", "-5 dB"],
            [
                [
                    LABELS[a],
                    s,
                    *(
                        fmt(res[a]["noise_beam"][s][c])
                        for c in ("clean", "snr10", "snr5", "snr0", "snr-5")
                    ),
                ]
                for a in res
                for s in ("a", "av")
            ],
        ),  # fmt: skip
        "",
        "The paper (beam 30, 10 to -5 dB): a: USR 5.8 / 14.3 / 48.5 / 104.4, USR 2.0 5.2 / 13.4 / "
        "44.0 / 94.4; av: USR 4.0 / 6.4 / 14.8 / 36.5, USR 2.0 3.7 / 5.6 / 14.0 / 33.1.",
        "",
        f"![WER against SNR]({rel['snr']})",
        "",
        "## Learning curves",
        "",
        f"![validation WER against training time]({rel['time']})",
        "",
    ]
    return "\n".join(lines)


def length_table(res: dict, decoding: str) -> str:
    """AV WER on ``test`` and on each ``test_long`` bucket, one row per arm."""
    names = bucket_names(res)
    rows = [
        [LABELS[a], fmt(res[a][f"test_{decoding}"]["av"]),
         *(fmt(res[a][f"long_{decoding}"]["av"][n]["wer"]) for n in names)]
        for a in res
    ]  # fmt: skip
    return table(["arm", "test", *names], rows)


def fmt3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


# ---------------------------------------------------------------- main


def elapsed_minutes(out: Path, began: float) -> float:
    """Minutes spent on ``out`` by this invocation and the earlier ones (a resumed run's total)."""
    path = out / "elapsed.json"
    earlier = json.loads(path.read_text())["minutes"] if path.is_file() else 0.0
    total = earlier + (time.time() - began) / 60
    path.write_text(json.dumps({"minutes": total}))
    return total


def main(argv: list[str] | None = None) -> Path | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default="synth_base", help="the recipe every arm runs")
    p.add_argument("--corpus", default="data/synth_base_grid", help="built there if absent")
    p.add_argument("--size", default="base", help="corpus size when it must be built")
    p.add_argument("--out", default="runs/reproduce", help="run folder (a rerun resumes it)")
    p.add_argument("--results", default=str(ROOT / "docs" / "RESULTS.md"))
    p.add_argument("--start", type=int, default=1200, help="shared labelled-only steps")
    p.add_argument("--steps", type=int, default=300, help="steps of every arm after the start")
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--noise-clips", type=int, default=50, help="test clips decoded in noise")
    p.add_argument("--ablations", action="store_true", help=f"also {', '.join(ABLATIONS)}")
    p.add_argument("--arms", nargs="+", help="train and evaluate only these arms (parallel jobs)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--smoke", action="store_true", help="a tiny model and a few steps (tests)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the recipe")
    args = p.parse_args(argv)
    began = time.time()
    corpus, out, results = Path(args.corpus), Path(args.out), Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    ensure_corpus(corpus, workers=2, size=args.size)
    total = args.start + args.steps
    base = [
        *corpus_overrides(corpus),
        f"optim.max_steps={total}",
        f"teacher.start_step={args.start}",
        f"trainer.val_every={max(args.steps // 4, 1)}",
        "trainer.progress_bar=false",
        *(SMOKE if args.smoke else []),
        *args.overrides,
    ]
    if args.device == "cuda":
        base += ["trainer.accelerator=gpu", "trainer.devices=1", "data.workers=4"]
    arms = [*ARMS, *(ABLATIONS if args.ablations else ())]
    for arm in ("mixed", *[a for a in arms if a != "mixed"]):
        if not args.arms or arm in args.arms:
            train_arm(arm, out, base, args)
    if args.arms:  # one of several parallel jobs: its arms are trained and evaluated
        for arm in args.arms:
            evaluate_arm(arm, out, corpus, args.beam, args.device, args.noise_clips)
        return None
    res = {arm: evaluate_arm(arm, out, corpus, args.beam, args.device, args.noise_clips)
           for arm in arms}  # fmt: skip
    times = {arm: timings(out / arm, args.start) for arm in arms}
    quality = {arm: pl_quality(out / arm, args.start) for arm in arms}
    shared = curve(out / "mixed")
    origin = seconds_at(shared, args.start)
    curves = {arm: shared if arm == "mixed" else curve(out / arm, origin) for arm in arms}
    images = plots(res, curves, quality, results.parent / "images", "results")
    summary = json.loads((corpus / "summary.json").read_text())
    meta = {
        "command": " ".join(
            ["python benchmarks/reproduce.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "date": datetime.date.today().isoformat(),
        "minutes": elapsed_minutes(out, began),
        "start": args.start,
        "steps": args.steps,
        "recipe": args.recipe,
        "labelled": summary["splits"]["train_labelled"]["utterances"],
        "unlabelled": summary["splits"]["train_unlabelled"]["utterances"],
        "test_clips": summary["splits"]["test"]["utterances"],
        "beam": args.beam,
        "corpus": summary.get("size", args.size),
        "long_clips": min(b["utterances"] for b in summary["test_long_buckets"].values()),
        "longest_labelled": summary["longest_labelled_frames"],
    }
    record = {"results": res, "times": times, "curves": curves, "quality": quality, "meta": meta}
    (out / "results.json").write_text(json.dumps(record, indent=1))
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(report(res, times, quality, images, meta, results))
    print(f"[reproduce] wrote {results}")
    return results


if __name__ == "__main__":
    main()
