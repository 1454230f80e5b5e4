"""The TOML configuration file: one place that knows every setting, its
default, its check and its comment.

``[bridge]``, ``[osc]`` and ``[ws]`` configure the live bridge; ``[engine]`` (with its
``pitch``, ``onset``, ``dynamics``, ``notes``, ``features`` and ``beat`` sub-tables) is handed to the
Rust engine, which validates it itself. Every error names the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable
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


def _client_name(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a string"
    try:
        addresses.validate_client_name(v)
    except ValueError as e:
        return str(e)
    return None


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


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _listen(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a string"
    if v:
        from bridge.ws import parse_listen

        try:
            parse_listen(v)
        except ValueError as e:
            return str(e)
    return None


def _choice(*options: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of: {', '.join(options)}"

    return check


SETTINGS = [
    Setting("bridge.client_name", addresses.CLIENT_NAME, "JACK client name", _client_name),
    Setting("bridge.inputs", 1, "mono audio inputs in_1 ... in_N, each with its own engine; input k on MIDI channel (k-1) % 16", _int_range(1, rust_engine.MAX_INPUTS)),
    Setting("bridge.connect", "", 'regex of JACK output ports to feed the inputs, e.g. "ardour:Master/audio_out" or "REAPER:out1"; "" leaves connections alone', _regex),
    Setting("bridge.bend_range", 0.0, "pitch bend range in semitones for the cents deviation; 0 sends no pitch bend", _float_range(0.0, rust_engine.MAX_BEND_RANGE)),
    Setting("bridge.midi_port", "", 'also send notes to this rtmidi port (name substring), "virtual" for a port of our own; "" for the JACK MIDI port only', _text),
    Setting("bridge.midi_api", "jack", "MIDI system for midi_port", _choice("jack", "alsa")),
    Setting("bridge.record_midi", "", "record the take to this MIDI file; \"\" records nothing", _text),
    Setting("bridge.checkpoint_s", 10.0, "while recording, save the take this often (seconds): a crash or a full disk later keeps it", _float_range(1.0, 3600.0)),
    Setting("bridge.events", "", "log every event to this JSON-lines file; \"\" logs nothing", _text),
    Setting("bridge.beat_source", "auto", 'where beats, tempo and the MIDI clock come from: "audio" (the beat tracker), "transport" (JACK transport from a timebase master, while it rolls), "auto" (the transport while it rolls with bar and beat, else the audio)', _choice("audio", "transport", "auto")),
    Setting("bridge.clock_input", 1, "the input whose beats drive the MIDI clock on clock_out (and which transport beats are reported for)", _int_range(1, rust_engine.MAX_INPUTS)),
    Setting("bridge.clock_stop_on_loss", True, "send MIDI Stop on clock_out when the beat is lost (two beats missed); false keeps the clock running at the last tempo", _bool),
    Setting("osc.targets", [], 'where OSC goes: ["127.0.0.1:9000", "192.168.1.20:7000"]', _targets),
    Setting("osc.prefix", addresses.DEFAULT_OSC_PREFIX, "address prefix: /bridge/pitch, /bridge/onset, ...", _osc_prefix),
    Setting("osc.rate_hz", 100.0, "most pitch and dynamics messages per second per input (onsets and notes are never dropped)", _float_range(1.0, 1000.0)),
    Setting("osc.silence", "once", 'in silence (pitch unvoiced, level below notes.silence_db): "once" sends one last pitch and dynamics message, then nothing until sound returns; "stream" keeps sending', _choice("once", "stream")),
    Setting("osc.bands", False, "send /bridge/bands: the spectrum in engine.features.bands bands, 0..1 (the engine computes them only when asked)", _bool),
    Setting("osc.spectrum", False, "send /bridge/spectrum: centroid (Hz), flatness (0..1), rolloff (Hz)", _bool),
    Setting("osc.chroma", False, "send /bridge/chroma: 12 pitch classes, 0..1", _bool),
    Setting("osc.timetag", "block", 'bundle timetags: "block" stamps each with its JACK period\'s time (already past on arrival); "immediate" for receivers that schedule by timetag (SuperCollider)', _choice("block", "immediate")),
    Setting("osc.control_in", "", 'receive live controls as OSC (/bridge/control/...) on UDP "[HOST:]PORT" (host 127.0.0.1 unless given); "" receives none', _listen),
    Setting("osc.oscquery", "", 'serve the OSCQuery namespace (HTTP JSON, LISTEN over WebSocket) on "[HOST:]PORT" (host 127.0.0.1 unless given); without control_in the controls get a free UDP port on the same host; "" serves none', _listen),
    Setting("ws.listen", "", 'serve the browser page and the WebSocket feed on "[HOST:]PORT" (host 127.0.0.1 unless given); "" serves nothing', _listen),
    Setting("ws.rate_hz", 60.0, "most pitch, dynamics and feature messages per second per input and client on the WebSocket (notes and onsets are never dropped)", _float_range(1.0, 1000.0)),
]
_BY_KEY = {s.key: s for s in SETTINGS}


def default(key: str) -> Any:
    """The default of one [bridge] / [osc] / [ws] setting (`"osc.rate_hz"` -> 100.0)."""
    return _BY_KEY[key].default


def user_config_path() -> Path:
    """The per-user config file: ``$XDG_CONFIG_HOME/daw-bridge/config.toml``, where
    ``XDG_CONFIG_HOME`` defaults to ``~/.config`` (and a relative value is ignored,
    as the XDG spec says). `run` reads it, the TUI's `w` key saves to it."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "daw-bridge" / "config.toml"


