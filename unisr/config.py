"""Model configuration and the named presets.

The official presets reproduce the released USR 2.0 shapes exactly (front-end width 64, 88x88
crops, 1049 output classes, raw-waveform audio ResNet). The CPU presets shrink the video
front-end, crops, width and depth and take log-mel audio, so that a model trains in minutes on a
laptop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from .errors import UnisrError

AUDIO_FRONTENDS = ("resnet", "fbank")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 1049  # blank 0, pieces 1..N, sos = eos = N + 1
    d_model: int = 512
    heads: int = 8
    ff_units: int = 2048
    enc_layers: int = 12
    dec_layers: int = 6
    frontend_width: int = 64  # ResNet-18 stem width; 64 is the official front-end
    crop_size: int = 88  # mouth crop taken from the 96x96 ROI
    image_size: int = 88  # crops are resized to this before the model (== crop_size: no resize)
    dropout: float = 0.1
    attn_dropout: float = 0.1  # encoder self-attention; decoder attention uses none (official)
    drop_path: float = 0.0  # stochastic depth in encoder blocks (training only)
    gamma_init: float = 0.1  # layer scale initial value
    audio_frontend: str = "resnet"  # "resnet" (raw waveform, official) or "fbank" (log-mel)
    fbank_freq_masks: int = 0  # fbank only: SpecAugment frequency masks per utterance (training)

    def __post_init__(self):
        if self.d_model % self.heads:
            raise UnisrError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.audio_frontend not in AUDIO_FRONTENDS:
            raise UnisrError(
                f"unknown audio_frontend {self.audio_frontend!r}; choose from {AUDIO_FRONTENDS}"
            )
        if self.vocab_size < 3:
            raise UnisrError(f"vocab_size {self.vocab_size} leaves no room for tokens")

    @property
    def eos(self) -> int:
        return self.vocab_size - 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UnisrError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)


PRESETS: dict[str, ModelConfig] = {
    # official USR 2.0 backbones (conf/model/backbone/*.yaml)
    "base": ModelConfig(d_model=512, heads=8, ff_units=2048, enc_layers=12, dec_layers=6),
    "baseplus": ModelConfig(d_model=768, heads=12, ff_units=3072, enc_layers=12, dec_layers=6),
    "large": ModelConfig(d_model=1024, heads=16, ff_units=4096, enc_layers=24, dec_layers=9),
    "huge": ModelConfig(d_model=1280, heads=16, ff_units=5120, enc_layers=32, dec_layers=9),
    # CPU presets: narrow video front-ends on 44x44 (small) or 32x32 (tiny) inputs, log-mel
    # audio with SpecAugment frequency masks (docs/cpu_recipe.md: both learn much faster)
    "small": ModelConfig(
        d_model=256, heads=4, ff_units=1024, enc_layers=4, dec_layers=2,
        frontend_width=16, image_size=44, audio_frontend="fbank", fbank_freq_masks=2,
    ),
    "tiny": ModelConfig(
        d_model=128, heads=4, ff_units=512, enc_layers=4, dec_layers=1,
        frontend_width=8, image_size=32, audio_frontend="fbank", fbank_freq_masks=2,
    ),
}  # fmt: skip


def model_config(preset: str = "base", **overrides) -> ModelConfig:
    """A preset with optional field overrides, e.g. ``model_config("small", vocab_size=130)``."""
    if preset not in PRESETS:
        raise UnisrError(f"unknown model preset {preset!r}; choose from {sorted(PRESETS)}")
    return replace(PRESETS[preset], **overrides)
