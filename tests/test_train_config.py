"""Training configs: packaged recipes, dotted overrides, and errors that name the bad key."""

import pytest

from unisr.errors import UnisrError
from unisr.train import lr_factor
from unisr.train_config import CONFIG_DIR, apply_override, load_config


def test_every_packaged_recipe_loads():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"synth_demo", "synth_small", "base_lrs3_low"} <= set(names)
    for name in names:
        cfg = load_config(name)
        cfg.model_config(vocab_size=100)  # the model section is valid


def test_paper_recipe_values():
    cfg = load_config("base_lrs3_low")
    assert (cfg.optim.epochs, cfg.optim.warmup_epochs, cfg.optim.lr) == (50, 15, 3e-3)
    assert (cfg.data.frames_per_batch, cfg.data.frames_per_batch_unlabelled) == (600, 4400)
    assert cfg.optim.betas == (0.9, 0.98) and cfg.optim.weight_decay == 0.04
    assert cfg.model_config(1049).drop_path == 0.1 and cfg.pl.mode == "mixed"
    large = load_config("large_lrs3vox2_high")
    assert large.model_config(1049).d_model == 1024 and large.model_config(1049).drop_path == 0.2
    assert (large.data.frames_per_batch, large.data.frames_per_batch_unlabelled) == (1200, 3200)


def test_overrides_are_typed_and_nested():
    cfg = load_config(
        "synth_demo",
        [
            "optim.lr=1e-3",
            "optim.betas=[0.8,0.9]",
            "pl.mode=ar",
            "model.drop_path=0.2",
            "data.augment.flip_prob=0",
            "loss.stream_weights={v: 1.0, a: 0.5, av: 0.5}",
            "init.checkpoint=null",
        ],
    )
    assert cfg.optim.lr == 1e-3 and cfg.optim.betas == (0.8, 0.9)
    assert cfg.pl.mode == "ar" and cfg.model_config(50).drop_path == 0.2
    assert cfg.data.augment.flip_prob == 0.0 and cfg.loss.stream_weights["v"] == 1.0
    assert cfg.init.checkpoint is None


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=1", "unknown key(s) lrr"),
        ("trainer.seed=abc", "trainer.seed: expected a number"),
        ("optim.max_steps=1.5", "expected an integer"),
        ("model.widht=3", "unknown model keys ['widht']"),
        ("pl.mode=foo", "pl.mode must be one of"),
        ("nosection.x=1", "unknown key(s) nosection"),
        ("optim.lr", "not of the form key=value"),
        ("trainer.progress_bar=maybe", "expected true or false"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(UnisrError, match=None) as err:
        load_config("synth_demo", [override])
    assert message in str(err.value)


def test_unknown_config_name_lists_recipes(tmp_path):
    with pytest.raises(UnisrError, match="synth_demo"):
        load_config("no_such_recipe")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2]\n")
    with pytest.raises(UnisrError, match="optim: expected a mapping"):
        load_config(bad)


def test_override_into_non_section_fails():
    data = {"optim": 3}
    with pytest.raises(UnisrError, match="optim is not a section"):
        apply_override(data, "optim.lr=1")


def test_lr_warmup_then_cosine():
    f = [lr_factor(s, warmup=4, total=12, final=0.1) for s in range(14)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(f[4:], f[5:]))  # decreasing after warm-up
    assert f[12] == pytest.approx(0.1) and f[13] == pytest.approx(0.1)
    assert f[8] == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the cosine
