"""The training step as a plain function: the trainer (under Lightning) and the step benchmark
run the same step, and it works without Lightning."""

from __future__ import annotations

from dataclasses import replace

import lightning.pytorch as pl
import pytest
import torch
from conftest import load_benchmark

from unisr.config import model_config
from unisr.step import TrainBatch
from unisr.train import Batches, USRModule


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("train_step")


def model_and_batch(bench, mode: str):
    cfg = bench.step_config(mode, total_steps=2)
    model_cfg = model_config("tiny", vocab_size=12, enc_layers=1, dec_layers=1)
    lab = bench.synthetic_batch(90, 30, model_cfg, True, 1, torch.device("cpu"))
    unlab = bench.synthetic_batch(120, 30, model_cfg, False, 2, torch.device("cpu"))
    batch = TrainBatch(lab, unlab if mode != "supervised" else None, {"epoch": 0})
    return cfg, model_cfg, batch


@pytest.mark.parametrize("mode", ["supervised", "ctc_driven", "ar"])
def test_benchmark_and_trainer_take_the_same_step(bench, mode, tmp_path):
    cfg, model_cfg, batch = model_and_batch(bench, mode)
    torch.manual_seed(0)
    learner = bench.make_learner(model_cfg, cfg, torch.device("cpu"))
    results = bench.run_steps(learner, batch, cfg, torch.device("cpu"))

    torch.manual_seed(0)
    module = USRModule(cfg, model_cfg, tokenizer=None)
    logged = []
    module.log_dict = lambda logs, **kw: logged.append(dict(logs))  # what the trainer logs
    trainer = pl.Trainer(
        max_steps=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=Batches([batch, batch]))

    step_logs = [x for x in logged if "loss/labelled" in x]
    assert len(step_logs) == len(results) == 2
    for ours, theirs in zip(step_logs, results):
        for key in ("loss/labelled", "loss/unlabelled", "loss/labelled/av/ctc", "train/lr",
                    "train/momentum", "pl/ctc_len"):  # fmt: skip
            if key in theirs.logs:
                assert float(ours[key]) == pytest.approx(float(theirs.logs[key]), rel=1e-6), key
    assert ("loss/unlabelled" in results[0].logs) == (mode != "supervised")
    for (name, ours), theirs in zip(
        module.model.state_dict().items(), learner.model.state_dict().values()
    ):  # noqa: E501
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=name)


def test_a_non_finite_loss_skips_the_step_without_touching_the_weights(bench):
    cfg, model_cfg, batch = model_and_batch(bench, "ctc_driven")
    cfg = replace(cfg, optim=replace(cfg.optim, max_steps=1))
    torch.manual_seed(0)
    learner = bench.make_learner(model_cfg, cfg, torch.device("cpu"))
    before = {k: v.clone() for k, v in learner.model.named_parameters()}
    batch.labelled.audio[0, 0] = float("nan")
    result = bench.run_steps(learner, batch, cfg, torch.device("cpu"))[0]
    assert not result.applied
    after = dict(learner.model.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics aside
    assert all(p.grad is None for p in learner.trainable())
