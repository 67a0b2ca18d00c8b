"""Training configs: packaged recipes, dotted overrides, and errors that name the bad key;
what a recipe must say (required keys, the supervision, the keys the model sets)."""

import copy
from pathlib import Path

import pytest
import yaml

from unisr.errors import UnisrError
from unisr.step import lr_factor
from unisr.train import USRDataModule, plain
from unisr.train_config import CONFIG_DIR, apply_override, config_path, load_config, placeholders

PAPER = ["base_lrs3_low", "baseplus_lrs3vox2_high", "baseplus_lrs3vox2_low", "huge_all_high",
         "large_lrs3vox2_high", "large_lrs3vox2_low"]  # fmt: skip
PAPER_GIVEN = ["data.labelled", "data.unlabelled", "data.val", "data.tokenizer", "init.checkpoint"]


def command_of(name: str) -> str:
    return "pretrain" if name.endswith("_pretrain") else "train"


def given(name: str) -> list[str]:
    """Command-line values for the keys a packaged recipe leaves to the command line (???)."""
    recipe = yaml.safe_load(config_path(name).read_text())
    return [f"{key}=given/{key}" for key in placeholders(recipe)]


def test_every_packaged_recipe_loads_with_what_it_asks_for():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"synth_demo", "synth_small", "base_lrs3_low", *PAPER} <= set(names)
    for name in names:
        items = given(name)
        cfg = load_config(name, items, command_of(name))
        for item in items:  # every given value lands where the recipe asked for it
            key, value = item.split("=")
            section, attr = key.split(".")
            assert getattr(getattr(cfg, section), attr) == value, item
        cfg.model_config(vocab_size=100)  # the model section is valid
    assert given("synth_demo") == [] and given("synth_pretrain") == []  # they run as they are
    assert given("base_lrs3_pretrain") == ["data.unlabelled=given/data.unlabelled",
                                           "data.tokenizer=given/data.tokenizer"]  # fmt: skip


@pytest.mark.parametrize("name", PAPER)
def test_paper_recipes_need_the_data_and_the_pretrained_encoder_from_the_command_line(name):
    with pytest.raises(UnisrError) as err:
        load_config(name)
    message = str(err.value)
    assert message.startswith(f"{name}.yaml: ") and message.count(" is required") == 5
    for key in PAPER_GIVEN:
        assert f"{key} is required" in message and f" {key}=..." in message
    data = [item for item in given(name) if not item.startswith("init.")]
    with pytest.raises(UnisrError) as err:  # the pre-trained encoder is never dropped silently
        load_config(name, data)
    assert str(err.value) == (
        f"{name}.yaml: init.checkpoint is required (the checkpoint to start from, or null to "
        "train from scratch); set it on the command line: init.checkpoint=..."
    )
    scratch = load_config(name, [*data, "init.checkpoint=null"])  # from scratch, by choice
    assert scratch.init.checkpoint is None
    cfg = load_config(name, [*data, "init.checkpoint=ssl.pt"])
    assert cfg.init.checkpoint == "ssl.pt" and cfg.init.encoder_only and cfg.pl.mode == "mixed"


def test_paper_recipe_values():
    cfg = load_config("base_lrs3_low", given("base_lrs3_low"))
    assert (cfg.optim.epochs, cfg.optim.warmup_epochs, cfg.optim.lr) == (50, 15, 3e-3)
    assert (cfg.data.frames_per_batch, cfg.data.frames_per_batch_unlabelled) == (600, 4400)
    assert cfg.optim.betas == (0.9, 0.98) and cfg.optim.weight_decay == 0.04
    assert cfg.model_config(1049).drop_path == 0.1 and cfg.pl.mode == "mixed"
    large = load_config("large_lrs3vox2_high", given("large_lrs3vox2_high"))
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


# ---------------------------------------------------------------- what a recipe must say

COMPLETE = {  # the least a recipe says for each command
    "train": {
        "data": {"labelled": "l.tsv", "unlabelled": "u.tsv", "val": None, "tokenizer": "t.model"},
        "pl": {"mode": "mixed"},
        "init": {"checkpoint": None},
    },
    "pretrain": {"data": {"unlabelled": "u.tsv", "tokenizer": "t.model"}},
}
REQUIRED = [("train", "data.labelled"), ("train", "data.val"), ("train", "data.tokenizer"),
            ("train", "pl.mode"), ("train", "init.checkpoint"), ("pretrain", "data.unlabelled"),
            ("pretrain", "data.tokenizer")]  # fmt: skip


def write_recipe(tmp_path, recipe: dict):
    path = tmp_path / "my_recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("command", ["train", "pretrain"])
def test_the_least_a_recipe_says_loads(tmp_path, command):
    cfg = load_config(write_recipe(tmp_path, COMPLETE[command]), command=command)
    assert cfg.data.unlabelled == "u.tsv" and cfg.data.tokenizer == "t.model"


@pytest.mark.parametrize(
    "command, key, how",
    [(*ck, how) for ck in REQUIRED for how in ("left out", "empty", "???")
     if ck[1] != "pl.mode" or how != "empty"],  # an empty pl.mode is a bad mode
)  # fmt: skip
def test_a_missing_required_key_names_the_recipe_and_the_key(tmp_path, command, key, how):
    recipe = copy.deepcopy(COMPLETE[command])
    section, name = key.split(".")
    if how == "left out":
        del recipe[section][name]
    else:
        recipe[section][name] = "" if how == "empty" else "???"
    path = write_recipe(tmp_path, recipe)
    with pytest.raises(UnisrError) as err:
        load_config(path, command=command)
    message = str(err.value)
    assert message.startswith(f"{path}: {key} is required (")
    assert message.count(" is required") == 1
    assert message.endswith(f"; set it on the command line: {key}=...")
    value = "ar" if key == "pl.mode" else "given"
    assert load_config(path, [f"{key}={value}"], command) is not None  # the command line gives it


