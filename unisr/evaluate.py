"""``unisr eval``: word and character error rates of a checkpoint over a manifest.

Every utterance is decoded for each requested stream (``a``, ``v``, ``av``) and noise condition
(clean, or babble/noise mixed into the audio at each ``--snr``), in frame-budget batches on CPU or
GPU. References and hypotheses are compared after the official text normalisation (upper case,
no punctuation except apostrophes), with jiwer; CER counts characters including spaces.
Results can be broken down by utterance length (``--buckets``). Crops follow the model's
config (centre crop ``crop_size``, resized to ``image_size``).

Output folder: ``hyps_{stream}_{condition}.tsv`` (id, frames, reference, hypothesis, word errors,
reference words) and ``summary.json`` (settings, corpus-level and per-bucket rates, skipped
utterances).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jiwer
import torch

from .dataset import (
    AV_TOLERANCE_FRAMES,
    AVDataset,
    BadData,
    BadSample,
    DataConfig,
    reference_text,
)
from .decoding import DecodingOptions, decode_encoded, default_decode_frames
from .errors import UnisrError
from .manifest import ManifestRow
from .sampler import BatchLoader, FrameBatchSampler
from .tokenizer import normalize_text
from .transforms import AugmentConfig


@dataclass
class EvalOptions:
    streams: tuple[str, ...] = ("a", "v", "av")
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    snrs: tuple[float | None, ...] = (None,)  # None = clean
    noise: str | None = None
    buckets: tuple[int, ...] = ()  # frame boundaries, e.g. (50, 100, 200)
    batch_frames: int = 2000
    workers: int = 0
    tolerance: int = AV_TOLERANCE_FRAMES


@dataclass
class Utterance:
    id: str
    frames: int
    reference: str
    hypothesis: str
    word_errors: int
    words: int
    char_errors: int
    chars: int


def condition_name(snr: float | None) -> str:
    return "clean" if snr is None else f"snr{snr:g}"


def word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[int, int]:
    """(word edits, reference words) summed over utterances, both sides after the official
    normalisation: the one way WER is counted, by ``unisr eval`` and by validation in training."""
    references = [normalize_text(r) for r in references]
    out = jiwer.process_words(references, [normalize_text(h) for h in hypotheses])
    edits = out.substitutions + out.deletions + out.insertions
    return edits, sum(len(r.split()) for r in references)


def matched_words(reference: Sequence[str], hypothesis: Sequence[str]) -> list[tuple[int, int]]:
    """(reference index, hypothesis index) of the words the WER alignment finds correct: the
    words whose times can be compared with the true ones."""
    if not reference or not hypothesis:
        return []
    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return [
        (chunk.ref_start_idx + k, chunk.hyp_start_idx + k)
        for chunk in out.alignments[0]
        if chunk.type == "equal"
        for k in range(chunk.ref_end_idx - chunk.ref_start_idx)
    ]


def score(uid: str, frames: int, reference: str, hypothesis: str) -> Utterance:
    """One utterance's error counts; ``reference`` and ``hypothesis`` are normalised texts."""
    errors, words = word_errors([reference], [hypothesis])
    chars = jiwer.process_characters(reference, hypothesis)
    return Utterance(
        uid,
        frames,
        reference,
        hypothesis,
        errors,
        words,
        chars.substitutions + chars.deletions + chars.insertions,
        len(reference),
    )


def rates(utterances: list[Utterance]) -> dict:
    """Corpus-level WER/CER in percent (errors summed over utterances / reference length)."""
    words = sum(u.words for u in utterances)
    chars = sum(u.chars for u in utterances)
    return {
        "utterances": len(utterances),
        "wer": 100.0 * sum(u.word_errors for u in utterances) / words if words else None,
        "cer": 100.0 * sum(u.char_errors for u in utterances) / chars if chars else None,
        "words": words,
    }


