"""Tuning, key and pitch bend of the notes: `analyze --tuning/--scale/--bend`
on generated singing (bridge/voices.py), the engine's snapping shared with
`run`, and the pitch bend in a take."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from rust_engine import SCALE_MODES, Analyzer, ConfigError, EngineConfig

from bridge import voices
from bridge.analyze import analyze_file
from bridge.bend import BEND_CENTRE
from bridge.live import LiveOptions, LiveRunner
from bridge.recorder import TakeRecorder
from bridge.signals import SR, harmonic
from bridge.tuning import LiveEstimate, estimate_key, parse_scale, parse_tuning, scale_name
from conftest import CLI

ONSET_TOL_S = 0.05


def _sung(tmp_path: Path, a4_hz: float, phenomena: tuple[str, ...] = ("vibrato", "drift"),
          seed: int = 7) -> tuple[Path, voices.Clip]:
    clip = voices.clip("t", "sung", phenomena, seed=seed, root=57, mode="minor", low=52, high=72, bpm=96,
                       a4_hz=a4_hz)
    path = tmp_path / f"sung-{a4_hz:g}-{seed}.wav"
    sf.write(path, clip.signal, clip.rate)
    return path, clip


def _recall(clip: voices.Clip, notes: list) -> float:
    """Share of the true notes found with the right number within 50 ms of their onset."""
    found = sum(any(n.note == t.midi and abs(n.start - t.onset) <= ONSET_TOL_S for n in notes)
                for t in clip.notes)
    return found / len(clip.notes)


@pytest.mark.parametrize("tuning", [432.0, "auto"])
def test_singing_at_432_hz_gives_its_notes(tmp_path, tuning):
    path, clip = _sung(tmp_path, 432.0)
    result = analyze_file(path, tuning=tuning)
    assert result.tuning_hz == pytest.approx(432.0, abs=1.5)
    assert _recall(clip, result.notes) >= 0.85
    assert len(result.notes) <= len(clip.notes) + 2


def test_a_detuned_performance_needs_its_reference(tmp_path):
    """Sung 39 cents sharp (A4 = 450 Hz), with vibrato and drift: against
    440 Hz many notes round to the semitone above; against 450 Hz, given or
    estimated, they are right."""
    path, clip = _sung(tmp_path, 450.0)
    plain = _recall(clip, analyze_file(path).notes)
    given = analyze_file(path, tuning=450.0)
    auto = analyze_file(path, tuning="auto")
    assert auto.tuning_hz == pytest.approx(450.0, abs=1.5)
    assert _recall(clip, given.notes) >= 0.85 and _recall(clip, auto.notes) >= 0.85
    assert plain < _recall(clip, given.notes) - 0.2


def test_auto_leaves_in_tune_singing_as_it_is(tmp_path):
    path, _ = _sung(tmp_path, 440.0, seed=8)
    result = analyze_file(path, tuning="auto")
    assert result.tuning_hz == pytest.approx(440.0, abs=1.5)
    assert [n.note for n in result.notes] == [n.note for n in analyze_file(path).notes]


def _tones(tmp_path: Path, midis: list[float]) -> Path:
    gap = np.zeros(int(0.15 * SR), np.float32)
    audio = np.concatenate([gap, *[np.concatenate([harmonic(m, 0.3), gap]) for m in midis]])
    path = tmp_path / "tones.wav"
    sf.write(path, audio, SR)
    return path


def test_a_scale_snaps_note_numbers_to_its_nearest_degree(tmp_path):
    """Each tone goes to the scale degree nearest its pitch, the boundary
    half-way between two degrees (a semitone apart or more)."""
    # C, D# 20 cents sharp, E, F# 20 cents flat, A# 20 cents sharp, C.
    path = _tones(tmp_path, [60, 63.2, 64, 65.8, 70.2, 72])
    assert [n.note for n in analyze_file(path).notes] == [60, 63, 64, 66, 70, 72]
    # C major: D#+20 is nearer E than D, F#-20 nearer F than G, A#+20 nearer B than A.
    assert [n.note for n in analyze_file(path, scale=parse_scale("C:major")).notes] == [60, 64, 64, 65, 71, 72]
    # E minor (E F# G A B C D): F#-20 is F# itself.
    assert [n.note for n in analyze_file(path, scale=parse_scale("E:minor")).notes] == [60, 64, 64, 66, 71, 72]
    # A minor pentatonic (A C D E G): F#-20 lies above the middle of E..G, A#+20 below that of A..C.
    assert [n.note for n in analyze_file(path, scale=parse_scale("A:minor_pentatonic")).notes] == [
        60, 64, 64, 67, 69, 72]
    assert [n.note for n in analyze_file(path, scale=parse_scale("chromatic")).notes] == [60, 63, 64, 66, 70, 72]


def _notes_live(midis: list[float], changes: dict[int, dict[str, float]]) -> list[int]:
    """Note numbers of an Analyzer fed tones `midis`, one block per tone and gap, with
    `changes[i]` set (by `set_param`, as the live bridge does) before tone `i`."""
    analyzer = Analyzer(EngineConfig())
    gap = np.zeros(int(0.15 * SR), np.float32)
    events = list(analyzer.process(gap))
    for i, m in enumerate(midis):
        for key, value in changes.get(i, {}).items():
            analyzer.set_param(key, value)
        events += analyzer.process(harmonic(m, 0.3))
        events += analyzer.process(gap)
    events += analyzer.flush()
    return [e.note for e in events if e.kind == "note_on"]


def test_scale_and_tuning_change_live_from_the_next_note_on():
    major = SCALE_MODES.index("major")
    # D#+20 cents: D# chromatically, E in C major; the same tone again after the change.
    assert _notes_live([63.2, 63.2, 63.2], {1: {"notes.scale_mode": major}, 2: {"notes.scale_mode": 0}}) == [63, 64, 63]
    # In G major (root 7) F#: A#+20 goes to B, and back to chromatic A#.
    assert _notes_live([70.2, 70.2], {1: {"notes.scale_root": 7, "notes.scale_mode": major}}) == [70, 71]
    # 60 cents under A4 = 440 Hz reads G# against 440 and A against a performer's A4 = 430 Hz.
    assert _notes_live([68.4, 68.4], {1: {"notes.tuning_hz": 430.0}}) == [68, 69]


def test_a_held_note_survives_a_scale_change_and_later_notes_snap():
    """Changed while a note sounds: that note holds (no re-strike, no note-off), as its
    pitch stays what it was; the next one snaps."""
    analyzer = Analyzer(EngineConfig())
    tone = harmonic(63.2, 1.0)
    half = len(tone) // 2
    events = list(analyzer.process(tone[:half]))
    analyzer.set_param("notes.scale_mode", SCALE_MODES.index("major"))
    events += analyzer.process(tone[half:])
    events += analyzer.process(np.zeros(int(0.15 * SR), np.float32))
    events += analyzer.process(harmonic(63.2, 0.3))
    events += analyzer.flush()
    notes = [(e.kind, e.note) for e in events if e.kind in ("note_on", "note_off")]
    assert notes == [("note_on", 63), ("note_off", 63), ("note_on", 64), ("note_off", 64)]


def _play_to_estimate(estimate: LiveEstimate, signal: np.ndarray) -> None:
    """The clip's events, as the live bridge's dispatch thread hands them on: in batches."""
    analyzer = Analyzer(EngineConfig())
    for i in range(0, len(signal), 4096):
        estimate.add(analyzer.process(signal[i : i + 4096]))


def test_live_auto_finds_the_tuning_and_key_as_the_music_plays_and_then_holds_them():
    """`run --tuning auto --scale auto`: a singer at A4 = 450 Hz in A minor, with vibrato
    and scoops; the estimates reach a real (not started) runner's settings, which the
    engine would get, once enough was sung, and do not flap."""
    clip = voices.clip("t", "sung", ("vibrato", "scoop"), seed=7, root=57, mode="minor", low=52, high=72,
                       bpm=96, n_notes=40, a4_hz=450.0)
    runner = LiveRunner(LiveOptions(), EngineConfig())
    sets: list[tuple[str, float]] = []

    def set_param(key: str, value: float) -> None:
        sets.append((key, value))
        runner.set_param(key, value)

    estimate = LiveEstimate(True, True, runner.param, set_param)
    half = len(clip.signal) // 2
    _play_to_estimate(estimate, clip.signal[:half])
    assert runner.param("notes.tuning_hz") == pytest.approx(450.0, abs=1.5)
    key = (int(runner.param("notes.scale_root")), int(runner.param("notes.scale_mode")))
    assert scale_name(key) in ("A:minor", "C:major"), scale_name(key)
    assert [k for k, _ in sets].count("notes.scale_root") == 1, sets
    # The user picks another key (TUI, OSC): from then on it is theirs, the tuning still the estimator's.
    runner.set_param("notes.scale_root", 2.0)
    runner.set_param("notes.tuning_hz", 440.0)
    _play_to_estimate(estimate, clip.signal[half:])
    assert runner.param("notes.scale_root") == 2.0
    assert runner.param("notes.tuning_hz") == 440.0


def test_live_auto_waits_for_enough_singing():
    clip = voices.clip("t", "sung", ("plain",), seed=3, root=57, mode="minor", low=52, high=72, bpm=96,
                       n_notes=3, a4_hz=450.0)
    runner = LiveRunner(LiveOptions(), EngineConfig())
    _play_to_estimate(LiveEstimate(True, True, runner.param, runner.set_param), clip.signal)
    assert runner.param("notes.tuning_hz") == 440.0 and runner.param("notes.scale_mode") == 0


def test_whole_live_settings_refuse_fractions():
    analyzer = Analyzer(EngineConfig())
    with pytest.raises(ConfigError, match="whole"):
        analyzer.set_param("notes.scale_root", 2.5)
    with pytest.raises(ConfigError, match="notes.scale_mode"):
        analyzer.set_param("notes.scale_mode", len(SCALE_MODES))


def test_scale_auto_keeps_an_in_key_melody_and_names_its_key(tmp_path):
    path, _ = _sung(tmp_path, 440.0, phenomena=("plain",), seed=9)
    chromatic = analyze_file(path)
    snapped = analyze_file(path, scale="auto")
    # A minor or its relative C major: the same notes, so nothing in key moves.
    assert scale_name(snapped.scale) in ("A:minor", "C:major")
    assert [n.note for n in snapped.notes] == [n.note for n in chromatic.notes]


def test_estimate_key_reads_a_scale_played_up_and_down():
    for name in ("E:major", "F#:minor", "Bb:major", "C:minor"):
        root, mode = parse_scale(name)
        steps = [0, 2, 4, 5, 7, 9, 11] if SCALE_MODES[mode] == "major" else [0, 2, 3, 5, 7, 8, 10]
        # Tonic and fifth held longer, as melodies do.
        midi = [60 + root + s for s in steps for _ in range(4 if s in (0, 7) else 2)]
        assert scale_name(estimate_key(np.array(midi) + 0.1)) == name


def test_engine_setting_is_what_the_flags_set():
    cfg = EngineConfig({"notes": {"tuning_hz": 432.0, "scale_root": 2, "scale_mode": SCALE_MODES.index("dorian")}})
    assert cfg.to_dict()["notes"]["tuning_hz"] == 432.0
    assert parse_tuning("432") == 432.0 and parse_tuning("AUTO") == "auto"
    assert parse_scale("D:dorian") == (2, SCALE_MODES.index("dorian"))
    assert parse_scale("Db:major") == parse_scale("C#:major") == (1, 1)
    assert parse_scale("chromatic") == (0, 0)
    for bad in ("432x", "399", "nan"):
        with pytest.raises(ValueError):
            parse_tuning(bad)
    for bad in ("H:major", "C:ionian", "C", "C##:major"):
        with pytest.raises(ValueError):
            parse_scale(bad)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], check=False, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "says"), [
    (["analyze", "X.wav", "--tuning", "300"], "--tuning: the A4 reference must be from 400 to 480 Hz"),
    (["analyze", "X.wav", "--scale", "H:major"], "--scale: expected KEY:MODE"),
    (["analyze", "X.wav", "--bend", "0"], "--bend: must be above 0"),
    (["run", "--tuning", "481"], "--tuning: the A4 reference must be from 400 to 480 Hz"),
    (["run", "--scale", "C:blues"], "--scale: expected KEY:MODE"),
])
def test_bad_tuning_scale_and_bend_flags_fail_in_one_line(args, says):
    done = _cli(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("daw-bridge: error: ") and says in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_cli_reports_the_estimates(tmp_path):
    path, _ = _sung(tmp_path, 432.0)
    done = _cli("analyze", str(path), "--tuning", "auto", "--scale", "auto")
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert "A4 = 43" in first and "Hz (auto)" in first and "(auto)" in first.split("scale")[1]


def _bent_pitch(midi_file: mido.MidiFile, bend_range: float) -> list[tuple[int, float, float]]:
    """(note, mean, spread) of the pitch the bends of each note sound; checks
    that every note starts with the bend at the centre."""
    sounding: dict[str, object] = {"note": None, "bend": BEND_CENTRE, "pitches": []}
    out = []
    for msg in midi_file.tracks[-1]:
        if msg.type == "pitchwheel":
            sounding["bend"] = msg.pitch + BEND_CENTRE
        elif msg.type == "note_on" and msg.velocity:
            assert sounding["bend"] == BEND_CENTRE, "a note starts out of tune"
            sounding.update(note=msg.note, pitches=[])
        if msg.type == "pitchwheel" and sounding["note"] is not None:
            sounding["pitches"].append(sounding["note"] + (sounding["bend"] - BEND_CENTRE) / 8192 * bend_range)  # type: ignore[union-attr, operator]
        if msg.type in ("note_off", "note_on") and not getattr(msg, "velocity", 1) and sounding["pitches"]:
            p = np.array(sounding["pitches"])
            out.append((sounding["note"], float(p.mean()), float(p.max() - p.min())))
            sounding["note"] = None
    return out


def test_analyze_bend_writes_the_vibrato_as_pitch_bend(tmp_path):
    path, clip = _sung(tmp_path, 440.0, phenomena=("vibrato",), seed=11)
    plain_mid, bent_mid = tmp_path / "plain.mid", tmp_path / "bent.mid"
    analyze_file(path, midi_out=plain_mid)
    analyze_file(path, midi_out=bent_mid, bend_range=2.0)
    assert not [m for m in mido.MidiFile(plain_mid).tracks[0] if m.type == "pitchwheel"]
    bent = mido.MidiFile(bent_mid)
    controls = [(m.control, m.value) for m in bent.tracks[0] if m.type == "control_change"]
    assert controls[:4] == [(101, 0), (100, 0), (6, 2), (38, 0)]  # bend range: 2 semitones
    # The notes are the same with and without bends.
    notes = [(m.note, m.time) for m in mido.MidiFile(plain_mid).tracks[0] if m.type == "note_on"]
    assert [n for n, _ in notes] == [m.note for m in bent.tracks[0] if m.type == "note_on"]
    bent_notes = _bent_pitch(bent, 2.0)
    assert len(bent_notes) >= len(clip.notes) // 2
    for note, mean, spread in bent_notes:
        assert abs(mean - note) < 0.5  # the bend follows the note's own pitch...
    assert max(spread for _, _, spread in bent_notes) > 0.3  # ...and its vibrato


def test_take_of_run_bend_has_the_bends_checkpoints_or_not(tmp_path):
    """The take's bends follow the same rule as analyze --bend and midi_out;
    checkpoints on the way change nothing."""
    path, _ = _sung(tmp_path, 440.0, phenomena=("vibrato",), seed=11)
    audio, rate = sf.read(path, dtype="float32")
    analyzer = Analyzer(EngineConfig({"sample_rate": rate}))
    batches = [analyzer.process(np.ascontiguousarray(audio[i:i + 1024])) for i in range(0, len(audio), 1024)]
    batches.append(analyzer.flush())
    whole = TakeRecorder(tmp_path / "whole.mid", bend_range=2.0)
    stepped = TakeRecorder(tmp_path / "stepped.mid", bend_range=2.0)
    for batch in batches:
        whole.add(batch)
        stepped.add(batch)
        stepped.checkpoint()
    whole.close()
    stepped.close()
    assert (tmp_path / "whole.mid").read_bytes() == (tmp_path / "stepped.mid").read_bytes()
    take = mido.MidiFile(tmp_path / "whole.mid")
    offline = tmp_path / "offline.mid"
    analyze_file(path, midi_out=offline, bend_range=2.0)
    take_bends = _bent_pitch(take, 2.0)
    assert [n for n, _, _ in take_bends] == [n for n, _, _ in _bent_pitch(mido.MidiFile(offline), 2.0)]
    assert max(spread for _, _, spread in take_bends) > 0.3
    no_bend = TakeRecorder(tmp_path / "none.mid")
    for batch in batches:
        no_bend.add(batch)
    no_bend.close()
    assert not [m for t in mido.MidiFile(tmp_path / "none.mid").tracks for m in t if m.type == "pitchwheel"]
