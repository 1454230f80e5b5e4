"""Accuracy of daw-bridge's engine against aubio and librosa on the rendered corpus.

All three run in one process on the same files (bench/corpus.py) and are scored
the same way with mir_eval:

- RPA: raw pitch accuracy (mir_eval.melody, 50 cents) of the f0 series against
  the corpus reference on a 10 ms grid (corpus.reference_f0). Frames a
  contender calls unvoiced still count if it gives a pitch guess (mir_eval's
  negative-frequency convention): aubio and pyin always do. RCA (raw chroma
  accuracy) is printed beside it: RCA - RPA is the share of octave errors.
  "RPA at best shift" is the RPA after the constant time shift (-50..+50 ms)
  that suits the contender best: a shift far from 0 means its f0 timestamps lag.
- onset F: mir_eval.onset.f_measure, 50 ms window; "onset dev" is the median
  signed deviation (estimate - truth) of the matched onsets.
- note F: mir_eval.transcription.precision_recall_f1_overlap, onset only
  (offset_ratio=None), 50 ms onset tolerance, 50 cents pitch tolerance.

Scores are averaged over files (each file counts once). The contenders:

- daw-bridge: rust_engine.Analyzer, default config at 48 kHz, hop 128, fed
  128-frame blocks; pitch events give f0 (hz, negated when not voiced), onset
  events the onsets, note_on/note_off the notes. Event times are the engine's
  own, already compensated for its analysis delay.
- aubio 0.4.9: pitch('yinfast', 2048, 128), stamped at the window centre;
  onset('specflux', 1024, 128) with aubio's own delay-compensated get_last();
  notes('default', 1024, 128) stamped when aubio emits each note (it has no
  delay compensation; note also that aubio's notes drops notes <= MIDI 45).
  All with aubio's default thresholds.
- librosa: pyin (40-2000 Hz, 0.2-semitone bins) at 22.05 kHz, frame 2048, hop
  256 for f0; onset_detect (hop 256) for onsets; notes by a simple
  segmentation: a note starts at each onset or at each new stable pyin pitch,
  its pitch is the median pyin pitch of the segment.

With --voices it scores the generated voices of bridge/voices.py instead (no
FluidSynth needed; 33 clips: sung with each phenomenon alone and all together,
sax, flute, bass) per family and per phenomenon, with mir_eval: note F onset
only and with offsets (within 20 % of the note or 50 ms), notes out per note
in, and onset F of the notes' onsets. Contenders there: daw-bridge with its
defaults, "daw-bridge voice" (the engine with VOICE_SETTINGS, the settings
README recommends for a singer), librosa (pyin and the segmentation above) and
basic-pitch (Spotify's model through onnxruntime; see run_basic_pitch).

Usage: python -m bench.accuracy [--corpus DIR] [--json OUT] [--jobs N]
       [--only NAME,...] [--files SUBSTR] [--examples] [--engine-config TOML]
       python -m bench.accuracy --voices [--seed N] [--per-clip] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from bench import corpus

HOP = 128
ONSET_WINDOW_S = 0.05
PITCH_TOL_CENTS = 50.0
PYIN_SR = 22_050
PYIN_FRAME = 2048
PYIN_HOP = 256
PYIN_RESOLUTION = 0.2
"""Semitones per pyin pitch bin: 0.2 instead of librosa's 0.1 makes its Viterbi
3x faster (the run stays under 10 minutes on 2 cores); bins of 20 cents are
still well inside the 50-cent tolerance."""
FMIN_HZ, FMAX_HZ = 40.0, 2000.0
ALGORITHMS = ("daw-bridge", "aubio", "librosa")
SHIFTS_MS = tuple(range(-50, 55, 5))
"""Constant time shifts tried on each f0 series: the best one shows a
contender's residual pitch latency (0 when its timestamps are right)."""
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "accuracy.json"


