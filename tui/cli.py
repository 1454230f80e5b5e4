"""`daw-bridge tui`: the TUI attached to a bridge that is already running."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.addresses import CONTROL_PORT as DEFAULT_PORT
from bridge.errors import BridgeError

if TYPE_CHECKING:
    from bridge.live import LiveRunner


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: '{text}'") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 1 to 65535, got {value}")
    return value


def add_subcommand(commands: Any) -> None:
    """Registers `tui` on the CLI's subparsers."""
    p = commands.add_parser(
        "tui",
        help="monitor and steer a running bridge in the terminal",
        description=(
            "Attaches the terminal UI to a daw-bridge already running on this machine, through "
            "its control port on 127.0.0.1. Quitting the UI leaves the bridge running."
        ),
    )
    p.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"the bridge's control port on 127.0.0.1 (default {DEFAULT_PORT})",
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file the 'w' key saves the tuned settings to (default: the per-user config "
        "file 'daw-bridge run' reads, $XDG_CONFIG_HOME/daw-bridge/config.toml)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so `daw-bridge --help` does not load Textual.
    from tui.app import BridgeApp
    from tui.remote import RemoteSource

    source = RemoteSource("127.0.0.1", args.port)
    try:
        source.snapshot()
    except BridgeError as e:
        raise BridgeError(f"{e}: is 'daw-bridge run' running with its control port {args.port}?") from None
    try:
        BridgeApp(source, config_path=args.config).run()
    finally:
        source.close()
    return 0


def run_on(runner: LiveRunner, config_path: Path | None, loaded_from: Path | None = None) -> bool:
    """Runs the TUI on a runner in this process until the user quits (`daw-bridge run
    --tui`); False when the UI stopped with an error."""
    from tui.app import BridgeApp

    app = BridgeApp(runner, config_path=config_path, loaded_from=loaded_from)
    app.run()
    return not app.return_code
