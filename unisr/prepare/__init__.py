"""Face videos to model inputs: face landmarks (:mod:`.landmarks`), aligned 96x96 mouth crops
(:mod:`.crop`) and ``unisr prepare`` over a folder of videos (:mod:`.folder`). Needs the
``prepare`` extra (mediapipe) only when landmarks are actually computed."""

from .crop import mouth_frames
from .folder import prepare_cli

__all__ = ["mouth_frames", "prepare_cli"]