@dataclass
class Estimate:
    """What one algorithm said about one file, in the form mir_eval scores."""

    f0_times: np.ndarray
    f0_hz: np.ndarray
    """> 0 voiced, < 0 unvoiced with a pitch guess, 0 no pitch (mir_eval's convention)."""
    onsets: np.ndarray
    note_intervals: np.ndarray
    note_midi: np.ndarray
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def notes_array(notes: list[tuple[float, float, float]], end: float) -> tuple[np.ndarray, np.ndarray]:
    """Intervals and pitches; a note mir_eval would reject (offset <= onset) gets 1 ms."""
    if not notes:
        return np.zeros((0, 2)), np.zeros(0)
    arr = np.asarray(notes, dtype=float)
    arr[:, 1] = np.minimum(arr[:, 1], end)
    arr[:, 1] = np.maximum(arr[:, 1], arr[:, 0] + 0.001)
    return arr[:, :2], arr[:, 2]


# --- contenders -------------------------------------------------------------


# The [engine] table of --engine-config, for measuring other settings than the defaults.
ENGINE_SETTINGS: dict = {}


VOICE_SETTINGS: dict = {"notes": {"slur_look_back_ms": 16.0}}
"""The engine settings README recommends for a singer (contender 'daw-bridge voice')."""


def run_engine_voice(audio: np.ndarray, sr: int) -> Estimate:
    settings = {k: dict(v) if isinstance(v, dict) else v for k, v in ENGINE_SETTINGS.items()}
    for table, values in VOICE_SETTINGS.items():
        settings.setdefault(table, {}).update(values)
    return run_engine(audio, sr, settings)


def run_engine(audio: np.ndarray, sr: int, settings: dict | None = None) -> Estimate:
    from rust_engine import Analyzer, EngineConfig

    from bridge.analyze import pair_notes, without_retracted

    an = Analyzer(EngineConfig({**(ENGINE_SETTINGS if settings is None else settings), "sample_rate": sr,
                                "hop": HOP}))
    events = []
    for i in range(0, len(audio), HOP):
        events.extend(an.process(audio[i:i + HOP]))
    events.extend(an.flush())
    times, f0, onsets = [], [], []
    for ev in events:
        if ev.kind == "pitch":
            times.append(ev.t)
            f0.append(ev.hz if ev.voiced else -abs(ev.hz))
        elif ev.kind == "onset":
            onsets.append(ev.t)
    # The notes as `daw-bridge analyze` transcribes them: retracted ones left out.
    note_events = without_retracted([ev for ev in events if ev.kind in ("note_on", "note_off")])
    notes = [(n.start, n.end, n.note) for n in pair_notes(note_events)]
    end = len(audio) / sr
    iv, midi = notes_array(notes, end)
    order = np.argsort(times, kind="stable")
    return Estimate(np.asarray(times)[order], np.asarray(f0)[order], np.sort(onsets), iv, midi,
                    extra={"latency_samples": an.latency_samples})


def run_aubio(audio: np.ndarray, sr: int) -> Estimate:
    import aubio

    pitch = aubio.pitch("yinfast", 2048, HOP, sr)
    pitch.set_unit("Hz")
    onset = aubio.onset("specflux", 1024, HOP, sr)
    notes_o = aubio.notes("default", 1024, HOP, sr)
    n_hops = len(audio) // HOP
    f0 = np.zeros(n_hops)
    onsets, notes = [], []
    open_note: tuple[float, float] | None = None
    for i in range(n_hops):
        block = audio[i * HOP:(i + 1) * HOP]
        f0[i] = pitch(block)[0]
        if onset(block)[0]:
            onsets.append(onset.get_last_s())
        out = notes_o(block)
        t = i * HOP / sr
        if out[0] != 0 or out[2] != 0:  # a new note, or a note-off on silence
            if open_note is not None:
                notes.append((open_note[0], t, open_note[1]))
                open_note = None
            if out[0] != 0:
                open_note = (t, float(out[0]))
    end = len(audio) / sr
    if open_note is not None:
        notes.append((open_note[0], end, open_note[1]))
    # The YIN window ends with the current hop; its estimate describes the window centre.
    times = ((np.arange(n_hops) + 1) * HOP - 1024) / sr
    iv, midi = notes_array(notes, end)
    return Estimate(times, f0, np.asarray(onsets), iv, midi)


