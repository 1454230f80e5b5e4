"""Takes of a live bridge (issue 12): where they are written, under which names,
and on which thread. A real `daw-bridge run` on a real dummy jackd, asked over a
real control connection, with real files and links."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from bridge.signals import melody_audio
from live_bridge import (
    MELODY,
    assert_balanced,
    control_connection,
    free_port,
    ons,
    play_and_capture,
    take_notes,
    wait_until,
)


def _ask(f: Any, request: dict[str, Any]) -> dict[str, Any]:
    f.write(json.dumps(request).encode() + b"\n")
    f.flush()
    reply = f.readline()
    assert reply, f"no reply to {request}"
    return json.loads(reply)


def _quick_checkpoints(tmp_path: Path) -> Path:
    config = tmp_path / "quick.toml"
    config.write_text("[bridge]\ncheckpoint_s = 1.0\n")
    return config


def test_a_remote_take_is_never_written_through_a_link(jack_server, bridges, players, tmp_path, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    takes, elsewhere = tmp_path / "takes", tmp_path / "elsewhere"
    takes.mkdir()
    elsewhere.mkdir()
    victim = elsewhere / "victim.mid"
    victim.write_text("precious")
    (takes / "dangling.mid").symlink_to(elsewhere / "created.mid")
    (takes / "linked.mid").symlink_to(victim)
    monkeypatch.chdir(takes)  # the bridge's take directory is its working directory
    control = free_port()
    bridge = bridges(jack_server, "tk-link", "--control-port", str(control), "--config", str(_quick_checkpoints(tmp_path)))
    with control_connection(control) as sock:
        f = sock.makefile("rwb")
        for name in ("dangling.mid", "linked.mid"):
            reply = _ask(f, {"op": "start_recording", "name": name})
            assert reply["ok"] is False and "exists already" in reply["error"], reply
        assert _ask(f, {"op": "start_recording", "name": "good.mid"})["ok"]
        assert (takes / "good.mid").is_file()  # created at once, reserving the name
        seq = play_and_capture(players, "tk-link-daw", "tk-link", melody_audio(MELODY)[0])
        wait_until(lambda: ons(take_notes(takes / "good.mid")) == MELODY, 10, "a checkpoint with the melody")
        # The take is swapped for a link to another file while it records.
        (takes / "good.mid").unlink()
        (takes / "good.mid").symlink_to(victim)
        play_and_capture(players, "tk-link-daw2", "tk-link", melody_audio(MELODY)[0])
        assert _ask(f, {"op": "stop_recording"})["ok"]
        wait_until(lambda: not (takes / "good.mid").is_symlink(), 10, "the take to replace the link")
    bridge.stop()
    assert ons(seq) == MELODY
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.mid"]
    recorded = take_notes(takes / "good.mid")
    assert ons(recorded) == MELODY * 2
    assert_balanced(recorded)


def test_a_remote_take_never_takes_a_name_in_use(jack_server, bridges, players, tmp_path, monkeypatch):
    """The bridge's own --record-midi take, before its first checkpoint (no file yet),
    and a take this run made already: both names are refused."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "take.mid"
    control = free_port()
    bridge = bridges(jack_server, "tk-name", "--control-port", str(control), "--record-midi", "take.mid")
    with control_connection(control) as sock:
        f = sock.makefile("rwb")
        assert not own.exists()  # the first checkpoint is 10 s away
        reply = _ask(f, {"op": "start_recording", "name": "take.mid"})
        assert reply["ok"] is False and "in use" in reply["error"], reply
        assert _ask(f, {"op": "snapshot"})["result"]["recording"] == "take.mid"
        seq = play_and_capture(players, "tk-name-daw", "tk-name", melody_audio(MELODY)[0])
        assert _ask(f, {"op": "start_recording", "name": "second.mid"})["ok"]
        wait_until(lambda: own.exists(), 10, "the bridge's own take, ended by the second")
        assert _ask(f, {"op": "start_recording", "name": "third.mid"})["ok"]
        reply = _ask(f, {"op": "start_recording", "name": "second.mid"})
        assert reply["ok"] is False, reply
    bridge.stop()
    assert ons(seq) == MELODY
    assert ons(take_notes(own)) == MELODY  # not replaced by a remote take


def test_the_same_file_for_take_and_event_log_is_refused(jack_server, tmp_path, cli, monkeypatch):
    """As `analyze` does: one line, exit 2, and the file as it was (the event log used
    to truncate it first). Also when one name is a link to the other."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    both = tmp_path / "both.out"
    both.write_text("keep me")
    link = tmp_path / "link.out"
    link.symlink_to(both)
    for take, log in ((both, both), (link, both), (both, tmp_path / "sub" / ".." / "both.out")):
        (tmp_path / "sub").mkdir(exist_ok=True)
        result = cli("run", "--name", "tk-same", "--record-midi", take, "--events", log, "--duration", "5")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1 and lines[0].startswith("daw-bridge: error: "), result.stderr
        assert "--record-midi and --events name the same file" in lines[0], lines[0]
        assert both.read_text() == "keep me"


def test_checkpoints_are_written_off_the_dispatch_thread(jack_server, players, tmp_path, monkeypatch):
    """Which thread writes: every write of the take (checkpoints, and the last one of a
    take ended while running) happens outside the dispatch thread, which keeps
    feeding OSC, the event log and the UI meanwhile."""
    import rust_engine

    from bridge.live import LiveOptions, LiveRunner
    from bridge.recorder import TakeRecorder

    writers: list[str] = []
    save = TakeRecorder.save

    def watched(self: TakeRecorder, snapshot: Any) -> None:
        writers.append(threading.current_thread().name)
        save(self, snapshot)

    monkeypatch.setattr(TakeRecorder, "save", watched)
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    take = tmp_path / "threads.mid"
    runner = LiveRunner(
        LiveOptions(client_name="tk-thread", record_midi=take, checkpoint_s=0.2), rust_engine.EngineConfig({})
    )
    runner.start()
    try:
        seq = play_and_capture(players, "tk-thread-daw", "tk-thread", melody_audio(MELODY)[0])
        wait_until(lambda: take.exists() and ons(take_notes(take)) == MELODY, 10, "a checkpoint with the melody")
        runner.stop_recording()
        wait_until(lambda: runner.snapshot().recording is None and len(writers) >= 2, 10, "the take ended")
    finally:
        runner.stop()
    assert ons(seq) == MELODY
    assert writers and all(name.startswith("daw-bridge-takes") for name in writers), writers
    assert ons(take_notes(take)) == MELODY
