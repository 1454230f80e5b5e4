"""The one place that names the bridge's JACK ports and OSC addresses.

The live bridge, the DAW templates, the docs and the receiving examples must
agree on these names; they all import them from here (and a test compares the
templates with this module), so a rename happens in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal, TypedDict

CLIENT_NAME = "daw-bridge"
"""Default JACK client name (``--name`` overrides it)."""

GRAPH_CLIENT_SUFFIX = "-graph"
"""The client that watches and makes connections: ``daw-bridge-graph``."""
DEMO_CLIENT_SUFFIX = "-demo"
"""The demo player's client (``--demo``); before it opens, the player reads the
server's rate through a client of the same name with ``-probe`` added."""
_DEMO_PROBE_SUFFIX = DEMO_CLIENT_SUFFIX + "-probe"
RTMIDI_CLIENT_SUFFIX = "-rtmidi"
"""python-rtmidi's client for ``--midi-port``."""
_RENAME_MARGIN = len("-01")
"""jackd2 renames a client whose name is taken ``NAME-01``; the helpers then add their suffix to that."""

MIDI_OUT_PORT = "midi_out"
"""The JACK MIDI output port: input k plays on MIDI channel k."""
CLOCK_OUT_PORT = "clock_out"
"""The JACK MIDI output port of the MIDI beat clock (24 per beat, Start, Stop), nothing else."""

DEFAULT_OSC_PREFIX = "/bridge"
CONTROL_PORT = 9911
"""TCP port on 127.0.0.1 of the control channel (`run --control-port`, `tui --port`)."""

OscKind = Literal["pitch", "onset", "dynamics", "level", "note", "bands", "spectrum", "chroma", "beat", "tempo"]
OscType = Literal["f", "i"]

_PREFIX_RE = re.compile(r"(/[A-Za-z0-9_.\-]+)+")
"""One or more ``/word`` parts: no OSC pattern characters (``*?[]{},#``), no spaces."""


def input_port(k: int) -> str:
    """The name of audio input ``k`` (1-based): ``in_1``, ``in_2``, ..."""
    if k < 1:
        raise ValueError(f"input numbers start at 1, got {k}")
    return f"in_{k}"


def input_ports(n_inputs: int) -> list[str]:
    """The audio input port names of a bridge with ``n_inputs`` inputs."""
    return [input_port(k) for k in range(1, n_inputs + 1)]


class PortNames(TypedDict):
    input_ports: list[str]
    midi_port: str
    clock_port: str


def port_names(n_inputs: int) -> PortNames:
    """The port names `rust_engine.LiveBridge` registers, as its keyword arguments:
    the engine names no port itself."""
    return {"input_ports": input_ports(n_inputs), "midi_port": MIDI_OUT_PORT, "clock_port": CLOCK_OUT_PORT}


def validate_client_name(name: str) -> str:
    """Returns ``name`` if the bridge can open its JACK clients under it, else raises ValueError.

    JACK separates client and port with ``:``, and a newline or other control
    character breaks every tool that lists ports. The length limit is libjack's
    (``jack_client_name_size()``, 64 characters on jackd2) less the longest
    suffix a helper client adds, so a name that works for the bridge also works
    for its graph, demo and rtmidi clients.
    """
    if not name:
        raise ValueError("the JACK client name is empty")
    if ":" in name:
        raise ValueError(f"JACK client name {name!r} contains ':' (it separates client and port names)")
    if not name.isprintable():
        raise ValueError(f"JACK client name {name!r} contains a newline or another control character")
    import jack  # here, not at the top: `daw-bridge --help` must not load libjack

    suffix = max(
        len(RTMIDI_CLIENT_SUFFIX), _RENAME_MARGIN + len(GRAPH_CLIENT_SUFFIX), _RENAME_MARGIN + len(_DEMO_PROBE_SUFFIX)
    )
    # jackd2 says 65 bytes with the NUL, yet refuses 64 characters: one more off is right everywhere.
    longest = jack.client_name_size() - 2 - suffix
    if len(name.encode()) > longest:
        raise ValueError(
            f"JACK client name is {len(name.encode())} bytes long; at most {longest} fit JACK's limit "
            f"with the suffixes of the bridge's helper clients ({GRAPH_CLIENT_SUFFIX}, {_DEMO_PROBE_SUFFIX}, "
            f"{RTMIDI_CLIENT_SUFFIX}, and -01 should the name be taken)"
        )
    return name


@dataclass(frozen=True)
class OscArg:
    """One argument of an OSC message; ``name`` is also the Event attribute it comes from."""

    type: OscType
    name: str
    repeat: str = ""
    """For a list attribute, how many values it sends (``"N"``, ``"12"``); "" for one value."""

    @property
    def signature(self) -> str:
        """``f:hz``, or ``f:level x 12`` for a list."""
        return f"{self.type}:{self.name}" + (f" x {self.repeat}" if self.repeat else "")


