"""The public decoding API, bound as ``model.decode`` / ``model.transcribe`` (the ``unisr
transcribe`` and ``features`` commands in :mod:`unisr.cli` call it).

Inputs are one utterance or a list of them (decoded as one padded batch):

* video: a mouth-crop file (mp4/avi; other frame rates are resampled to 25 fps), uint8 grayscale
  frames (T, H, W) that are centre-cropped to ``config.crop_size``, normalised and resized to
  ``config.image_size``, or float frames (T, image_size, image_size) already normalised;
* audio: a sound file at any sample rate and channel count (mixed down to mono and resampled to
  16 kHz, said once on stderr) or float 16 kHz samples (S,). Without it, streams that need audio
  take the video file's own track, converted the same way. Audio is fitted to 640 samples per
  video frame.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .checks import check_frames, check_lengths, check_samples
from .decoding import DecodingOptions, Hypothesis, decode_encoded
from .errors import UnisrError
from .media import SAMPLES_PER_FRAME, fit_audio, model_audio, read_sound, read_video_audio
from .transforms import AugmentConfig, video_view

MODALITIES = ("v", "a", "av")


def read_mouth_video(path: str | Path, cropped: bool | None = None) -> np.ndarray:
    """uint8 grayscale frames (T, H, W) at 25 fps of a video file. Every video file the API
    reads comes through here: a face video is cropped to the mouth on the fly (needs the
    ``prepare`` extra), a mouth-crop video is used as it is. ``cropped=None`` tells them apart
    (:func:`unisr.prepare.crop.mouth_frames`); True or False forces either."""
    from .prepare.crop import mouth_frames

    return mouth_frames(path, cropped)


def _video_tensor(model, video) -> Tensor:
    """One utterance's video -> normalised float frames (T, image_size, image_size)."""
    cfg = model.config
    name = str(video) if isinstance(video, (str, Path)) else "video frames"
    if isinstance(video, (str, Path)):
        video = read_mouth_video(video)
    frames = video if isinstance(video, Tensor) else torch.from_numpy(np.ascontiguousarray(video))
    check_frames(frames, name)
    if frames.is_floating_point():
        if frames.shape[1:] != (cfg.image_size, cfg.image_size):
            raise UnisrError(
                f"float frames must be normalised {cfg.image_size}x{cfg.image_size} crops, got "
                f"{frames.shape[1]}x{frames.shape[2]} (pass uint8 frames to crop them)"
            )
        return frames.float()
    if frames.dtype != torch.uint8:
        raise UnisrError(f"video frames must be uint8 or float, not {frames.dtype}")
    check_frames(frames, name, cfg.crop_size)
    resize = cfg.image_size if cfg.image_size != cfg.crop_size else None
    return video_view(frames.numpy(), AugmentConfig(crop=cfg.crop_size, resize=resize))


def audio_samples(audio, video) -> np.ndarray:
    """One utterance's audio -> float32 16 kHz mono samples; None takes the video file's track.
    Files at other rates or with more channels are converted (:func:`unisr.media.model_audio`)."""
    if audio is None:
        if not isinstance(video, (str, Path)):
            raise UnisrError("this modality needs audio: give audio (or a video file with sound)")
        track = read_video_audio(video)
        if track is None:
            raise UnisrError(f"{video}: the video has no audio track; give the audio separately")
        return check_samples(model_audio(*track, video), video)
    if isinstance(audio, (str, Path)):
        return check_samples(model_audio(*read_sound(audio), audio), audio)
    samples = audio.detach().cpu().numpy() if isinstance(audio, Tensor) else np.asarray(audio)
    if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.floating):
        raise UnisrError(
            f"expected float mono audio samples (S,), got {samples.dtype} of shape {samples.shape}"
        )
    return check_samples(samples.astype(np.float32), "audio samples")


def resolve_modality(modality: str | None, video, audio) -> str:
    """The stream to decode: "av" when both inputs are given, else the one given."""
    if video is None and audio is None:
        raise UnisrError("give a video, an audio or both")
    if modality is None:
        return "av" if video is not None and audio is not None else "v" if audio is None else "a"
    if modality not in MODALITIES:
        raise UnisrError(f"modality must be one of {MODALITIES}, not {modality!r}")
    if "v" in modality and video is None:
        raise UnisrError(f"modality {modality!r} needs a video")
    return modality