def run_librosa(audio: np.ndarray, sr: int) -> Estimate:
    import librosa

    y = librosa.resample(audio, orig_sr=sr, target_sr=PYIN_SR, res_type="soxr_hq")
    f0, voiced, _ = librosa.pyin(y, fmin=FMIN_HZ, fmax=FMAX_HZ, sr=PYIN_SR, frame_length=PYIN_FRAME,
                                 hop_length=PYIN_HOP, resolution=PYIN_RESOLUTION, fill_na=None)
    times = librosa.times_like(f0, sr=PYIN_SR, hop_length=PYIN_HOP)
    onsets = librosa.onset.onset_detect(y=y, sr=PYIN_SR, hop_length=PYIN_HOP, units="time")
    end = len(audio) / sr
    iv, midi = notes_array(segment_pyin(times, f0, voiced, onsets), end)
    return Estimate(times, np.where(voiced, f0, -f0), np.asarray(onsets), iv, midi)


def segment_pyin(times: np.ndarray, f0: np.ndarray, voiced: np.ndarray, onsets: np.ndarray,
                 stable_frames: int = 5) -> list[tuple[float, float, float]]:
    """Notes from pyin: boundaries at onsets and where a new rounded pitch holds
    for ``stable_frames`` voiced frames; each note ends at the next boundary or
    where voicing stops, with the segment's median pitch."""
    midi = np.where(voiced, 69 + 12 * np.log2(np.maximum(f0, 1e-6) / 440.0), np.nan)
    rounded = np.round(midi)
    starts = [float(t) for t in onsets]
    run_pitch, run_len = np.nan, 0
    prev_note = np.nan
    for i, p in enumerate(rounded):
        if np.isnan(p):
            run_pitch, run_len, prev_note = np.nan, 0, np.nan
            continue
        run_len = run_len + 1 if p == run_pitch else 1
        run_pitch = p
        if run_len == stable_frames and p != prev_note:
            starts.append(float(times[i - stable_frames + 1]))
        if run_len >= stable_frames:
            prev_note = p
    starts.sort()
    merged: list[float] = []
    for s in starts:  # an onset and a pitch change of the same note: keep the earlier
        if not merged or s - merged[-1] > ONSET_WINDOW_S:
            merged.append(s)
    notes = []
    for k, s in enumerate(merged):
        nxt = merged[k + 1] if k + 1 < len(merged) else times[-1] + 1
        sel = (times >= s) & (times < nxt)
        idx = np.flatnonzero(sel)
        if idx.size == 0:
            continue
        # End at the first unvoiced frame after the note has sounded.
        v = voiced[idx]
        if not v.any():
            continue
        first_v = idx[np.argmax(v)]
        after = np.flatnonzero(~voiced[first_v:idx[-1] + 1])
        stop = first_v + after[0] if after.size else idx[-1] + 1
        seg = midi[first_v:stop]
        seg = seg[~np.isnan(seg)]
        if seg.size < 3:
            continue
        off = times[stop] if stop < len(times) else times[-1]
        notes.append((s, float(off), float(np.round(np.median(seg)))))
    return notes


def run_basic_pitch(audio: np.ndarray, sr: int) -> Estimate:
    """Spotify's basic-pitch (ICASSP 2022 model through onnxruntime), default
    thresholds. It transcribes polyphony; for a monophonic line a note that
    spends more than half its length under a louder one is dropped (mostly its
    octave-up ghosts)."""
    import tempfile

    from basic_pitch import ICASSP_2022_MODEL_PATH
    from basic_pitch.inference import predict

    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        sf.write(tmp.name, audio, sr)
        _, _, events = predict(tmp.name, ICASSP_2022_MODEL_PATH)
    notes = []
    for s, e, p, a, _ in events:
        louder = sum(max(0.0, min(e, e2) - max(s, s2)) for s2, e2, _, a2, _ in events if a2 > a)
        if louder <= 0.5 * (e - s):
            notes.append((float(s), float(e), float(p)))
    notes.sort()
    iv, midi = notes_array(notes, len(audio) / sr)
    return Estimate(np.zeros(0), np.zeros(0), iv[:, 0] if len(iv) else np.zeros(0), iv, midi)


RUNNERS = {"daw-bridge": run_engine, "daw-bridge voice": run_engine_voice, "aubio": run_aubio,
           "librosa": run_librosa, "basic-pitch": run_basic_pitch}


# --- scoring ----------------------------------------------------------------


