"""Realistic monophonic material with exact notes: a sung voice, a
saxophone-like reed, a quiet flute-like line and a bass line.

`bridge/signals.py` makes clean harmonic tones; real performers do not play
those. This module renders what makes voices hard to transcribe, one
phenomenon at a time or all together, so accuracy can be reported per
phenomenon (bench/accuracy.py --voices) and tests can use singing:

- the sung voice: a Rosenberg glottal pulse train (the glottal flow's
  derivative, with some aspiration noise) through four formant resonators
  whose vowel changes from note to note, jitter (period noise) and shimmer
  (amplitude noise) always; on demand (`PHENOMENA`) vibrato up to a semitone
  wide at 4.5-7.5 Hz that fades in after a delay, scoops from below into
  notes, legato glides between notes (the level dips by up to 2 dB across
  each), consonant noise before words and
  breaths between phrases, a slow intonation drift, a quiet level;
- the saxophone: a bright reed tone through a body resonance, breath noise
  that follows the level, and key clicks at each change of note;
- the flute: an almost sinusoidal tone with breath noise, peaks at -34 dBFS;
- the bass: plucked, upper partials dying faster, slightly inharmonic.

Truth is exact: each note's onset, offset and intended MIDI number. A note's
onset is where its sound begins (the vowel after a consonant; the start of a
scoop); between legato notes it is the middle of the glide, where the pitch is
half-way; a note's offset is where its sound ends, or the next legato onset.
Melodies are random walks on a key's scale, seeded: several keys, modes,
tempi and registers, never one file. numpy only; float32 at 48 kHz.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SR = 48_000

FAMILIES = ("sung", "sax", "flute", "bass")
PHENOMENA = ("plain", "vibrato", "scoop", "glide", "consonants", "drift", "quiet")
"""Per-clip labels: `plain` has none of the others; `glide` is legato with
glides between notes; `consonants` is consonants and breaths (for the sax: its
breath noise and key clicks); `quiet` peaks at -34 dBFS."""

MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
_ROOTS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# Vowel formants (Hz) and bandwidths (Hz), F1-F4: classic averages for a
# mid voice (Peterson & Barney's vowels, F4 filled in).
VOWELS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "a": ((730, 1090, 2440, 3400), (90, 110, 160, 200)),
    "e": ((530, 1840, 2480, 3500), (70, 100, 160, 200)),
    "i": ((290, 2290, 3010, 3700), (60, 100, 160, 200)),
    "o": ((570, 840, 2410, 3400), (80, 90, 160, 200)),
    "u": ((320, 870, 2240, 3300), (60, 90, 160, 200)),
}


@dataclass(frozen=True)
class TrueNote:
    onset: float
    offset: float
    midi: int


@dataclass(frozen=True)
class Clip:
    """One rendered performance and its exact notes (times in seconds)."""

    name: str
    family: str
    phenomena: tuple[str, ...]
    signal: np.ndarray = field(repr=False)
    notes: tuple[TrueNote, ...]
    key: str
    """"ROOT:MODE" of the melody, e.g. "D:dorian"."""
    a4_hz: float = 440.0
    rate: int = SR

    def note_array(self) -> np.ndarray:
        """(N, 3): onset, offset, MIDI number."""
        return np.array([(n.onset, n.offset, n.midi) for n in self.notes], dtype=float).reshape(-1, 3)


@dataclass(frozen=True)
class _Note:
    start: float
    """Where the written note begins (seconds)."""
    length: float
    """Its written length (seconds), up to the next note's start."""
    midi: int
    phrase_start: bool


