"""Pseudo-label generation: collapse, CTC-driven teacher forcing, AR decoding, confidence, modes."""

import math
from collections import Counter

import pytest
import torch

from unisr import ema
from unisr.config import model_config
from unisr.decoding import attention_greedy, ctc_collapse
from unisr.model import UnifiedModel
from unisr.pseudo_labels import (
    PseudoLabelConfig,
    append_eos,
    draw_mode,
    generate,
    teacher_forcing_inputs,
)

VOCAB = 12
EOS = VOCAB - 1


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    model = UnifiedModel(
        model_config("tiny", vocab_size=VOCAB, enc_layers=1, audio_frontend="resnet")
    ).eval()
    with torch.no_grad():  # tune eos so some rows end by eos and one by the length limit
        model.decoder.out_layer_av.bias[EOS] = -0.5
    return model


@pytest.fixture(scope="module")
def clean_batch():
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([16, 11, 5])
    video = torch.randn(3, 16, 32, 32, generator=gen)
    audio = 0.1 * torch.randn(3, 16 * 640, generator=gen)
    return video, audio, lengths


def test_collapse_merges_repeats_drops_blanks_and_padding():
    frames = torch.tensor(
        [[0, 3, 3, 0, 3, 5, 5, 0], [4, 4, 4, 0, 0, 2, 9, 9], [0, 0, 0, 0, 0, 0, 0, 0]]
    )
    tokens, lengths = ctc_collapse(frames, torch.tensor([8, 6, 8]))
    assert lengths.tolist() == [3, 2, 0]
    assert tokens.tolist() == [[3, 3, 5], [4, 2, -1], [-1, -1, -1]]


def test_teacher_forcing_inputs_and_eos_targets():
    tokens = torch.tensor([[3, 4, 5], [6, -1, -1]])
    assert teacher_forcing_inputs(tokens, EOS).tolist() == [[EOS, 3, 4, 5], [EOS, 6, EOS, EOS]]
    assert append_eos(tokens, torch.tensor([3, 1]), EOS).tolist() == [
        [3, 4, 5, EOS],
        [6, EOS, -1, -1],
    ]


def test_ctc_driven_labels_align_with_ctc_labels(teacher, clean_batch):
    video, audio, lengths = clean_batch
    cfg = PseudoLabelConfig(mode="ctc_driven", threshold=0.0)
    pls = generate(teacher, video, audio, lengths, "ctc_driven", cfg)
    # one attention PL per CTC PL, plus the position after the last one (where eos belongs)
    assert torch.equal(pls.att_lengths, pls.ctc_lengths + 1)
    assert torch.equal((pls.att_tokens != -1).sum(1), pls.ctc_lengths + 1)
    # ...and they are exactly the teacher decoder's argmax on [sos] + CTC PLs, position by position
    memory = teacher.encode(video, audio, lengths, streams=("av",))["av"]
    frame_ids = teacher.ctc_logits(memory, "av").argmax(-1)
    for b in range(3):
        ids = frame_ids[b, : lengths[b]].unique_consecutive()
        ctc = ids[ids != 0]
        assert pls.ctc_tokens[b, : pls.ctc_lengths[b]].tolist() == ctc.tolist()
        prefix = torch.cat([torch.tensor([EOS]), ctc])[None]
        hidden = teacher.decoder(prefix, memory[b : b + 1, : lengths[b]])
        expected = teacher.decoder.output(hidden, "av").argmax(-1)[0]
        assert pls.att_tokens[b, : len(ctc) + 1].tolist() == expected.tolist()


def test_one_teacher_forced_pass_equals_step_by_step_scoring(teacher, clean_batch):
    video, audio, lengths = clean_batch
    memory = teacher.encode(video, audio, lengths, streams=("av",))["av"]
    mask = torch.arange(16)[None] < lengths[:, None]
    prefix = torch.tensor([[EOS, 3, 4, 5, 6], [EOS, 7, 7, 2, 1], [EOS, 9, 8, 3, 3]])
    with torch.no_grad():
        full = teacher.decoder.output(teacher.decoder(prefix, memory, mask), "av").log_softmax(-1)
        state = teacher.decoder.init_state(memory, mask)
        for u in range(prefix.shape[1]):
            hidden, state = teacher.decoder.step(prefix[:, u], state)
            step = teacher.decoder.output(hidden, "av").log_softmax(-1)
            torch.testing.assert_close(step, full[:, u], atol=1e-5, rtol=1e-5)


