"""Streaming audio analysis for daw-bridge: pitch (YIN), onsets (spectral flux),
dynamics and note segmentation, implemented in Rust.

Every analysis runs hop by hop on an internal buffer, so the events do not
depend on how the audio is split into blocks.
"""

from typing import Any, Literal, Self, TypeAlias, TypedDict, final

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_BEND_RANGE", "MAX_INPUTS", "SCALE_MODES", "Analyzer", "ConfigError", "EngineConfig", "Event", "LiveBridge", "Player", "marking_for_db"]

MAX_INPUTS: int
"""Most inputs one LiveBridge takes (input k plays on MIDI channel (k - 1) % 16)."""
MAX_BEND_RANGE: float
"""Widest ``bend_range`` a LiveBridge takes, in semitones."""
SCALE_MODES: list[str]
"""Scale modes by ``notes.scale_mode``: index 0 is "chromatic" (no snapping), then "major", "minor", ..."""

# Stub-only names start with "_": they do not exist at run time.
_EventKind: TypeAlias = Literal[
    "pitch", "onset", "dynamics", "note_on", "note_off", "bands", "spectrum", "chroma", "beat", "tempo"
]

class ConfigError(ValueError):
    """A setting the engine cannot work with (or cannot change while running).

    ``str(e)`` is the whole message (``"pitch.fmin_hz: must be >= 20 Hz"``);
    ``key`` names the setting as in the TOML ``[engine]`` table and ``reason``
    says what is wrong, so callers need not parse the message.
    """

    key: str
    reason: str

class _LiveParam(TypedDict):
    """A setting that may change while the engine runs."""

    key: str
    """Dotted name, e.g. ``"notes.silence_db"``."""
    lo: float
    hi: float
    """The inclusive range the engine accepts."""
    unit: str
    """Unit for display (``"dB"``), empty for plain numbers."""
    whole: bool
    """Whole numbers only (``notes.scale_root``, ``notes.scale_mode``)."""
    doc: str
    default: float

@final
class EngineConfig:
    """The engine's settings, validated as a whole.

    ``values`` is a nested mapping in the layout of the TOML ``[engine]`` table,
    e.g. ``{"hop": 128, "pitch": {"fmin_hz": 60.0}}``; missing keys keep their
    defaults. ``hop`` and ``onset.window`` count samples: left at 0 (the default)
    they follow ``sample_rate`` (128 and 1024 at 44.1/48 kHz, doubling per octave
    of rate), as does ``pitch.window`` through ``fmin_hz``. Raises ``ConfigError``
    naming the key (``"pitch.fmin_hz: must be >= 20 Hz"``, ``"unknown key
    'pitch.foo'"``) for a bad or unknown setting.
    """

    def __new__(cls, values: dict[str, Any] | None = None) -> Self: ...
    @staticmethod
    def defaults() -> dict[str, Any]:
        """The default settings as a nested dict."""
    @staticmethod
    def docs() -> list[tuple[str, str]]:
        """Every setting's dotted name and what it does, in file order."""
    @staticmethod
    def live_params() -> list[_LiveParam]:
        """The settings ``set_param`` may change while running, with their ranges."""
    def to_dict(self) -> dict[str, Any]:
        """These settings as a nested dict (round-trips through ``EngineConfig``)."""
    @property
    def sample_rate(self) -> int: ...
    @property
    def hop(self) -> int:
        """The hop in use, in samples (derived from the rate when left at 0)."""

@final
class Event:
    """One analysis result.

    ``sample`` is the stream position of the audio the event describes (a
    note-on sits at its onset); ``emit_sample`` is the position at which the
    engine knew it, i.e. the frame where a live bridge sends it. Fields that do
    not belong to ``kind`` are 0 / False / "".
    """

    kind: _EventKind
    sample: int
    emit_sample: int
    t: float
    """``sample`` in seconds."""
    hz: float
    midi: float
    confidence: float
    voiced: bool
    strength: float
    rms: float
    peak: float
    db: float
    """RMS level of the hop in dBFS (floored at -120)."""
    envelope_db: float
    velocity: int
    marking: str
    """Dynamic marking of the smoothed envelope, "ppp" ... "fff"."""
    note: int
    band_db: list[float]
    """``bands``: level of each band in dBFS (mean square in the band, floored at -120)."""
    centroid_hz: float
    """``spectrum``: magnitude-weighted mean frequency (0 in silence)."""
    flatness: float
    """``spectrum``: geometric over arithmetic mean of the power spectrum, 0..1 (about 0.56 for white noise)."""
    rolloff_hz: float
    """``spectrum``: frequency below which 85% of the energy lies."""
    chroma: list[float]
    """``chroma``: share of the spectral peaks' energy per pitch class, C first (sums to 1, or all 0)."""
    level: list[float]
    """``bands``, ``spectrum`` (centroid, flatness, rolloff), ``chroma``: the
    visual-ready values in 0..1, auto-gained and smoothed; empty for other kinds."""
    beat: int
    """Beat only: its place in the bar, 1 .. ``beat.beats_per_bar``."""
    bpm: float
    """Beat and tempo: the tracked tempo in beats per minute."""
    next_sample: int
    """Beat only: where the next beat is predicted (``sample`` plus one period)."""
    next_t: float
    """``next_sample`` in seconds."""
    input: int
    """Live only: the input (1-based) that produced it; 0 offline."""
    frame: int
    """Live only: JACK frame time (wrapping 32-bit) at which it was sent; 0 offline."""
    block_frame: int
    """Live only: JACK frame time of the first frame of the period it came from; 0 offline."""
    def to_dict(self) -> dict[str, Any]:
        """The JSON-lines form documented in the README's event schema."""