def score(item: corpus.Item, est: Estimate) -> dict:
    import mir_eval

    ref_v, ref_c, est_v, est_c = mir_eval.melody.to_cent_voicing(
        item.f0_times, item.f0_hz, est.f0_times, est.f0_hz, hop=corpus.F0_HOP_S)
    shifted = {}
    for ms in SHIFTS_MS:
        sv = mir_eval.melody.to_cent_voicing(item.f0_times, item.f0_hz, est.f0_times + ms / 1000,
                                             est.f0_hz, hop=corpus.F0_HOP_S)
        shifted[ms] = mir_eval.melody.raw_pitch_accuracy(*sv, cent_tolerance=PITCH_TOL_CENTS)
    out = {
        "rpa_by_shift_ms": shifted,
        "rpa": mir_eval.melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c, PITCH_TOL_CENTS),
        "rca": mir_eval.melody.raw_chroma_accuracy(ref_v, ref_c, est_v, est_c, PITCH_TOL_CENTS),
        "voicing_recall": mir_eval.melody.voicing_recall(ref_v, est_v),
        "voicing_false_alarm": mir_eval.melody.voicing_false_alarm(ref_v, est_v),
    }
    f, p, r = mir_eval.onset.f_measure(item.onsets, est.onsets, window=ONSET_WINDOW_S)
    out.update(onset_f=f, onset_p=p, onset_r=r, n_onsets=len(est.onsets))
    matched = mir_eval.util.match_events(item.onsets, est.onsets, ONSET_WINDOW_S)
    dev = [est.onsets[j] - item.onsets[i] for i, j in matched]
    out["onset_median_dev_ms"] = float(np.median(dev) * 1000) if dev else None
    ref_iv, ref_hz = item.notes[:, :2], hz(item.notes[:, 2])
    if len(est.note_midi):
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ref_iv, ref_hz, est.note_intervals, hz(est.note_midi), onset_tolerance=ONSET_WINDOW_S,
            pitch_tolerance=PITCH_TOL_CENTS, offset_ratio=None)
    else:
        p = r = f = 0.0
    out.update(note_f=f, note_p=p, note_r=r, n_notes=len(est.note_midi), n_ref_notes=len(ref_iv))
    out.update(note_diagnosis(item, est))
    return out


def note_diagnosis(item: corpus.Item, est: Estimate) -> dict:
    """Why notes failed: for each reference note, the estimated note nearest its
    onset (within 150 ms) tells apart late/early, octave, other pitch and missed."""
    kinds = {"ok": 0, "late": 0, "early": 0, "octave": 0, "pitch": 0, "missed": 0}
    onset_devs = []
    examples = []
    est_on = est.note_intervals[:, 0] if len(est.note_midi) else np.zeros(0)
    for on, _, m in item.notes:
        if est_on.size == 0:
            kinds["missed"] += 1
            continue
        j = int(np.argmin(np.abs(est_on - on)))
        dt = est_on[j] - on
        if abs(dt) > 0.15:
            kinds["missed"] += 1
            examples.append(("missed", on, int(m), None, None))
            continue
        onset_devs.append(dt)
        dm = est.note_midi[j] - m
        if abs(dm) >= 0.5:
            kind = "octave" if abs(abs(dm) - 12) < 0.5 or abs(abs(dm) - 24) < 0.5 else "pitch"
        elif dt > ONSET_WINDOW_S:
            kind = "late"
        elif dt < -ONSET_WINDOW_S:
            kind = "early"
        else:
            kind = "ok"
        kinds[kind] += 1
        if kind != "ok":
            examples.append((kind, on, int(m), float(est.note_midi[j]), dt * 1000))
    return {
        "note_kinds": kinds,
        "note_onset_median_dev_ms": float(np.median(onset_devs) * 1000) if onset_devs else None,
        "note_examples": [
            {"kind": k, "t": round(t, 3), "ref": r, "est": e, "dt_ms": None if d is None else round(d, 1)}
            for k, t, r, e, d in examples[:8]
        ],
    }


def evaluate(task: tuple[str, int, corpus.Item]) -> tuple[str, int, dict]:
    algo, idx, item = task
    audio, sr = sf.read(item.wav, dtype="float32")
    t0 = time.perf_counter()
    est = RUNNERS[algo](np.ascontiguousarray(audio), sr)
    res = score(item, est)
    res["seconds"] = time.perf_counter() - t0
    res.update(est.extra)
    return algo, idx, res


