"""`import rust_engine` from the repository root, where the crate folder rust_engine/ is in the way."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_repository_root_imports_the_built_engine() -> None:
    """With the root first on sys.path, the installed extension still wins over the crate folder."""
    result = _python("-c", "import rust_engine; print(rust_engine.__file__); print(rust_engine.Analyzer.__name__)")
    assert result.returncode == 0, result.stderr
    origin, name = result.stdout.split()
    assert not origin.startswith(str(ROOT / "rust_engine") + os.sep), origin
    assert name == "Analyzer"


def test_a_python_without_the_engine_says_so_at_import() -> None:
    """-S leaves out site-packages, so only the crate folder answers to `rust_engine`: the bridge
    names the missing build instead of failing later with an AttributeError."""
    result = _python("-S", "-c", "import bridge")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: the Rust engine (module rust_engine) is not built"), result.stderr
