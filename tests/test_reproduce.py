"""``make reproduce`` at its smoke size: a labelled-only seed, every arm as a new run from its
weights, every test condition decoded, and RESULTS.md holding every table and plot with the
run's own numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from conftest import load_benchmark

from unisr.checkpoint import read_checkpoint


def smoke_args(root: Path) -> list[str]:
    return ["--smoke", "--size", "test", "--corpus", str(root / "corpus"), "--out",
            str(root / "runs"), "--results", str(root / "docs" / "RESULTS.md"), "--labelled", "6",
            "--seed-steps", "3", "--steps", "2", "--beam", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    bench = load_benchmark("reproduce")
    root = tmp_path_factory.mktemp("reproduce")
    results = bench.main(smoke_args(root))
    data = json.loads((root / "runs" / "results.json").read_text())
    return bench, root, results.read_text(), data


def section(text: str, heading: str) -> list[list[str]]:
    """The first table under ``heading``: its rows (header and separator left out) as cells."""
    body = text.split(heading, 1)[1]
    block = []
    for line in body.splitlines():
        if line.startswith("|"):
            block.append(line)
        elif block:
            break
    assert block, heading
    return [[c.strip() for c in line.strip("|").split("|")] for line in block[2:]]


def config(root: Path, arm: str) -> dict:
    return yaml.safe_load((root / "runs" / arm / "config.yaml").read_text())


def test_every_arm_is_a_new_run_from_the_seeds_weights(smoke):
    bench, root, _, data = smoke
    runs = root / "runs"
    seed = read_checkpoint(runs / "seed" / "model.pt")
    assert seed["step"] == 3
    first = next(iter(seed["model"]))
    start = bench.final_model(runs / "seed")
    seed_weights = torch.load(start, weights_only=False)["model"][first]
    for arm in bench.ARMS:
        cfg = config(root, arm)
        assert Path(cfg["init"]["checkpoint"]) == start, arm
        assert cfg["optim"]["max_steps"] == 2 and cfg["optim"]["lr"] == 1e-3, arm
        assert cfg["teacher"]["start_step"] == 0, arm
        steps = [int(r["step"]) for r in bench.read_metrics(runs / arm) if "time/step" in r]
        assert steps and min(steps) == 0 and max(steps) == 1, arm  # its own steps, from 0
        final = torch.load(runs / arm / "model.pt", weights_only=False)["model"][first]
        assert not torch.equal(final, seed_weights), arm  # it trained
    # the seed saw only the first 6 labelled clips, every arm the same 6
    manifest = Path(config(root, "seed")["data"]["labelled"])
    assert manifest.name == "train_labelled_first6.tsv"
    assert len(manifest.read_text().splitlines()) == 7
    assert (manifest.parent / "train_labelled_first6.tsv.cache" / "index.json").is_file()
    for arm in ("labelled_only", "control", "oracle", "mixed"):
        assert config(root, arm)["data"]["labelled"] == str(manifest), arm


def test_the_control_sees_the_frames_of_an_arm_with_unlabelled_clips(smoke):
    bench, root, _, data = smoke
    mixed = config(root, "mixed")["data"]
    both = mixed["frames_per_batch"] + mixed["frames_per_batch_unlabelled"]
    assert config(root, "control")["data"]["frames_per_batch"] == both
    assert config(root, "ceiling")["data"]["frames_per_batch"] == both
    assert config(root, "labelled_only")["data"]["frames_per_batch"] == mixed["frames_per_batch"]
    assert data["meta"]["frames"] == {"labelled_only": mixed["frames_per_batch"], "control": both}
    labelled = config(root, "ceiling")["data"]["labelled"]
    assert [Path(p).name for p in labelled] == ["train_labelled_first6.tsv",
                                                "train_unlabelled.tsv"]  # fmt: skip
    for arm in ("labelled_only", "control", "ceiling"):  # no teacher labels anything
        assert config(root, arm)["data"]["unlabelled"] is None, arm
        assert data["times"][arm]["pl_s"] is None, arm
    assert all(data["times"][a]["pl_s"] > 0 for a in ("usr1", "mixed"))
    oracle = data["quality"]["oracle"]
    assert oracle and all(r["pl_quality/ctc_wer"] == 0.0 for r in oracle)
    assert data["quality"]["mixed"] and not data["quality"]["control"]


def test_results_tables_hold_the_runs_numbers(smoke):
    bench, root, text, data = smoke
    report = load_benchmark("reproduce_report")
    res, fmt = data["results"], report.fmt
    rows = section(text, "## In distribution")
    assert [r[0] for r in rows] == [report.LABELS[a] for a in bench.ARMS]
    for row, arm in zip(rows, bench.ARMS):
        for cell, key in zip(row[1:4], ("test_beam", "test_ctc", "test_greedy")):
            assert cell == " / ".join(fmt(res[arm][key][s]) for s in report.STREAMS)
    names = report.bucket_names(res)
    long = section(text, "## Long utterances")
    for row, arm in zip(long, bench.ARMS):
        by_length = [fmt(res[arm]["long_greedy"]["av"][n]["wer"]) for n in names]
        assert row[1:] == [fmt(res[arm]["test_greedy"]["av"]), *by_length]
    ood = section(text, "## Out of domain")
    for row, arm in zip(ood, bench.ARMS):
        assert row[1] == " / ".join(fmt(res[arm]["ood_greedy"][s]) for s in report.STREAMS)
    noise = section(text, "## Babble noise")
    assert len(noise) == 2 * len(bench.ARMS)
    for row in noise:
        arm = next(a for a in bench.ARMS if report.LABELS[a] == row[0])
        conditions = ("clean", *report.NOISY)
        assert row[2:] == [fmt(res[arm]["noise_beam"][row[1]][c]) for c in conditions]
    cost = section(text, "## Cost")
    for row, arm in zip(cost, bench.ARMS):
        assert row[1] == report.fmt3(data["times"][arm]["step_s"])


def test_learning_curves_run_from_the_seed_through_each_arm(smoke):
    bench, root, _, data = smoke
    curves = data["curves"]
    logged = {int(r["step"]) + 1: r for r in bench.read_metrics(root / "runs" / "usr1")
              if "val/wer_av" in r}  # fmt: skip
    for point in curves["usr1"]:  # the arm's own validations, placed after the seed's steps
        assert point["av"] == pytest.approx(logged[point["step"] - 3]["val/wer_av"])
    seed_end = max(p["seconds"] for p in curves["seed"])
    assert curves["seed"] and max(p["step"] for p in curves["seed"]) == 3
    for arm in bench.ARMS:
        assert curves[arm] and all(set(bench.STREAMS) <= set(p) for p in curves[arm]), arm
        assert min(p["step"] for p in curves[arm]) > 3
        assert min(p["seconds"] for p in curves[arm]) > seed_end


def test_results_state_each_claim_and_link_the_plots(smoke):
    _, root, text, data = smoke
    assert data["meta"]["corpus_minutes"] > 0  # the smoke run built its corpus, and says so
    assert re.search(r"total time \d+ min, \d+\.\d of them building the corpus", text)
    claims = re.findall(r"^(\d)\. \*\*(.+?)\*\*", text, flags=re.M)
    assert [n for n, _ in claims] == ["0", "0", "0", "0", "1", "2", "3"]  # 4 needs ablations
    assert all(re.search(r"(not )?(reproduced|measured)", c) for _, c in claims)
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) == 4
    for image in images:
        assert (root / "docs" / image).is_file() and (root / "docs" / image).stat().st_size > 1000


@pytest.mark.parametrize("base", ["control", "labelled_only"])
@pytest.mark.parametrize("decoder", ["beam", "ctc"])
def test_differences_from_both_labelled_only_arms_carry_their_intervals(smoke, base, decoder):
    bench, _, text, data = smoke
    report = load_benchmark("reproduce_report")
    res = data["results"]
    name = report.DECODERS[decoder]
    rows = section(text, f"## Against {report.LABELS[base]}: `test`, {name},")
    arms = [a for a in bench.ARMS if a not in report.CONTROLS]
    assert [r[0] for r in rows] == [report.LABELS[a] for a in arms]
    for row, arm in zip(rows, arms):
        for cell, stream in zip(row[1:], report.STREAMS):
            d, low, high = report.difference(res, arm, base, stream, decoder)
            assert low <= d <= high
            key = f"test_{decoder}"
            assert d == pytest.approx(res[arm][key][stream] - res[base][key][stream], abs=1e-6)
            value = report.fmt(res[arm][key][stream])
            assert cell == f"{value} ({d:+.1f} [{low:+.1f}, {high:+.1f}])"


def test_a_rerun_resumes_instead_of_training_again(smoke, monkeypatch):
    bench, root, _, _ = smoke
    monkeypatch.setattr(bench, "train", lambda *a, **k: pytest.fail("retrained a finished run"))
    before = (root / "runs" / "mixed" / "results.json").stat().st_mtime
    bench.main(smoke_args(root))
    assert (root / "runs" / "mixed" / "results.json").stat().st_mtime == before
