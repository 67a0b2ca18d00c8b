"""Training runs of a few steps on a tiny corpus: supervised and semi-supervised modes, logs and
outputs, NaN skipping, exact resume after a crash, checkpoint averaging, initialisation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_corpus import make_corpus, metrics, overrides

import unisr.step as step_module
import unisr.train as train_module
from unisr.average import average_checkpoints, student_state
from unisr.checkpoint import load_model, read_checkpoint, save_checkpoint
from unisr.cli import main as cli_main
from unisr.config import ModelConfig
from unisr.errors import UnisrError
from unisr.model import UnifiedModel
from unisr.pseudo_labels import draw_mode
from unisr.train import train
from unisr.train_config import InitSection, load_config


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def run(corpus, out: Path, semi: bool = True, resume=None, callbacks=(), **extra):
    cfg = load_config(None, overrides(corpus, out, semi=semi, **extra))
    return train(cfg, resume=resume, callbacks=callbacks)


@pytest.fixture(scope="module")
def mixed_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed")
    return run(corpus, out), out


def test_mixed_run_logs_outputs_and_modes(mixed_run):
    module, out = mixed_run
    assert module.global_step == 6 and module.skipped_steps == 0
    rows = metrics(out)
    steps = [r for r in rows if "loss/total" in r]
    assert len(steps) == 6
    for key in (
        "loss/labelled/v",
        "loss/labelled/av/ctc",
        "loss/unlabelled/a/att",
        "pl/ctc_accept",
        "pl/att_len",
        "time/pseudo_labels",
        "time/rest",
        "speed/frames_per_s",
        "train/lr",
        "train/momentum",
    ):
        assert all(key in r for r in steps), key
    # the mode of each step is the shared deterministic draw (total steps 6, seed 7)
    cfg = module.cfg
    drawn = [float(draw_mode(cfg.pl, s, 6, 7) == "ar") for s in range(6)]
    assert [float(r["pl/ar_mode"]) for r in steps] == drawn
    assert {"val/wer_v", "val/wer_a", "val/wer_av"} <= set().union(*rows)
    # outputs: final student and teacher, the average of the last two checkpoints
    assert sorted(p.name for p in (out / "checkpoints").glob("*.ckpt")) == [
        "step-00000002.ckpt",
        "step-00000004.ckpt",
        "step-00000006.ckpt",
    ]
    student = load_model(out / "model.pt")
    teacher = load_model(out / "teacher.pt")
    assert student.tokenizer.vocab_size == student.config.vocab_size
    diff = [(a - b).abs().max() for a, b in zip(student.parameters(), teacher.parameters())]
    assert max(diff) > 0  # the teacher is an average, not a copy
    assert load_model(out / "model_avg.pt").config == student.config
    assert (out / "config.yaml").is_file()
    assert list((out / "tensorboard").glob("version_0/events.out.tfevents.*"))


def test_average_of_checkpoints_is_the_mean(mixed_run, tmp_path):
    _, out = mixed_run
    paths = [out / "checkpoints" / f"step-0000000{k}.ckpt" for k in (4, 6)]
    states = [student_state(read_checkpoint(p)) for p in paths]
    average_checkpoints(paths, tmp_path / "avg.pt")
    averaged = read_checkpoint(tmp_path / "avg.pt")["model"]
    key = "encoder.linear_av.weight"
    assert torch.allclose(averaged[key], (states[0][key] + states[1][key]) / 2)
    assert not torch.equal(states[0][key], states[1][key])
    saved = read_checkpoint(out / "model_avg.pt")["model"]
    assert torch.equal(saved[key], averaged[key])


def test_usr1_mode_trains_its_extra_heads(corpus, tmp_path):
    module = run(corpus, tmp_path, **{"pl.mode": "usr1", "optim.max_steps": 2})
    assert module.heads is not None
    optimised = {id(p) for g in module.optimizers().optimizer.param_groups for p in g["params"]}
    assert all(id(p) in optimised for p in module.heads.parameters())
    rows = [r for r in metrics(tmp_path) if "pl/frame_accept" in r]
    assert len(rows) == 2 and all(r["pl/ar_mode"] == "1.0" for r in rows)


class Crash(RuntimeError):
    pass


class CrashAfter(train_module.pl.Callback):
    """Simulates a killed job: raises at the end of a given step."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise Crash(f"killed after step {self.step}")


def test_resume_after_crash_matches_uninterrupted_run(corpus, mixed_run, tmp_path):
    reference, _ = mixed_run
    with pytest.raises(Crash):
        run(corpus, tmp_path, callbacks=(CrashAfter(5),))  # last checkpoint: step 4
    assert (tmp_path / "checkpoints" / "step-00000004.ckpt").is_file()
    assert not (tmp_path / "model.pt").exists()
    resumed = run(corpus, tmp_path, resume="auto")
    assert resumed.global_step == 6
    for name in ("model", "teacher"):
        ours = getattr(resumed, name).state_dict()
        for key, value in getattr(reference, name).state_dict().items():
            torch.testing.assert_close(ours[key], value, rtol=1e-6, atol=1e-7, msg=key)
    ours = resumed.optimizers().optimizer.state_dict()["state"]
    theirs = reference.optimizers().optimizer.state_dict()["state"]
    torch.testing.assert_close(ours[0]["exp_avg_sq"], theirs[0]["exp_avg_sq"])


