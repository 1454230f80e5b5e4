"""Offline analysis: an audio file streamed through the engine, block by block.

This is the same streaming path the live bridge uses, so a file analysed here
gives the events the bridge would have produced for the same audio. Outputs are
written to a temporary file beside the target and renamed only on success, so
a failed run never leaves a partial file behind. The input may be a pipe
(`mkfifo`, `<(sox ...)`): it is read as a stream, as libsndfile reads pipes,
in constant memory.
"""

from __future__ import annotations

import bisect
import json
import os
import select
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Self

import mido
import numpy as np
import soundfile as sf
from rust_engine import Analyzer, ConfigError, EngineConfig, Event

from bridge import tuning as tuning_
from bridge.bend import BEND_CENTRE, BEND_STEP, bend_value
from bridge.errors import BridgeError

MAX_BLOCK = 1 << 20
"""Largest --block accepted: one block is held in memory at a time."""

TICKS_PER_BEAT = 480
TEMPO = mido.bpm2tempo(120)

_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


class AnalysisError(BridgeError):
    """The input cannot be analysed or an output cannot be written."""


@dataclass(frozen=True)
class Note:
    """A note-on paired with its note-off; times in seconds."""

    note: int
    start: float
    end: float
    velocity: int

    @property
    def name(self) -> str:
        """Scientific pitch name, MIDI 60 = "C4"."""
        return note_name(self.note)


@dataclass(frozen=True)
class Result:
    """What one analysis found, for the CLI's report."""

    sample_rate: int
    frames: int
    channels: int
    event_count: int
    notes: list[Note]
    tuning_hz: float = 440.0
    """The A4 reference the notes were read against."""
    scale: tuning_.Scale = (0, 0)
    """The scale they were snapped to ((0, 0): chromatic)."""

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def note_name(midi: int) -> str:
    """Scientific pitch name, MIDI 60 = "C4", 61 = "C#4"."""
    return f"{_NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def analyze_file(
    path: Path,
    *,
    block: int = 1024,
    settings: dict[str, Any] | None = None,
    midi_out: Path | None = None,
    events_out: Path | None = None,
    tuning: float | Literal["auto"] | None = None,
    scale: tuning_.Scale | Literal["auto"] | None = None,
    bend_range: float = 0.0,
) -> Result:
    """Streams ``path`` through a new Analyzer and writes the requested outputs.

    The engine's sample rate is the file's; every other setting comes from
    ``settings`` (the ``[engine]`` table layout) or the engine defaults.
    ``tuning`` (A4 in Hz) and ``scale`` override the table's; ``"auto"``
    estimates them from a first pass over the file (see bridge/tuning.py).
    ``bend_range`` > 0 adds pitch bend for the cents deviation to the MIDI
    file, as ``run --bend`` sends it. Raises AnalysisError for unreadable
    input, bad settings or unwritable outputs.
    """
    if not 1 <= block <= MAX_BLOCK:
        raise AnalysisError(f"--block must be from 1 to {MAX_BLOCK}, got {block}")
    for out in (midi_out, events_out):
        if out is not None and out.exists() and path.exists() and out.samefile(path):
            raise AnalysisError(f"output '{out}' would overwrite the input")
    if (
        midi_out is not None
        and events_out is not None
        and midi_out.resolve() == events_out.resolve()
    ):
        raise AnalysisError("--midi and --events name the same file")
    if tuning_.AUTO in (tuning, scale):
        tuning, scale = _estimate(path, block, settings, tuning, scale)
    settings = tuning_.with_notes(settings, None if tuning == tuning_.AUTO else tuning,
                                  None if scale == tuning_.AUTO else scale)

    with _open_audio(path) as audio, ExitStack() as outputs:
        # A pipe's length is not known until it ends (libsndfile reports a huge one).
        if audio.seekable() and audio.frames == 0:
            raise AnalysisError(f"'{path}' contains no audio")
        config = _engine_config(settings, audio.samplerate)
        events_file = outputs.enter_context(_AtomicFile(events_out)) if events_out else None
        midi_file = outputs.enter_context(_AtomicFile(midi_out)) if midi_out else None

        analyzer = Analyzer(config)
        note_events: list[Event] = []
        pitches: list[Event] = []
        count = 0
        frames = [0]
        for events in _stream(analyzer, audio, block, frames):
            count += len(events)
            for event in events:
                if event.kind in ("note_on", "note_off"):
                    note_events.append(event)
                elif bend_range > 0 and event.kind == "pitch" and event.voiced:
                    pitches.append(event)
                if events_file is not None:
                    events_file.write(json.dumps(event.to_dict(), allow_nan=False) + "\n")
        if frames[0] == 0:
            raise AnalysisError(f"'{path}' contains no audio")
        note_events = without_retracted(note_events)
        notes = pair_notes(note_events)
        if midi_file is not None:
            midi_file.stream.close()
            bends = bend_messages(notes, pitches, bend_range) if bend_range > 0 else []
            try:
                _midi_file(note_events, bends, bend_range).save(midi_file.temp_path)
            except OSError as e:
                raise midi_file.error(e) from None
        cfg = config.to_dict()["notes"]
        return Result(audio.samplerate, frames[0], audio.channels, count, notes, float(cfg["tuning_hz"]),
                      (int(cfg["scale_root"]), int(cfg["scale_mode"])))


