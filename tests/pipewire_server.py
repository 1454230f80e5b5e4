"""A private PipeWire server for tests, and JACK clients run on it through `pw-jack`.

The machines the tests run on have no sound card, no session bus and no user
session, so the server is started by hand with a config of its own: the
modules a JACK client needs and a timer-driven dummy driver that clocks the
graph at a fixed rate and quantum (like `jackd -d dummy`). No session manager
is needed: PipeWire's libjack schedules its clients by itself (they always
process) and makes links through the link factory. Everything lives in a
private runtime directory, so a user's own PipeWire is never touched.

Only the processes that should talk to PipeWire load its libjack, through
`pw-jack`; the test process keeps jackd2's, which it has loaded already.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bridge.processes import die_with_parent, stop_process

# Every module is needed: without `access` clients hang at connect, without
# `link-factory` no connection can be made, `spa-node-factory` builds the driver.
CONFIG = """\
context.properties = {{
    core.daemon = true
    core.name = pipewire-0
    default.clock.rate = {rate}
    default.clock.allowed-rates = [ {rate} ]
    default.clock.quantum = {quantum}
    default.clock.min-quantum = {quantum}
    default.clock.max-quantum = {quantum}
}}
context.spa-libs = {{
    support.* = support/libspa-support
}}
context.modules = [
    {{ name = libpipewire-module-rt flags = [ ifexists nofail ] }}
    {{ name = libpipewire-module-protocol-native }}
    {{ name = libpipewire-module-metadata }}
    {{ name = libpipewire-module-spa-node-factory }}
    {{ name = libpipewire-module-client-node }}
    {{ name = libpipewire-module-access }}
    {{ name = libpipewire-module-link-factory }}
]
context.objects = [
    {{ factory = spa-node-factory
        args = {{
            factory.name = support.node.driver
            node.name = Dummy-Driver
            priority.driver = 20000
        }}
    }}
]
"""


def missing_binaries() -> list[str]:
    """The PipeWire programs these tests need that are not installed."""
    return [name for name in ("pipewire", "pw-jack", "pw-link") if shutil.which(name) is None]


def spawn(cmd: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    """Popen for every process a test starts: text I/O, no stdin, gone when the test run is."""
    # preexec_fn makes one prctl call in the child: there is no other way to set it before exec.
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        cmd, env=env, stdin=subprocess.DEVNULL, text=True, preexec_fn=die_with_parent, **kwargs  # noqa: PLW1509
    )


class PrivatePipeWire:
    """`pipewire` on a runtime directory of its own, at `rate` Hz and `quantum` frames."""

    def __init__(self, workdir: Path, rate: int = 48000, quantum: int = 128) -> None:
        self.rate, self.quantum = rate, quantum
        # Short and under /tmp: the socket path must fit a sockaddr_un (108 bytes).
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="dawbridge-pw-"))
        self.config = workdir / "pipewire.conf"
        self.config.write_text(CONFIG.format(rate=rate, quantum=quantum))
        self.log = workdir / "pipewire.log"
        self._process: subprocess.Popen[str] | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for the server and its clients: our runtime directory, and none of
        the caller's JACK or PipeWire settings (a JACK_DEFAULT_SERVER left by a jackd test
        would make PipeWire's libjack look for a server of that name)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JACK_", "PIPEWIRE_"))}
        return {**env, "XDG_RUNTIME_DIR": str(self.runtime_dir), "PIPEWIRE_RUNTIME_DIR": str(self.runtime_dir)}

    def jack_command(self, *cmd: str) -> list[str]:
        """`cmd` as a JACK client of this server."""
        return ["pw-jack", *cmd]

    def start(self, wait: float = 10.0) -> PrivatePipeWire:
        """Start the server and wait until it answers a client."""
        with self.log.open("a") as log:
            self._process = spawn(
                ["pipewire", "-c", str(self.config)], self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pipewire exited with status {self._process.returncode}: {self.log_text()}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pipewire did not answer within {wait:g} s: {self.log_text()}")

    def _answers(self) -> bool:
        if not (self.runtime_dir / "pipewire-0").exists():
            return False
        listed = subprocess.run(["pw-link", "-o"], env=self.env, capture_output=True, timeout=5, check=False)
        return listed.returncode == 0

    def ports(self, outputs: bool) -> list[str]:
        """JACK names of the graph's output (or input) ports."""
        result = subprocess.run(
            ["pw-link", "-o" if outputs else "-i"], env=self.env, capture_output=True, text=True, timeout=5, check=False
        )
        return result.stdout.splitlines()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: its clients lose it without a goodbye."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)

    def close(self) -> None:
        """Stop the server and remove its runtime directory."""
        self.stop()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
