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
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from .align import Word, words_of
from .checks import check_frames, check_lengths, check_samples
from .decoding import (
    DecodingOptions,
    Hypothesis,
    ctc_log_probs,
    decode_encoded,
    default_decode_frames,
    frame_groups,
)
from .errors import UnisrError
from .media import FPS, SAMPLES_PER_FRAME, fit_audio, model_audio, read_sound, read_video_audio
from .segment import DEFAULT_MAX_FRAMES, Segment, lip_motion, owned, plan, windows
from .tokenizer import WORD_MARK
from .transforms import AugmentConfig, video_view

MODALITIES = ("v", "a", "av")


def read_mouth_video(path: str | Path, cropped: bool | None = None, landmarker=None) -> np.ndarray:
    """uint8 grayscale frames (T, H, W) at 25 fps of a video file. Every video file the API
    reads comes through here: a face video is cropped to the mouth on the fly (needs the
    ``prepare`` extra; ``landmarker`` defaults to the cached face model), a mouth-crop video is
    used as it is. ``cropped=None`` tells them apart (:func:`unisr.prepare.crop.mouth_frames`);
    True or False forces either."""
    from .prepare.crop import mouth_frames

    return mouth_frames(path, cropped, landmarker)


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


@dataclass
class Source:
    """One input as the model reads it, held compactly so that an hour fits in memory: video as
    uint8 frames (T, H, W) (or float frames already normalised), audio as float32 16 kHz samples
    fitted to 640 per frame; each window or segment is converted when it is batched."""

    name: str
    frames: int
    video: np.ndarray | Tensor | None = None
    audio: np.ndarray | None = None


def load_source(model, video, audio, streams, name: str | None = None) -> Source:
    """Read and check one utterance's inputs for ``streams`` (files, arrays or tensors);
    ``name`` (default: the file's) names it in errors."""
    need_v = any("v" in s for s in streams)
    need_a = any("a" in s for s in streams)
    if name is None:
        name = next((str(x) for x in (video, audio) if isinstance(x, (str, Path))), None)
    frames = None
    if need_v:
        frames = _video_frames(model, video, name or "video frames")
    samples = None
    if need_a:
        samples = audio_samples(audio, video)
        if frames is not None:  # the data path's length tolerance, not a silent cut
            where = audio if isinstance(audio, (str, Path)) else name or "audio"
            check_lengths(len(frames), len(samples), where)
        count = len(frames) if frames is not None else math.ceil(len(samples) / SAMPLES_PER_FRAME)
        samples = fit_audio(samples, count)
    return Source(name or "input", len(frames) if frames is not None else count, frames, samples)


def _video_frames(model, video, name: str) -> np.ndarray | Tensor:
    """One utterance's video as checked uint8 frames (T, H, W) or normalised float frames."""
    cfg = model.config
    if isinstance(video, (str, Path)):
        video = read_mouth_video(video)
    frames = video if isinstance(video, Tensor) else np.ascontiguousarray(video)
    check_frames(frames, name)
    if frames.dtype in (np.uint8, torch.uint8):
        check_frames(frames, name, cfg.crop_size)
        return frames.numpy() if isinstance(frames, Tensor) else frames
    if not (frames.is_floating_point() if isinstance(frames, Tensor)
            else np.issubdtype(frames.dtype, np.floating)):  # fmt: skip
        raise UnisrError(f"video frames must be uint8 or float, not {frames.dtype}")
    if tuple(frames.shape[1:]) != (cfg.image_size, cfg.image_size):
        raise UnisrError(
            f"float frames must be normalised {cfg.image_size}x{cfg.image_size} crops, got "
            f"{frames.shape[1]}x{frames.shape[2]} (pass uint8 frames to crop them)"
        )
    return torch.as_tensor(frames).float()


def _video_view(model, frames) -> Tensor:
    """uint8 frames -> the model's normalised centre crops; float frames pass through."""
    if isinstance(frames, Tensor):
        return frames
    cfg = model.config
    resize = cfg.image_size if cfg.image_size != cfg.crop_size else None
    return video_view(frames, AugmentConfig(crop=cfg.crop_size, resize=resize))


