"""The live bridge end to end on a real dummy jackd: `daw-bridge run` in its
own process, a JACK player client in the test playing a melody into it and
recording its MIDI output, a real OSC receiver, and the take files read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import mido
import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message import OscMessage

from bridge import voices
from bridge.player import Player, note_messages
from bridge.signals import SR, harmonic, melody_audio
from bridge.tuning import scale_name
from conftest import CLI
from live_bridge import free_port
from midi_capture import assert_recovered_after_loss
from udp_capture import UdpCapture

MELODY = [60, 64, 67, 72, 67]


def start_bridge(server, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*CLI, "run", *args],
        env=server.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"bridge exited early: {proc.stderr.read()}")
        if _port_exists(server, "daw-bridge:midi_out"):
            return proc
        time.sleep(0.1)
    proc.kill()
    pytest.fail("bridge did not register its ports")


def _port_exists(server, name: str) -> bool:
    import jack

    os.environ["JACK_DEFAULT_SERVER"] = server.name
    client = jack.Client("probe-ports", no_start_server=True)
    try:
        return any(p.name == name for p in client.get_ports())
    finally:
        client.close()


def stop_bridge(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out, err


def play_through(proc: subprocess.Popen[str], name: str, audio: np.ndarray,
                 midi_from: str = "daw-bridge:midi_out") -> tuple[Player, str]:
    """Plays `audio` into the bridge `proc` from a player `name` that records `midi_from`,
    then stops the bridge and closes the player; returns the player (its MIDI kept) and
    the bridge's stderr."""
    player = Player(name, audio)
    try:
        player.start(["daw-bridge:in_1"], midi_from=midi_from)
        assert player.wait_finished(15)
        time.sleep(0.3)
    finally:
        _, err = stop_bridge(proc)
        player.close()
    return player, err


