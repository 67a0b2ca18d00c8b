"""The log-mel filterbank audio front-end: features, padding, checkpoints."""

import math

import torch

from unisr import load_model
from unisr.checkpoint import save_checkpoint
from unisr.config import ModelConfig, model_config
from unisr.frontends import AudioFrontend, FbankFrontend, mel_filterbank
from unisr.model import STREAMS, UnifiedModel
from unisr.tokenizer import Tokenizer


def test_a_pure_tone_peaks_in_the_mel_bin_of_its_frequency():
    filters = mel_filterbank(80, 400, 16000)  # (201, 80)
    frontend = FbankFrontend(channels=8)
    t = torch.arange(10 * 640) / 16000
    for hz in (300.0, 1000.0, 4000.0):
        tone = torch.sin(2 * math.pi * hz * t)[None]
        feats = frontend.log_mel(tone, torch.tensor([10]))  # (1, 80, 40)
        assert feats.shape == (1, 80, 40)
        expected = int(filters[round(hz / 40)].argmax())  # FFT bins are 40 Hz apart
        assert abs(int(feats[0, :, 20].argmax()) - expected) <= 1


def test_features_are_normalised_per_utterance_over_valid_frames_only():
    frontend = FbankFrontend(channels=8)
    audio = torch.randn(2, 6 * 640)
    lengths = torch.tensor([6, 3])
    feats = frontend.features(audio, lengths)
    short = feats[1, :, : 3 * 4]
    torch.testing.assert_close(short.mean(-1), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(short.std(-1, unbiased=False), torch.ones(80), atol=1e-2, rtol=0)
    assert feats[1, :, 12:].abs().max() == 0  # padding frames are zero
    louder = frontend.features(audio * 7.0, lengths)  # gain is normalised away
    torch.testing.assert_close(louder, feats, atol=1e-3, rtol=0)


def test_fbank_model_padding_never_leaks():
    torch.manual_seed(0)
    model = UnifiedModel(model_config("tiny", vocab_size=20, audio_frontend="fbank")).eval()
    assert isinstance(model.encoder.frontend_a, FbankFrontend)
    lengths = torch.tensor([7, 4, 1])
    video = torch.randn(3, 7, 32, 32)
    audio = torch.randn(3, 7 * 640)
    with torch.no_grad():
        batched = model.encode(video, audio, lengths=lengths)
        audio[1, 4 * 640 :], video[1, 4:] = 100.0, 100.0  # garbage in the padding
        noisy = model.encode(video, audio, lengths=lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = model.encode(video[i : i + 1, :n], audio[i : i + 1, : n * 640])
            for s in STREAMS:
                torch.testing.assert_close(batched[s][i, :n], alone[s][0], atol=1e-5, rtol=1e-4)
                torch.testing.assert_close(noisy[s][i, :n], alone[s][0], atol=1e-5, rtol=1e-4)


def test_checkpoint_records_and_restores_the_audio_frontend(tmp_path):
    torch.manual_seed(0)
    tokenizer = Tokenizer([f"P{i}" for i in range(17)])
    model = UnifiedModel(
        model_config("tiny", vocab_size=tokenizer.vocab_size, audio_frontend="fbank")
    ).eval()
    save_checkpoint(tmp_path / "fbank.pt", model, tokenizer)
    loaded = load_model(tmp_path / "fbank.pt")
    assert loaded.config.audio_frontend == "fbank"
    assert isinstance(loaded.encoder.frontend_a, FbankFrontend)
    audio = torch.randn(1, 5 * 640)
    with torch.no_grad():
        expected = model.encode(audio=audio, streams=("a",))["a"]
        torch.testing.assert_close(loaded.encode(audio=audio, streams=("a",))["a"], expected)


def test_configs_without_the_field_keep_the_official_frontend():
    config = ModelConfig.from_dict(
        {k: v for k, v in model_config("tiny").to_dict().items() if k != "audio_frontend"}
    )
    assert config.audio_frontend == "resnet"
    assert isinstance(UnifiedModel(config).encoder.frontend_a, AudioFrontend)


def test_frequency_masks_only_in_training():
    torch.manual_seed(0)
    frontend = FbankFrontend(channels=8, freq_masks=2)
    features = frontend.features(torch.randn(4, 6 * 640))
    masked = frontend.mask_frequencies(features)
    rows = (masked == 0).all(-1)  # (B, n_mels): whole mel bins zeroed over time
    assert rows.any(1).all() and (rows.sum(1) <= 2 * FbankFrontend.FREQ_MASK_WIDTH).all()
    kept = ~rows
    assert torch.equal(masked[kept], features[kept])
    audio = torch.randn(2, 6 * 640)
    frontend.eval()
    torch.testing.assert_close(frontend(audio), frontend(audio))
    frontend.train()
    assert not torch.allclose(frontend(audio), frontend(audio))
