"""pytest fixtures: real dummy JACK servers on private names.

Every server gets a name unique to this test run, so tests never touch a
user's `default` server and parallel runs never share one. `jack_server` is
one server for the whole session (cheap tests that only need a graph);
`jack_server_factory` starts further servers, e.g. with another period, and
`fresh_jack_server` is a server of a test's own that it may kill and restart
(the bridge's fault tests). All servers started here are stopped at the end.

Load them with `pytest_plugins = ["jack_fixtures"]` in tests/conftest.py, or
import the fixtures into a test module.

A test that uses these servers and fails while one of them reported an xrun
(jackd logs each: a client not finished in its period, or the driver late) is
said so and run once more: on a busy machine a late client is a hole in the
audio, which can re-strike or lose a note. A failure with no xrun reported,
or a second failure, stands.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _pytest.runner import runtestprotocol

from bridge import jackd


class DummyJack:
    """A dummy jackd that a test controls: start, kill (as a crash would), restart."""

    def __init__(self, name: str, rate: int, period: int, log_dir: Path, shared: bool = False) -> None:
        self.name, self.rate, self.period = name, rate, period
        self.shared = shared
        """The session's server (`jack_server`): its xruns count only for tests that use it."""
        self._log = log_dir / f"jackd-{name}.log"
        self._server: jackd.JackServer | None = None
        SERVERS.append(self)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a child process whose JACK clients must use this server."""
        return {**os.environ, "JACK_DEFAULT_SERVER": self.name}

    def is_running(self) -> bool:
        return jackd.is_running(self.name)

    def log_text(self) -> str:
        """jackd's output so far, for assertion messages."""
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def xruns(self) -> int:
        """Xruns jackd has reported so far ("JackEngine::XRun: client = ... was not
        finished", "JackTimedDriver::Process XRun")."""
        return self.log_text().count("XRun")

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
        server = DummyJack(jackd.unique_server_name(tag), rate, period, log_dir, shared=tag == "session")
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


SERVERS: list[DummyJack] = []
"""Every server these fixtures made, for counting xruns around a test."""


def _xruns(counted: Callable[[DummyJack], bool]) -> dict[str, int]:
    return {s.name: s.xruns() for s in SERVERS if counted(s)}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Runs a `jack` test once more when it failed while its servers reported xruns."""
    if item.get_closest_marker("jack") is None or not isinstance(item, pytest.Function):
        return None
    uses_shared = "jack_server" in item.fixturenames

    def counted(server: DummyJack) -> bool:
        return uses_shared or not server.shared

    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    before = _xruns(counted)
    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    xruns = sum(n - before.get(name, 0) for name, n in _xruns(counted).items())
    failed = next((r for r in reports if r.failed), None)
    if failed is not None and xruns > 0:
        lines = failed.longreprtext.strip().splitlines()
        where = lines[-1] if lines else failed.when
        # What failed, for the log: the first line of pytest's explanation ("E   assert ...").
        said = next((line[1:].strip() for line in lines if line.startswith("E ")), "")[:300]
        item.warn(pytest.PytestWarning(
            f"failed while jackd reported {xruns} xruns ({where}: {said}); running it once more"))
        item._initrequest()  # fresh fixtures for the second run
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
