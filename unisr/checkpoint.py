"""Loading and saving models: unisr checkpoints and official USR / USR 2.0 ``.pth`` files.

A unisr checkpoint carries its own config and vocabulary:
``{"format": "unisr", "version": 1, "config": {...}, "tokenizer": {...}, "model": state_dict}``.
Official files are bare state dicts whose keys may carry the wrapper prefixes the official
loaders accept (``model.backbone.``, ``_orig_mod.``, ``_orig_mod.model.backbone.``); the model
size is inferred from tensor shapes and the vocabulary comes from the official unit list.
Files are always read with ``weights_only=True``: loading never executes pickled code.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path

import torch

from .config import PRESETS, ModelConfig
from .errors import UnisrError
from .files import atomic_write
from .model import UnifiedModel
from .segment import DEFAULT_MAX_FRAMES
from .tokenizer import Tokenizer

FORMAT = "unisr"
VERSION = 1


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load`` restricted to tensors and plain containers, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise UnisrError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UnisrError(
            f"{path}: not a plain checkpoint: it holds pickled Python objects other than tensors "
            "and plain containers, which unisr never loads (it would run code from the file); "
            "save the model's state dict where the file was made"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise UnisrError(f"{path}: not a readable PyTorch checkpoint ({err})") from None
    if not isinstance(data, dict):
        raise UnisrError(f"{path}: expected a dict, found {type(data).__name__}")
    return data


def official_state_dict(data: dict) -> dict[str, torch.Tensor]:
    """Strip the official wrappers' prefixes, as the official loaders do, plus legacy renames."""
    if "state_dict" in data and isinstance(data["state_dict"], dict):  # Lightning checkpoint
        data = data["state_dict"]
    state = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if any(k.startswith("_orig_mod.") for k in state):
        state = {k.replace("_orig_mod.", "", 1): v for k, v in state.items()}
    if any(k.startswith("model.backbone.") for k in state):
        state = {
            k[len("model.backbone.") :]: v
            for k, v in state.items()
            if k.startswith("model.backbone.")
        }
    if state and all(k.startswith("module.") for k in state):  # DistributedDataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    renamed = {}
    for key, value in state.items():
        if (
            key.endswith(".pe")
            or key.startswith("encoder.input_layer.")
            or key.startswith("encoder.embed.")
        ):
            continue  # positional tables are recomputed, never stored
        key = re.sub(r"^encoder\.norm\.", "encoder.after_norm.", key)
        key = re.sub(r"^decoder\.output_norm\.", "decoder.after_norm.", key)
        renamed[key] = value
    return renamed


def infer_config(state: dict[str, torch.Tensor], path: str | Path | None = None) -> ModelConfig:
    """Model dimensions from tensor shapes (works for every official size and our presets)."""
    where = f"{path}: " if path is not None else ""
    try:
        d_model, _ = state["encoder.linear_v.weight"].shape
        width = state["encoder.frontend_v.frontend3D.0.weight"].shape[0]
        heads = state["encoder.encoders.0.self_attn.pos_bias_u"].shape[0]
        ff_units = state["encoder.encoders.0.feed_forward.w_1.weight"].shape[0]
        vocab_size = state["decoder.embed.0.weight"].shape[0]
    except KeyError as err:
        raise UnisrError(f"{where}not a USR model state dict: no key {err}") from None
    except (ValueError, AttributeError) as err:
        raise UnisrError(f"{where}not a USR model state dict ({err})") from None

    def count(prefix: str) -> int:
        pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
        return len({m.group(1) for k in state if (m := pattern.match(k))})

    config = ModelConfig(
        vocab_size=vocab_size,
        d_model=d_model,
        heads=heads,
        ff_units=ff_units,
        enc_layers=count("encoder.encoders."),
        dec_layers=count("decoder.decoders."),
        frontend_width=width,
    )
    return config


SHAPE_FIELDS = ("vocab_size", "d_model", "heads", "ff_units", "enc_layers", "dec_layers",
                "frontend_width")  # fmt: skip