def _estimate(
    path: Path,
    block: int,
    settings: dict[str, Any] | None,
    tuning: float | Literal["auto"] | None,
    scale: tuning_.Scale | Literal["auto"] | None,
) -> tuple[float | None, tuning_.Scale | None]:
    """A first pass over ``path`` that resolves ``"auto"``: the tuning and the
    key from the voiced pitches (fractional MIDI at 440 Hz, one per hop)."""
    if path.exists() and stat.S_ISFIFO(path.stat().st_mode):
        raise AnalysisError(f"--tuning auto and --scale auto read the input twice; '{path}' is a pipe")
    heard = []
    with _open_audio(path) as audio:
        analyzer = Analyzer(_engine_config(settings, audio.samplerate))
        frames = [0]
        for events in _stream(analyzer, audio, block, frames):
            heard += [e.midi for e in events if e.kind == "pitch" and e.voiced]
    if tuning == tuning_.AUTO:
        tuning = tuning_.estimate_tuning(heard)
    if scale == tuning_.AUTO:
        reference = tuning if tuning is not None else float((settings or {}).get("notes", {}).get("tuning_hz", 440.0))
        scale = tuning_.estimate_key(heard, reference)
    return tuning, scale


def bend_messages(notes: list[Note], pitches: list[Event], bend_range: float) -> list[tuple[float, int]]:
    """(time, 14-bit bend) for the cents deviation of each voiced pitch from the
    note sounding then, sent when it moves by BEND_STEP or more, and a return
    to the centre where a bent note ends, so every note starts in tune (as
    ``run --bend`` does on midi_out)."""
    out: list[tuple[float, int]] = []
    times = [p.t for p in pitches]
    i = 0
    for note in notes:
        last = BEND_CENTRE
        i = bisect.bisect_left(times, note.start, lo=i)
        while i < len(pitches) and pitches[i].t < note.end:
            value = bend_value(pitches[i].midi - note.note, bend_range)
            if abs(value - last) >= BEND_STEP:
                out.append((pitches[i].t, value))
                last = value
            i += 1
        if last != BEND_CENTRE:
            out.append((note.end, BEND_CENTRE))
    return out


def without_retracted(events: list[Event]) -> list[Event]:
    """Drops the notes the engine retracted: a note-off at its note-on's own
    sample means a wrong attack was corrected (the events log keeps both).

    ``events`` are note events of one analyser in emission order.
    """
    open_at: dict[int, int] = {}
    drop: set[int] = set()
    for i, event in enumerate(events):
        if event.kind == "note_on":
            open_at[event.note] = i
        elif (j := open_at.pop(event.note, None)) is not None and event.sample == events[j].sample:
            drop.update((i, j))
    return [e for i, e in enumerate(events) if i not in drop]


def pair_notes(events: list[Event]) -> list[Note]:
    """Pairs each note-on with the next note-off of the same note, in start order.

    A note-on still open at the end (the engine's flush closes every note, so
    this only happens on a truncated stream) is dropped.
    """
    open_notes: dict[int, list[Event]] = {}
    notes = []
    for event in sorted(events, key=_midi_order):
        if event.kind == "note_on":
            open_notes.setdefault(event.note, []).append(event)
        elif open_notes.get(event.note):
            on = open_notes[event.note].pop(0)
            notes.append(Note(on.note, on.t, event.t, on.velocity))
    return sorted(notes, key=lambda n: (n.start, n.note))


def _midi_order(event: Event) -> tuple[int, int]:
    # At equal positions a note-off goes first, so a repeated note re-triggers.
    return (event.sample, 0 if event.kind == "note_off" else 1)


def _midi_file(events: list[Event], bends: Sequence[tuple[float, int]] = (), bend_range: float = 0.0) -> mido.MidiFile:
    """A type-0 SMF at 120 bpm / 480 ticks per beat, one message per note event
    and per bend; with bends, the bend range is set first (RPN 0)."""
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=TEMPO, time=0))
    if bends:
        semitones, cents = divmod(round(bend_range * 100), 100)
        for control, value in ((101, 0), (100, 0), (6, semitones), (38, cents), (101, 127), (100, 127)):
            track.append(mido.Message("control_change", channel=0, control=control, value=value))
    pending = sorted(bends)
    j = 0
    last_tick = 0
    for event in sorted(events, key=_midi_order):
        tick = _tick(event.t)
        # A bend at a note-on's tick goes first: the return to the centre before the next note.
        while j < len(pending) and (_tick(pending[j][0]) < tick or
                                    (_tick(pending[j][0]) == tick and event.kind == "note_on")):
            last_tick = _append(track, _bend_message(pending[j][1]), _tick(pending[j][0]), last_tick)
            j += 1
        if event.kind == "note_on":
            msg = mido.Message("note_on", channel=0, note=event.note, velocity=event.velocity)
        else:
            msg = mido.Message("note_off", channel=0, note=event.note, velocity=0)
        last_tick = _append(track, msg, tick, last_tick)
    for t, value in pending[j:]:
        last_tick = _append(track, _bend_message(value), _tick(t), last_tick)
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi


