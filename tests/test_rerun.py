"""The rule of tests/jack_fixtures.py for busy machines, checked on a real jackd: a
`jack` test that fails while its server reports xruns runs once more; one that fails
with no xrun reported fails."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
TESTS = Path(__file__).resolve().parent

INNER_CONFTEST = """
import pytest
pytest_plugins = ["jack_fixtures"]

def pytest_configure(config):
    config.addinivalue_line("markers", "jack: uses a jackd")

def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.jack)
"""

INNER_TESTS = """
import time
import jack

RUNS = []

def test_late_client_then_fine(fresh_jack_server):
    # The first run, a client whose callback overruns its period: jackd reports xruns.
    RUNS.append(1)
    client = jack.Client("slow", servername=fresh_jack_server.name, no_start_server=True)
    late = len(RUNS) == 1

    @client.set_process_callback
    def process(frames):
        if late:
            time.sleep(0.01)

    client.activate()
    time.sleep(0.5)
    client.deactivate()
    client.close()
    assert not late

def test_fails_without_xruns(fresh_jack_server):
    assert False, "no xrun reported"
"""


def test_a_failure_during_xruns_runs_once_more_and_one_without_fails(pytester: pytest.Pytester,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:textual-snapshot", "-W", "always::pytest.PytestWarning")
    result.assert_outcomes(passed=1, failed=1, warnings=1)
    result.stdout.fnmatch_lines(["*failed while jackd reported * xruns*running it once more*"])
    result.stdout.fnmatch_lines(["*FAILED test_inner.py::test_fails_without_xruns*"])
