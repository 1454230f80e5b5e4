"""`daw-bridge analyze` run as a user runs it: real WAV files in, MIDI and JSONL read back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from conftest import CLI, DEMO_DIR

# A short melody over two octaves, getting louder, with silence between the notes.
MELODY = [(57, 0.15, 0.50, -20.0), (64, 0.60, 0.95, -12.0), (72, 1.05, 1.45, -6.0)]
ONSET_TOL_S = 0.015
OFFSET_TOL_S = 0.04


@pytest.fixture(scope="module")
def melody(synth):
    """The melody's true notes and a renderer for it at any sample rate."""
    notes = [synth.Note(m, start, end, 10 ** (db / 20)) for m, start, end, db in MELODY]
    return notes, lambda rate: synth.render(notes, rate)


def write_wav(path: Path, audio: np.ndarray, rate: int, subtype: str) -> Path:
    sf.write(path, audio, rate, subtype=subtype)
    return path


def read_midi_notes(path: Path) -> list[tuple[int, float, float, int]]:
    """(note, start s, end s, velocity) of every note in a MIDI file, in start order."""
    midi = mido.MidiFile(path)
    now, open_notes, notes = 0.0, {}, []
    for msg in midi:  # iterating a MidiFile yields delta times in seconds
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            open_notes[msg.note] = (now, msg.velocity)
        elif msg.type in ("note_off", "note_on"):
            start, velocity = open_notes.pop(msg.note)
            notes.append((msg.note, start, now, velocity))
    assert not open_notes, f"notes never released: {open_notes}"
    return sorted(notes, key=lambda n: n[1])


