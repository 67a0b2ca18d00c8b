"""Mouth-region video rendered from timed phonemes: 25 fps, 96x96, uint8 grayscale.

Phonemes map to visemes (many to one: p, b and m all close the lips). Each viseme sets target
values for a few articulatory parameters; a dominance model in the style of Cohen & Massaro
(1993) blends neighbouring targets, so lips anticipate and carry over shapes (co-articulation)
and visually strong sounds (p/b/m, f/v, w) win over weak ones (k, h, t). The parameters drive a
2-D mouth drawn with signed distances (anti-aliased edges, no per-pixel Python loops) for a
whole clip at once: lips, teeth, tongue and cavity on a textured skin, under per-speaker
appearance, head motion, a lighting gradient, blur and sensor noise.

Frame ``k`` shows the interval [0.04 k, 0.04 (k + 1)) s, i.e. audio samples 640 k .. 640 (k + 1)
at 16 kHz; its parameters are averaged over that interval (the exposure).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import affine_transform, gaussian_filter

from ..media import FPS
from .speech import PAUSE, Phone

SIZE = 96
PARAMS = ("open", "jaw", "spread", "round", "upper_teeth", "lower_teeth", "tongue", "tip", "tuck")
# which dominance group each parameter uses: 0 aperture, 1 lip shape, 2 teeth/tongue
_GROUP = np.array([0, 0, 1, 1, 2, 2, 2, 2, 0])


@dataclass(frozen=True)
class Viseme:
    """Articulatory targets (0..1) and dominance: ``strength`` per parameter group (aperture,
    lip shape, inner mouth) and ``reach`` (s), how far the influence extends in time."""

    targets: tuple[float, ...]  # in PARAMS order
    strength: tuple[float, float, float]
    reach: float


# Targets (0..1, in PARAMS order), dominance strength per parameter group (aperture, lip shape,
# inner mouth) and reach (s). Bilabials and labiodentals dominate the aperture, so the lips
# really close; velars and alveolars are weak and take the shape of the neighbouring vowels.
_TABLE = """
#             open jaw  sprd rnd  utth ltth tong tip  tuck  s_ape s_shp s_inn reach
rest          0.03 0.05 0    0    0    0    0    0    0     0.8   0.5   0.5   0.06
bilabial      0    0.12 0    0    0    0    0    0    0     40    0.3   0.3   0.012
labiodental   0.10 0.12 0    0    0.9  0    0    0    1     12    0.6   4     0.015
dental        0.26 0.22 0    0    0.8  0.4  0.3  1    0     2     0.4   4     0.025
alveolar      0.22 0.18 0.2  0    0.5  0.4  0.8  0    0     0.5   0.3   1     0.03
sibilant      0.12 0.05 0.5  0    0.9  0.8  0.4  0    0     1.5   0.8   2     0.03
postalveolar  0.22 0.12 0    0.7  0.8  0.6  0.5  0    0     1.5   3     1.5   0.03
velar         0.30 0.30 0    0    0.2  0.1  0.3  0    0     0.3   0.2   0.4   0.03
rhotic        0.22 0.18 0    0.5  0.3  0    0    0    0     0.8   1.5   0.6   0.03
rounded       0.18 0.15 0    1    0    0    0    0    0     1.2   4     1     0.04
high_front    0.22 0.12 0.9  0    0.8  0.5  0.6  0    0     1     2     1     0.04
mid_front     0.55 0.45 0.5  0    0.6  0.3  0.3  0    0     1.5   1.2   1     0.04
open          1    0.95 0.1  0    0.7  0.2  0.1  0    0     2     1     1     0.04
mid_central   0.45 0.38 0    0    0.3  0.1  0.2  0    0     1.2   0.6   0.8   0.04
mid_back      0.65 0.60 0    0.6  0.3  0    0.1  0    0     1.5   2     0.8   0.04
near_back     0.28 0.25 0    0.55 0.2  0    0.2  0    0     1     1.5   0.8   0.04
"""


def _parse_table(table: str) -> dict[str, Viseme]:
    rows = [line.split() for line in table.strip().splitlines()[1:]]
    return {
        name: Viseme(tuple(map(float, v[:9])), tuple(map(float, v[9:12])), float(v[12]))
        for name, *v in rows
    }


VISEMES: dict[str, Viseme] = _parse_table(_TABLE)

# IPA (as eSpeak NG writes English) -> viseme. Longer symbols are matched first, so a diphthong
# such as "aɪ" splits into its parts ("a" then "ɪ") and each gets its own target.
PHONE_VISEMES: dict[str, str] = {
    PAUSE: "rest",
    **dict.fromkeys(["p", "b", "m"], "bilabial"),
    **dict.fromkeys(["f", "v"], "labiodental"),
    **dict.fromkeys(["θ", "ð"], "dental"),
    **dict.fromkeys(["t", "d", "n", "l", "ɾ", "ɫ", "n̩", "l̩", "ʔ"], "alveolar"),
    **dict.fromkeys(["s", "z"], "sibilant"),
    **dict.fromkeys(["ʃ", "ʒ", "tʃ", "dʒ"], "postalveolar"),
    **dict.fromkeys(["k", "ɡ", "g", "ŋ", "h", "x", "ç"], "velar"),
    **dict.fromkeys(["ɹ", "r", "ɚ", "ɝ"], "rhotic"),
    **dict.fromkeys(["w", "u", "uː", "ʍ", "ʉ", "ʉː"], "rounded"),
    **dict.fromkeys(["i", "iː", "ɪ", "j", "ᵻ", "ɨ"], "high_front"),
    **dict.fromkeys(["e", "eː", "ɛ", "ɛː", "æ"], "mid_front"),
    **dict.fromkeys(["a", "aː", "ɑ", "ɑː", "ä"], "open"),
    **dict.fromkeys(["ə", "ɐ", "ʌ", "ɜ", "ɜː", "ɵ"], "mid_central"),
    **dict.fromkeys(["o", "oː", "ɔ", "ɔː", "ɒ"], "mid_back"),
    **dict.fromkeys(["ʊ"], "near_back"),
}
_SYMBOLS = sorted(PHONE_VISEMES, key=len, reverse=True)


_MARKS = "ːˑ:̩̪̃ʲ"  # length, syllabic, dental, nasal and palatal marks: no shape of their own


def split_phone(symbol: str) -> list[str]:
    """Split a phone symbol into the known symbols it is made of, longest match first
    ("aɪə" -> a, ɪ, ə); a character that is not known comes back on its own."""
    if symbol == PAUSE or not symbol:
        return [PAUSE]
    out, i = [], 0
    while i < len(symbol):
        known = next((s for s in _SYMBOLS if symbol.startswith(s, i)), None)
        part = known or symbol[i]
        if part not in _MARKS:
            out.append(part)
        i += len(part)
    return out or [PAUSE]


def visemes_of(symbol: str) -> list[str]:
    """Viseme sequence of one phone symbol (diphthongs and r-coloured vowels give several).
    Unknown symbols fall back to the neutral "mid_central"."""
    return [PHONE_VISEMES.get(part, "mid_central") for part in split_phone(symbol)]


@dataclass(frozen=True)
class Face:
    """A speaker's appearance and articulation style (pixels refer to the 96x96 crop)."""

    skin: float = 160.0  # gray level of the skin
    lip_contrast: float = 40.0  # how much darker the lips are
    mouth_width: float = 22.0  # half width at rest
    upper_lip: float = 5.0  # thickness
    lower_lip: float = 7.0
    bow: float = 0.3  # Cupid's bow prominence
    smile: float = 0.0  # corner height (+ up)
    max_open: float = 20.0  # inner-lip gap of a wide-open vowel
    jaw: float = 6.0  # extra chin travel at full jaw drop
    articulation: float = 1.0  # gain on mouth opening (hypo < 1 < hyper)
    teeth: float = 215.0  # gray level of the teeth
    teeth_show: float = 7.0  # teeth visible at full show
    cavity: float = 25.0
    tongue: float = 95.0
    beard: float = 0.0  # 0 clean shaven .. 1 full stubble/beard
    scale: float = 1.0  # face size in the crop
    offset: tuple[float, float] = (0.0, 2.0)  # mouth centre from the crop centre (x, y)
    texture_seed: int = 0

    @staticmethod
    def sample(rng: np.random.Generator, unusual: bool = False) -> Face:
        """A random face. ``unusual`` draws from wider, shifted ranges (out-of-domain faces:
        beards, extreme skin tones and lip shapes)."""
        u = rng.uniform
        if unusual:
            skin = float(rng.choice([u(60, 100), u(200, 220)]))
            beard = float(u(0.5, 1.0))
        else:
            skin = float(u(105, 200))
            beard = float(u(0, 0.35)) if u() < 0.3 else 0.0
        width = float(u(18, 25) if not unusual else rng.choice([u(15, 18), u(25, 28)]))
        return Face(
            skin=skin,
            lip_contrast=float(u(25, 60) * (0.6 if skin < 110 else 1.0)),
            mouth_width=width,
            upper_lip=float(u(3.5, 6.5) if not unusual else u(2.5, 8)),
            lower_lip=float(u(5.0, 9.0) if not unusual else u(4, 11)),
            bow=float(u(0.1, 0.5)),
            smile=float(u(-1.5, 2.0)),
            max_open=float(width * u(0.75, 1.0)),
            jaw=float(u(3, 8)),
            articulation=float(u(0.7, 1.2)),
            teeth=float(u(190, 235)),
            teeth_show=float(u(5, 9)),
            cavity=float(u(12, 40)),
            tongue=float(u(70, 115)),
            beard=beard,
            scale=float(u(0.9, 1.1)),
            offset=(float(u(-3, 3)), float(u(-1, 5))),
            texture_seed=int(rng.integers(2**31)),
        )