def melody(rng: np.random.Generator, root: int, mode: str, low: int, high: int, n_notes: int, bpm: float,
           repeats: bool = True, lead_s: float = 0.6) -> list[_Note]:
    """A random walk over the scale of `root` (MIDI) and `mode` within
    [`low`, `high`], in phrases of 4-7 notes with a rest of 1-2 beats between;
    mostly steps, some leaps; `repeats` False never repeats a pitch."""
    scale = sorted(m for m in range(low, high + 1) if (m - root) % 12 in MODES[mode])
    beat = 60.0 / bpm
    idx = int(rng.integers(len(scale) // 3, 2 * len(scale) // 3 + 1))
    t, left = lead_s, 0
    notes: list[_Note] = []
    for _ in range(n_notes):
        phrase_start = left == 0
        if phrase_start:
            if notes:
                t += beat * float(rng.choice([1.0, 1.5, 2.0]))
            left = int(rng.integers(4, 8))
        left -= 1
        length = beat * float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0], p=[0.15, 0.4, 0.2, 0.15, 0.1]))
        notes.append(_Note(t, length, scale[idx], phrase_start))
        t += length
        steps = [-2, -1, -1, 1, 1, 2, -3, 3, -4, 4] + ([0] if repeats else [])
        while True:
            nxt = idx + int(rng.choice(steps))
            if 0 <= nxt < len(scale):
                idx = nxt
                break
    return notes


def _smooth_noise(rng: np.random.Generator, n: int, rate_hz: float, sr: int) -> np.ndarray:
    """Unit-variance noise with about `rate_hz` of bandwidth: random points linearly joined."""
    points = int(n * rate_hz / sr) + 2
    return np.interp(np.arange(n), np.linspace(0, n, points), rng.standard_normal(points))


def _resonator_ir(freqs: Sequence[float], bws: Sequence[float], sr: int, length: int = 2048) -> np.ndarray:
    """Impulse response of two-pole resonators in cascade, each of unit gain at DC."""
    h = np.zeros(length)
    h[0] = 1.0
    n = np.arange(length)
    for f, b in zip(freqs, bws):
        r, theta = np.exp(-np.pi * b / sr), 2 * np.pi * f / sr
        one = r ** n * np.sin((n + 1) * theta) / np.sin(theta) * (1 - 2 * r * np.cos(theta) + r * r)
        h = np.fft.irfft(np.fft.rfft(h, 2 * length) * np.fft.rfft(one, 2 * length))[:length]
    return h


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    size = 1 << int(np.ceil(np.log2(len(x) + len(h))))
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: len(x)]


