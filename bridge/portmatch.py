"""Matching JACK port names against the user's --connect pattern, at a bounded cost.

Python's `re` holds the GIL for the whole of one match, and a pattern such as
``(a|aa)+$`` against a long port name backtracks for minutes: in the bridge's
process that would stall the dispatch thread, the control port and the
signal handler with it. So the pattern runs in a small child process (the
same `re`, so the same meaning as the config check gives it), one name at a
time: a name that takes longer than MATCH_TIMEOUT_S is counted as no match,
the child is killed and a new one serves the next name. Each name is matched
once and the answer kept, so the graph thread's polling costs nothing for
ports it has seen.

Chosen over restricting the patterns (no safe subset of `re` is easy to
state, and users write patterns for ports of DAWs we do not know) and over
the third-party `regex` module's timeout (it overshoots by seconds under
load, and its syntax differs in corners from the `re` the config check uses).
"""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys

from bridge import processes

log = logging.getLogger(__name__)

MATCH_TIMEOUT_S = 1.0
"""Longest one port name may take; a sane pattern takes microseconds."""
START_TIMEOUT_S = 10.0
"""Longest the child may take to start (Python's start-up on a loaded machine)."""
KEEP_ANSWERS = 4096
"""Port names whose answers are kept; past that the memory starts over."""

_CHILD = r"""
import json, re, sys
pattern = re.compile(sys.argv[1])
sys.stdout.write("ready\n")
sys.stdout.flush()
for line in sys.stdin:
    sys.stdout.write("1\n" if pattern.search(json.loads(line)) else "0\n")
    sys.stdout.flush()
"""


class PortMatcher:
    """`matches(name)`: whether `pattern` finds a match in the port name. Not thread-safe:
    one thread asks (the graph thread); the child process is started on its first
    question, from that thread, and dies with it."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._answers: dict[str, bool] = {}
        self._child: subprocess.Popen[bytes] | None = None

    def matches(self, name: str) -> bool:
        answer = self._answers.get(name)
        if answer is None:
            if len(self._answers) >= KEEP_ANSWERS:
                self._answers.clear()
            answer = self._answers[name] = self._ask(name)
        return answer

    def _ask(self, name: str) -> bool:
        child = self._child or self._start()
        reply = _exchange(child, json.dumps(name).encode() + b"\n", MATCH_TIMEOUT_S)
        if reply in (b"0\n", b"1\n"):
            return reply == b"1\n"
        self.close()
        log.warning(
            "daw-bridge: the --connect pattern takes too long on port '%s' (over %g s); that port is left alone",
            name, MATCH_TIMEOUT_S,
        )
        return False

    def _start(self) -> subprocess.Popen[bytes]:
        self._child = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD, self.pattern],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            preexec_fn=processes.die_with_parent,  # noqa: PLW1509 - prctl must run in the child
        )
        _exchange(self._child, b"", START_TIMEOUT_S)  # its "ready"
        return self._child

    def close(self) -> None:
        """Ends the child process (a new one starts on the next question)."""
        if self._child is not None:
            child, self._child = self._child, None
            child.kill()
            child.wait()
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()


def _exchange(child: subprocess.Popen[bytes], line: bytes, timeout: float) -> bytes:
    """Sends `line` (if any) and reads one reply line within `timeout` s; b"" if none."""
    assert child.stdin is not None and child.stdout is not None
    try:
        if line:
            child.stdin.write(line)
        ready, _, _ = select.select([child.stdout], [], [], timeout)
        return child.stdout.readline() if ready else b""
    except OSError:
        return b""