def settings_path(explicit: Path | None) -> Path | None:
    """The file `run` reads: ``--config`` when given, else the per-user file when it exists."""
    if explicit is not None:
        return explicit
    user = user_config_path()
    return user if user.is_file() else None


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
    out: dict[str, Any] = {}
    for s in SETTINGS:
        section, name = s.key.split(".")
        out.setdefault(section, {})[name] = s.default
    out["engine"] = {}
    for section, table in data.items():
        if section == "engine":
            if not isinstance(table, dict):
                raise BridgeError(f"{where}'engine' must be a table")
            out["engine"] = table
            continue
        if section not in out or not isinstance(table, dict):
            raise BridgeError(f"{where}unknown table '{section}' (expected {', '.join(out)})")
        for name, value in table.items():
            set_value(out, f"{section}.{name}", value, where)
    engine_config(out["engine"], where)
    return out


def engine_config(engine: dict[str, Any], where: str = "") -> rust_engine.EngineConfig:
    """The engine's config from an [engine] table; BridgeError names the key as
    the file does (`engine.pitch.fmin_hz: must be >= 20 Hz`)."""
    try:
        return rust_engine.EngineConfig(engine)
    except rust_engine.ConfigError as e:
        raise BridgeError(f"{where}engine.{e.key}: {e.reason}") from None


def with_features(engine: dict[str, Any], kinds: Iterable[str]) -> dict[str, Any]:
    """A copy of an [engine] table that turns on the engine's feature events
    ``kinds`` (``"bands"``, ``"spectrum"``, ``"chroma"``): the engine computes
    them only when an output asks for them."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in engine.items()}
    features = out.setdefault("features", {})
    if not isinstance(features, dict):
        raise BridgeError("engine.features must be a table")
    for kind in kinds:
        features[f"{kind}_enabled"] = 1
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
    comments = dict(rust_engine.EngineConfig.docs())
    lines += ["", "[engine]"]
    for name, value in defaults.items():
        if not isinstance(value, dict):
            lines += [f"# {comments[name]}", f"{name} = {_toml_value(value)}"]
    for sub, table in defaults.items():
        if isinstance(table, dict):
            lines += ["", f"[engine.{sub}]"]
            for name, value in table.items():
                lines += [f"# {comments[f'{sub}.{name}']}", f"{name} = {_toml_value(value)}"]
    return "\n".join(lines) + "\n"
