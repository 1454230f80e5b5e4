"""Saving the tuned settings into the TOML config file.

The file is edited as text, line by line, instead of being parsed and
rewritten: a TOML writer would drop the comments that `daw-bridge config`
puts beside every key, and users edit the file by hand too. Only the lines of
the keys being saved change; a missing key or table is added. The result is
read back with the bridge's own loader before it replaces the file, so a file
this cannot edit safely (e.g. an inline table) is left alone with an error.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from bridge import config
from bridge.errors import BridgeError
from bridge.params import PARAMS, split_key

_TABLE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")


def _set_key(lines: list[str], table: str, name: str, value: float) -> list[str]:
    """`lines` with `name = value` set inside `[table]`, added if missing."""
    start = end = None
    for i, line in enumerate(lines):
        m = _TABLE.match(line)
        if m:
            if start is not None:
                end = i
                break
            if m.group(1).strip() == table:
                start = i
    text = f"{name} = {value!r}"
    if start is None:
        return [*lines, "", f"[{table}]", text] if lines else [f"[{table}]", text]
    stop = len(lines) if end is None else end
    key = re.compile(rf"^\s*{re.escape(name)}\s*=")
    for i in range(start + 1, stop):
        if key.match(lines[i]):
            return [*lines[:i], text, *lines[i + 1 :]]
    return [*lines[: start + 1], text, *lines[start + 1 :]]


def save_params(path: Path, params: dict[str, float], *, make_dir: bool = False) -> None:
    """Writes `params` ({"onset.delta": 0.03, ...}) into `[engine.<section>]` of `path`.

    A missing file is created from the commented defaults; with `make_dir` (the
    per-user config file) so is its directory, mode 0700 as XDG asks. BridgeError
    when the file cannot be read, edited safely or written; the file is then unchanged.
    """
    if make_dir:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise BridgeError(f"cannot create '{path.parent}': {e.strerror or e}") from None
    try:
        text = path.read_text() if path.exists() else config.default_toml()
    except (OSError, UnicodeDecodeError) as e:
        raise BridgeError(f"cannot read config '{path}': {e}") from None
    lines = text.splitlines()
    for key, value in params.items():
        section, name = split_key(key)
        lines = _set_key(lines, f"engine.{section}", name, int(value) if PARAMS[key].whole else float(value))
    directory = path.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise BridgeError(f"cannot write config '{path}': {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        _check(Path(tmp), path, params)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise BridgeError(f"cannot write config '{path}': {e.strerror or e}") from None
    except BaseException:
        os.unlink(tmp)
        raise


def _check(written: Path, path: Path, params: dict[str, float]) -> None:
    """Reads the edited file back as the bridge will, and checks the saved values."""
    try:
        engine = config.load(written)["engine"]
    except BridgeError as e:
        raise BridgeError(f"cannot save settings: {str(e).replace(str(written), str(path))}") from None
    for key, value in params.items():
        section, name = split_key(key)
        if engine.get(section, {}).get(name) != float(value):
            raise BridgeError(f"cannot update {key} in config '{path}' (edit it by hand)")
