"""Does self-supervised pre-training pay for itself? Semi-supervised training from a pre-trained
encoder against training from scratch with the same total CPU time, pre-training included.

1. ``pretrain``: ``unisr pretrain synth_pretrain`` on the tiny corpus's unlabelled clips (no
   labels), ``--pretrain-steps`` steps.
2. ``from_pretrained``: the ``synth_demo`` recipe (labelled-only steps, then USR 2.0) with
   ``init.checkpoint=<pretrain>/model.pt init.encoder_only=true``.
3. ``from_scratch``: the same recipe from random weights, given the pre-training's CPU time as
   extra labelled-only steps (``teacher.start_step`` and ``optim.max_steps`` moved by the same
   number), at the labelled-only step cost measured in run 2.

Each part runs as its own process; its CPU time (user + system, data workers included) is
measured. Both final models are decoded on ``test`` (unseen speakers): CTC greedy and beam
search. A killed run picks up at the next unfinished part (a half-done training part resumes
from its newest checkpoint). The table goes to BENCHMARKS.md.

    .venv/bin/python benchmarks/pretraining.py --out runs/pretraining
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
from pathlib import Path

from report import machine, write_section

from unisr.demo import corpus_overrides, ensure_corpus, evaluate_test, final_model, read_metrics
from unisr.train_config import load_config

STREAMS = ("a", "v", "av")
LAUNCH = "import sys; from unisr.cli import main; sys.exit(main(sys.argv[1:]))"


def cpu_seconds() -> float:
    """CPU time of this process's finished children (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_part(name: str, out: Path, command: list[str]) -> dict:
    """Run one part as ``unisr <command>`` unless it finished earlier; its record (CPU and wall
    seconds) is kept in ``<out>/<name>.json``."""
    record = out / f"{name}.json"
    if record.is_file():
        return json.loads(record.read_text())
    run_dir = out / name
    if (run_dir / "run.json").is_file():
        command = [*command, "--resume"]
    print(f"[{name}] unisr {' '.join(command)}", flush=True)
    start_cpu, start = cpu_seconds(), datetime.datetime.now()
    subprocess.run([sys.executable, "-c", LAUNCH, *command], check=True)
    done = {
        "cpu_s": round(cpu_seconds() - start_cpu, 1),
        "wall_s": round((datetime.datetime.now() - start).total_seconds(), 1),
        "command": "unisr " + " ".join(command),
    }
    if "--resume" in command:
        done["note"] = "resumed after an interruption: CPU time of the last part only"
    record.write_text(json.dumps(done, indent=1))
    return done


def labelled_step_share(run_dir: Path, start_step: int) -> float:
    """Share of a run's step time spent in its labelled-only steps (from the logged step times)."""
    rows = [r for r in read_metrics(run_dir) if "time/step" in r]
    labelled = [r["time/step"] for r in rows if r["step"] < start_step]
    semi = [r["time/step"] for r in rows if r["step"] >= start_step]
    if not labelled or not semi:
        return 1.0
    total_steps = max(int(r["step"]) for r in rows) + 1
    lab = sum(labelled) / len(labelled) * start_step
    return lab / (lab + sum(semi) / len(semi) * (total_steps - start_step))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="data/synth_tiny_grid")
    parser.add_argument("--out", default="runs/pretraining")
    parser.add_argument("--pretrain-steps", type=int, default=600)
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    corpus, out = Path(args.corpus), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ensure_corpus(corpus, workers=2)
    data = corpus_overrides(corpus)
    recipe = load_config("synth_demo", data)
    start, steps = recipe.teacher.start_step, recipe.optim.max_steps

    pre = run_part("pretrain", out, ["pretrain", "synth_pretrain", *data[1:],
                                     f"optim.max_steps={args.pretrain_steps}",
                                     f"trainer.out_dir={out / 'pretrain'}"])  # fmt: skip
    init = [f"init.checkpoint={out / 'pretrain' / 'model.pt'}", "init.encoder_only=true"]
    warm_dir = f"trainer.out_dir={out / 'from_pretrained'}"
    warm = run_part("from_pretrained", out, ["train", "synth_demo", *data, *init, warm_dir])
    share = labelled_step_share(out / "from_pretrained", start)
    labelled_step_cpu = warm["cpu_s"] * share / start
    extra = round(pre["cpu_s"] / labelled_step_cpu)
    cold = run_part("from_scratch", out, ["train", "synth_demo", *data,
                                          f"optim.max_steps={steps + extra}",
                                          f"teacher.start_step={start + extra}",
                                          f"trainer.out_dir={out / 'from_scratch'}"])  # fmt: skip

    rows = []
    for name, label, cpu in (
        ("from_pretrained", f"pre-trained encoder ({args.pretrain_steps} SSL steps) + "
                            f"{steps} steps", pre["cpu_s"] + warm["cpu_s"]),
        ("from_scratch", f"from scratch, {steps + extra} steps", cold["cpu_s"]),
    ):  # fmt: skip
        wer_file = out / f"{name}_wer.json"
        if not wer_file.is_file():
            wer = evaluate_test(final_model(out / name), corpus / "test.tsv", out / name / "eval",
                                args.beam, ("ctc", "beam"))  # fmt: skip
            wer_file.write_text(json.dumps(wer, indent=1))
        rows.append((label, cpu, json.loads(wer_file.read_text())))

    lines = [
        f"Command: `.venv/bin/python benchmarks/pretraining.py --pretrain-steps "
        f"{args.pretrain_steps}`  ",
        f"Machine: {machine()}; date {datetime.date.today().isoformat()}  ",
        f"Pre-training: {pre['cpu_s'] / 60:.1f} CPU-min ({args.pretrain_steps} steps); "
        f"the from-scratch run gets it as {extra} extra labelled-only steps "
        f"({labelled_step_cpu:.2f} CPU-s each, measured in the fine-tuning run). Test WER %, "
        "unseen speakers:",
        "",
        "| run | CPU-min | CTC greedy a / v / av | beam a / v / av |",
        "|---|---|---|---|",
    ]
    for label, cpu, wer in rows:
        ctc = " / ".join(f"{wer['CTC greedy'][s]:.1f}" for s in STREAMS)
        beam = " / ".join(f"{wer[f'beam {args.beam}'][s]:.1f}" for s in STREAMS)
        lines.append(f"| {label} | {cpu / 60:.1f} | {ctc} | {beam} |")
    beam = f"beam {args.beam}"
    warm_wer, cold_wer = rows[0][2][beam], rows[1][2][beam]
    wins = [s for s in STREAMS if warm_wer[s] < cold_wer[s]]
    lines += [
        "",
        f"With the same CPU time, the pre-trained encoder is better on {len(wins)} of 3 streams "
        f"(beam: {', '.join(wins) or 'none'}).",
    ]
    body = "\n".join(lines)
    print(body)
    (out / "table.md").write_text(body + "\n")
    if not args.no_write:
        write_section("## Pre-training at equal CPU time (`benchmarks/pretraining.py`)", body)


if __name__ == "__main__":
    main()