@dataclass(frozen=True)
class OscMessageSpec:
    """An OSC message the bridge sends: its address suffix, arguments and meaning."""

    kind: OscKind
    args: tuple[OscArg, ...]
    meaning: str
    continuous: bool
    """Sent for every analysis hop, so rate-limited; the others are never dropped."""

    @property
    def signature(self) -> str:
        """The arguments as written in the docs: ``f:hz f:midi f:confidence``."""
        return " ".join(a.signature for a in self.args)


OSC_MESSAGES: dict[OscKind, OscMessageSpec] = {
    spec.kind: spec
    for spec in (
        OscMessageSpec(
            "pitch",
            (OscArg("f", "hz"), OscArg("f", "midi"), OscArg("f", "confidence")),
            "Detected pitch in Hz and as a fractional MIDI note (0 when unvoiced), "
            "with YIN confidence 0..1",
            continuous=True,
        ),
        OscMessageSpec(
            "onset",
            (OscArg("f", "strength"),),
            "An attack was detected (spectral-flux strength above the threshold); a slurred "
            "note change the flux missed is sent when the change is confirmed, tens of ms later",
            continuous=False,
        ),
        OscMessageSpec(
            "dynamics",
            (OscArg("f", "rms"), OscArg("f", "peak"), OscArg("f", "db"), OscArg("i", "velocity")),
            "Level of the latest hop: linear RMS and peak, RMS in dBFS, MIDI velocity 1..127",
            continuous=True,
        ),
        OscMessageSpec(
            "level",
            (OscArg("f", "db"),),
            "The RMS level in dBFS alone, sent with each dynamics message, for receivers that read "
            "only the first argument: REAPER sets a fader to it in dB (`TRACK_VOLUME f/bridge/level`)",
            continuous=True,
        ),
        OscMessageSpec(
            "note",
            (OscArg("i", "note"), OscArg("i", "velocity")),
            "Note on (velocity 1..127) or note off (velocity 0), same as the MIDI output",
            continuous=False,
        ),
        OscMessageSpec(
            "bands",
            (OscArg("f", "level", "N"),),
            "Spectrum in N log-spaced bands, lowest first (N = `engine.features.bands`, default 8, "
            "40 Hz-16 kHz), each 0..1 under a slow auto-gain, smoothed; on with `osc.bands`",
            continuous=True,
        ),
        OscMessageSpec(
            "spectrum",
            (OscArg("f", "centroid_hz"), OscArg("f", "flatness"), OscArg("f", "rolloff_hz")),
            "Spectral centroid in Hz (brightness), flatness 0..1 (0 a tone, about 0.56 white noise) and "
            "the 85% rolloff in Hz; 0 in silence; on with `osc.spectrum`",
            continuous=True,
        ),
        OscMessageSpec(
            "chroma",
            (OscArg("f", "level", "12"),),
            "Energy per pitch class C, C#, ... B, each over the strongest, 0..1, smoothed; "
            "on with `osc.chroma`",
            continuous=True,
        ),
        OscMessageSpec(
            "beat",
            (OscArg("i", "beat"), OscArg("f", "bpm")),
            "A beat, sent when the audio reaches it: its place in the bar (1 = downbeat, "
            "up to `beat.beats_per_bar`) and the tempo in BPM",
            continuous=False,
        ),
        OscMessageSpec(
            "tempo",
            (OscArg("f", "bpm"), OscArg("f", "confidence")),
            "The tracked tempo in BPM and its confidence 0..1, on every downbeat and when it "
            "changes by more than 2 %",
            continuous=False,
        ),
    )
}

FEATURE_KINDS: tuple[OscKind, ...] = ("bands", "spectrum", "chroma")
"""The OSC messages of the engine's spectral features: each is an engine event kind of the
same name, computed only when asked for (``engine.features.<kind>_enabled``)."""

EVENT_KIND_TO_OSC: dict[str, tuple[OscKind, ...]] = {
    "pitch": ("pitch",),
    "onset": ("onset",),
    "dynamics": ("dynamics", "level"),
    "note_on": ("note",),
    "note_off": ("note",),
    "bands": ("bands",),
    "spectrum": ("spectrum",),
    "chroma": ("chroma",),
    "beat": ("beat",),
    "tempo": ("tempo",),
}
"""Engine event kind to the OSC messages that carry it."""


def validate_prefix(prefix: str) -> str:
    """Returns ``prefix`` if it is a usable OSC address prefix, else raises ValueError.

    Pattern characters would make receivers treat our addresses as wildcards,
    so only plain ``/word/word`` prefixes are accepted.
    """
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(
            f"OSC prefix {prefix!r} must look like /word or /word/word "
            "(letters, digits, _ . -; no trailing slash)"
        )
    return prefix


