"""Loss weighting (paper §2.7) and which targets each pseudo-label mode trains on."""

import pytest
import torch
import torch.nn.functional as F

from unisr.config import model_config
from unisr.losses import (
    LossConfig,
    UnlabelledHeads,
    combine,
    ctc_loss,
    labelled_losses,
    token_loss,
    unlabelled_losses,
)
from unisr.model import UnifiedModel
from unisr.pseudo_labels import PseudoLabelConfig, generate

VOCAB = 12
EOS = VOCAB - 1


def test_weights_add_up_as_in_the_paper():
    cfg = LossConfig()
    labelled = {"v": torch.tensor(1.0), "a": torch.tensor(2.0), "av": torch.tensor(3.0)}
    unlabelled = {"v": torch.tensor(10.0), "a": torch.tensor(20.0), "av": torch.tensor(30.0)}
    lab, unl, logs = combine(labelled, unlabelled, cfg)
    expected_lab = 0.3 * 0.03 * 1 + 0.7 * 0.25 * 2 + 0.7 * 0.25 * 3
    expected_unl = 0.3 * 0.97 * 10 + 0.7 * 0.75 * 20 + 0.7 * 0.75 * 30
    assert lab.item() == pytest.approx(expected_lab)
    assert unl.item() == pytest.approx(expected_unl)
    assert logs["loss/unlabelled/a"].item() == 20.0
    # supervised only: each stream weighted by w_m alone
    lab_only, none, _ = combine(labelled, None, cfg)
    assert none is None and lab_only.item() == pytest.approx(0.3 * 1 + 0.7 * 2 + 0.7 * 3)


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
    video, audio = (
        torch.randn(2, 12, 32, 32, generator=gen),
        0.1 * torch.randn(2, 12 * 640, generator=gen),
    )
    batch = {
        "lengths": lengths, "video": video, "audio": audio,
        "video_student": video * 0.5, "audio_student": audio * 0.5,
        "targets": torch.tensor([[3, 4, 5], [6, -1, -1]]), "target_lengths": torch.tensor([3, 1]),
    }  # fmt: skip
    return model, batch


def test_labelled_loss_is_joint_ctc_attention(setup):
    model, batch = setup
    out = labelled_losses(model, batch, LossConfig())
    for s in ("v", "a", "av"):
        assert out[s].item() == pytest.approx(
            0.1 * out[f"{s}/ctc"].item() + 0.9 * out[f"{s}/att"].item(), rel=1e-5
        )
    enc = model.encode(batch["video"], batch["audio"], batch["lengths"], ("a",))["a"]
    ctc = ctc_loss(
        model.ctc_logits(enc, "a"), batch["lengths"], batch["targets"], batch["target_lengths"]
    )
    assert out["a/ctc"].item() == pytest.approx(ctc.item(), rel=1e-5)


def test_ctc_driven_decoder_share_selects_targets(setup):
    model, batch = setup
    pls = generate(
        model,
        batch["video"],
        batch["audio"],
        batch["lengths"],
        "ctc_driven",
        PseudoLabelConfig(threshold=0.0),
    )
    only_att = unlabelled_losses(model, batch, pls, LossConfig(decoder_att_share=1.0))
    only_ctc = unlabelled_losses(model, batch, pls, LossConfig(decoder_att_share=0.0))
    half = unlabelled_losses(model, batch, pls, LossConfig())
    for s in ("v", "a", "av"):
        assert half[f"{s}/att"].item() == pytest.approx(
            0.5 * only_att[f"{s}/att"].item() + 0.5 * only_ctc[f"{s}/att"].item(), rel=1e-5
        )
        assert half[f"{s}/ctc"].item() == pytest.approx(only_att[f"{s}/ctc"].item(), rel=1e-6)
    if not torch.equal(
        pls.att_tokens, torch.cat([pls.ctc_tokens, pls.ctc_tokens.new_full((2, 1), -1)], 1)
    ):
        assert only_att["av/att"].item() != pytest.approx(only_ctc["av/att"].item())
    # rejected sequences contribute nothing
    pls.ctc_keep[:] = False
    pls.att_keep[:] = False
    rejected = unlabelled_losses(model, batch, pls, LossConfig())
    assert all(rejected[s].item() == 0.0 for s in ("v", "a", "av"))


def test_ar_mode_ctc_head_learns_from_both_label_kinds(setup):
    model, batch = setup
    pls = generate(
        model,
        batch["video"],
        batch["audio"],
        batch["lengths"],
        "ar",
        PseudoLabelConfig(threshold=0.0, ar_max_len_ratio=0.5),
    )
    both = unlabelled_losses(model, batch, pls, LossConfig())
    ctc_only = unlabelled_losses(model, batch, pls, LossConfig(ctc_ctc_share=1.0))
    att_only = unlabelled_losses(model, batch, pls, LossConfig(ctc_ctc_share=0.0))
    for s in ("v", "a", "av"):
        assert both[f"{s}/ctc"].item() == pytest.approx(
            0.5 * ctc_only[f"{s}/ctc"].item() + 0.5 * att_only[f"{s}/ctc"].item(), rel=1e-5
        )


def test_usr1_mode_uses_separate_heads_and_frame_targets(setup):
    model, batch = setup
    pls = generate(
        model,
        batch["video"],
        batch["audio"],
        batch["lengths"],
        "usr1",
        PseudoLabelConfig(threshold=0.0, ar_max_len_ratio=0.5),
    )
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
