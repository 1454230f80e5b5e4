"""Play audio into the graph and record MIDI from it, in a process of its own.

The "DAW" of the tests that run the bridge on another JACK implementation: the
test process has jackd2's libjack loaded already, so a client of PipeWire's
must live in a child started through `pw-jack`. The child plays a .npy file
once with `bridge.player.Player` (a Rust process callback), keeps what arrives
on its MIDI input, and prints one JSON object: the JACK frame time of the
audio's first sample, the period size, every MIDI event with its frame time,
and the xruns the server reported meanwhile and the periods it ran without
the player.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from bridge.player import Player, note_messages

SETTLE_S = 0.3  # MIDI sent for the audio's last period arrives after it has played


@dataclass
class Capture:
    """What the child saw: `midi` holds (frame time, message bytes)."""

    start_frame: int
    block_size: int
    midi: list[tuple[int, bytes]]
    xruns: int
    skipped_periods: int

    def notes(self) -> list[tuple[str, int]]:
        """("on"|"off", note) of the note messages received."""
        return [(kind, note) for kind, _, _, note in note_messages(self.midi)]


def assert_recovered_after_loss(notes: list[tuple[str, int]], take: Path, lost: int, new: int) -> None:
    """After a server loss: the note left sounding (`lost`) is closed on the
    recovered port first, then `new` plays whole, and the take holds both with
    every note-on matched by a note-off."""
    assert notes[0] == ("off", lost), notes
    assert ("on", new) in notes and ("off", new) in notes
    msgs = [m for m in mido.merge_tracks(mido.MidiFile(take).tracks) if m.type.startswith("note")]
    on_notes = [m.note for m in msgs if m.type == "note_on" and m.velocity]
    assert on_notes[:1] == [lost] and new in on_notes
    assert sum(1 for m in msgs if m.type == "note_off" or m.velocity == 0) == len(on_notes)


def capture(
    prefix: list[str], env: dict[str, str], audio: np.ndarray, workdir: Path, name: str,
    midi_from: str, to: tuple[str, ...] = (), wait_connected: bool = False, timeout: float = 30.0,
) -> Capture:
    """Runs the child (`prefix` e.g. ``["pw-jack"]``) and returns its capture.

    `wait_connected` holds the audio back until something else (the bridge's
    `--connect`) has connected the player's output.
    """
    path = workdir / f"{name}.npy"
    np.save(path, np.ascontiguousarray(audio, dtype=np.float32))
    cmd = [*prefix, sys.executable, __file__, str(path), "--name", name, "--midi-from", midi_from]
    cmd += [arg for port in to for arg in ("--to", port)]
    cmd += ["--wait-connected"] if wait_connected else []
    result = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"midi_capture failed ({result.returncode}): {result.stderr.strip()}")
    data = json.loads(result.stdout)
    midi = [(f, bytes(m)) for f, m in data["midi"]]
    return Capture(data["start_frame"], data["block_size"], midi, data["xruns"], data["skipped_periods"])


def _run(args: argparse.Namespace) -> dict[str, object]:
    audio = np.load(args.audio)
    player = Player(args.name, audio)
    try:
        player.start(args.to, midi_from=args.midi_from, play=not args.wait_connected)
        if args.wait_connected:
            deadline = time.monotonic() + 10
            while not player.connections(player.out):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nobody connected {player.out}")
                time.sleep(0.005)
            player.play()
        if not player.wait_finished(len(audio) / player.sample_rate + 10):
            raise RuntimeError("the audio did not finish playing")
        time.sleep(SETTLE_S)
        xruns, skipped = player.trouble_since_play()
        return {
            "start_frame": player.start_frame,
            "block_size": player.engine.buffer_size,
            "midi": [(frame, list(data)) for frame, data in player.midi],
            "xruns": xruns,
            "skipped_periods": skipped,
        }
    finally:
        player.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("audio", type=Path, help="mono float32 .npy at the server's rate")
    p.add_argument("--name", required=True)
    p.add_argument("--to", action="append", default=[], metavar="PORT")
    p.add_argument("--midi-from", required=True, metavar="PORT")
    p.add_argument("--wait-connected", action="store_true")
    args = p.parse_args()
    try:
        print(json.dumps(_run(args)))
    except Exception as e:  # noqa: BLE001 - whatever it is, the parent test fails with this message
        print(f"midi_capture: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
