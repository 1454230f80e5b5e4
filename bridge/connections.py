"""Keeps the bridge's audio inputs connected to the DAW ports the user named.

The real-time client (Rust) owns the ports; this module is a second, plain
JACK-Client client that only manages the graph, from a worker thread that
looks for missing connections every POLL_S. It registers no callback: Python
code on JACK's notification thread can hang the interpreter when the client
closes (libjack cancels that thread, possibly while it waits for the GIL, and
the GIL is never released again).
"""

from __future__ import annotations

import re
import threading

import jack

from bridge import jackd
from bridge.errors import BridgeError
from bridge.portmatch import PortMatcher

POLL_S = 0.25
"""How often the graph is checked: a port that appears is connected within this."""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compiles a --connect regular expression, as a BridgeError when it is invalid."""
    try:
        return re.compile(pattern)
    except re.error as e:
        raise BridgeError(f"bad --connect pattern '{pattern}': {e}") from None


class PortWatcher:
    """Connects JACK audio outputs whose names match `pattern` to the bridge's inputs.

    With as many matching ports as inputs, the k-th match (in name order) feeds
    ``in_k``; with more matches than inputs they are dealt out in turn, so a
    stereo bus into one input is summed to mono by JACK. Ports that appear
    later (a DAW started after the bridge, or back after a restart) are
    connected as they appear.
    """

    def __init__(self, inputs: list[str], pattern: str | None, client_name: str = "daw-bridge-graph") -> None:
        self._inputs = inputs
        if pattern:
            compile_pattern(pattern)  # a bad one fails here, in the caller's thread
        # Matched in a child process, each port name once: see bridge.portmatch.
        self._matcher = PortMatcher(pattern) if pattern else None
        self._client = jackd.open_client(client_name)
        self._stop = threading.Event()
        self.last_error: str | None = None
        self._client.activate()
        self._worker = threading.Thread(target=self._run, name="daw-bridge-graph", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._matcher is not None:
                try:
                    self.connect_matching()
                except jack.JackError as e:
                    self.last_error = str(e)
            self._stop.wait(POLL_S)

    def sources(self) -> list[str]:
        """Names of the audio outputs that match the pattern, in name order."""
        if self._matcher is None:
            return []
        ports = self._client.get_ports(is_audio=True, is_output=True)
        own = {p.split(":", 1)[0] for p in self._inputs}
        return sorted(p.name for p in ports if p.name.split(":", 1)[0] not in own and self._matcher.matches(p.name))

    def connect_matching(self) -> None:
        """Makes every planned connection that is missing."""
        for i, source in enumerate(self.sources()):
            target = self._inputs[i % len(self._inputs)]
            try:
                port = self._client.get_port_by_name(source)
                connected = {p.name for p in self._client.get_all_connections(port)}
                if target not in connected:
                    self._client.connect(source, target)
            except jack.JackError as e:
                # The port may vanish between listing and connecting; the next
                # poll retries.
                self.last_error = f"cannot connect {source} -> {target}: {e}"

    def connections(self) -> list[tuple[str, str]]:
        """Current (source, input) pairs feeding the bridge."""
        pairs = []
        for target in self._inputs:
            try:
                port = self._client.get_port_by_name(target)
                pairs += [(p.name, target) for p in self._client.get_all_connections(port)]
            except jack.JackError:
                continue
        return pairs

    def audio_outputs(self) -> list[str]:
        """Every audio output in the graph except the bridge's own, for picking connections."""
        own = {p.split(":", 1)[0] for p in self._inputs}
        return sorted(
            p.name for p in self._client.get_ports(is_audio=True, is_output=True) if p.name.split(":", 1)[0] not in own
        )

    def set_connection(self, source: str, target: str, connected: bool) -> None:
        """Connects or disconnects one source to one bridge input (from the UI)."""
        if target not in self._inputs:
            raise BridgeError(f"unknown bridge input '{target}'")
        try:
            if connected:
                self._client.connect(source, target)
            else:
                self._client.disconnect(source, target)
        except jack.JackError as e:
            raise BridgeError(f"cannot {'connect' if connected else 'disconnect'} {source} -> {target}: {e}") from None

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=2)
        if self._matcher is not None:
            self._matcher.close()
        try:
            self._client.deactivate()
            self._client.close()
        except jack.JackError:
            pass  # the server is gone already