@dataclass(frozen=True)
class Take:
    """Recording conditions of one clip: head motion, lighting, blur and sensor noise."""

    seed: int = 0
    motion: float = 1.0  # head-motion amplitude (1 = typical talking head)
    light_gain: float = 0.2  # strength of the lighting gradient across the crop
    light_angle: float = 0.0
    brightness: float = 1.0
    blur: float = 0.6  # Gaussian sigma in pixels
    noise: float = 2.0  # sensor noise sigma in gray levels

    @staticmethod
    def sample(rng: np.random.Generator, harsh: bool = False) -> Take:
        u = rng.uniform
        return Take(
            seed=int(rng.integers(2**31)),
            motion=float(u(0.3, 1.3) if not harsh else u(1.0, 2.0)),
            light_gain=float(u(0.05, 0.35) if not harsh else u(0.3, 0.6)),
            light_angle=float(u(0, 2 * np.pi)),
            brightness=float(u(0.85, 1.15)),
            blur=float(u(0.3, 1.1)),
            noise=float(u(0.3, 2.0) if not harsh else u(2.0, 5.0)),
        )


# --------------------------------------------------------------------------- articulation


def _segments(phones: list[Phone]) -> list[tuple[str, float, float, int]]:
    """(viseme, start, end, stress) with diphthongs split; the first part takes 60 %."""
    out = []
    for p in phones:
        parts = visemes_of(p.symbol)
        dur = p.end - p.start
        bounds = [p.start] + [
            p.start + dur * (0.6 + 0.4 * i / (len(parts) - 1)) for i in range(len(parts) - 1)
        ]
        bounds.append(p.end)
        out += [(v, bounds[i], bounds[i + 1], p.stress) for i, v in enumerate(parts)]
    return out


