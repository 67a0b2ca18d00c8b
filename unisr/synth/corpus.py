"""``unisr synth``: a synthetic audio-visual speech corpus that needs no download.

Speech comes from eSpeak NG (:mod:`unisr.synth.speech`), the mouth video from the phoneme
timings (:mod:`unisr.synth.mouth`), so audio and video share one timeline. The corpus has the
structure of the real task: speech that is easy to hear and hard to lip-read, many speakers and
faces, a small labelled pool and a ten times larger unlabelled one (partly multi-sentence, so
longer), held-out test speakers, and test sets that are longer (``test_long``) or from other
voices, faces, text and recording conditions (``test_ood``), plus babble noise for SNR tests.

Layout under ``--out DIR``: ``{split}/{id}.mp4`` (lossless 96x96 gray, 25 fps), ``{id}.wav``
(16 kHz, exactly 640 samples per frame), ``{id}.json`` (phone and word timings, speaker),
manifests ``{split}.tsv`` (typed) and ``{split}.csv`` (USR dialect, tag ``synth``),
``tokenizer.model``, ``noise/babble.wav``, ``speakers.json``, ``summary.json``.

Every random choice derives from (seed, split, index), so a corpus is reproducible whatever the
number of workers, and a rerun skips finished utterances and redoes partial ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import UnisrError
from ..files import atomic_write, partial_path
from ..manifest import ManifestRow, write_manifest, write_usr_csv
from ..media import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME, fit_audio, write_audio, write_video
from ..tokenizer import Tokenizer, normalize_text
from .mouth import Face, Take, articulate, render
from .speech import Voice, speech_seconds, synthesize

SPLITS = ("train_labelled", "train_unlabelled", "val", "test", "test_long", "test_ood")
DOMAINS = ("grid", "open", "both")
TAG = "synth"
FORMAT_VERSION = 4  # bump when the same settings would render a different corpus

# GRID-like command grammar: command, colour, preposition, letter (no W), digit, adverb
GRID_SLOTS = (
    ("bin", "lay", "place", "set"),
    ("blue", "green", "red", "white"),
    ("at", "by", "in", "with"),
    tuple("ABCDEFGHIJKLMNOPQRSTUVXYZ"),
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    ("again", "now", "please", "soon"),
)
# eSpeak says a capital letter by its name, except "A", which it reads as the article
SPOKEN = {"A": "eigh"}

# eSpeak NG voices. Training speakers use the first lists; out-of-domain and babble speakers
# use accents and variants never heard in training.
TRAIN_ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-029")
TRAIN_VARIANTS = tuple("m1 m2 m3 m4 m5 m6 m7 f1 f2 f3 f4 klatt klatt2 klatt3".split()) + tuple(
    "adam andy anika aunty belinda benjamin boris david edward linda max michel paul steph".split()
)
OOD_ACCENTS = ("en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
OOD_VARIANTS = tuple("m8 f5 klatt4 klatt5 Alex Annie Denis caleb ian john norbert quincy".split())


@dataclass(frozen=True)
class Size:
    """Utterances per split, speaker pools and babble length of one corpus size."""

    counts: dict[str, int]
    train_speakers: int
    heldout_speakers: int  # val and test: unseen people, same distribution
    ood_speakers: int
    babble_speakers: int = 8
    babble_seconds: float = 60.0
    long_buckets: tuple[int, ...] = (1, 2, 3, 4, 5)  # multiples of the longest labelled clip
    multi_sentence: float = 0.3  # share of unlabelled clips made of 2-4 sentences


def _counts(lab: int, unlab: int, val: int, test: int, long: int, ood: int) -> dict[str, int]:
    return dict(zip(SPLITS, (lab, unlab, val, test, long, ood), strict=True))


SIZES: dict[str, Size] = {
    # a few seconds of work: used by the tests
    "test": Size(_counts(8, 12, 2, 2, 2, 3), 4, 2, 2, babble_seconds=8.0, long_buckets=(1, 5)),
    # ~1.6 h; the CPU demo (grid domain)
    "tiny": Size(_counts(200, 1400, 50, 100, 30, 60), 20, 8, 8, babble_seconds=60.0),
    # ~3 h; <= 10 min on 2 cores
    "small": Size(_counts(400, 2700, 100, 200, 50, 150), 100, 20, 20, 12, 300.0),
    # ~3 h of single sentences, labelled and unlabelled alike: a teacher trained on 1,000
    # labelled clips labels clips like them (the semi-supervised benchmark's size)
    "base": Size(
        _counts(1000, 3000, 100, 300, 30, 100),
        100,
        20,
        20,
        8,
        120.0,
        long_buckets=(1, 2, 3, 4, 5),
        multi_sentence=0.0,
    ),  # fmt: skip
    # ~15 h
    "medium": Size(_counts(2000, 13500, 300, 600, 100, 400), 300, 40, 40, 16, 600.0),
}
DEFAULT_VOCAB = {"grid": 96, "open": 256, "both": 256}


@dataclass(frozen=True)
class Speaker:
    """A synthetic person: a voice and a face, reused across all of their utterances."""

    id: str
    voice: Voice
    face: Face
    pool: str  # train, heldout, ood or babble


@dataclass(frozen=True)
class Utterance:
    """Everything needed to render one clip; derived from (seed, split, index) only."""

    id: str
    split: str
    speaker: Speaker
    voice: Voice  # the speaker's voice at this utterance's speaking rate
    sentences: tuple[str, ...]  # text as spoken (one or more sentences)
    text: str  # normalised transcript
    domain: str
    take: Take
    seed: int
    bucket: int = 0  # test_long: target length in multiples of the longest labelled clip
    pad: tuple[float, float] = (0.3, 0.3)
    gain: float = 0.8


@dataclass
class Corpus:
    """The plan of a corpus: speakers and utterances, before anything is rendered."""

    size: str
    domain: str
    seed: int
    vocab_size: int
    speakers: list[Speaker] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)
    babble: list[Speaker] = field(default_factory=list)


# --------------------------------------------------------------------------- text


def _stable_bucket(text: str) -> int:
    """0..99 from the text itself, so a sentence always falls in the same text pool."""
    return int(hashlib.sha1(text.lower().encode()).hexdigest()[:8], 16) % 100


def _pool_of(text: str) -> str:
    b = _stable_bucket(text)
    return "train" if b < 80 else "val" if b < 85 else "test"


def load_sentences() -> list[str]:
    """The shipped open-domain sentences (WordNet 3.0 examples, see assets/README.md)."""
    path = Path(__file__).resolve().parents[1] / "assets" / "wordnet_sentences.txt"
    return [s for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]


class TextSource:
    """Draws (spoken, transcript) sentences of a domain from a text pool (train/val/test)."""

    def __init__(self):
        self.open = {"train": [], "val": [], "test": []}
        for s in load_sentences():
            self.open[_pool_of(s)].append(s)

    def draw(self, rng: np.random.Generator, domain: str, pool: str) -> tuple[str, str, str]:
        if domain == "both":
            domain = "grid" if rng.random() < 0.5 else "open"
        if domain == "open":
            spoken = self.open[pool][rng.integers(len(self.open[pool]))]
            return spoken, normalize_text(spoken), "open"
        while True:  # rejection sampling keeps grid sentences of different pools apart
            words = [slot[rng.integers(len(slot))] for slot in GRID_SLOTS]
            text = " ".join(words)
            if _pool_of(text) == pool:
                spoken = " ".join(SPOKEN.get(w, w) for w in words)
                return spoken, normalize_text(text), "grid"


# --------------------------------------------------------------------------- planning


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def make_speaker(seed: int, pool: str, index: int) -> Speaker:
    """A reproducible speaker of a pool; ood and babble use unseen accents and variants."""
    code = ("train", "heldout", "ood", "babble").index(pool)
    rng = _rng(seed, 1000 + code, index)
    unseen = pool in ("ood", "babble")
    accents, variants = (OOD_ACCENTS, OOD_VARIANTS) if unseen else (TRAIN_ACCENTS, TRAIN_VARIANTS)
    voice = Voice(
        language=str(accents[rng.integers(len(accents))]),
        variant=str(variants[rng.integers(len(variants))]),
        pitch=int(rng.integers(25, 76)),
        pitch_range=int(rng.integers(30, 81)),
        rate=int(rng.integers(120, 231) if unseen else rng.integers(140, 201)),
        word_gap=int(rng.integers(0, 3)),
    )
    face = Face.sample(rng, unusual=pool == "ood")
    return Speaker(f"{pool}{index:04d}", voice, face, pool)


def plan_corpus(
    size: str = "tiny", domain: str = "grid", seed: int = 0, vocab_size: int | None = None
) -> Corpus:
    """Decide every speaker and utterance of a corpus. Nothing is rendered; only the labelled
    and test_long texts are spoken once (audio discarded), to measure their lengths."""
    if size not in SIZES:
        raise UnisrError(f"unknown corpus size {size!r} (choose from {', '.join(SIZES)})")
    if domain not in DOMAINS:
        raise UnisrError(f"unknown text domain {domain!r} (choose from {', '.join(DOMAINS)})")
    spec = SIZES[size]
    corpus = Corpus(size, domain, seed, vocab_size or DEFAULT_VOCAB[domain])
    pools = {
        "train": [make_speaker(seed, "train", i) for i in range(spec.train_speakers)],
        "heldout": [make_speaker(seed, "heldout", i) for i in range(spec.heldout_speakers)],
        "ood": [make_speaker(seed, "ood", i) for i in range(spec.ood_speakers)],
    }
    corpus.speakers = [s for group in pools.values() for s in group]
    corpus.babble = [make_speaker(seed, "babble", i) for i in range(spec.babble_speakers)]
    texts = TextSource()
    other = {"grid": "open", "open": "grid", "both": "both"}[domain]
    longest = 0.0  # seconds of the longest labelled utterance (test_long is measured in it)
    for code, split in enumerate(SPLITS):
        for index in range(spec.counts[split]):
            rng = _rng(seed, code, index)
            pool, text_pool, dom, n_sent, bucket = "train", "train", domain, 1, 0
            take = Take.sample(rng)
            if split in ("val", "test"):
                pool, text_pool = "heldout", split
            elif split == "test_long":
                pool, text_pool = "heldout", "test"
                bucket = spec.long_buckets[index % len(spec.long_buckets)]
            elif split == "test_ood":
                pool, text_pool, dom = "ood", "test", other
                take = Take.sample(rng, harsh=True)
            elif split == "train_unlabelled" and rng.random() < spec.multi_sentence:
                n_sent = int(rng.integers(2, 5))
            speaker = pools[pool][rng.integers(len(pools[pool]))]
            # nobody says two things at quite the same rate
            voice = replace(speaker.voice, rate=int(speaker.voice.rate * rng.uniform(0.93, 1.07)))
            pad = (float(rng.uniform(0.15, 0.45)), float(rng.uniform(0.15, 0.45)))
            drawn = []
            seconds = sum(pad)
            while len(drawn) < n_sent or (bucket and seconds < bucket * longest):
                drawn.append(texts.draw(rng, dom, text_pool))
                if bucket or split == "train_labelled":  # lengths matter: measure them
                    seconds += speech_seconds(drawn[-1][0], voice)
            longest = max(longest, seconds) if split == "train_labelled" else longest
            corpus.utterances.append(
                Utterance(
                    id=f"{split}_{index:06d}",
                    split=split,
                    speaker=speaker,
                    voice=voice,
                    sentences=tuple(_sentence_end(spoken) for spoken, _, _ in drawn),
                    text=" ".join(text for _, text, _ in drawn),
                    domain="+".join(sorted({d for _, _, d in drawn})),
                    take=take,
                    seed=int(rng.integers(2**31)),
                    bucket=bucket,
                    pad=pad,
                    gain=float(rng.uniform(0.5, 1.0)),
                )
            )
    return corpus


def _sentence_end(sentence: str) -> str:
    return sentence if sentence[-1] in ".?!" else sentence + "."


# --------------------------------------------------------------------------- rendering


def _paths(out: Path, utt: Utterance) -> tuple[Path, Path, Path]:
    base = out / utt.split / utt.id
    return base.with_suffix(".mp4"), base.with_suffix(".wav"), base.with_suffix(".json")


def speak(utt: Utterance) -> tuple[np.ndarray, list, list, int]:
    """Synthesise an utterance: audio fitted to whole frames, phones, words, frame count."""
    rng = _rng(utt.seed, 1)
    speech = synthesize(" ".join(utt.sentences), utt.voice).padded(*utt.pad)
    n_frames = -(-len(speech.audio) // SAMPLES_PER_FRAME)
    floor = 10 ** (rng.uniform(-62, -48) / 20)  # microphone noise floor
    audio = fit_audio(speech.audio * utt.gain, n_frames)
    audio = audio + rng.normal(0, floor, len(audio)).astype(np.float32)
    return audio, speech.phones, speech.words, n_frames


def render_utterance(utt: Utterance) -> tuple[np.ndarray, np.ndarray, dict]:
    """(frames uint8 (T,96,96), audio float32 (T*640,), metadata) of one utterance."""
    audio, phones, words, n_frames = speak(utt)
    track = articulate(phones, n_frames, utt.speaker.face, _rng(utt.seed, 2))
    frames = render(track, utt.speaker.face, utt.take)
    meta = {
        "id": utt.id,
        "split": utt.split,
        "speaker": utt.speaker.id,
        "text": utt.text,
        "spoken": " ".join(utt.sentences),
        "domain": utt.domain,
        "frames": n_frames,
        "bucket": utt.bucket,
        "phones": [[p.symbol, round(p.start, 4), round(p.end, 4)] for p in phones],
        "words": [[w.text, round(w.start, 4), round(w.end, 4)] for w in words],
    }
    return frames, audio, meta


def build_utterance(out: Path, utt: Utterance) -> dict:
    """Write one utterance unless it is complete already; returns its metadata.

    Files are written under temporary names and renamed; the .mp4 goes last, so its presence
    means the utterance is complete."""
    mp4, wav, meta_path = _paths(out, utt)
    if mp4.is_file() and wav.is_file() and meta_path.is_file():
        return json.loads(meta_path.read_text())
    frames, audio, meta = render_utterance(utt)
    atomic_write(wav, lambda tmp: write_audio(tmp, audio))
    atomic_write(meta_path, json.dumps(meta))
    atomic_write(mp4, lambda tmp: write_video(tmp, frames))
    return meta


def babble_voice(seed: int, index: int, speaker: Speaker, seconds: float) -> np.ndarray:
    """One babble speaker talking continuously (open-domain sentences, short gaps) for
    ``seconds`` from a random starting point, scaled to unit RMS."""
    rng = _rng(seed, 2000, index)
    texts, n = TextSource(), int(seconds * SAMPLE_RATE)
    stream, total = [], 0
    while total < n + SAMPLE_RATE:
        spoken, _, _ = texts.draw(rng, "open", "test")
        clip = synthesize(spoken, speaker.voice).audio
        stream.append(np.pad(clip, (0, int(rng.uniform(0.05, 0.3) * SAMPLE_RATE))))
        total += len(stream[-1])
    voice = np.concatenate(stream)
    start = int(rng.integers(0, len(voice) - n))
    voice = voice[start : start + n]
    return voice / (np.sqrt(np.mean(voice**2)) + 1e-9)


def mix_babble(voices: list[np.ndarray]) -> np.ndarray:
    """Babble: the sum of equally loud voices, scaled to -20 dBFS RMS."""
    mix = np.sum(voices, axis=0)
    return (mix * 0.1 / (np.sqrt(np.mean(mix**2)) + 1e-9)).astype(np.float32)


# --------------------------------------------------------------------------- corpus


def _check_config(out: Path, corpus: Corpus) -> None:
    config = {
        "format": FORMAT_VERSION,
        "size": corpus.size,
        "domain": corpus.domain,
        "seed": corpus.seed,
        "vocab_size": corpus.vocab_size,
    }
    path = out / "synth.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("format") != FORMAT_VERSION:
            raise UnisrError(
                f"{out} holds a corpus made by another version of unisr synth (format "
                f"{old.get('format')}, now {FORMAT_VERSION}): delete it or choose another --out"
            )
        if old != config:
            raise UnisrError(
                f"{out} holds a corpus built with {old}, not {config}: "
                "choose another --out folder or delete it"
            )
        return
    if out.exists() and not out.is_dir():
        raise UnisrError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        shown = ", ".join(sorted(p.name for p in out.iterdir())[:5])
        raise UnisrError(
            f"--out {out}: the folder is not empty ({shown}) and holds no unisr synth corpus "
            "(no synth.json); a corpus is built only into an empty or new folder, or resumed "
            "in its own"
        )
    atomic_write(path, json.dumps(config, indent=1))  # creates the folder


def _own_partials(out: Path, corpus: Corpus) -> list[Path]:
    """The temporary names this corpus writes under (nothing else is ever deleted)."""
    names = [out / name for name in ("synth.json", "speakers.json", "summary.json")]
    names.append(out / "noise" / "babble.wav")
    for utt in corpus.utterances:
        names += _paths(out, utt)
    return [partial_path(p) for p in names]


def _clean_partials(out: Path, corpus: Corpus) -> int:
    """Delete files left half-written by an interrupted run of this corpus; returns how many."""
    stale = [p for p in _own_partials(out, corpus) if p.is_file()]
    for p in stale:
        p.unlink()
    return len(stale)


def _work(args: tuple[Path, Utterance]) -> dict:
    return build_utterance(*args)


def _starmap(func, jobs):
    return [func(*job) for job in jobs]


def build_corpus(
    out: str | Path,
    size: str = "tiny",
    domain: str = "grid",
    seed: int = 0,
    workers: int = 1,
    vocab_size: int | None = None,
    progress: bool = True,
    limit: int | None = None,
) -> dict:
    """Build (or finish) a corpus in ``out``; returns the summary. ``limit`` stops after that
    many utterances have been rendered (for benchmarks and tests of resumption)."""
    start = time.time()
    out = Path(out)
    corpus = plan_corpus(size, domain, seed, vocab_size)
    _check_config(out, corpus)
    repaired = _clean_partials(out, corpus)
    todo = corpus.utterances[:limit] if limit is not None else corpus.utterances
    metas: dict[str, dict] = {}
    bar = tqdm(total=len(todo), desc=f"synth {size}/{domain}", unit="utt", disable=not progress)
    babble_path = out / "noise" / "babble.wav"
    finish = limit is None or limit >= len(corpus.utterances)
    babble_jobs = []
    if finish and not babble_path.is_file():
        seconds = SIZES[size].babble_seconds
        babble_jobs = [(seed, i, spk, seconds) for i, spk in enumerate(corpus.babble)]
    with get_context("spawn").Pool(workers) if workers > 1 else nullcontext() as pool:
        imap = partial(pool.imap_unordered, chunksize=4) if pool else map
        starmap = pool.starmap if pool else _starmap
        for meta in imap(_work, [(out, u) for u in todo]):
            metas[meta["id"]] = meta
            bar.update()
        bar.close()
        if not finish:
            return {}
        voices = starmap(babble_voice, babble_jobs)
    if babble_jobs:
        atomic_write(babble_path, lambda tmp: write_audio(tmp, mix_babble(voices)))

    labelled = [u.text for u in corpus.utterances if u.split == "train_labelled"]
    tokenizer = Tokenizer.train(labelled, corpus.vocab_size, out / "tokenizer.model")
    write_manifests(out, corpus, metas, tokenizer)
    speakers = [asdict(s) for s in corpus.speakers + corpus.babble]
    atomic_write(out / "speakers.json", json.dumps(speakers, indent=1))
    summary = summarize(corpus, metas, tokenizer)
    summary["build_seconds"] = round(time.time() - start, 1)
    summary["repaired_partial_files"] = repaired
    atomic_write(out / "summary.json", json.dumps(summary, indent=1))  # last: marks it complete
    return summary


def write_manifests(out: Path, corpus: Corpus, metas: dict, tokenizer: Tokenizer) -> None:
    """Typed ``{split}.tsv`` and USR-dialect ``{split}.csv`` manifests with token ids."""
    for split in SPLITS:
        rows = []
        for utt in corpus.utterances:
            if utt.split != split:
                continue
            mp4, wav, _ = _paths(out, utt)
            rows.append(
                ManifestRow(
                    id=utt.id,
                    video=str(mp4),
                    audio=str(wav),
                    frames=metas[utt.id]["frames"],
                    text=utt.text,
                    tokens=tokenizer.encode(utt.text),
                    speaker=utt.speaker.id,
                    split=split,
                )
            )
        write_manifest(out / f"{split}.tsv", rows)
        write_usr_csv(out / f"{split}.csv", rows, TAG)


def summarize(corpus: Corpus, metas: dict, tokenizer: Tokenizer) -> dict:
    """Hours, speakers and vocabulary per split, length buckets, out-of-vocabulary rates."""
    spec = SIZES[corpus.size]
    labelled_vocab = {
        w for u in corpus.utterances if u.split == "train_labelled" for w in u.text.split()
    }
    longest = max(metas[u.id]["frames"] for u in corpus.utterances if u.split == "train_labelled")
    splits = {}
    for split in SPLITS:
        utts = [u for u in corpus.utterances if u.split == split]
        frames = np.array([metas[u.id]["frames"] for u in utts])
        words = [w for u in utts for w in u.text.split()]
        tokens = [t for u in utts for t in tokenizer.encode(u.text)]
        splits[split] = {
            "utterances": len(utts),
            "hours": round(frames.sum() / FPS / 3600, 3),
            "mean_seconds": round(frames.mean() / FPS, 2),
            "max_seconds": round(frames.max() / FPS, 2),
            "speakers": len({u.speaker.id for u in utts}),
            "vocabulary": len(set(words)),
            "oov_rate": round(sum(w not in labelled_vocab for w in words) / max(len(words), 1), 4),
            "unk_token_rate": round(tokens.count(1) / max(len(tokens), 1), 4),
            "domains": dict(Counter(u.domain for u in utts)),
        }
    buckets = {}
    for u in corpus.utterances:
        if u.split == "test_long":
            buckets.setdefault(u.bucket, []).append(metas[u.id]["frames"])
    return {
        "size": corpus.size,
        "domain": corpus.domain,
        "seed": corpus.seed,
        "hours_total": round(sum(s["hours"] for s in splits.values()), 3),
        "splits": splits,
        "speakers": {
            "train": spec.train_speakers,
            "heldout (val, test, test_long)": spec.heldout_speakers,
            "ood (test_ood)": spec.ood_speakers,
            "babble": spec.babble_speakers,
        },
        "vocabulary_labelled": len(labelled_vocab),
        "tokenizer_vocab_size": tokenizer.vocab_size,
        "longest_labelled_frames": int(longest),
        "test_long_buckets": {
            f"{b}x": {
                "utterances": len(f),
                "min_frames": int(min(f)),
                "max_frames": int(max(f)),
                "min_ratio_to_longest_labelled": round(min(f) / longest, 2),
            }
            for b, f in sorted(buckets.items())
        },
        "babble": {"speakers": spec.babble_speakers, "seconds": spec.babble_seconds},
    }


# --------------------------------------------------------------------------- preview


def _caption_at(meta: dict, t: float) -> tuple[str, str]:
    word = next((w for w, a, b in meta["words"] if a <= t < b), "")
    phone = next((p for p, a, b in meta["phones"] if a <= t < b), "")
    return word, phone


def write_preview(out: str | Path, n_utterances: int = 3, step: int = 2) -> list[Path]:
    """A PNG contact sheet (every ``step``-th frame of a few labelled clips, with the word and
    phone under each frame and the transcript above) and a short mp4 with sound, in ``out``."""
    from PIL import Image, ImageDraw, ImageFont

    from ..manifest import read_manifest
    from ..media import read_audio, read_video

    out = Path(out)
    rows, seen = [], set()
    for row in read_manifest(out / "train_labelled.tsv"):
        if row.speaker not in seen:
            rows.append(row)
            seen.add(row.speaker)
        if len(rows) == n_utterances:
            break
    tile, per_line, scale = 144, 12, 3
    from matplotlib import font_manager

    face = font_manager.findfont("DejaVu Sans")  # ships with matplotlib; has the IPA glyphs
    font, title_font = ImageFont.truetype(face, 13), ImageFont.truetype(face, 16)
    blocks, clips, sounds = [], [], []
    for row in rows:
        frames, _ = read_video(row.video)
        meta = json.loads(Path(row.video).with_suffix(".json").read_text())
        speech = [p for p in meta["phones"] if p[0] != "_"]
        first = int(speech[0][1] * FPS) if speech else 0
        last = int(speech[-1][2] * FPS) + 1 if speech else len(frames)
        picks = list(range(max(first - 2, 0), min(last + 2, len(frames)), step))
        lines = -(-len(picks) // per_line)
        block = Image.new("L", (per_line * tile, 28 + lines * (tile + 34)), 255)
        draw = ImageDraw.Draw(block)
        draw.text((6, 5), f"{row.text}   ({row.speaker})", fill=0, font=title_font)
        for i, k in enumerate(picks):
            x, y = (i % per_line) * tile, 28 + (i // per_line) * (tile + 34)
            block.paste(Image.fromarray(frames[k]).resize((tile, tile), Image.BICUBIC), (x, y))
            word, phone = _caption_at(meta, (k + 0.5) / FPS)
            draw.text((x + 4, y + tile + 1), f"{k}  /{phone}/", fill=0, font=font)
            draw.text((x + 4, y + tile + 16), word, fill=90, font=font)
        blocks.append(block)
        clips.append(np.kron(frames, np.ones((1, scale, scale), np.uint8)))
        sounds.append(read_audio(row.audio))
    sheet = Image.new("L", (per_line * tile, sum(b.height for b in blocks)), 255)
    y = 0
    for b in blocks:
        sheet.paste(b, (0, y))
        y += b.height
    png, mp4 = out / "preview.png", out / "preview.mp4"
    sheet.save(png)
    write_video(mp4, np.concatenate(clips), audio=np.concatenate(sounds), lossless=False)
    return [png, mp4]


def format_summary(summary: dict) -> str:
    lines = [
        f"synthetic corpus: size {summary['size']}, domain {summary['domain']}, "
        f"seed {summary['seed']}, {summary['hours_total']:.2f} h in all",
        f"{'split':<18}{'utts':>7}{'hours':>8}{'mean s':>8}{'max s':>7}{'spk':>5}{'vocab':>7}"
        f"{'OOV':>7}",
    ]
    for name, s in summary["splits"].items():
        lines.append(
            f"{name:<18}{s['utterances']:>7}{s['hours']:>8.3f}{s['mean_seconds']:>8.2f}"
            f"{s['max_seconds']:>7.1f}{s['speakers']:>5}{s['vocabulary']:>7}{s['oov_rate']:>7.1%}"
        )
    buckets = ", ".join(
        f"{k}: {v['min_ratio_to_longest_labelled']}x+"
        for k, v in summary["test_long_buckets"].items()
    )
    lines.append(f"test_long length buckets (shortest / longest labelled): {buckets}")
    lines.append(
        f"labelled vocabulary {summary['vocabulary_labelled']} words, tokenizer "
        f"{summary['tokenizer_vocab_size']} ids; babble from {summary['babble']['speakers']} "
        f"unseen speakers, {summary['babble']['seconds']:.0f} s"
    )
    if "build_seconds" in summary:
        lines.append(f"built in {summary['build_seconds']:.0f} s")
    return "\n".join(lines)


def synth_cli(args: argparse.Namespace) -> int:
    summary = build_corpus(
        args.out,
        size=args.size,
        domain=args.domain,
        seed=args.seed,
        workers=args.workers or os.cpu_count() or 1,
        vocab_size=args.vocab_size,
    )
    print(format_summary(summary))
    if args.preview:
        for path in write_preview(args.out):
            print(f"preview: {path}")
    return 0
