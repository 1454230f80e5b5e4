"""bridge/voices.py: the realistic test material is deterministic, labelled, and
sounds the notes its truth says, where its truth says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bridge import voices


def _clip(family: str = "sung", phenomena: tuple[str, ...] = ("plain",), seed: int = 3,
          a4_hz: float = 440.0) -> voices.Clip:
    return voices.clip("t", family, phenomena, seed=seed, root=57, mode="minor", low=50, high=70, bpm=100,
                       n_notes=10, a4_hz=a4_hz)


def _acf_hz(frame: np.ndarray, rate: int, fmin: float = 35.0, fmax: float = 1500.0) -> float:
    """The fundamental of a steady frame: the shortest lag whose autocorrelation
    is within 10 % of the best (so the period, not a multiple of it)."""
    frame = frame - frame.mean()
    spec = np.fft.rfft(frame, 2 * len(frame))
    acf = np.fft.irfft(np.abs(spec) ** 2)[: len(frame)]
    lo, hi = int(rate / fmax), int(rate / fmin)
    window = acf[lo:hi]
    best = window.max()
    peaks = [i for i in range(1, len(window) - 1)
             if window[i] >= 0.9 * best and window[i] >= window[i - 1] and window[i] >= window[i + 1]]
    i = peaks[0]
    # Parabolic interpolation around the peak.
    a, b, c = window[i - 1], window[i], window[i + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c else 0.0
    return rate / (lo + i + shift)


def test_same_seed_same_clip_and_another_seed_another():
    a, b, c = _clip(seed=5), _clip(seed=5), _clip(seed=6)
    assert np.array_equal(a.signal, b.signal) and a.notes == b.notes
    assert a.notes != c.notes


@pytest.mark.parametrize("family", voices.FAMILIES)
def test_truth_is_ordered_in_key_and_inside_the_clip(family):
    clip = _clip(family, ("glide",) if family != "bass" else ("plain",))
    assert clip.signal.dtype == np.float32 and np.isfinite(clip.signal).all()
    notes = clip.note_array()
    assert len(notes) == 10
    assert (np.diff(notes[:, 0]) > 0).all()
    assert (notes[:, 1] > notes[:, 0]).all() and (notes[1:, 0] >= notes[:-1, 1] - 1e-9).all()
    assert notes[-1, 1] < len(clip.signal) / clip.rate
    scale = voices.MODES["minor"]
    assert all((int(m) - 57) % 12 in scale for m in notes[:, 2])
    assert clip.key == "A:minor"
    # Sound where the notes are, silence (below -60 dB of the peak) well before the first.
    peak = np.max(np.abs(clip.signal))
    lead = clip.signal[: int((notes[0, 0] - 0.2) * clip.rate)]
    assert np.max(np.abs(lead)) < peak * 1e-3


def test_quiet_material_peaks_at_minus_34_dbfs():
    for clip in (_clip("flute", ("quiet",)), _clip("sung", ("quiet",))):
        assert 20 * math.log10(float(np.max(np.abs(clip.signal)))) == pytest.approx(-34.0, abs=0.01)


@pytest.mark.parametrize("a4_hz", [440.0, 432.0])
def test_plain_singing_sounds_the_true_pitch_against_its_reference(a4_hz):
    """An autocorrelation pitch in the middle of each note is within 30 cents
    of the intended note at the clip's A4 (jitter alone moves it a few cents)."""
    clip = _clip(a4_hz=a4_hz)
    for on, off, midi in clip.note_array():
        mid = int((on + off) / 2 * clip.rate)
        hz = _acf_hz(clip.signal[mid - 1200:mid + 1200].astype(float), clip.rate)
        cents = 1200 * math.log2(hz / (a4_hz * 2 ** ((midi - 69) / 12)))
        assert abs(cents) < 30, (on, midi, hz, cents)


def test_the_corpus_covers_every_family_and_phenomenon():
    clips = voices.corpus(variants=1)
    assert {c.family for c in clips} == set(voices.FAMILIES)
    assert set().union(*(c.phenomena for c in clips)) == set(voices.PHENOMENA)
    assert len({c.key for c in clips}) >= 4
    assert len({c.name for c in clips}) == len(clips)
