"""Loading utterances for training and evaluation, with checks that skip bad samples.

Each clip is decoded and checked by :func:`unisr.checks.load_clip` (or read back from the decoded
cache of :mod:`unisr.cache`), then turned into the model's views.

Bad data never stops a run: :class:`AVDataset` returns a :class:`BadSample` (file + reason) in
place of the item, the collate functions set it aside, and the loaders in :mod:`unisr.sampler`
warn once per file and report the count at the end of every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .cache import CacheChain, ClipCache
from .checks import AV_TOLERANCE_FRAMES as AV_TOLERANCE_FRAMES
from .checks import (
    MIN_TRAIN_FRAMES,
    BadSample,
    Clip,
    check_frames,
    check_vocabulary,
    load_clip,
    problems_table,
)
from .checks import BadData as BadData
from .errors import UnisrError
from .manifest import ManifestRow, load_manifest, parse_roots
from .media import SAMPLES_PER_FRAME, MediaError
from .transforms import AugmentConfig, add_noise, audio_view, video_view


class TextEncoder(Protocol):
    def encode(self, text: str) -> list[int]: ...


@dataclass
class DataConfig:
    """What the data path needs from a training config (YAML section ``data``)."""

    augment: AugmentConfig = field(default_factory=AugmentConfig)
    av_tolerance: int = AV_TOLERANCE_FRAMES
    mask_labelled: bool = True  # labelled clips train the student, so they are masked too
    noise: str | None = None  # optional noise file mixed into student/labelled audio
    noise_prob: float = 0.0
    noise_snrs: list[float] = field(default_factory=lambda: [-5.0, 0.0, 5.0, 10.0])
    frames_per_batch: int = 600  # labelled budget per device (frames incl. padding)
    frames_per_batch_unlabelled: int = 2400
    workers: int = 2


# ---------------------------------------------------------------- transcripts


def unknown_characters(text: str, tokenizer: TextEncoder | None = None) -> str:
    """Characters of a transcript that cannot become targets: letters or digits outside A-Z/0-9
    (normalisation would silently drop them), and characters of the normalised text that do not
    survive ``tokenizer.encode`` + ``decode`` (absent from its vocabulary)."""
    from .tokenizer import normalize_text

    odd = {c for c in text.upper() if c.isalnum() and not c.isascii()}
    decode = getattr(tokenizer, "decode", None)
    if decode is not None:
        norm = normalize_text(text)
        odd |= set(norm) - set(decode(tokenizer.encode(norm))) - {" "}
    return "".join(sorted(odd))


def targets_for(row: ManifestRow, tokenizer: TextEncoder | None) -> list[int]:
    """Token ids: the manifest's, else those of the normalised transcript.

    Raises :class:`BadData` for an empty transcript or characters the tokenizer cannot encode.
    """
    from .tokenizer import normalize_text

    if row.tokens is not None:
        if not row.tokens:
            raise BadData(row.video, "empty transcript", "empty transcript")
        check_vocabulary(row.tokens, tokenizer, row.video)
        return row.tokens
    if not normalize_text(row.text):
        raise BadData(row.video, "empty transcript", "empty transcript")
    if tokenizer is None:
        raise UnisrError(f"{row.id}: the manifest has no token ids; a tokenizer is needed")
    missing = unknown_characters(row.text, tokenizer)
    if missing:
        raise BadData(
            row.video, f"transcript has unknown characters: {missing!r}", "unknown characters"
        )
    return list(tokenizer.encode(normalize_text(row.text)))


def check_token_ids(rows: Sequence[ManifestRow], tokenizer: TextEncoder, sample: int = 20) -> None:
    """Manifest token ids take precedence over the transcript, so ids made with another
    vocabulary would silently train on wrong targets: compare the first ``sample`` rows that
    have both with the tokenizer's own encoding."""
    from .tokenizer import normalize_text

    if not getattr(tokenizer, "can_encode", True):
        return
    both = [r for r in rows if r.tokens and normalize_text(r.text)][:sample]
    for row in both:
        if list(tokenizer.encode(normalize_text(row.text))) != list(row.tokens):
            raise UnisrError(
                f"{row.video}: the manifest's token ids for utterance {row.id} differ from what "
                "the configured tokenizer makes of its transcript; the ids were made with another "
                "vocabulary (use that tokenizer, or drop the tokens column to tokenise the text)"
            )


def reference_text(row: ManifestRow, tokenizer=None) -> str:
    """The normalised reference transcript: the manifest's text, else its decoded token ids."""
    from .tokenizer import normalize_text

    text = normalize_text(row.text)
    if not text and row.tokens and tokenizer is not None:
        check_vocabulary(row.tokens, tokenizer, row.video)
        text = normalize_text(tokenizer.decode(row.tokens))
    if not text:
        raise BadData(row.video, "empty transcript", "empty transcript")
    return text