def batch_spans(
    model, spans: list[tuple[Source, int, int]], streams
) -> tuple[Tensor | None, Tensor | None, Tensor]:
    """Padded model inputs of frame spans ``(source, start, end)``: video (B, T, H, W), audio
    (B, 640 T) and valid frames (B,), each present only if one of ``streams`` needs it."""
    if not spans:
        raise UnisrError("an empty list of inputs")
    need_v = any("v" in s for s in streams)
    need_a = any("a" in s for s in streams)
    lengths = torch.tensor([end - start for _, start, end in spans])
    frames = int(lengths.max())
    video_batch = audio_batch = None
    if need_v:
        views = [_video_view(model, src.video[start:end]) for src, start, end in spans]
        video_batch = views[0].new_zeros(len(spans), frames, *views[0].shape[1:])
        for i, view in enumerate(views):
            video_batch[i, : len(view)] = view
        video_batch = video_batch.to(model.device)
    if need_a:
        audio_batch = torch.zeros(len(spans), frames * SAMPLES_PER_FRAME)
        for i, (src, start, end) in enumerate(spans):
            part = src.audio[start * SAMPLES_PER_FRAME : end * SAMPLES_PER_FRAME]
            audio_batch[i, : len(part)] = torch.from_numpy(part)
        audio_batch = audio_batch.to(model.device)
    return video_batch, audio_batch, lengths.to(model.device)


def load_sources(model, video: list | None, audio: list | None, streams) -> list[Source]:
    """:func:`load_source` of each utterance of lists of videos and/or audios."""
    count = len(video) if video is not None else len(audio)
    if count == 0:
        raise UnisrError("an empty list of inputs")
    if video is not None and audio is not None and len(video) != len(audio):
        raise UnisrError(f"{len(video)} videos but {len(audio)} audios")
    return [
        load_source(model, *(None if x is None else x[i] for x in (video, audio)), streams)
        for i in range(count)
    ]


def prepare_inputs(model, video, audio, streams) -> tuple[Tensor | None, Tensor | None, Tensor]:
    """Model inputs for a list of utterances, each whole: padded video (B, T, H, W), audio
    (B, 640 T) and valid frames (B,), each input present only if one of ``streams`` needs it."""
    sources = load_sources(model, video, audio, streams)
    return batch_spans(model, [(src, 0, src.frames) for src in sources], streams)


def _as_batch(video, audio) -> tuple[list | None, list | None, bool]:
    """Inputs as lists, and whether they came as lists (else one utterance)."""
    as_list = [x is not None and isinstance(x, (list, tuple)) for x in (video, audio)]
    if video is not None and audio is not None and as_list[0] != as_list[1]:
        raise UnisrError("give both video and audio as lists, or neither")
    lists = [None if x is None else list(x) if listed else [x]
             for x, listed in zip((video, audio), as_list)]  # fmt: skip
    return lists[0], lists[1], as_list[0] if video is not None else as_list[1]


@torch.no_grad()
def decode(
    model,
    video=None,
    audio=None,
    modality: str | None = None,
    options: DecodingOptions | None = None,
    **overrides,
) -> list[Hypothesis] | list[list[Hypothesis]]:
    """The n-best hypotheses of one utterance decoded whole, or a list of n-best lists for a
    list of utterances (one padded batch). ``overrides`` replace fields of ``options``, e.g.
    ``beam_size=40``. For inputs longer than a few seconds use :func:`transcribe`, which cuts
    them into segments."""
    stream = resolve_modality(modality, video, audio)
    options = replace(options or DecodingOptions(), **overrides)
    videos, audios, batched = _as_batch(video, audio)
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
    max_seconds: float | None = None,
    progress: bool = False,
    **overrides,
) -> dict | list[dict]:
    """Transcribe one input of any length, or a list of them, as whisper does: a dict with the
    ``text``, its ``segments`` (start, end, text and timed ``words`` with a probability, in
    seconds), the ``modality`` decoded and the input's ``duration``. Inputs longer than
    ``max_seconds`` (default: the longest clip the model was trained on,
    ``model.max_frames``) are cut at pauses the model finds (:mod:`unisr.segment`); all
    segments of all inputs are decoded together in padded batches. ``overrides`` replace fields
    of ``options``, e.g. ``beam_size=40``."""
    stream = resolve_modality(modality, video, audio)
    options = replace(options or DecodingOptions(), **overrides)
    videos, audios, batched = _as_batch(video, audio)
    sources = load_sources(model, videos, audios, (stream,))
    results = transcribe_sources(model, sources, stream, options, max_seconds, progress)
    return results if batched else results[0]


