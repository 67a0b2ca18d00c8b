"""Speech synthesis with eSpeak NG, in process, with phoneme and word timings.

The library and its voice data come from the ``espeakng-loader`` wheel (no system package). One
synthesis call returns 16 kHz mono audio plus the start and end time of every phoneme and word,
taken from the library's own synthesis events, so audio and timings share one clock. The same
text and voice always give the same samples (see :class:`_Engine`).
"""

from __future__ import annotations

import _ctypes
import ctypes
import shutil
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import UnisrError
from ..media import SAMPLE_RATE, resample

ESPEAK_RATE = 22050  # what standard (non-MBROLA) voices synthesise at
PAUSE = "_"  # phone symbol used for silence
STOPS = frozenset("p b t d k ɡ g tʃ dʒ".split())
MAX_CLOSURE = 0.12  # s; a longer silence before a stop is a real pause, not its closure
TYPICAL_CLOSURE = 0.06  # s; the closure given to a stop after a real pause

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA = 0x1, 0x2
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_END = 0, 1, 5
_EVENT_MSG_TERMINATED, _EVENT_PHONEME = 6, 7
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7


class SpeechError(UnisrError):
    """eSpeak NG could not be loaded or could not synthesise a text."""


@dataclass(frozen=True)
class Voice:
    """A speaker's voice: eSpeak NG language voice and variant plus prosody settings.

    ``pitch`` and ``pitch_range`` are eSpeak's 0-99 scales, ``rate`` is words per minute and
    ``word_gap`` an extra pause between words in units of 10 ms.
    """

    language: str = "en-us"
    variant: str = "m3"
    pitch: int = 50
    pitch_range: int = 50
    rate: int = 175
    word_gap: int = 0
    volume: int = 100

    @property
    def name(self) -> str:
        return f"{self.language}+{self.variant}" if self.variant else self.language


@dataclass(frozen=True)
class Phone:
    """One phoneme (IPA, stress marks removed; ``PAUSE`` for silence) and its time span."""

    symbol: str
    start: float
    end: float
    stress: int = 0  # 0 none, 1 primary, 2 secondary


@dataclass(frozen=True)
class Word:
    """A span of the input text as eSpeak reports it. eSpeak sometimes joins an unstressed
    function word to its neighbour ("with the"); such a group is one ``Word``."""

    text: str
    start: float
    end: float


@dataclass
class Speech:
    """16 kHz float32 audio and its phoneme and word timings (seconds)."""

    audio: np.ndarray
    phones: list[Phone]
    words: list[Word]
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def padded(self, before: float, after: float) -> Speech:
        """Add ``before``/``after`` seconds of silence, shifting every timing."""
        head, tail = round(before * self.sample_rate), round(after * self.sample_rate)
        shift = head / self.sample_rate
        audio = np.pad(self.audio, (head, tail))
        end = len(audio) / self.sample_rate
        phones = [replace(p, start=p.start + shift, end=p.end + shift) for p in self.phones]
        phones = [Phone(PAUSE, 0.0, shift)] + phones if head else phones
        if tail:
            phones.append(Phone(PAUSE, phones[-1].end if phones else 0.0, end))
        words = [replace(w, start=w.start + shift, end=w.end + shift) for w in self.words]
        return Speech(audio, _merge_pauses(phones), words, self.sample_rate)


class _IdUnion(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _IdUnion),
    ]


try:
    _libc_srand = ctypes.CDLL(None).srand
except (OSError, AttributeError):  # not on every platform; only breathy Klatt voices use it
    _libc_srand = None

