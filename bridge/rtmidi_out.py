"""Note output through python-rtmidi, for setups that take MIDI from ALSA or
another MIDI system rather than from the JACK MIDI port.

It is fed from the dispatch thread, not the audio callback, so its timing is
that of the dispatch loop (a few milliseconds), not frame-exact. Its messages
are those the engine writes to the JACK `midi_out` port, pitch bend included:
the same rules, applied to the same events in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import rtmidi

from bridge.bend import BEND_CENTRE, BEND_STEP, bend_value
from bridge.errors import BridgeError

# python-rtmidi's API names, as a user types them.
APIS = {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA}


class RtMidiOut:
    """Sends note-on / note-off (and pitch bend for the cents deviation when
    `bend_range` > 0) to an rtmidi port: a named existing port, or a virtual
    port of our own that other programs connect to."""

    def __init__(
        self, port: str | None, api: str = "jack", client_name: str = "daw-bridge", bend_range: float = 0.0
    ) -> None:
        if api not in APIS:
            raise BridgeError(f"unknown MIDI API '{api}' (use one of: {', '.join(APIS)})")
        try:
            self._out = rtmidi.MidiOut(rtapi=APIS[api], name=client_name)
        except rtmidi.SystemError as e:
            raise BridgeError(f"cannot open the {api} MIDI system: {e}") from None
        self._active: dict[int, int] = {}
        self._enabled = True
        self._bend_range = bend_range
        self._bend: dict[int, int] = {}  # last bend sent per channel, centre when absent
        try:
            if port is None or port == "virtual":
                self._out.open_virtual_port("midi_out")
                self.port_name = f"{client_name} (virtual)"
            else:
                names = self._out.get_ports()
                matches = [i for i, n in enumerate(names) if port in n]
                if not matches:
                    listed = ", ".join(names) or "none"
                    raise BridgeError(f"no MIDI port matches '{port}' (ports: {listed})")
                self._out.open_port(matches[0])
                self.port_name = names[matches[0]]
        except (rtmidi.InvalidPortError, rtmidi.SystemError) as e:
            raise BridgeError(f"cannot open MIDI port '{port}': {e}") from None

    def set_enabled(self, enabled: bool) -> None:
        """Mutes or unmutes the port as the UI's MIDI switch does `midi_out`: muting
        closes the sounding notes, and nothing more is sent until unmuted."""
        if not enabled:
            for channel in list(self._active):
                self._release(channel)
        self._enabled = enabled

    def send(self, events: Iterable[Any]) -> None:
        """Forwards the note and pitch events among `events` (input k on channel k-1)."""
        if not self._enabled:
            return
        for e in events:
            channel = (max(e.input, 1) - 1) % 16
            if e.kind == "note_on":
                self._release(channel)
                if self._bend.get(channel, BEND_CENTRE) != BEND_CENTRE:
                    self._send_bend(channel, BEND_CENTRE)  # the new note starts in tune
                self._out.send_message([0x90 | channel, e.note, max(e.velocity, 1)])
                self._active[channel] = e.note
            elif e.kind == "note_off" and self._active.get(channel) == e.note:
                self._release(channel)
            elif e.kind == "pitch" and e.voiced and self._bend_range > 0 and channel in self._active:
                value = bend_value(e.midi - self._active[channel], self._bend_range)
                if abs(value - self._bend.get(channel, BEND_CENTRE)) >= BEND_STEP:
                    self._send_bend(channel, value)

    def _send_bend(self, channel: int, value: int) -> None:
        self._out.send_message([0xE0 | channel, value & 0x7F, value >> 7])
        self._bend[channel] = value

    def _release(self, channel: int) -> None:
        note = self._active.pop(channel, None)
        if note is not None:
            self._out.send_message([0x80 | channel, note, 0])

    def close(self) -> None:
        """Note-off for every sounding note, then closes the port."""
        for channel in list(self._active):
            self._release(channel)
        self._out.close_port()
        del self._out
