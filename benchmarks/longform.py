"""Long-form transcription on joined synthetic clips: WER against the same clips decoded one by
one, word start and end errors against the corpus' true word times, real-time factor and peak
memory, per stream and decoding method.

Test clips of a synthetic corpus (in manifest order, from the start again when a length needs
more) are joined into one mouth video (lossless mp4) and one 16 kHz wav of 1, 5 and 20 minutes
(``--minutes``), and, with ``--hour``, 60 minutes; each clip's ``.json`` gives its words' true
start and end, shifted by the clip's place in the joined input. Each long-form run is
``model.transcribe`` on the two files in a fresh process (so its peak resident set,
``ru_maxrss``, is its own), on 2 threads. The clips themselves are decoded in padded batches of 32.
Words of the long-form transcript are matched to the reference words by the WER alignment; the
timing errors are those of the matched (correct) words. ``--face`` adds the real-time factor of
the face path: a face video of the shared fixtures looped to 20 s, transcribed with the mouth
crop made on the fly, against its crops.

    .venv/bin/python benchmarks/longform.py --checkpoint runs/seed/model.pt \\
        --corpus data/synth_base_grid [--minutes 1 5 20] [--hour] [--face] [--write]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from report import publish

from unisr.checkpoint import load_model
from unisr.evaluate import matched_words, word_errors
from unisr.manifest import read_manifest
from unisr.media import SAMPLE_RATE, read_audio, read_video
from unisr.tokenizer import normalize_text

SECTION = "## Long-form transcription (`benchmarks/longform.py`)"
STREAMS = ("a", "v", "av")
METHODS = {"CTC greedy": {"method": "ctc"}, "beam 10": {"method": "beam", "beam_size": 10}}
FACE_VIDEO = Path(__file__).resolve().parents[2] / "shared/fixtures/official_crops/moving.mp4"


def join_clips(corpus: Path, minutes: float, out: Path) -> dict:
    """Write ``out``.mp4 / .wav joining test clips to ``minutes``; returns the truth (the
    reference text and every word's true start and end) and caches it as ``out``.json."""
    truth_path = out.with_suffix(".json")
    if truth_path.is_file():
        return json.loads(truth_path.read_text())
    rows = read_manifest(corpus / "test.tsv")
    target = round(minutes * 60 * 25)
    words, frames, texts = [], 0, []
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out.with_suffix(".mp4")), "w") as container, \
            open(out.with_suffix(".raw"), "wb") as raw:  # fmt: skip
        stream = container.add_stream("libx264rgb", rate=Fraction(25))
        stream.pix_fmt, stream.options = "rgb24", {"crf": "0", "preset": "ultrafast"}
        stream.width = stream.height = 96
        k = 0
        while frames < target:
            row = rows[k % len(rows)]
            k += 1
            video, _ = read_video(row.video)
            audio = read_audio(row.audio)[: len(video) * 640]
            audio = np.pad(audio, (0, len(video) * 640 - len(audio)))
            for image in video:
                rgb = np.repeat(image[..., None], 3, axis=-1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            raw.write(audio.astype(np.float32).tobytes())
            meta = json.loads(Path(row.video).with_suffix(".json").read_text())
            offset = frames / 25
            for word, start, end in meta["words"]:
                words.append((normalize_text(word), offset + start, offset + end))
            texts.append(row.text)
            frames += len(video)
        for packet in stream.encode():
            container.mux(packet)
    import soundfile as sf

    samples = np.fromfile(out.with_suffix(".raw"), dtype=np.float32)
    sf.write(out.with_suffix(".wav"), samples, SAMPLE_RATE, subtype="PCM_16")
    out.with_suffix(".raw").unlink()
    truth = {"clips": [r.id for r in rows[:k]] if k <= len(rows) else k, "frames": frames,
             "text": " ".join(texts), "words": words}  # fmt: skip
    truth_path.write_text(json.dumps(truth))
    return truth


def worker(args: argparse.Namespace) -> None:
    """One long-form run in this process: prints seconds and peak RSS as JSON."""
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    video = args.video if "v" in args.modality else None
    audio = args.audio if "a" in args.modality else None
    start = time.perf_counter()
    result = model.transcribe(video=video, audio=audio, modality=args.modality,
                              max_seconds=args.max_seconds, **json.loads(args.options))  # fmt: skip
    seconds = time.perf_counter() - start
    Path(args.out).write_text(json.dumps(result))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak}))