def test_pretraining_needs_no_labels_and_training_does():
    with pytest.raises(UnisrError) as err:
        load_config(None, ["data.unlabelled=u.tsv", "data.tokenizer=t.model"])
    for key in ("data.labelled", "data.val", "pl.mode", "init.checkpoint"):
        assert f"{key} is required" in str(err.value)
    assert str(err.value).startswith("(no recipe): ")
    load_config(None, ["data.unlabelled=u.tsv", "data.tokenizer=t.model"], "pretrain")


@pytest.mark.parametrize("mode", ["ctc_driven", "ar", "mixed", "usr1"])
def test_a_pseudo_labelling_mode_without_unlabelled_data_is_an_error(tmp_path, mode):
    recipe = copy.deepcopy(COMPLETE["train"])
    recipe["pl"]["mode"] = mode
    del recipe["data"]["unlabelled"]
    for path, items in (
        (write_recipe(tmp_path, recipe), []),
        ("synth_demo", ["data.unlabelled=null"]),
    ):
        with pytest.raises(UnisrError) as err:
            load_config(path, [f"pl.mode={mode}", *items])
        name = path if items == [] else "synth_demo.yaml"
        assert str(err.value).startswith(
            f"{name}: pl.mode {mode} pseudo-labels data.unlabelled, which is not set"
        )
        assert "pl.mode=supervised" in str(err.value)


def test_supervised_training_is_said_and_takes_no_unlabelled_data():
    cfg = load_config("synth_demo", ["pl.mode=supervised", "data.unlabelled=null"])
    assert cfg.pl.mode == "supervised" and cfg.data.unlabelled is None
    with pytest.raises(UnisrError) as err:  # the unlabelled set would be ignored
        load_config("synth_demo", ["pl.mode=supervised"])
    assert str(err.value).startswith(
        "synth_demo.yaml: data.unlabelled is set but pl.mode is supervised, which would ignore it"
    )


@pytest.mark.parametrize(
    "key, instead", [("crop", "model.crop_size"), ("resize", "model.image_size")]
)
def test_crop_keys_follow_the_model_and_cannot_be_set(tmp_path, key, instead):
    expected = f"data.augment.{key} cannot be set: the training crops follow the model"
    with pytest.raises(UnisrError) as err:
        load_config("synth_demo", [f"data.augment.{key}=80"])
    assert str(err.value).startswith(f"synth_demo.yaml: {expected}")
    assert str(err.value).endswith(f"set {instead} instead")
    recipe = {**copy.deepcopy(COMPLETE["train"]), "model": {"preset": "tiny"}}
    recipe["data"]["augment"] = {key: 80, "flip_prob": 0.0}
    path = write_recipe(tmp_path, recipe)
    with pytest.raises(UnisrError, match=f"^{path}: {expected}"):
        load_config(path)


def test_the_model_keys_set_the_training_crops():
    cfg = load_config("synth_demo", ["model.crop_size=80", "model.image_size=32"])
    data = USRDataModule(cfg, cfg.model_config(vocab_size=50), tokenizer=None)
    assert (data.data_cfg.augment.crop, data.data_cfg.augment.resize) == (80, 32)
    same = load_config("synth_demo", ["model.image_size=88"])
    data = USRDataModule(same, same.model_config(vocab_size=50), tokenizer=None)
    assert (data.data_cfg.augment.crop, data.data_cfg.augment.resize) == (88, None)


@pytest.mark.parametrize(
    "name, items",
    [("synth_demo", []), ("synth_demo", ["pl.mode=supervised", "data.unlabelled=null"]),
     ("base_lrs3_low", given("base_lrs3_low")),
     ("base_lrs3_pretrain", given("base_lrs3_pretrain"))],
)  # fmt: skip
def test_a_written_config_loads_back_as_the_same_config(tmp_path, name, items):
    """What the trainer writes into the run folder (config.yaml) and --print-config shows."""
    cfg = load_config(name, items, command_of(name))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(plain(cfg.to_dict()), sort_keys=False))
    assert load_config(path, command=command_of(name)) == cfg


def test_the_benchmark_recipe_starts_from_its_seed_with_a_schedule_of_its_own():
    """``synth_base`` is the semi-supervised stage: from the labelled-only ``synth_base_seed``'s
    weights, pseudo-labelling from its first step, its whole cosine its own."""
    seed, arm = load_config("synth_base_seed"), load_config("synth_base")
    assert seed.pl.mode == "supervised" and seed.data.unlabelled is None
    assert arm.pl.mode == "mixed" and arm.data.unlabelled
    assert Path(arm.init.checkpoint).parent == Path(seed.trainer.out_dir)
    assert arm.teacher.start_step == 0
    assert (arm.model, arm.data.labelled, arm.data.frames_per_batch) == (
        seed.model, seed.data.labelled, seed.data.frames_per_batch)  # fmt: skip
    peak = [lr_factor(s, arm.optim.warmup_steps, arm.optim.max_steps, 0.0) for s in range(40, 60)]
    assert min(peak) > 0.95  # the arm's first steps after its warm-up run near its peak