@final
class Analyzer:
    """A streaming analyser for one mono channel.

    Allocates everything in its constructor; ``process`` allocates nothing in
    Rust and releases the GIL while it computes.
    """

    def __new__(cls, config: EngineConfig | None = None) -> Self: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def hop(self) -> int: ...
    @property
    def position(self) -> int:
        """Samples consumed so far."""
    @property
    def latency_samples(self) -> int:
        """Delay of the pitch stream: how far ``sample`` trails ``emit_sample``."""
    def process(self, block: npt.NDArray[np.float32]) -> list[Event]:
        """Analyses the next block (1-D, C-contiguous float32, any length).

        NaN and Inf samples are treated as silence. Raises ``TypeError`` for a
        wrong dtype and ``ValueError`` for a non-contiguous or 2-D array.
        """
    def flush(self) -> list[Event]:
        """Ends the stream: analyses the buffered tail and closes any open note."""
    def all_notes_off(self) -> list[Event]:
        """Closes the open note, if any, at the current position."""
    def reset(self) -> None:
        """Forgets all state (open notes are dropped: call ``all_notes_off`` first)."""
    def set_param(self, key: str, value: float) -> None:
        """Changes one setting of ``EngineConfig.live_params()``. Raises
        ``ConfigError`` for another key or a value out of range."""

@final
class LiveBridge:
    """A JACK client whose process callback runs one engine per input.

    Opens a client (never starting a server; the server is chosen as libjack
    does, e.g. by ``JACK_DEFAULT_SERVER``), registers one audio port per name in
    ``input_ports`` and the MIDI port ``midi_port`` (``bridge.addresses`` names
    them) and activates it. The callback writes note-on / note-off (and
    pitch bend when ``bend_range`` > 0) at the frame where each became known,
    input k (1 to 64) on MIDI channel (k - 1) % 16. On ``clock_port`` it writes
    MIDI clock (24 per beat, Start on the first beat, Stop when the beat is lost
    if ``clock_stop_on_loss``) following input ``clock_input``'s beats; with
    ``beat_source`` "transport" (or "auto" while the JACK transport rolls with
    bar and beat from a timebase master) the beats, tempo and clock follow the
    transport instead. It never blocks or allocates: events leave
    through a lock-free ring that ``poll`` drains, controls enter through
    another. Connections are the caller's job.

    ``owed_note_offs`` lists (input, note) pairs left sounding by a previous
    client (e.g. before a server loss); they are sent in the first cycle after
    ``midi_out`` gets a reader, which a thread of the bridge's own looks for
    every 5 ms (the callback does not ask JACK: PipeWire's libjack locks there).
    Raises ``RuntimeError`` when no server can be reached, ``ConfigError`` for
    bad settings and ``ValueError`` for a wrong number of ports.
    """

    def __new__(
        cls,
        client_name: str,
        inputs: int,
        config: EngineConfig | None = None,
        *,
        input_ports: list[str],
        midi_port: str,
        clock_port: str,
        bend_range: float = 0.0,
        owed_note_offs: list[tuple[int, int]] = ...,
        queue_capacity: int = 65536,
        beat_source: str = "auto",
        clock_input: int = 1,
        clock_stop_on_loss: bool = True,
    ) -> Self: ...
    @property
    def name(self) -> str:
        """The client name the server gave (it may add a suffix)."""
    @property
    def sample_rate(self) -> int: ...
    @property
    def buffer_size(self) -> int: ...
    @property
    def inputs(self) -> int: ...
    @property
    def server_lost(self) -> bool:
        """True once the server has shut the client down."""
    def frame_time(self) -> int:
        """The server's current frame time (wrapping 32-bit)."""
    def poll(self) -> list[Event]:
        """Takes the events produced since the last call (never blocks)."""
    def set_param(self, key: str, value: float) -> None:
        """Changes a setting of ``EngineConfig.live_params()`` on every input;
        ``ConfigError`` for another key or a value out of range."""
    def set_midi_enabled(self, enabled: bool) -> None:
        """Mutes or unmutes MIDI output; muting sends note-offs for sounding notes."""
    def all_notes_off(self) -> None:
        """Asks the callback to close every open note in its next cycle."""
    def scale_tempo(self, factor: float) -> None:
        """Multiplies every input's tracked tempo by ``factor`` (2 doubles, 0.5
        halves it, within ``beat.min_bpm``..``beat.max_bpm``); the tracker stays at
        that metrical level. ``ValueError`` unless ``factor`` > 0."""
    def hold_tempo(self, held: bool) -> None:
        """Freezes every input's tracked tempo (the beats keep their phase), or lets it follow again."""
    def tap(self, frame: int) -> None:
        """A tapped beat at JACK frame time ``frame`` (usually just past): from the
        second tap within 1.5 slowest beats, the tempo is the taps' mean interval
        (up to 4 taps) and the next beat falls a beat after the last tap."""
    def active_notes(self) -> list[int | None]:
        """The note sounding on the MIDI port, per input."""
    def stats(self) -> dict[str, Any]:
        """xruns (reported by the server), skipped_periods (periods the server ran
        without the bridge: PipeWire reports these as no xrun), cycles,
        dropped_events, midi_lost, max_cycle_us, dsp_load, server_lost."""
    def close(self) -> list[Event]:
        """Sends note-offs for sounding notes (server permitting), deactivates
        and closes the client; returns the events not yet polled. It waits
        without the GIL, and any other call on this object meanwhile raises
        ``RuntimeError`` ("Already mutably borrowed"): use it from one thread."""

