"""``make reproduce`` at its smoke size: every arm trains from the shared start, every test
condition is decoded, and RESULTS.md holds every table and plot with the run's own numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import load_benchmark

from unisr.checkpoint import read_checkpoint


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    bench = load_benchmark("reproduce")
    root = tmp_path_factory.mktemp("reproduce")
    args = ["--smoke", "--size", "test", "--corpus", str(root / "corpus"), "--out",
            str(root / "runs"), "--results", str(root / "docs" / "RESULTS.md"), "--start", "2",
            "--steps", "2", "--beam", "2"]  # fmt: skip
    results = bench.main(args)
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


def test_every_arm_continues_the_shared_start(smoke):
    bench, root, _, data = smoke
    runs = root / "runs"
    start = read_checkpoint(runs / "mixed" / "labelled_only.pt")["step"]
    assert start == 2
    for arm in bench.ARMS:
        final = read_checkpoint(runs / arm / "model.pt")
        assert final["step"] == 4, arm
    # the continuations resumed the mixed run's state at step 2 rather than starting again
    for arm in ("labelled_only", "ceiling", "oracle", "usr1"):
        steps = [int(r["step"]) for r in bench.read_metrics(runs / arm) if "time/step" in r]
        assert steps and min(steps) >= 2, arm
    for arm in ("labelled_only", "ceiling", "oracle"):  # no teacher labels anything
        assert data["times"][arm]["pl_s"] is None, arm
    assert all(data["times"][a]["pl_s"] > 0 for a in ("usr1", "mixed"))
    # the ceiling trains on both manifests; the oracle's labels are the transcripts
    labelled = yaml.safe_load((runs / "ceiling" / "config.yaml").read_text())["data"]["labelled"]
    assert [Path(p).name for p in labelled] == ["train_labelled.tsv", "train_unlabelled.tsv"]
    oracle = data["quality"]["oracle"]
    assert oracle and all(r["pl_quality/ctc_wer"] == 0.0 for r in oracle)
    assert data["quality"]["mixed"] and not data["quality"]["labelled_only"]


def test_results_tables_hold_the_runs_numbers(smoke):
    bench, root, text, data = smoke
    res, fmt = data["results"], bench.fmt
    rows = section(text, "## In distribution")
    assert [r[0] for r in rows] == [bench.LABELS[a] for a in bench.ARMS]
    for row, arm in zip(rows, bench.ARMS):
        assert row[1] == " / ".join(fmt(res[arm]["test_beam"][s]) for s in bench.STREAMS)
        assert row[2] == " / ".join(fmt(res[arm]["test_greedy"][s]) for s in bench.STREAMS)
    names = bench.bucket_names(res)
    long = section(text, "## Long utterances")
    for row, arm in zip(long, bench.ARMS):
        by_length = [fmt(res[arm]["long_greedy"]["av"][n]["wer"]) for n in names]
        assert row[1:] == [fmt(res[arm]["test_greedy"]["av"]), *by_length]
    ood = section(text, "## Out of domain")
    for row, arm in zip(ood, bench.ARMS):
        assert row[1:] == [fmt(res[arm]["ood_greedy"][s]) for s in bench.STREAMS]
    noise = section(text, "## Babble noise")
    assert len(noise) == 2 * len(bench.ARMS)
    for row in noise:
        arm = next(a for a in bench.ARMS if bench.LABELS[a] == row[0])
        conditions = ("clean", *bench.NOISY)
        assert row[2:] == [fmt(res[arm]["noise_beam"][row[1]][c]) for c in conditions]
    cost = section(text, "## Cost")
    for row, arm in zip(cost, bench.ARMS):
        assert row[1] == bench.fmt3(data["times"][arm]["step_s"])


def test_learning_curves_hold_every_validation_in_training_time(smoke):
    bench, root, _, data = smoke
    curves = data["curves"]
    logged = {
        int(r["step"]) + 1: r
        for r in bench.read_metrics(root / "runs" / "usr1")
        if "val/wer_av" in r
    }
    for point in curves["usr1"]:  # the validation the trainer logged at that step
        assert point["av"] == pytest.approx(logged[point["step"]]["val/wer_av"])
    start = max(p["seconds"] for p in curves["mixed"] if p["step"] <= 2)
    for arm in bench.ARMS:
        assert curves[arm] and all(set(bench.STREAMS) <= set(p) for p in curves[arm]), arm
        if arm != "mixed":  # continuations are timed from where the shared phase ended
            assert min(p["step"] for p in curves[arm]) > 2
            assert min(p["seconds"] for p in curves[arm]) > start


def test_results_state_each_claim_and_link_the_plots(smoke):
    _, root, text, _ = smoke
    claims = re.findall(r"^(\d)\. \*\*(.+?)\*\*", text, flags=re.M)
    assert [n for n, _ in claims] == ["0", "0", "1", "2", "3"]  # 4 needs the ablations
    assert all(re.search(r"(not |partly )?(reproduced|measured)", c) for _, c in claims)
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) == 4
    for image in images:
        assert (root / "docs" / image).is_file() and (root / "docs" / image).stat().st_size > 1000


def test_differences_from_labelled_only_carry_their_intervals(smoke):
    bench, _, text, data = smoke
    res = data["results"]
    rows = section(text, "## Unlabelled clips against labelled-only")
    assert [r[0] for r in rows] == [bench.LABELS[a] for a in bench.ARMS if a != "labelled_only"]
    for row, arm in zip(rows, [a for a in bench.ARMS if a != "labelled_only"]):
        for cell, stream in zip(row[1:], bench.STREAMS):
            d, low, high = bench.beam_difference(res, arm, stream)
            assert low <= d <= high
            expected = res[arm]["test_beam"][stream] - res["labelled_only"]["test_beam"][stream]
            assert d == pytest.approx(expected, abs=1e-6)
            value = bench.fmt(res[arm]["test_beam"][stream])
            assert cell == f"{value} ({d:+.1f} [{low:+.1f}, {high:+.1f}])"


def test_a_rerun_resumes_instead_of_training_again(smoke, monkeypatch):
    bench, root, _, _ = smoke
    monkeypatch.setattr(bench, "train", lambda *a, **k: pytest.fail("retrained a finished arm"))
    before = (root / "runs" / "mixed" / "results.json").stat().st_mtime
    args = ["--smoke", "--size", "test", "--corpus", str(root / "corpus"), "--out",
            str(root / "runs"), "--results", str(root / "docs" / "RESULTS.md"), "--start", "2",
            "--steps", "2", "--beam", "2"]  # fmt: skip
    bench.main(args)
    assert (root / "runs" / "mixed" / "results.json").stat().st_mtime == before