def long_form(args, base: Path, modality: str, options: dict, cropped: bool = True) -> dict:
    """A worker run on ``base``.mp4 / .wav; returns its result, seconds and peak RSS."""
    out = base.parent / f"{base.name}_{modality}_{options['method']}.result.json"
    command = [sys.executable, __file__, "--worker", "--checkpoint", str(args.checkpoint),
               "--video", str(base.with_suffix(".mp4")), "--audio", str(base.with_suffix(".wav")),
               "--modality", modality, "--options", json.dumps(options), "--out", str(out),
               "--threads", str(args.threads)]  # fmt: skip
    if args.max_seconds:
        command += ["--max-seconds", str(args.max_seconds)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"worker failed: {done.stderr[-2000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return {**measured, "result": json.loads(out.read_text())}


def clip_errors(model, corpus: Path, count: int, modality: str, options: dict) -> tuple[int, int]:
    """Word errors and words of the first ``count`` test clips decoded one by one (batches)."""
    rows = read_manifest(corpus / "test.tsv")[:count]
    hyps = []
    for i in range(0, len(rows), 32):
        part = rows[i : i + 32]
        videos = [read_video(r.video)[0] for r in part] if "v" in modality else None
        audios = [read_audio(r.audio) for r in part] if "a" in modality else None
        with torch.no_grad():
            found = model.decode(videos, audios, modality, **options)
        hyps += [nbest[0].text for nbest in found]
    return word_errors([r.text for r in rows], hyps)


def timing_errors(truth: dict, result: dict) -> tuple[list[float], list[float]]:
    """Start and end errors (s) of the hypothesis words the WER alignment matches to the
    reference words."""
    true = truth["words"]
    hyp = [w for s in result["segments"] for w in s["words"]]
    pairs = matched_words([w for w, _, _ in true], [w["word"] for w in hyp])
    starts = [abs(hyp[h]["start"] - true[r][1]) for r, h in pairs]
    ends = [abs(hyp[h]["end"] - true[r][2]) for r, h in pairs]
    return starts, ends


def percentiles(values: list[float]) -> str:
    if not values:
        return "–"
    ms = np.array(values) * 1000
    return f"{np.median(ms):.0f} / {np.percentile(ms, 95):.0f}"


def face_rtf(args, model) -> list[str]:
    """Real-time factor of a face video transcribed with the mouth crop made on the fly, and of
    its crops transcribed as they are (v stream, beam 10)."""
    import os

    from unisr.media import write_video
    from unisr.transcribe import read_mouth_video

    os.environ["UNISR_FACE_MODEL"] = str(FACE_VIDEO.parent / "face_landmarker.task")
    frames, _ = read_video(FACE_VIDEO, gray=False)
    looped = np.concatenate([frames, frames[::-1]] * 5)  # 20 s, back and forth
    path = Path(args.work) / "face_20s.mp4"
    write_video(path, looped, lossless=False)
    duration = len(looped) / 25
    options = {"modality": "v", "method": "beam", "beam_size": 10}
    start = time.perf_counter()
    model.transcribe(video=str(path), **options)
    whole = time.perf_counter() - start
    crops = read_mouth_video(path)
    start = time.perf_counter()
    model.transcribe(video=crops, **options)
    decode = time.perf_counter() - start
    return [
        "",
        f"Face path: a {duration:.0f} s 512x512 face video (the shared fixture `moving.mp4` "
        f"looped), v stream, beam 10: {whole:.1f} s with the mouth crop made on the fly (RTF "
        f"{whole / duration:.2f}), {decode:.1f} s from its crops (RTF {decode / duration:.3f}).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, default=Path("data/synth_base_grid"))
    parser.add_argument("--minutes", type=float, nargs="*", default=[1, 5, 20])
    parser.add_argument("--hour", action="store_true", help="add 60 min, av, both methods")
    parser.add_argument("--face", action="store_true", help="add the face path's speed")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="segment limit (default: the checkpoint's)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="runs/longform")
    parser.add_argument("--write", action="store_true", help="record in BENCHMARKS.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--video", "--audio", "--modality", "--options", "--out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    cases = [(m, STREAMS) for m in args.minutes] + ([(60, ("av",))] if args.hour else [])
    lines = [
        "| input | stream | decoding | clips one by one WER | long-form WER | word start error "
        "ms, median / p95 | word end error ms, median / p95 | RTF | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for minutes, streams in cases:
        base = Path(args.work) / f"joined_{minutes:g}min"
        truth = join_clips(args.corpus, minutes, base)
        duration = truth["frames"] / 25
        clips = truth["clips"] if isinstance(truth["clips"], int) else len(truth["clips"])
        for modality in streams:
            for name, options in METHODS.items():
                run = long_form(args, base, modality, options)
                errors, words = word_errors([truth["text"]], [run["result"]["text"]])
                clip = clip_errors(model, args.corpus, min(clips, 300), modality, options)
                starts, ends = timing_errors(truth, run["result"])
                row = (
                    f"| {minutes:g} min ({clips} clips) | {modality} | {name} "
                    f"| {100 * clip[0] / clip[1]:.1f} | {100 * errors / words:.1f} "
                    f"| {percentiles(starts)} | {percentiles(ends)} "
                    f"| {run['seconds'] / duration:.3f} | {run['peak_mib'] / 1024:.2f} GB |"
                )
                print(row, flush=True)
                lines.append(row)
    if args.face and FACE_VIDEO.is_file():
        lines += face_rtf(args, model)
    note = (
        f"Checkpoint `{args.checkpoint}`, segments of at most "
        f"{args.max_seconds or model.max_frames / 25:g} s. Clips one by one: the first "
        "300 test clips at most (longer inputs repeat them, so their per-clip WER is the same). "
        "RTF: long-form wall time (reading, both passes, decoding, alignment) over the input's "
        f"duration, {args.threads} threads."
    )
    publish(SECTION, note, lines, args.write)


if __name__ == "__main__":
    main()
