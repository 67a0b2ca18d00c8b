"""Official checkpoints load in every key form the official loaders accept; ours round-trip."""

import pickle

import pytest
import torch

import unisr
from unisr.checkpoint import convert, infer_config, official_state_dict, preset_name
from unisr.config import PRESETS
from unisr.errors import UnisrError
from unisr.model import UnifiedModel


@pytest.fixture(scope="module")
def official_state(official_dir):
    return torch.load(official_dir / "tiny_model.pth", weights_only=True)


def strip(state, prefix):
    return {k[len(prefix) :]: v for k, v in state.items()}


@pytest.mark.parametrize(
    "form",
    ["plain", "model.backbone.", "_orig_mod.", "_orig_mod.model.backbone.", "lightning", "extras"],
)
def test_every_official_key_form_loads(
    tmp_path, official_dir, official_state, official_model, form
):
    plain = strip(official_state, "_orig_mod.model.backbone.")
    if form == "plain":
        data = plain
    elif form == "lightning":
        data = {"state_dict": {"model.backbone." + k: v for k, v in plain.items()}, "epoch": 3}
    elif form == "extras":  # a training wrapper's teacher and unlabelled heads are ignored
        data = {"model.backbone." + k: v for k, v in plain.items()}
        data["model.target_backbone.decoder.after_norm.weight"] = torch.zeros(64)
        data["model.out_layer_unlabelled_v.weight"] = torch.zeros(1049, 64)
    else:
        data = {form + k: v for k, v in plain.items()}
    path = tmp_path / "model.pth"
    torch.save(data, path)
    model = unisr.load_model(path, units=official_dir / "unigram1000_units.txt")
    for key, value in official_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_config_is_inferred_from_shapes(official_state):
    cfg = infer_config(official_state_dict(official_state))
    assert (cfg.d_model, cfg.heads, cfg.ff_units, cfg.enc_layers, cfg.dec_layers) == (
        64,
        4,
        128,
        2,
        1,
    )
    assert (cfg.vocab_size, cfg.frontend_width) == (1049, 64)
    assert preset_name(cfg) is None
    with torch.device("meta"):
        base = UnifiedModel(PRESETS["base"]).state_dict()
    assert preset_name(infer_config(base)) == "base"


def test_convert_round_trip_keeps_weights_and_vocabulary(tmp_path, official_dir, official_model):
    out = tmp_path / "converted.pt"
    convert(official_dir / "tiny_model.pth", out, units=official_dir / "unigram1000_units.txt")
    model = unisr.load_model(out)  # no units needed: the checkpoint carries its vocabulary
    assert model.tokenizer.pieces == official_model.tokenizer.pieces
    assert model.config == official_model.config
    for key, value in official_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    assert [p.name for p in tmp_path.iterdir()] == ["converted.pt"]  # no partial file left


def test_official_file_without_units_is_a_clear_error(official_dir):
    with pytest.raises(UnisrError, match="unit list"):
        unisr.load_model(official_dir / "tiny_model.pth")


def test_mismatched_file_lists_missing_unexpected_and_misshaped_keys(
    tmp_path, official_dir, official_state
):
    state = dict(official_state)
    prefix = "_orig_mod.model.backbone."
    del state[prefix + "decoder.after_norm.weight"]
    state[prefix + "decoder.extra.weight"] = torch.zeros(3)
    state[prefix + "ctc_a.ctc_lo.bias"] = torch.zeros(7)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(UnisrError) as err:
        unisr.load_model(path, units=official_dir / "unigram1000_units.txt")
    message = str(err.value)
    assert "missing (1): decoder.after_norm.weight" in message
    assert "unexpected (1): decoder.extra.weight" in message
    assert "ctc_a.ctc_lo.bias: file (7,) vs model (1049,)" in message


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"x": Payload()}, f)
    with pytest.raises(UnisrError, match="not a plain checkpoint") as err:
        unisr.load_model(path)
    assert "this must never run" not in capsys.readouterr().out
    assert "weights_only" not in str(err.value)  # no invitation to load it unsafely


def test_vocabulary_size_must_match_model(tmp_path, official_dir):
    units = tmp_path / "units.txt"
    units.write_text("<unk> 1\nA 2\n")
    with pytest.raises(UnisrError, match="1049 output classes"):
        unisr.load_model(official_dir / "tiny_model.pth", units=units)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(UnisrError, match="not found"):
        unisr.load_model(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UnisrError, match="junk.pt"):
        unisr.load_model(junk)
