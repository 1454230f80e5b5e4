"""Recording a take: the notes as a Standard MIDI File and every event as JSON lines.

Both are fed from the dispatch thread, so they may take their time, but they
must survive the way a live run ends: Ctrl-C, SIGTERM, SIGKILL, a full disk.

- The MIDI take is kept as encoded track bytes that grow as notes become final:
  a note's messages are encoded once, when no later note can come before them,
  so a checkpoint only encodes the last few notes and copies the rest. Each
  ``checkpoint()`` (every few seconds while notes come in) and ``close()``
  writes the whole file under a temporary name and renames it into place, so a
  killed process or a disk that fills up later keeps the take up to the last
  checkpoint; there is never a truncated SMF. ``snapshot()`` and ``save()``
  split a checkpoint in two, so that the live bridge writes off its dispatch
  thread.
- Every file operation is relative to the take's directory, opened once: the
  temporary file is created with O_EXCL | O_NOFOLLOW and renamed over the
  final name, which replaces a link there rather than writing through it. A
  take asked for from outside (the control port, the TUI) is created
  exclusively in a given directory: never over an existing file, never
  through a link.
- The event log is streamed: each batch goes to the kernel in one write of
  whole lines, so a killed process keeps everything but the last batch. On a
  write error the log is cut back to its last whole line and stops, with a
  warning; the run goes on.

Notes are placed at their detected onset ``t`` (latency-compensated), not at
the moment the engine emitted them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import mido
from rust_engine import Event

from bridge.addresses import CLIENT_NAME, input_port
from bridge.bend import BEND_CENTRE, BEND_STEP, bend_value
from bridge.errors import BridgeError

TICKS_PER_BEAT = 480
TEMPO = mido.bpm2tempo(120)

log = logging.getLogger(__name__)

_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_END_OF_TRACK = bytes([0, *mido.MetaMessage("end_of_track").bytes()])  # at delta time 0


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
    bends: tuple[tuple[float, int], ...] = ()
    """(time, 14-bit value) of the pitch bends sent while it sounded (run --bend)."""


@dataclass(frozen=True)
class TakeSnapshot:
    """The bytes of the take at one moment, ready to be written by any thread."""

    chunks: tuple[bytes, ...]
    take_t: float
    """Take time up to which it holds the take."""
    final: bool


def open_directory(path: Path) -> int:
    """An open file descriptor of directory `path`, for dir_fd-relative file operations."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise RecordingError(f"cannot record to '{path}': {e.strerror or e}") from None


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
    directory = open_directory(parent)
    try:
        _probe(directory, path)
    finally:
        os.close(directory)


def _probe(directory: int, path: Path) -> None:
    probe = f".{path.name}.{secrets.token_hex(4)}.probe"
    try:
        os.close(os.open(probe, _OPEN_NEW, 0o600, dir_fd=directory))
        os.unlink(probe, dir_fd=directory)
    except OSError as e:
        raise RecordingError(f"cannot record to '{path}': {e.strerror or e}") from None


