"""``unisr transcribe FILE...``: many files (or folders of them) in one command, each read once,
transcribed at any length, written as text or subtitles; a file that fails is named and skipped,
the others are done, and the exit code says some failed."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import av
from tqdm import tqdm

from .errors import UnisrError

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v"}


@dataclass(frozen=True)
class Job:
    """One input to transcribe: a video and/or a sound file, and what names its outputs."""

    video: Path | None
    audio: Path | None

    @property
    def path(self) -> Path:
        return self.video if self.video is not None else self.audio


def collect_jobs(paths: list[str], video: str | None, audio: str | None) -> list[Job]:
    """The inputs of a command line: each positional file (a folder gives its media files,
    recursively, in name order), then the ``--video`` / ``--audio`` pair."""
    jobs = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES | VIDEO_SUFFIXES
            )  # fmt: skip
            if not found:
                raise UnisrError(f"{path}: no audio or video files in this folder")
            jobs.extend(_job(p) for p in found)
        else:
            jobs.append(_job(path))
    if video is not None or audio is not None:
        jobs.append(
            Job(None if video is None else Path(video), None if audio is None else Path(audio))
        )
    if not jobs:
        raise UnisrError("give files to transcribe (or --video / --audio)")
    return jobs


def _job(path: Path) -> Job:
    return Job(None, path) if path.suffix.lower() in AUDIO_SUFFIXES else Job(path, None)


def job_modality(job: Job, asked: str | None, paired: bool) -> str:
    """The stream to decode. Asked for, it is checked against the inputs; else a video with
    sound gives ``av`` (its own track), a silent video ``v``, a sound file ``a``; the
    ``--video`` / ``--audio`` pair keeps its rule: ``av`` with both, else the one given."""
    if job.video is None:
        if asked not in (None, "a"):
            raise UnisrError(f"{job.audio}: modality {asked!r} needs a video; this is sound only")
        return "a"
    if asked is not None:
        return asked
    if paired:
        return "av" if job.audio is not None else "v"
    return "av" if _has_audio(job.video) else "v"


def _has_audio(path: Path) -> bool:
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.error.FFmpegError, OSError, ValueError):
        return False  # an unreadable file fails, with its reason, when its video is read


def output_paths(jobs: list[Job], out_dir: Path, formats: tuple[str, ...]) -> list[list[Path]]:
    """Each job's output files; two inputs that would write the same file are refused."""
    paths = [[out_dir / f"{job.path.stem}.{fmt}" for fmt in formats] for job in jobs]
    seen: dict[Path, Path] = {}
    for job, outs in zip(jobs, paths):
        if outs[0] in seen:
            raise UnisrError(
                f"{seen[outs[0]]} and {job.path} would both write {outs[0]}: give them "
                "different names or transcribe them into different --output-dir folders"
            )
        seen[outs[0]] = job.path
    return paths


def transcribe_cli(args: argparse.Namespace) -> int:
    """Run the ``transcribe`` command (arguments in :mod:`unisr.cli`); returns the exit code."""
    from .checkpoint import load_model
    from .decoding import DecodingOptions
    from .subtitles import formats_of, write_outputs
    from .transcribe import audio_samples, load_source, read_mouth_video, transcribe_sources

    options = DecodingOptions(method=args.method, beam_size=args.beam, ctc_weight=args.ctc_weight)
    paired = args.video is not None or args.audio is not None
    jobs = collect_jobs(args.files, args.video, args.audio)
    formats = formats_of(args.output_format)
    out_dir = Path(args.output_dir) if args.output_dir else None
    outputs = output_paths(jobs, out_dir, formats) if out_dir else [None] * len(jobs)
    if args.max_segment is not None and args.max_segment <= 0:
        raise UnisrError(f"--max-segment must be positive, not {args.max_segment}")
    model = load_model(args.checkpoint, units=args.units, device=args.device, dtype=args.dtype)
    landmarker = None
    if args.face_model:
        from .prepare.landmarks import load_landmarker

        landmarker = load_landmarker(args.face_model)  # a bad file fails here, once
    failed = 0
    bar = tqdm(jobs, unit="file", disable=len(jobs) < 2 or None, file=sys.stderr)  # a terminal's
    for job, outs in zip(bar, outputs):
        if outs and not args.overwrite and all(p.exists() for p in outs):
            print(f"unisr transcribe: {job.path}: already transcribed, skipped "
                  "(--overwrite redoes it)", file=sys.stderr)  # fmt: skip
            continue
        try:
            stream = job_modality(job, args.modality, paired)
            video = None
            if "v" in stream:
                video = read_mouth_video(job.video, args.cropped, landmarker)
            audio = None
            if "a" in stream:  # a sound file is read (and named) by load_source, a track here
                audio = job.audio if job.audio is not None else audio_samples(None, job.video)
            source = load_source(model, video, audio, (stream,), name=str(job.path))
            result = transcribe_sources(
                model, [source], stream, options, args.max_segment, progress=True
            )[0]
        except (UnisrError, av.error.FFmpegError, OSError, ValueError) as err:
            message = str(err) if str(job.path) in str(err) else f"{job.path}: {err}"
            if len(jobs) == 1:  # the command's one input: its error is the command's
                raise UnisrError(message) from None
            failed += 1
            print(f"unisr transcribe: {message} (skipped)", file=sys.stderr)
            continue
        if out_dir is None:
            print(result["text"] if len(jobs) == 1 else f"{job.path}\t{result['text']}")
        else:
            write_outputs(result, out_dir, job.path.stem, formats)
    if failed:
        print(f"unisr transcribe: {failed} of {len(jobs)} file(s) failed", file=sys.stderr)
        return 1
    return 0
