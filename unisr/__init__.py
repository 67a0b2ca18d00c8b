"""unisr: unified speech recognition (ASR, VSR, AVSR) with USR 2.0 semi-supervised training."""

__version__ = "0.1.0"
