"""The ``daw-bridge`` command line: one subcommand per job.

Each subcommand is added by an ``_add_<name>`` function that registers its
arguments and a ``handler(args) -> exit status``. Errors the user can fix are
raised as BridgeError anywhere below and end here as one line on stderr with
exit status 2; so do argparse's usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from bridge.errors import BridgeError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="daw-bridge",
        description="Real-time audio to MIDI/OSC bridge: pitch, onsets and dynamics of a DAW bus.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_analyze(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except BridgeError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _fail(message: str) -> NoReturn:
    print(f"daw-bridge: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def _add_analyze(commands: argparse._SubParsersAction[_Parser]) -> None:
    p = commands.add_parser(
        "analyze",
        help="analyse an audio file offline",
        description=(
            "Streams an audio file through the analysis engine block by block, as the live "
            "bridge does, and writes a MIDI file and/or a JSON-lines event log. Without "
            "outputs it prints the notes found."
        ),
    )
    p.add_argument(
        "input",
        type=Path,
        metavar="IN.wav",
        help="audio file: any sample rate, 16/24/32-bit int or float, channels averaged to mono",
    )
    p.add_argument(
        "--midi", type=Path, metavar="OUT.mid", help="write the notes as a Standard MIDI File"
    )
    p.add_argument(
        "--events", type=Path, metavar="OUT.jsonl", help="write every event as JSON lines"
    )
    p.add_argument(
        "--block",
        type=_block_size,
        default=1024,
        metavar="N",
        help="frames per block fed to the engine (default 1024; results do not depend on it)",
    )
    p.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML file whose [engine] table sets the engine"
    )
    p.set_defaults(handler=_run_analyze)


def _block_size(text: str) -> int:
    from bridge.analyze import MAX_BLOCK

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: '{text}'") from None
    if not 1 <= value <= MAX_BLOCK:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_BLOCK}, got {value}")
    return value


def _run_analyze(args: argparse.Namespace) -> int:
    # Imported here so `daw-bridge --help` works without loading the engine.
    from bridge import analyze

    settings = analyze.load_engine_settings(args.config) if args.config else None
    result = analyze.analyze_file(
        args.input, block=args.block, settings=settings, midi_out=args.midi, events_out=args.events
    )
    summary = (
        f"{args.input}: {result.duration:.2f} s at {result.sample_rate} Hz, "
        f"{result.channels} channel{'s' if result.channels > 1 else ''}, "
        f"{len(result.notes)} notes, {result.event_count} events"
    )
    written = [str(p) for p in (args.midi, args.events) if p is not None]
    if written:
        print(f"{summary} -> {', '.join(written)}")
        return 0
    print(f"# {summary}")
    print(f"{'time_s':>8}  {'note':<4}  {'dur_s':>7}  {'vel':>3}")
    for n in result.notes:
        print(f"{n.start:8.3f}  {n.name:<4}  {n.end - n.start:7.3f}  {n.velocity:3d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