def assert_melody(found: list[tuple[int, float, float, int]], truth) -> None:
    assert [n[0] for n in found] == [t.midi for t in truth]
    for (note, start, end, velocity), t in zip(found, truth, strict=True):
        assert abs(start - t.start) <= ONSET_TOL_S, (note, start, t.start)
        assert abs(end - t.end) <= OFFSET_TOL_S, (note, end, t.end)
        assert 1 <= velocity <= 127
    velocities = [n[3] for n in found]
    assert velocities == sorted(velocities) and velocities[0] < velocities[-1], velocities


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("subtype", "rate"),
    [
        ("PCM_16", 48000), ("PCM_24", 48000), ("PCM_32", 48000), ("FLOAT", 48000), ("PCM_16", 44100),
        # Any rate with the default settings: sample counts follow the rate (issue 12 #11).
        ("PCM_16", 8000), ("PCM_16", 22050), ("PCM_24", 96000), ("FLOAT", 192000), ("PCM_24", 384000),
    ],
)
def test_formats_give_the_melody(cli, melody, tmp_path, subtype, rate):
    truth, render = melody
    wav = write_wav(tmp_path / "in.wav", render(rate), rate, subtype)
    out = tmp_path / "out.mid"
    result = cli("analyze", wav, "--midi", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1 and "3 notes" in result.stdout
    assert_melody(read_midi_notes(out), truth)


def test_stereo_is_the_mean_of_its_channels(cli, melody, tmp_path):
    _, render = melody
    mono = render(48000)
    paths = {
        "mono": write_wav(tmp_path / "mono.wav", mono, 48000, "FLOAT"),
        "same": write_wav(tmp_path / "same.wav", np.stack([mono, mono], axis=1), 48000, "FLOAT"),
        "half": write_wav(
            tmp_path / "half.wav", np.stack([mono, np.zeros_like(mono)], axis=1), 48000, "FLOAT"
        ),
        "cancel": write_wav(tmp_path / "cancel.wav", np.stack([mono, -mono], axis=1), 48000, "FLOAT"),
    }
    for name, path in paths.items():
        result = cli("analyze", path, "--events", tmp_path / f"{name}.jsonl")
        assert result.returncode == 0, result.stderr
    events = {name: (tmp_path / f"{name}.jsonl").read_text() for name in paths}
    assert events["same"] == events["mono"]

    def notes(name: str) -> list[int]:
        return [e["note"] for e in read_jsonl(tmp_path / f"{name}.jsonl") if e["type"] == "note_on"]

    assert notes("half") == [57, 64, 72]
    assert notes("cancel") == []


def test_block_size_does_not_change_the_events(cli, melody, tmp_path):
    _, render = melody
    wav = write_wav(tmp_path / "in.wav", render(48000), 48000, "PCM_24")
    logs = []
    for block in ("64", "1000", "1", "8192"):
        out = tmp_path / f"events-{block}.jsonl"
        result = cli("analyze", wav, "--events", out, "--block", block)
        assert result.returncode == 0, result.stderr
        logs.append(out.read_bytes())
    assert logs[0] == logs[1] == logs[2] == logs[3]
    assert len(logs[0].splitlines()) > 100


def test_event_log_schema_and_midi_timing(cli, melody, tmp_path):
    _, render = melody
    wav = write_wav(tmp_path / "in.wav", render(44100), 44100, "PCM_16")
    events_path, midi_path = tmp_path / "ev.jsonl", tmp_path / "ev.mid"
    result = cli("analyze", wav, "--events", events_path, "--midi", midi_path)
    assert result.returncode == 0, result.stderr
    events = read_jsonl(events_path)
    fields = {
        "pitch": {"t", "type", "hz", "midi", "confidence", "voiced"},
        "onset": {"t", "type", "strength"},
        "dynamics": {"t", "type", "rms", "peak", "db", "velocity", "envelope_db", "marking"},
        "note_on": {"t", "type", "note", "velocity"},
        "note_off": {"t", "type", "note"},
    }
    for event in events:
        assert set(event) == fields[event["type"]], event
        assert 0 <= event["t"] <= 2.0
    for kind in fields:
        assert any(e["type"] == kind for e in events), f"no {kind} event"
    unvoiced = [e for e in events if e["type"] == "pitch" and not e["voiced"]]
    assert unvoiced and all(e["hz"] == 0 for e in unvoiced)

    # The MIDI file: type 0, 480 ticks per beat, 120 bpm, and each note event at exactly
    # the tick of its `t` (ticks = seconds * 960 at this tempo).
    midi = mido.MidiFile(midi_path)
    assert (midi.type, midi.ticks_per_beat, len(midi.tracks)) == (0, 480, 1)
    assert midi.tracks[0][0].type == "set_tempo" and midi.tracks[0][0].tempo == 500_000
    ticks, messages = 0, []
    for msg in midi.tracks[0]:
        ticks += msg.time
        if msg.type in ("note_on", "note_off"):
            assert msg.channel == 0
            messages.append((msg.type, msg.note, ticks))
    logged = [e for e in events if e["type"] in ("note_on", "note_off")]
    assert [(m[0], m[1]) for m in messages] == [(e["type"], e["note"]) for e in logged]
    for (_, _, tick), event in zip(messages, logged, strict=True):
        assert abs(tick - event["t"] * 960) <= 0.51, (tick, event)


def test_prints_the_notes_without_outputs(cli, melody, tmp_path):
    _, render = melody
    wav = write_wav(tmp_path / "in.wav", render(48000), 48000, "PCM_16")
    result = cli("analyze", wav)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if not line.startswith(("#", " time"))]
    rows = [r for r in rows if r and r[0] != "time_s"]
    assert [r[1] for r in rows] == ["A3", "E4", "C5"]
    for row, (_, start, end, _) in zip(rows, MELODY, strict=True):
        assert abs(float(row[0]) - start) <= ONSET_TOL_S
        assert abs(float(row[2]) - (end - start)) <= OFFSET_TOL_S + ONSET_TOL_S
    assert list(tmp_path.iterdir()) == [wav]


