"""The model reproduces the official USR 2.0 model on the parity fixture, tensor by tensor."""

import pytest
import torch

from unisr.config import PRESETS, model_config
from unisr.model import UnifiedModel

ATOL = RTOL = 1e-4
STREAMS = ("v", "a", "av")


def close(actual, expected):
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=RTOL)


@pytest.fixture(scope="module")
def fixture_tensors(official_dir):
    names = ["encoder_outputs", "ctc_logprobs", "decoder_teacher_forced", "intermediates", "batch2"]
    return {name: torch.load(official_dir / f"{name}.pt") for name in names}


def test_frontends_and_projections(official_model, official_inputs, fixture_tensors):
    inter = fixture_tensors["intermediates"]
    video, audio = official_inputs["video"], official_inputs["audio"]
    with torch.no_grad():
        feats_v = official_model.encoder.frontend_v(video)
        feats_a = official_model.encoder.frontend_a(audio)
        close(feats_v, inter["frontend_v"])
        close(feats_a, inter["frontend_a"])
        projected = official_model.encoder.project(video, audio, None, STREAMS)
    for stream in STREAMS:
        close(projected[stream], inter[f"proj_{stream}"])


def test_encoder_blocks(official_model, official_inputs, fixture_tensors):
    inter = fixture_tensors["intermediates"]
    enc = official_model.encoder
    with torch.no_grad():
        projected = enc.project(official_inputs["video"], official_inputs["audio"], None, STREAMS)
        for stream in STREAMS:
            x = projected[stream] * enc.d_model**0.5
            close(x, inter[f"embed_x_{stream}"])
            length = x.shape[1]
            from unisr.model import sinusoids

            pos = sinusoids(torch.arange(length - 1, -length, -1), enc.d_model)[None]
            close(pos, inter["pos_emb"])
            for i, layer in enumerate(enc.encoders):
                x = layer(x, pos, None)
                close(x, inter[f"layer{i}_{stream}"])
            close(enc.after_norm(x), inter[f"final_{stream}"])


@pytest.mark.parametrize("batched", [True, False])
def test_encoder_outputs_and_ctc(official_model, official_inputs, fixture_tensors, batched):
    video, audio = official_inputs["video"], official_inputs["audio"]
    with torch.no_grad():
        if batched:  # the three streams through the shared encoder as one batch
            out = official_model.encode(video, audio)
        else:  # single-stream calls with only the needed inputs
            out = {
                s: official_model.encode(
                    video if "v" in s else None, audio if "a" in s else None, streams=(s,)
                )[s]
                for s in STREAMS
            }
        for stream in STREAMS:
            close(out[stream], fixture_tensors["encoder_outputs"][stream])
            close(out[stream], fixture_tensors["encoder_outputs"]["return_all"][stream])
            logp = official_model.ctc_logits(out[stream], stream).log_softmax(-1)
            close(logp, fixture_tensors["ctc_logprobs"][stream])


def test_decoder_teacher_forced_and_incremental(official_model, fixture_tensors):
    dec = fixture_tensors["decoder_teacher_forced"]
    enc = fixture_tensors["encoder_outputs"]
    prefix = dec["prefix"]
    with torch.no_grad():
        for stream in STREAMS:
            hidden = official_model.decoder(prefix, enc[stream])
            close(hidden, dec["hidden"][stream])
            close(official_model.decoder.output(hidden, stream), dec["logits"][stream])
            state = official_model.decoder.init_state(enc[stream])
            for i in range(prefix.shape[1]):
                step_hidden, state = official_model.decoder.step(prefix[:, i], state)
                close(step_hidden, hidden[:, i])


def test_padded_batch_matches_official_item0_and_our_unbatched_item1(
    official_model, official_inputs, fixture_tensors
):
    b2 = fixture_tensors["batch2"]
    video, audio, lengths = official_inputs["video_b2"], official_inputs["audio_b2"], b2["lengths"]
    valid = int(lengths[1])
    with torch.no_grad():
        out = official_model.encode(video, audio, lengths=lengths)
        alone = official_model.encode(video[1:, :valid], audio[1:, : valid * 640])
    for stream in STREAMS:
        close(out[stream][0], b2["encoder"][stream][0])
        logp = official_model.ctc_logits(out[stream], stream).log_softmax(-1)
        close(logp[0], b2["ctc_logprobs"][stream][0])
        # the official path leaks padding into item 1 through the audio front-end; ours does not
        close(out[stream][1, :valid], alone[stream][0])


def test_padding_never_leaks_on_random_model():
    torch.manual_seed(0)
    model = UnifiedModel(model_config("tiny", vocab_size=20, audio_frontend="resnet")).eval()
    lengths = torch.tensor([7, 4, 1])
    video = torch.randn(3, 7, 32, 32)
    audio = torch.randn(3, 7 * 640)
    with torch.no_grad():
        batched = model.encode(video * 1.0, audio * 1.0, lengths=lengths)
        # garbage in the padding must not matter
        video[1, 4:], audio[1, 4 * 640 :] = 100.0, 100.0
        noisy = model.encode(video, audio, lengths=lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = model.encode(video[i : i + 1, :n], audio[i : i + 1, : n * 640])
            for s in STREAMS:
                close(batched[s][i, :n], alone[s][0])
                close(noisy[s][i, :n], alone[s][0])


@pytest.mark.parametrize(
    "name,keys,millions", [("base", 671, 86.07), ("baseplus", 671, 171.14), ("large", 1001, 503.40)]
)
def test_official_presets_have_official_shapes(name, keys, millions):
    with torch.device("meta"):
        model = UnifiedModel(PRESETS[name])
    assert len(model.state_dict()) == keys
    assert round(model.num_parameters() / 1e6, 2) == millions


def test_huge_preset_shape():
    with torch.device("meta"):
        model = UnifiedModel(PRESETS["huge"])
    assert len(model.state_dict()) == 1169
    assert round(model.num_parameters() / 1e6, 2) == 945.49


def test_cpu_presets_are_configurable():
    cfg = model_config("tiny", frontend_width=16, image_size=44, d_model=64, heads=2)
    model = UnifiedModel(cfg).eval()
    with torch.no_grad():
        out = model.encode(torch.randn(2, 5, 44, 44), torch.randn(2, 5 * 640))
    assert out["av"].shape == (2, 5, 64)
    assert model.encoder.frontend_v.out_dim == 128


def test_av_length_mismatch_is_a_clear_error():
    from unisr.errors import UnisrError

    model = UnifiedModel(model_config("tiny", vocab_size=20)).eval()
    with pytest.raises(UnisrError, match="640 samples per video frame"):
        model.encode(torch.randn(1, 5, 32, 32), torch.randn(1, 4 * 640), streams=("av",))


def test_drop_path_and_dropout_only_in_training():
    torch.manual_seed(0)
    model = UnifiedModel(model_config("tiny", vocab_size=20, drop_path=0.5))
    video, audio = torch.randn(2, 6, 32, 32), torch.randn(2, 6 * 640)
    model.train()
    a = model.encode(video, audio, streams=("a",))["a"]
    b = model.encode(video, audio, streams=("a",))["a"]
    assert not torch.allclose(a, b)
    model.eval()
    with torch.no_grad():
        a = model.encode(video, audio, streams=("a",))["a"]
        b = model.encode(video, audio, streams=("a",))["a"]
    assert torch.equal(a, b)
