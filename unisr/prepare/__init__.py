"""Face videos to model inputs: face landmarks (:mod:`.landmarks`, with the model file from
:mod:`.face_model`), aligned 96x96 mouth crops (:mod:`.crop`), the transcripts of LRS2 / LRS3 /
VoxCeleb2 (:mod:`.labels`) and ``unisr prepare`` over a folder of videos (:mod:`.folder`),
split over jobs by :mod:`.shards`. Needs the ``prepare`` extra (mediapipe) only when landmarks
are actually computed."""

from .crop import mouth_frames
from .folder import merge_cli, prepare_cli

__all__ = ["merge_cli", "mouth_frames", "prepare_cli"]