def naive_greedy(model, memory, length, max_len):
    """Reference: one utterance, full recomputation of the prefix at every step."""
    tokens, logps = [EOS], []
    for _ in range(max_len):
        hidden = model.decoder(torch.tensor([tokens]), memory[None, :length])
        logp = model.decoder.output(hidden[:, -1], "av").log_softmax(-1)[0]
        tokens.append(int(logp.argmax()))
        logps.append(float(logp.max().detach()))
        if tokens[-1] == EOS:
            break
    return tokens[1:], logps


def test_batched_ar_generator_equals_naive_loop(teacher, clean_batch):
    video, audio, lengths = clean_batch
    memory = teacher.encode(video, audio, lengths, streams=("av",))["av"]
    max_lengths = torch.tensor([9, 6, 1])
    tokens, out_lengths, logps = attention_greedy(teacher, memory, lengths, "av", max_lengths)
    ended_by_eos = 0
    for b in range(3):
        ref_tokens, ref_logps = naive_greedy(
            teacher, memory[b], int(lengths[b]), int(max_lengths[b])
        )
        n = int(out_lengths[b])
        assert tokens[b, :n].tolist() == ref_tokens
        assert (tokens[b, n:] == -1).all()
        torch.testing.assert_close(logps[b, :n], torch.tensor(ref_logps), atol=1e-5, rtol=1e-5)
        ended_by_eos += ref_tokens[-1] == EOS
    assert 0 < ended_by_eos < 3  # the test covers both stopping rules


def test_confidence_masks(teacher, clean_batch):
    video, audio, lengths = clean_batch
    for mode in ("ctc_driven", "ar", "usr1"):
        loose = generate(teacher, video, audio, lengths, mode, PseudoLabelConfig(threshold=0.0))
        assert loose.ctc_keep.all()
        valid = loose.att_tokens != -1
        if mode == "ctc_driven":
            assert torch.equal(loose.att_keep, valid)
        else:  # an AR label cut off by the length limit (no eos) is rejected whole
            ended = torch.tensor(
                [row[valid[i]][-1] == EOS for i, row in enumerate(loose.att_tokens)]
            )
            assert 0 < ended.sum() < 3
            assert torch.equal(loose.att_keep, valid & ended[:, None])
            assert torch.equal(loose.ar_seq_keep, ended)
    # sequence-level CTC confidence = geometric mean over valid frames of the max probability
    memory = teacher.encode(video, audio, lengths, streams=("av",))["av"]
    probs = teacher.ctc_logits(memory, "av").softmax(-1).max(-1).values
    conf = torch.stack([probs[b, : lengths[b]].log().mean().exp() for b in range(3)])
    low, mid, high = conf.sort().values.tolist()
    threshold = (low + mid) / 2  # between two sequences, far from float noise
    usr = PseudoLabelConfig(threshold=threshold, token_confidence=False)
    pls = generate(teacher, video, audio, lengths, "ar", usr)
    assert pls.ctc_keep.tolist() == (conf >= threshold).tolist()
    assert pls.ctc_keep.sum() == 2
    # token-level attention confidence = max softmax probability of each emitted token
    limits = (lengths * 0.2).long().clamp(min=1)
    _, _, logps = attention_greedy(teacher, memory, lengths, "av", limits)
    ended = (pls.att_tokens == EOS).any(1, keepdim=True)
    expected = (logps >= math.log(threshold)) & (pls.att_tokens != -1) & ended
    assert torch.equal(pls.att_keep, expected)
    usr1 = generate(teacher, video, audio, lengths, "usr1", usr)
    frame_ok = (probs >= threshold) & (torch.arange(16)[None] < lengths[:, None])
    assert torch.equal(usr1.frame_keep, frame_ok)


@pytest.mark.parametrize("p_ar", [0.5, 0.2])
def test_mixed_sampling_frequency_and_determinism(p_ar):
    cfg = PseudoLabelConfig(mode="mixed", p_ar=p_ar)
    draws = [draw_mode(cfg, step, 4000, seed=7) for step in range(4000)]
    share = draws.count("ar") / len(draws)
    assert abs(share - p_ar) < 0.03
    assert set(draws) == {"ar", "ctc_driven"}
    assert draws == [
        draw_mode(cfg, step, 4000, seed=7) for step in range(4000)
    ]  # every rank agrees
    assert draws != [draw_mode(cfg, step, 4000, seed=8) for step in range(4000)]