# --- voices (--voices) -------------------------------------------------------

VOICE_ALGORITHMS = ("daw-bridge", "daw-bridge voice", "librosa", "basic-pitch")
VOICE_JSON = Path(__file__).resolve().parent / "results" / "voices.json"
VOICE_CLIPS: list = []
"""bridge.voices clips, made before the pool forks so the workers share them."""
VOICE_METRICS = (("note_f", "note F (onset)"), ("note_f_off", "note F (onset+offset)"),
                 ("notes_per_note", "notes out per note in"), ("onset_f", "onset F"))
PHENOMENON_LABELS = {"glide": "legato glide", "consonants": "consonants/breath"}


def score_voice(ref: np.ndarray, est: Estimate) -> dict:
    """Note F with mir_eval (50 ms onsets, 50 cents), onset only and with
    offsets (mir_eval's default: within 20 % of the note or 50 ms); notes out
    per note in; onset F of the notes' onsets, pitch ignored."""
    import mir_eval

    ref_iv, ref_hz = ref[:, :2], hz(ref[:, 2])
    out = {"n_ref": len(ref), "n_est": len(est.note_midi), "notes_per_note": len(est.note_midi) / len(ref)}
    for key, ratio in (("note_f", None), ("note_f_off", 0.2)):
        out[key] = mir_eval.transcription.precision_recall_f1_overlap(
            ref_iv, ref_hz, est.note_intervals, hz(est.note_midi), onset_tolerance=ONSET_WINDOW_S,
            pitch_tolerance=PITCH_TOL_CENTS, offset_ratio=ratio)[2] if len(est.note_midi) else 0.0
    est_on = np.sort(est.note_intervals[:, 0]) if len(est.note_midi) else np.zeros(0)
    out["onset_f"] = mir_eval.onset.f_measure(ref[:, 0], est_on, window=ONSET_WINDOW_S)[0]
    return out


def evaluate_voice(task: tuple[str, int]) -> tuple[str, int, dict]:
    algo, idx = task
    clip = VOICE_CLIPS[idx]
    t0 = time.perf_counter()
    res = score_voice(clip.note_array(), RUNNERS[algo](clip.signal, clip.rate))
    res["seconds"] = time.perf_counter() - t0
    return algo, idx, res


def voice_groups(clips: list) -> list[tuple[str, list[int]]]:
    """Every clip; each family; each phenomenon (every clip labelled with it, any family)."""
    from bridge import voices

    groups = [(f"all ({len(clips)} clips)", list(range(len(clips))))]
    for fam in voices.FAMILIES:
        idx = [i for i, c in enumerate(clips) if c.family == fam]
        groups.append((f"{fam} ({len(idx)})", idx))
    for ph in voices.PHENOMENA:
        idx = [i for i, c in enumerate(clips) if ph in c.phenomena]
        groups.append((f"{PHENOMENON_LABELS.get(ph, ph)} ({len(idx)})", idx))
    return [(label, idx) for label, idx in groups if idx]


def print_voice_tables(clips: list, results: dict[str, dict[int, dict]], algos: list[str],
                       per_clip: bool) -> dict:
    """One table per metric: groups down, contenders across (means over clips)."""
    summary: dict = {}
    for key, title in VOICE_METRICS:
        print(f"{title:28}" + "".join(f"{a:>18}" for a in algos))
        print("-" * (28 + 18 * len(algos)))
        for label, idx in voice_groups(clips):
            row = f"{label:28}"
            for a in algos:
                v = mean([results[a][i] for i in idx if i in results[a]], key)
                summary.setdefault(label, {}).setdefault(a, {})[key] = v
                row += fmt(v, 18)
            print(row)
        print()
    if per_clip:
        print(f"{'clip':44}" + "".join(f"{a:>22}" for a in algos) + "   (note F / with offsets / out per in)")
        for i, c in enumerate(clips):
            row = f"{c.name:44}"
            for a in algos:
                r = results[a].get(i)
                row += f"{'n/a':>22}" if r is None else (
                    f"{r['note_f']:8.3f}{r['note_f_off']:7.3f}{r['notes_per_note']:7.2f}")
            print(row)
    return summary


