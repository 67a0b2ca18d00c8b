"""``unisr eval`` on a checkpoint converted from the official fixture."""

import json

import numpy as np
import pytest
from test_data_loading import make_clip

from unisr.checkpoint import convert, load_model
from unisr.cli import main
from unisr.dataset import load_clip
from unisr.decoding import DecodingOptions
from unisr.demo import evaluate_test, format_wer_table
from unisr.evaluate import bucket_label, rates, score
from unisr.manifest import write_manifest
from unisr.media import write_audio
from unisr.tokenizer import normalize_text


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, official_dir):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    convert(official_dir / "tiny_model.pth", path, units=official_dir / "unigram1000_units.txt")
    return path


def single_decode(model, row, streams, options):
    """``model.decode`` on one utterance's checked clip (uint8 frames, float audio)."""
    clip = load_clip(row)
    hyps = {}
    for stream in streams:
        nbest = model.decode(clip.frames, clip.audio_float(), modality=stream, options=options)
        hyps[stream] = normalize_text(nbest[0].text)
    return hyps


def run_eval(tmp_path, checkpoint, *args):
    clips = tmp_path / "clips"
    rows = [make_clip(clips, f"u{i}", frames=n, text=f"HELLO WORLD {i}", seed=i)
            for i, n in enumerate([12, 9, 7])]  # fmt: skip
    rows[2].text = ""  # no reference: skipped and reported, not fatal
    write_manifest(tmp_path / "test.tsv", rows)
    out = tmp_path / "out"
    argv = ["eval", str(tmp_path / "test.tsv"), "--checkpoint", str(checkpoint), "--out", str(out),
            "--beam", "4", "--batch-frames", "40", *args]  # fmt: skip
    assert main(argv) == 0  # one batch of 12 + 9 frames: u1 is padded
    summary = json.loads((out / "summary.json").read_text())
    assert [s["id"] for s in summary["skipped"]] == ["u2"]

    def hyps(stream, condition="clean"):
        lines = (out / f"hyps_{stream}_{condition}.tsv").read_text().splitlines()[1:]
        return {line.split("\t")[0]: line.split("\t")[3] for line in lines}

    return rows[:2], summary, hyps


def test_eval_matches_unbatched_beam_search(checkpoint, tmp_path):
    rows, summary, hyps = run_eval(tmp_path, checkpoint, "--buckets", "10")
    assert [(r["stream"], r["condition"]) for r in summary["results"]] == [
        ("a", "clean"), ("v", "clean"), ("av", "clean")
    ]  # fmt: skip
    assert all(set(r["buckets"]) == {"0-10", "10+"} for r in summary["results"])
    model = load_model(checkpoint)
    options = DecodingOptions(method="beam", beam_size=4)
    for row in rows:
        single = single_decode(model, row, ("a", "v", "av"), options)
        for stream in ("a", "v", "av"):
            assert hyps(stream)[row.id] == single[stream], (stream, row.id)
            assert single[stream]  # the fixture model does emit words


@pytest.mark.parametrize("decoder", ["greedy", "ctc"])
def test_eval_other_decoders_and_noise(checkpoint, tmp_path, decoder):
    write_audio(tmp_path / "babble.wav", np.random.default_rng(0).normal(0, 0.1, 16000))
    noise = ["--snr", "clean", "5", "--noise", str(tmp_path / "babble.wav")]
    rows, summary, hyps = run_eval(
        tmp_path, checkpoint, "--decoder", decoder, "--modality", "a", *noise
    )
    assert [(r["stream"], r["condition"]) for r in summary["results"]] == [
        ("a", "clean"), ("a", "snr5")
    ]  # fmt: skip
    model = load_model(checkpoint)
    for row in rows:
        single = single_decode(model, row, ("a",), DecodingOptions(method=decoder))
        assert hyps("a")[row.id] == single["a"]
    if decoder == "greedy":  # (the fixture's CTC heads favour blank on these inputs)
        assert all(hyps("a").values()) and hyps("a", "snr5") != hyps("a")


def test_scoring_helpers():
    u = score("x", 30, "THE CAT SAT", "THE BAT SAT DOWN")
    assert (u.word_errors, u.words) == (2, 3)
    assert u.char_errors == 6 and u.chars == 11  # one substitution + " DOWN"
    r = rates([u, score("y", 80, "HELLO", "HELLO")])
    assert r["wer"] == pytest.approx(50.0) and r["utterances"] == 2
    assert [bucket_label(n, (50, 100)) for n in (0, 49, 50, 99, 100, 500)] == [
        "0-50", "0-50", "50-100", "50-100", "100+", "100+"
    ]  # fmt: skip


def test_demo_table_has_ctc_greedy_attention_greedy_and_beam_rows(checkpoint, tmp_path):
    rows = [make_clip(tmp_path / "clips", f"u{i}", frames=n, text=f"HELLO WORLD {i}", seed=i)
            for i, n in enumerate([12, 9])]  # fmt: skip
    write_manifest(tmp_path / "test.tsv", rows)
    table = evaluate_test(checkpoint, tmp_path / "test.tsv", tmp_path / "eval", beam=2)
    assert list(table) == ["CTC greedy", "att greedy", "beam 2"]
    for name, folder in zip(table, ["ctc_greedy", "att_greedy", "beam_2"]):
        summary = json.loads((tmp_path / "eval" / folder / "summary.json").read_text())
        assert table[name] == {r["stream"]: r["wer"] for r in summary["results"]}
        assert set(table[name]) == {"a", "v", "av"}
    rows = [{"model": "labelled-only, step 5", "decoding": "beam 2", "wer": table["beam 2"]}]
    rows += [{"model": "USR 2.0, step 9", "decoding": k, "wer": v} for k, v in table.items()]
    lines = format_wer_table(rows).splitlines()
    assert lines[0].split() == ["model", "decoding", "a", "v", "av"]
    for line, row in zip(lines[1:], rows, strict=True):
        assert line.startswith(row["model"])
        cells = line[len(row["model"]) :].split()
        assert " ".join(cells[:-3]) == row["decoding"]
        assert [float(c) for c in cells[-3:]] == [round(row["wer"][s], 1) for s in "a v av".split()]
