"""unisr: unified speech recognition (ASR, VSR, AVSR) with USR 2.0 semi-supervised training.

The names below load their modules (and torch) on first use, so commands that need no model,
such as ``unisr prepare``, start without importing torch."""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"
_HOMES = {
    "ModelConfig": "config",
    "Tokenizer": "tokenizer",
    "UnifiedModel": "model",
    "load_model": "checkpoint",
    "model_config": "config",
    "save_checkpoint": "checkpoint",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module 'unisr' has no attribute {name!r}")
