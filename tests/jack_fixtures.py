"""pytest fixtures: real dummy JACK servers on private names.

Every server gets a name unique to this test run, so tests never touch a
user's `default` server and parallel runs never share one. `jack_server` is
one server for the whole session (cheap tests that only need a graph);
`jack_server_factory` starts further servers, e.g. with another period, and
`fresh_jack_server` is a server of a test's own that it may kill and restart
(the bridge's fault tests). All servers started here are stopped at the end.

Load them with `pytest_plugins = ["jack_fixtures"]` in tests/conftest.py, or
import the fixtures into a test module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge import jackd


class DummyJack:
    """A dummy jackd that a test controls: start, kill (as a crash would), restart."""

    def __init__(self, name: str, rate: int, period: int, log_dir: Path) -> None:
        self.name, self.rate, self.period = name, rate, period
        self._log = log_dir / f"jackd-{name}.log"
        self._server: jackd.JackServer | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for a child process whose JACK clients must use this server."""
        return {**os.environ, "JACK_DEFAULT_SERVER": self.name}

    def is_running(self) -> bool:
        return jackd.is_running(self.name)

    def log_text(self) -> str:
        """jackd's output so far, for assertion messages."""
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def start(self) -> DummyJack:
        """Start the server and wait until it accepts clients."""
        try:
            self._server = jackd.start(self.name, self.rate, self.period, log_path=self._log,
                                       die_with_parent=True)
        except jackd.JackdError as exc:
            pytest.fail(str(exc))
        if not self._server.owned:
            pytest.fail(f"private JACK server name {self.name!r} is already taken")
        return self

    def stop(self) -> None:
        """Stop cleanly (SIGTERM), as a user quitting jackd would."""
        if self._server is not None:
            self._server.stop()

    def kill(self) -> None:
        """SIGKILL the server: clients see it vanish without a goodbye."""
        if self._server is not None:
            self._server.kill()

    def restart(self) -> DummyJack:
        """Stop (if still running) and start again under the same name."""
        self.stop()
        return self.start()


@pytest.fixture(scope="session")
def jack_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., DummyJack]]:
    """Start dummy servers on demand: `factory(period=256)`; all are stopped at session end."""
    started: list[DummyJack] = []
    log_dir = tmp_path_factory.mktemp("jackd")

    def factory(rate: int = 48000, period: int = 128, tag: str = "test") -> DummyJack:
        server = DummyJack(jackd.unique_server_name(tag), rate, period, log_dir)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def jack_server(jack_server_factory: Callable[..., DummyJack]) -> DummyJack:
    """One dummy jackd (48 kHz, 128 frames) shared by the whole session; do not kill it."""
    return jack_server_factory(tag="session")


@pytest.fixture
def fresh_jack_server(jack_server_factory: Callable[..., DummyJack]) -> Iterator[DummyJack]:
    """A dummy jackd of the test's own, free to kill and restart."""
    server = jack_server_factory(tag="fresh")
    yield server
    server.stop()
