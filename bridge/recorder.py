"""Recording a take: the notes as a Standard MIDI File and every event as JSON lines.

Both are fed from the dispatch thread, so they may take their time, but they
must survive the way a live run ends: Ctrl-C, SIGTERM, a full disk.

- The MIDI file is held in memory and written whole, under a temporary name
  in the target's directory and renamed into place: at each ``checkpoint()``
  (the bridge makes one every few seconds while notes come in) and at
  ``close()``. A killed process or a disk that fills up later keeps the take
  up to the last checkpoint; there is never a truncated SMF.
- The event log is streamed: each batch goes to the kernel in one write of
  whole lines, so a killed process keeps everything but the last batch. On a
  write error the log is cut back to its last whole line and stops, with a
  warning; the run goes on.

Notes are placed at their detected onset ``t`` (latency-compensated), not at
the moment the engine emitted them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import mido
from rust_engine import Event

from bridge.addresses import CLIENT_NAME, input_port
from bridge.errors import BridgeError

TICKS_PER_BEAT = 480
TEMPO = mido.bpm2tempo(120)

log = logging.getLogger(__name__)


class RecordingError(BridgeError):
    """A take cannot be written where the user asked; the message names the path."""


@dataclass(frozen=True)
class RecordedNote:
    """One note of the take; times in seconds from the start of the take."""

    input: int
    note: int
    velocity: int
    start: float
    end: float


def check_output_dir(path: Path) -> None:
    """Raises RecordingError unless a file can be created in ``path``'s directory.

    Creates and removes a probe file rather than trusting ``os.access``: as
    root that says yes even on a read-only file system.
    """
    if path.is_dir():
        raise RecordingError(f"cannot record to '{path}': it is a directory")
    parent = path.parent
    if not parent.is_dir():
        raise RecordingError(f"cannot record to '{path}': directory '{parent}' does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as e:
        raise RecordingError(f"cannot record to '{path}': {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)


class TakeRecorder:
    """Collects note events and writes them as a type-1 SMF at ``close()``.

    120 bpm, 480 ticks per beat (one tick is about 1 ms); a conductor track,
    then one track per input named like its port, input k on MIDI channel
    k - 1 (wrapping after 16). ``start_t`` is the engine time (``Event.t``)
    that becomes the start of the take. Raises RecordingError up front when
    the file cannot be created.
    """

    def __init__(self, path: str | Path, n_inputs: int = 1, start_t: float = 0.0) -> None:
        if n_inputs < 1:
            raise ValueError(f"n_inputs must be at least 1, got {n_inputs}")
        self.path = Path(path)
        # A symlink is followed so that the link stays a link; anything but a
        # regular file is refused, since the rename would replace a device node.
        self._final = Path(os.path.realpath(self.path))
        if self._final.exists() and not self._final.is_file() and not self._final.is_dir():
            raise RecordingError(f"cannot record to '{self.path}': not a regular file")
        check_output_dir(self._final)
        self.n_inputs = n_inputs
        self._offset = -start_t
        self._open: dict[tuple[int, int], tuple[float, int]] = {}
        self._notes: list[RecordedNote] = []
        self._last_t = 0.0
        self._closed = False
        self._changed = False
        self.saved_t: float | None = None
        """Take time up to which the file on disk holds the take (None: nothing written yet)."""

    def add(self, events: Iterable[Event], input: int | None = None) -> None:
        """Records note-ons and note-offs; other events only advance the clock.

        ``input`` overrides ``Event.input`` (offline events carry 0, read as 1).
        """
        for event in events:
            k = input or event.input or 1
            if not 1 <= k <= self.n_inputs:
                raise ValueError(f"event from input {k}, but the take has {self.n_inputs}")
            t = max(0.0, event.t + self._offset)
            self._last_t = max(self._last_t, t)
            key = (k, event.note)
            if event.kind in ("note_on", "note_off"):
                self._changed = True
            if event.kind == "note_on":
                self._end(key, t)  # a re-trigger closes the sounding copy first
                self._open[key] = (t, min(max(event.velocity, 1), 127))
            elif event.kind == "note_off":
                self._end(key, t)

    def notes_off(self, t: float | None = None) -> None:
        """Ends every sounding note at take time ``t`` (default: the latest time seen).

        For a server loss: the engine that would have sent the note-offs is gone.
        """
        end = self._last_t if t is None else t
        for key in list(self._open):
            self._end(key, end)

    def begin_stream(self, take_t: float) -> None:
        """A new engine clock starts (a new JACK client after a server loss).

        Sounding notes end at the latest time seen; the new stream's ``t = 0``
        lands ``take_t`` seconds into the take.
        """
        self.notes_off()
        self._offset = take_t
        self._last_t = max(self._last_t, take_t)

    def checkpoint(self) -> None:
        """Writes the take so far, sounding notes ended at the latest time seen,
        so that a crash or a full disk later still leaves it. Does nothing when
        no note came or went since the last one; raises RecordingError when the
        file cannot be written (the previous checkpoint stays as it was).
        """
        if self._closed or not self._changed:
            return
        sounding = [RecordedNote(k, n, v, start, self._last_t) for (k, n), (start, v) in self._open.items()]
        self._write(self._midi_file(sounding), sync=False)
        self._changed = False
        self.saved_t = self._last_t

    def close(self, end_t: float | None = None) -> Path | None:
        """Ends open notes and writes the file atomically; returns its path.

        ``end_t`` is the engine time of the end (default: the latest event
        seen). Safe to call twice (the second call does nothing and returns
        None). Raises RecordingError when the file cannot be written; then the
        last checkpoint is kept, or without one no file is left behind (an
        older file of that name is kept).
        """
        if self._closed:
            return None
        self._closed = True
        self.notes_off(None if end_t is None else max(0.0, end_t + self._offset))
        try:
            self._write(self._midi_file(), sync=True)
        except RecordingError as e:
            kept = "no file written" if self.saved_t is None else f"the take up to {self.saved_t:.1f} s is kept"
            raise RecordingError(f"{e}; {kept}") from None
        return self.path

    def _write(self, midi: mido.MidiFile, sync: bool) -> None:
        """Saves `midi` under a temporary name and renames it into place.

        `sync` flushes it to the disk first: worth it once, at the end; a
        checkpoint only has to survive the process.
        """
        try:
            fd, temp = tempfile.mkstemp(dir=self._final.parent, prefix=f".{self._final.name}.", suffix=".tmp")
        except OSError as e:
            raise RecordingError(f"cannot write MIDI take '{self.path}': {e.strerror or e}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                midi.save(file=f)
                f.flush()
                if sync:
                    os.fsync(f.fileno())
            os.chmod(temp, 0o666 & ~_umask())
            os.replace(temp, self._final)
        except OSError as e:
            Path(temp).unlink(missing_ok=True)
            raise RecordingError(f"cannot write MIDI take '{self.path}': {e.strerror or e}") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        # Also on an exception (Ctrl-C included): the take so far is worth keeping.
        self.close()

    def _end(self, key: tuple[int, int], t: float) -> None:
        if key in self._open:
            start, velocity = self._open.pop(key)
            if t > start:  # a note-off at the note's own start retracts it
                self._notes.append(RecordedNote(key[0], key[1], velocity, start, t))

    def _midi_file(self, sounding: Sequence[RecordedNote] = ()) -> mido.MidiFile:
        midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
        midi.tracks.append(
            mido.MidiTrack(
                [
                    mido.MetaMessage("track_name", name=f"{CLIENT_NAME} take"),
                    mido.MetaMessage("set_tempo", tempo=TEMPO),
                ]
            )
        )
        for k in range(1, self.n_inputs + 1):
            notes = [n for n in (*self._notes, *sounding) if n.input == k]
            midi.tracks.append(_track(input_port(k), (k - 1) % 16, notes))
        return midi


def _ticks(seconds: float) -> int:
    return round(float(mido.second2tick(seconds, TICKS_PER_BEAT, TEMPO)))


def _track(name: str, channel: int, notes: list[RecordedNote]) -> mido.MidiTrack:
    """One input's notes as a track: every note-on has its note-off, none overlap per key.

    A note lasts at least one tick, and ends no later than the next start of
    the same key, so a re-trigger never cuts the new note short.
    """
    spans: list[tuple[int, int, RecordedNote]] = []
    by_key: dict[int, list[RecordedNote]] = {}
    for n in sorted(notes, key=lambda n: n.start):
        by_key.setdefault(n.note, []).append(n)
    for same_key in by_key.values():
        for i, n in enumerate(same_key):
            start = _ticks(n.start)
            end = max(_ticks(n.end), start + 1)
            if i + 1 < len(same_key):
                end = min(end, _ticks(same_key[i + 1].start))
            if end > start:
                spans.append((start, end, n))
    # (tick, 0 = off before 1 = on): at a shared tick a key is released, then struck.
    timeline: list[tuple[int, int, mido.Message]] = []
    for start, end, n in spans:
        timeline.append(
            (start, 1, mido.Message("note_on", channel=channel, note=n.note, velocity=n.velocity))
        )
        timeline.append(
            (end, 0, mido.Message("note_off", channel=channel, note=n.note, velocity=0))
        )
    timeline.sort(key=lambda item: (item[0], item[1], item[2].note))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name)])
    last = 0
    for tick, _, message in timeline:
        track.append(message.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


class EventLog:
    """Streams events as JSON lines in the schema of ``daw-bridge analyze``.

    Each line is ``Event.to_dict()``, plus ``"input"`` when the bridge has
    several inputs. Opens (and truncates) the file at once, so an unusable
    path fails before the run starts with RecordingError.
    """

    def __init__(self, path: str | Path, n_inputs: int = 1) -> None:
        self.path = Path(path)
        self.n_inputs = n_inputs
        self.lines = 0
        self.skipped = 0
        """Events left out because a value was not finite."""
        self.warning: str | None = None
        """Set when writing failed; the log then stops, keeping what was written."""
        if self.path.is_dir():
            raise RecordingError(f"cannot record events to '{self.path}': it is a directory")
        if not self.path.parent.is_dir():
            raise RecordingError(
                f"cannot record events to '{self.path}': "
                f"directory '{self.path.parent}' does not exist"
            )
        try:
            # Unbuffered: each write() below is one system call of whole lines.
            self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise RecordingError(
                f"cannot record events to '{self.path}': {e.strerror or e}"
            ) from None
        self._written = 0
        self._offset = 0.0

    def begin_stream(self, log_t: float) -> None:
        """A new engine clock starts (a new JACK client after a server loss):
        its ``t = 0`` is ``log_t`` seconds after the first stream's, so ``t``
        keeps counting from the start of the run."""
        self._offset = log_t

    def write(self, events: Iterable[Event], input: int | None = None) -> None:
        """Appends one batch of events; never raises for I/O errors (see ``warning``)."""
        if self.warning is not None or self._file.closed:
            return
        lines = []
        for event in events:
            record = event.to_dict()
            if self._offset:
                record["t"] = round(record["t"] + self._offset, 6)
            if self.n_inputs > 1:
                record["input"] = input or event.input or 1
            try:
                lines.append(json.dumps(record, allow_nan=False))
            except ValueError:
                # NaN is not JSON; the engine promises finite values, so this is rare.
                self.skipped += 1
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode()
        try:
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                if not written:
                    raise OSError("short write")
                view = view[written:]
        except OSError as e:
            self._fail(f"{e.strerror or e}")
            return
        self._written += len(data)
        self.lines += len(lines)

    def close(self) -> None:
        """Closes the file (safe to call twice)."""
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, reason: str) -> None:
        self.warning = f"event log '{self.path}' stopped after {self.lines} lines: {reason}"
        log.warning(self.warning)
        # A failed write may have left half a line: cut back to the last whole one
        # (impossible for a pipe or device, where there is nothing to cut back).
        with contextlib.suppress(OSError):
            os.ftruncate(self._file.fileno(), self._written)


def _umask() -> int:
    # mkstemp creates 0600 files; give the take the usual permissions.
    mask = os.umask(0)
    os.umask(mask)
    return mask
