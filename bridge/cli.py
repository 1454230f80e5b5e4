"""The ``daw-bridge`` command line: one subcommand per job.

Each subcommand is added by an ``_add_<name>`` function that registers its
arguments and a ``handler(args) -> exit status``. Errors the user can fix are
raised as BridgeError anywhere below and end here as one line on stderr with
exit status 2; so do argparse's usage errors.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

from bridge import templates
from bridge.errors import BridgeError
from tui.cli import add_subcommand as _add_tui

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
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    _add_analyze(commands)
    _add_config(commands)
    _add_tui(commands)
    templates.add_subcommand(commands)
    return parser


def _version() -> str:
    try:
        return version("daw-bridge")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


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
    _add_note_flags(p, live=False)
    p.add_argument(
        "--bend",
        type=_bend_range,
        nargs="?",
        const=2.0,
        metavar="SEMITONES",
        help="add pitch bend for the cents deviation to --midi, range in semitones (default 2)",
    )
    p.set_defaults(handler=_run_analyze)


def _add_note_flags(p: argparse.ArgumentParser, live: bool) -> None:
    """--tuning and --scale: `auto` estimates them, `analyze` from the whole file, `run` as the music plays."""
    p.add_argument(
        "--tuning",
        type=_tuning,
        metavar="HZ|auto",
        help="the performer's A4 in Hz (400..480) that note numbers are read against (default 440); auto estimates it "
        + ("from the pitches as they come, and follows a drift" if live else "from the pitches"),
    )
    p.add_argument(
        "--scale",
        type=_scale,
        metavar="KEY:MODE|auto|chromatic",
        help="snap note numbers (not the bend) to a scale, e.g. C:major, A:minor, D:dorian (default chromatic); "
        + ("auto estimates a major or minor key as the music plays (chromatic until it settles)" if live
           else "auto estimates a major or minor key"),
    )


def _tuning(text: str) -> float | str:
    from bridge.tuning import parse_tuning

    try:
        return parse_tuning(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _scale(text: str) -> tuple[int, int] | str:
    from bridge.tuning import parse_scale

    try:
        return parse_scale(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _bend_range(text: str) -> float:
    import rust_engine

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of semitones: '{text}'") from None
    if not (math.isfinite(value) and 0 < value <= rust_engine.MAX_BEND_RANGE):
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {rust_engine.MAX_BEND_RANGE:g} semitones, got {text}")
    return value


def _block_size(text: str) -> int:
    from bridge.analyze import MAX_BLOCK

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: '{text}'") from None
    if not 1 <= value <= MAX_BLOCK:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_BLOCK}, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: '{text}'") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds, got {text}")
    return value


def _control_port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: '{text}'") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"the control port must be from 0 (any free port) to 65535, got {value}")
    return value


def _run_analyze(args: argparse.Namespace) -> int:
    # Imported here so `daw-bridge --help` works without loading the engine.
    from bridge import analyze, config
    from bridge.tuning import scale_name

    settings = config.load(args.config)["engine"] if args.config else None
    result = analyze.analyze_file(
        args.input, block=args.block, settings=settings, midi_out=args.midi, events_out=args.events,
        tuning=args.tuning, scale=args.scale, bend_range=args.bend or 0.0,
    )
    summary = (
        f"{args.input}: {result.duration:.2f} s at {result.sample_rate} Hz, "
        f"{result.channels} channel{'s' if result.channels > 1 else ''}, "
        f"{len(result.notes)} notes, {result.event_count} events"
    )
    if result.tuning_hz != 440.0 or args.tuning is not None:
        summary += f", A4 = {result.tuning_hz:.1f} Hz" + (" (auto)" if args.tuning == "auto" else "")
    if result.scale != (0, 0) or args.scale is not None:
        summary += f", scale {scale_name(result.scale)}" + (" (auto)" if args.scale == "auto" else "")
    written = [str(p) for p in (args.midi, args.events) if p is not None]
    if written:
        print(f"{summary} -> {', '.join(written)}")
        return 0
    print(f"# {summary}")
    print(f"{'time_s':>8}  {'note':<4}  {'dur_s':>7}  {'vel':>3}")
    for n in result.notes:
        print(f"{n.start:8.3f}  {n.name:<4}  {n.end - n.start:7.3f}  {n.velocity:3d}")
    return 0


def _add_run(commands: argparse._SubParsersAction[_Parser]) -> None:
    p = commands.add_parser(
        "run",
        help="run the live bridge on JACK",
        description=(
            "Registers a JACK client with audio inputs in_1..in_N and a MIDI output midi_out, "
            "analyses every period and sends notes as MIDI and onsets, dynamics, pitch and notes "
            "as OSC. Flags override the config file. Stops on Ctrl-C or SIGTERM with every note "
            "closed and every file valid."
        ),
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML config file (see 'daw-bridge config --print-default'); default: the per-user file $XDG_CONFIG_HOME/daw-bridge/config.toml (~/.config/...) when it exists, where the TUI's 'w' saves")
    p.add_argument("--name", metavar="NAME", help="JACK client name (default daw-bridge)")
    p.add_argument("--inputs", type=int, metavar="N", help="number of mono inputs, 1..64 (default 1)")
    p.add_argument("--connect", metavar="REGEX", help="connect JACK outputs matching REGEX to the inputs, also when they appear later")
    p.add_argument("--osc", action="append", metavar="HOST:PORT", help="send OSC here (repeatable)")
    p.add_argument("--osc-prefix", metavar="PREFIX", help="OSC address prefix (default /bridge)")
    p.add_argument("--osc-rate", type=float, metavar="HZ", help="most pitch/dynamics messages per second per input (default 100)")
    p.add_argument("--osc-silence", choices=("once", "stream"), help="in silence send pitch and dynamics once, then nothing (default), or keep streaming")
    p.add_argument("--osc-timetag", choices=("block", "immediate"), help="stamp bundles with their period's time (default) or 'immediately'")
    p.add_argument("--bend", type=float, nargs="?", const=2.0, metavar="SEMITONES", help="send pitch bend for the cents deviation, range in semitones (default 2)")
    p.add_argument("--midi-port", metavar="NAME", help="also send notes to this rtmidi port ('virtual' for a port of our own)")
    p.add_argument("--midi-api", choices=("jack", "alsa"), help="MIDI system for --midi-port (default jack)")
    p.add_argument("--record-midi", type=Path, metavar="FILE.mid", help="record the take as a MIDI file (placed at detected onsets)")
    p.add_argument("--events", type=Path, metavar="FILE.jsonl", help="log every event as JSON lines (the schema of 'analyze')")
    p.add_argument("--beat-source", choices=("audio", "transport", "auto"), help="beats, tempo and MIDI clock from the audio, the JACK transport (a timebase master's bar and beat, while it rolls), or the transport when it rolls and else the audio (default auto)")
    p.add_argument("--clock-input", type=int, metavar="N", help="the input whose beats drive the MIDI clock on clock_out (default 1)")
    p.add_argument("--clock-stop-on-loss", action=argparse.BooleanOptionalAction, default=None, help="send MIDI Stop on clock_out when the beat is lost (default); --no-clock-stop-on-loss keeps the clock running")
    p.add_argument("--tui", action="store_true", help="show the terminal UI (needs a terminal)")
    p.add_argument("--control-port", type=_control_port, metavar="PORT", help="serve state and controls on 127.0.0.1:PORT for 'daw-bridge tui' (0: any free port, printed at start)")
    p.add_argument("--ws", metavar="[HOST:]PORT", help="serve a browser page at / and a WebSocket feed of every event at /ws (host 127.0.0.1 unless given; port 0: any free port, printed at start)")
    p.add_argument("--osc-in", metavar="[HOST:]PORT", help="receive the live controls as OSC under PREFIX/control/... on this UDP port (host 127.0.0.1 unless given; 0: any free port, printed at start); see 'python -m bridge.addresses'")
    p.add_argument("--oscquery", metavar="[HOST:]PORT", help="serve the OSC namespace per the OSCQuery proposal (HTTP JSON, LISTEN over WebSocket) on this TCP port (host 127.0.0.1 unless given); without --osc-in the controls get a free UDP port on the same host, given in ?HOST_INFO")
    p.add_argument("--demo", type=Path, metavar="AUDIO", help="start a dummy JACK server if none runs and loop AUDIO into the bridge")
    _add_note_flags(p, live=True)
    p.add_argument("--duration", type=_seconds, metavar="SECONDS", help="stop after this long (default: until Ctrl-C)")
    p.set_defaults(handler=_run_live)


def _add_config(commands: argparse._SubParsersAction[_Parser]) -> None:
    p = commands.add_parser("config", help="print or check a configuration file")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--print-default", action="store_true", help="print the default configuration, commented")
    group.add_argument("--check", type=Path, metavar="FILE", help="check FILE and report the first problem")
    group.add_argument("--path", action="store_true", help="print where the per-user config file is ('run' reads it, the TUI's 'w' saves it)")
    p.set_defaults(handler=_run_config)


def _run_config(args: argparse.Namespace) -> int:
    from bridge import config

    if args.print_default:
        print(config.default_toml(), end="")
        return 0
    if args.path:
        print(config.user_config_path())
        return 0
    config.load(args.check)
    print(f"{args.check}: ok")
    return 0


# (flag attribute, config key) for every flag that overrides a config setting.
_FLAG_KEYS = [
    ("name", "bridge.client_name"),
    ("inputs", "bridge.inputs"),
    ("connect", "bridge.connect"),
    ("bend", "bridge.bend_range"),
    ("midi_port", "bridge.midi_port"),
    ("midi_api", "bridge.midi_api"),
    ("record_midi", "bridge.record_midi"),
    ("events", "bridge.events"),
    ("beat_source", "bridge.beat_source"),
    ("clock_input", "bridge.clock_input"),
    ("clock_stop_on_loss", "bridge.clock_stop_on_loss"),
    ("osc", "osc.targets"),
    ("osc_prefix", "osc.prefix"),
    ("osc_rate", "osc.rate_hz"),
    ("osc_silence", "osc.silence"),
    ("osc_timetag", "osc.timetag"),
    ("ws", "ws.listen"),
    ("osc_in", "osc.control_in"),
    ("oscquery", "osc.oscquery"),
]


def _run_live(args: argparse.Namespace) -> int:
    from bridge import config, live, preflight

    path = config.settings_path(args.config)
    settings = config.load(path)
    for attr, key in _FLAG_KEYS:
        value = getattr(args, attr)
        if value is not None:
            flag = "--" + attr.replace("_", "-")
            config.set_value(settings, key, str(value) if isinstance(value, Path) else value, label=flag)
    fixed_tuning = None if args.tuning == "auto" else args.tuning
    fixed_scale = None if args.scale == "auto" else args.scale
    if fixed_tuning is not None or fixed_scale is not None:
        from bridge.tuning import with_notes

        settings["engine"] = with_notes(settings["engine"], fixed_tuning, fixed_scale)
        config.engine_config(settings["engine"])
    options = live.options_from_settings(settings)
    options.auto_tuning, options.auto_scale = args.tuning == "auto", args.scale == "auto"
    preflight.check_osc_targets(options.osc)
    if args.demo is not None:
        preflight.check_demo_audio(args.demo)
    if options.record_midi is not None:
        preflight.check_take_path(options.record_midi)
    if path is not None:
        print(f"daw-bridge: settings from {path}", file=sys.stderr)
    elif Path("daw-bridge.toml").is_file():
        # Older versions saved the TUI's settings here without reading them back.
        print(
            f"daw-bridge: note: ./daw-bridge.toml is not read unless given with --config; "
            f"settings are read from {config.user_config_path()}",
            file=sys.stderr,
        )
    ui = None
    if args.tui and sys.stdin.isatty() and sys.stdout.isatty():
        # The composition root: the one place where the bridge meets its UI.
        from tui.cli import run_on

        def ui(runner: live.LiveRunner) -> bool:
            return run_on(runner, args.config, path)

    return live.run(
        options,
        settings["engine"],
        ui=ui,
        demo=args.demo,
        duration=args.duration,
        control_port=args.control_port,
    )


if __name__ == "__main__":
    sys.exit(main())
