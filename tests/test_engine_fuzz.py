"""Bad input to the engine, as property tests (issue 6, "Bad input to the engine").

Hypothesis builds signals out of the things a live input can really carry,
and some it should never carry: NaN, +-Inf, denormals, absurdly large
values, DC offsets, full-scale square waves, clicks, tones and noise; and it
cuts them into random blocks of 0 to 8192 frames (the engine's MAX_BLOCK).
For every signal and every split:

- every float field of every event is finite, velocities and notes are MIDI
  values, and events come out in emission order;
- the only exceptions are the documented ones (TypeError for a wrong dtype,
  ValueError for a 2-D or non-contiguous block);
- after `flush()` every note_on has been matched by a note_off of the same
  note, and nothing is left sounding;
- the events are identical, bit for bit, whatever the split.

A Rust panic inside a bound method does not abort the interpreter: PyO3
catches it at the boundary and raises `pyo3_runtime.PanicException`. That
class derives from BaseException, not Exception, so `except Exception` in
the bridge would not catch it and a panic would end the dispatch thread
loudly rather than be swallowed. No input is known to panic the engine (its
one `expect` in `process` guards chunks it cuts itself), so no test can
provoke one; `engine_call` below turns a PanicException into a test failure
with the panic message, so Hypothesis shrinks to the input that caused it
instead of treating it as an interrupt.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import rust_engine
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

SR = 48_000
MAX_BLOCK = 8192
FLOAT_FIELDS = ("t", "hz", "midi", "confidence", "strength", "rms", "peak", "db", "envelope_db")

# Each example runs the engine over up to ~1.5 s of audio a few times; 200 of them
# take seconds. No example database: the tests leave no files in the tree.
FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def engine_call(fn: Callable[..., Any], *args: Any) -> Any:
    """Calls into the engine; a Rust panic (PanicException, a BaseException) fails the test."""
    try:
        return fn(*args)
    except Exception:
        raise
    except BaseException as e:
        if type(e).__name__ == "PanicException":
            raise AssertionError(f"Rust panic crossed into Python: {e}") from e
        raise


# -- signals ------------------------------------------------------------------------


@st.composite
def segment(draw: st.DrawFn) -> np.ndarray:
    kind = draw(
        st.sampled_from(
            ["nan", "inf", "denormal", "huge", "dc", "square", "clicks", "tone", "noise", "silence", "mixed_bad"]
        )
    )
    n = draw(st.one_of(st.sampled_from([0, 1, 2047, 2048, 12_000]), st.integers(0, 12_000)))
    t = np.arange(n) / SR
    if kind == "nan":
        x = np.full(n, np.nan)
    elif kind == "inf":
        x = np.where(np.arange(n) % 2 == 0, np.inf, -np.inf) if draw(st.booleans()) else np.full(n, np.inf)
    elif kind == "denormal":
        x = np.full(n, draw(st.sampled_from([1e-39, -1e-40, 1e-45, 1.4e-45])))
    elif kind == "huge":
        x = np.full(n, draw(st.sampled_from([1e4, -1e10, 3e38, -3.4e38])))
    elif kind == "dc":
        x = np.full(n, draw(st.floats(-2.0, 2.0)))
    elif kind == "square":
        hz = draw(st.floats(20.0, 12_000.0))
        x = np.where(np.sin(2 * np.pi * hz * t) >= 0, 1.0, -1.0)
    elif kind == "clicks":
        x = np.zeros(n)
        if n:
            at = draw(st.lists(st.integers(0, n - 1), max_size=20))
            x[at] = draw(st.sampled_from([1.0, -1.0, 0.5]))
    elif kind == "tone":
        hz = draw(st.floats(30.0, 4000.0))
        amp = draw(st.sampled_from([1e-4, 0.01, 0.3, 1.0]))
        x = amp * np.sin(2 * np.pi * hz * t) + draw(st.floats(-0.5, 0.5))
    elif kind == "noise":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        x = rng.standard_normal(n) * draw(st.sampled_from([1e-6, 0.01, 0.5, 3.0]))
    elif kind == "silence":
        x = np.zeros(n)
    else:  # a tone with non-finite and denormal samples sprinkled in
        x = 0.3 * np.sin(2 * np.pi * 440.0 * t)
        if n:
            at = draw(st.lists(st.integers(0, n - 1), max_size=30))
            x[at] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e-40]))
    with np.errstate(over="ignore"):
        return x.astype(np.float32)


signals = st.lists(segment(), min_size=1, max_size=6).map(
    lambda parts: np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
)
block_sizes = st.one_of(st.sampled_from([0, 1, 127, 128, 129, 8191, 8192]), st.integers(0, MAX_BLOCK))
splits = st.lists(block_sizes, min_size=1, max_size=12)


def cut(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Blocks of `x` of the given sizes, cycling; a zero-only split ends with the rest in one go."""
    blocks, pos, i = [], 0, 0
    while pos < len(x):
        size = sizes[i % len(sizes)]
        i += 1
        if i > len(sizes) and not any(sizes):
            size = len(x) - pos
        blocks.append(x[pos : pos + size])
        pos += size
    blocks.insert(len(blocks) // 2, x[:0])  # a zero-length block mid-stream, always
    return blocks


def key(e: rust_engine.Event) -> tuple[Any, ...]:
    return (
        e.kind, e.sample, e.emit_sample, e.hz, e.midi, e.confidence, e.voiced, e.strength,
        e.rms, e.peak, e.db, e.envelope_db, e.velocity, e.marking, e.note,
    )


def run(x: np.ndarray, sizes: list[int], config: dict[str, Any] | None = None) -> list[rust_engine.Event]:
    an = rust_engine.Analyzer(rust_engine.EngineConfig({"sample_rate": SR, **(config or {})}))
    events: list[rust_engine.Event] = []
    for block in cut(x, sizes):
        events += engine_call(an.process, block)
    events += engine_call(an.flush)
    assert engine_call(an.all_notes_off) == [], "flush left a note sounding"
    return events


def check_events(events: list[rust_engine.Event]) -> None:
    open_note: int | None = None
    last_emit = 0
    for i, e in enumerate(events):
        for name in FLOAT_FIELDS:
            assert math.isfinite(getattr(e, name)), f"{e.kind} event with {name}={getattr(e, name)}"
        # flush() stamps its closing note-off at the end of the real audio, which
        # may lie before the silence-padded last hop; every other event is in order.
        if not (i == len(events) - 1 and e.kind == "note_off"):
            assert e.emit_sample >= last_emit, "events out of emission order"
        last_emit = e.emit_sample
        if e.kind in ("note_on", "onset"):
            assert e.sample <= e.emit_sample
        if e.kind == "note_on":
            assert open_note is None, f"note_on {e.note} while {open_note} is sounding"
            assert 0 <= e.note <= 127 and 1 <= e.velocity <= 127
            open_note = e.note
        elif e.kind == "note_off":
            assert open_note == e.note, f"note_off {e.note} but {open_note} is sounding"
            open_note = None
        elif e.kind == "dynamics":
            assert 0 <= e.velocity <= 127 and e.marking in {"ppp", "pp", "p", "mp", "mf", "f", "ff", "fff"}
    assert open_note is None, f"note {open_note} never got its note_off"


# -- properties ------------------------------------------------------------------------


@FUZZ
@given(x=signals, split_a=splits, split_b=splits)
@example(x=np.array([1.0], np.float32), split_a=[1], split_b=[0])  # found by rust_engine/fuzz
def test_any_signal_any_split_gives_sane_identical_events(x, split_a, split_b):
    a = run(x, split_a)
    check_events(a)
    b = run(x, split_b)
    assert [key(e) for e in b] == [key(e) for e in a], "events depend on the block split"
    # One call with the whole signal: the binding cuts it into MAX_BLOCK chunks itself.
    assert [key(e) for e in run(x, [max(len(x), 1)])] == [key(e) for e in a]


@FUZZ
@given(
    x=signals,
    split=splits,
    hop=st.sampled_from([16, 64, 128, 441, 512, 4096]),
    fmin=st.sampled_from([20.0, 40.0, 200.0]),
    silence_db=st.sampled_from([-120.0, -50.0, 0.0]),
    min_confidence=st.sampled_from([0.0, 0.8, 1.0]),
)
def test_edge_configs_stay_sane(x, split, hop, fmin, silence_db, min_confidence):
    config = {
        "hop": hop,
        "pitch": {"fmin_hz": fmin},
        "onset": {"window": max(1024, 1 << (hop - 1).bit_length())},
        "notes": {"silence_db": silence_db, "min_confidence": min_confidence},
    }
    try:
        rust_engine.EngineConfig({"sample_rate": SR, **config})
    except ValueError:
        assume(False)  # e.g. a hop longer than the pitch window: refused up front, as documented
    check_events(run(x, split, config))


@FUZZ
@given(x=signals, split=splits, changes=st.lists(st.tuples(
    st.sampled_from(["onset.delta", "notes.silence_db", "notes.min_confidence"]),
    st.floats(0.0, 1.0)), max_size=6))
def test_live_parameter_changes_mid_stream_leave_no_stuck_note(x, split, changes):
    an = rust_engine.Analyzer(rust_engine.EngineConfig({"sample_rate": SR}))
    events: list[rust_engine.Event] = []
    for i, block in enumerate(cut(x, split)):
        if i < len(changes):
            name, unit = changes[i]
            value = -120.0 * unit if name == "notes.silence_db" else unit
            an.set_param(name, value)
        events += engine_call(an.process, block)
    events += engine_call(an.flush)
    check_events(events)


@pytest.mark.parametrize(
    "x", [[1.0], [0.5] * 10, [1.0] + [0.0] * 9, [-1.0, 0.0, 0.3]], ids=["click", "dc-10", "click-10", "three"]
)
def test_flush_after_a_few_loud_samples_closes_cleanly(x):
    """A stream shorter than a hop that starts loud: flush() pads the hop with silence,
    the padded hop may start a note, and closing it at the end of the real audio
    (before the note's own onset) must not panic (found by the cargo-fuzz target:
    notes.rs note_off clamps with min > max)."""
    an = rust_engine.Analyzer(rust_engine.EngineConfig({"sample_rate": SR}))
    events = engine_call(an.process, np.array(x, np.float32))
    events += engine_call(an.flush)
    check_events(events)


def test_analyze_of_a_ten_sample_click_file_is_not_a_traceback(cli, tmp_path):
    import soundfile as sf

    wav = tmp_path / "click.wav"
    sf.write(wav, np.array([0.99] + [0.0] * 9, np.float32), SR, subtype="PCM_16")
    result = cli("analyze", wav)
    assert "Traceback" not in result.stderr and "panicked" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr


# -- the documented exceptions -----------------------------------------------------------


@pytest.mark.parametrize(
    "block, error",
    [
        (np.zeros(64, dtype=np.float64), TypeError),
        (np.zeros(64, dtype=np.int16), TypeError),
        (np.zeros(64, dtype=">f4"), TypeError),
        ([0.0] * 64, TypeError),
        (np.zeros((2, 64), dtype=np.float32), ValueError),
        (np.zeros(128, dtype=np.float32)[::2], ValueError),
    ],
    ids=["float64", "int16", "big-endian", "list", "2-D", "strided"],
)
def test_wrong_blocks_raise_the_documented_errors_and_leave_the_stream_intact(block, error):
    an = rust_engine.Analyzer(rust_engine.EngineConfig({"sample_rate": SR}))
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(SR // 2) / SR)).astype(np.float32)
    before = an.process(tone[: SR // 4])
    with pytest.raises(error):
        an.process(block)
    rest = an.process(tone[SR // 4 :]) + an.flush()
    whole = run(tone, [SR // 4])
    assert [key(e) for e in before + rest] == [key(e) for e in whole]
    check_events(before + rest)


def test_read_only_and_empty_arrays_are_accepted():
    an = rust_engine.Analyzer(rust_engine.EngineConfig({"sample_rate": SR}))
    block = np.full(8192, 0.5, dtype=np.float32)
    block.flags.writeable = False
    assert an.process(np.zeros(0, dtype=np.float32)) == []
    check_events(an.process(block) + an.flush())


def test_blocks_of_8192_and_more_and_of_every_small_length():
    """The Python binding takes any length (it chunks by MAX_BLOCK); lengths 0..300
    one after another cross every hop boundary."""
    rng = np.random.default_rng(5)
    x = (0.3 * np.sin(2 * np.pi * 220.0 * np.arange(3 * SR) / SR) + 0.01 * rng.standard_normal(3 * SR)).astype(
        np.float32
    )
    reference = run(x, [MAX_BLOCK])
    check_events(reference)
    assert any(e.kind == "note_on" and e.note == 57 for e in reference)
    assert [key(e) for e in run(x, list(range(301)))] == [key(e) for e in reference]
    assert [key(e) for e in run(x, [3 * SR])] == [key(e) for e in reference]
    assert [key(e) for e in run(x, [MAX_BLOCK + 1])] == [key(e) for e in reference]
