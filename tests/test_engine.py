"""The Rust engine through its Python bindings: config, input checks, pitch
accuracy on known signals, and block-size independence."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rust_engine import Analyzer, ConfigError, EngineConfig, marking_for_db

from bridge import signals
from bridge.signals import SR


def harmonic(midi: float, seconds: float, amp: float = 0.3, harmonics: int = 5) -> np.ndarray:
    # A 40 ms release, as an instrument's decay: a release of 20 ms or less on a
    # high note splatters enough to fire a weak onset (a known limit).
    return signals.harmonic(midi, seconds, amp, harmonics, release_s=0.04)


def melody(notes: list[tuple[int, float]], gap: float = 0.08) -> tuple[np.ndarray, list[tuple[float, int]]]:
    parts, truth, pos = [np.zeros(int(0.1 * SR), np.float32)], [], 0.1
    for midi, dur in notes:
        truth.append((pos, midi))
        parts += [harmonic(midi, dur), np.zeros(int(gap * SR), np.float32)]
        pos += dur + gap
    return np.concatenate(parts), truth


def run(x: np.ndarray, blocks: list[int], config: EngineConfig | None = None) -> list[dict]:
    an = Analyzer(config)
    events, pos, i = [], 0, 0
    while pos < len(x):
        n = blocks[i % len(blocks)]
        events += an.process(x[pos : pos + n])
        pos, i = pos + n, i + 1
    events += an.flush()
    return [e.to_dict() for e in events]


def test_config_defaults_round_trip_and_overrides():
    defaults = EngineConfig.defaults()
    # Sample counts left at 0 follow the rate; at 48 kHz they are the figures every benchmark used.
    assert defaults["sample_rate"] == 48_000 and defaults["hop"] == 0 == defaults["onset"]["window"]
    assert EngineConfig(defaults).hop == EngineConfig().hop == Analyzer().hop == 128
    assert EngineConfig(defaults).to_dict() == defaults
    cfg = EngineConfig({"sample_rate": 44_100, "pitch": {"fmin_hz": 60}})
    assert cfg.sample_rate == 44_100 and cfg.to_dict()["pitch"]["fmin_hz"] == 60.0
    assert [key for key, _ in EngineConfig.docs()][:3] == ["sample_rate", "hop", "pitch.fmin_hz"]


@pytest.mark.parametrize(
    ("rate", "hop", "latency"),
    [(8_000, 16, 200), (22_050, 64, 552), (44_100, 128, 1103), (48_000, 128, 1200), (96_000, 256, 2400),
     (192_000, 512, 4800), (384_000, 1024, 9600)],
)
def test_defaults_follow_the_sample_rate(rate, hop, latency):
    """Unset sample counts scale with the rate (a pitch window of two 40 Hz periods at any
    rate); what the user set stays put."""
    an = Analyzer(EngineConfig({"sample_rate": rate}))
    assert (an.hop, an.latency_samples) == (hop, latency)
    assert EngineConfig({"sample_rate": rate, "hop": 64}).hop == 64
    assert EngineConfig({"hop": 64, "sample_rate": rate}).hop == 64


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"pitch": {"fmin_hz": 5}}, "pitch.fmin_hz", "pitch.fmin_hz: must be >= 20 Hz"),
        ({"pitch": {"nope": 1}}, "pitch.nope", "unknown key 'pitch.nope'"),
        ({"hop": 12.5}, "hop", "hop: must be a whole number"),
        ({"notes": {"min_confidence": True}}, "notes.min_confidence", "notes.min_confidence: must be a number"),
        ({"onset": {"delta": "high"}}, "onset.delta", "onset.delta: must be a number"),
        ({"onset": {"window": 1000}}, "onset.window", "onset.window: must be a power of two"),
        ({"sample_rate": 8000, "pitch": {"fmin_hz": 400}}, "pitch.fmin_hz", "pitch.fmin_hz: gives a pitch window"),
    ],
)
def test_bad_config_names_the_key(values, key, message):
    with pytest.raises(ConfigError, match=message) as raised:
        EngineConfig(values)
    assert isinstance(raised.value, ValueError)
    assert raised.value.key == key and raised.value.reason in str(raised.value)


def test_live_params_are_the_engines_ranges():
    """The table the bridge and the TUI read: every entry is enforced by the engine at its limits."""
    params = EngineConfig.live_params()
    assert [p["key"] for p in params] == ["onset.delta", "notes.silence_db", "notes.min_confidence",
                                          "notes.tuning_hz", "notes.scale_root", "notes.scale_mode"]
    assert [p["key"] for p in params if p["whole"]] == ["notes.scale_root", "notes.scale_mode"]
    for p in params:
        assert p["lo"] <= p["default"] <= p["hi"] and p["lo"] < p["hi"] and p["doc"]
        an = Analyzer()
        an.set_param(p["key"], p["lo"])
        an.set_param(p["key"], p["hi"])
        for bad in (p["lo"] - 1, p["hi"] + 1, *([p["lo"] + 0.5] if p["whole"] else [])):
            with pytest.raises(ConfigError) as raised:
                an.set_param(p["key"], bad)
            assert raised.value.key == p["key"]


def test_bad_blocks_are_refused_and_input_is_not_mutated():
    an = Analyzer()
    with pytest.raises(TypeError):
        an.process(np.zeros(256, np.float64))
    with pytest.raises(ValueError, match="1-D"):
        an.process(np.zeros((2, 128), np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        an.process(np.zeros(512, np.float32)[::2])
    assert an.process(np.zeros(0, np.float32)) == []
    x = harmonic(60, 0.2)
    before = x.copy()
    an.process(x)
    np.testing.assert_array_equal(x, before)
    assert an.position == len(x)


@pytest.mark.parametrize("midi", [28, 33, 40, 45, 52, 57, 64, 69, 76, 81, 88, 93, 96])
@pytest.mark.parametrize("harmonics", [1, 5])
def test_pitch_within_ten_cents_from_e1_to_c7(midi, harmonics):
    config = EngineConfig({"pitch": {"fmax_hz": 2200}})
    events = run(harmonic(midi, 0.5, harmonics=harmonics), [512], config)
    voiced = [e for e in events if e["type"] == "pitch" and e["voiced"]]
    assert len(voiced) > 100
    steady = voiced[len(voiced) // 4 : -len(voiced) // 4]
    errors = [abs(e["midi"] - midi) * 100 for e in steady]
    assert max(errors) < 10, f"worst {max(errors):.1f} cents"


def test_melody_gives_its_notes_and_onsets():
    notes = [(45, 0.3), (52, 0.25), (57, 0.25), (64, 0.2), (69, 0.2), (76, 0.2), (81, 0.2)]
    x, truth = melody(notes)
    events = run(x, [1024])
    ons = [e for e in events if e["type"] == "note_on"]
    offs = [e for e in events if e["type"] == "note_off"]
    assert [e["note"] for e in ons] == [m for _, m in truth]
    assert [e["note"] for e in offs] == [m for _, m in truth]
    for e, (t, _) in zip(ons, truth):
        assert abs(e["t"] - t) < 0.010
    onsets = [e["t"] for e in events if e["type"] == "onset"]
    assert len(onsets) == len(truth)
    for o, (t, _) in zip(onsets, truth):
        assert abs(o - t) < 0.010


def test_live_parameters_are_validated():
    an = Analyzer()
    an.set_param("notes.silence_db", -40)
    an.set_param("onset.delta", 0.1)
    with pytest.raises(ValueError, match="notes.min_confidence"):
        an.set_param("notes.min_confidence", 2.0)
    with pytest.raises(ConfigError, match="cannot be changed while running") as raised:
        an.set_param("hop", 64)
    assert raised.value.key == "hop"


def test_a_raised_silence_gate_mutes_quiet_notes():
    x, _ = melody([(60, 0.3)])
    an = Analyzer()
    an.set_param("notes.silence_db", -3)
    events = an.process(x) + an.flush()
    assert not [e for e in events if e.kind == "note_on"]


def test_all_notes_off_closes_the_open_note():
    an = Analyzer()
    events = an.process(harmonic(67, 0.3)[: int(0.2 * SR)])
    assert [e.note for e in events if e.kind == "note_on"] == [67]
    offs = an.all_notes_off()
    assert [(e.kind, e.note) for e in offs] == [("note_off", 67)]
    assert an.all_notes_off() == []


def test_markings_span_ppp_to_fff():
    assert [marking_for_db(db) for db in (-60, -45, -38, -30, -20, -15, -8, -1)] == [
        "ppp", "pp", "p", "mp", "mf", "f", "ff", "fff"
    ]


_SIGNAL, _ = melody([(48, 0.15), (60, 0.12), (72, 0.12)], gap=0.04)
_REFERENCE = run(_SIGNAL, [128])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=8192), min_size=1, max_size=20))
def test_events_do_not_depend_on_block_split(blocks):
    assert run(_SIGNAL, blocks) == _REFERENCE


def test_bridge_and_tui_read_the_engines_live_table():
    """One source for the live keys: the bridge's table is the engine's, and the TUI
    presents exactly those keys (steps stay inside the engine's range)."""
    from bridge import params
    from tui import params as tui_params

    engine = {p["key"]: p for p in EngineConfig.live_params()}
    assert list(params.PARAMS) == list(engine) == list(tui_params.PARAMS)
    for key, p in params.PARAMS.items():
        assert (p.lo, p.hi, p.doc) == (engine[key]["lo"], engine[key]["hi"], engine[key]["doc"])
        assert params.values(EngineConfig())[key] == p.default
        control = tui_params.PARAMS[key]
        assert control.stepped(p.hi, 1) == p.hi and control.stepped(p.lo, -1) == p.lo
        for bad in (p.lo - 1, p.hi + 1, float("nan"), True, 10**400):
            with pytest.raises(ValueError, match=key):
                p.check(bad)
