"""Recording takes: MIDI files read back with mido, JSON lines parsed back.

Events come from the real engine analysing synthetic melodies. Disk-full
cases use /dev/full and a tiny tmpfs (mounting needs root, as on the CI
machine); kills are real signals to a child process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rust_engine import Analyzer, EngineConfig, Event

from bridge.recorder import EventLog, RecordingError, TakeRecorder
from bridge.signals import octave_low_attack

ROOT = Path(__file__).resolve().parents[1]
SR = 48_000
TICK_S = 0.5 / 480  # 120 bpm, 480 ticks per beat


def analyse(synth: ModuleType, notes: list[Any], block: int = 256) -> list[list[Event]]:
    """The engine's events for ``notes`` rendered as audio, one list per block."""
    audio = synth.render(notes, SR).astype(np.float32)
    analyzer = Analyzer(EngineConfig({"sample_rate": SR, "hop": 128}))
    batches = [
        analyzer.process(np.ascontiguousarray(audio[i : i + block]))
        for i in range(0, len(audio), block)
    ]
    return [*batches, analyzer.flush()]


def melody(synth: ModuleType, offset: int = 0) -> list[Any]:
    return [synth.Note(n.midi + offset, n.start, n.end, n.peak) for n in synth.demo_notes()[:8]]


def read_notes(path: Path) -> dict[str, list[tuple[int, int, float, float, int]]]:
    """Track name -> [(channel, note, start s, end s, velocity)], checking pairing on the way."""
    midi = mido.MidiFile(path)
    assert midi.type == 1 and midi.ticks_per_beat == 480
    tempos = [m.tempo for m in midi.tracks[0] if m.type == "set_tempo"]
    assert tempos == [mido.bpm2tempo(120)]
    tracks = {}
    for track in midi.tracks[1:]:
        name = next(m.name for m in track if m.type == "track_name")
        tick = 0
        sounding: dict[tuple[int, int], tuple[int, int]] = {}
        notes = []
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                key = (msg.channel, msg.note)
                assert key not in sounding, f"{name}: note {msg.note} struck twice"
                sounding[key] = (tick, msg.velocity)
            elif msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0):
                key = (msg.channel, msg.note)
                assert key in sounding, f"{name}: note-off without note-on"
                start, velocity = sounding.pop(key)
                notes.append((key[0], key[1], start * TICK_S, tick * TICK_S, velocity))
        assert not sounding, f"{name}: notes without note-off: {sounding}"
        tracks[name] = sorted(notes, key=lambda n: n[2])
    return tracks


def engine_notes(
    batches: list[list[Event]], start_t: float = 0.0
) -> list[tuple[int, float, float, int]]:
    """(note, start, end, velocity) as the engine reported them, relative to ``start_t``."""
    ons: dict[int, Event] = {}
    notes = []
    for event in (e for batch in batches for e in batch):
        if event.kind == "note_on":
            ons[event.note] = event
        elif event.kind == "note_off":
            on = ons.pop(event.note)
            notes.append((on.note, on.t - start_t, event.t - start_t, on.velocity))
    return sorted(notes, key=lambda n: n[1])


