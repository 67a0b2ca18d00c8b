"""Speech synthesis timings and the mouth renderer (unisr.synth.speech, unisr.synth.mouth)."""

from dataclasses import replace

import numpy as np
import pytest

from unisr.media import SAMPLE_RATE
from unisr.synth.corpus import (
    GRID_SLOTS,
    OOD_ACCENTS,
    SPOKEN,
    TRAIN_ACCENTS,
    load_sentences,
    make_speaker,
)
from unisr.synth.mouth import (
    PARAMS,
    PHONE_VISEMES,
    VISEMES,
    Face,
    Take,
    articulate,
    render,
    render_phones,
    split_phone,
    visemes_of,
)
from unisr.synth.speech import MAX_CLOSURE, PAUSE, Phone, SpeechError, Voice, synthesize


def mouth_opening(frames: np.ndarray) -> np.ndarray:
    """Vertical extent (px) of the dark mouth cavity per frame, measured from the image only:
    pixels darker than half the frame's median brightness, counted down each of the 24 central
    columns and averaged over them. Closed lips give ~0; a visible cavity gives several px."""
    f = frames.astype(np.float32)
    threshold = 0.5 * np.median(f.reshape(len(f), -1), axis=1)[:, None, None]
    return (f[:, 16:90, 36:60] < threshold).sum(axis=1).mean(axis=1)


def test_speech_audio_and_timings_cover_the_clip():
    speech = synthesize("Bin blue at F two now.", Voice())
    assert speech.audio.dtype == np.float32 and speech.sample_rate == SAMPLE_RATE
    assert 0.8 < speech.duration < 4.0
    phones = speech.phones
    assert phones[0].start == 0.0 and phones[-1].end == pytest.approx(speech.duration)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(phones, phones[1:]))
    assert all(p.end > p.start for p in phones)

    # speech is louder during phones than during pauses
    def rms(p):
        seg = speech.audio[int(p.start * SAMPLE_RATE) : int(p.end * SAMPLE_RATE)]
        return np.sqrt(np.mean(seg**2)) if len(seg) else 0.0

    voiced = [rms(p) for p in phones if p.symbol in ("ɪ", "uː", "aʊ", "ɛ")]
    pauses = [rms(p) for p in phones if p.symbol == PAUSE]
    assert min(voiced) > 10 * max(pauses)
    assert [w.text for w in speech.words][:2] == ["Bin", "blue"]
    assert all(0 <= w.start <= w.end <= speech.duration for w in speech.words)


def test_stop_closure_belongs_to_the_stop():
    # "a bee": eSpeak puts the /b/ closure in a short silence before the burst
    phones = synthesize("a bee", Voice()).phones
    b = next(i for i, p in enumerate(phones) if p.symbol == "b")
    assert phones[b - 1].symbol != PAUSE or phones[b - 1].end - phones[b - 1].start > MAX_CLOSURE
    assert phones[b].end - phones[b].start > 0.04  # closure + burst, not the burst alone


def test_grid_letters_are_said_by_their_names():
    names = {"A": "eɪ", "B": "b iː", "F": "ɛ f", "I": "aɪ", "Q": "k j uː", "Z": "z iː"}
    for letter, phones in names.items():
        said = synthesize(f"at {SPOKEN.get(letter, letter)} two", Voice()).phones
        assert phones in " ".join(p.symbol for p in said if p.symbol != PAUSE), letter


def test_voice_errors_and_padding():
    with pytest.raises(SpeechError):
        synthesize("hello", Voice(language="xx-nonexistent"))
    with pytest.raises(SpeechError):
        synthesize("   ")
    speech = synthesize("hello there", Voice())
    padded = speech.padded(0.2, 0.3)
    assert padded.duration == pytest.approx(speech.duration + 0.5, abs=1e-3)
    first = next(p for p in speech.phones if p.symbol != PAUSE)
    moved = next(p for p in padded.phones if p.symbol != PAUSE)
    assert padded.phones[0].symbol == PAUSE and moved.start == pytest.approx(first.start + 0.2)
    assert padded.phones[-1].end == pytest.approx(padded.duration, abs=1e-3)


def test_every_phone_espeak_produces_has_a_viseme():
    sentences = load_sentences()[::150] + [
        " ".join(SPOKEN.get(w, w) for w in slot) for slot in GRID_SLOTS
    ]
    unknown = set()
    for accent in TRAIN_ACCENTS + OOD_ACCENTS:
        for text in sentences:
            for phone in synthesize(text, Voice(language=accent)).phones:
                unknown |= {s for s in split_phone(phone.symbol) if s not in PHONE_VISEMES}
    assert not unknown