# ---------------------------------------------------------------- dataset


class AVDataset(torch.utils.data.Dataset):
    """Items for one manifest.

    * ``labelled`` and ``train``: one augmented view (masked if ``cfg.mask_labelled``) + tokens.
    * unlabelled (``train``): a clean teacher view (``video``/``audio``: own crop and flip, no
      mask) and a masked student view (``video_student``/``audio_student``).
    * ``train=False``: the evaluation view (centre crop), and tokens if ``labelled``; ``snr``
      mixes the noise file in at that SNR (deterministically per item).

    Randomness is derived from (seed, epoch, index), so augmentation does not depend on the
    number of loader workers. A failing item comes back as :class:`BadSample`.
    """

    def __init__(
        self,
        rows: Sequence[ManifestRow],
        cfg: DataConfig | None = None,
        *,
        labelled: bool = True,
        train: bool = True,
        tokenizer: TextEncoder | None = None,
        cache=None,
        snr: float | None = None,
        seed: int = 0,
        oracle_wer: float | None = None,
    ):
        self.rows = list(rows)
        self.cfg = cfg or DataConfig()
        self.labelled, self.train = labelled, train
        self.tokenizer, self.cache, self.snr, self.seed = tokenizer, cache, snr, seed
        self.oracle_wer = oracle_wer
        self.vocabulary: list[str] = []  # words that oracle corruption substitutes and inserts
        if oracle_wer is not None:
            self.vocabulary = oracle_vocabulary(self.rows, tokenizer)
        self.epoch = 0
        self.noise = None
        if self.cfg.noise and (snr is not None or (train and self.cfg.noise_prob > 0)):
            self.noise = load_noise(self.cfg.noise)
        elif snr is not None:
            raise UnisrError("an SNR was given but no noise file (DataConfig.noise)")
        if labelled and tokenizer is not None:
            check_token_ids(self.rows, tokenizer)
        if labelled and tokenizer is None:
            untokenised = next((r for r in self.rows if r.tokens is None), None)
            if untokenised is not None:
                raise UnisrError(
                    f"utterance {untokenised.id} has a transcript but no token ids; "
                    "pass a tokenizer to tokenise at load time"
                )

    @classmethod
    def from_manifest(
        cls,
        path: str | Path | Sequence[str | Path],
        cfg: DataConfig | None = None,
        *,
        roots=None,
        audio_roots=None,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        **kwargs,
    ) -> AVDataset:
        """Dataset over any supported manifest (or the concatenation of several), reading from
        its decoded cache (``cache_dir``, default each ``MANIFEST.cache`` that exists; see
        :mod:`unisr.cache`). ``kwargs`` go to the constructor."""
        paths = [path] if isinstance(path, str | Path) else list(path)
        rows = [row for p in paths for row in load_manifest(p, roots, audio_roots)]
        cache = None
        if cache_dir is not None:
            cache = ClipCache(cache_dir)
        elif use_cache:
            found = [c for c in map(ClipCache.find, paths) if c is not None]
            cache = found[0] if len(found) == 1 else CacheChain(found) if found else None
        return cls(rows, cfg, cache=cache, **kwargs)

    @property
    def lengths(self) -> list[int]:
        """Frame counts from the manifest (what the batch sampler budgets with)."""
        return [r.frames for r in self.rows]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def clip(self, row: ManifestRow) -> Clip:
        """The checked clip of ``row`` (from the cache when it has it): frames at least the
        crop size, and at least two of them for training."""
        clip = self.cache.get(row) if self.cache is not None else None
        if clip is None:
            clip = load_clip(row, self.cfg.av_tolerance)
        check_frames(
            clip.frames, row.video, self.cfg.augment.crop, MIN_TRAIN_FRAMES if self.train else 1
        )
        return clip

    def __getitem__(self, index: int) -> dict | BadSample:
        row = self.rows[index]
        try:
            clip = self.clip(row)
            item = {"id": row.id}
            if self.labelled:
                item["tokens"] = targets_for(row, self.tokenizer)
            elif self.train:
                self._transcripts(item, row, index)
            self._views(item, clip, np.random.default_rng([self.seed, self.epoch, index]))
            return item
        except BadData as err:
            return BadSample(row.id, err.path, err.reason, err.kind)

    def _transcripts(self, item: dict, row: ManifestRow, index: int) -> None:
        """An unlabelled clip's known transcript (``transcript``: diagnostics of pseudo-label
        quality only) and, for ``pl.mode=oracle``, the labels that stand in for the teacher's
        (``oracle``: the transcript with seeded word errors at ``oracle_wer``, fixed per clip)."""
        from .tokenizer import normalize_text

        if self.oracle_wer is not None:  # the oracle's labels: a clip without them is bad
            item["transcript"] = targets_for(row, self.tokenizer)
            rng = np.random.default_rng([self.seed, index, 0x0AC1E])
            noisy = corrupt_words(normalize_text(row.text).split(), self.oracle_wer,
                                  self.vocabulary, rng)  # fmt: skip
            item["oracle"] = list(self.tokenizer.encode(" ".join(noisy))) if noisy else []
        elif row.tokens or (self.tokenizer is not None and normalize_text(row.text)):
            try:
                item["transcript"] = targets_for(row, self.tokenizer)
            except BadData:  # text the tokenizer cannot encode: no diagnostics for this clip
                pass

    def _views(self, item: dict, clip: Clip, rng: np.random.Generator) -> None:
        cfg, aug = self.cfg, self.cfg.augment
        frames, audio = clip.frames, clip.audio_float()
        if not self.train:
            if self.snr is not None:
                audio = add_noise(audio, self.noise, self.snr, rng)
            item["video"], item["audio"] = video_view(frames, aug), audio_view(audio, aug)
            return
        noisy = audio
        if self.noise is not None and rng.random() < cfg.noise_prob:
            noisy = add_noise(audio, self.noise, float(rng.choice(cfg.noise_snrs)), rng)
        if self.labelled:
            mask = cfg.mask_labelled
            item["video"] = video_view(frames, aug, rng, mask=mask)
            item["audio"] = audio_view(noisy, aug, rng, mask=mask)
            return
        item["video"] = video_view(frames, aug, rng)
        item["audio"] = audio_view(audio, aug)
        item["video_student"] = video_view(frames, aug, rng, mask=True)
        item["audio_student"] = audio_view(noisy, aug, rng, mask=True)


