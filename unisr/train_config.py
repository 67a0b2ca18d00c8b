"""Training configuration: YAML files of nested sections with dotted ``key=value`` overrides.

A config has the sections ``model`` (a preset name plus any :class:`~unisr.config.ModelConfig`
field), ``data`` (manifests, tokenizer and the data pipeline settings), ``optim``, ``teacher``,
``pl`` (pseudo-labelling), ``loss``, ``trainer``, ``init`` and ``pretrain`` (self-supervised
pre-training, ``unisr pretrain``). Every key is checked: a typo is an
error that names the key and lists the valid ones. Packaged recipes live in ``unisr/configs``
and are found by name (``unisr train synth_demo``); relative paths in a config are relative to
the working directory.

A recipe cannot change meaning by leaving something out: the keys a command needs (fields made
with :func:`required`: the data, the tokenizer, the supervision ``pl.mode``, where training
starts) must be given, by the recipe or on the command line; ``???`` in a recipe marks a value
that the command line must give (a paper recipe's data and pre-trained checkpoint). A
pseudo-labelling ``pl.mode`` needs ``data.unlabelled`` and ``supervised`` refuses it, and the
keys the trainer takes from the model (``data.augment.crop``/``resize``) cannot be set.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import ModelConfig, model_config
from .dataset import DataConfig
from .errors import UnisrError
from .losses import LossConfig
from .pseudo_labels import MODES, PseudoLabelConfig

CONFIG_DIR = Path(__file__).parent / "configs"
COMMANDS = ("train", "pretrain")
REQUIRED = "???"  # a recipe's value that the command line must give
SUPERVISED = "supervised"  # pl.mode of a run without pseudo-labels
# Training precisions. Weights, the EMA teacher and AdamW's state stay float32 in both; the
# other Lightning precisions are refused, with the reason.
PRECISIONS = ("auto", "32-true", "bf16-mixed")
_HALF_WEIGHTS = (
    "weights in half precision lose the EMA teacher's updates (1 - momentum = 0.2 % of a "
    "weight is below bf16's resolution) and AdamW's small steps; use bf16-mixed"
)
REFUSED_PRECISIONS = {
    "16-mixed": "fp16 needs a loss scaler, whose scaled gradients the step would clip and whose "
    "overflow steps it would skip for good; use bf16-mixed (A100, H100 and newer GPUs)",
    "bf16-true": _HALF_WEIGHTS,
    "16-true": _HALF_WEIGHTS,
}
# data.augment keys the trainer sets from the model config, and the model key to set instead:
# training must see the crops that evaluation and transcription take from the checkpoint's config
SET_BY_MODEL = {"crop": "model.crop_size", "resize": "model.image_size"}


def required(default: Any, what: str, commands: tuple[str, ...] = COMMANDS) -> Any:
    """A field that a recipe (or the command line) must set for ``commands``; ``what`` tells
    the user what to give. ``default`` only serves sections built in code."""
    return field(default=default, metadata={"required": commands, "what": what})


@dataclass
class DataSection(DataConfig):
    """The data pipeline settings (:class:`~unisr.dataset.DataConfig`) plus where the data is.

    Manifests may be typed TSV or either CSV dialect; ``roots``/``audio_roots`` give the CSV
    dialects' root folders (one path, or a mapping from tag to path). Training takes
    ``unlabelled`` exactly when ``pl.mode`` pseudo-labels; pre-training needs only ``unlabelled``.
    """

    labelled: str | list[str] = required(
        "", "the labelled training manifest (or a list of them)", ("train",)
    )
    unlabelled: str | None = required(None, "the unlabelled clips' manifest", ("pretrain",))
    val: str | None = required(
        None, "the validation manifest, or null for no validation", ("train",)
    )
    tokenizer: str = required("", "a SentencePiece .model or an official unit list .txt")
    roots: Any = None
    audio_roots: Any = None
    use_cache: bool = True
    frames_per_batch_val: int = 500
    val_workers: int = 0


@dataclass
class OptimSection:
    """AdamW with linear warm-up then cosine decay, per optimizer step. The run length is
    ``max_steps`` if positive, else ``epochs`` passes over the unlabelled set (the labelled set
    without one); ``warmup_steps`` (if positive) overrides ``warmup_epochs``."""

    lr: float = 3e-3
    final_lr: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.04
    grad_clip: float = 3.0
    epochs: int = 50
    warmup_epochs: float = 15.0
    max_steps: int = 0
    warmup_steps: int = 0


@dataclass
class TeacherSection:
    """EMA teacher. Pseudo-labelling starts at ``start_step`` (earlier steps are labelled-only;
    the paper starts at 0 from a pre-trained encoder); with ``reset_at_start`` the teacher is a
    fresh copy of the student at that step. The momentum follows a cosine from
    ``momentum_start`` to ``momentum_end`` over the pseudo-labelling steps (as do ramps of
    ``pl.p_ar``)."""

    momentum_start: float = 0.998
    momentum_end: float = 1.0
    start_step: int = 0
    reset_at_start: bool = True


@dataclass
class TrainerSection:
    """Run mechanics. ``devices``/``num_nodes``: "auto" reads torchrun or SLURM variables.
    ``precision``: "auto" = bf16-mixed on GPU, 32-true on CPU (:data:`PRECISIONS`). Intervals
    count optimizer steps (``val_every`` 0 = once per epoch)."""

    out_dir: str = "runs/train"
    seed: int = 42
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: Any = "auto"
    precision: str = "auto"
    threads: int = 0  # torch.set_num_threads when positive
    log_every: int = 50
    val_every: int = 0
    val_streams: list[str] = field(default_factory=lambda: ["v", "a", "av"])
    val_method: str = "ctc"  # greedy decoding for validation WER: "ctc" or "greedy" (attention)
    ckpt_every: int = 1000
    keep_checkpoints: int = 10
    average_last: int = 10
    progress_bar: bool = True

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            why = REFUSED_PRECISIONS.get(self.precision, "")
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"
                + (f": {why}" if why else "")
            )


@dataclass
class InitSection:
    """Start from a checkpoint (unisr, official ``.pth`` or a training checkpoint): the whole
    model, or only the encoder (without its final norm, as USR transfers pre-trained encoders)."""

    checkpoint: str | None = required(
        None, "the checkpoint to start from, or null to train from scratch", ("train",)
    )
    encoder_only: bool = False


@dataclass(frozen=True)
class PLSection(PseudoLabelConfig):
    """Pseudo-labelling (:class:`~unisr.pseudo_labels.PseudoLabelConfig`); ``mode`` is also the
    run's supervision: ``supervised`` trains on the labelled set alone, the pseudo-labelling
    modes on ``data.unlabelled`` too. The other settings are checked when a mode uses them."""

    mode: str = required(
        "mixed", f"{SUPERVISED}, or a pseudo-labelling mode: {', '.join(MODES)}", ("train",)
    )

    def __post_init__(self):
        modes = (SUPERVISED, *MODES)
        if self.mode not in modes:
            raise ValueError(f"pl.mode must be one of {', '.join(modes)}, not {self.mode!r}")
        if self.mode != SUPERVISED:
            super().__post_init__()


@dataclass
class PretrainSection:
    """Self-supervised pre-training (``unisr pretrain``, USR's defaults): span masks starting at
    ``mask_prob`` of the frames, ``mask_span`` frames long; a ``predictor_layers``-block
    predictor; per-stream loss weights."""

    mask_prob: float = 0.4
    mask_span: int = 3
    predictor_layers: int = 2
    stream_weights: dict[str, float] = field(
        default_factory=lambda: {"v": 0.3, "a": 0.7, "av": 0.7}
    )


@dataclass
class TrainConfig:
    model: dict = field(default_factory=lambda: {"preset": "base"})
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    pl: PLSection = field(default_factory=PLSection)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    init: InitSection = field(default_factory=InitSection)
    pretrain: PretrainSection = field(default_factory=PretrainSection)

    def model_config(self, vocab_size: int | None = None) -> ModelConfig:
        """The model section as a :class:`ModelConfig` (``vocab_size`` from the tokenizer)."""
        fields_ = dict(self.model)
        preset = fields_.pop("preset", "base")
        if vocab_size is not None:
            fields_["vocab_size"] = vocab_size
        known = {f.name for f in dataclasses.fields(ModelConfig)}
        unknown = sorted(set(fields_) - known)
        if unknown:
            raise UnisrError(
                f"unknown model keys {unknown}; valid: preset, {', '.join(sorted(known))}"
            )
        return model_config(preset, **fields_)

    def to_dict(self) -> dict:
        """Plain data that loads back as this config (without the keys the model sets)."""
        data = dataclasses.asdict(self)
        for key in SET_BY_MODEL:
            del data["data"]["augment"][key]
        return data


# ---------------------------------------------------------------- building from plain data


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Check/convert one YAML value against a field's type hint."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        return _convert(value, others[0], where) if len(others) == 1 else value
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise UnisrError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise UnisrError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UnisrError(f"{where}: expected a number, got {value!r}")
        if hint is int and float(value) != int(value):
            raise UnisrError(f"{where}: expected an integer, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise UnisrError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise UnisrError(f"{where}: expected a list, got {value!r}")
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if origin is tuple and len(args) > 1 and len(value) != len(args):
            raise UnisrError(f"{where}: expected {len(args)} values, got {value!r}")
        items = [_convert(v, args[min(i, len(args) - 1)], where) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise UnisrError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def build(cls, data: Any, where: str = "config"):
    """Instantiate dataclass ``cls`` from nested dicts, rejecting unknown keys by name."""
    if data is None:
        data = {}
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise UnisrError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UnisrError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(names)}"
        )
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise UnisrError(f"{where}: {err}") from None


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def apply_override(data: dict, item: str) -> None:
    """Set ``a.b.c=value`` in nested dicts; the value is parsed as YAML (``optim.lr=1e-3``,
    ``pl.mode=mixed``, ``optim.betas=[0.9,0.98]``, ``init.checkpoint=null``)."""
    if "=" not in item:
        raise UnisrError(f"override {item!r} is not of the form key=value")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise UnisrError(f"override {item!r} has an empty key part")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UnisrError(f"override {item!r}: {part} is not a section")
        node = child
    node[parts[-1]] = _parse_value(text)


def config_path(name: str | Path) -> Path:
    """A YAML file path, or the name of a packaged recipe."""
    path = Path(name)
    if path.is_file():
        return path
    packaged = CONFIG_DIR / f"{Path(name).stem}.yaml"
    if path.suffix in ("", ".yaml") and packaged.is_file():
        return packaged
    choices = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise UnisrError(f"{name}: no such config file or packaged recipe (recipes: {choices})")


# ---------------------------------------------------------------- what a recipe must say


def without_placeholders(data: Any) -> Any:
    """``data`` less its ``???`` values (which :func:`check_required` names)."""
    if not isinstance(data, dict):
        return data
    return {k: without_placeholders(v) for k, v in data.items() if v != REQUIRED}


def placeholders(data: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose value is the ``???`` placeholder."""
    if not isinstance(data, dict):
        return []
    found = []
    for key, value in data.items():
        if value == REQUIRED:
            found.append(f"{prefix}{key}")
        else:
            found += placeholders(value, f"{prefix}{key}.")
    return found


def missing(cls, data: Any, command: str, prefix: str = "") -> dict[str, str]:
    """{dotted key: what it is} for the fields of ``cls`` that are ``???`` in ``data``, and
    the :func:`required` ones that ``command`` needs and ``data`` leaves out or empty (null is
    a value: "none")."""
    data = data if isinstance(data, dict) else {}
    hints, out = _hints(cls), {}
    for f in dataclasses.fields(cls):
        key, value = f"{prefix}{f.name}", data.get(f.name, "")
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(missing(hints[f.name], data.get(f.name), command, f"{key}."))
        elif value == REQUIRED or (command in f.metadata.get("required", ()) and value == ""):
            out[key] = f.metadata.get("what", "")
    return out


def check_required(data: dict, command: str, source: str) -> None:
    """Every key ``command`` needs is given, and no ``???`` is left; one error names them all."""
    keys = missing(TrainConfig, data, command)
    keys.update({key: "" for key in placeholders(data) if key not in keys})  # e.g. model.*
    if keys:
        listed = ", ".join(f"{key} is required" + (f" ({what})" if what else "")
                           for key, what in keys.items())  # fmt: skip
        them = "it" if len(keys) == 1 else "them"
        give = " ".join(f"{key}=..." for key in keys)
        raise UnisrError(f"{source}: {listed}; set {them} on the command line: {give}")


def check_not_set_by_model(data: dict, source: str) -> None:
    """The crop keys follow the model: a recipe's value would be overwritten, so it is refused.
    (``data`` has passed :func:`build`: its sections are mappings.)"""
    augment = (data.get("data") or {}).get("augment") or {}
    for key, instead in SET_BY_MODEL.items():
        if key in augment:
            raise UnisrError(
                f"{source}: data.augment.{key} cannot be set: the training crops follow the model, "
                f"as evaluation and transcription with its checkpoint do; set {instead} instead"
            )


def check_supervision(cfg: TrainConfig, source: str) -> None:
    """``pl.mode`` and ``data.unlabelled`` agree: a mode that pseudo-labels has clips to label,
    and a supervised run has none that it would ignore."""
    mode, unlabelled = cfg.pl.mode, cfg.data.unlabelled
    if mode != SUPERVISED and not unlabelled:
        raise UnisrError(
            f"{source}: pl.mode {mode} pseudo-labels data.unlabelled, which is not set; give "
            f"data.unlabelled=..., or pl.mode={SUPERVISED} to train on the labelled set alone"
        )
    if mode == SUPERVISED and unlabelled:
        raise UnisrError(
            f"{source}: data.unlabelled is set but pl.mode is {SUPERVISED}, which would ignore "
            f"it; choose a pseudo-labelling pl.mode ({', '.join(MODES)}) or data.unlabelled=null"
        )


def load_config(
    name: str | Path | None = None, overrides: list[str] = (), command: str = "train"
) -> TrainConfig:
    """Read a config (file or packaged name; None = overrides only), apply the overrides and
    check that it says everything ``command`` ("train" or "pretrain") needs."""
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {COMMANDS}, not {command!r}")
    data: dict = {}
    source = "(no recipe)"
    if name is not None:
        path = config_path(name)
        source = path.name if path.parent == CONFIG_DIR else str(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise UnisrError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(data, dict):
            raise UnisrError(f"{path}: expected a mapping of sections")
    for item in overrides:
        apply_override(data, item)
    cfg = build(TrainConfig, without_placeholders(data))  # unknown keys and bad values first
    check_required(data, command, source)
    check_not_set_by_model(data, source)
    cfg.model_config()  # validate the model section early
    if command == "train":
        check_supervision(cfg, source)
    return cfg