def articulate(
    phones: list[Phone],
    n_frames: int,
    face: Face = Face(),
    rng: np.random.Generator | None = None,
    samples_per_frame: int = 4,
) -> np.ndarray:
    """Parameter trajectories (n_frames, len(PARAMS)), each frame averaged over its interval.

    Targets are blended with dominance ``strength * exp(-distance / reach)`` where distance is
    the time from the middle 40 % of a segment. ``rng`` adds per-segment variability.
    """
    segs = _segments(phones) or [("rest", 0.0, n_frames / FPS, 0)]
    targets = np.array([VISEMES[v].targets for v, *_ in segs], dtype=np.float64)
    strength = np.array([VISEMES[v].strength for v, *_ in segs])[:, _GROUP]
    reach = np.array([VISEMES[v].reach for v, *_ in segs])
    start = np.array([s for _, s, _, _ in segs])
    end = np.array([e for _, _, e, _ in segs])
    stress = np.array([st for *_, st in segs])
    is_rest = np.array([v == "rest" for v, *_ in segs])

    gain = np.where(stress == 1, 1.1, np.where(stress == 2, 1.0, 0.85)) * face.articulation
    gain = np.where(is_rest, 1.0, gain)
    if rng is not None:
        gain = gain * rng.normal(1.0, 0.08, len(segs))
        targets[:, 2:] = np.clip(targets[:, 2:] + rng.normal(0, 0.05, (len(segs), 7)), 0, 1)
    targets[:, :2] *= gain[:, None]

    dur = end - start
    core_lo, core_hi = start + 0.3 * dur, end - 0.3 * dur
    t = (np.arange(n_frames * samples_per_frame) + 0.5) / (FPS * samples_per_frame)
    dist = np.maximum(core_lo[:, None] - t[None], 0) + np.maximum(t[None] - core_hi[:, None], 0)
    dom = np.exp(-dist / reach[:, None])  # (S, N)
    weights = dom[:, None, :] * strength[:, :, None]  # (S, P, N)
    traj = (weights * targets[:, :, None]).sum(0) / np.maximum(weights.sum(0), 1e-9)
    return traj.T.reshape(n_frames, samples_per_frame, -1).mean(1)


