"""A real UDP receiver on 127.0.0.1 for the OSC tests: it keeps every datagram
so a test can check bundles as sent, not only what a dispatcher passes on."""

from __future__ import annotations

import socket
import threading

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage


class UdpCapture:
    """Binds an ephemeral port on 127.0.0.1 (`port`) and records datagrams until `close()`."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.datagrams.append(self.sock.recv(65536))
            except TimeoutError:
                continue

    def bundles(self) -> list[OscBundle]:
        return [OscBundle(d) for d in self.datagrams]

    def messages(self) -> list[OscMessage]:
        return [m for b in self.bundles() for m in b if isinstance(m, OscMessage)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
