"""unisr: unified speech recognition (ASR, VSR, AVSR) with USR 2.0 semi-supervised training."""

from .checkpoint import load_model, save_checkpoint
from .config import ModelConfig, model_config
from .model import UnifiedModel
from .tokenizer import Tokenizer

__version__ = "0.1.0"
__all__ = [
    "ModelConfig",
    "Tokenizer",
    "UnifiedModel",
    "load_model",
    "model_config",
    "save_checkpoint",
]