def bootstrap_difference(
    a: list[Utterance], b: list[Utterance], samples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """WER(b) - WER(a) in points with its 95 % paired bootstrap interval over utterances: both
    systems decoded the same utterances (matched by id), which are resampled together, so the
    interval says whether a difference is larger than what the choice of test clips explains."""
    import numpy as np

    by_id = {u.id: u for u in b}
    pairs = [(u, by_id[u.id]) for u in a if u.id in by_id]
    if not pairs:
        raise UnisrError("no utterance was decoded by both systems")
    words = np.array([u.words for u, _ in pairs], dtype=np.float64)
    errors_a = np.array([u.word_errors for u, _ in pairs], dtype=np.float64)
    errors_b = np.array([v.word_errors for _, v in pairs], dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(pairs), size=(samples, len(pairs)))
    total = words[picks].sum(1)
    diffs = 100 * (errors_b[picks].sum(1) - errors_a[picks].sum(1)) / total
    point = 100 * (errors_b.sum() - errors_a.sum()) / words.sum()
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(point), float(low), float(high)


def bucket_label(frames: int, edges: tuple[int, ...]) -> str:
    lower = 0
    for edge in edges:
        if frames < edge:
            return f"{lower}-{edge}"
        lower = edge
    return f"{lower}+"


@torch.inference_mode()
def evaluate(
    model, rows: list[ManifestRow], options: EvalOptions, progress: bool = False
) -> tuple[dict, dict[tuple[str, str], list[Utterance]]]:
    """Decode ``rows`` with ``model`` (which carries ``.tokenizer``).

    Returns (summary, utterances per (stream, condition)). Utterances whose media or reference
    fail their checks are skipped and listed in the summary.
    """
    from tqdm import tqdm

    tokenizer = model.tokenizer
    references, good, skipped = {}, [], {}
    for row in rows:
        try:
            references[row.id] = reference_text(row, tokenizer)
            good.append(row)
        except BadData as err:
            skipped[row.id] = BadSample(row.id, err.path, err.reason, err.kind)
    if any(snr is not None for snr in options.snrs) and not options.noise:
        raise UnisrError("--snr needs a noise file (--noise)")
    config = model.config
    resize = config.image_size if config.image_size != config.crop_size else None
    data = DataConfig(
        augment=AugmentConfig(crop=config.crop_size, resize=resize),
        av_tolerance=options.tolerance,
        noise=options.noise,
    )
    budget = max([options.batch_frames] + [r.frames for r in good])  # never drop a long one
    device = model.device
    results: dict[tuple[str, str], list[Utterance]] = {}
    loaders = []
    for snr in options.snrs:
        dataset = AVDataset(good, data, labelled=False, train=False, snr=snr)
        sampler = FrameBatchSampler(dataset.lengths, budget, shuffle=False, num_replicas=1, rank=0)
        loader = BatchLoader(
            dataset, sampler, options.workers, pin_memory=device.type == "cuda", name="eval"
        )
        loaders.append((condition_name(snr), loader))
    total = sum(len(loader) for _, loader in loaders)
    bar = tqdm(total=total, disable=not progress, unit="batch")
    for condition, loader in loaders:
        for batch in loader:
            bar.update()
            if batch is None:
                continue
            lengths = batch.lengths.to(device)
            encoded = model.encode(
                batch.video.to(device), batch.audio.to(device), lengths, streams=options.streams
            )
            for stream in options.streams:
                nbests = decode_encoded(model, encoded[stream], lengths, stream, options.decoding)
                out = results.setdefault((stream, condition), [])
                for uid, frames, nbest in zip(batch.ids, batch.lengths.tolist(), nbests):
                    hypothesis = normalize_text(nbest[0].text) if nbest else ""
                    out.append(score(uid, frames, references[uid], hypothesis))
        skipped.update(loader.bad)
    bar.close()
    summary = {
        "utterances": len(rows),
        "decoding": asdict(options.decoding),
        "skipped": [asdict(b) for b in skipped.values()],
        "results": [],
    }
    for (stream, condition), utterances in results.items():
        entry = {"stream": stream, "condition": condition, **rates(utterances)}
        if options.buckets:
            groups: dict[str, list[Utterance]] = {}
            for u in utterances:
                groups.setdefault(bucket_label(u.frames, options.buckets), []).append(u)
            entry["buckets"] = {label: rates(us) for label, us in sorted(groups.items(), key=_lo)}
        summary["results"].append(entry)
    return summary, results


def _lo(item: tuple[str, list]) -> int:
    return int(item[0].split("-")[0].rstrip("+"))


def earlier_results(out_dir: Path) -> list[Path]:
    """The files an evaluation writes that ``out_dir`` already holds."""
    if not out_dir.is_dir():
        return []
    return sorted([*out_dir.glob("hyps_*.tsv"), *out_dir.glob("summary.json")])


def check_out_dir(out_dir: Path, overwrite: bool = False) -> None:
    """Before any decoding: ``out_dir`` must be a folder (or not exist yet) that holds no earlier
    evaluation, unless ``overwrite`` (its files are then replaced, never mixed with ours)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UnisrError(f"--out {out_dir}: exists and is not a folder")
    earlier = earlier_results(out_dir)
    if earlier and not overwrite:
        names = ", ".join(p.name for p in earlier[:4]) + (" ..." if len(earlier) > 4 else "")
        raise UnisrError(
            f"--out {out_dir}: holds an earlier evaluation ({names}); choose another folder, "
            "or give --overwrite to replace it"
        )


def write_outputs(out_dir: Path, summary: dict, results: dict) -> None:
    """Per-utterance hypotheses (TSV) and ``summary.json`` into ``out_dir``; the files of an
    earlier evaluation there are removed first, so the folder never mixes two runs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in earlier_results(out_dir):
        old.unlink()
    for (stream, condition), utterances in results.items():
        lines = ["id\tframes\treference\thypothesis\tword_errors\twords"]
        lines += [
            f"{u.id}\t{u.frames}\t{u.reference}\t{u.hypothesis}\t{u.word_errors}\t{u.words}"
            for u in sorted(utterances, key=lambda u: u.id)
        ]
        (out_dir / f"hyps_{stream}_{condition}.tsv").write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def format_table(summary: dict) -> str:
    lines = [f"{'stream':<7}{'condition':<11}{'bucket':<10}{'utts':>6}{'WER %':>9}{'CER %':>9}"]

    def line(stream, condition, bucket, r):
        wer = "-" if r["wer"] is None else f"{r['wer']:.2f}"
        cer = "-" if r["cer"] is None else f"{r['cer']:.2f}"
        return f"{stream:<7}{condition:<11}{bucket:<10}{r['utterances']:>6}{wer:>9}{cer:>9}"

    for entry in summary["results"]:
        lines.append(line(entry["stream"], entry["condition"], "all", entry))
        for label, r in entry.get("buckets", {}).items():
            lines.append(line("", "", label, r))
    return "\n".join(lines)


def parse_snr(value: str) -> float | None:
    if value.lower() in ("clean", "inf"):
        return None
    try:
        snr = float(value)
    except ValueError:
        raise UnisrError(f"--snr {value!r}: give a number in dB, or 'clean'") from None
    if not math.isfinite(snr):
        raise UnisrError(f"--snr {value!r}: give a finite number in dB, or 'clean'")
    return snr


def eval_cli(args) -> int:
    """``unisr eval``: decode a manifest with a checkpoint; write hypotheses and a summary."""
    from .checkpoint import load_model
    from .manifest import load_manifest, parse_roots

    out = Path(args.out)
    check_out_dir(out, args.overwrite)
    rows = load_manifest(args.manifest, parse_roots(args.root), parse_roots(args.audio_root))
    decoding = DecodingOptions(
        method=args.decoder,
        beam_size=args.beam,
        ctc_weight=args.ctc_weight,
        maxlenratio=args.maxlenratio,
        decode_frames=default_decode_frames(args.beam, args.decode_frames),
    )  # checked before the model loads
    model = load_model(args.checkpoint, units=args.units, device=args.device, dtype=args.dtype)
    options = EvalOptions(
        streams=tuple(args.modality),
        decoding=decoding,
        snrs=tuple(parse_snr(s) for s in args.snr) if args.snr else (None,),
        noise=args.noise,
        buckets=tuple(sorted(args.buckets or ())),
        batch_frames=args.batch_frames,
        workers=args.workers,
        tolerance=args.tolerance,
    )
    try:  # before the decoding, not after it
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UnisrError(f"--out {out}: cannot create the folder ({err.strerror})") from None
    summary, results = evaluate(model, rows, options, progress=sys.stderr.isatty())
    summary.update(checkpoint=str(args.checkpoint), manifest=str(args.manifest), dtype=args.dtype)
    write_outputs(out, summary, results)
    print(format_table(summary))
    if summary["skipped"]:
        skipped = summary["skipped"]
        print(f"skipped {len(skipped)} utterance(s); see {out / 'summary.json'}")
        for bad in skipped[:10]:
            print(f"  {bad['id']}: {bad['path']}: {bad['reason']}")
        if len(skipped) > 10:
            print(f"  ... and {len(skipped) - 10} more")
    print(f"hypotheses and summary in {out}")
    return 0
