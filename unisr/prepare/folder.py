"""``unisr prepare SRC_DIR OUT_DIR``: a folder of face videos -> a mouth-crop corpus.

Every video under SRC_DIR (recursively) becomes ``OUT_DIR/<relative path>.mp4`` (96x96 grayscale
mouth crops at 25 fps, lossless) and ``.wav`` (16 kHz mono, exactly 640 samples per frame), with
the transcript of its same-name ``.txt`` in any of the layouts :mod:`.labels` reads (LRS2,
LRS3, VoxCeleb2, plain text). A clip longer than 24 s with a word table becomes segments
``<relative path>_00``, ``_01``, ... The typed manifest ``OUT_DIR/manifest.tsv`` lists the
clips (unlabelled ones with an empty transcript); ``OUT_DIR/summary.json`` counts the outcomes
and the labelled and unlabelled clips, and names each video that was skipped and why. With a
tokenizer, the auto_avsr CSV dialect is written too.

Resumable: a video whose outputs all exist is not processed again (outputs are written under
temporary names and renamed, so an interrupted run leaves no half-written file behind).
``--shard K/N`` processes one deterministic part of the videos (:mod:`.shards`).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from ..errors import UnisrError
from ..files import atomic_write
from ..manifest import ManifestRow, write_auto_avsr_csv, write_manifest
from ..media import SAMPLES_PER_FRAME, MediaError, write_audio, write_video
from .crop import NoFaceError, TooShortError, crop_video, probe_video, resample_indices, video_audio
from .labels import SEGMENT_SECONDS, read_labels, segments
from .landmarks import Landmarker, load_landmarker
from .shards import in_shard, merge_shards, parse_shard, shard_suffix

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".flv")
PROCESSED, DONE_BEFORE = "processed", "already prepared"
NO_FACE, TOO_SHORT, UNREADABLE, FAILED = "no face found", "too short", "unreadable", "failed"


@dataclass
class Outcome:
    """What became of one source video: its manifest rows (one per segment), or a problem."""

    source: str
    status: str
    rows: list[ManifestRow] = field(default_factory=list)
    detail: str = ""


def find_videos(src_dir: Path) -> list[Path]:
    """Video files under ``src_dir`` (by suffix, case-insensitive), sorted."""
    return sorted(
        p for p in src_dir.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    )


def _names(rel: Path, count: int) -> list[str]:
    """Output names (no suffix) of a clip cut into ``count`` segments."""
    return [rel.as_posix()] if count == 1 else [f"{rel.as_posix()}_{k:02d}" for k in range(count)]


def prepare_one(
    video: Path,
    src_dir: Path,
    out_dir: Path,
    landmarker: Landmarker,
    segment_seconds: float = SEGMENT_SECONDS,
) -> Outcome:
    """Crop one video into ``out_dir`` (or reuse earlier outputs); problems become outcomes."""
    rel = video.relative_to(src_dir).with_suffix("")
    source = str(video.relative_to(src_dir))
    try:
        labels = read_labels(video)
        # only a clip with a word table may be cut, so only its length is needed up front
        length = len(resample_indices(*probe_video(video))) if labels.words else 0
        planned = segments(labels, length, segment_seconds)
        names = _names(rel, len(planned))
        if all((out_dir / f"{n}{ext}").is_file() for n in names for ext in (".mp4", ".wav")):
            status = DONE_BEFORE
            lengths = [
                sf.info(str(out_dir / f"{n}.wav")).frames // SAMPLES_PER_FRAME for n in names
            ]
        else:
            crops = crop_video(video, landmarker)
            audio = video_audio(video, len(crops))
            planned = segments(labels, len(crops), segment_seconds)
            names, status, lengths = _names(rel, len(planned)), PROCESSED, []
            for name, part in zip(names, planned, strict=True):
                wav, mp4 = out_dir / f"{name}.wav", out_dir / f"{name}.mp4"
                sound = audio[part.start * SAMPLES_PER_FRAME : part.end * SAMPLES_PER_FRAME]
                atomic_write(wav, lambda tmp, sound=sound: write_audio(tmp, sound))
                frames = crops[part.start : part.end]
                atomic_write(mp4, lambda tmp, frames=frames: write_video(tmp, frames))  # last
                lengths.append(part.end - part.start)
    except NoFaceError as err:
        return Outcome(source, NO_FACE, detail=str(err))
    except TooShortError as err:
        return Outcome(source, TOO_SHORT, detail=str(err))
    except (MediaError, sf.LibsndfileError) as err:
        return Outcome(source, UNREADABLE, detail=str(err))
    except Exception as err:  # one odd file must not stop a corpus
        return Outcome(source, FAILED, detail=f"{video}: {err.__class__.__name__}: {err}")
    rows = [
        ManifestRow(
            id=name,
            video=str(out_dir / f"{name}.mp4"),
            audio=str(out_dir / f"{name}.wav"),
            frames=frames,
            text=part.text or "",
        )
        for name, part, frames in zip(names, planned, lengths, strict=True)
    ]
    return Outcome(source, status, rows=rows)


_worker_landmarker: Landmarker | None = None


def _init_worker(face_model: str | None) -> None:
    global _worker_landmarker
    _worker_landmarker = load_landmarker(face_model)


def _work(video: Path, src_dir: Path, out_dir: Path, segment_seconds: float) -> Outcome:
    return prepare_one(video, src_dir, out_dir, _worker_landmarker, segment_seconds)


def prepare_corpus(
    src_dir: str | Path,
    out_dir: str | Path,
    workers: int = 1,
    face_model: str | Path | None = None,
    progress: bool = True,
    shard: tuple[int, int] | None = None,
    segment_seconds: float = SEGMENT_SECONDS,
    csv: str | Path | None = None,
    tokenizer: str | Path | None = None,
) -> list[Outcome]:
    """Prepare every video under ``src_dir`` (or shard ``(K, N)`` of them) into ``out_dir``;
    write the manifest and summary, and the auto_avsr ``csv`` when given (needs ``tokenizer``).

    ``workers`` > 1 runs that many processes, each with its own landmarker. ``face_model`` is a
    MediaPipe ``face_landmarker.task`` file (default: the cached copy, fetched once).
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise UnisrError(f"{src_dir}: not a folder")
    encode = _encoder(csv, tokenizer)  # a bad tokenizer fails before hours of cropping
    outcomes, unique = [], {}
    for video in find_videos(src_dir):
        key = video.relative_to(src_dir).with_suffix("").as_posix()
        if not in_shard(key, shard):
            continue
        if key in unique:  # a.mp4 and a.avi would write the same outputs
            detail = f"{video}: same name as {unique[key].name}, which is prepared instead"
            outcomes.append(Outcome(str(video.relative_to(src_dir)), FAILED, detail=detail))
        else:
            unique[key] = video
    videos = list(unique.values())
    if not videos and shard is None:
        raise UnisrError(f"{src_dir}: no videos found ({', '.join(VIDEO_SUFFIXES)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    landmarker = load_landmarker(face_model)  # fails early, with the install hint, if unavailable
    face_model = getattr(landmarker, "model_path", face_model)  # workers never fetch it again
    bar = tqdm(total=len(videos), desc="prepare", unit="video", disable=not progress)
    try:
        if workers <= 1:
            for video in videos:
                outcomes.append(prepare_one(video, src_dir, out_dir, landmarker, segment_seconds))
                bar.update()
        else:
            landmarker.close()
            context = get_context("forkserver")  # clean workers, forked from one that imported us
            context.set_forkserver_preload([__name__])
            with ProcessPoolExecutor(
                workers, context, initializer=_init_worker, initargs=(face_model,)
            ) as pool:
                jobs = [
                    pool.submit(_work, video, src_dir, out_dir, segment_seconds) for video in videos
                ]
                for job in as_completed(jobs):
                    outcomes.append(job.result())
                    bar.update()
    finally:
        bar.close()
        landmarker.close()
    outcomes.sort(key=lambda o: o.source)
    rows = [row for o in outcomes for row in o.rows]
    summary = {
        "counts": count_outcomes(outcomes),
        "clips": count_clips(rows),
        "problems": [
            {"video": o.source, "problem": o.status, "detail": o.detail}
            for o in outcomes
            if not o.rows
        ],
    }
    write_outputs(out_dir, rows, summary, shard_suffix(shard))
    if encode is not None and shard is None:
        write_auto_avsr_csv(csv, encode(rows), out_dir)
    return outcomes


def _encoder(csv: str | Path | None, tokenizer: str | Path | None):
    """Rows -> rows with token ids, for the auto_avsr CSV (None when no CSV is asked for)."""
    if csv is None:
        if tokenizer is not None:
            raise UnisrError("--tokenizer is for the auto_avsr CSV: give --csv FILE too")
        return None
    if tokenizer is None:
        raise UnisrError(f"{csv}: the auto_avsr CSV holds token ids: give --tokenizer too")
    from ..tokenizer import load_tokenizer

    loaded = load_tokenizer(tokenizer)
    if not loaded.can_encode:
        raise UnisrError(f"{tokenizer}: cannot encode text (give a SentencePiece .model)")

    def encode(rows: list[ManifestRow]) -> list[ManifestRow]:
        return [replace(r, tokens=loaded.encode(r.text) if r.text else None) for r in rows]

    return encode


def count_outcomes(outcomes: list[Outcome]) -> dict[str, int]:
    """Videos per outcome; the four main ones always present, in a fixed order."""
    counts = dict.fromkeys((PROCESSED, NO_FACE, TOO_SHORT, UNREADABLE), 0)
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


def count_clips(rows: list[ManifestRow]) -> dict[str, int]:
    """Manifest clips (segments counted one by one) with and without a transcript."""
    labelled = sum(1 for r in rows if r.text)
    return {"labelled": labelled, "unlabelled": len(rows) - labelled}


def write_outputs(out_dir: Path, rows: list[ManifestRow], summary: dict, suffix: str = "") -> None:
    """``manifest{suffix}.tsv`` and ``summary{suffix}.json`` in ``out_dir``."""
    write_manifest(out_dir / f"manifest{suffix}.tsv", rows)
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write(out_dir / f"summary{suffix}.json", text)


def prepare_cli(args: argparse.Namespace) -> int:
    """``unisr prepare``: prints a summary; exit status 1 when no video could be prepared."""
    shard = parse_shard(args.shard) if args.shard else None
    if shard is not None and args.csv:
        raise UnisrError("--csv with --shard: write the CSV when merging (unisr merge-shards)")
    outcomes = prepare_corpus(
        args.src_dir,
        args.out_dir,
        args.workers,
        args.face_model,
        progress=not args.quiet,
        shard=shard,
        segment_seconds=args.segment_seconds,
        csv=args.csv,
        tokenizer=args.tokenizer,
    )
    done = [o for o in outcomes if o.rows]
    clips = count_clips([row for o in done for row in o.rows])
    manifest = Path(args.out_dir) / f"manifest{shard_suffix(shard)}.tsv"
    print(f"{len(done)} of {len(outcomes)} videos in {manifest}")
    for status, count in count_outcomes(outcomes).items():
        print(f"  {status:<17} {count}")
    print(f"  clips: {clips['labelled']} labelled, {clips['unlabelled']} unlabelled")
    for outcome in outcomes:
        if not outcome.rows:
            print(f"skipped {outcome.source}: {outcome.status} ({outcome.detail})", file=sys.stderr)
    return 0 if done or (shard is not None and not outcomes) else 1


def merge_cli(args: argparse.Namespace) -> int:
    """``unisr merge-shards OUT_DIR``: the shards' manifests and summaries joined into one."""
    out_dir = Path(args.out_dir)
    encode = _encoder(args.csv, args.tokenizer)
    rows, summary = merge_shards(out_dir)
    write_outputs(out_dir, rows, summary)
    if encode is not None:
        write_auto_avsr_csv(args.csv, encode(rows), out_dir)
    clips = summary["clips"]
    print(
        f"{len(rows)} clips ({clips['labelled']} labelled, {clips['unlabelled']} unlabelled) "
        f"in {out_dir / 'manifest.tsv'}"
    )
    return 0
