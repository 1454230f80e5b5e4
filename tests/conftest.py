"""Shared helpers: the repository's paths, the demo synthesiser and a CLI runner."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

# The real dummy-jackd fixtures (jack_server, jack_server_factory, fresh_jack_server).
pytest_plugins = ["jack_fixtures", "live_bridge"]

# The per-user config file that `run` reads must be the tests' own, never the developer's.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="daw-bridge-tests-config-")

JACK_FIXTURES = {"jack_server", "jack_server_factory", "fresh_jack_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks `jack` every test that starts or uses a jackd (`-m "not jack"` runs the rest)."""
    for item in items:
        if JACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.jack)

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "demo"


def _load_make_demo() -> ModuleType:
    # demo/ is not a package: load the generator by path so tests render tones the same way.
    spec = importlib.util.spec_from_file_location("make_demo", DEMO_DIR / "make_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


make_demo = _load_make_demo()


def _cli_command() -> list[str]:
    """The installed console script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("daw-bridge")
    if script.exists():
        return [str(script)]
    found = shutil.which("daw-bridge")
    return [found] if found else [sys.executable, "-m", "bridge.cli"]


CLI = _cli_command()


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Runs ``daw-bridge ARGS`` as a user would, capturing its output."""
    return subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def synth() -> ModuleType:
    """demo/make_demo.py: ``Note``, ``render`` and ``note_name``."""
    return make_demo


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli(*args, cwd=None)`` runs the real ``daw-bridge`` command."""
    return run_cli
