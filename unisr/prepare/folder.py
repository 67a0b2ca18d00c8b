"""``unisr prepare SRC_DIR OUT_DIR``: a folder of face videos -> a mouth-crop corpus.

Every video under SRC_DIR (recursively) becomes ``OUT_DIR/<relative path>.mp4`` (96x96 grayscale
mouth crops at 25 fps, lossless) and ``.wav`` (16 kHz mono, exactly 640 samples per frame), with
the transcript of a same-name ``.txt`` file if there is one. The typed manifest
``OUT_DIR/manifest.tsv`` lists the prepared videos; ``OUT_DIR/summary.json`` counts the outcomes
and names each video that was skipped and why (no face found, too short, unreadable).

Resumable: a video whose .mp4 and .wav already exist is not processed again (outputs are written
under temporary names and renamed, so an interrupted run leaves no half-written file behind).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from ..errors import UnisrError
from ..files import atomic_write
from ..manifest import ManifestRow, write_manifest
from ..media import SAMPLES_PER_FRAME, MediaError, write_audio, write_video
from .crop import NoFaceError, TooShortError, crop_video, video_audio
from .landmarks import Landmarker, load_landmarker

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".flv")
PROCESSED, DONE_BEFORE = "processed", "already prepared"
NO_FACE, TOO_SHORT, UNREADABLE, FAILED = "no face found", "too short", "unreadable", "failed"


@dataclass
class Outcome:
    """What became of one source video: a manifest row, or a problem and its detail."""

    source: str
    status: str
    row: ManifestRow | None = None
    detail: str = ""


def find_videos(src_dir: Path) -> list[Path]:
    """Video files under ``src_dir`` (by suffix, case-insensitive), sorted."""
    return sorted(
        p for p in src_dir.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    )


def _transcript(video: Path) -> str:
    text_file = video.with_suffix(".txt")
    if not text_file.is_file():
        return ""
    try:
        return " ".join(text_file.read_text(encoding="utf-8").split())
    except UnicodeDecodeError as err:
        raise MediaError(text_file, f"transcript is not UTF-8 ({err.reason})") from None


def prepare_one(video: Path, src_dir: Path, out_dir: Path, landmarker: Landmarker) -> Outcome:
    """Crop one video into ``out_dir`` (or reuse earlier outputs); problems become outcomes."""
    rel = video.relative_to(src_dir).with_suffix("")
    mp4, wav = out_dir / f"{rel}.mp4", out_dir / f"{rel}.wav"
    source = str(video.relative_to(src_dir))
    try:
        text = _transcript(video)
        if mp4.is_file() and wav.is_file():
            frames, status = sf.info(str(wav)).frames // SAMPLES_PER_FRAME, DONE_BEFORE
        else:
            crops = crop_video(video, landmarker)
            audio = video_audio(video, len(crops))
            atomic_write(wav, lambda tmp: write_audio(tmp, audio))
            atomic_write(mp4, lambda tmp: write_video(tmp, crops))  # last: marks it done
            frames, status = len(crops), PROCESSED
    except NoFaceError as err:
        return Outcome(source, NO_FACE, detail=str(err))
    except TooShortError as err:
        return Outcome(source, TOO_SHORT, detail=str(err))
    except (MediaError, sf.LibsndfileError) as err:
        return Outcome(source, UNREADABLE, detail=str(err))
    except Exception as err:  # one odd file must not stop a corpus
        return Outcome(source, FAILED, detail=f"{video}: {err.__class__.__name__}: {err}")
    row = ManifestRow(id=rel.as_posix(), video=str(mp4), audio=str(wav), frames=frames, text=text)
    return Outcome(source, status, row=row)


_worker_landmarker: Landmarker | None = None


def _init_worker(face_model: str | None) -> None:
    global _worker_landmarker
    _worker_landmarker = load_landmarker(face_model)


def _work(video: Path, src_dir: Path, out_dir: Path) -> Outcome:
    return prepare_one(video, src_dir, out_dir, _worker_landmarker)


def prepare_corpus(
    src_dir: str | Path,
    out_dir: str | Path,
    workers: int = 1,
    face_model: str | None = None,
    progress: bool = True,
) -> list[Outcome]:
    """Prepare every video under ``src_dir`` into ``out_dir``; write the manifest and summary.

    ``workers`` > 1 runs that many processes, each with its own landmarker. ``face_model`` is a
    MediaPipe ``face_landmarker.task`` file (default: the cached copy, fetched once).
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise UnisrError(f"{src_dir}: not a folder")
    outcomes, unique = [], {}
    for video in find_videos(src_dir):
        key = video.relative_to(src_dir).with_suffix("").as_posix()
        if key in unique:  # a.mp4 and a.avi would write the same outputs
            detail = f"{video}: same name as {unique[key].name}, which is prepared instead"
            outcomes.append(Outcome(str(video.relative_to(src_dir)), FAILED, detail=detail))
        else:
            unique[key] = video
    videos = list(unique.values())
    if not videos:
        raise UnisrError(f"{src_dir}: no videos found ({', '.join(VIDEO_SUFFIXES)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    landmarker = load_landmarker(face_model)  # fails early, with the install hint, if unavailable
    face_model = getattr(landmarker, "model_path", face_model)  # workers never fetch it again
    bar = tqdm(total=len(videos), desc="prepare", unit="video", disable=not progress)
    try:
        if workers <= 1:
            for video in videos:
                outcomes.append(prepare_one(video, src_dir, out_dir, landmarker))
                bar.update()
        else:
            landmarker.close()
            context = get_context("forkserver")  # clean workers, forked from one that imported us
            context.set_forkserver_preload([__name__])
            with ProcessPoolExecutor(
                workers, context, initializer=_init_worker, initargs=(face_model,)
            ) as pool:
                jobs = [pool.submit(_work, video, src_dir, out_dir) for video in videos]
                for job in as_completed(jobs):
                    outcomes.append(job.result())
                    bar.update()
    finally:
        bar.close()
        landmarker.close()
    outcomes.sort(key=lambda o: o.source)
    write_manifest(out_dir / "manifest.tsv", [o.row for o in outcomes if o.row is not None])
    summary = {
        "counts": count_outcomes(outcomes),
        "problems": [
            {"video": o.source, "problem": o.status, "detail": o.detail}
            for o in outcomes
            if not o.row
        ],
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return outcomes


def count_outcomes(outcomes: list[Outcome]) -> dict[str, int]:
    """Videos per outcome; the four main ones always present, in a fixed order."""
    counts = dict.fromkeys((PROCESSED, NO_FACE, TOO_SHORT, UNREADABLE), 0)
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


def prepare_cli(args: argparse.Namespace) -> int:
    """``unisr prepare``: prints a summary; exit status 1 when no video could be prepared."""
    outcomes = prepare_corpus(
        args.src_dir, args.out_dir, args.workers, args.face_model, progress=not args.quiet
    )
    rows = [o for o in outcomes if o.row is not None]
    print(f"{len(rows)} of {len(outcomes)} videos in {Path(args.out_dir) / 'manifest.tsv'}")
    for status, count in count_outcomes(outcomes).items():
        print(f"  {status:<17} {count}")
    for outcome in outcomes:
        if outcome.row is None:
            print(f"skipped {outcome.source}: {outcome.status} ({outcome.detail})", file=sys.stderr)
    return 0 if rows else 1
