"""Pseudo-label quality against known transcripts, and the oracle mode: the transcripts of
unlabelled clips are diagnostics (no loss, filter or teacher sees them) unless ``pl.mode=oracle``
puts them, with seeded word errors, in the teacher's place."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from train_corpus import make_corpus, metrics, overrides

from unisr.dataset import AVDataset, collate, corrupt_words
from unisr.errors import UnisrError
from unisr.evaluate import word_errors
from unisr.manifest import read_manifest, write_manifest
from unisr.pl_quality import QualityWindow, label_errors
from unisr.pseudo_labels import PseudoLabels, oracle
from unisr.tokenizer import load_tokenizer
from unisr.train import train
from unisr.train_config import load_config


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def run(corpus, out: Path, **extra):
    return train(load_config(None, overrides(corpus, out, **extra)))


def without_text(manifest: str, out: Path) -> str:
    rows = [replace(r, text="", tokens=None) for r in read_manifest(manifest)]
    write_manifest(out, rows)
    return str(out)


def test_transcripts_reach_no_loss_filter_or_teacher(corpus, tmp_path):
    """The same run with and without the unlabelled clips' text: bit-identical student and
    teacher; only the run with text logs pseudo-label quality."""
    bare = dict(corpus, train_unlabelled=without_text(corpus["train_unlabelled"],
                                                      tmp_path / "bare.tsv"))  # fmt: skip
    with_text = run(corpus, tmp_path / "text")
    no_text = run(bare, tmp_path / "bare")
    for module in (with_text, no_text):
        assert module.global_step == 6 and module.skipped_steps == 0
    for a, b in ((with_text.model, no_text.model), (with_text.teacher, no_text.teacher)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)
    logged = [r for r in metrics(tmp_path / "text") if "pl_quality/ctc_wer" in r]
    assert len(logged) == 6
    assert all(0 <= float(r["pl_quality/ctc_accepted"]) <= 1 for r in logged)
    assert any("pl_quality/att_wer" in r for r in logged)
    assert not any("pl_quality/ctc_wer" in r for r in metrics(tmp_path / "bare"))


def test_oracle_mode_trains_on_the_transcripts_through_the_unlabelled_path(corpus, tmp_path):
    module = run(corpus, tmp_path, **{"pl.mode": "oracle", "optim.max_steps": 3})
    rows = [r for r in metrics(tmp_path) if "loss/unlabelled" in r]
    assert len(rows) == 3
    for r in rows:  # the oracle's labels are the transcripts: no errors, all accepted
        assert float(r["pl_quality/ctc_wer"]) == 0.0
        assert float(r["pl_quality/att_wer"]) == 0.0
        assert float(r["pl/ctc_accept"]) == 1.0
    assert module.skipped_steps == 0


def test_oracle_errors_follow_the_rate_and_are_fixed_per_clip(corpus, tmp_path):
    tokenizer = load_tokenizer(corpus["tokenizer"])
    rows = read_manifest(corpus["train_unlabelled"])
    dataset = AVDataset(rows, labelled=False, train=True, tokenizer=tokenizer, oracle_wer=0.5,
                        seed=3)  # fmt: skip
    items = [dataset[i] for i in range(len(dataset))]
    again = [dataset[i] for i in range(len(dataset))]
    dataset.set_epoch(1)
    later = [dataset[i] for i in range(len(dataset))]
    assert [x["oracle"] for x in items] == [x["oracle"] for x in again]
    assert [x["oracle"] for x in items] == [x["oracle"] for x in later]
    batch, bad = collate(items)
    assert not bad and batch.oracle_tokens.shape[0] == len(items)
    refs = [tokenizer.decode(x["transcript"]) for x in items]
    noisy = [tokenizer.decode(x["oracle"]) for x in items]
    errors, words = word_errors(refs, noisy)
    assert 0 < errors < words  # some errors, and not everything wrong


def test_corrupt_words_has_the_expected_error_rate():
    rng = np.random.default_rng(0)
    vocabulary = [f"W{i}" for i in range(50)]
    refs, hyps = [], []
    for _ in range(400):
        words = list(rng.choice(vocabulary, 10))
        refs.append(" ".join(words))
        hyps.append(" ".join(corrupt_words(words, 0.3, vocabulary, rng)))
    errors, words = word_errors(refs, hyps)
    assert errors / words == pytest.approx(0.3, abs=0.02)
    assert corrupt_words(["A", "B"], 0.0, vocabulary, rng) == ["A", "B"]


def test_oracle_mode_needs_a_transcript_on_every_clip(corpus, tmp_path):
    bare = without_text(corpus["train_unlabelled"], tmp_path / "bare.tsv")
    tokenizer = load_tokenizer(corpus["tokenizer"])
    with pytest.raises(UnisrError, match="has none"):
        AVDataset(read_manifest(bare), labelled=False, tokenizer=tokenizer, oracle_wer=0.0)


def test_label_errors_scores_accepted_and_rejected_labels_apart():
    decode = {1: "A", 2: "B", 3: "C"}.get
    eos = 9

    def text(ids):
        return " ".join(decode(i) for i in ids)

    refs = torch.tensor([[1, 2, 3], [1, 2, -1]])
    ref_lengths = torch.tensor([3, 2])
    ctc = torch.tensor([[1, 2, 3], [3, 3, -1]])
    pls = PseudoLabels("ctc_driven", ctc, torch.tensor([3, 2]), torch.tensor([True, False]))
    pls.att_tokens = torch.tensor([[1, 2, 2, eos], [1, 2, eos, -1]])
    pls.att_lengths = torch.tensor([4, 3])
    pls.att_keep = torch.tensor([[True, True, True, True], [True, False, True, False]])
    counts = label_errors(pls, refs, ref_lengths, text, eos)
    assert counts["ctc_wer"] == (2, 5)
    assert counts["ctc_wer_accepted"] == (0, 3) and counts["ctc_wer_rejected"] == (2, 2)
    assert counts["ctc_accepted"] == (1, 2)
    assert counts["att_wer"] == (1, 5) and counts["att_wer_accepted"] == (1, 3)
    assert counts["att_accepted_share"] == (1, 2)
    window = QualityWindow(2)
    window.add({"ctc_wer": (1, 10), "ctc_accepted": (1, 2)})
    window.add({"ctc_wer": (3, 10), "ctc_accepted": (1, 2)})
    rates = window.add({"ctc_wer": (5, 10), "ctc_accepted": (2, 2)})
    assert rates == {"pl_quality/ctc_wer": 40.0, "pl_quality/ctc_accepted": 0.75}


def test_oracle_labels_are_ctc_driven_targets_all_accepted():
    tokens = torch.tensor([[4, 5, 6], [7, -1, -1]])
    pls = oracle(tokens, torch.tensor([3, 1]), eos=9)
    assert pls.mode == "ctc_driven" and pls.ctc_keep.all()
    assert pls.att_tokens.tolist() == [[4, 5, 6, 9], [7, 9, -1, -1]]
    assert pls.att_keep.tolist() == [[True] * 4, [True, True, False, False]]