def _moving_average(x: np.ndarray, n: int) -> np.ndarray:
    """The mean of `x` over `n` samples centred on each sample (edges held)."""
    padded = np.concatenate([np.full(n // 2, x[0]), x, np.full(n - n // 2, x[-1])])
    sums = np.cumsum(np.concatenate([[0.0], padded]))
    return (sums[n:n + len(x)] - sums[:len(x)]) / n


def _ramp(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / max(n, 1))


def _rosenberg(phase: np.ndarray, open_q: float = 0.4, close_q: float = 0.16) -> np.ndarray:
    """Rosenberg's glottal flow pulse at `phase` (cycles, 0..1 within each period)."""
    p = phase % 1.0
    return np.where(p < open_q, 0.5 - 0.5 * np.cos(np.pi * p / open_q),
                    np.where(p < open_q + close_q, np.cos(np.pi * (p - open_q) / (2 * close_q)), 0.0))


def _hp_noise(rng: np.random.Generator, n: int, order: int = 2) -> np.ndarray:
    return np.diff(rng.standard_normal(n + order), order) / 2.0 ** order


class _Score:
    """Sample-rate curves of one performance: pitch (MIDI), level, and the truth."""

    def __init__(self, seconds: float, sr: int) -> None:
        self.n = int(seconds * sr)
        self.sr = sr
        self.pitch = np.full(self.n, np.nan)
        self.env = np.zeros(self.n)
        self.truth: list[TrueNote] = []

    def idx(self, t: float) -> int:
        return int(np.clip(round(t * self.sr), 0, self.n))


def _perform(notes: list[_Note], rng: np.random.Generator, *, legato: bool, scoop: bool, vibrato: float,
             sr: int, attack_s: float = 0.04, release_s: float = 0.06, articulation: float = 0.85,
             pluck_tau_s: float = 0.0) -> _Score:
    """Pitch and level curves for `notes`: detached notes with attack and
    release, or legato runs (within a phrase) whose pitch glides across each
    boundary; scoops from below; vibrato up to `vibrato` semitones (peak) with
    an onset delay; a plucked decay when `pluck_tau_s` > 0."""
    end = notes[-1].start + notes[-1].length + 1.0
    s = _Score(end, sr)
    t_all = np.arange(s.n) / sr
    i = 0
    while i < len(notes):
        # A run: one note, or a legato phrase (notes joined up to the next phrase start).
        j = i + 1
        if legato:
            while j < len(notes) and not notes[j].phrase_start:
                j += 1
        run = notes[i:j]
        glides = [float(rng.uniform(0.06, 0.12)) for _ in run[1:]]
        run_on = run[0].start
        run_off = run[-1].start + run[-1].length * articulation
        a, b = s.idx(run_on), s.idx(run_off)
        # Level: attack, hold (or pluck decay), release ending at the offset.
        env = np.ones(b - a)
        na, nr = int(attack_s * sr), int(release_s * sr)
        env[:na] = _ramp(na)[: len(env)]
        if pluck_tau_s:
            env *= np.exp(-np.arange(len(env)) / (pluck_tau_s * sr))
        env[len(env) - nr:] *= _ramp(nr)[::-1][: len(env)]
        for k, g in zip(range(1, len(run)), glides):  # a small dip at each legato change
            c = s.idx(run[k].start) - a
            w = int(g * sr)
            lo, hi = max(c - w, 0), min(c + w, len(env))
            env[lo:hi] *= 1 - 0.2 * np.hanning(hi - lo)
        s.env[a:b] = env * float(rng.uniform(0.7, 1.0))
        # Pitch: each note's target, glides at the boundaries, scoops, vibrato.
        for k, note in enumerate(run):
            n0 = s.idx(note.start if k else run_on)
            n1 = s.idx(run[k + 1].start) if k + 1 < len(run) else b
            t = t_all[n0:n1] - t_all[n0]
            curve = np.full(n1 - n0, float(note.midi))
            if scoop and (k == 0 or rng.random() < 0.5):
                depth, tau = float(rng.uniform(0.7, 2.0)), float(rng.uniform(0.025, 0.045))
                curve -= depth * np.exp(-t / tau)
            if vibrato and note.length > 0.35:
                delay = float(rng.uniform(0.15, 0.3))
                rate, depth = float(rng.uniform(4.5, 7.5)), vibrato * float(rng.uniform(0.6, 1.0))
                fade = np.clip((t - delay) / 0.2, 0, 1)
                curve += depth * fade * np.sin(2 * np.pi * rate * t + float(rng.uniform(0, 2 * np.pi)))
            s.pitch[n0:n1] = curve
            offset = run[k + 1].start if k + 1 < len(run) else run_off
            s.truth.append(TrueNote(round(note.start if k else run_on, 6), round(offset, 6), note.midi))
        for k, g in zip(range(1, len(run)), glides):
            # The glide: a raised-cosine move from one note to the next, centred on the boundary.
            c, w = s.idx(run[k].start), int(g * sr / 2)
            before, after = s.pitch[c - w], s.pitch[min(c + w, s.n - 1)]
            s.pitch[c - w:c + w] = before + (after - before) * _ramp(2 * w)
        i = j
    return s


def _phase(pitch: np.ndarray, a4_hz: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Fundamental in Hz (held through silence) and its running phase in cycles."""
    filled = pitch.copy()
    known = np.flatnonzero(~np.isnan(filled))
    filled = np.interp(np.arange(len(filled)), known, filled[known])
    hz = a4_hz * 2.0 ** ((filled - 69) / 12)
    return hz, np.cumsum(hz) / sr


def _normalise(x: np.ndarray, peak_dbfs: float) -> np.ndarray:
    return (x * 10 ** (peak_dbfs / 20) / np.max(np.abs(x))).astype(np.float32)


def _drift(rng: np.random.Generator, n: int, sr: int, cents: float = 35.0) -> np.ndarray:
    """A slow intonation drift in semitones: two slow sines, at most `cents` together."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for period in (rng.uniform(4.0, 7.0), rng.uniform(9.0, 14.0)):
        out += np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return out * cents / 200.0


def sung(notes: list[_Note], rng: np.random.Generator, phenomena: Sequence[str], a4_hz: float = 440.0,
         sr: int = SR) -> tuple[np.ndarray, list[TrueNote]]:
    """A sung line of `notes` with the `phenomena` asked for (see PHENOMENA)."""
    on = set(phenomena)
    s = _perform(notes, rng, legato="glide" in on, scoop="scoop" in on,
                 vibrato=float(rng.uniform(0.3, 0.5)) if "vibrato" in on else 0.0, sr=sr)
    pitch = s.pitch
    pitch += 0.06 * _smooth_noise(rng, s.n, 60.0, sr)  # jitter: ~6 cents of fast period noise
    if "drift" in on:
        pitch += _drift(rng, s.n, sr)
    _, phase = _phase(pitch, a4_hz, sr)
    flow = _rosenberg(phase)
    source = np.diff(flow, prepend=0.0) * sr / 1000.0
    source += 0.04 * rng.standard_normal(s.n) * flow  # aspiration while the glottis is open
    shimmer = 10 ** (0.6 * _smooth_noise(rng, s.n, 80.0, sr) / 20)  # ~0.6 dB of fast level noise
    source *= s.env * shimmer
    # Vowels: each note takes one, from its onset to the next; the formants move over 60 ms.
    names = list(VOWELS)
    vowel = np.zeros(s.n, dtype=int)
    for note in s.truth:
        vowel[s.idx(note.onset):] = int(rng.integers(len(names)))
    weights = [_moving_average((vowel == v).astype(float), int(0.06 * sr)) for v in range(len(names))]
    voice = np.zeros(s.n)
    for v, name in enumerate(names):
        if weights[v].any():
            filtered = _convolve(source, _resonator_ir(*VOWELS[name], sr))
            voice += weights[v] * filtered / (np.std(filtered) + 1e-12)
    voice *= np.std(source)
    peak = np.max(np.abs(voice))
    if "consonants" in on:
        voice += _consonants(s, rng, peak, sr)
    return voice, s.truth


def _consonants(s: _Score, rng: np.random.Generator, peak: float, sr: int) -> np.ndarray:
    """Consonants before the notes that start a word (every note not inside a
    glide) and a breath before each phrase after the first."""
    out = np.zeros(s.n)
    prev_off = None
    for note in s.truth:
        a = s.idx(note.onset)
        legato = prev_off is not None and abs(prev_off - note.onset) < 1e-6
        prev_off = note.offset
        if legato:
            continue
        kind = rng.choice(["s", "sh", "t", "k", "h"])
        if kind in ("s", "sh"):  # a fricative hiss, 50-100 ms, right before the vowel
            n = int(rng.uniform(0.05, 0.1) * sr)
            hiss = _hp_noise(rng, n, 3 if kind == "s" else 2) * np.hanning(n)
            burst, level = hiss, 0.25
        elif kind in ("t", "k"):  # a plosive: 10-20 ms burst after a short closure
            n = int(rng.uniform(0.01, 0.02) * sr)
            burst, level = _hp_noise(rng, n, 1) * np.exp(-np.arange(n) / (0.004 * sr)), 0.4
            n += int(0.01 * sr)
            burst = np.concatenate([burst, np.zeros(int(0.01 * sr))])
        else:  # an "h": breathy, low
            n = int(rng.uniform(0.04, 0.08) * sr)
            burst, level = rng.standard_normal(n) * np.hanning(n), 0.05
        lo = max(a - n, 0)
        out[lo:a] += peak * level * burst[n - (a - lo):] / (np.max(np.abs(burst)) + 1e-12)
    # Breaths in the rests between phrases: long, soft, low noise.
    for k in range(1, len(s.truth)):
        gap = s.truth[k].onset - s.truth[k - 1].offset
        if gap > 0.4:
            n = int(min(gap - 0.15, 0.45) * sr)
            a = s.idx(s.truth[k].onset - 0.12) - n
            breath = _convolve(rng.standard_normal(n), _resonator_ir((600, 1500), (400, 600), sr, 512))
            out[a:a + n] += peak * 0.03 * breath * np.hanning(n) / (np.max(np.abs(breath)) + 1e-12)
    return out


def sax(notes: list[_Note], rng: np.random.Generator, phenomena: Sequence[str], a4_hz: float = 440.0,
        sr: int = SR) -> tuple[np.ndarray, list[TrueNote]]:
    """A reed line: bright partials through a body resonance; with
    `consonants`, breath noise following the level and key clicks at each
    change of note; `glide` slurs the phrases."""
    on = set(phenomena)
    s = _perform(notes, rng, legato="glide" in on, scoop=False, vibrato=0.15 if "vibrato" in on else 0.0,
                 sr=sr, attack_s=0.03, release_s=0.04, articulation=0.9)
    s.pitch += 0.03 * _smooth_noise(rng, s.n, 40.0, sr)
    hz, phase = _phase(s.pitch, a4_hz, sr)
    tone = np.zeros(s.n)
    for h in range(1, 40):
        tone += np.where(h * hz < 8000, np.sin(2 * np.pi * h * phase) / h ** 0.7, 0.0)
    tone = _convolve(tone, _resonator_ir((520, 1450, 2600), (200, 300, 400), sr))
    tone *= s.env / np.max(np.abs(tone))
    peak = np.max(np.abs(tone))
    if "consonants" in on:
        breath = _convolve(_hp_noise(rng, s.n, 1), _resonator_ir((2500,), (2000,), sr, 512))
        tone += 0.06 * peak * s.env * breath / np.std(breath)
        for k in range(1, len(s.truth)):
            a = s.idx(s.truth[k].onset - rng.uniform(0.0, 0.01))
            n = int(0.005 * sr)
            t = np.arange(n) / sr
            click = np.sin(2 * np.pi * rng.uniform(2500, 4000) * t) * np.exp(-t / 0.001)
            tone[a:a + n] += 0.08 * peak * click
    return tone, s.truth


def flute(notes: list[_Note], rng: np.random.Generator, phenomena: Sequence[str], a4_hz: float = 440.0,
          sr: int = SR) -> tuple[np.ndarray, list[TrueNote]]:
    """An almost sinusoidal line with a gentle vibrato and breath noise."""
    s = _perform(notes, rng, legato="glide" in phenomena, scoop=False, vibrato=0.12, sr=sr,
                 attack_s=0.05, release_s=0.05, articulation=0.9)
    s.pitch += 0.02 * _smooth_noise(rng, s.n, 40.0, sr)
    _, phase = _phase(s.pitch, a4_hz, sr)
    tone = sum(a * np.sin(2 * np.pi * h * phase) for h, a in ((1, 1.0), (2, 0.3), (3, 0.1), (4, 0.05)))
    tone = tone * s.env
    breath = _hp_noise(rng, s.n, 2)
    tone += 0.05 * s.env * breath / np.std(breath)
    return tone, s.truth


def bass(notes: list[_Note], rng: np.random.Generator, phenomena: Sequence[str], a4_hz: float = 440.0,
         sr: int = SR) -> tuple[np.ndarray, list[TrueNote]]:
    """A plucked bass: each partial decays faster the higher it is, slightly sharp (stiff strings)."""
    s = _perform(notes, rng, legato=False, scoop=False, vibrato=0.0, sr=sr, attack_s=0.004, release_s=0.03,
                 articulation=0.92, pluck_tau_s=float(rng.uniform(0.5, 0.9)))
    hz, phase = _phase(s.pitch, a4_hz, sr)
    tone = np.zeros(s.n)
    for note in s.truth:
        a, b = int(note.onset * sr), int(note.offset * sr)
        t = np.arange(b - a) / sr
        for h in range(1, 16):
            stretch = h * np.sqrt(1 + 0.0003 * h * h)
            if stretch * hz[a] < 5000:
                tone[a:b] += np.sin(2 * np.pi * stretch * (phase[a:b] - phase[a])) / h * np.exp(-t * h * 0.8)
    return tone * s.env, s.truth


_RENDER = {"sung": sung, "sax": sax, "flute": flute, "bass": bass}


def clip(name: str, family: str, phenomena: Sequence[str], *, seed: int, root: int, mode: str,
         low: int, high: int, bpm: float, n_notes: int = 14, a4_hz: float = 440.0) -> Clip:
    """One performance of a fresh melody (from `seed`) in the key of `root`
    (a MIDI note; its pitch class names the key) and `mode`, within
    [`low`, `high`]."""
    rng = np.random.default_rng(seed)
    legato = "glide" in phenomena
    notes = melody(rng, root, mode, low, high, n_notes, bpm, repeats=not legato)
    signal, truth = _RENDER[family](notes, rng, phenomena, a4_hz, SR)
    peak_dbfs = -34.0 if "quiet" in phenomena or family == "flute" else -10.0
    return Clip(name, family, tuple(phenomena), _normalise(signal, peak_dbfs), tuple(truth),
                f"{_ROOTS[root % 12]}:{mode}", a4_hz)


# The sung clips: each phenomenon alone, then all together.
_SUNG_SETS: tuple[tuple[str, ...], ...] = (
    ("plain",), ("vibrato",), ("scoop",), ("glide",), ("consonants",), ("drift",), ("quiet",),
    ("vibrato", "scoop", "glide", "consonants", "drift"),
)
# (root, mode, low, high, bpm) per variant: a low and a high voice, several keys and tempi.
_SUNG_VARIANTS = ((45, "minor", 45, 64, 84), (62, "major", 57, 76, 112), (65, "dorian", 60, 79, 96))


def corpus(seed: int = 0, variants: int = 3) -> list[Clip]:
    """The voices corpus: every sung phenomenon set in `variants` melodies,
    and 3 clips each of sax, flute and bass. Deterministic from `seed`."""
    clips = []
    for v, (root, mode, low, high, bpm) in enumerate(_SUNG_VARIANTS[:variants]):
        for k, ph in enumerate(_SUNG_SETS):
            clips.append(clip(f"sung-{'+'.join(ph)}-{v}", "sung", ph, seed=seed * 1000 + 10 * v + k,
                              root=root + k % 3, mode=mode, low=low, high=high, bpm=bpm + 4 * k))
    others = (
        ("sax", ("glide", "consonants"), (50, "mixolydian", 49, 72, 100)),
        ("sax", ("glide", "consonants", "vibrato"), (58, "minor", 55, 77, 132)),
        ("sax", ("consonants",), (55, "dorian", 52, 74, 88)),
        ("flute", ("quiet",), (74, "major", 72, 91, 104)),
        ("flute", ("quiet", "glide"), (76, "minor", 72, 91, 90)),
        ("flute", ("quiet",), (79, "mixolydian", 74, 93, 126)),
        ("bass", ("plain",), (28, "minor", 28, 52, 96)),
        ("bass", ("plain",), (33, "major", 31, 55, 120)),
        ("bass", ("plain",), (38, "dorian", 33, 57, 76)),
    )
    for k, (family, ph, (root, mode, low, high, bpm)) in enumerate(others):
        clips.append(clip(f"{family}-{'+'.join(ph)}-{k}", family, ph, seed=seed * 1000 + 500 + k,
                          root=root, mode=mode, low=low, high=high, bpm=bpm))
    return clips
