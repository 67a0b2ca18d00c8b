"""The checks a GPU machine runs (``make gpu-check``): parity of the device with the CPU (and
with the official outputs when the fixture is there), padded batches, bf16 training steps in
every mode, and DDP on one device. They run on ``UNISR_TEST_DEVICE`` ("cuda" there; ``make
gpu-check DRY=1`` runs them on "cpu") and are skipped when it is unset."""

from __future__ import annotations

import math
import os

import lightning.pytorch as pl
import pytest
import torch
from conftest import load_benchmark
from fitted import padded
from lightning.pytorch.strategies import DDPStrategy

from unisr.config import model_config
from unisr.decoding import DecodingOptions, decode_encoded
from unisr.model import UnifiedModel
from unisr.step import TrainBatch
from unisr.train import Batches, USRModule

DEVICE = os.environ.get("UNISR_TEST_DEVICE")
pytestmark = pytest.mark.skipif(
    DEVICE is None or (DEVICE == "cuda" and not torch.cuda.is_available()),
    reason="the device checks run under make gpu-check (UNISR_TEST_DEVICE)",
)
MODES = ("supervised", "usr1", "ar", "ctc_driven", "mixed")


@pytest.fixture(scope="module")
def device() -> torch.device:
    return torch.device(DEVICE)


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("train_step")


def test_official_encoder_outputs_on_the_device(
    official_model, official_inputs, official_dir, device
):
    want = torch.load(official_dir / "encoder_outputs.pt")
    model = official_model.to(device)
    try:
        video, audio = official_inputs["video"].to(device), official_inputs["audio"].to(device)
        with torch.no_grad():
            got = model.encode(video, audio)
        for stream in ("v", "a", "av"):
            torch.testing.assert_close(got[stream].cpu(), want[stream], atol=2e-3, rtol=1e-3)
    finally:
        official_model.cpu()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = UnifiedModel(model_config("tiny", vocab_size=40, enc_layers=2)).eval()
    with torch.no_grad():
        model.ctc_av.ctc_lo.bias[0] += 2.0  # hypotheses of several lengths
        model.decoder.out_layer_av.bias[model.config.eos] += 0.3
    lengths = torch.tensor([40, 23, 31, 9])
    video = torch.randn(4, 40, 32, 32)
    audio = 0.1 * torch.randn(4, 40 * 640)
    return model, video, audio, lengths


def test_device_matches_the_cpu_and_padded_batches_match_single_utterances(tiny, device):
    model, video, audio, lengths = tiny
    options = DecodingOptions(beam_size=4, ctc_weight=0.3, maxlenratio=0.5, nbest=None)
    with torch.no_grad():
        cpu = model.encode(video, audio, lengths, streams=("av",))["av"]
        gpu_model = UnifiedModel(model.config).eval().to(device)
        gpu_model.load_state_dict(model.state_dict())
        on_device = gpu_model.encode(video.to(device), audio.to(device), lengths.to(device),
                                     streams=("av",))["av"]  # fmt: skip
    valid = torch.arange(40)[None] < lengths[:, None]
    torch.testing.assert_close(on_device.cpu()[valid], cpu[valid], atol=1e-3, rtol=1e-3)
    batched = decode_encoded(gpu_model, on_device, lengths.to(device), "av", options)
    reference = decode_encoded(model, cpu, lengths, "av", options)
    for nbest, want, item, n in zip(batched, reference, on_device, lengths.tolist()):
        [single] = decode_encoded(gpu_model, item[None, :n], None, "av", options)
        assert [h.tokens for h in nbest] == [h.tokens for h in single]
        assert [h.tokens for h in nbest][:1] == [h.tokens for h in want][:1]
        assert nbest[0].score == pytest.approx(single[0].score, abs=1e-3)


def step_inputs(bench, mode: str, device: torch.device):
    from dataclasses import replace

    cfg = bench.step_config(mode, total_steps=2)
    cfg = replace(cfg, pl=replace(cfg.pl, threshold=0.0))
    model_cfg = model_config("tiny", vocab_size=12, enc_layers=1, dec_layers=1)
    lab = padded(bench.synthetic_batch(90, 30, model_cfg, True, 1, "cpu"), [30, 22, 17])
    unlab = padded(bench.synthetic_batch(120, 30, model_cfg, False, 2, "cpu"), [30, 25, 19, 12])
    unlab = unlab.to(device) if mode != "supervised" else None
    return cfg, model_cfg, TrainBatch(lab.to(device), unlab, {"epoch": 0})


@pytest.mark.parametrize("mode", MODES)
def test_bf16_training_steps_on_the_device(bench, mode, device):
    cfg, model_cfg, batch = step_inputs(bench, mode, device)
    torch.manual_seed(0)
    learner = bench.make_learner(model_cfg, cfg, device)
    results = bench.run_steps(learner, batch, cfg, device, bf16=True)
    assert all(r.applied for r in results)
    for r in results:
        assert all(math.isfinite(float(v)) for k, v in r.logs.items() if k.startswith("loss/"))
    assert all(p.dtype == torch.float32 for p in learner.model.parameters())


def test_ddp_on_one_device(bench, device, tmp_path):
    cfg, model_cfg, batch = step_inputs(bench, "mixed", device)
    torch.manual_seed(0)
    module = USRModule(cfg, model_cfg, tokenizer=None)
    module.log_dict = lambda *a, **kw: None
    module.log = lambda *a, **kw: None
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    trainer = pl.Trainer(
        max_steps=2, accelerator=accelerator, devices=1, precision="bf16-mixed",
        strategy=DDPStrategy(find_unused_parameters=True), logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, default_root_dir=tmp_path,
    )  # fmt: skip
    try:
        trainer.fit(module, train_dataloaders=Batches([batch, batch]))
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    assert module.global_step == 2 and module.skipped_steps == 0
