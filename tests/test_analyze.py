"""bridge.analyze in-process: the golden demo recording, note pairing, names and MIDI ticks."""

from __future__ import annotations

import json
import os
import threading
import time

import mido
import numpy as np
import pytest
import soundfile as sf
from rust_engine import Analyzer, EngineConfig

from bridge import analyze
from bridge.analyze import AnalysisError, analyze_file, note_name, pair_notes
from bridge.signals import SR, octave_low_attack
from conftest import DEMO_DIR

ONSET_TOL_S = 0.010
OFFSET_TOL_S = 0.030


def test_demo_recording_gives_exactly_its_notes():
    """The golden test: the bundled demo gives exactly the notes it was rendered from."""
    truth = json.loads((DEMO_DIR / "demo_notes.json").read_text())
    info = sf.info(DEMO_DIR / "demo.wav")
    assert (info.samplerate, info.channels, info.subtype) == (truth["sample_rate"], 1, "PCM_16")

    result = analyze_file(DEMO_DIR / "demo.wav")
    found = [(n.note, n.start, n.end) for n in result.notes]
    expected = [(n["note"], n["start"], n["end"]) for n in truth["notes"]]
    assert [f[0] for f in found] == [e[0] for e in expected]
    for (note, start, end), (_, true_start, true_end) in zip(found, expected, strict=True):
        assert abs(start - true_start) <= ONSET_TOL_S, (note, start, true_start)
        assert abs(end - true_end) <= OFFSET_TOL_S, (note, end, true_end)
    assert [n.name for n in result.notes] == [n["name"] for n in truth["notes"]]
    # Louder notes get higher velocities: compare the quietest and loudest thirds.
    levels = [n["peak_dbfs"] for n in truth["notes"]]
    by_level = [n.velocity for _, n in sorted(zip(levels, result.notes, strict=True), key=lambda p: p[0])]
    quiet, loud = by_level[:5], by_level[-5:]
    assert max(quiet) < min(loud), (quiet, loud)


def test_demo_file_is_what_the_generator_makes(synth, tmp_path):
    synth.main(tmp_path)
    assert (tmp_path / "demo.wav").read_bytes() == (DEMO_DIR / "demo.wav").read_bytes()
    assert (tmp_path / "demo_notes.json").read_text() == (DEMO_DIR / "demo_notes.json").read_text()


def test_analysis_matches_the_engine_fed_directly():
    """The file path adds nothing: same events as one Analyzer fed the whole signal."""
    audio, rate = sf.read(DEMO_DIR / "demo.wav", dtype="float32")
    analyzer = Analyzer(EngineConfig({"sample_rate": rate}))
    direct = [*analyzer.process(np.ascontiguousarray(audio)), *analyzer.flush()]
    expected = pair_notes([e for e in direct if e.kind in ("note_on", "note_off")])
    result = analyze_file(DEMO_DIR / "demo.wav", block=333)
    assert result.notes == expected
    assert result.event_count == len(direct)
    assert (result.frames, result.sample_rate, result.channels) == (len(audio), rate, 1)


@pytest.mark.parametrize(
    ("midi", "name"), [(60, "C4"), (61, "C#4"), (69, "A4"), (28, "E1"), (96, "C7"), (0, "C-1")]
)
def test_note_names(midi, name):
    assert note_name(midi) == name


class _Ev:
    """The fields of rust_engine.Event that pair_notes and the MIDI writer read."""

    def __init__(self, kind: str, sample: int, note: int, velocity: int = 0) -> None:
        self.kind, self.sample, self.note, self.velocity = kind, sample, note, velocity
        self.t = sample / 1000


def test_pair_notes_orders_offs_before_ons_at_the_same_sample():
    events = [
        _Ev("note_on", 100, 60, 90),
        _Ev("note_on", 500, 60, 70),  # re-articulation: same note, the off comes at 500 too
        _Ev("note_off", 500, 60),
        _Ev("note_off", 900, 60),
        _Ev("note_on", 900, 62, 50),
    ]
    notes = pair_notes(events)
    assert [(n.note, n.start, n.end, n.velocity) for n in notes] == [
        (60, 0.1, 0.5, 90),
        (60, 0.5, 0.9, 70),
    ]  # the last note-on has no note-off: dropped