def oracle_vocabulary(rows: Sequence[ManifestRow], tokenizer: TextEncoder | None) -> list[str]:
    """The distinct words of the transcripts (what oracle errors draw from); an unlabelled
    manifest without a transcript on every clip cannot stand in for a teacher."""
    from .tokenizer import normalize_text

    if tokenizer is None:
        raise UnisrError("pl.mode oracle needs a tokenizer to turn transcripts into labels")
    missing = next((r for r in rows if not normalize_text(r.text)), None)
    if missing is not None:
        raise UnisrError(
            f"pl.mode oracle uses the unlabelled clips' transcripts, and {missing.id} has none"
        )
    return sorted({w for r in rows for w in normalize_text(r.text).split()})


def corrupt_words(
    words: list[str], rate: float, vocabulary: list[str], rng: np.random.Generator
) -> list[str]:
    """``words`` with word errors at ``rate`` per reference word: each word is, with
    probability ``rate``, substituted, deleted or followed by an inserted word (one edit each,
    equally likely), so the expected WER against ``words`` is ``rate``."""
    out = []
    for word in words:
        if rng.random() >= rate:
            out.append(word)
            continue
        edit = rng.integers(3)
        if edit == 0:
            others = [w for w in vocabulary if w != word] or [word]
            out.append(others[rng.integers(len(others))])
        elif edit == 2:
            out += [word, vocabulary[rng.integers(len(vocabulary))]]
    return out


def load_noise(path: str | Path) -> np.ndarray:
    """A noise recording (e.g. babble) as float32 16 kHz mono."""
    from .media import read_sound, resample

    audio, rate = read_sound(path)
    if len(audio) == 0:
        raise MediaError(path, "noise file has no samples")
    return resample(audio.mean(axis=1), rate)


# ---------------------------------------------------------------- collate


def _pad_stack(tensors: list[torch.Tensor], length: int) -> torch.Tensor:
    out = tensors[0].new_zeros((len(tensors), length, *tensors[0].shape[1:]))
    for i, t in enumerate(tensors):
        out[i, : len(t)] = t
    return out


def _split_bad(items: list) -> tuple[list[dict], list[BadSample]]:
    good = [x for x in items if not isinstance(x, BadSample)]
    return good, [x for x in items if isinstance(x, BadSample)]


@dataclass
class Batch:
    """Padded clips: ``video`` (B,T,H,W), ``audio`` (B,T*640), ``lengths`` (B,) in frames;
    labelled clips add ``targets`` (B,U) padded with -1 and ``target_lengths``; unlabelled
    ones the student's masked views ``video_student``/``audio_student``."""

    ids: list[str]
    video: torch.Tensor
    audio: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor | None = None
    target_lengths: torch.Tensor | None = None
    video_student: torch.Tensor | None = None
    audio_student: torch.Tensor | None = None
    transcripts: torch.Tensor | None = None  # unlabelled clips' known text: diagnostics only
    transcript_lengths: torch.Tensor | None = None
    oracle_tokens: torch.Tensor | None = None  # pl.mode=oracle: labels in the teacher's place
    oracle_lengths: torch.Tensor | None = None

    @property
    def frames(self) -> int:
        """Valid video frames in the batch (padding not counted)."""
        return int(self.lengths.sum())

    def to(self, device: torch.device | str) -> Batch:
        moved = {
            k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in vars(self).items()
        }
        return Batch(**moved)


