"""Text <-> token ids with the official id convention.

Ids: blank 0, pieces 1..N (piece ``i`` of the unit list is id ``i``), sos = eos = N + 1. The
official release ships only the id -> piece list (``unigram1000_units.txt``), enough to decode;
our own tokenizers are SentencePiece unigram models, trained with ``<unk>`` as piece 0 so that
SentencePiece id ``k`` is unisr id ``k + 1`` (``<unk>`` = 1, as in the official list).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from .errors import UnisrError
from .files import atomic_write

WORD_MARK = "\u2581"  # SentencePiece word-boundary marker


def normalize_text(text: str) -> str:
    """Official text normalisation for training targets and WER: upper case, letters, digits and
    apostrophes only, single spaces."""
    text = re.sub(r"[^A-Z0-9' ]+", " ", text.upper())
    return " ".join(text.split())


class Tokenizer:
    """Maps normalised text to ids and back. ``pieces[i]`` has id ``i + 1``."""

    def __init__(self, pieces: list[str], sp_model: bytes | None = None):
        if not pieces:
            raise UnisrError("a tokenizer needs at least one piece")
        self.pieces = list(pieces)
        self.sp_model = sp_model
        self._sp = None
        if sp_model is not None:
            try:
                self._sp = spm.SentencePieceProcessor(model_proto=sp_model)
            except (RuntimeError, TypeError, ValueError) as err:
                raise UnisrError(
                    f"the SentencePiece model is damaged ({type(err).__name__})"
                ) from None
            if self._sp.vocab_size() != len(self.pieces):
                raise UnisrError("SentencePiece model and piece list disagree in size")

    # ids
    @property
    def vocab_size(self) -> int:
        return len(self.pieces) + 2

    blank = 0

    @property
    def sos(self) -> int:
        return len(self.pieces) + 1

    eos = sos

    @property
    def can_encode(self) -> bool:
        return self._sp is not None

    def encode(self, text: str) -> list[int]:
        if self._sp is None:
            raise UnisrError(
                "this tokenizer is a bare unit list (no SentencePiece model): it can decode but "
                "not encode text; give token ids, or train one with `unisr tokenizer train`"
            )
        return [i + 1 for i in self._sp.encode(normalize_text(text))]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; blank, sos/eos and out-of-range ids are dropped."""
        n = len(self.pieces)
        text = "".join(self.pieces[i - 1] for i in map(int, ids) if 1 <= i <= n)
        return " ".join(text.replace(WORD_MARK, " ").split())

    # construction and storage
    @classmethod
    def from_units(cls, path: str | Path) -> Tokenizer:
        """Official unit list: lines ``<piece> <index>`` with indices 1..N in order."""
        path = Path(path)
        if not path.is_file():
            raise UnisrError(f"{path}: unit list not found")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise UnisrError(
                f"{path}: not a unit list (not UTF-8 text: {err.reason} at byte {err.start})"
            ) from None
        pieces = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) != len(pieces) + 1:
                raise UnisrError(f"{path}:{number}: expected '<piece> {len(pieces) + 1}'")
            pieces.append(parts[0])
        return cls(pieces)

    @classmethod
    def from_sentencepiece(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        if not path.is_file():
            raise UnisrError(f"{path}: SentencePiece model not found")
        proto = path.read_bytes()
        try:
            sp = spm.SentencePieceProcessor(model_proto=proto)
        except RuntimeError as err:
            raise UnisrError(f"{path}: not a SentencePiece model ({err})") from None
        if sp.unk_id() != 0 or sp.bos_id() >= 0 or sp.eos_id() >= 0:
            raise UnisrError(
                f"{path}: expected <unk> as piece 0 and no bos/eos pieces "
                "(train it with `unisr tokenizer train`)"
            )
        return cls([sp.id_to_piece(i) for i in range(sp.vocab_size())], proto)

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, out_path: str | Path | None = None
    ) -> Tokenizer:
        """Train a unigram SentencePiece model on normalised ``texts``; ``vocab_size`` counts its
        pieces (``<unk>`` included). Written atomically to ``out_path`` when given."""
        texts = [t for t in (normalize_text(t) for t in texts) if t]
        if not texts:
            raise UnisrError("no text to train a tokenizer on")
        model = io.BytesIO()
        try:
            _train_sentencepiece(texts, vocab_size, model)
        except RuntimeError as err:  # SentencePiece reports bad settings as internal errors
            raise UnisrError(f"cannot train a {vocab_size}-piece tokenizer: {err}") from None
        proto = model.getvalue()
        if out_path is not None:
            atomic_write(out_path, proto)
        sp = spm.SentencePieceProcessor(model_proto=proto)
        return cls([sp.id_to_piece(i) for i in range(sp.vocab_size())], proto)

    def to_dict(self) -> dict:
        return {"pieces": self.pieces, "sp_model": self.sp_model}

    @classmethod
    def from_dict(cls, data: dict) -> Tokenizer:
        pieces, sp_model = data.get("pieces"), data.get("sp_model")
        if not isinstance(pieces, list) or not all(isinstance(p, str) for p in pieces):
            raise UnisrError("the vocabulary's pieces are not a list of strings")
        if sp_model is not None and not isinstance(sp_model, bytes):
            raise UnisrError("the SentencePiece model is not bytes")
        return cls(pieces, sp_model)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer in a file: an official unit list if its name ends in ``.txt``, else a
    SentencePiece model. Every command that opens a tokenizer file comes here, so no two read
    the same file differently."""
    if not str(path):
        raise UnisrError("no tokenizer given (a SentencePiece .model or a unit list .txt)")
    path = Path(path)
    if path.suffix == ".txt":
        return Tokenizer.from_units(path)
    return Tokenizer.from_sentencepiece(path)


def _train_sentencepiece(texts: list[str], vocab_size: int, out: io.BytesIO) -> None:
    """A unigram model over whole normalised transcripts, ``<unk>`` = 0, no bos/eos/pad."""
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=out,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        normalization_rule_name="identity",
        num_threads=1,
        minloglevel=2,
    )