def _tick(t: float) -> int:
    return round(mido.second2tick(t, TICKS_PER_BEAT, TEMPO))


def _bend_message(value: int) -> mido.Message:
    return mido.Message("pitchwheel", channel=0, pitch=value - BEND_CENTRE)


def _append(track: mido.MidiTrack, msg: mido.Message, tick: int, last_tick: int) -> int:
    track.append(msg.copy(time=tick - last_tick))
    return tick


def _engine_config(settings: dict[str, Any] | None, sample_rate: int) -> EngineConfig:
    values = dict(settings or {})
    values["sample_rate"] = sample_rate
    try:
        return EngineConfig(values)
    except ConfigError as e:
        # The settings passed the config file's check; what fails here fails at this rate.
        raise AnalysisError(f"engine.{e.key} at {sample_rate} Hz: {e.reason}") from None


def _open_audio(path: Path) -> sf.SoundFile:
    if path.is_dir():
        raise AnalysisError(f"'{path}' is a directory, not an audio file")
    if not path.exists():
        raise AnalysisError(f"'{path}' does not exist")
    try:
        if stat.S_ISFIFO(path.stat().st_mode):
            return _open_pipe(path)
        if path.stat().st_size == 0:
            raise AnalysisError(f"'{path}' is empty")
        return sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        reason = getattr(e, "error_string", None) or getattr(e, "strerror", None) or str(e)
        raise AnalysisError(f"cannot read '{path}' as audio: {reason.rstrip('.')}") from None


def _open_pipe(path: Path) -> sf.SoundFile:
    """Opens a FIFO as libsndfile's pipe stream (header first, then the samples in order).

    Opening waits for a writer, as `cat` does. A pipe always reports size 0, so
    emptiness shows only when the writer closes it without writing: then poll
    reports a hang-up with nothing to read.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        (_, ready), = poller.poll()
        if not ready & select.POLLIN:
            raise AnalysisError(f"'{path}' is a pipe that was closed without any data")
        return sf.SoundFile(fd, closefd=True)
    except BaseException:
        os.close(fd)
        raise


def _stream(analyzer: Analyzer, audio: sf.SoundFile, block: int, frames: list[int]) -> Iterator[list[Event]]:
    """Feeds the audio in ``block``-frame pieces (channels averaged) until it ends, then
    flushes; counts the frames in ``frames[0]``. Reading piece by piece, not
    ``SoundFile.blocks``, works on a pipe too, whose length is not known."""
    try:
        while len(chunk := audio.read(block, dtype="float32", always_2d=True)):
            frames[0] += len(chunk)
            if chunk.shape[1] == 1:
                mono = np.ascontiguousarray(chunk[:, 0])
            else:
                mono = chunk.mean(axis=1, dtype=np.float32)
            yield analyzer.process(mono)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AnalysisError(f"cannot read '{audio.name}': {e}") from None
    yield analyzer.flush()


class _AtomicFile:
    """A text file written under a temporary name and renamed into place on success.

    Only regular files are replaced: renaming over a device or a FIFO (say
    /dev/null, as root) would destroy it, so such a target is refused. A
    symlink to a regular file is followed, so the link stays a link.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.final = Path(os.path.realpath(target))
        self.temp_path: Path
        self.stream: IO[str]

    def __enter__(self) -> Self:
        if self.final.is_dir():
            raise self.error("it is a directory")
        if self.final.exists() and not self.final.is_file():
            raise self.error("not a regular file")
        try:
            fd, name = tempfile.mkstemp(
                dir=self.final.parent, prefix=f".{self.final.name}.", suffix=".tmp"
            )
        except OSError as e:
            raise self.error(e) from None
        self.temp_path = Path(name)
        self.stream = os.fdopen(fd, "w", encoding="utf-8")
        return self

    def write(self, text: str) -> None:
        try:
            self.stream.write(text)
        except OSError as e:
            raise self.error(e) from None

    def error(self, reason: OSError | str) -> AnalysisError:
        if isinstance(reason, OSError):
            reason = reason.strerror or str(reason)
        return AnalysisError(f"cannot write '{self.target}': {reason}")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.stream.close()
            if exc_type is None:
                os.chmod(self.temp_path, 0o666 & ~_umask())
                os.replace(self.temp_path, self.final)
        except OSError as e:
            raise self.error(e) from None
        finally:
            # Gone already after a successful rename; otherwise the partial file goes.
            self.temp_path.unlink(missing_ok=True)


def _umask() -> int:
    # mkstemp creates 0600 files; give the final file the usual permissions.
    mask = os.umask(0)
    os.umask(mask)
    return mask