def test_viseme_inventory_is_many_to_one():
    used = set(PHONE_VISEMES.values())
    assert len(used) >= 10 and used <= set(VISEMES)
    assert visemes_of("p") == visemes_of("b") == visemes_of("m") == ["bilabial"]
    assert visemes_of("f") == visemes_of("v")
    assert visemes_of("t") == visemes_of("d") == visemes_of("n")
    assert visemes_of("aɪ") == ["open", "high_front"]  # diphthongs move between two shapes
    assert len(PHONE_VISEMES) > 2 * len(used)


def test_coarticulation_is_smooth_and_anticipatory():
    phones = [Phone(PAUSE, 0, 0.3), Phone("ɑː", 0.3, 0.6), Phone("m", 0.6, 0.7)]
    phones += [Phone("ɑː", 0.7, 1.0), Phone(PAUSE, 1.0, 1.4)]
    track = articulate(phones, 35)
    opening = track[:, PARAMS.index("open")]
    assert opening.max() > 0.8 and opening[int(0.65 * 25)] < 0.05  # open vowel, closed /m/
    # no hard switch: opening up from rest passes through intermediate shapes over >= 3 frames
    rise = opening[: int(0.45 * 25)]
    assert np.sum((rise > 0.1) & (rise < 0.9 * opening.max())) >= 2
    assert np.abs(np.diff(opening)).max() < 0.6
    # the lips are already closing in the frame before /m/ starts (anticipation)
    assert opening[int(0.56 * 25)] < 0.9 * opening[int(0.45 * 25)]


def _sentence_frames(text, face, take, rng):
    speech = synthesize(text, Voice()).padded(0.2, 0.2)
    n = -(-len(speech.audio) // 640)
    return speech, render_phones(speech.phones, n, face, take, rng)


def test_bilabials_render_closed_and_open_vowels_open():
    """Measured on the images of several random (in-domain) faces and recording conditions:
    at the middle of every /p b m/ less than 1 px of cavity shows (closed lips); every long open
    vowel (/ɑː/, /a/) shows a cavity of at least 3 px at its widest."""
    rng = np.random.default_rng(7)
    closed, opened = [], []
    for _ in range(5):
        face, take = Face.sample(rng), Take.sample(rng)
        speech, frames = _sentence_frames("Pa, Bob bought a palm. Mom, pop by!", face, take, rng)
        opening = mouth_opening(frames)
        for p in speech.phones:
            if visemes_of(p.symbol) == ["bilabial"]:
                closed.append(opening[int((p.start + p.end) / 2 * 25)])
            if visemes_of(p.symbol)[0] == "open" and p.end - p.start > 0.08:
                opened.append(opening[int(p.start * 25) : int(p.end * 25) + 1].max())
    assert len(closed) >= 30 and len(opened) >= 10
    assert max(closed) < 1.0
    assert min(opened) >= 3.0


def test_render_is_deterministic_and_anti_aliased():
    rng = np.random.default_rng(0)
    face, take = Face.sample(rng), Take.sample(rng)
    track = np.tile(np.array(VISEMES["open"].targets), (4, 1))
    a, b = render(track, face, take), render(track, face, take)
    assert a.dtype == np.uint8 and a.shape == (4, 96, 96)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render(track, face, replace(take, seed=take.seed + 1)))
    # edges are smooth: with no blur and no noise, lip edges still take intermediate values
    sharp = render(track[:1], face, Take(blur=0, noise=0, motion=0))[0].astype(int)
    assert len(np.unique(sharp[30:70, 20:76])) > 60


def test_speakers_differ_in_face_and_voice():
    a, b = make_speaker(0, "train", 0), make_speaker(0, "train", 1)
    track = np.array([VISEMES[v].targets for v in ("rest", "open", "rounded")])
    take = Take(blur=0.5, noise=0, motion=0)
    look_a, look_b = render(track, a.face, take), render(track, b.face, take)
    assert np.abs(look_a.astype(int) - look_b.astype(int)).mean() > 8  # gray levels

    def spectrum(voice):  # long-term average log spectrum of the speech frames
        audio = synthesize("Place red at G nine again. The children played.", voice).audio
        frames = audio[: len(audio) // 512 * 512].reshape(-1, 512)
        frames = frames[(frames**2).mean(axis=1) > 1e-4]
        power = np.abs(np.fft.rfft(frames * np.hanning(512), axis=1)) ** 2
        return 10 * np.log10(power.mean(axis=0) + 1e-10)

    va, vb = spectrum(a.voice), spectrum(b.voice)
    va_again = spectrum(replace(a.voice, rate=int(a.voice.rate * 1.06)))  # same person, faster
    between = np.sqrt(np.mean((va - vb) ** 2))
    within = np.sqrt(np.mean((va - va_again) ** 2))
    assert between > 2 * within


def test_same_text_and_voice_give_the_same_audio_whatever_came_before():
    voice = Voice(variant="klatt2", pitch=60)
    first = synthesize("Set green by Q four now.", voice).audio
    synthesize("Something else, said by a breathy voice.", Voice(variant="caleb"))
    assert np.array_equal(first, synthesize("Set green by Q four now.", voice).audio)