# --------------------------------------------------------------------------- drawing

CANVAS = 128  # the face is drawn on a CANVAS x CANVAS grid (1 unit = 1 crop pixel), then warped


def _sat(x):
    return np.clip(x, 0.0, 1.0)


def _bump(x):
    """Smooth bump, 1 at 0, 0 beyond |x| >= 1."""
    return np.square(_sat(1.0 - np.square(x)))


def _edge(d):
    """Coverage of the side d > 0 of an edge from a signed distance in pixels (1-px ramp)."""
    return _sat(0.5 + d)


def _dist(y, curve):
    """Signed distance (px) of points y below the curve y = curve(x), x sampled at 1 px."""
    slope = np.gradient(curve, axis=-1)
    return (y - curve) / np.sqrt(1.0 + slope * slope)


def _noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    field = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / (field.std() + 1e-9)


@lru_cache(maxsize=16)
def _skin(face: Face) -> np.ndarray:
    """The static part of the face on the canvas: skin texture, nose, philtrum, folds, beard."""
    rng = np.random.default_rng(face.texture_seed)
    c = CANVAS // 2
    y, x = np.mgrid[-c:c, -c:c].astype(np.float32) + 0.5
    img = face.skin + 3.0 * _noise(rng, (CANVAS, CANVAS), 7) + 1.5 * _noise(rng, (CANVAS,) * 2, 1)
    top = -face.upper_lip - 1.0  # top of the upper lip at rest (roughly)
    nose = top - 22.0  # nostril line
    ax = np.abs(x)
    nostril = ((ax - 6.5) / 3.8) ** 2 + ((y - nose + 0.25 * (ax - 6.5)) / 1.8) ** 2
    img -= 45 * np.exp(-nostril)
    ala = np.exp(-(((np.hypot(ax - 6, (y - nose + 2) * 1.2) - 9.5) / 1.8) ** 2))
    img -= 14 * ala * _sat((ax - 9) / 3) * (y < nose + 2)  # creases around the nose wings
    img += 28 * np.exp(-((x / 10) ** 2) - ((y - nose + 9) / 6) ** 2)  # nose tip highlight
    img += 10 * np.exp(-((x / 2.5) ** 2) - ((y - nose) / 2.5) ** 2)  # columella
    img -= 14 * np.exp(-(((y - nose - 4.5) / 2.2) ** 2)) * _bump(x / 14)  # shadow under nose
    ridge = np.exp(-(((ax - 4.0) / 1.4) ** 2)) * _sat((y - nose - 4) / 4) * _sat((top - y) / 3)
    img += 7 * ridge - 5 * np.exp(-((x / 1.6) ** 2)) * _sat((y - nose - 5) / 4) * _sat(top - y)
    # nasolabial folds: from beside the nose wings down and out past the mouth corners
    along = _sat((y - nose) / (14 - nose))
    fold = ax - (13 + (face.mouth_width - 5) * along + 4 * along * (1 - along))
    reach = _sat((y - nose) / 5) * _sat((16 - y) / 8)
    img -= 7 * np.exp(-((fold / 3.0) ** 2)) * reach
    img -= 5 * _sat(fold / 10) * reach  # the cheek beyond the fold is in shade
    if face.beard > 0:  # stubble around the mouth and chin, thinning towards the cheeks
        hair = gaussian_filter(rng.random((CANVAS, CANVAS)), 0.7)
        hair = _sat((hair - hair.mean()) / hair.std() + 0.5)
        oval = np.square(x / (face.mouth_width * 1.7)) + np.square((y - 10) / 42)
        region = _sat((1 - oval) * 4) * _sat((y - nose - 6) / 4)
        img -= (8 + 30 * hair) * region * face.beard
    return img.astype(np.float32)