def test_retracted_notes_leave_the_midi_file_and_the_note_list(tmp_path):
    wav = tmp_path / "attack.wav"
    sf.write(wav, octave_low_attack(48), SR, subtype="FLOAT")
    events_path, midi_path = tmp_path / "e.jsonl", tmp_path / "e.mid"
    result = analyze_file(wav, midi_out=midi_path, events_out=events_path)
    logged = [json.loads(line) for line in events_path.read_text().splitlines()]
    ons = {e["note"]: e["t"] for e in logged if e["type"] == "note_on"}
    offs = {e["note"]: e["t"] for e in logged if e["type"] == "note_off"}
    assert ons[36] == offs[36]  # the log keeps the retraction
    assert [(n.note, round(n.start, 2)) for n in result.notes] == [(48, 0.1)]
    played = [(m.type, m.note) for m in mido.MidiFile(midi_path).tracks[0] if not m.is_meta]
    assert played == [("note_on", 48), ("note_off", 48)]


def test_midi_ticks_are_exact_seconds_at_120_bpm(tmp_path):
    events = [_Ev("note_on", 1, 64, 100), _Ev("note_off", 1500, 64), _Ev("note_on", 1500, 65, 1)]
    events.append(_Ev("note_off", 2_000_001, 65))
    path = tmp_path / "t.mid"
    analyze._midi_file(events).save(path)
    ticks, seen = 0, []
    for msg in mido.MidiFile(path).tracks[0]:
        ticks += msg.time
        if not msg.is_meta:
            seen.append((msg.type, msg.note, ticks))
    # 120 bpm, 480 ticks per beat: 960 ticks per second, rounded to the nearest tick.
    assert seen == [
        ("note_on", 64, 1),
        ("note_off", 64, 1440),
        ("note_on", 65, 1440),
        ("note_off", 65, 1_920_001),
    ]


def test_block_size_is_validated_in_the_api_too():
    with pytest.raises(AnalysisError, match="--block"):
        analyze_file(DEMO_DIR / "demo.wav", block=0)


def _fifo_writer(fifo, write) -> threading.Thread:
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("how", ["WAV bytes in slow pieces", "AU streamed by libsndfile"])
def test_a_fifo_is_read_as_a_stream(tmp_path, how):
    """A named pipe reports size 0 and cannot seek; it is read as it is written and
    gives the same notes as the file (issue 12 #12)."""
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    wav_bytes = (DEMO_DIR / "demo.wav").read_bytes()
    audio, rate = sf.read(DEMO_DIR / "demo.wav", dtype="float32")

    def write_bytes() -> None:
        with open(fifo, "wb") as f:
            for i in range(0, len(wav_bytes), 65_536):
                f.write(wav_bytes[i : i + 65_536])
                f.flush()
                time.sleep(0.01)

    def write_soundfile() -> None:
        # A streaming writer cannot go back to fill in a length: libsndfile writes a pipe
        # only in formats whose header may leave it open, such as AU.
        with sf.SoundFile(fifo, "w", samplerate=rate, channels=1, subtype="PCM_16", format="AU") as f:
            for i in range(0, len(audio), 10_000):
                f.write(audio[i : i + 10_000])

    writer = _fifo_writer(fifo, write_bytes if how.startswith("WAV") else write_soundfile)
    out = tmp_path / "out.jsonl"
    result = analyze_file(fifo, events_out=out)
    writer.join(timeout=30)
    expected = analyze_file(DEMO_DIR / "demo.wav")
    assert result == expected
    assert result.frames == len(audio) and out.read_text().count("\n") == result.event_count


def test_a_fifo_closed_without_data_is_a_clear_error(tmp_path):
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    writer = _fifo_writer(fifo, lambda: open(fifo, "wb").close())
    with pytest.raises(AnalysisError, match="is a pipe that was closed without any data"):
        analyze_file(fifo, midi_out=tmp_path / "out.mid")
    writer.join(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_a_fifo_with_a_header_and_no_samples_contains_no_audio(tmp_path):
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    header = tmp_path / "header.wav"
    sf.write(header, np.zeros(0, np.float32), 48_000, subtype="PCM_16")
    writer = _fifo_writer(fifo, lambda: fifo.write_bytes(header.read_bytes()))
    with pytest.raises(AnalysisError, match="contains no audio"):
        analyze_file(fifo, midi_out=tmp_path / "out.mid")
    writer.join(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["header.wav", "in.wav"]


def test_a_setting_that_fails_at_the_files_rate_names_key_and_rate(tmp_path):
    wav = tmp_path / "low.wav"
    sf.write(wav, np.zeros(8000, np.float32), 8000)
    with pytest.raises(AnalysisError, match=r"^engine\.pitch\.fmax_hz at 8000 Hz: must be above fmin_hz"):
        analyze_file(wav, settings={"pitch": {"fmax_hz": 3000.0}})