class TakeRecorder:
    """Collects note events and writes them as a type-1 SMF.

    120 bpm, 480 ticks per beat (one tick is about 1 ms); a conductor track,
    then one track per input named like its port, input k on MIDI channel
    k - 1 (wrapping after 16). ``start_t`` is the engine time (``Event.t``)
    that becomes the start of the take. Raises RecordingError up front when
    the file cannot be created.

    Without ``dir_fd``, ``path`` is the user's own choice: a symlink is
    followed once, here, so that the link stays a link, and an existing file
    is replaced at the first checkpoint. With ``dir_fd`` (an open directory),
    the take is ``path.name`` in that directory, created at once, exclusively
    and never through a link, holding an empty take until the first checkpoint.
    """

    def __init__(self, path: str | Path, n_inputs: int = 1, start_t: float = 0.0, *, dir_fd: int | None = None,
                 bend_range: float = 0.0) -> None:
        if n_inputs < 1:
            raise ValueError(f"n_inputs must be at least 1, got {n_inputs}")
        self.path = Path(path)
        self.n_inputs = n_inputs
        self._offset = -start_t
        self._bend_range = bend_range
        # (input, note) -> start, velocity, bends so far
        self._open: dict[tuple[int, int], tuple[float, int, list[tuple[float, int]]]] = {}
        self._tracks = [_Track(input_port(k), (k - 1) % 16, bend_range) for k in range(1, n_inputs + 1)]
        self._prelude = _prelude(n_inputs + 1)
        self._last_t = 0.0
        self._closed = False
        self._changed = False
        self.saved_t: float | None = None
        """Take time up to which the file on disk holds the take (None: nothing written yet)."""
        if dir_fd is None:
            # Anything but a regular file is refused, since the rename would replace a device node.
            final = Path(os.path.realpath(self.path))
            if final.exists() and not final.is_file() and not final.is_dir():
                raise RecordingError(f"cannot record to '{self.path}': not a regular file")
            check_output_dir(final)
            self._name = final.name
            self._dir = open_directory(final.parent)
        else:
            self._name = self.path.name
            self._dir = os.dup(dir_fd)
            try:
                self._create()
            except BaseException:
                os.close(self._dir)
                raise

    def _create(self) -> None:
        try:
            fd = os.open(self._name, _OPEN_NEW, 0o666, dir_fd=self._dir)
        except FileExistsError:
            raise RecordingError(f"'{self._name}' exists already; a new take never replaces a file") from None
        except OSError as e:
            raise RecordingError(f"cannot record to '{self.path}': {e.strerror or e}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.writelines(self._chunks(()))
        except OSError as e:
            os.unlink(self._name, dir_fd=self._dir)
            raise RecordingError(f"cannot record to '{self.path}': {e.strerror or e}") from None

    def add(self, events: Iterable[Event], input: int | None = None) -> None:
        """Records note-ons and note-offs, and with a bend range the pitch bend
        that `midi_out` sends for voiced pitches; other events only advance the clock.

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
                self._open[key] = (t, min(max(event.velocity, 1), 127), [])
                self._tracks[k - 1].started(t)
            elif event.kind == "note_off":
                self._end(key, t)
            elif event.kind == "pitch" and event.voiced and self._bend_range > 0:
                self._bend(k, event.midi, t)

    def _bend(self, k: int, midi: float, t: float) -> None:
        """The bend `midi_out` sends for pitch `midi` against input k's sounding note."""
        sounding = [(start, note, bends) for (i, note), (start, _, bends) in self._open.items() if i == k]
        if not sounding:
            return
        start, note, bends = max(sounding, key=lambda s: s[0])
        value = bend_value(midi - note, self._bend_range)
        if abs(value - (bends[-1][1] if bends else BEND_CENTRE)) >= BEND_STEP:
            bends.append((max(t, start), value))
            self._changed = True

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
        snapshot = self.snapshot()
        if snapshot is not None:
            self.save(snapshot)

    def snapshot(self) -> TakeSnapshot | None:
        """The take so far as bytes, for `save()` (None when unchanged since the
        last one, or closed). Encodes only what became final since the last one."""
        if self._closed or not self._changed:
            return None
        self._changed = False
        for k in range(1, self.n_inputs + 1):
            self._finalize(k)
        sounding = [RecordedNote(k, n, v, start, self._last_t, tuple(b))
                    for (k, n), (start, v, b) in self._open.items()]
        return TakeSnapshot(tuple(self._chunks(sounding)), self._last_t, final=False)

    def save(self, snapshot: TakeSnapshot) -> None:
        """Writes `snapshot` under a temporary name and renames it into place;
        RecordingError when it cannot (the file on disk stays as it was). Safe to
        call from another thread than the one that feeds the take, one call at a
        time, in the order of the snapshots. A final snapshot also releases the
        directory."""
        try:
            self._write(snapshot.chunks, sync=snapshot.final)
            self.saved_t = snapshot.take_t
        except RecordingError as e:
            if not snapshot.final:
                self._changed = True  # the next checkpoint tries again
                raise
            kept = "no file written" if self.saved_t is None else f"the take up to {self.saved_t:.1f} s is kept"
            raise RecordingError(f"{e}; {kept}") from None
        finally:
            if snapshot.final:
                os.close(self._dir)

    def finish(self, end_t: float | None = None) -> TakeSnapshot | None:
        """Ends the take: open notes end at engine time ``end_t`` (default: the
        latest event seen); the whole take, for one last `save()`. None when
        finished before."""
        if self._closed:
            return None
        self._closed = True
        self.notes_off(None if end_t is None else max(0.0, end_t + self._offset))
        for track in self._tracks:
            track.finalize(None)
        return TakeSnapshot(tuple(self._chunks(())), self._last_t, final=True)

    def close(self, end_t: float | None = None) -> Path | None:
        """Ends open notes and writes the file atomically; returns its path.

        ``end_t`` is the engine time of the end (default: the latest event
        seen). Safe to call twice (the second call does nothing and returns
        None). Raises RecordingError when the file cannot be written; then the
        last checkpoint is kept, or without one no file is left behind (an
        older file of that name is kept).
        """
        snapshot = self.finish(end_t)
        if snapshot is None:
            return None
        self.save(snapshot)
        return self.path

    def _write(self, chunks: Sequence[bytes], sync: bool) -> None:
        """`sync` flushes the file to the disk first: worth it once, at the end; a
        checkpoint only has to survive the process."""
        temp = f".{self._name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temp, _OPEN_NEW, 0o666, dir_fd=self._dir)  # the umask applies, as for any new file
        except OSError as e:
            raise RecordingError(f"cannot write MIDI take '{self.path}': {e.strerror or e}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.writelines(chunks)
                f.flush()
                if sync:
                    os.fsync(f.fileno())
            os.replace(temp, self._name, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self._dir)
            raise RecordingError(f"cannot write MIDI take '{self.path}': {e.strerror or e}") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        # Also on an exception (Ctrl-C included): the take so far is worth keeping.
        self.close()

    def _end(self, key: tuple[int, int], t: float) -> None:
        if key in self._open:
            start, velocity, bends = self._open.pop(key)
            if t > start:  # a note-off at the note's own start retracts it
                self._tracks[key[0] - 1].add(RecordedNote(key[0], key[1], velocity, start, t, tuple(bends)))
                self._finalize(key[0])  # encoded note by note: no checkpoint has to do it all

    def _finalize(self, k: int) -> None:
        """Encodes input k's events before the start of its latest and of its sounding notes."""
        track = self._tracks[k - 1]
        sounding = [_ticks(start) for (i, _), (start, _, _) in self._open.items() if i == k]
        track.finalize(min(sounding, default=track.next_start))

    def _chunks(self, sounding: Sequence[RecordedNote]) -> list[bytes]:
        """The file: header, conductor track, one track per input with `sounding` added."""
        chunks = [self._prelude]
        for k, track in enumerate(self._tracks, start=1):
            chunks += track.chunks([n for n in sounding if n.input == k])
        return chunks


def _prelude(n_tracks: int) -> bytes:
    """Header and conductor track, written by mido."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(
        mido.MidiTrack(
            [
                mido.MetaMessage("track_name", name=f"{CLIENT_NAME} take"),
                mido.MetaMessage("set_tempo", tempo=TEMPO),
            ]
        )
    )
    out = io.BytesIO()
    midi.save(file=out)
    data = bytearray(out.getvalue())
    struct.pack_into(">H", data, 10, n_tracks)  # the tracks that follow, in the MThd chunk
    return bytes(data)


def _ticks(seconds: float) -> int:
    return round(float(mido.second2tick(seconds, TICKS_PER_BEAT, TEMPO)))


class _Track:
    """One input's notes as an SMF track, encoded as they become final.

    Notes start in order on an input (one sounds at a time), so an event
    before the start of the latest note, and of every sounding one, can no
    longer change: `finalize()` encodes such events once, as each note ends. The
    notes with an event still to come stay in `_tail`. A note that starts
    before what is final (a new stream's clock placed earlier) makes the
    track encode again from its start.

    Every note-on has its note-off, none overlap per key: a note lasts at
    least one tick and ends no later than the next start of the same key, so a
    re-trigger never cuts the new note short.
    """

    def __init__(self, name: str, channel: int, bend_range: float = 0.0) -> None:
        self.channel = channel
        self._name = b"\0" + bytes(mido.MetaMessage("track_name", name=name).bytes())
        if bend_range > 0:  # the bend range (RPN 0) first, so a player bends as far as midi_out meant
            semitones, cents = divmod(round(bend_range * 100), 100)
            for control, value in ((101, 0), (100, 0), (6, semitones), (38, cents), (101, 127), (100, 127)):
                self._name += bytes((0, 0xB0 | channel, control, value))
        self._notes: list[RecordedNote] = []  # all of them, for encoding again
        self._tail: list[RecordedNote] = []
        self._done: list[bytes] = []  # one piece per checkpoint
        self._fresh = bytearray()  # encoded since the last checkpoint
        self._horizon = 0  # ticks: every event before it is in _done
        self._last_tick = 0  # tick of the last event in _done
        self.next_start = 0  # ticks: no note recorded from here on starts earlier

    def started(self, t: float) -> None:
        tick = _ticks(t)
        if tick < self._horizon:
            self._reset()
        self.next_start = max(self.next_start, tick)

    def add(self, note: RecordedNote) -> None:
        if _ticks(note.start) < self._horizon:
            self._reset()
        self._notes.append(note)
        self._tail.append(note)

    def _reset(self) -> None:
        self._tail = list(self._notes)
        self._done, self._horizon, self._last_tick = [], 0, 0
        self._fresh.clear()

    def finalize(self, horizon: int | None) -> None:
        """Encodes for good every event before tick `horizon` (None: all of them)."""
        if horizon is not None and horizon <= self._horizon:
            return
        spans = _spans(self._tail)
        data, self._last_tick = self._encode(spans, self._horizon, horizon, self._last_tick)
        self._fresh += data
        if horizon is None:
            self._tail = []
            self._horizon = max([end for _, end, _ in spans], default=self._horizon)
            return
        self._horizon = horizon
        ended = {id(n) for start, end, n in spans if end < horizon}
        dropped = {id(n) for n in self._tail if _ticks(n.start) < horizon} - {id(n) for _, _, n in spans}
        self._tail = [n for n in self._tail if id(n) not in ended and id(n) not in dropped]

    def chunks(self, sounding: Sequence[RecordedNote]) -> list[bytes]:
        """The MTrk chunk: what is final, then the rest and `sounding` encoded now."""
        if self._fresh:
            self._done.append(bytes(self._fresh))
            self._fresh.clear()
        rest, _ = self._encode(_spans([*self._tail, *sounding]), self._horizon, None, self._last_tick)
        body = [self._name, *self._done, rest, _END_OF_TRACK]
        size = sum(map(len, body))
        return [b"MTrk" + struct.pack(">I", size), *body]

    def _encode(
        self, spans: list[tuple[int, int, RecordedNote]], lo: int, hi: int | None, last: int
    ) -> tuple[bytes, int]:
        """Messages of `spans` at ticks lo <= tick < hi, delta times from tick `last`."""
        timeline = []
        ch = self.channel
        for start, end, n in spans:
            timeline.append((start, 2, n.note, bytes((0x90 | ch, n.note, n.velocity))))
            timeline.append((end, 0, n.note, bytes((0x80 | ch, n.note, 0))))
            value = BEND_CENTRE
            for i, (t, value) in enumerate(n.bends):
                tick = min(max(_ticks(t), start), end - 1)
                timeline.append((tick, 1, i, bytes((0xE0 | ch, value & 0x7F, value >> 7))))
            if value != BEND_CENTRE:  # back to the centre as the note ends: the next starts in tune
                timeline.append((end, 1, len(n.bends), bytes((0xE0 | ch, 0, BEND_CENTRE >> 7))))
        # (tick, 0 = off, 1 = bend, 2 = on): at a shared tick a key is released,
        # the bend centred, then the next key struck.
        timeline.sort(key=lambda item: (item[0], item[1], item[2]))
        out = bytearray()
        for tick, _, _, message in timeline:
            if tick < lo or (hi is not None and tick >= hi):
                continue
            out += _varint(tick - last)
            out += message
            last = tick
        return bytes(out), last


def _varint(value: int) -> bytes:
    """An SMF variable-length quantity (7 bits a byte, high bit: more follow).
    mido's encoder checks its argument's type through abc on every call, which
    made it the largest part of a checkpoint."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _spans(notes: Sequence[RecordedNote]) -> list[tuple[int, int, RecordedNote]]:
    """(start tick, end tick, note) of each note that is played: ends clipped at the
    next start of the same key, at least one tick long."""
    spans = []
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
    return spans


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