def test_non_finite_loss_skips_the_step(corpus, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = step_module.labelled_losses

    def poisoned(model, batch, cfg):
        calls["n"] += 1
        losses = real(model, batch, cfg)
        if calls["n"] == 2:
            losses = {k: v * float("nan") for k, v in losses.items()}
        return losses

    monkeypatch.setattr(step_module, "labelled_losses", poisoned)
    module = run(corpus, tmp_path, semi=False, **{"optim.max_steps": 3})
    assert module.global_step == 3 and module.skipped_steps == 1 and calls["n"] == 4
    assert all(torch.isfinite(p).all() for p in module.model.parameters())
    assert module.teacher is None and not (tmp_path / "teacher.pt").exists()
    skipped = [
        float(r["train/skipped_steps"]) for r in metrics(tmp_path) if "train/skipped_steps" in r
    ]
    assert max(skipped) == 1.0


def test_initialise_full_and_encoder_only(mixed_run, official_dir, tmp_path):
    module, out = mixed_run
    fresh = UnifiedModel(module.model.config)
    train_module.initialise(fresh, InitSection(checkpoint=str(out / "model.pt")))
    for (key, a), b in zip(fresh.state_dict().items(), module.model.state_dict().values()):
        assert torch.equal(a, b), key
    # a training checkpoint works too, encoder only: the decoder keeps its own weights
    fresh = UnifiedModel(module.model.config)
    before = fresh.decoder.embed[0].weight.clone()
    ckpt = out / "checkpoints" / "step-00000006.ckpt"
    train_module.initialise(fresh, InitSection(checkpoint=str(ckpt), encoder_only=True))
    assert torch.equal(fresh.decoder.embed[0].weight, before)
    assert torch.equal(fresh.encoder.linear_a.weight, module.model.encoder.linear_a.weight)
    # official .pth, encoder only, into a model of another vocabulary
    official = load_model(
        official_dir / "tiny_model.pth", units=official_dir / "unigram1000_units.txt"
    )
    config = ModelConfig(**{**official.config.to_dict(), "vocab_size": 40})
    fresh = UnifiedModel(config)
    pth = str(official_dir / "tiny_model.pth")
    train_module.initialise(fresh, InitSection(checkpoint=pth, encoder_only=True))
    assert torch.equal(fresh.encoder.encoders[0].self_attn.linear_q.weight,
                       official.encoder.encoders[0].self_attn.linear_q.weight)  # fmt: skip
    with pytest.raises(UnisrError, match="ctc_v.ctc_lo.weight"):  # the vocabulary differs
        train_module.initialise(fresh, InitSection(checkpoint=pth))


def test_initialise_reports_mismatched_shapes(mixed_run, tmp_path):
    module, _ = mixed_run
    other = UnifiedModel(ModelConfig(**{**module.model.config.to_dict(), "d_model": 32}))
    save_checkpoint(tmp_path / "other.pt", other, module.tokenizer)
    with pytest.raises(UnisrError, match=r"mis-shaped \(\d+\): encoder\.\S+: file \(.*\) vs model"):
        train_module.initialise(
            UnifiedModel(module.model.config),
            InitSection(checkpoint=str(tmp_path / "other.pt"), encoder_only=True),
        )


def test_cli_prints_config_and_rejects_bad_keys(capsys):
    assert cli_main(["train", "synth_demo", "optim.lr=0.01", "--print-config"]) == 0
    assert "lr: 0.01" in capsys.readouterr().out
    assert cli_main(["train", "synth_demo", "optim.nope=1"]) == 2
    assert "unknown key(s) nope" in capsys.readouterr().err


def test_a_starved_pseudo_labelling_phase_is_named(corpus, tmp_path, recwarn):
    """One cosine over 8 steps leaves steps 6-7 16 % of the peak on average: the run says so and
    names the two-run form; starting at step 2 leaves enough, and nothing is said."""
    with pytest.warns(UserWarning, match=r"teacher\.start_step=6: .* 2 pseudo-labelling steps "
                      r"16% of the peak .*\(init\.checkpoint=SEED"):  # fmt: skip
        run(corpus, tmp_path / "late", **{"optim.max_steps": 8, "teacher.start_step": 6})
    recwarn.clear()
    run(corpus, tmp_path / "early", **{"optim.max_steps": 8, "teacher.start_step": 2})
    assert not [w for w in recwarn if "teacher.start_step" in str(w.message)]