def test_melody_in_gives_midi_osc_and_take_files(jack_server, tmp_path, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    osc = UdpCapture()
    take, log = tmp_path / "take.mid", tmp_path / "take.jsonl"
    proc = start_bridge(
        jack_server, "--osc", f"127.0.0.1:{osc.port}", "--record-midi", str(take), "--events", str(log)
    )
    audio, starts = melody_audio(MELODY)
    player = Player("test-player", audio)
    try:
        player.start(["daw-bridge:in_1"], midi_from="daw-bridge:midi_out")
        assert player.wait_finished(15)
        time.sleep(0.3)
        # A period the server ran without the player delays the rest of the melody by as much.
        late_s = player.trouble_since_play()[1] * jack_server.period / SR
    finally:
        out, err = stop_bridge(proc)
        player.close()
    osc.close()
    bundles = osc.bundles()

    # JACK MIDI: the melody's notes, each note-on closed by its note-off.
    notes = note_messages(player.midi)
    ons = [n for n in notes if n[0] == "on"]
    assert [n[3] for n in ons] == MELODY, err
    assert all(n[2] == 0 for n in notes)
    assert len([n for n in notes if n[0] == "off"]) == len(ons)
    for (_, frame, _, _), start in zip(ons, starts):
        latency_ms = (frame - (player.start_frame + start)) / SR * 1000
        assert 0 < latency_ms < 60 + late_s * 1000, latency_ms

    # OSC: well-formed bundles, timetags in order, notes on and off for every note.
    assert bundles
    messages = [m for b in bundles for m in b if isinstance(m, OscMessage)]
    addresses = {m.address for m in messages}
    assert {"/bridge/pitch", "/bridge/onset", "/bridge/dynamics", "/bridge/note"} <= addresses
    osc_notes = [m.params for m in messages if m.address == "/bridge/note"]
    assert [n for n, v in osc_notes if v > 0] == MELODY
    assert sorted(n for n, v in osc_notes if v == 0) == sorted(MELODY)
    pitch = [m.params for m in messages if m.address == "/bridge/pitch"]
    assert all(len(p) == 3 for p in pitch)
    tags = [b.timestamp for b in bundles]
    assert tags == sorted(tags)

    # The take: notes at their onsets (latency-compensated), read back with mido.
    mid = mido.MidiFile(take)
    t, on_times, pitches = 0.0, [], []
    for msg in mido.merge_tracks(mid.tracks):
        t += mido.tick2second(msg.time, mid.ticks_per_beat, 500_000)
        if msg.type == "note_on" and msg.velocity > 0:
            on_times.append(t)
            pitches.append(msg.note)
    assert pitches == MELODY
    first = on_times[0]
    for t_on, start in zip(on_times, starts):
        # Relative to the first note: the take places notes at their onsets.
        assert abs((t_on - first) - (start - starts[0]) / SR) < 0.010 + late_s
    lines = log.read_text().splitlines()
    assert lines and all(line.startswith('{"t"') for line in lines)
    assert "on  C4" in out and "off G4" in out


def test_sigterm_mid_note_closes_it_everywhere(jack_server, tmp_path, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    take = tmp_path / "cut.mid"
    proc = start_bridge(jack_server, "--record-midi", str(take))
    player = Player("test-player-2", harmonic(69, 5.0))
    try:
        player.start(["daw-bridge:in_1"], midi_from="daw-bridge:midi_out")
        time.sleep(1.0)  # the A4 is sounding
        stop_bridge(proc)
        time.sleep(0.1)
    finally:
        player.close()
    # One A4, closed by the SIGTERM, on the port and in the take.
    assert player.notes() == [("on", 69), ("off", 69)], player.notes()
    msgs = [m for m in mido.merge_tracks(mido.MidiFile(take).tracks) if m.type.startswith("note")]
    kinds = [("on" if m.type == "note_on" and m.velocity else "off", m.note) for m in msgs]
    assert kinds == [("on", 69), ("off", 69)], msgs


def test_bad_config_is_one_line_and_exit_2(tmp_path, cli):
    bad = tmp_path / "bad.toml"
    bad.write_text("[bridge]\ninputs = 65\n")
    result = cli("run", "--config", bad)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"daw-bridge: error: config '{bad}': bridge.inputs: must be a whole number from 1 to 64"
    ]
    for args, needle in [
        (["--connect", "("], "--connect: is not a valid regular expression"),
        (["--osc", "nohost"], "--osc: OSC target 'nohost': expected HOST:PORT"),
        (["--osc-rate", "0"], "--osc-rate: must be a number from 1 to 1000"),
        (["--inputs", "0"], "--inputs: must be a whole number from 1 to 64"),
    ]:
        result = cli("run", *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert needle in result.stderr
    bad.write_text("[engine.pitch]\nfmin_hz = 5\n")
    result = cli("config", "--check", bad)
    assert result.returncode == 2 and "engine.pitch.fmin_hz" in result.stderr


def test_no_server_is_a_clear_error(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "dawbridge-nobody-here")
    result = cli("run", "--duration", "1")
    assert result.returncode == 2
    assert "no JACK server 'dawbridge-nobody-here' is running" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_server_killed_and_restarted_recovers_without_stuck_notes(fresh_jack_server, tmp_path, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", fresh_jack_server.name)
    take = tmp_path / "lost.mid"
    proc = start_bridge(fresh_jack_server, "--record-midi", str(take))
    # The player whose server dies runs in a process of its own: closing a libjack
    # client after its server was killed can deadlock inside libjack.
    wav = tmp_path / "e4.wav"
    sf.write(wav, harmonic(64, 10.0), SR, subtype="FLOAT")
    player = subprocess.Popen(
        [sys.executable, "-m", "bridge.player", str(wav), "--name", "test-player-3", "--to", "daw-bridge:in_1"],
        env=fresh_jack_server.env,
        stdin=subprocess.DEVNULL,
    )
    time.sleep(1.5)  # E4 sounding
    fresh_jack_server.kill()
    player.kill()
    player.wait()
    fresh_jack_server.start()
    # The bridge comes back by itself, owing a note-off for the E4.
    deadline = time.monotonic() + 10
    while not _port_exists(fresh_jack_server, "daw-bridge:midi_out"):
        assert time.monotonic() < deadline, "bridge did not re-register"
        time.sleep(0.1)
    catcher = Player("test-catcher", harmonic(67, 1.0))
    catcher.start(["daw-bridge:in_1"], midi_from="daw-bridge:midi_out", play=False)
    time.sleep(0.05)
    catcher.play()
    assert catcher.wait_finished(10)
    time.sleep(0.3)
    stop_bridge(proc)
    catcher.close()
    notes = catcher.notes()
    assert_recovered_after_loss(notes, take, lost=64, new=67)  # the E4 sounding at the loss, then a G4


def test_rtmidi_virtual_port_carries_the_notes(jack_server, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    proc = start_bridge(jack_server, "--midi-port", "virtual")
    audio, _ = melody_audio([62, 69])
    player, _ = play_through(proc, "test-player-rtmidi", audio, "daw-bridge-rtmidi:midi_out")
    notes = player.notes()
    assert notes == [("on", 62), ("off", 62), ("on", 69), ("off", 69)]


def test_bend_reaches_the_rtmidi_port_as_it_reaches_midi_out(jack_server, monkeypatch):
    """`--bend` with `--midi-port`: the rtmidi port carries the same notes and
    pitch bends as the JACK port, byte for byte, in the same order."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    proc = start_bridge(jack_server, "--midi-port", "virtual", "--bend", "2")
    gap = np.zeros(int(0.2 * SR), np.float32)
    audio = np.concatenate([gap, harmonic(62.3, 0.5), gap, harmonic(68.75, 0.5), gap])  # sharp D4, flat A4
    player = Player("test-player-bend", audio)
    catcher = Player("test-catcher-bend", np.zeros(1, np.float32))
    try:
        catcher.start(midi_from="daw-bridge:midi_out", play=False)
        player.start(["daw-bridge:in_1"], midi_from="daw-bridge-rtmidi:midi_out")
        assert player.wait_finished(15)
        time.sleep(0.3)
    finally:
        stop_bridge(proc)
        player.close()
        catcher.close()
    via_rtmidi = [m for _, m in player.midi]
    via_jack = [m for _, m in catcher.midi]
    assert via_rtmidi == via_jack
    bends = [(m[2] << 7 | m[1]) - 8192 for m in via_rtmidi if m[0] == 0xE0]
    notes = [(n[0], n[3]) for n in note_messages(player.midi)]
    assert notes == [("on", 62), ("off", 62), ("on", 69), ("off", 69)]
    # +30 cents is +1229 at a 2-semitone range, -25 cents is -1024; the note-on of A4 re-centres first.
    assert any(1100 < b < 1350 for b in bends) and 0 in bends and any(-1150 < b < -900 for b in bends), bends


def test_run_reads_notes_against_tuning_and_scale_and_the_take_keeps_the_bends(jack_server, tmp_path, monkeypatch):
    """`run --tuning 432 --scale C:major --bend 2 --record-midi`: an A4 sung at
    432 Hz is A4, a D#4 45 cents sharp of 432 Hz tuning snaps to E4; midi_out
    bends each to the pitch heard (against 440 Hz), and the take holds the
    same notes and the same bends, back to the centre as each bent note ends."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    take = tmp_path / "take.mid"
    proc = start_bridge(jack_server, "--tuning", "432", "--scale", "C:major", "--bend", "2", "--record-midi", str(take))
    flat = 12 * np.log2(432 / 440)  # -0.318 semitones
    gap = np.zeros(int(0.2 * SR), np.float32)
    # D#4 + 45 cents (of 432 Hz) lies between D4 and E4, well clear of the half-way boundary.
    audio = np.concatenate([gap, harmonic(69 + flat, 0.5), gap, harmonic(63.45 + flat, 0.5), gap])
    player, err = play_through(proc, "test-player-tuning", audio)
    got = [(n[0], n[3]) for n in note_messages(player.midi)]
    assert got == [("on", 69), ("off", 69), ("on", 64), ("off", 64)], (got, err)
    jack_bends = [(m[2] << 7 | m[1]) - 8192 for _, m in player.midi if m[0] == 0xE0]
    # A4 at 432 Hz: -0.318 semitones, -1303 at a 2-semitone range; E4 from D#4 + 45 cents
    # at 432 Hz: -0.868 semitones, -3556; re-centred before the E4 starts.
    assert any(-1450 < b < -1150 for b in jack_bends) and any(-3750 < b < -3350 for b in jack_bends), jack_bends
    midi = mido.MidiFile(take)
    track = midi.tracks[1]
    assert [m.note for m in track if m.type == "note_on" and m.velocity] == [69, 64]
    take_bends = [m.pitch for m in track if m.type == "pitchwheel"]
    assert take_bends == [*jack_bends, 0][: len(take_bends)] and take_bends[-1] == 0, (take_bends, jack_bends)
    assert [(m.control, m.value) for m in track if m.type == "control_change"][:4] == [(101, 0), (100, 0), (6, 2), (38, 0)]


def test_run_tuning_and_scale_auto_settle_on_the_singers_while_it_sings(jack_server, monkeypatch):
    """`run --tuning auto --scale auto`: a singer at A4 = 450 Hz in A minor (vibrato,
    scoops); the bridge's own settings, read over OSCQuery, become the singer's A4
    and key (or its relative major, the same notes) while the song plays."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    port = free_port()
    proc = start_bridge(jack_server, "--tuning", "auto", "--scale", "auto", "--oscquery", str(port))
    clip = voices.clip("auto", "sung", ("vibrato", "scoop"), seed=7, root=57, mode="minor", low=52, high=72,
                       bpm=96, n_notes=20, a4_hz=450.0)
    player = Player("test-player-auto", clip.signal)

    def value(key: str) -> float:
        url = f"http://127.0.0.1:{port}/bridge/control/{key.replace('.', '/')}?VALUE"
        with urllib.request.urlopen(url, timeout=5) as r:
            return float(json.load(r)["VALUE"][0])

    try:
        assert value("notes.tuning_hz") == 440.0 and value("notes.scale_mode") == 0
        player.start(["daw-bridge:in_1"])
        assert player.wait_finished(40)
        tuning = value("notes.tuning_hz")
        key = scale_name((int(value("notes.scale_root")), int(value("notes.scale_mode"))))
    finally:
        _, err = stop_bridge(proc)
        player.close()
    assert tuning == pytest.approx(450.0, abs=1.5), err
    assert key in ("A:minor", "C:major"), err


def test_osc_goes_quiet_in_silence_and_can_stamp_bundles_immediately(jack_server, monkeypatch):
    """Through `run`: `--osc-timetag immediate` stamps every bundle "immediately", and
    after the melody the pitch and dynamics streams send one silent value each, then nothing."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    osc = UdpCapture()
    proc = start_bridge(jack_server, "--osc", f"127.0.0.1:{osc.port}", "--osc-timetag", "immediate")
    audio, _ = melody_audio(MELODY[:2])
    player = Player("test-player-quiet", audio)
    try:
        player.start(["daw-bridge:in_1"])
        assert player.wait_finished(15)
        time.sleep(1.0)  # the player keeps feeding zeros: 375 silent hops
    finally:
        stop_bridge(proc)
        player.close()
        osc.close()
    assert {d[8:16] for d in osc.datagrams} == {(1).to_bytes(8, "big")}
    messages = [(m.address, tuple(m.params)) for m in osc.messages()]
    assert [args[0] for a, args in messages if a == "/bridge/note" and args[1] > 0] == MELODY[:2]
    pitch = [args for a, args in messages if a == "/bridge/pitch"]
    dynamics = [args for a, args in messages if a == "/bridge/dynamics"]
    assert pitch[-1][0] == 0.0 and pitch[-2][0] > 0  # one unvoiced value ends the stream
    assert dynamics[-1][2] < -50 <= dynamics[-2][2]
