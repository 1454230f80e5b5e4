"""Spectral features (bands, spectrum, chroma): the engine's events through the
Python bindings, the JSON-lines log, and OSC to a real UDP receiver."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rust_engine import Analyzer, EngineConfig, Event

from bridge.addresses import FEATURE_KINDS, OSC_MESSAGES
from bridge.config import BridgeError, load, with_features
from bridge.osc_out import OscSender
from udp_capture import UdpCapture

SR = 48_000
HOP = 128
ALL_ON = {"features": {f"{k}_enabled": 1 for k in FEATURE_KINDS}}


def sine(hz: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def noise(seconds: float, amp: float = 0.3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-amp, amp, int(seconds * SR)).astype(np.float32)


def analyse(audio: np.ndarray, settings: dict[str, Any] = ALL_ON, block: int = 4096) -> list[Event]:
    analyzer = Analyzer(EngineConfig(settings))
    events = []
    for start in range(0, len(audio), block):
        events += analyzer.process(np.ascontiguousarray(audio[start : start + block]))
    return events + analyzer.flush()


def last(events: list[Event], kind: str) -> Event:
    return [e for e in events if e.kind == kind][-1]


def test_a_sine_at_440_is_band_3_centroid_440_and_pitch_class_a() -> None:
    events = analyse(sine(440.0, 1.0))
    bands, spectrum, chroma = (last(events[:-10], k) for k in FEATURE_KINDS)
    assert len(bands.band_db) == len(bands.level) == 8
    assert int(np.argmax(bands.band_db)) == 3  # 377-795 Hz with the default edges
    assert bands.level[3] == pytest.approx(1.0, abs=1e-3)
    assert spectrum.centroid_hz == pytest.approx(440.0, abs=25.0)
    assert spectrum.flatness < 0.1
    assert 377 < spectrum.rolloff_hz < 600
    assert int(np.argmax(chroma.chroma)) == 9 and len(chroma.chroma) == 12
    assert sum(chroma.chroma) == pytest.approx(1.0, abs=1e-5)


def test_noise_is_flat_and_lowpassed_noise_rolls_off_below_the_cutoff() -> None:
    white = noise(1.0)
    spectra = [e for e in analyse(white) if e.kind == "spectrum"][20:-10]
    assert np.mean([e.flatness for e in spectra]) > 0.5
    # Brick-wall low-pass at 2 kHz: the bins above it zeroed.
    spectrum = np.fft.rfft(white)
    spectrum[np.fft.rfftfreq(len(white), 1 / SR) > 2000] = 0
    low = np.fft.irfft(spectrum, len(white)).astype(np.float32)
    spectra = [e for e in analyse(low) if e.kind == "spectrum"][20:-10]
    assert all(e.rolloff_hz < 2000 for e in spectra)
    assert np.mean([e.flatness for e in spectra]) < 0.5


def test_visual_values_are_0_to_1_and_auto_gained() -> None:
    audio = sine(330.0, 2.0) + noise(2.0, 0.05)
    loud = analyse(audio)
    quiet = analyse((audio * 0.03).astype(np.float32))
    for e in loud + quiet:
        assert all(0.0 <= v <= 1.0 for v in e.level), e
    for kind in ("bands", "chroma"):
        a, b = last(loud[:-10], kind).level, last(quiet[:-10], kind).level
        assert np.max(np.abs(np.subtract(a, b))) < 0.05, kind
    assert last(loud[:-10], "bands").band_db[3] - last(quiet[:-10], "bands").band_db[3] == pytest.approx(30.5, abs=0.5)


def test_features_are_off_by_default_and_each_kind_switches_alone() -> None:
    audio = sine(440.0, 0.3)
    assert not [e for e in analyse(audio, {}) if e.kind in FEATURE_KINDS]
    only = analyse(audio, {"features": {"chroma_enabled": 1}})
    assert {e.kind for e in only} & set(FEATURE_KINDS) == {"chroma"}
    # Turning the features on changes nothing else.
    strip = [e.to_dict() for e in analyse(audio) if e.kind not in FEATURE_KINDS]
    assert strip == [e.to_dict() for e in analyse(audio, {})]


def test_the_same_events_for_any_block_split() -> None:
    audio = np.concatenate([sine(220.0, 0.3), noise(0.3), sine(660.0, 0.2)])
    reference = [e.to_dict() for e in analyse(audio, block=HOP)]
    for block in (1000, 8192, 77):
        assert [e.to_dict() for e in analyse(audio, block=block)] == reference


def test_bad_feature_settings_name_their_key() -> None:
    from rust_engine import ConfigError

    for key, value in (("bands", 17), ("bands_enabled", 2), ("low_hz", 5.0), ("attack_ms", -1.0)):
        with pytest.raises(ConfigError) as e:
            EngineConfig({"features": {key: value}})
        assert e.value.key == f"features.{key}"


def test_analyze_writes_the_features_to_the_events_log(cli, tmp_path: Path) -> None:
    import soundfile

    wav, log, cfg = tmp_path / "a.wav", tmp_path / "e.jsonl", tmp_path / "c.toml"
    soundfile.write(wav, sine(440.0, 0.5), SR, subtype="FLOAT")
    cfg.write_text("[engine.features]\nbands_enabled = 1\nspectrum_enabled = 1\nchroma_enabled = 1\nbands = 4\n")
    result = cli("analyze", str(wav), "--events", str(log), "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    by_kind = {k: [d for d in lines if d["type"] == k] for k in FEATURE_KINDS}
    hops = sum(d["type"] == "dynamics" for d in lines)
    assert all(len(v) == hops for v in by_kind.values())
    assert set(by_kind["bands"][-1]) == {"t", "type", "db", "level"} and len(by_kind["bands"][-1]["db"]) == 4
    assert set(by_kind["spectrum"][-1]) == {"t", "type", "centroid_hz", "flatness", "rolloff_hz", "level"}
    assert by_kind["chroma"][-20]["energy"][9] == pytest.approx(1.0, abs=1e-3)
    # Without the settings the log is as before.
    assert cli("analyze", str(wav), "--events", str(log)).returncode == 0
    assert not [line for line in log.read_text().splitlines() if '"bands"' in line]


def test_osc_switches_are_booleans_and_turn_the_engine_on(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[osc]\nbands = true\n")
    assert load(cfg)["osc"]["bands"] is True
    cfg.write_text("[osc]\nchroma = 1\n")
    with pytest.raises(BridgeError, match="osc.chroma: must be true or false"):
        load(cfg)
    engine = {"features": {"bands": 4}, "hop": 128}
    on = with_features(engine, ["bands", "chroma"])
    assert on["features"] == {"bands": 4, "bands_enabled": 1, "chroma_enabled": 1}
    assert engine == {"features": {"bands": 4}, "hop": 128}, "the caller's table is left alone"


# --- OSC to a real UDP receiver ----------------------------------------------------------


@pytest.fixture
def raw() -> Iterator[UdpCapture]:
    receiver = UdpCapture()
    yield receiver
    receiver.close()


def send_blocks(sender: OscSender, audio: np.ndarray, settings: dict[str, Any] = ALL_ON) -> float:
    """Sends ``audio``'s events block by block as the live bridge does; returns the end time."""
    analyzer = Analyzer(EngineConfig(settings))
    t0 = time.time() - 60.0
    for i, start in enumerate(range(0, len(audio), HOP)):
        sender.send_block(analyzer.process(np.ascontiguousarray(audio[start : start + HOP])), t0 + i * HOP / SR)
        time.sleep(0.0002)
    return t0 + len(audio) / SR


