"""``unisr eval`` on a checkpoint converted from the official fixture."""

import json

import numpy as np
import pytest
import torch
from test_data_loading import make_clip

from unisr.checkpoint import convert, load_model, save_checkpoint
from unisr.cli import main
from unisr.dataset import load_clip
from unisr.decoding import DecodingOptions
from unisr.demo import format_wer_table, wer_rows
from unisr.evaluate import bucket_label, rates, score, word_errors
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
    # validation in training counts with this too: after the official normalisation
    assert word_errors(["The cat, sat.", "hello"], ["THE CAT SAT", "HELLO WORLD"]) == (1, 4)


def word_edits(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between two word sequences."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def wer_of(folder, stream: str, references: dict[str, str]) -> float:
    """WER % of the hypotheses that evaluation wrote into ``folder``, counted here."""
    lines = (folder / f"hyps_{stream}_clean.tsv").read_text().splitlines()[1:]
    written = {uid: (ref, hyp) for uid, _, ref, hyp, *_ in (line.split("\t") for line in lines)}
    assert {uid: ref for uid, (ref, _) in written.items()} == references
    edits = sum(word_edits(ref.split(), hyp.split()) for ref, hyp in written.values())
    return 100 * edits / sum(len(ref.split()) for ref in references.values())


def test_demo_table_reports_the_wer_of_each_model_and_decoding(checkpoint, tmp_path):
    """The demo's rows and printed table: the labelled-only student first (beam search), then
    the final model by CTC greedy, attention greedy and beam search, each with the WER of the
    hypotheses its evaluation wrote, counted here from the references and hypotheses."""
    texts = {"u0": "BUT BECAME HELLO WORLD", "u1": "MAKE J WHOLEABLE TALK"}  # some words hit
    clips = [make_clip(tmp_path / "clips", uid, frames=n, text=text, seed=i)
             for i, ((uid, text), n) in enumerate(zip(texts.items(), [12, 9]))]  # fmt: skip
    write_manifest(tmp_path / "test.tsv", clips)
    run = tmp_path / "run"
    run.mkdir()
    model = load_model(checkpoint)
    save_checkpoint(run / "model.pt", model, model.tokenizer, step=9)
    torch.manual_seed(0)
    with torch.no_grad():  # another student, so that the two models' rows differ
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(run / "labelled_only.pt", model, model.tokenizer, step=5)

    rows = wer_rows(run, tmp_path / "test.tsv", beam=2)
    final = [("CTC greedy", "ctc_greedy"), ("att greedy", "att_greedy"), ("beam 2", "beam_2")]
    expected = [("labelled-only, step 5", "beam 2", run / "eval_labelled_only" / "beam_2")]
    expected += [("USR 2.0, step 9", name, run / "eval" / folder) for name, folder in final]
    assert [(r["model"], r["decoding"]) for r in rows] == [e[:2] for e in expected]
    wers = [{s: wer_of(folder, s, texts) for s in ("a", "v", "av")} for *_, folder in expected]
    for row, wer in zip(rows, wers, strict=True):
        assert row["wer"] == pytest.approx(wer), row
    assert wers[0] != wers[-1] and len({w["av"] for w in wers}) > 2  # the numbers tell rows apart

    lines = format_wer_table(rows).splitlines()
    assert lines[0].split() == ["model", "decoding", "a", "v", "av"]
    for line, (model_name, decoding, _), wer in zip(lines[1:], expected, wers, strict=True):
        assert line.startswith(model_name)
        cells = line[len(model_name) :].split()
        assert " ".join(cells[:-3]) == decoding
        assert [float(c) for c in cells[-3:]] == [round(wer[s], 1) for s in ("a", "v", "av")]

    (run / "labelled_only.pt").unlink()  # a run that never pseudo-labelled has no such row
    assert [r["model"] for r in wer_rows(run, tmp_path / "test.tsv", beam=2)] == [
        "USR 2.0, step 9"
    ] * 3


def test_eval_in_bfloat16_in_groups_of_frames_matches_single_decoding(checkpoint, tmp_path):
    rows, summary, hyps = run_eval(
        tmp_path, checkpoint, "--dtype", "bfloat16", "--decode-frames", "12", "--modality", "av"
    )
    assert summary["dtype"] == "bfloat16" and summary["decoding"]["decode_frames"] == 12
    model = load_model(checkpoint, dtype="bfloat16")
    for row in rows:  # decoded in groups of one (12 + 9 frames padded to 24 > 12)
        assert (
            hyps("av")[row.id]
            == single_decode(model, row, ("av",), DecodingOptions(beam_size=4))["av"]
        )
