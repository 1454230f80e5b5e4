"""`daw-bridge templates install`: puts the DAW templates where Ardour and Reaper look.

The templates are package data (the `daw_templates` package) and name the
bridge's ports as bridge/addresses.py does; tests/test_templates.py holds them
to it. Installing never overwrites a file unless asked to, and checks every
destination before writing the first one, so a refusal leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from bridge.errors import BridgeError

DAWS = ("ardour", "reaper")

ARDOUR_TEMPLATE = "daw-bridge"
"""Name of the Ardour session template: its folder and its `<name>.template` file."""

ARDOUR_CONFIG_DIRS = ("ardour7", "ardour8")
"""Ardour 7 and 8 read the same template format, each from its own config folder."""

REAPER_FILES = {
    "daw-bridge.RTrackTemplate": "TrackTemplates",
    "daw-bridge.RPP": "ProjectTemplates",
    "daw-bridge.ReaperOSC": "OSC",
}
"""Reaper template file -> the folder of REAPER's resource path that lists it."""

REAPER_FEED_OUTPUT = 3
"""The Reaper Voice track's hardware output (mono, pre-fader): JACK port REAPER:out3.

Outputs 1-2 stay the master bus, so the bridge hears the voice alone and never
the synth playing its own notes back."""

REAPER_OSC_PORT = 8000


def reaper_feed_port() -> str:
    """The JACK port Reaper feeds the bridge from; pass it to ``daw-bridge run --connect``."""
    return f"REAPER:out{REAPER_FEED_OUTPUT}"


def template_dir(daw: str) -> Traversable:
    """The packaged templates of ``daw``."""
    return files("daw_templates").joinpath(daw)


def config_home() -> Path:
    """$XDG_CONFIG_HOME, or ~/.config when it is unset or not absolute (as the XDG spec says)."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"


def plan(daw: str, dest: Path | None = None) -> list[tuple[Traversable, Path]]:
    """(packaged file, destination) pairs for installing ``daw``'s templates.

    Without ``dest``: Ardour's template folder of both Ardour 7 and 8, or
    REAPER's resource path (TrackTemplates/, ProjectTemplates/, OSC/). With
    ``dest``: that folder stands for the templates folder (Ardour) or the
    resource path (Reaper), e.g. a portable REAPER install.
    """
    if daw == "ardour":
        roots = [dest] if dest else [config_home() / d / "templates" for d in ARDOUR_CONFIG_DIRS]
        source = template_dir("ardour").joinpath(ARDOUR_TEMPLATE)
        return [
            (f, root / ARDOUR_TEMPLATE / f.name)
            for root in roots
            for f in sorted(source.iterdir(), key=lambda t: t.name)
            if f.is_file()
        ]
    if daw == "reaper":
        root = dest or config_home() / "REAPER"
        source = template_dir("reaper")
        return [(source.joinpath(name), root / folder / name) for name, folder in REAPER_FILES.items()]
    raise BridgeError(f"unknown DAW '{daw}' (use one of: {', '.join(DAWS)})")


def install(daw: str, dest: Path | None = None, force: bool = False) -> list[Path]:
    """Copies ``daw``'s templates into place and returns the files written.

    Raises BridgeError if a destination exists and ``force`` is false, or if
    a file cannot be written; files created before the failure are removed.
    """
    pairs = plan(daw, dest)
    if not force:
        for _, target in pairs:
            if target.exists() or target.is_symlink():
                raise BridgeError(f"{target} already exists; use --force to replace it")
    created: list[Path] = []
    try:
        for source, target in pairs:
            is_new = not target.exists()
            _write_atomic(target, source.read_bytes())
            if is_new:
                created.append(target)
    except OSError as e:
        for path in created:
            path.unlink(missing_ok=True)
        where = f" '{e.filename}'" if e.filename else ""
        raise BridgeError(f"cannot install the {daw} templates{where}: {e.strerror or e}") from None
    return [target for _, target in pairs]


def _write_atomic(target: Path, data: bytes) -> None:
    """Writes through a temporary file in the same folder, so a DAW never sees half a template."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def add_subcommand(commands: Any) -> None:
    """Registers ``templates install`` on the CLI's subcommand parsers."""
    p = commands.add_parser(
        "templates",
        help="install the Ardour / Reaper templates",
        description="Installs DAW templates wired to the bridge's JACK ports and OSC addresses.",
    )
    actions = p.add_subparsers(dest="templates_action", required=True, metavar="ACTION")
    i = actions.add_parser(
        "install",
        help="copy a DAW's templates to where it finds them",
        description=(
            "ardour: the session template 'daw-bridge' into the template folders of Ardour 7 and 8 "
            "($XDG_CONFIG_HOME/ardour{7,8}/templates, default ~/.config). reaper: a track template, "
            "a project template and the OSC pattern config 'daw-bridge' into REAPER's "
            "TrackTemplates/, ProjectTemplates/ and OSC/ ($XDG_CONFIG_HOME/REAPER). "
            "Existing files are left alone unless --force is given."
        ),
    )
    i.add_argument("daw", choices=DAWS, help="which DAW's templates")
    i.add_argument("--force", action="store_true", help="replace templates that are already installed")
    i.add_argument(
        "--dest",
        type=Path,
        metavar="DIR",
        help="install into DIR instead: Ardour's templates folder, or REAPER's resource path",
    )
    i.set_defaults(handler=_run_install)


def _run_install(args: argparse.Namespace) -> int:
    for path in install(args.daw, args.dest, args.force):
        print(f"installed {path}")
    if args.daw == "ardour":
        print("next: start 'daw-bridge run', then in Ardour: Session > New, template 'daw-bridge'")
    else:
        print(
            f"next: daw-bridge run --connect '^{reaper_feed_port()}$' --osc 127.0.0.1:{REAPER_OSC_PORT}"
            ", then in REAPER: File > Project templates > daw-bridge"
        )
    return 0