def prepare_inputs(model, video, audio, streams) -> tuple[Tensor | None, Tensor | None, Tensor]:
    """Model inputs for a list of utterances: padded video (B, T, H, W), audio (B, 640 T) and
    valid frames (B,), each input present only if one of ``streams`` needs it."""
    count = len(video) if video is not None else len(audio)
    if count == 0:
        raise UnisrError("an empty list of inputs")
    if video is not None and audio is not None and len(video) != len(audio):
        raise UnisrError(f"{len(video)} videos but {len(audio)} audios")
    need_v = any("v" in s for s in streams)
    need_a = any("a" in s for s in streams)
    videos, audios = [], []
    for i in range(count):
        v = _video_tensor(model, video[i]) if need_v else None
        if need_a:
            source = None if audio is None else audio[i]
            a = audio_samples(source, None if video is None else video[i])
            if v is not None:  # the data path's length tolerance, not a silent cut
                name = source if isinstance(source, (str, Path)) else video[i]
                check_lengths(len(v), len(a), name if isinstance(name, (str, Path)) else "audio")
            frames = len(v) if v is not None else math.ceil(len(a) / SAMPLES_PER_FRAME)
            audios.append(torch.from_numpy(fit_audio(a, frames)))
        videos.append(v)
    if need_v:
        lengths = torch.tensor([len(v) for v in videos])
    else:
        lengths = torch.tensor([len(a) // SAMPLES_PER_FRAME for a in audios])
    frames = int(lengths.max())
    device = model.device
    video_batch = audio_batch = None
    if need_v:
        video_batch = videos[0].new_zeros(count, frames, *videos[0].shape[1:])
        for i, v in enumerate(videos):
            video_batch[i, : len(v)] = v
        video_batch = video_batch.to(device)
    if need_a:
        audio_batch = torch.zeros(count, frames * SAMPLES_PER_FRAME)
        for i, a in enumerate(audios):
            audio_batch[i, : len(a)] = a
        audio_batch = audio_batch.to(device)
    return video_batch, audio_batch, lengths.to(device)


def _as_batch(inputs) -> tuple[list | None, bool]:
    if inputs is None or isinstance(inputs, (list, tuple)):
        return (None if inputs is None else list(inputs)), True
    return [inputs], False


@torch.no_grad()
def decode(
    model,
    video=None,
    audio=None,
    modality: str | None = None,
    options: DecodingOptions | None = None,
    **overrides,
) -> list[Hypothesis] | list[list[Hypothesis]]:
    """The n-best hypotheses of one utterance, or a list of n-best lists for a list of
    utterances. ``overrides`` replace fields of ``options``, e.g. ``beam_size=40``."""
    stream = resolve_modality(modality, video, audio)
    options = replace(options or DecodingOptions(), **overrides)
    videos, batched = _as_batch(video)
    audios, batched_a = _as_batch(audio)
    batched = batched if video is not None else batched_a
    if video is not None and audio is not None and batched != batched_a:
        raise UnisrError("give both video and audio as lists, or neither")
    video_t, audio_t, lengths = prepare_inputs(model, videos, audios, (stream,))
    encoded = model.encode(video_t, audio_t, lengths if batched else None, streams=(stream,))
    results = decode_encoded(model, encoded[stream], lengths, stream, options)
    return results if batched else results[0]


def transcribe(
    model,
    video=None,
    audio=None,
    modality: str | None = None,
    options: DecodingOptions | None = None,
    **overrides,
) -> str | list[str]:
    """The best transcript of one utterance, or a list of them for a list of utterances."""
    results = decode(model, video, audio, modality, options, **overrides)
    if results and isinstance(results[0], list):
        return [nbest[0].text for nbest in results]
    return results[0].text


@torch.no_grad()
def features(model, video=None, audio=None, streams: tuple[str, ...] | None = None) -> dict:
    """Encoder outputs (T, D) of one utterance for each of ``streams`` (default: every stream
    the given inputs allow)."""
    if streams is None:
        given = tuple(s for s, x in (("v", video), ("a", audio)) if x is not None)
        streams = ("v", "a", "av") if len(given) == 2 else given
    for stream in streams:
        resolve_modality(stream, video, audio)
    video_t, audio_t, _ = prepare_inputs(
        model, None if video is None else [video], None if audio is None else [audio], streams
    )
    encoded = model.encode(video_t, audio_t, None, streams=tuple(streams))
    return {stream: out[0].cpu() for stream, out in encoded.items()}