@final
class Player:
    """A JACK client that plays audio into the graph and records the MIDI that
    comes back: the "DAW" of the tests and benchmarks, and the demo's feed.

    Its process callback is Rust and neither allocates nor locks. Audio plays
    from the next period on, whole, and ``start_frame`` tells the JACK frame
    time of its first sample; or, given ``at_frame``, it is locked to frame
    time: the period starting at frame ``t`` gets sample ``t - at_frame``, so a
    missed period leaves a hole rather than shifting what follows (for latency
    measurements; a jump of the frame clock, as when the period size changes,
    chops it). MIDI arriving on the
    inputs is kept with its frame time, through a preallocated ring emptied by
    a thread of its own every 5 ms, so capture does not depend on this
    process getting the CPU. Opens a client (never starting a server) with
    audio outputs ``outputs`` (all playing the same audio) and MIDI inputs
    ``midi_inputs`` (by default ``out`` and ``midi_in``), and activates it, silent. Raises ``RuntimeError`` when no
    server can be reached, ``ValueError`` for bad port lists.

    Playing into a client and reading its MIDI from the same player makes a
    loop in the graph, which JACK breaks by delaying one connection a period:
    where that period matters (latency benchmarks), use two players.
    """

    def __new__(
        cls,
        name: str,
        outputs: list[str] = ...,
        midi_inputs: list[str] = ...,
        midi_capacity: int = 65536,
    ) -> Self: ...
    @property
    def name(self) -> str:
        """The client's name in the graph (the server may add a suffix)."""
    @property
    def sample_rate(self) -> int: ...
    @property
    def buffer_size(self) -> int: ...
    @property
    def outputs(self) -> list[str]:
        """Full names of the audio outputs."""
    @property
    def midi_inputs(self) -> list[str]:
        """Full names of the MIDI inputs."""
    def play(self, audio: npt.NDArray[np.float32], loop: bool = False, at_frame: int | None = None) -> None:
        """Plays ``audio`` (1-D float32, at the server's rate) from the start of
        the next period, or locked to frame time from ``at_frame``; replaces what was playing."""
    def stop(self) -> None:
        """Silence from the next period on."""
    @property
    def start_frame(self) -> int | None:
        """Frame time of the last play's first sample, once its first period has begun."""
    @property
    def finished(self) -> bool:
        """Whether the last play (not looped) has played its last sample."""
    def wait_finished(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds, without the GIL, for the last play to end."""
    def midi(self, input: int | None = None) -> list[tuple[int, bytes]]:
        """(frame time, message) of every MIDI event received so far on MIDI input
        ``input`` (an index into ``midi_inputs``), or on all of them, in arrival order."""
    def frame_time(self) -> int:
        """The server's current frame time (wrapping 32-bit)."""
    def connect(self, source: str, destination: str) -> None:
        """Connects two ports by full name; ``RuntimeError`` when JACK refuses."""
    def disconnect(self, source: str, destination: str) -> None: ...
    def connections(self, port: str) -> list[str]:
        """Full names of the ports connected to ``port``."""
    def ports(self, pattern: str) -> list[str]:
        """Full names of the ports matching the regular expression ``pattern``."""
    def stats(self) -> dict[str, Any]:
        """cycles, skipped_periods (periods the server ran without the player), short_steps
        (frame clock steps shorter than a period: re-synced after an xrun), xruns
        (reported by the server, anywhere in the graph), midi_dropped (ring full),
        midi_skipped (messages over 3 bytes), server_lost."""
    def close(self) -> None:
        """Deactivates and closes the client; ``midi()`` stays readable."""

def marking_for_db(db: float) -> str:
    """The dynamic marking ("ppp" ... "fff") the engine gives an envelope level in dBFS."""