def collate(items: list[dict | BadSample]) -> tuple[Batch | None, list[BadSample]]:
    """Pad the good items into a :class:`Batch` (None if there is none) and set the bad ones
    aside, for the loaders to count and report."""
    good, bad = _split_bad(items)
    if not good:
        return None, bad
    lengths = torch.tensor([len(x["video"]) for x in good], dtype=torch.long)
    t_max = int(lengths.max())
    fields: dict = {"ids": [x["id"] for x in good], "lengths": lengths}
    for key in ("video", "video_student"):
        if key in good[0]:
            fields[key] = _pad_stack([x[key] for x in good], t_max)
    for key in ("audio", "audio_student"):
        if key in good[0]:
            fields[key] = _pad_stack([x[key] for x in good], t_max * SAMPLES_PER_FRAME)
    for key, names in (
        ("tokens", ("targets", "target_lengths")),
        ("transcript", ("transcripts", "transcript_lengths")),
        ("oracle", ("oracle_tokens", "oracle_lengths")),
    ):
        if all(key in x for x in good):  # a batch has a clip's text only if it has every one's
            fields.update(zip(names, _pad_tokens([x[key] for x in good])))
    return Batch(**fields), bad


def _pad_tokens(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (B, U) padded with -1, and their lengths."""
    lengths = torch.tensor([len(t) for t in sequences], dtype=torch.long)
    out = torch.full((len(sequences), int(lengths.max())), -1, dtype=torch.long)
    for i, tokens in enumerate(sequences):
        out[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return out, lengths


# ---------------------------------------------------------------- validation


def check_row(
    row: ManifestRow,
    tokenizer: TextEncoder | None = None,
    labelled: bool = True,
    tolerance: int = AV_TOLERANCE_FRAMES,
    crop: int | None = None,
) -> BadSample | None:
    """Full check of one utterance (decode, frame size against ``crop``, and the transcript if
    ``labelled``); None if fine. The same checks as the training and evaluation data path.

    Without token ids or a tokenizer only the emptiness of the transcript can be checked, and
    of token ids only that none is the blank.
    """
    try:
        load_clip(row, tolerance, crop, MIN_TRAIN_FRAMES)  # what training would skip
        if labelled and row.tokens is None and tokenizer is None:
            from .tokenizer import normalize_text

            if not normalize_text(row.text):
                raise BadData(row.video, "empty transcript", "empty transcript")
            missing = unknown_characters(row.text)
            if missing:
                raise BadData(
                    row.video,
                    f"transcript has unknown characters: {missing!r}",
                    "unknown characters",
                )
        elif labelled:
            targets_for(row, tokenizer)
        return None
    except BadData as err:
        return BadSample(row.id, err.path, err.reason, err.kind)


def validate_rows(
    rows: Sequence[ManifestRow],
    tokenizer: TextEncoder | None = None,
    labelled: bool = True,
    workers: int = 1,
    tolerance: int = AV_TOLERANCE_FRAMES,
    progress: bool = False,
    crop: int | None = None,
) -> list[BadSample]:
    """Check every row (in ``workers`` processes); returns the problems in manifest order."""
    from functools import partial

    from tqdm import tqdm

    check = partial(
        check_row, tokenizer=tokenizer, labelled=labelled, tolerance=tolerance, crop=crop
    )
    chunk = max(1, min(64, math.ceil(len(rows) / max(1, workers * 8))))
    if workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(workers) as pool:
            results = list(
                tqdm(pool.imap(check, rows, chunk), total=len(rows), disable=not progress)
            )
    else:
        results = [check(r) for r in tqdm(rows, disable=not progress)]
    return [r for r in results if r is not None]


def validate_cli(args) -> int:
    """``unisr validate``: check a whole manifest up front; exit 1 if anything is wrong."""
    import sys
    from collections import Counter

    from .tokenizer import load_tokenizer

    rows = load_manifest(args.manifest, parse_roots(args.root), parse_roots(args.audio_root))
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    problems = validate_rows(
        rows,
        tokenizer,
        labelled=not args.unlabelled,
        workers=args.workers,
        tolerance=args.tolerance,
        progress=sys.stderr.isatty(),
        crop=args.crop or None,
    )
    if not problems:
        print(f"{args.manifest}: {len(rows)} utterances, no problems")
        return 0
    print(problems_table(problems))
    counts = Counter(p.kind for p in problems)
    print(f"\n{args.manifest}: {len(problems)} of {len(rows)} utterances have problems")
    for reason, n in counts.most_common():
        print(f"  {n:6d}  {reason}")
    return 1