_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Engine:
    """Runs eSpeak NG in this process, in a fresh instance of the library for every text.

    The library keeps synthesis state between calls (pitch flutter, glottal phase, echo, Klatt
    filters), so the same text would come out slightly differently depending on what was said
    before. Loading a private copy of the library anew for each text (a few ms) makes the output
    a function of the text and voice alone, which reproducible corpora need.
    """

    def __init__(self):
        try:
            import espeakng_loader

            source = Path(espeakng_loader.get_library_path())
            self.data = espeakng_loader.get_data_path().encode()
        except (ImportError, OSError, RuntimeError) as err:
            raise SpeechError(f"cannot find eSpeak NG from espeakng-loader ({err})") from None
        self._tmp = tempfile.TemporaryDirectory(prefix="unisr-espeak-")
        self.path = str(Path(self._tmp.name) / source.name)
        shutil.copyfile(source, self.path)  # private: nobody else holds this copy open
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, int, int, int, bytes]] = []
        self._callback = _Callback(self._collect)  # keep a reference: C holds the pointer
        self.lock = threading.Lock()

    def _collect(self, wav, n, events) -> int:
        if n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            name = bytes(e.id.string) if e.type == _EVENT_PHONEME else b""
            self.events.append((e.type, e.text_position, e.length, e.sample, name))
            i += 1
        return 0

    def _load(self) -> ctypes.CDLL:
        try:
            lib = ctypes.CDLL(self.path, mode=ctypes.RTLD_LOCAL)
        except OSError as err:
            raise SpeechError(f"cannot load eSpeak NG ({err})") from None
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
        lib.espeak_Synth.argtypes += [ctypes.c_int, ctypes.c_uint, ctypes.c_uint]
        lib.espeak_Synth.argtypes += [ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data, options)
        if rate != ESPEAK_RATE:
            raise SpeechError(f"eSpeak NG initialisation failed (returned {rate})")
        lib.espeak_SetSynthCallback(self._callback)
        # noise sources: eSpeak's own generator and, for Klatt voices with breath, libc's rand()
        lib.espeak_ng_SetRandSeed(0)
        if _libc_srand is not None:
            _libc_srand(0)
        return lib

    def run(self, text: str, voice: Voice) -> tuple[np.ndarray, list]:
        with self.lock:
            lib = self._load()
            try:
                if lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                    raise SpeechError(f"eSpeak NG has no voice {voice.name!r}")
                for param, value in (
                    (_RATE, voice.rate),
                    (_PITCH, voice.pitch),
                    (_RANGE, voice.pitch_range),
                    (_WORDGAP, voice.word_gap),
                    (_VOLUME, voice.volume),
                ):
                    lib.espeak_SetParameter(param, int(value), 0)
                self.chunks, self.events = [], []
                data = text.encode("utf-8") + b"\0"
                err = lib.espeak_Synth(
                    data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
                if err != 0:
                    raise SpeechError(f"eSpeak NG failed on {text!r} (error {err})")
            finally:
                lib.espeak_Terminate()
                _ctypes.dlclose(lib._handle)
            audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
            return audio, self.events


_engine: _Engine | None = None


def _get_engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def _split_stress(name: str) -> tuple[str, int]:
    stress = 1 if "\u02c8" in name else 2 if "\u02cc" in name else 0
    return name.replace("\u02c8", "").replace("\u02cc", ""), stress


def _merge_pauses(phones: list[Phone]) -> list[Phone]:
    out: list[Phone] = []
    for p in phones:
        if p.end <= p.start:
            continue
        if out and p.symbol == PAUSE and out[-1].symbol == PAUSE:
            out[-1] = replace(out[-1], end=p.end)
        else:
            out.append(p)
    return out


def _attach_closures(phones: list[Phone]) -> list[Phone]:
    """Give every stop its closure, as phonetic segmentations do (a /b/ then spans its
    closed-lips interval). eSpeak marks a closure as a silence before the burst: a short one
    becomes part of the stop; of a longer one (a real pause) the stop takes TYPICAL_CLOSURE.
    After a sounding phone the stop is often only its burst, the closure hidden in the phone
    before: the stop then takes up to TYPICAL_CLOSURE from it (at most half of it)."""
    out: list[Phone] = []
    for p in phones:
        prev = out[-1] if out else None
        if prev is None or p.symbol not in STOPS:
            out.append(p)
            continue
        if prev.symbol == PAUSE and prev.end - prev.start <= MAX_CLOSURE:
            out[-1] = replace(p, start=prev.start)
            continue
        if prev.symbol == PAUSE:
            start = prev.end - TYPICAL_CLOSURE
        else:
            start = max(p.end - TYPICAL_CLOSURE, (prev.start + prev.end) / 2)
        start = min(start, p.start)
        out[-1] = replace(prev, end=start)
        out.append(replace(p, start=start))
    return out


def speech_seconds(text: str, voice: Voice = Voice()) -> float:
    """How long ``text`` takes to say with ``voice`` (cheaper than :func:`synthesize`)."""
    raw, _ = _get_engine().run(text, voice)
    return len(raw) / ESPEAK_RATE


def synthesize(text: str, voice: Voice = Voice()) -> Speech:
    """Speak ``text`` with ``voice``: 16 kHz audio, phones covering the whole clip, words."""
    if not text.strip():
        raise SpeechError("cannot synthesise empty text")
    raw, events = _get_engine().run(text, voice)
    total = len(raw)
    if total == 0:
        raise SpeechError(f"eSpeak NG produced no audio for {text!r}")
    ends = [s for kind, _, _, s, _ in events if kind in (_EVENT_END, _EVENT_MSG_TERMINATED)]
    stop = min(max(ends, default=total), total) / ESPEAK_RATE

    phones: list[Phone] = []
    marks = [(s / ESPEAK_RATE, n) for kind, _, _, s, n in events if kind == _EVENT_PHONEME]
    if not marks or marks[0][0] > 0:
        phones.append(Phone(PAUSE, 0.0, marks[0][0] if marks else stop))
    for i, (start, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else stop
        symbol, stress = _split_stress(name.decode("utf-8", "replace").strip("\0"))
        phones.append(Phone(symbol or PAUSE, start, end, stress))
    if stop < total / ESPEAK_RATE:
        phones.append(Phone(PAUSE, stop, total / ESPEAK_RATE))

    word_events = [
        (pos, length, s / ESPEAK_RATE) for kind, pos, length, s, _ in events if kind == _EVENT_WORD
    ]
    words = []
    for i, (pos, length, start) in enumerate(word_events):
        end = word_events[i + 1][2] if i + 1 < len(word_events) else stop
        first = max(pos - 1, 0)  # eSpeak counts characters from 1
        words.append(Word(text[first : first + length].strip(), start, max(end, start)))

    audio = resample(raw.astype(np.float32) / 32768.0, ESPEAK_RATE, SAMPLE_RATE)
    phones = _attach_closures(_merge_pauses(phones))
    # the resampled clip can be one sample shorter or longer: make the last phone end with it
    last = len(audio) / SAMPLE_RATE
    if phones:
        phones[-1] = replace(phones[-1], end=last)
    return Speech(np.clip(audio, -1.0, 1.0), phones, words)
