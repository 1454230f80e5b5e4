"""Per-hop cost of daw-bridge's engine against aubio, on identical audio, in one run.

Both analyse the same minute of corpus audio at 48 kHz with the same window and
hop: aubio yinfast (window 2048) plus specflux (window 1024), hop 128, one
Python call per hop for each; the engine configured with pitch window 2048 and
onset window 1024, fed 128-frame blocks, one ``process()`` call per hop. Both
loops are the same Python loop over the same pre-cut blocks, so the figures
include the Python call path a live bridge pays. Each contender runs several
times, interleaved; the fastest run counts (the least disturbed by the machine).

For context the engine is also timed fed 1024-frame blocks (fewer Python calls
for the same hops) and with its default (pitch-adaptive) window.

Usage: python -m bench.speed [--seconds 60] [--repeats 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from bench import corpus

SR = 48_000
HOP = 128
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "speed.json"


def corpus_audio(seconds: float) -> np.ndarray:
    """The first ``seconds`` of the clean corpus recordings, back to back."""
    parts, total = [], 0
    for item in corpus.load():
        if item.condition != "clean":
            continue
        audio, sr = sf.read(item.wav, dtype="float32")
        if sr != SR:
            raise RuntimeError(f"{item.wav}: {sr} Hz, expected {SR}")
        parts.append(audio)
        total += len(audio)
        if total >= seconds * SR:
            break
    audio = np.concatenate(parts)[: round(seconds * SR)]
    return audio[: len(audio) // HOP * HOP]


def blocks_of(audio: np.ndarray, size: int) -> list[np.ndarray]:
    return [audio[i:i + size] for i in range(0, len(audio), size)]


def aubio_runner(blocks: list[np.ndarray]) -> Callable[[], None]:
    import aubio

    def run() -> None:
        pitch = aubio.pitch("yinfast", 2048, HOP, SR)
        onset = aubio.onset("specflux", 1024, HOP, SR)
        for block in blocks:
            pitch(block)
            onset(block)

    return run


def engine_runner(blocks: list[np.ndarray], values: dict) -> Callable[[], None]:
    from rust_engine import Analyzer, EngineConfig

    config = EngineConfig({"sample_rate": SR, "hop": HOP, **values})

    def run() -> None:
        an = Analyzer(config)
        for block in blocks:
            an.process(block)

    return run


FEATURES = {"features": {"bands_enabled": 1, "spectrum_enabled": 1, "chroma_enabled": 1}}
"""Every spectral feature on (the default config computes none)."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args()
    try:
        import rust_engine  # noqa: F401
    except ImportError as exc:
        print(f"speed: daw-bridge engine not importable ({exc})", file=sys.stderr)
        return 2
    audio = corpus_audio(args.seconds)
    n_hops = len(audio) // HOP
    seconds = len(audio) / SR
    same = {"pitch": {"window": 2048}, "onset": {"window": 1024}}
    runs = {
        "aubio yinfast 2048 + specflux 1024, 128-frame calls": aubio_runner(blocks_of(audio, HOP)),
        "engine pitch 2048 + onset 1024, 128-frame calls": engine_runner(blocks_of(audio, HOP), same),
        "engine pitch 2048 + onset 1024, 1024-frame calls": engine_runner(blocks_of(audio, 1024), same),
        "engine default config, 128-frame calls": engine_runner(blocks_of(audio, HOP), {}),
        "engine default + all spectral features, 128-frame calls": engine_runner(blocks_of(audio, HOP), FEATURES),
    }
    best = {name: float("inf") for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t0)
    import aubio

    print(f"{seconds:.1f} s of corpus audio at {SR} Hz, {n_hops} hops of {HOP}, "
          f"best of {args.repeats}; {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, aubio {aubio.version}")
    print(f"{'contender':54} {'us/hop':>8} {'x real time':>12}")
    results = {}
    for name, secs in best.items():
        us = secs / n_hops * 1e6
        results[name] = {"us_per_hop": us, "x_real_time": seconds / secs}
        print(f"{name:54} {us:8.2f} {seconds / secs:12.0f}")
    names = list(runs)
    ratio = best[names[0]] / best[names[1]]
    print(f"\nengine is {ratio:.2f}x faster than aubio per hop (same window, hop and call path)")
    features_us = (best[names[4]] - best[names[3]]) / n_hops * 1e6
    print(f"bands, spectrum and chroma cost {features_us:.2f} us/hop more than the default config")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"seconds": seconds, "hops": n_hops, "results": results,
                                     "ratio_aubio_over_engine": ratio,
                                     "features_us_per_hop": features_us}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
