"""A JACK client that plays test audio into the bridge, and listens to its MIDI.

It stands in for the DAW in the TUI tests: one audio output that plays a
numpy array once and then silence, and one MIDI input that keeps what
arrives. The process callback only copies slices of the array.

A Python process callback needs the GIL every period (2.7 ms at 128 frames):
in the test process, next to Textual, it would miss cycles and chop its tones,
and its constant GIL requests slow the app down. So the tests run the player
in a process of its own (`PlayerProcess`), as a DAW would be.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import jack
import numpy as np


class TonePlayer:
    """`play(audio)` starts `audio` (mono float32 at the server rate) on `<name>:out`."""

    def __init__(self, name: str) -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.out = self.client.outports.register("out")
        self.midi_in = self.client.midi_inports.register("midi_in")
        self.midi: list[bytes] = []
        self._next: np.ndarray | None = None
        self._audio = np.zeros(0, dtype=np.float32)
        self._pos = 0
        self.client.set_process_callback(self._process)
        self.client.activate()

    @property
    def port(self) -> str:
        return str(self.out.name)

    def _process(self, frames: int) -> None:
        if self._next is not None:
            # One reference swap, so play() never races the callback.
            self._audio, self._next, self._pos = self._next, None, 0
        buf = self.out.get_array()
        chunk = self._audio[self._pos : self._pos + frames]
        buf[: len(chunk)] = chunk
        buf[len(chunk) :] = 0.0
        self._pos += len(chunk)
        for _offset, data in self.midi_in.incoming_midi_events():
            self.midi.append(bytes(data))

    def play(self, audio: np.ndarray) -> float:
        """Starts `audio` at the next cycle; returns its length in seconds."""
        self._next = np.ascontiguousarray(audio, dtype=np.float32)
        return len(audio) / int(self.client.samplerate)

    def note_ons(self) -> list[int]:
        """MIDI note numbers of the note-ons received so far."""
        return [m[1] for m in list(self.midi) if len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0]

    def connect_to(self, port: str) -> None:
        self.client.connect(self.out, port)

    def listen_to(self, port: str) -> None:
        self.client.connect(port, self.midi_in)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class PlayerProcess:
    """A TonePlayer in a child process, driven by one-line commands on its stdin.

    `env` must name the JACK server (e.g. ``{**os.environ, "JACK_DEFAULT_SERVER": name}``).
    """

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="tui-player-")
        self._proc = subprocess.Popen(
            [sys.executable, __file__, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.port = self._ask("port")
        self._count = 0

    def _ask(self, command: str) -> str:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        reply = self._proc.stdout.readline().strip()
        if not reply.startswith("ok"):
            raise RuntimeError(f"player: '{command}' failed: {reply or 'no reply'}")
        return reply[3:]

    def connect_to(self, port: str) -> None:
        self._ask(f"connect {port}")

    def listen_to(self, port: str) -> None:
        self._ask(f"listen {port}")

    def play(self, audio: np.ndarray) -> float:
        self._count += 1
        path = Path(self._dir.name) / f"{self._count}.npy"
        np.save(path, np.ascontiguousarray(audio, dtype=np.float32))
        return float(self._ask(f"play {path}"))

    def note_ons(self) -> list[int]:
        return list(json.loads(self._ask("notes")))

    def close(self) -> None:
        if self._proc.poll() is None:
            self._ask("quit")
            self._proc.wait(timeout=5)
        self._dir.cleanup()


def _serve(name: str) -> None:
    player = TonePlayer(name)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        try:
            if command == "port":
                reply = player.port
            elif command == "connect":
                player.connect_to(arg)
                reply = ""
            elif command == "listen":
                player.listen_to(arg)
                reply = ""
            elif command == "play":
                reply = str(player.play(np.load(arg)))
            elif command == "notes":
                reply = json.dumps(player.note_ons())
            elif command == "quit":
                player.close()
                print("ok", flush=True)
                return
            else:
                raise ValueError(f"unknown command {command!r}")
        except (jack.JackError, OSError, ValueError) as e:  # reported to the test, which fails with it
            print(f"error {e}", flush=True)
            continue
        print(f"ok {reply}", flush=True)
    player.close()


if __name__ == "__main__":
    _serve(sys.argv[1])
