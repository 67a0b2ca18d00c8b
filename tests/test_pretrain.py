"""Self-supervised pre-training: span masks, teacher targets, the masked loss, the frozen teacher,
exact resume, and encoder-only initialisation of training from its checkpoint."""

from __future__ import annotations

import pytest
import torch
from test_train import Crash, CrashAfter
from train_corpus import make_corpus, overrides

import unisr.train as train_module
from unisr.checkpoint import read_checkpoint
from unisr.config import model_config
from unisr.dataset import Batch
from unisr.ema import make_teacher
from unisr.model import UnifiedModel, relative_positions
from unisr.pretrain import (
    Predictor,
    mask_inputs,
    masked_cosine_loss,
    pretrain,
    pretrain_losses,
    span_mask,
    teacher_targets,
)
from unisr.tokenizer import load_tokenizer
from unisr.train import train
from unisr.train_config import PretrainSection, load_config


def test_span_mask_is_one_mask_for_both_streams_upsampled_for_audio():
    torch.manual_seed(0)
    lengths = torch.tensor([30, 12])
    mask = span_mask(lengths, prob=0.4, span=3, frames=30)
    assert not mask[1, 12:].any()  # never past an utterance's end
    share = mask[0].float().mean().item()
    assert 0.2 < share < 0.8  # ~ 1 - (1 - 0.4 / 3) ** 3 of the frames when spans overlap
    video, audio = torch.rand(2, 30, 8, 8) + 1, torch.rand(2, 30 * 640) + 1
    masked_video, masked_audio = mask_inputs(video, audio, mask)
    video_zero = (masked_video == 0).all(-1).all(-1)
    audio_zero = (masked_audio == 0).view(2, 30, 640)
    assert torch.equal(video_zero, mask)
    assert torch.equal(audio_zero.all(-1), mask) and torch.equal(audio_zero.any(-1), mask)
    assert torch.equal(
        masked_audio[~mask.repeat_interleave(640, 1)], audio[~mask.repeat_interleave(640, 1)]
    )


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = model_config("tiny", vocab_size=12, enc_layers=3, audio_frontend="fbank")
    student = UnifiedModel(cfg)
    return student, make_teacher(student), Predictor(cfg, 1)


def test_targets_are_the_instance_normalised_block_average_of_the_clean_clip(tiny):
    _, teacher, _ = tiny
    teacher.eval()
    torch.manual_seed(1)
    lengths = torch.tensor([10, 6])
    video, audio = torch.randn(2, 10, 32, 32), torch.randn(2, 10 * 640)
    targets = teacher_targets(teacher, video, audio, lengths)
    # by hand: the three blocks' outputs on the clean AV input, averaged, normalised per channel
    with torch.no_grad():
        encoder = teacher.encoder
        h = encoder.project(video, audio, lengths, ("av",))["av"] * encoder.d_model**0.5
        positions = relative_positions(10, encoder.d_model, h)
        key_mask = torch.arange(10)[None] < lengths[:, None]
        blocks = []
        for layer in encoder.encoders:
            h = layer(h, positions, key_mask)
            blocks.append(h)
        average = sum(blocks) / 3
    for b, n in enumerate(lengths.tolist()):
        valid = average[b, :n]
        expected = (valid - valid.mean(0)) / (valid.var(0, unbiased=False) + 1e-5).sqrt()
        torch.testing.assert_close(targets[b, :n], expected, atol=1e-4, rtol=1e-4)
    assert targets[1, 6:].abs().max() == 0  # padding frames carry no target


def test_loss_counts_only_masked_frames():
    torch.manual_seed(0)
    prediction, target = torch.randn(2, 8, 16), torch.randn(2, 8, 16)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, 2:5], mask[1, 6] = True, True
    loss = masked_cosine_loss(prediction, target, mask)
    changed = prediction.clone()
    changed[~mask] = torch.randn_like(changed[~mask])
    torch.testing.assert_close(masked_cosine_loss(changed, target, mask), loss)
    changed[0, 3] += 5.0
    assert not torch.allclose(masked_cosine_loss(changed, target, mask), loss)
    perfect = masked_cosine_loss(target * 3.0, target, mask)
    torch.testing.assert_close(perfect, torch.tensor(-1.0))


def test_gradients_reach_the_student_encoder_and_predictor_never_the_teacher(tiny):
    student, teacher, predictor = tiny
    student.zero_grad(set_to_none=True)
    torch.manual_seed(2)
    batch = Batch(ids=["x", "y"], video=torch.randn(2, 12, 32, 32),
                  audio=torch.randn(2, 12 * 640), lengths=torch.tensor([12, 9]))  # fmt: skip
    losses = pretrain_losses(student, teacher, predictor, batch, PretrainSection())
    losses["total"].backward()
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(p.grad is not None for p in student.encoder.encoders.parameters())
    assert student.encoder.frontend_v.frontend3D[0].weight.grad is not None
    assert predictor.mask_embed.grad is not None
    assert all(p.grad is None for p in student.decoder.parameters())  # decoder untouched
    assert set(losses) >= {"v", "a", "av", "total"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    return make_corpus(tmp_path_factory.mktemp("pretrain_corpus"))


def pretrain_config(corpus, out, **extra):
    items = overrides(corpus, out, **extra)
    items = [i for i in items if not i.startswith(("data.labelled=", "data.val="))]
    return load_config(None, [*items, "data.val=null", "optim.betas=[0.9,0.999]"], "pretrain")


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained")
    return pretrain(pretrain_config(corpus, out)), out


def test_killed_and_resumed_pretraining_matches_an_uninterrupted_run(corpus, pretrained, tmp_path):
    reference, _ = pretrained
    assert reference.global_step == 6
    with pytest.raises(Crash):
        pretrain(pretrain_config(corpus, tmp_path), callbacks=(CrashAfter(5),))
    resumed = pretrain(pretrain_config(corpus, tmp_path), resume="auto")
    assert resumed.global_step == 6
    for name in ("model", "teacher", "predictor"):
        ours = getattr(resumed, name).state_dict()
        for key, value in getattr(reference, name).state_dict().items():
            torch.testing.assert_close(ours[key], value, rtol=1e-6, atol=1e-7, msg=key)


def test_pretrained_encoder_initialises_training_with_fresh_decoder_and_heads(
    corpus, pretrained, tmp_path
):
    _, out = pretrained
    init = ["init.checkpoint=" + str(out / "model.pt"), "init.encoder_only=true"]
    cfg = load_config(None, [*overrides(corpus, tmp_path, **{"optim.max_steps": 1}), *init])
    pre = read_checkpoint(out / "model.pt")["model"]
    torch.manual_seed(123)
    module = train_module.USRModule(cfg, cfg.model_config(pre["ctc_a.ctc_lo.weight"].shape[0]),
                                    load_tokenizer(cfg.data.tokenizer))  # fmt: skip
    state = module.model.state_dict()
    for key, value in pre.items():
        if key.startswith("encoder.") and not key.startswith("encoder.after_norm."):
            assert torch.equal(state[key], value), key
    # the decoder and heads are freshly initialised, not the pre-trained run's
    assert not torch.equal(state["decoder.embed.0.weight"], pre["decoder.embed.0.weight"])
    assert not torch.equal(state["ctc_av.ctc_lo.weight"], pre["ctc_av.ctc_lo.weight"])
    for key, value in module.teacher.state_dict().items():  # the teacher starts from it too
        assert torch.equal(value, state[key]), key
    assert train(cfg).global_step == 1