def received(raw: UdpCapture, expected: int) -> list[tuple[str, list[Any]]]:
    deadline = time.monotonic() + 10
    while len(raw.messages()) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return [(m.address, list(m.params)) for m in raw.messages()]


def test_osc_sends_bands_spectrum_and_chroma_rate_limited(raw: UdpCapture) -> None:
    with OscSender([("127.0.0.1", raw.port)], rate_hz=50.0, features=FEATURE_KINDS) as sender:
        send_blocks(sender, sine(440.0, 1.0))
        expected = sender.stats()[f"127.0.0.1:{raw.port}"].messages
    messages = received(raw, expected)
    assert len(messages) == expected
    for kind, count in (("bands", 8), ("spectrum", 3), ("chroma", 12)):
        values = [args for a, args in messages if a == f"/bridge/{kind}"]
        # One value per 1/50 s of a 1 s stream, not one per hop (375).
        assert 45 <= len(values) <= 51, kind
        assert all(len(v) == count and all(isinstance(x, float) for x in v) for v in values), kind
    bands = [args for a, args in messages if a == "/bridge/bands"]
    assert all(0.0 <= x <= 1.0 for v in bands for x in v)
    assert int(np.argmax(bands[-1])) == 3
    centroid, flatness, rolloff = [args for a, args in messages if a == "/bridge/spectrum"][-1]
    assert centroid == pytest.approx(440.0, abs=25.0) and flatness < 0.1 and rolloff > centroid
    chroma = [args for a, args in messages if a == "/bridge/chroma"][-1]
    assert int(np.argmax(chroma)) == 9 and max(chroma) == pytest.approx(1.0, abs=1e-3)
    assert [s.signature for s in (OSC_MESSAGES["bands"], OSC_MESSAGES["chroma"])] == ["f:level x N", "f:level x 12"]