def run_voices(args: argparse.Namespace, algos: list[str]) -> int:
    from bridge import voices

    VOICE_CLIPS.extend(c for c in voices.corpus(seed=args.seed) if args.files in c.name)
    tasks = [(a, i) for a in sorted(algos, key=lambda a: a.startswith("daw-bridge")) for i in range(len(VOICE_CLIPS))]
    t0 = time.perf_counter()
    results: dict[str, dict[int, dict]] = {a: {} for a in algos}
    with mp.get_context("fork").Pool(args.jobs) as pool:
        for algo, idx, res in pool.imap_unordered(evaluate_voice, tasks):
            results[algo][idx] = res
    audio_s = sum(len(c.signal) / c.rate for c in VOICE_CLIPS)
    print(f"{len(VOICE_CLIPS)} clips of bridge.voices (seed {args.seed}, {audio_s:.0f} s of audio), "
          f"{args.jobs} jobs, {time.perf_counter() - t0:.0f} s wall\n")
    summary = print_voice_tables(VOICE_CLIPS, results, algos, args.per_clip)
    print("CPU seconds per contender: " + ", ".join(
        f"{a} {sum(r['seconds'] for r in results[a].values()):.1f}" for a in algos))
    out = args.json if args.json != DEFAULT_JSON else VOICE_JSON
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "summary": summary,
        "clips": [{"name": c.name, "family": c.family, "phenomena": c.phenomena, "key": c.key,
                   **{a: results[a].get(i) for a in algos}} for i, c in enumerate(VOICE_CLIPS)],
    }, indent=1, default=float))
    print(f"\nwrote {out}")
    return 0


# --- report -----------------------------------------------------------------

METRICS = (("rpa", "RPA"), ("onset_f", "onset F"), ("note_f", "note F"))