def osc_address(prefix: str, input: int, n_inputs: int, kind: OscKind) -> str:
    """The address of ``kind`` for ``input`` (1-based).

    With one input the input number is left out (``/bridge/pitch``); with
    several it follows the prefix (``/bridge/2/pitch``), so a receiver can
    match one input or all of them with ``/bridge/*/pitch``.
    """
    if kind not in OSC_MESSAGES:
        raise ValueError(f"unknown OSC message kind {kind!r}")
    if not 1 <= input <= max(n_inputs, 1):
        raise ValueError(f"input {input} out of range 1..{n_inputs}")
    if n_inputs <= 1:
        return f"{prefix}/{kind}"
    return f"{prefix}/{input}/{kind}"


def osc_reference_markdown(prefix: str = DEFAULT_OSC_PREFIX) -> str:
    """The OSC address reference as one Markdown table, for the README and docs."""
    validate_prefix(prefix)
    rows = [
        "| Address | With several inputs | Arguments | Meaning |",
        "|---|---|---|---|",
    ]
    for spec in OSC_MESSAGES.values():
        rate = " Rate-limited (`--osc-rate`)." if spec.continuous else ""
        rows.append(
            f"| `{prefix}/{spec.kind}` | `{prefix}/<input>/{spec.kind}` "
            f"| `{spec.signature}` | {spec.meaning}.{rate} |"
        )
    return "\n".join(rows) + "\n"


# -- OSC control in ---------------------------------------------------------------------

CONTROL = "control"
"""The path under the OSC prefix where the controls live: ``/bridge/control/...``."""
@dataclass(frozen=True)
class ControlSpec:
    """One OSC control: its address suffix under ``<prefix>/control``, the OSC types it
    takes, its meaning, and for a number its range and unit (from the engine's table)."""

    path: str
    types: str
    """The type tags accepted, as the docs write them: ``f``, ``i|T|F``, ``s``, ``""`` for none."""
    meaning: str
    key: str | None = None
    """The engine setting (``onset.delta``) for a number; None for the other controls."""


@cache
def control_specs() -> tuple[ControlSpec, ...]:
    """Every control, the engine's live settings first (read from the engine on first use:
    `daw-bridge --help` must not load it)."""
    from bridge.params import PARAMS

    out = [
        ControlSpec(
            "/" + key.replace(".", "/"), "f",
            f"{p.doc} ({p.lo:g} to {p.hi:g}{' ' + p.unit if p.unit else ''})", key,
        )
        for key, p in PARAMS.items()
    ]
    out += [
        ControlSpec("/midi", "i|T|F", "MIDI output on (1, T) or off (0, F)"),
        ControlSpec("/osc", "i|T|F", "OSC output on (1, T) or off (0, F)"),
        ControlSpec(
            "/record", "s",
            "Start a MIDI take under this file name (letters, digits, . _ -, ending .mid) in the "
            "bridge's directory; never over an existing file or one the bridge writes",
        ),
        ControlSpec("/record/stop", "", "End the take being recorded"),
        ControlSpec("/tempo/halve", "", "Halve the tracked tempo (it was heard twice too fast)"),
        ControlSpec("/tempo/double", "", "Double the tracked tempo (it was heard twice too slow)"),
        ControlSpec("/tempo/hold", "i|T|F", "Hold the tempo (1, T) or let it follow the audio again (0, F)"),
        ControlSpec("/tempo/tap", "", "A tapped beat, at the time the message arrives: four taps set the tempo"),
    ]
    return tuple(out)


def control_address(prefix: str, spec: ControlSpec) -> str:
    """``<prefix>/control<spec.path>``: where the bridge takes that control (`run --osc-in`)."""
    return f"{prefix}/{CONTROL}{spec.path}"


def control_addresses(prefix: str) -> dict[str, ControlSpec]:
    """Every control-in address under `prefix`, in the docs' order."""
    return {control_address(prefix, spec): spec for spec in control_specs()}


def control_reference_markdown(prefix: str = DEFAULT_OSC_PREFIX) -> str:
    """The control-in address reference (`run --osc-in`) as one Markdown table."""
    validate_prefix(prefix)
    rows = ["| Address | Arguments | Meaning |", "|---|---|---|"]
    for address, spec in control_addresses(prefix).items():
        types = spec.types.replace("|", "\\|") or "-"  # a table cell: the bar escaped
        rows.append(f"| `{address}` | `{types}` | {spec.meaning}. |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    # `python -m bridge.addresses` prints the tables for pasting into docs.
    print(osc_reference_markdown())
    print(control_reference_markdown(), end="")