def assert_same_notes(
    got: list[tuple[int, int, float, float, int]],
    want: list[tuple[int, float, float, int]],
    channel: int,
) -> None:
    assert len(got) == len(want)
    for (ch, note, start, end, velocity), (w_note, w_start, w_end, w_velocity) in zip(
        got, want, strict=True
    ):
        assert (ch, note, velocity) == (channel, w_note, w_velocity)
        assert abs(start - w_start) <= 0.001
        assert abs(end - w_end) <= 0.001


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, to fill up for real."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def fill(directory: Path) -> None:
    """Fills the file system of ``directory`` to the last byte."""
    with open(directory / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass
        with contextlib.suppress(OSError):
            f.close()


def test_take_places_notes_at_their_onsets(synth: ModuleType, tmp_path: Path) -> None:
    batches = analyse(synth, melody(synth))
    path = tmp_path / "take.mid"
    with TakeRecorder(path, start_t=0.15) as recorder:
        for batch in batches:
            recorder.add(batch)
    tracks = read_notes(path)
    assert list(tracks) == ["in_1"]
    want = engine_notes(batches, start_t=0.15)
    assert_same_notes(tracks["in_1"], want, channel=0)
    assert [n[1] for n in tracks["in_1"]] == [n.midi for n in melody(synth)]
    # Placed at the detected onset, not when the engine emitted the note-on.
    truth = [n.start - 0.15 for n in melody(synth)]
    assert all(abs(n[2] - t) < 0.01 for n, t in zip(tracks["in_1"], truth, strict=True))
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


def test_a_retracted_note_stays_out_of_the_take(tmp_path: Path) -> None:
    analyzer = Analyzer(EngineConfig({"sample_rate": SR, "hop": 128}))
    events = [*analyzer.process(octave_low_attack(48)), *analyzer.flush()]
    assert 36 in [e.note for e in events if e.kind == "note_on"]  # heard, then retracted
    path = tmp_path / "take.mid"
    with TakeRecorder(path) as recorder:
        recorder.add(events)
    assert [(n[1], round(n[2], 2)) for n in read_notes(path)["in_1"]] == [(48, 0.1)]


def test_inputs_get_their_own_track_and_channel(synth: ModuleType, tmp_path: Path) -> None:
    first = analyse(synth, melody(synth))
    second = analyse(synth, melody(synth, offset=-12), block=100)
    path = tmp_path / "take.mid"
    with TakeRecorder(path, n_inputs=3) as recorder:
        # Different block sizes: the inputs' batches do not line up, as live.
        no_events: list[Event] = []
        for a, b in zip_longest(first, second, fillvalue=no_events):
            recorder.add(a, input=1)
            recorder.add(b, input=3)
    tracks = read_notes(path)
    assert list(tracks) == ["in_1", "in_2", "in_3"]
    assert_same_notes(tracks["in_1"], engine_notes(first), channel=0)
    assert tracks["in_2"] == []
    assert_same_notes(tracks["in_3"], engine_notes(second), channel=2)


def test_open_notes_end_at_close(synth: ModuleType, tmp_path: Path) -> None:
    batches = analyse(synth, melody(synth))
    events = [e for batch in batches for e in batch]
    # Stop in the middle of the third note: after its note-on, before its note-off.
    third_on = [i for i, e in enumerate(events) if e.kind == "note_on"][2]
    third_off = next(i for i, e in enumerate(events) if i > third_on and e.kind == "note_off")
    cut = (third_on + third_off) // 2
    path = tmp_path / "take.mid"
    recorder = TakeRecorder(path)
    recorder.add(events[:cut])
    assert recorder.close(end_t=events[cut].t) == path
    assert recorder.close() is None  # a second close is harmless
    notes = read_notes(path)["in_1"]
    assert len(notes) == 3
    assert notes[2][1] == events[third_on].note
    assert abs(notes[2][3] - events[cut].t) <= 0.001


def test_begin_stream_closes_notes_and_moves_the_clock(synth: ModuleType, tmp_path: Path) -> None:
    batches = analyse(synth, melody(synth))
    events = [e for batch in batches for e in batch]
    first_off = next(i for i, e in enumerate(events) if e.kind == "note_off")
    path = tmp_path / "take.mid"
    with TakeRecorder(path) as recorder:
        recorder.add(events[:first_off])  # the server dies with the first note sounding
        lost_at = events[first_off - 1].t
        recorder.begin_stream(take_t=10.0)  # a new client, its clock from 0
        recorder.add(events)
    notes = read_notes(path)["in_1"]
    assert abs(notes[0][3] - lost_at) <= 0.001
    restarted = engine_notes(batches)
    assert_same_notes(notes[1:], [(n, s + 10.0, e + 10.0, v) for n, s, e, v in restarted], 0)


def test_overlapping_streams_never_strike_a_sounding_key(synth: ModuleType, tmp_path: Path) -> None:
    # A new stream placed before the old one ended (a clock that stepped back):
    # a key struck again cuts its earlier note short instead of doubling it.
    batches = analyse(synth, melody(synth))
    path = tmp_path / "take.mid"
    with TakeRecorder(path) as recorder:
        for batch in batches:
            recorder.add(batch)
        recorder.begin_stream(take_t=0.3)
        for batch in batches:
            recorder.add(batch)
    notes = read_notes(path)["in_1"]  # checks that no key is struck while sounding
    assert len(notes) == 2 * len(melody(synth))
    first_64 = next(n for n in notes if n[1] == 64)
    assert first_64[3] <= 0.2 + 0.3 + 0.001  # ended where the next 64 begins


def test_unusable_paths_fail_up_front(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"directory '.*missing' does not exist"):
        TakeRecorder(tmp_path / "missing" / "take.mid")
    with pytest.raises(RecordingError, match="is a directory"):
        TakeRecorder(tmp_path)
    with pytest.raises(RecordingError, match="not a regular file"):
        TakeRecorder("/dev/null")
    with pytest.raises(RecordingError, match="does not exist"):
        EventLog(tmp_path / "missing" / "take.jsonl")
    with pytest.raises(RecordingError, match="is a directory"):
        EventLog(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_read_only_file_system_fails_up_front(tiny_fs: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    with pytest.raises(RecordingError, match=f"'{tiny_fs}/take.mid': Read-only file system"):
        TakeRecorder(tiny_fs / "take.mid")
    with pytest.raises(RecordingError, match="Read-only file system"):
        EventLog(tiny_fs / "take.jsonl")


def test_failed_close_leaves_no_file(synth: ModuleType, tmp_path: Path) -> None:
    batches = analyse(synth, melody(synth))
    gone = tmp_path / "gone"
    gone.mkdir()
    recorder = TakeRecorder(gone / "take.mid")
    for batch in batches:
        recorder.add(batch)
    gone.rmdir()  # the directory vanishes during the take
    with pytest.raises(RecordingError, match=r"cannot write MIDI take '.*take\.mid'"):
        recorder.close()
    assert not gone.exists()


def test_checkpoint_writes_the_take_so_far_and_close_the_whole(synth: ModuleType, tmp_path: Path) -> None:
    events = [e for batch in analyse(synth, melody(synth)) for e in batch]
    third_on = [i for i, e in enumerate(events) if e.kind == "note_on"][2]
    path = tmp_path / "take.mid"
    recorder = TakeRecorder(path)
    recorder.add(events[: third_on + 1])  # two notes done, the third sounding
    recorder.checkpoint()
    saved = read_notes(path)["in_1"]
    assert [n[1] for n in saved] == [e.note for e in events[: third_on + 1] if e.kind == "note_on"]
    # The sounding note ends where the take stood: the latest time of any event so far.
    assert recorder.saved_t == pytest.approx(max(e.t for e in events[: third_on + 1]))
    assert abs(saved[2][3] - recorder.saved_t) <= 0.002
    recorder.add(events[third_on + 1 :])
    recorder.close()
    assert_same_notes(read_notes(path)["in_1"], engine_notes([events]), channel=0)


def test_full_disk_after_a_checkpoint_keeps_the_take_up_to_it(synth: ModuleType, tiny_fs: Path) -> None:
    events = [e for batch in analyse(synth, melody(synth)) for e in batch]
    half = len(events) // 2
    path = tiny_fs / "take.mid"
    recorder = TakeRecorder(path)
    recorder.add(events[:half])
    recorder.checkpoint()
    saved = path.read_bytes()
    fill(tiny_fs)
    recorder.add(events[half:])
    with pytest.raises(RecordingError, match="No space left on device"):
        recorder.checkpoint()
    with pytest.raises(RecordingError, match=r"No space left on device; the take up to \d+\.\d s is kept"):
        recorder.close()
    assert path.read_bytes() == saved  # the checkpoint, whole
    assert read_notes(path)["in_1"]
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["filler", "take.mid"]


def test_full_disk_at_close_leaves_no_partial_file(synth: ModuleType, tiny_fs: Path) -> None:
    batches = analyse(synth, melody(synth))
    older = tiny_fs / "take.mid"
    older.write_bytes(b"an older take")
    recorder = TakeRecorder(older)
    for batch in batches:
        recorder.add(batch)
    fill(tiny_fs)
    with pytest.raises(RecordingError, match="No space left on device; no file written"):
        recorder.close()
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["filler", "take.mid"]
    assert older.read_bytes() == b"an older take"


def test_event_log_matches_to_dict(synth: ModuleType, tmp_path: Path) -> None:
    batches = analyse(synth, melody(synth))
    path = tmp_path / "take.jsonl"
    with EventLog(path) as log:
        for batch in batches:
            log.write(batch)
    lines = path.read_text().splitlines()
    events = [e for batch in batches for e in batch]
    assert [json.loads(line) for line in lines] == [e.to_dict() for e in events]
    assert log.lines == len(events) and log.warning is None


def test_event_log_time_runs_on_across_a_new_stream(synth: ModuleType, tmp_path: Path) -> None:
    events = [e for batch in analyse(synth, melody(synth)) for e in batch]
    path = tmp_path / "take.jsonl"
    with EventLog(path) as log:
        log.write(events[:100])
        log.begin_stream(12.5)  # the server came back: a new client, its clock from 0
        log.write(events[:100])
    times = [json.loads(line)["t"] for line in path.read_text().splitlines()]
    assert times[:100] == [e.to_dict()["t"] for e in events[:100]]
    assert times[100:] == [round(e.to_dict()["t"] + 12.5, 6) for e in events[:100]]


def test_event_log_names_the_input_when_there_are_several(
    synth: ModuleType, tmp_path: Path
) -> None:
    first = analyse(synth, melody(synth))[:50]
    second = analyse(synth, melody(synth, offset=5))[:50]
    path = tmp_path / "take.jsonl"
    with EventLog(path, n_inputs=2) as log:
        for a, b in zip(first, second, strict=True):
            log.write(a, input=1)
            log.write(b, input=2)
    want = [
        {**e.to_dict(), "input": k}
        for a, b in zip(first, second, strict=True)
        for k, batch in ((1, a), (2, b))
        for e in batch
    ]
    assert [json.loads(line) for line in path.read_text().splitlines()] == want


def test_event_log_on_dev_full_warns_and_goes_on(synth: ModuleType) -> None:
    batches = analyse(synth, melody(synth))[:20]
    with EventLog("/dev/full") as log:
        for batch in batches:
            log.write(batch)  # must not raise
    assert log.warning is not None and "No space left on device" in log.warning
    assert log.lines == 0


def test_event_log_keeps_whole_lines_when_the_disk_fills(synth: ModuleType, tiny_fs: Path) -> None:
    batches = analyse(synth, melody(synth))
    path = tiny_fs / "take.jsonl"
    with EventLog(path) as log:
        for batch in batches:
            log.write(batch)
    assert log.warning is not None and "No space left on device" in log.warning
    text = path.read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert 0 < len(lines) == log.lines
    everything = [e.to_dict() for batch in batches for e in batch]
    assert [json.loads(line) for line in lines] == everything[: len(lines)]


CHILD = textwrap.dedent(
    """
    import signal, sys
    import numpy as np
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from conftest import make_demo
    from rust_engine import Analyzer, EngineConfig
    from bridge.recorder import EventLog, TakeRecorder

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    audio = make_demo.render(make_demo.demo_notes(), 48000).astype(np.float32)
    analyzer = Analyzer(EngineConfig({{"sample_rate": 48000, "hop": 128}}))
    notes = 0
    with TakeRecorder({midi!r}) as take, EventLog({jsonl!r}) as log:
        while True:  # the melody again and again, until a signal ends the run
            for i in range(0, len(audio), 256):
                events = analyzer.process(np.ascontiguousarray(audio[i : i + 256]))
                take.add(events)
                log.write(events)
                notes += sum(e.kind == "note_on" for e in events)
                if notes == 20:
                    print("ready", flush=True)
    """
)


def run_child_until(sig: int, tmp_path: Path) -> tuple[Path, Path]:
    midi, jsonl = tmp_path / "take.mid", tmp_path / "take.jsonl"
    script = CHILD.format(
        root=str(ROOT), tests=str(ROOT / "tests"), midi=str(midi), jsonl=str(jsonl)
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    child.send_signal(sig)
    child.wait(timeout=30)
    return midi, jsonl


def test_sigterm_mid_take_leaves_valid_files(tmp_path: Path) -> None:
    midi, jsonl = run_child_until(signal.SIGTERM, tmp_path)
    notes = read_notes(midi)["in_1"]  # every note-on paired, checked while reading
    assert len(notes) >= 20
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sum(r["type"] == "note_on" for r in records) >= 20
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_sigkill_mid_take_leaves_no_partial_midi(tmp_path: Path) -> None:
    midi, jsonl = run_child_until(signal.SIGKILL, tmp_path)
    assert not midi.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    text = jsonl.read_text()
    assert text.endswith("\n")  # whole lines only
    records = [json.loads(line) for line in text.splitlines()]
    assert sum(r["type"] == "note_on" for r in records) >= 20
    assert os.path.getsize(jsonl) == len(text.encode())


# -- checkpoints that cost what is new, not the whole take (issue 12) -------------------------


class NoteEvent(NamedTuple):
    """The fields of an Event the take reads: lets a test choose any timing."""

    kind: str
    t: float
    note: int
    velocity: int = 100
    input: int = 1


@st.composite
def take_script(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Steps for two recorders: ("events", [...]), ("checkpoint", None), ("stream", take_t).

    Each input plays one note at a time, as the engine does; gaps may be zero (a
    re-strike at the same tick), notes may be retracted (a note-off at its own
    start), and a new stream may be placed before the old one ended."""
    steps: list[tuple[str, Any]] = []
    clock = {1: 0.0, 2: 0.0}
    for _ in range(draw(st.integers(1, 40))):
        action = draw(st.sampled_from(["note", "note", "note", "checkpoint", "stream"]))
        if action == "checkpoint":
            steps.append(("checkpoint", None))
        elif action == "stream":
            take_t = draw(st.floats(0.0, 3.0))
            steps.append(("stream", take_t))
            clock = {1: 0.0, 2: 0.0}
        else:
            k = draw(st.sampled_from([1, 2]))
            note = draw(st.integers(60, 63))
            start = clock[k] + draw(st.sampled_from([0.0, 0.0005, 0.01, 0.3]))
            end = start + draw(st.sampled_from([0.0, 0.0004, 0.002, 0.2, 1.5]))
            clock[k] = end
            on, off = NoteEvent("note_on", start, note, 90, k), NoteEvent("note_off", end, note, 0, k)
            if draw(st.booleans()):
                steps += [("events", [on]), ("checkpoint", None), ("events", [off])]
            else:
                steps.append(("events", [on, off]))
    return steps


@settings(max_examples=300, deadline=None)
@given(take_script())
def test_checkpoints_never_change_the_take(script: list[tuple[str, Any]]) -> None:
    """Incremental encoding is exact: a take written with checkpoints anywhere is
    byte for byte the take written once at the end, and every checkpoint on the way
    is a valid file whose every note-on has its note-off."""
    with tempfile.TemporaryDirectory() as work:
        stepped, whole = TakeRecorder(Path(work) / "a.mid", 2), TakeRecorder(Path(work) / "b.mid", 2)
        for action, arg in script:
            if action == "events":
                stepped.add(arg)
                whole.add(arg)
            elif action == "stream":
                stepped.begin_stream(arg)
                whole.begin_stream(arg)
            else:
                stepped.checkpoint()
                if (Path(work) / "a.mid").exists():
                    read_notes(Path(work) / "a.mid")
        stepped.close()
        whole.close()
        assert (Path(work) / "a.mid").read_bytes() == (Path(work) / "b.mid").read_bytes()
        read_notes(Path(work) / "b.mid")


def test_a_checkpoint_encodes_only_the_new_notes(tmp_path: Path) -> None:
    """What a checkpoint costs: the notes since the last one, not the take so far."""
    take = TakeRecorder(tmp_path / "long.mid")
    t = 0.0
    for _ in range(2000):
        take.add([NoteEvent("note_on", t, 60), NoteEvent("note_off", t + 0.1, 60)])
        t += 0.2
    take.checkpoint()
    take.add([NoteEvent("note_on", t, 62), NoteEvent("note_off", t + 0.1, 62)])
    take.add([NoteEvent("note_on", t + 0.2, 64)])
    snapshot = take.snapshot()
    assert snapshot is not None
    assert len(take._tracks[0]._tail) <= 2  # the 2000 earlier notes are encoded for good
    take.save(snapshot)
    notes = read_notes(tmp_path / "long.mid")["in_1"]
    assert len(notes) == 2002 and notes[-1][1] == 64
    take.close()


# -- links and names: a take is created where it is asked for, or not at all (issue 12) ------


def test_a_take_in_a_directory_is_never_written_through_a_link(tmp_path: Path) -> None:
    """A remote take (`dir_fd`): a dangling link, a link to a file, an existing
    file: each refused, and nothing is written anywhere."""
    takes, elsewhere = tmp_path / "takes", tmp_path / "elsewhere"
    takes.mkdir()
    elsewhere.mkdir()
    victim = elsewhere / "victim.txt"
    victim.write_text("precious")
    (takes / "dangling.mid").symlink_to(elsewhere / "created.mid")
    (takes / "to-file.mid").symlink_to(victim)
    (takes / "there.mid").write_text("old take")
    directory = os.open(takes, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ("dangling.mid", "to-file.mid", "there.mid"):
            with pytest.raises(RecordingError, match="exists already"):
                TakeRecorder(takes / name, dir_fd=directory)
        assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.txt"]
        assert victim.read_text() == "precious" and (takes / "there.mid").read_text() == "old take"
        # A new name: created at once, as an empty take that reserves the name.
        take = TakeRecorder(takes / "new.mid", dir_fd=directory)
        assert read_notes(takes / "new.mid") == {"in_1": []}
        with pytest.raises(RecordingError, match="exists already"):
            TakeRecorder(takes / "new.mid", dir_fd=directory)
    finally:
        os.close(directory)
    take.add([NoteEvent("note_on", 0.1, 60), NoteEvent("note_off", 0.5, 60)])
    take.close()
    assert [n[1] for n in read_notes(takes / "new.mid")["in_1"]] == [60]


def test_a_link_swapped_in_during_the_take_is_replaced_not_followed(tmp_path: Path) -> None:
    """Between checkpoints, the take is replaced by a link to another file, and the
    take directory itself by a link to another directory: the checkpoints and the
    final file go on into the directory opened at the start, replacing the link."""
    takes, elsewhere = tmp_path / "takes", tmp_path / "elsewhere"
    takes.mkdir()
    elsewhere.mkdir()
    victim = elsewhere / "victim.mid"
    victim.write_text("precious")
    take = TakeRecorder(takes / "take.mid")
    take.add([NoteEvent("note_on", 0.1, 60), NoteEvent("note_off", 0.5, 60)])
    take.checkpoint()
    (takes / "take.mid").unlink()
    (takes / "take.mid").symlink_to(victim)
    take.add([NoteEvent("note_on", 0.6, 62), NoteEvent("note_off", 0.9, 62)])
    take.checkpoint()
    assert victim.read_text() == "precious"
    assert not (takes / "take.mid").is_symlink()
    moved = tmp_path / "takes-moved"
    takes.rename(moved)
    takes.symlink_to(elsewhere)
    take.add([NoteEvent("note_on", 1.0, 64), NoteEvent("note_off", 1.2, 64)])
    take.close()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.mid"] and victim.read_text() == "precious"
    assert [n[1] for n in read_notes(moved / "take.mid")["in_1"]] == [60, 62, 64]