def mean(results: list[dict], key: str) -> float | None:
    vals = [r[key] for r in results if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def fmt(x: float | None, width: int = 11) -> str:
    return f"{'n/a':>{width}}" if x is None else f"{x:>{width}.3f}"


def summarise(per: list[dict]) -> dict:
    """Means over files, the median onset deviation, and the best-shift RPA."""
    if not per:
        return {}
    out = {key: mean(per, key) for key in ("rpa", "rca", "onset_f", "note_f", "voicing_recall",
                                           "voicing_false_alarm")}
    devs = [r["onset_median_dev_ms"] for r in per if r["onset_median_dev_ms"] is not None]
    out["onset_median_dev_ms"] = float(np.median(devs)) if devs else None
    by_shift = {ms: float(np.mean([r["rpa_by_shift_ms"][ms] for r in per])) for ms in SHIFTS_MS}
    best = max(by_shift, key=by_shift.get)
    out["rpa_best_shift"], out["best_shift_ms"] = by_shift[best], best
    return out


ROWS = (("rpa", "RPA"), ("onset_f", "onset F"), ("note_f", "note F"), ("rca", "RCA"),
        ("rpa_best_shift", "RPA at best shift"), ("best_shift_ms", "  best shift ms"),
        ("onset_median_dev_ms", "onset dev ms"))


def print_tables(items: list[corpus.Item], results: dict[str, dict[int, dict]], algos: list[str]) -> dict:
    conditions = sorted({it.condition for it in items}, key=corpus.CONDITIONS.index)
    summary = {
        cond: {a: summarise([results[a][i] for i, it in enumerate(items)
                             if it.condition == cond and i in results[a]]) for a in algos}
        for cond in conditions
    }
    header = f"{'metric':28}" + "".join(f"{a:>11}" for a in algos)
    print(header)
    print("-" * len(header))
    for cond in conditions:
        for key, label in ROWS:
            row = f"{label + ' (' + cond + ')':28}"
            for a in algos:
                v = summary[cond][a].get(key)
                row += f"{'n/a':>11}" if v is None else (
                    f"{v:>11.1f}" if key.endswith("ms") else f"{v:>11.3f}")
            print(row)
    print()
    print("Per file (RPA / onset F / note F):")
    print(f"{'file':28} {'cond':6}" + "".join(f"{a:>22}" for a in algos))
    for i, it in enumerate(items):
        row = f"{it.name:28} {it.condition:6}"
        for a in algos:
            r = results[a].get(i)
            row += f"{'n/a':>22}" if r is None else f"{r['rpa']:8.3f}{r['onset_f']:7.3f}{r['note_f']:7.3f}"
        print(row)
    return summary


def print_examples(items: list[corpus.Item], res: dict[int, dict], algo: str) -> None:
    print(f"\n{algo}: note errors by kind (per file) and first examples")
    for i, it in enumerate(items):
        r = res.get(i)
        if r is None:
            continue
        k = r["note_kinds"]
        print(f"  {it.name} ({it.condition}, {it.instrument}): {k}, "
              f"median note-onset dev {r['note_onset_median_dev_ms']} ms, RCA-RPA {r['rca'] - r['rpa']:.3f}")
        for ex in r["note_examples"][:4]:
            print(f"      {ex}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=corpus.DEFAULT_DIR)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", default=",".join(ALGORITHMS), help="comma-separated contenders")
    ap.add_argument("--files", default="", help="only files whose name contains this")
    ap.add_argument("--examples", action="store_true", help="print note-error diagnostics")
    ap.add_argument("--engine-config", type=Path, metavar="TOML",
                    help="a daw-bridge config file whose [engine] table the engine uses")
    ap.add_argument("--voices", action="store_true",
                    help="score the generated voices of bridge/voices.py instead (per family and phenomenon)")
    ap.add_argument("--seed", type=int, default=0, help="--voices: the corpus seed")
    ap.add_argument("--per-clip", action="store_true", help="--voices: print every clip's figures")
    args = ap.parse_args()
    if args.voices and args.only == ",".join(ALGORITHMS):
        args.only = ",".join(VOICE_ALGORITHMS)
    if args.engine_config:
        import tomllib

        ENGINE_SETTINGS.update(tomllib.loads(args.engine_config.read_text()).get("engine", {}))
    algos = [a for a in args.only.split(",") if a]
    unknown = [a for a in algos if a not in RUNNERS]
    if unknown:
        print(f"accuracy: unknown contender(s) {unknown}; choose from {list(RUNNERS)}", file=sys.stderr)
        return 2
    if any(a.startswith("daw-bridge") for a in algos):
        try:
            import rust_engine  # noqa: F401
        except ImportError as exc:
            print(f"accuracy: daw-bridge engine not importable ({exc}); skipping it", file=sys.stderr)
            algos = [a for a in algos if not a.startswith("daw-bridge")]
    if "basic-pitch" in algos:
        try:
            import basic_pitch.inference  # noqa: F401
        except ImportError as exc:
            print(f"accuracy: basic-pitch not importable ({exc}); skipping it. Install it with "
                  "pip install --no-deps basic-pitch==0.4.0 (README, 'Voices')", file=sys.stderr)
            algos.remove("basic-pitch")
    if args.voices:
        return run_voices(args, algos)
    items = [it for it in corpus.load(args.corpus) if args.files in it.name]
    # Slowest first (pyin) so the pool's two workers finish together.
    tasks = [(a, i, it) for a in sorted(algos, key=lambda a: a != "librosa") for i, it in enumerate(items)]
    t0 = time.perf_counter()
    results: dict[str, dict[int, dict]] = {a: {} for a in algos}
    with mp.get_context("fork").Pool(args.jobs) as pool:
        for algo, idx, res in pool.imap_unordered(evaluate, tasks):
            results[algo][idx] = res
    wall = time.perf_counter() - t0
    audio_s = sum(len(it.f0_hz) * corpus.F0_HOP_S for it in items)
    print(f"{len(items)} recordings ({audio_s:.0f} s of audio), {args.jobs} jobs, {wall:.0f} s wall\n")
    summary = print_tables(items, results, algos)
    print("\nCPU seconds per contender: " + ", ".join(
        f"{a} {sum(r['seconds'] for r in results[a].values()):.1f}" for a in algos))
    if args.examples:
        for a in algos:
            print_examples(items, results[a], a)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "summary": summary,
        "files": [
            {"name": it.name, "condition": it.condition, "instrument": it.instrument,
             **{a: results[a].get(i) for a in algos}}
            for i, it in enumerate(items)
        ],
    }, indent=1, default=float))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