def _head_motion(take: Take, n: int) -> tuple[np.ndarray, ...]:
    """Smooth rotation (rad), scale and translation (px) per frame: a few slow sinusoids plus a
    linear drift, reproducible from ``take.seed``."""
    rng = np.random.default_rng(take.seed)
    t = np.arange(n) / FPS
    out = []
    for amp in (0.05, 0.03, 2.0, 2.0):  # rotation, scale, dx, dy at motion = 1
        freqs = rng.uniform(0.1, 1.2, 3)
        phases = rng.uniform(0, 2 * np.pi, 3)
        wave = np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None]).sum(0) / 3
        drift = rng.uniform(-1, 1) * t / max(t[-1], 1.0) if n > 1 else 0.0
        out.append(amp * take.motion * (wave + 0.5 * drift))
    rot, scale, dx, dy = out
    return rot, 1.0 + scale, dx, dy


def _mouth(base: np.ndarray, p: dict, face: Face, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Draw lips, cavity, tongue and teeth over ``base`` (T, h, w) whose face coordinates are
    ``x`` (1, 1, w) and ``y`` (1, h, 1)."""
    width = face.mouth_width * (1 + 0.12 * p["spread"] - 0.22 * p["round"])
    gap = face.max_open * p["open"] * (1 - 0.3 * p["tuck"])
    u = x / width
    inside = np.abs(u) < 1
    # rounded lips leave a smaller, rounder hole in the middle of the mouth
    u_in = u / (1 - 0.55 * p["round"])
    lens = np.power(_sat(1 - u_in * u_in), 0.8 - 0.35 * p["round"])
    line = -face.smile * u * u
    up_in = line - (0.3 * gap + 0.4) * lens
    lo_in = line + (0.7 * gap + 0.4 - 1.5 * p["tuck"]) * lens
    # the outer contours follow the whole mouth, not the (possibly small, round) hole
    full = np.power(_sat(1 - u * u), 0.8)
    bow = 0.45 * np.exp(-np.square((np.abs(u) - 0.28) / 0.14)) - 0.35 * np.exp(-np.square(u / 0.12))
    shape_u = np.power(_sat(1 - u * u), 0.7) + face.bow * bow * _sat(1 - u * u)
    thick_u = face.upper_lip * (1 + 0.35 * p["round"])
    up_out = np.minimum(line - (0.3 * gap + 0.4) * full - thick_u * shape_u - 0.5, up_in - 0.5)
    thick_l = face.lower_lip * (1 + 0.3 * p["round"] - 0.35 * p["tuck"] - 0.2 * p["open"])
    lo_out = line + (0.7 * gap + 0.4) * full + thick_l * np.power(_sat(1 - u * u), 0.6) + 0.5
    lo_out = np.maximum(lo_out, lo_in + 0.5)
    d_up_out, d_up_in = _dist(y, up_out), _dist(y, up_in)
    d_lo_in, d_lo_out = _dist(y, lo_in), _dist(y, lo_out)
    upper = _edge(d_up_out) * _edge(-d_up_in) * inside
    lower = _edge(d_lo_in) * _edge(-d_lo_out) * inside
    opening = _edge(d_up_in) * _edge(-d_lo_in) * inside

    lip = face.skin - face.lip_contrast
    wrinkles = 1.2 * np.sin(x * 2.1 + 1.7 * np.sin(x * 0.37))
    r_up = _sat((y - up_out) / np.maximum(up_in - up_out, 1))
    upper_val = lip - 4 + 5 * np.exp(-(((r_up - 0.15) / 0.15) ** 2)) - 12 * r_up * r_up + wrinkles
    r_lo = _sat((y - lo_in) / np.maximum(lo_out - lo_in, 1))
    shine = 14 * np.exp(-(((r_lo - 0.35) / 0.3) ** 2)) * full
    lower_val = lip + 6 + shine - 8 * _sat((r_lo - 0.7) / 0.3) + wrinkles
    img = base + upper * (upper_val - base)
    img += lower * (lower_val - img)
    seal = np.exp(-np.square((y - 0.5 * (up_in + lo_in)) / 0.7)) * lens * _sat(1.5 - gap)
    img -= seal * inside * 0.5 * face.lip_contrast  # the dark line where closed lips meet

    # inside the mouth: cavity, tongue, lower teeth, tongue tip, upper teeth
    au = np.abs(u)
    inner = face.cavity * (1.0 + 0.5 * au * au) + 0.0 * y
    tongue_top = lo_in - (0.12 + 0.4 * p["tongue"]) * gap * np.power(_sat(1 - (u / 0.8) ** 2), 0.5)
    tongue = _edge(y - tongue_top) * _sat((0.8 - au) * 6)
    inner += tongue * (face.tongue + 12 * np.exp(-((u / 0.3) ** 2)) - inner)
    cap = gap * (0.4 + 0.6 * p["tuck"])
    band_up = np.minimum(face.teeth_show * p["upper_teeth"], cap) * (1 - 0.45 * u * u)
    band_lo = np.clip(0.7 * face.teeth_show * p["lower_teeth"] - 1.5, 0, 0.4 * gap) * (
        1 - 0.45 * u * u
    )
    teeth_x = _sat((0.78 - au) * 6)
    spaces = 1 - 0.2 * np.exp(-np.square(np.sin(np.pi * (u / 0.14 + 0.5)) / 0.15)) * (au > 0.08)
    shade = face.teeth * (1 - 0.35 * au) * spaces
    lower_teeth = _edge(y - (lo_in - band_lo)) * teeth_x
    inner += 0.9 * lower_teeth * (shade - 20 - inner)
    tip = p["tip"] * _sat((0.3 - au) * width * 0.5) * _edge(y - up_in - 1.0)
    inner += tip * (face.tongue + 20 - inner)
    upper_teeth = _edge(up_in + band_up - y) * teeth_x
    inner += upper_teeth * (shade - inner)
    inner -= 10 * np.exp(-np.square((y - up_in) / 1.0))  # the upper lip's shadow
    return img + opening * (inner - img)


def render(
    track: np.ndarray, face: Face = Face(), take: Take = Take(), size: int = SIZE
) -> np.ndarray:
    """Draw the clip for a parameter track (T, len(PARAMS)) -> uint8 (T, size, size)."""
    n = len(track)
    p = {name: track[:, i, None, None].astype(np.float32) for i, name in enumerate(PARAMS)}
    c = CANVAS // 2
    ys = np.arange(-c, c, dtype=np.float32)[None, :, None] + 0.5
    xs = np.arange(-c, c, dtype=np.float32)[None, None, :] + 0.5
    gap = face.max_open * p["open"]
    canvas = np.repeat(_skin(face)[None], n, axis=0)
    # lower face (chin, the crease under the lower lip) follows the jaw; the shading terms are
    # separable (a function of y and t times one of x) and drawn only where they are not ~0
    w = int(max(face.mouth_width * 1.1, 26.0)) + 1
    x_low = xs[:, :, c - w : c + w]
    ylow = ys[:, c:] - (0.7 * gap + face.jaw * p["jaw"])
    crease = np.exp(-np.square((ylow - face.lower_lip - 5.5) / 2.8))
    chin = np.exp(-np.square((ylow - 27) / 9.0))
    canvas[:, c:, c - w : c + w] += 14 * chin * _bump(x_low / 26.0) - 20 * crease * _bump(
        x_low / (face.mouth_width * 1.1)
    )
    width = face.mouth_width * (1 + 0.12 * p["spread"] - 0.22 * p["round"])
    w = int(face.mouth_width * 1.15) + 9
    rows = slice(c - 8 - int(face.smile), c + 8 - int(face.smile))
    corner_x = np.exp(-np.square(np.abs(xs[:, :, c - w : c + w]) - width) / 5.0)
    canvas[:, rows, c - w : c + w] -= (
        22 * corner_x * np.exp(-2 * np.square(ys[:, rows] + face.smile) / 5.0)
    )
    # the mouth box
    top, bottom = c - 28, c + 44
    half = int(face.mouth_width * 1.15) + 3
    left, right = c - half, c + half
    canvas[:, top:bottom, left:right] = _mouth(
        canvas[:, top:bottom, left:right], p, face, xs[:, :, left:right], ys[:, top:bottom]
    )

    # camera: head motion (similarity warp), lighting gradient, blur, sensor noise
    rot, scale, dx, dy = _head_motion(take, n)
    k = size / SIZE
    grid = (np.arange(size, dtype=np.float32) + 0.5) / k - SIZE / 2
    gx, gy = grid[None, None, :], grid[None, :, None]
    img = np.empty((n, size, size), np.float32)
    for i in range(n):  # output (row, col) -> canvas (row, col), one similarity per frame
        cos, sin, s = np.cos(rot[i]), np.sin(rot[i]), scale[i] * face.scale
        x0 = grid[0] - face.offset[0] - dx[i]
        y0 = grid[0] - face.offset[1] - dy[i]
        matrix = np.array([[cos, -sin], [sin, cos]]) / (s * k)
        offset = ((-sin * x0 + cos * y0) / s + c - 0.5, (cos * x0 + sin * y0) / s + c - 0.5)
        affine_transform(canvas[i], matrix, offset, (size, size), img[i], order=1, mode="nearest")
    lx, ly = np.cos(take.light_angle), np.sin(take.light_angle)
    img *= take.brightness * (1 + take.light_gain * (lx * gx + ly * gy) / (SIZE / 2))
    if take.blur > 0:
        img = gaussian_filter(img, (0, take.blur * k, take.blur * k))
    rng = np.random.default_rng(take.seed + 1)
    img += take.noise * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def render_phones(
    phones: list[Phone],
    n_frames: int,
    face: Face = Face(),
    take: Take = Take(),
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Timed phones -> uint8 mouth clip (n_frames, 96, 96)."""
    return render(articulate(phones, n_frames, face, rng), face, take)