def test_ramped_schedules_start_ctc_driven_and_end_near_p_ar():
    cfg = PseudoLabelConfig(mode="mixed", p_ar=1.0, p_ar_schedule="linear")
    early = [draw_mode(cfg, s, 10000) for s in range(0, 1000)]
    late = [draw_mode(cfg, s, 10000) for s in range(9000, 10000)]
    assert early.count("ar") < 100 and late.count("ar") > 900
    assert draw_mode(PseudoLabelConfig(mode="ctc_driven"), 5, 10) == "ctc_driven"


def test_ema_update_and_momentum_schedule():
    assert ema.momentum_at(0, 100) == pytest.approx(0.998)
    assert ema.momentum_at(50, 100) == pytest.approx(0.999)
    assert ema.momentum_at(100, 100) == pytest.approx(1.0)
    assert ema.momentum_at(500, 100) == pytest.approx(1.0)
    values = [ema.momentum_at(s, 100) for s in range(101)]
    assert values == sorted(values)
    student = torch.nn.Linear(3, 2)
    teacher = ema.make_teacher(student)
    assert not any(p.requires_grad for p in teacher.parameters())
    old = teacher.weight.clone()
    with torch.no_grad():
        student.weight.add_(1.0)
    ema.ema_update(teacher, student, 0.9)
    torch.testing.assert_close(teacher.weight, 0.9 * old + 0.1 * student.weight)


@pytest.mark.parametrize("before", ["train", "eval", "mixed"])
def test_teacher_mode_disables_dropout_only(before):
    """Every module of a real model, whatever mode each was in (the teacher goes through
    Lightning's train() and validation's eval()): BatchNorm on batch statistics, as USR's
    teacher, everything else (dropout, drop path) in eval mode."""
    torch.manual_seed(0)
    config = model_config("tiny", vocab_size=VOCAB, drop_path=0.3, audio_frontend="resnet")
    model = UnifiedModel(config)
    for i, module in enumerate(model.modules()):
        module.training = before == "train" or (before == "mixed" and i % 2 == 0)
    ema.set_teacher_mode(model)
    batch_norm = torch.nn.modules.batchnorm._BatchNorm
    batch_norms = {m for m in model.modules() if isinstance(m, batch_norm)}
    kinds = Counter(type(m).__name__ for m in model.modules())
    assert kinds["BatchNorm1d"] > 1 and kinds["BatchNorm2d"] > 1 and kinds["BatchNorm3d"] == 1
    assert kinds["Dropout"] > 1 and kinds["DropPath"] > 1  # several modules of each type
    wrong = [name for name, m in model.named_modules() if m.training != (m in batch_norms)]
    assert wrong == []
    # dropout off: the teacher's output repeats; BatchNorm on the batch: it is not eval()'s
    video, audio, lengths = torch.randn(2, 8, 44, 44), torch.randn(2, 8 * 640), torch.tensor([8, 6])
    with torch.no_grad():
        first = model.encode(video, audio, lengths)["av"]
        assert torch.equal(first, model.encode(video, audio, lengths)["av"])
        assert not torch.allclose(first, model.eval().encode(video, audio, lengths)["av"])


def test_token_confidence_rejects_confident_blanks_around_unsure_tokens(teacher, clean_batch):
    """A weak teacher: every frame a sure blank except two unsure tokens in a 16-frame clip.
    The all-frame mean (USR) accepts its 2-token label; the emitting frames reject it. A sure
    label passes both, and a label with no token at all is rejected."""
    video, audio, lengths = clean_batch
    logits = torch.full((3, 16, VOCAB), -10.0)
    logits[:, :, 0] = 10.0  # sure blanks
    logits[0, [4, 9], 0], logits[0, [4, 9], 3] = 0.0, 0.4  # two unsure tokens (p ~ 0.6)
    logits[1, [2, 6], 0], logits[1, [2, 6], 5] = -10.0, 10.0  # two sure tokens
    original = teacher.ctc_logits
    teacher.ctc_logits = lambda encoded, stream: logits[: encoded.shape[0], : encoded.shape[1]]
    try:
        usr = generate(
            teacher, video, audio, lengths, "ctc_driven", PseudoLabelConfig(token_confidence=False)
        )
        ours = generate(teacher, video, audio, lengths, "ctc_driven", PseudoLabelConfig())
    finally:
        teacher.ctc_logits = original
    assert usr.ctc_lengths.tolist() == [2, 2, 0]
    assert usr.ctc_keep.tolist() == [True, True, True]
    assert ours.ctc_keep.tolist() == [False, True, False]
