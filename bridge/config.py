"""The TOML configuration file: one place that knows every setting, its
default, its check and its comment.

``[bridge]`` and ``[osc]`` configure the live bridge; ``[engine]`` (with its
``pitch``, ``onset``, ``dynamics`` and ``notes`` sub-tables) is handed to the
Rust engine, which validates it itself. Every error names the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rust_engine

from bridge import addresses
from bridge.errors import BridgeError
from bridge.osc_out import parse_target


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    comment: str
    check: Callable[[Any], str | None]


def _int_range(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        return None if ok else f"must be a whole number from {lo} to {hi}"

    return check


def _float_range(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi
        return None if ok else f"must be a number from {lo:g} to {hi:g}"

    return check


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def _regex(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a string"
    try:
        re.compile(v)
    except re.error as e:
        return f"is not a valid regular expression ({e})"
    return None


def _osc_prefix(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a string"
    try:
        addresses.validate_prefix(v)
    except ValueError as e:
        return str(e)
    return None


def _targets(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
        return 'must be a list of "HOST:PORT" strings'
    for t in v:
        try:
            parse_target(t)
        except ValueError as e:
            return str(e)
    return None


def _choice(*options: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of: {', '.join(options)}"

    return check


SETTINGS = [
    Setting("bridge.client_name", addresses.CLIENT_NAME, "JACK client name", _text),
    Setting("bridge.inputs", 1, "mono audio inputs in_1 ... in_N, each with its own engine; input k on MIDI channel (k-1) % 16", _int_range(1, 64)),
    Setting("bridge.connect", "", 'regex of JACK output ports to feed the inputs, e.g. "ardour:Master/audio_out" or "REAPER:out1"; "" leaves connections alone', _regex),
    Setting("bridge.bend_range", 0.0, "pitch bend range in semitones for the cents deviation; 0 sends no pitch bend", _float_range(0.0, 48.0)),
    Setting("bridge.midi_port", "", 'also send notes to this rtmidi port (name substring), "virtual" for a port of our own; "" for the JACK MIDI port only', _text),
    Setting("bridge.midi_api", "jack", "MIDI system for midi_port", _choice("jack", "alsa")),
    Setting("bridge.record_midi", "", "record the take to this MIDI file; \"\" records nothing", _text),
    Setting("bridge.checkpoint_s", 10.0, "while recording, save the take this often (seconds): a crash or a full disk later keeps it", _float_range(1.0, 3600.0)),
    Setting("bridge.events", "", "log every event to this JSON-lines file; \"\" logs nothing", _text),
    Setting("osc.targets", [], 'where OSC goes: ["127.0.0.1:9000", "192.168.1.20:7000"]', _targets),
    Setting("osc.prefix", addresses.DEFAULT_OSC_PREFIX, "address prefix: /bridge/pitch, /bridge/onset, ...", _osc_prefix),
    Setting("osc.rate_hz", 100.0, "most pitch and dynamics messages per second per input (onsets and notes are never dropped)", _float_range(1.0, 1000.0)),
    Setting("osc.silence", "once", 'in silence (pitch unvoiced, level below notes.silence_db): "once" sends one last pitch and dynamics message, then nothing until sound returns; "stream" keeps sending', _choice("once", "stream")),
    Setting("osc.timetag", "block", 'bundle timetags: "block" stamps each with its JACK period\'s time (already past on arrival); "immediate" for receivers that schedule by timetag (SuperCollider)', _choice("block", "immediate")),
]
_BY_KEY = {s.key: s for s in SETTINGS}


def load(path: Path | None) -> dict[str, Any]:
    """Reads and checks a config file; returns {"bridge": ..., "osc": ..., "engine": ...}
    with defaults filled in. `None` gives the defaults."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise BridgeError(f"cannot read config '{path}': {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise BridgeError(f"config '{path}' is not valid TOML: {e}") from None
    where = f"config '{path}': " if path else ""
    out: dict[str, Any] = {"bridge": {}, "osc": {}, "engine": {}}
    for s in SETTINGS:
        section, name = s.key.split(".")
        out[section][name] = s.default
    for section, table in data.items():
        if section == "engine":
            if not isinstance(table, dict):
                raise BridgeError(f"{where}'engine' must be a table")
            out["engine"] = table
            continue
        if section not in ("bridge", "osc") or not isinstance(table, dict):
            raise BridgeError(f"{where}unknown table '{section}' (expected bridge, osc, engine)")
        for name, value in table.items():
            set_value(out, f"{section}.{name}", value, where)
    try:
        rust_engine.EngineConfig(out["engine"])
    except ValueError as e:
        raise BridgeError(f"{where}engine.{e}" if not str(e).startswith("unknown") else f"{where}engine: {e}") from None
    return out


def set_value(settings: dict[str, Any], key: str, value: Any, where: str = "", label: str | None = None) -> None:
    """Checks and sets one [bridge] / [osc] value; BridgeError names the key
    (or `label`, e.g. the command-line flag that gave the value)."""
    setting = _BY_KEY.get(key)
    if setting is None:
        raise BridgeError(f"{where}unknown key '{key}'")
    problem = setting.check(value)
    if problem:
        raise BridgeError(f"{where}{label or key}: {problem}")
    section, name = key.split(".")
    settings[section][name] = value


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


ENGINE_COMMENTS = {
    "sample_rate": "offline only: the live bridge runs at the JACK server's rate",
    "hop": "analysis hop in samples: one pitch and one dynamics event per hop",
    "pitch.fmin_hz": "lowest pitch searched (sets the window: two periods)",
    "pitch.fmax_hz": "highest pitch searched",
    "pitch.yin_threshold": "YIN absolute threshold: lower is stricter",
    "pitch.window": "analysis buffer in samples; 0 derives it from fmin_hz",
    "onset.window": "spectral flux FFT size (power of two)",
    "onset.compression": "log compression of magnitudes",
    "onset.delta": "onset sensitivity: threshold above the moving median (lower is more sensitive)",
    "onset.median_ms": "moving median length",
    "onset.min_ioi_ms": "minimum time between onsets",
    "dynamics.velocity_floor_db": "RMS level (dBFS) given velocity 1",
    "dynamics.velocity_ceil_db": "RMS level (dBFS) given velocity 127",
    "dynamics.velocity_curve": "exponent of the dB-to-velocity curve (<1 lifts soft notes)",
    "dynamics.envelope_release_ms": "release of the smoothed envelope",
    "notes.silence_db": "silence gate: quieter hops start no notes; open ones end 12 dB lower",
    "notes.min_confidence": "pitch confidence needed for a note (0..1)",
    "notes.hysteresis_cents": "how far past the half-semitone a pitch must move to change note",
    "notes.change_ms": "how long a new pitch must last to change note",
    "notes.min_note_ms": "shortest note",
    "notes.release_ms": "silence or low confidence this long ends a note",
    "notes.correct_ms": "a new pitch settling this soon after a note-on corrects it (0: never)",
}


def default_toml() -> str:
    """The default configuration as a commented TOML file."""
    lines = ["# daw-bridge configuration. Command-line flags override these values.", ""]
    section = ""
    for s in SETTINGS:
        sec, name = s.key.split(".")
        if sec != section:
            lines += ([""] if section else []) + [f"[{sec}]"]
            section = sec
        lines += [f"# {s.comment}", f"{name} = {_toml_value(s.default)}"]
    defaults = rust_engine.EngineConfig.defaults()
    lines += ["", "[engine]"]
    for name, value in defaults.items():
        if not isinstance(value, dict):
            lines += [f"# {ENGINE_COMMENTS[name]}", f"{name} = {_toml_value(value)}"]
    for sub, table in defaults.items():
        if isinstance(table, dict):
            lines += ["", f"[engine.{sub}]"]
            for name, value in table.items():
                lines += [f"# {ENGINE_COMMENTS[f'{sub}.{name}']}", f"{name} = {_toml_value(value)}"]
    return "\n".join(lines) + "\n"
