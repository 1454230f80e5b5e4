"""What one take checkpoint costs as the take grows (issue 12, item 8).

A live bridge checkpoints its MIDI take every `checkpoint_s` (10 s by default)
while notes come in. This feeds a TakeRecorder 64 inputs of notes (4 a second
per input, as a busy ensemble), checkpoints once when all but the last 10 s of
notes are in, then times the checkpoint after those last 10 s: the steady-state
cost of one checkpoint at that take length. With the split API (snapshot on the
dispatch thread, save on a writer thread) both halves are timed too.

Uses only `TakeRecorder.add()` and `checkpoint()`, so the same script measures
an older bridge/recorder.py (put it first on PYTHONPATH).

Usage: python -m bench.checkpoints [--inputs 64] [--notes 1000 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from bridge.recorder import TakeRecorder

NOTES_PER_S = 4.0
INTERVAL_S = 10.0


class NoteEvent(NamedTuple):
    """The fields of an Event a take reads."""

    kind: str
    t: float
    note: int
    velocity: int
    input: int


def _notes(inputs: int, first: int, last: int) -> list[NoteEvent]:
    """Note-ons and note-offs of notes first..last-1 on every input, in time order."""
    events = []
    for i in range(first, last):
        t = i / NOTES_PER_S
        for k in range(1, inputs + 1):
            note = 48 + (i * 7 + k) % 36
            events.append(NoteEvent("note_on", t, note, 80, k))
            events.append(NoteEvent("note_off", t + 0.8 / NOTES_PER_S, note, 0, k))
    return events


def measure(inputs: int, notes: int, work: Path) -> dict[str, float]:
    """Seconds for one checkpoint of a take of `notes` notes per input."""
    take = TakeRecorder(work / f"take-{inputs}x{notes}.mid", inputs)
    recent = int(INTERVAL_S * NOTES_PER_S)
    take.add(_notes(inputs, 0, notes - recent))
    take.checkpoint()  # the previous checkpoint, INTERVAL_S ago
    take.add(_notes(inputs, notes - recent, notes))
    result: dict[str, float] = {}
    start = time.perf_counter()
    if hasattr(take, "snapshot"):
        snapshot = take.snapshot()
        result["snapshot_s"] = time.perf_counter() - start
        assert snapshot is not None
        take.save(snapshot)
    else:
        take.checkpoint()
    result["checkpoint_s"] = time.perf_counter() - start
    result["file_mb"] = (work / f"take-{inputs}x{notes}.mid").stat().st_size / 1e6
    take.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--notes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per size; the fastest counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for notes in args.notes:
            runs = [measure(args.inputs, notes, Path(work)) for _ in range(args.repeats)]
            best = min(runs, key=lambda r: r["checkpoint_s"])
            split = f", snapshot (dispatch thread) {best['snapshot_s'] * 1000:.1f} ms" if "snapshot_s" in best else ""
            print(
                f"{args.inputs} inputs x {notes} notes ({best['file_mb']:.1f} MB): "
                f"checkpoint {best['checkpoint_s'] * 1000:.1f} ms{split}"
            )


if __name__ == "__main__":
    main()