def unisr_parts(data: dict, path: str | Path) -> tuple[ModelConfig, Tokenizer, dict]:
    """(config, tokenizer, state dict) of a unisr checkpoint; any missing or malformed part is
    one error naming the file."""
    missing = [k for k in ("config", "tokenizer", "model") if k not in data]
    if missing:
        raise UnisrError(f"{path}: a unisr checkpoint without {', '.join(missing)}")
    state = data["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnisrError(f"{path}: 'model' is not a state dict of tensors")
    try:
        config = ModelConfig.from_dict(dict(data["config"]))
    except UnisrError as err:
        raise UnisrError(f"{path}: bad model config: {err}") from None
    except (TypeError, ValueError) as err:
        raise UnisrError(f"{path}: bad model config ({err})") from None
    try:
        tokenizer = Tokenizer.from_dict(dict(data["tokenizer"]))
    except UnisrError as err:
        raise UnisrError(f"{path}: bad vocabulary: {err}") from None
    except (KeyError, TypeError, ValueError) as err:
        raise UnisrError(f"{path}: bad vocabulary ({err.__class__.__name__}: {err})") from None
    return config, tokenizer, state


def check_shapes(config: ModelConfig, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """The config's sizes must be those of the stored tensors, checked before the model is
    built: a config asking for an enormous model must not allocate it first."""
    inferred = infer_config(state, path)
    wrong = [
        f"{name} {getattr(config, name)} (tensors: {getattr(inferred, name)})"
        for name in SHAPE_FIELDS
        if getattr(config, name) != getattr(inferred, name)
    ]
    if wrong:
        raise UnisrError(f"{path}: the config does not match the weights: {', '.join(wrong)}")


def preset_name(config: ModelConfig) -> str | None:
    """The official preset a config has the shape of, if any."""
    for name, preset in PRESETS.items():
        shape = ("d_model", "heads", "ff_units", "enc_layers", "dec_layers", "frontend_width")
        if all(getattr(preset, f) == getattr(config, f) for f in shape):
            return name
    return None


def load_state(
    model: UnifiedModel,
    state: dict[str, torch.Tensor],
    source: str | Path,
    only: Callable[[str], bool] | None = None,
) -> None:
    """Strict load that reports every missing, unexpected and mis-shaped key in one error.
    With ``only``, just the keys it accepts are loaded (and checked) on both sides; the rest of
    the model keeps its weights."""
    expected = model.state_dict()
    if only is not None:
        state = {k: v for k, v in state.items() if only(k)}
        expected = {k: v for k, v in expected.items() if only(k)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or misshaped:
        lines = [f"{source}: the state dict does not match the model"]
        for title, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped", misshaped),
        ):
            if keys:
                shown = keys[:20] + ([f"... and {len(keys) - 20} more"] if len(keys) > 20 else [])
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(shown))
        raise UnisrError("\n".join(lines))
    model.load_state_dict(state, strict=only is None)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """A model dtype by name ("float32", "bfloat16", "float16") or as a torch dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if dtype in DTYPES.values():
        return dtype
    raise UnisrError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")


def load_model(
    path: str | Path,
    units: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
) -> UnifiedModel:
    """Load a unisr checkpoint or an official ``.pth`` into an eval-mode model.

    The returned model carries ``model.tokenizer``. For official files pass ``units``, the
    official unit list (``unigram1000_units.txt``). ``dtype`` ("float32", "bfloat16" or
    "float16") is the dtype of the weights and activations; the log-mel front-end, the scores
    and the CTC prefix scorer compute in float32 whatever it is.
    """
    dtype = resolve_dtype(dtype)
    data = read_checkpoint(path)
    if data.get("format") == FORMAT:
        config, tokenizer, state = unisr_parts(data, path)
    else:
        state = official_state_dict(data)
        config = infer_config(state, path)
        if units is None:
            raise UnisrError(
                f"{path}: an official checkpoint has no vocabulary; pass the official unit list "
                "(units=... / --units unigram1000_units.txt)"
            )
        tokenizer = Tokenizer.from_units(units)
    if tokenizer.vocab_size != config.vocab_size:
        raise UnisrError(
            f"{path}: the model has {config.vocab_size} output classes but the vocabulary gives "
            f"{tokenizer.vocab_size} ({len(tokenizer.pieces)} pieces + blank + sos/eos)"
        )
    check_shapes(config, state, path)  # before building: the config alone could ask for any size
    model = UnifiedModel(config)
    load_state(model, state, path)
    model.tokenizer = tokenizer
    # the longest clip it was trained on: long inputs are cut into segments no longer (official
    # models and older unisr files: 24 s, the official training limit)
    model.max_frames = int(data.get("max_frames") or DEFAULT_MAX_FRAMES)
    return model.to(device=device, dtype=dtype).eval()


def save_checkpoint(path: str | Path, model: UnifiedModel, tokenizer: Tokenizer, **extra) -> None:
    """Write a self-describing unisr checkpoint atomically (temp file + rename)."""
    data = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        **extra,
    }
    atomic_torch_save(data, path)


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` whole or not at all, fsynced: a checkpoint must survive a crash."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp), fsync=True)


def convert(src: str | Path, out: str | Path, units: str | Path | None = None) -> UnifiedModel:
    """Official ``.pth`` (or any loadable checkpoint) -> unisr checkpoint."""
    model = load_model(src, units=units)
    save_checkpoint(out, model, model.tokenizer, source=str(Path(src).name))
    return model