def test_osc_sends_only_the_features_switched_on(raw: UdpCapture) -> None:
    # The engine computes all three (another consumer may want them); OSC sends its own choice.
    with OscSender([("127.0.0.1", raw.port)], features=["spectrum"]) as sender:
        send_blocks(sender, sine(440.0, 0.3))
        expected = sender.stats()[f"127.0.0.1:{raw.port}"].messages
    addresses = {a for a, _ in received(raw, expected)}
    assert "/bridge/spectrum" in addresses and not addresses & {"/bridge/bands", "/bridge/chroma"}
    with pytest.raises(ValueError, match="unknown OSC feature 'tempo'"):
        OscSender([], features=["tempo"])


def test_osc_features_in_silence_once_then_quiet(raw: UdpCapture) -> None:
    audio = np.concatenate([sine(440.0, 0.5), np.zeros(2 * SR, np.float32)])
    with OscSender([("127.0.0.1", raw.port)], features=FEATURE_KINDS) as sender:
        end = send_blocks(sender, audio)
        expected = sender.stats()[f"127.0.0.1:{raw.port}"].messages
    bundles = raw.bundles()
    deadline = time.monotonic() + 10
    while sum(len(list(b)) for b in bundles) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
        bundles = raw.bundles()
    for kind in FEATURE_KINDS:
        sent = [(b.timestamp, m.params) for b in bundles for m in b if m.address == f"/bridge/{kind}"]
        # The stream stops well before the end of the 2 s of silence, its last value silent.
        assert sent[-1][0] < end - 0.5, kind
        assert max(sent[-1][1]) < 1e-3 if kind != "spectrum" else sent[-1][1][0] == 0.0


# --- end to end: `daw-bridge run` on a real jackd ----------------------------------------


def test_run_sends_the_switched_on_features_over_osc_and_logs_them(
    jack_server, bridges, players, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.signals import melody_audio

    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    osc = UdpCapture()
    cfg, log = tmp_path / "c.toml", tmp_path / "e.jsonl"
    cfg.write_text("[osc]\nbands = true\nchroma = true\nrate_hz = 50.0\n\n[engine.features]\nbands = 6\n")
    bridge = bridges(jack_server, "flt-feat", "--config", str(cfg), "--osc", f"127.0.0.1:{osc.port}", "--events", str(log))
    audio, _ = melody_audio([60, 64, 67])  # C4, E4, G4
    try:
        player = players("flt-feat-player", audio)
        player.start(["flt-feat:in_1"])
        assert player.wait_finished(30), bridge.report()
        time.sleep(0.5)
    finally:
        bridge.stop()
        osc.close()
    messages = [(m.address, list(m.params)) for m in osc.messages()]
    bands = [args for a, args in messages if a == "/bridge/bands"]
    chroma = [args for a, args in messages if a == "/bridge/chroma"]
    assert bands and chroma, bridge.report()
    assert not [a for a, _ in messages if a == "/bridge/spectrum"], "spectrum was not switched on"
    assert all(len(b) == 6 and all(0.0 <= x <= 1.0 for x in b) for b in bands)
    assert all(len(c) == 12 for c in chroma)
    # While a note sounds, the strongest class is one of the melody's: C, E or G.
    sounding = [c for c in chroma if max(c) > 0.99]
    assert len(sounding) > 10
    assert {int(np.argmax(c)) for c in sounding} <= {0, 4, 7}
    assert {int(np.argmax(c)) for c in sounding} == {0, 4, 7}
    # Rate-limited: a 1.5 s run at 50 Hz sends tens of values, not a value per hop.
    assert len(bands) < 50 * (len(audio) / SR + 3)
    # The events log holds what the engine computed for OSC.
    kinds = [json.loads(line)["type"] for line in log.read_text().splitlines()]
    assert kinds.count("bands") == kinds.count("chroma") == kinds.count("dynamics") > 0
    assert "spectrum" not in kinds