def test_config_file_sets_the_engine(cli, melody, tmp_path):
    _, render = melody
    wav = write_wav(tmp_path / "in.wav", render(48000), 48000, "PCM_16")
    config = tmp_path / "bridge.toml"
    config.write_text("[engine]\nhop = 256\n\n[engine.pitch]\nfmin_hz = 50.0\n")
    out = tmp_path / "ev.jsonl"
    result = cli("analyze", wav, "--events", out, "--config", config)
    assert result.returncode == 0, result.stderr
    # One dynamics event per hop: the config's hop, at the file's rate.
    times = [e["t"] for e in read_jsonl(out) if e["type"] == "dynamics"]
    assert np.allclose(np.diff(times), 256 / 48000, atol=2e-6)
    frames = len(render(48000))
    assert len(times) in (frames // 256, -(-frames // 256))  # the flushed tail may count


# --- every error path: exit 2, one line on stderr, no traceback, no file left behind ---


def assert_clean_failure(result, out_dir: Path, keep: set[str]) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("daw-bridge: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert {p.name for p in out_dir.iterdir()} == keep


def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is a text file, not audio\n" * 20)
    no_frames = tmp_path / "noframes.wav"
    sf.write(no_frames, np.zeros(0), 48000, subtype="PCM_16")
    directory = tmp_path / "folder.wav"
    directory.mkdir()
    truncated = tmp_path / "header.wav"
    truncated.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    return {
        "missing": tmp_path / "missing.wav",
        "empty": empty,
        "text": text,
        "zero-length": no_frames,
        "directory": directory,
        "truncated header": truncated,
    }


@pytest.mark.parametrize(
    "case", ["missing", "empty", "text", "zero-length", "directory", "truncated header"]
)
def test_bad_input(cli, tmp_path, case):
    inputs = bad_inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    result = cli("analyze", inputs[case], "--midi", out / "x.mid", "--events", out / "x.jsonl")
    assert_clean_failure(result, out, set())


def test_unwritable_outputs(cli, melody, tmp_path):
    _, render = melody
    wav = write_wav(tmp_path / "in.wav", render(48000), 48000, "PCM_16")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_dir.mid").mkdir()
    (out / "a_file").write_text("x")
    os.mkfifo(out / "a_fifo")
    targets = [
        out / "a_fifo",  # not a regular file: never renamed over
        out / "no" / "such" / "dir.mid",  # parent missing
        out / "a_file" / "x.mid",  # parent is a file
        out / "a_dir.mid",  # target is a directory
    ]
    if Path("/proc/self").is_dir():
        targets.append(Path("/proc/daw-bridge-test.mid"))  # not writable even for root
    for target in targets:
        # The event log is opened first: its temporary file must be removed too.
        result = cli("analyze", wav, "--events", out / "ok.jsonl", "--midi", target)
        assert_clean_failure(result, out, {"a_dir.mid", "a_file", "a_fifo"})
        assert str(target) in result.stderr
    result = cli("analyze", wav, "--midi", wav)
    assert_clean_failure(result, tmp_path, {"in.wav", "out"})


def test_output_through_a_symlink_keeps_the_link(cli, melody, tmp_path):
    _, render = melody
    wav = write_wav(tmp_path / "in.wav", render(48000), 48000, "PCM_16")
    real = tmp_path / "real.mid"
    real.write_text("old")
    link = tmp_path / "link.mid"
    link.symlink_to(real)
    result = cli("analyze", wav, "--midi", link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink()
    assert [n[0] for n in read_midi_notes(real)] == [57, 64, 72]


@pytest.mark.parametrize("block", ["0", "-5", "abc", "1.5", str(2**21), ""])
def test_bad_block(cli, melody, tmp_path, block):
    _, render = melody
    wav = write_wav(tmp_path / "in.wav", render(48000), 48000, "PCM_16")
    result = cli("analyze", wav, "--block", block, "--events", tmp_path / "x.jsonl")
    assert_clean_failure(result, tmp_path, {"in.wav"})
    assert "--block" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read config"),
        ("[engine\nhop = ", "not valid TOML"),
        ("[engine]\nhop = 8\n", "hop"),
        ("[engine.pitch]\nfoo = 1\n", "foo"),
        ("engine = 3\n", "table"),
    ],
)
def test_bad_config(cli, melody, tmp_path, content, message):
    _, render = melody
    wav = write_wav(tmp_path / "in.wav", render(48000), 48000, "PCM_16")
    config = tmp_path / "bad.toml"
    if content is not None:
        config.write_text(content)
    result = cli("analyze", wav, "--config", config, "--midi", tmp_path / "x.mid")
    keep = {"in.wav"} | ({"bad.toml"} if content is not None else set())
    assert_clean_failure(result, tmp_path, keep)
    assert message in result.stderr


@pytest.mark.parametrize(
    "args", [[], ["analyze"], ["analyse", "x.wav"], ["analyze", "x.wav", "--bogus"]]
)
def test_usage_errors(cli, tmp_path, args):
    result = cli(*args, cwd=tmp_path)
    assert_clean_failure(result, tmp_path, set())


# -- daw-bridge run: flags checked before anything starts (issue 12 #9, #10) -----------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--osc", "nosuchhost.invalid:9000"], "OSC target nosuchhost.invalid:9000: cannot resolve host"),
        (["--osc", "127.0.0.1:9000", "--osc", "127.0.0.1:9000"], "OSC target 127.0.0.1:9000 given twice"),
        (["--osc", "127.0.0.1:9000", "--osc", "localhost:9000"], "is the same address as 127.0.0.1:9000"),
        (["--name", "x" * 50], "at most 49 fit JACK's limit"),
        (["--name", ""], "--name: the JACK client name is empty"),
        (["--name", "a:b"], "contains ':'"),
        (["--name", "a\nb"], "contains a newline"),
        (["--duration", "0"], "--duration: must be a positive, finite number"),
        (["--duration", "-3"], "--duration: must be a positive, finite number"),
        (["--duration", "nan"], "--duration: must be a positive, finite number"),
        (["--duration", "inf"], "--duration: must be a positive, finite number"),
        (["--control-port", "70000"], "--control-port: the control port must be from 0"),
        (["--demo", "{tmp}/missing.wav"], "--demo: '{tmp}/missing.wav' does not exist"),
        (["--demo", "{tmp}/not-audio.wav"], "--demo: cannot read '{tmp}/not-audio.wav' as audio"),
        (["--demo", "{tmp}"], "is not a regular file"),
        (["--record-midi", "{tmp}/no/such/dir/take.mid"], "directory '{tmp}/no/such/dir' does not exist"),
    ],
)
def test_run_refuses_bad_flags_in_one_line(cli, tmp_path, monkeypatch, args, message):
    """No server is running under this name: each error must come before JACK is even asked
    (a bad take directory is reported as such, not as 'no JACK server')."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "dawbridge-nobody-here")
    (tmp_path / "not-audio.wav").write_text("RIFF but not really\n")
    result = cli("run", *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [f"daw-bridge: error: {result.stderr.split('error: ', 1)[1].strip()}"]
    assert message.replace("{tmp}", str(tmp_path)) in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "not-audio.wav"]


def test_version(cli):
    from importlib.metadata import version

    result = cli("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"daw-bridge {version('daw-bridge')}")


def _start_run(server, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "run", *args], env=server.env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_longest_name_runs_twice_with_its_helpers_and_reports_its_control_port(jack_server):
    """49 bytes is the longest name accepted: two bridges under it (the second renamed
    NAME-01 by jackd) both open their graph and demo clients; --control-port 0 reports the
    port it got, and the snapshot a TUI reads carries it."""
    from tui.remote import RemoteSource

    name = "n" * 49
    procs = [_start_run(jack_server, "--name", name, "--demo", str(DEMO_DIR / "demo.wav"),
                        "--duration", "4", "--control-port", "0") for _ in range(2)]
    ports = []
    for proc in procs:
        line = proc.stderr.readline()
        match = re.match(r"daw-bridge: control port 127\.0\.0\.1:(\d+) ", line)
        assert match, line + proc.stderr.read()
        ports.append(int(match.group(1)))
        source = RemoteSource("127.0.0.1", ports[-1])
        try:
            deadline = time.monotonic() + 20
            while not (snap := source.snapshot()).connected and time.monotonic() < deadline:
                time.sleep(0.1)
            assert snap.control_port == ports[-1] != 0
        finally:
            source.close()
    for proc in procs:
        proc.wait(timeout=60)  # the output is a few kB, far less than a pipe holds
    # Read through the text streams: communicate() would skip what readline() buffered.
    outs = [(proc.stdout.read(), proc.stderr.read()) for proc in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "error" not in err, err
        assert " on  E4" in out, (out, err)  # the demo's first note: the demo client played
    assert len(set(ports)) == 2
    running = sorted(re.search(r"running as '([^']*)'", err).group(1) for _, err in outs)
    assert running[0] == name and re.fullmatch(rf"{name}-\d\d", running[1]), running


def test_a_384_khz_server_runs_with_the_defaults(jack_server_factory, tmp_path):
    """Sample counts follow the server's rate: the bridge opens at 384 kHz with no config
    and finds the demo's notes (the player resamples it to the server's rate)."""
    server = jack_server_factory(rate=384_000, period=2048, tag="r384k")
    try:
        proc = _start_run(server, "--demo", str(DEMO_DIR / "demo.wav"), "--duration", "4")
        out, err = proc.communicate(timeout=60)
    finally:
        server.stop()
    assert proc.returncode == 0, err
    assert "at 384000 Hz" in err and "Traceback" not in err, err
    names = [line.split()[3] for line in out.splitlines() if " on  " in line]
    truth = [n["name"] for n in json.loads((DEMO_DIR / "demo_notes.json").read_text())["notes"]]
    assert len(names) >= 4 and names == truth[: len(names)], (names, err)


# -- per-user settings (issue 12 #14) ---------------------------------------------------------


def _bridge_with_control_port(server, *args: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    """Starts `run --control-port 0`; returns it, its port and the stderr lines before that."""
    proc = _start_run(server, "--control-port", "0", "--duration", "60", *args)
    lines = []
    while line := proc.stderr.readline():
        if match := re.match(r"daw-bridge: control port 127\.0\.0\.1:(\d+) ", line):
            return proc, int(match.group(1)), lines
        lines.append(line)
    proc.wait()
    pytest.fail("".join(lines))


def _params_when_running(port: int) -> dict[str, float]:
    from tui.remote import RemoteSource

    source = RemoteSource("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 20
        while not (snap := source.snapshot()).connected and time.monotonic() < deadline:
            time.sleep(0.1)
        return snap.params
    finally:
        source.close()


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read()


def test_settings_saved_with_w_are_loaded_at_the_next_start(jack_server, tmp_path, monkeypatch):
    """`w` in the TUI saves to $XDG_CONFIG_HOME/daw-bridge/config.toml and says so; the next
    `run` reads that file and says so; --config still overrides it."""
    import asyncio

    from textual.widgets._toast import Toast

    from bridge import config
    from tui.app import BridgeApp
    from tui.remote import RemoteSource

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user_file = tmp_path / "xdg" / "daw-bridge" / "config.toml"
    assert config.user_config_path() == user_file
    assert cli_out("config", "--path") == f"{user_file}\n"

    proc, port, before = _bridge_with_control_port(jack_server)
    assert not any("settings from" in line for line in before)
    defaults = _params_when_running(port)

    async def tune_and_save() -> list[str]:
        source = RemoteSource("127.0.0.1", port)
        app = BridgeApp(source)
        try:
            async with app.run_test(size=(100, 30), notifications=True) as pilot:
                for _ in range(200):  # the first snapshot: keys before it only warn
                    if app.last is not None:
                        break
                    await pilot.pause(0.05)
                await pilot.press("O", "G", "G", "c", "w")
                for _ in range(100):
                    toasts = [t.render().plain for t in app.screen.query(Toast)]
                    if any("saved to" in t for t in toasts):
                        break
                    await pilot.pause(0.05)
                return toasts
        finally:
            source.close()

    toasts = asyncio.run(tune_and_save())
    tuned = _params_when_running(port)
    _stop(proc)
    assert any(f"saved to {user_file}" in t for t in toasts), toasts
    assert tuned["notes.silence_db"] == defaults["notes.silence_db"] + 6
    assert (user_file.parent.stat().st_mode & 0o777) == 0o700

    proc, port, before = _bridge_with_control_port(jack_server)
    assert f"daw-bridge: settings from {user_file}\n" in before
    assert _params_when_running(port) == tuned != defaults
    _stop(proc)

    other = tmp_path / "other.toml"
    other.write_text("[engine.onset]\ndelta = 0.25\n")
    proc, port, before = _bridge_with_control_port(jack_server, "--config", str(other))
    assert f"daw-bridge: settings from {other}\n" in before
    assert _params_when_running(port) == {**defaults, "onset.delta": 0.25}
    _stop(proc)


def cli_out(*args: str) -> str:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout
