"""Loss weighting (paper §2.7) and which targets each pseudo-label mode trains on.

Every expected value is computed here from the model's own outputs and torch's losses, not by
calling the loss functions under test with other settings."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from unisr.config import model_config
from unisr.dataset import Batch
from unisr.losses import (
    LossConfig,
    UnlabelledHeads,
    ctc_loss,
    labelled_losses,
    token_loss,
    unlabelled_losses,
)
from unisr.model import UnifiedModel
from unisr.pseudo_labels import PseudoLabelConfig, generate
from unisr.step import loss_weights, weighted_sum

VOCAB = 12
EOS = VOCAB - 1  # also sos
SMOOTHING = LossConfig().label_smoothing


def test_weights_are_the_papers():
    cfg = LossConfig()
    labelled, unlabelled = loss_weights(cfg, pseudo_labelling=True)
    assert labelled == pytest.approx({"v": 0.3 * 0.03, "a": 0.7 * 0.25, "av": 0.7 * 0.25})
    assert unlabelled == pytest.approx({"v": 0.3 * 0.97, "a": 0.7 * 0.75, "av": 0.7 * 0.75})
    supervised, none = loss_weights(cfg, pseudo_labelling=False)
    assert supervised == pytest.approx({"v": 0.3, "a": 0.7, "av": 0.7}) and none == {}
    losses = {"v": torch.tensor(1.0), "a": torch.tensor(2.0), "av": torch.tensor(3.0),
              "a/ctc": torch.tensor(100.0)}  # fmt: skip
    total = weighted_sum(losses, unlabelled)
    assert total.item() == pytest.approx(0.3 * 0.97 * 1 + 0.7 * 0.75 * 2 + 0.7 * 0.75 * 3)
    only_audio = loss_weights(replace(cfg, streams=("a",)), pseudo_labelling=True)
    assert set(only_audio[0]) == set(only_audio[1]) == {"a"}


def test_loss_helpers_reduce_like_usr():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, VOCAB)
    targets = torch.tensor([[3, 4, 5], [6, -1, -1]])
    lengths, target_lengths = torch.tensor([6, 4]), torch.tensor([3, 1])
    per_seq = F.ctc_loss(
        logits.log_softmax(-1).transpose(0, 1), targets.clamp(min=0), lengths, target_lengths,
        reduction="none", zero_infinity=True,
    )  # fmt: skip
    assert ctc_loss(logits, lengths, targets, target_lengths).item() == pytest.approx(
        per_seq.sum().item() / 2
    )
    keep = torch.tensor([False, True])
    assert ctc_loss(logits, lengths, targets, target_lengths, keep).item() == pytest.approx(
        per_seq[1].item() / 2
    )
    dec_logits = torch.randn(2, 3, VOCAB)
    ce = F.cross_entropy(dec_logits[0], targets[0], reduction="sum") + F.cross_entropy(
        dec_logits[1, :1], targets[1, :1], reduction="sum"
    )
    assert token_loss(dec_logits, targets, None, 0.0).item() == pytest.approx(
        ce.item() / 2, rel=1e-5
    )
    mask = torch.tensor([[True, False, True], [False, True, True]])
    ce_masked = F.cross_entropy(dec_logits[0, [0, 2]], targets[0, [0, 2]], reduction="sum")
    assert token_loss(dec_logits, targets, mask, 0.0).item() == pytest.approx(
        ce_masked.item() / 2, rel=1e-5
    )


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = UnifiedModel(
        model_config("tiny", vocab_size=VOCAB, enc_layers=1, audio_frontend="resnet")
    ).eval()
    with torch.no_grad():
        model.decoder.out_layer_av.bias[EOS] = 1.5  # some AR labels end before the limit
    gen = torch.Generator().manual_seed(2)
    lengths = torch.tensor([12, 8])
    video = torch.randn(2, 12, 32, 32, generator=gen)
    audio = 0.1 * torch.randn(2, 12 * 640, generator=gen)
    batch = Batch(
        ids=["x", "y"], video=video, audio=audio, lengths=lengths,
        video_student=video * 0.5, audio_student=audio * 0.5,
        targets=torch.tensor([[3, 4, 5], [6, -1, -1]]), target_lengths=torch.tensor([3, 1]),
    )  # fmt: skip
    return model, batch


def decoder_logits(model, video, audio, lengths, inputs: list[list[int]], stream="av"):
    """Logits of the decoder teacher-forced on ``inputs`` (one list per row), row by row."""
    encoded = model.encode(video, audio, lengths, (stream,))[stream]
    rows = []
    for i, tokens in enumerate(inputs):
        memory = encoded[i : i + 1, : int(lengths[i])]
        hidden = model.decoder(torch.tensor([tokens]), memory)
        rows.append(model.decoder.output(hidden, stream)[0])
    return encoded, rows


def summed_ce(rows, targets: list[list[int]]) -> float:
    """Label-smoothed CE summed over every (row, position) with a target, / batch size."""
    total = sum(
        F.cross_entropy(
            logits[: len(t)], torch.tensor(t), reduction="sum", label_smoothing=SMOOTHING
        ).item()  # fmt: skip
        for logits, t in zip(rows, targets)
        if t
    )
    return total / len(rows)


def test_labelled_loss_is_joint_ctc_attention_on_the_ground_truth(setup):
    model, batch = setup
    out = labelled_losses(model, batch, LossConfig())
    truth = [[3, 4, 5], [6]]
    encoded, rows = decoder_logits(
        model, batch.video, batch.audio, batch.lengths, [[EOS, *t] for t in truth]
    )
    att = summed_ce(rows, [[*t, EOS] for t in truth])
    log_probs = model.ctc_logits(encoded, "av").log_softmax(-1).transpose(0, 1)
    ctc = F.ctc_loss(log_probs, torch.tensor([3, 4, 5, 6]), batch.lengths, torch.tensor([3, 1]),
                     reduction="sum", zero_infinity=True).item() / 2  # fmt: skip
    assert out["av/att"].item() == pytest.approx(att, rel=1e-4)
    assert out["av/ctc"].item() == pytest.approx(ctc, rel=1e-4)
    assert out["av"].item() == pytest.approx(0.1 * ctc + 0.9 * att, rel=1e-4)


def pseudo_labels(model, batch, mode, **kw):
    return generate(
        model, batch.video, batch.audio, batch.lengths, mode, PseudoLabelConfig(threshold=0.0, **kw)
    )


def tokens(t: torch.Tensor) -> list[list[int]]:
    return [[x for x in row.tolist() if x != -1] for row in t]


def test_ctc_driven_decoder_learns_from_attention_and_ctc_labels(setup):
    model, batch = setup
    pls = pseudo_labels(model, batch, "ctc_driven")
    # attention labels that surely differ from the CTC ones, so each share is seen on its own
    pls.att_tokens = torch.where(pls.att_tokens >= 0, (pls.att_tokens % 9) + 1, pls.att_tokens)
    ctc = tokens(pls.ctc_tokens)
    assert tokens(pls.att_tokens) != [[*t, EOS] for t in ctc]
    _, rows = decoder_logits(
        model, batch.video_student, batch.audio_student, batch.lengths, [[EOS, *t] for t in ctc]
    )
    on_att = summed_ce(rows, tokens(pls.att_tokens))
    on_ctc = summed_ce(rows, [[*t, EOS] for t in ctc])
    assert on_att != pytest.approx(on_ctc, rel=1e-3)
    for share, expected in ((1.0, on_att), (0.0, on_ctc), (0.5, 0.5 * on_att + 0.5 * on_ctc)):
        out = unlabelled_losses(model, batch, pls, LossConfig(decoder_att_share=share))
        assert out["av/att"].item() == pytest.approx(expected, rel=1e-4), share
    # rejected labels contribute nothing
    pls.ctc_keep[:] = False
    pls.att_keep[:] = False
    rejected = unlabelled_losses(model, batch, pls, LossConfig())
    assert all(rejected[s].item() == 0.0 for s in ("v", "a", "av"))


def test_ar_mode_ctc_head_learns_from_both_label_kinds(setup):
    model, batch = setup
    pls = pseudo_labels(model, batch, "ar", ar_max_len_ratio=0.5)
    pls.ar_seq_keep[:] = True
    encoded = model.encode(batch.video_student, batch.audio_student, batch.lengths, ("av",))
    log_probs = model.ctc_logits(encoded["av"], "av").log_softmax(-1).transpose(0, 1)

    def ctc_on(labels: list[list[int]]) -> float:
        flat = torch.tensor([x for t in labels for x in t], dtype=torch.long)
        lengths = torch.tensor([len(t) for t in labels])
        return F.ctc_loss(log_probs, flat, batch.lengths, lengths, reduction="sum",
                          zero_infinity=True).item() / 2  # fmt: skip

    on_ctc = ctc_on(tokens(pls.ctc_tokens))
    on_ar = ctc_on([[x for x in t if x != EOS] for t in tokens(pls.att_tokens)])
    assert on_ctc != pytest.approx(on_ar, rel=1e-3)
    for share, expected in ((1.0, on_ctc), (0.0, on_ar), (0.5, 0.5 * on_ctc + 0.5 * on_ar)):
        out = unlabelled_losses(model, batch, pls, LossConfig(ctc_ctc_share=share))
        assert out["av/ctc"].item() == pytest.approx(expected, rel=1e-4), share


def test_usr1_mode_uses_separate_heads_and_frame_targets(setup):
    model, batch = setup
    pls = pseudo_labels(model, batch, "usr1", ar_max_len_ratio=0.5)
    heads = UnlabelledHeads(model.config.d_model, VOCAB)
    with pytest.raises(ValueError, match="UnlabelledHeads"):
        unlabelled_losses(model, batch, pls, LossConfig())
    assert pls.att_keep.any()  # an AR label that ended is used
    out = unlabelled_losses(model, batch, pls, LossConfig(), heads)
    out["av"].backward()
    assert heads.out_layer_unlabelled_ctc_av.weight.grad.abs().sum() > 0
    assert heads.out_layer_unlabelled_av.weight.grad.abs().sum() > 0
    assert model.decoder.out_layer_av.weight.grad is None  # labelled output layers untouched
    assert model.ctc_av.ctc_lo.weight.grad is None