@torch.no_grad()
def transcribe_sources(
    model,
    sources: list[Source],
    stream: str,
    options: DecodingOptions,
    max_seconds: float | None = None,
    progress: bool = False,
) -> list[dict]:
    """:func:`transcribe` of inputs already read (the command line reads each file once)."""
    if max_seconds is not None and max_seconds <= 0:
        raise UnisrError(f"the segment length must be positive, not {max_seconds} s")
    max_frames = (
        round(max_seconds * FPS)
        if max_seconds
        else getattr(model, "max_frames", DEFAULT_MAX_FRAMES)
    )
    if options.method == "beam":  # wide beams search a batch in groups, as `unisr eval` does
        limit = default_decode_frames(options.beam_size, options.decode_frames)
        options = replace(options, decode_frames=limit)
    # pauses and word times come from the audio head where there is audio: the heads that see
    # the lips emit their tokens up to a few hundred ms away from where the words are said
    timing = "a" if "a" in stream else stream
    planned = [
        (k, seg) for k, src in enumerate(sources) for seg in _plan(model, src, timing, max_frames)
    ]
    words: list[list[Word]] = [[] for _ in planned]
    quiet = not progress or len(planned) < 2
    bar = tqdm(total=len(planned), unit="segment", disable=quiet or None,  # None: on a terminal
               leave=False, file=sys.stderr)  # fmt: skip
    for group in frame_groups([seg.frames for _, seg in planned], ENCODE_FRAMES):
        spans = [(sources[planned[i][0]], planned[i][1].start, planned[i][1].end) for i in group]
        video_t, audio_t, lengths = batch_spans(model, spans, (stream,))
        encoded = model.encode(video_t, audio_t, lengths, streams=tuple({stream, timing}))
        found = decode_encoded(model, encoded[stream], lengths, stream, options)
        logp = ctc_log_probs(model, encoded[timing], lengths, timing).cpu().numpy()
        for row, i in enumerate(group):
            seg = planned[i][1]
            timed = words_of(found[row][0].tokens, model.tokenizer.pieces,
                             logp[row, : seg.frames], seg.start / FPS)  # fmt: skip
            words[i] = [w for w in timed if owned(seg, w.start * FPS, w.end * FPS)]
        bar.update(len(group))
    bar.close()
    return [
        _result(src, stream, [words[i] for i, (of, _) in enumerate(planned) if of == k])
        for k, src in enumerate(sources)
    ]


ENCODE_FRAMES = 6000  # padded frames encoded and decoded at once


@torch.no_grad()
def _plan(model, source: Source, stream: str, max_frames: int) -> list[Segment]:
    """Segments of one input: the whole of it when it fits, else cut where the model's greedy
    CTC labels (a first pass over overlapping windows) pause between words."""
    if source.frames <= max_frames:
        return [Segment(0, source.frames, 0, source.frames)]
    labels = np.zeros(source.frames, dtype=np.int64)
    spans = windows(source.frames, max_frames)
    for group in frame_groups([end - start for start, end, _, _ in spans], ENCODE_FRAMES):
        chosen = [spans[i] for i in group]
        video_t, audio_t, lengths = batch_spans(
            model, [(source, start, end) for start, end, _, _ in chosen], (stream,)
        )
        encoded = model.encode(video_t, audio_t, lengths, streams=(stream,))[stream]
        best = model.ctc_logits(encoded, stream).argmax(-1).cpu().numpy()
        for row, (start, _, keep_start, keep_end) in zip(best, chosen):
            labels[keep_start:keep_end] = row[keep_start - start : keep_end - start]
    motion = None
    if stream == "v":
        # the lip-reading head emits its tokens too far from where words are said to place cuts
        # by (on the synthetic corpus 11-16 of 24 of its pauses fell in a true pause, 24-25 of 25
        # where the lips move least), so a video without sound is cut where the lips are still
        motion = lip_motion(source.video)
        if isinstance(source.video, np.ndarray):
            from .prepare.crop import face_gaps

            for start, end in face_gaps(source.video):  # no face there: nothing said to see
                labels[start:end] = model.tokenizer.blank
    return plan(labels, _word_starts(model), max_frames, motion=motion)


def _word_starts(model) -> np.ndarray:
    """Per token id, whether it begins a word (blank and sos/eos do not)."""
    pieces = model.tokenizer.pieces
    starts = np.zeros(model.config.vocab_size, dtype=bool)
    starts[1 : len(pieces) + 1] = [p.startswith(WORD_MARK) for p in pieces]
    return starts


def _result(source: Source, stream: str, per_segment: list[list[Word]]) -> dict:
    segments = []
    for timed in per_segment:
        if not timed:
            continue
        segments.append({
            "id": len(segments),
            "start": round(timed[0].start, 3),
            "end": round(timed[-1].end, 3),
            "text": " ".join(w.word for w in timed),
            "words": [w.to_dict() for w in timed],
        })  # fmt: skip
    return {
        "text": " ".join(s["text"] for s in segments),
        "segments": segments,
        "modality": stream,
        "duration": round(source.frames / FPS, 3),
    }


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
