"""The --midi-port output (python-rtmidi on JACK) follows the MIDI switch, on a real bridge.

A LiveRunner on a dummy jackd opens its rtmidi client `<name>-rtmidi` with a
virtual port `midi_out`; a JACK player sings into `in_1` and records what that
port sends. Muting mid-note must close the sounding note there, as it does on
the JACK `midi_out` port, and send nothing more until unmuted.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import rust_engine

from bridge.addresses import RTMIDI_CLIENT_SUFFIX, input_port
from bridge.live import LiveOptions, LiveRunner
from bridge.player import Player

RATE = 48000


def unique(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def runner(jack_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveRunner]:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    live = LiveRunner(LiveOptions(client_name=unique("rtmidi-bridge"), midi_port="virtual"), rust_engine.EngineConfig({}))
    live.start()
    yield live
    live.stop()


def tone(synth: ModuleType, midi: int, seconds: float) -> np.ndarray:
    audio: np.ndarray = synth.render([synth.Note(midi, 0.05, 0.05 + seconds, 0.3)], RATE, tail_s=0.3)
    return audio.astype(np.float32)


def notes(player: Player) -> list[tuple[str, int]]:
    """("on" | "off", note) of every note message the player received, in order."""
    found = []
    for _, data in list(player.midi):
        status = data[0] & 0xF0
        if status == 0x90 and data[2] > 0:
            found.append(("on", data[1]))
        elif status == 0x80 or (status == 0x90 and data[2] == 0):
            found.append(("off", data[1]))
    return found


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_muting_midi_closes_the_rtmidi_note_and_sends_nothing_more(runner: LiveRunner, synth: ModuleType) -> None:
    client = runner.snapshot().client
    bridge_in = f"{client}:{input_port(1)}"
    rtmidi_port = f"{client}{RTMIDI_CLIENT_SUFFIX}:midi_out"
    singer = Player(unique("rtmidi-singer"), tone(synth, 69, 4.0))
    late = Player(unique("rtmidi-late"), tone(synth, 72, 1.0))
    again = Player(unique("rtmidi-again"), tone(synth, 76, 1.0))
    try:
        singer.start(connect_to=[bridge_in], midi_from=rtmidi_port)
        wait_for(lambda: ("on", 69) in notes(singer), "the note-on of A4 on the rtmidi port")
        assert runner.snapshot().midi_enabled is True

        # Mute while A4 still sounds (it lasts 4 s): its note-off comes at once.
        runner.set_midi_enabled(False)
        wait_for(lambda: ("off", 69) in notes(singer), "the note-off of A4 after muting")
        assert notes(singer) == [("on", 69), ("off", 69)]
        # ... sent while A4 still sounded in the audio, so by the switch, not by the note's end.
        off_frame = next(frame for frame, data in list(singer.midi) if data[0] & 0xF0 == 0x80)
        assert singer.start_frame is not None and off_frame < singer.start_frame + int(4.05 * RATE)
        assert singer.wait_finished(10), "the first note did not finish playing"

        # A second note while muted: the bridge hears it, the rtmidi port stays quiet.
        onsets = runner.snapshot().inputs[0].onsets
        late.start(connect_to=[bridge_in])
        assert late.wait_finished(10), "the second note did not finish playing"
        wait_for(lambda: runner.snapshot().inputs[0].onsets > onsets, "the bridge hearing the muted note")
        time.sleep(0.5)  # the dispatch loop runs every few ms: anything it sent would be here by now
        assert notes(singer) == [("on", 69), ("off", 69)]

        # Unmuted, the same port plays again, so the silence above was the switch.
        runner.set_midi_enabled(True)
        again.start(connect_to=[bridge_in])
        wait_for(lambda: ("off", 76) in notes(singer), "E5 on and off after unmuting")
        assert notes(singer) == [("on", 69), ("off", 69), ("on", 76), ("off", 76)]
    finally:
        for player in (singer, late, again):
            player.close()
