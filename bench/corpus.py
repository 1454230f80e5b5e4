"""Builds the accuracy corpus: real monophonic melodies rendered with FluidSynth.

The melodies come from music21's bundled corpus (Bach chorale voices, Essen and
Irish folk tunes), transposed so the set spans bass to soprano, written as
Standard MIDI Files with mido, rendered by FluidSynth through Debian's General
MIDI SoundFont at 48 kHz mono, once clean and once with white noise at 20 dB
SNR. Ground truth comes from the MIDI itself, so it is exact: notes (onset,
offset, pitch), onsets, and a reference f0 series on a 10 ms grid (see
reference_f0 for how note changes are labelled).

Everything is deterministic (fixed tempi, velocities from a seeded generator,
noise from a seeded generator), so the corpus is rebuilt identically on any
machine with the same music21 and FluidSynth; it is cached and only rebuilt
when its specification changes.

Usage: python -m bench.corpus [--out DIR] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

SAMPLE_RATE = 48_000
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
DEFAULT_DIR = Path(__file__).resolve().parent / ".corpus"
F0_HOP_S = 0.01
NOISE_SNR_DB = 20.0
LEAD_IN_S = 0.5
TAIL_S = 1.0
PEAK = 0.5
"""Peak level of the clean renderings (-6 dBFS): loud enough, never clipped."""
TICKS_PER_BEAT = 480
TICKS_PER_SECOND = 960
"""At the default tempo of 120 bpm; ground truth uses tick-exact times."""
CONDITIONS = ("clean", "noisy")
# Bump when the rendering or truth format changes, so caches are rebuilt.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Piece:
    """One corpus file: which melody, played how."""

    name: str
    source: str
    part: int
    number: int | None
    program: int
    """General MIDI program, 0-based (0 piano, 73 flute...)."""
    instrument: str
    transpose: int
    bpm: float
    articulation: float
    """Sounding fraction of each written note: 1.0 legato, < 1 detached."""
    max_seconds: float = 40.0


# Left out after checking every note's rendered pitch: FluidR3's "Choir Aahs"
# is an ensemble patch detuned by up to 50 cents, and its "Bassoon" sounds keys
# 56-58 an octave high; neither gives a MIDI pitch one can score against.
PIECES: tuple[Piece, ...] = (
    Piece("bwv66-soprano-voice", "bach/bwv66.6", 0, None, 53, "voice oohs", 0, 72, 1.0),
    Piece("bwv66-bass-cello", "bach/bwv66.6", 3, None, 42, "cello", 0, 72, 1.0),
    Piece("bwv1-soprano-flute", "bach/bwv1.6", 1, None, 73, "flute", 12, 120, 1.0),
    Piece("bwv26-bass-acbass", "bach/bwv26.6", 3, None, 32, "acoustic bass", -8, 80, 0.9),
    Piece("bwv40-tenor-tenorsax", "bach/bwv40.8", 2, None, 66, "tenor sax", 0, 120, 1.0),
    Piece("bwv269-alto-altosax", "bach/bwv269", 1, None, 65, "alto sax", 0, 100, 1.0),
    Piece("bwv40-bass-trombone", "bach/bwv40.8", 3, None, 57, "trombone", 0, 120, 0.95),
    Piece("bwv269-bass-piano", "bach/bwv269", 3, None, 0, "piano", -12, 100, 0.9),
    Piece("essen-han1-clarinet", "essenFolksong/han1", 0, 1, 71, "clarinet", -5, 100, 1.0),
    Piece("essen-ballad10-violin", "essenFolksong/ballad10", 0, 1, 40, "violin", 12, 160, 1.0),
    Piece("essen-altdeu10-piano", "essenFolksong/altdeu10", 0, 3, 0, "piano", 0, 80, 0.9),
    Piece("ryans-acacia-oboe", "ryansMammoth/AcaciaReel", 0, None, 68, "oboe", 0, 80, 0.95),
    Piece("oneills-1-trumpet", "oneills1850/0001-0050", 0, 1, 56, "trumpet", -5, 90, 0.9),
)


@dataclass(frozen=True)
class Note:
    onset: float
    offset: float
    midi: int
    velocity: int


def spec_hash() -> str:
    """Identifies everything the corpus depends on, to decide whether a cache is stale."""
    import music21

    text = json.dumps(
        {
            "format": FORMAT_VERSION,
            "pieces": [asdict(p) for p in PIECES],
            "sr": SAMPLE_RATE,
            "snr": NOISE_SNR_DB,
            "music21": music21.__version__,
            "fluidsynth": fluidsynth_version(),
            "soundfont_size": SOUNDFONT.stat().st_size,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fluidsynth_version() -> str:
    out = subprocess.run(["fluidsynth", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def extract_melody(piece: Piece) -> list[Note]:
    """One strictly monophonic line: ties merged, grace notes and chords reduced.

    Simultaneous notes keep the highest pitch, and every note ends at the latest
    when the next one starts, so FluidSynth never sounds two keys at once (only
    the instrument's own release tail overlaps the next note, as in a real
    recording).
    """
    from music21 import corpus

    score = corpus.parse(piece.source, number=piece.number) if piece.number else corpus.parse(piece.source)
    part = score.parts[piece.part].stripTies()
    sec_per_ql = 60.0 / piece.bpm
    rng = np.random.default_rng(zlib.crc32(piece.name.encode()))
    raw: dict[float, tuple[float, int]] = {}
    for n in part.flatten().notes:
        if n.duration.isGrace or n.quarterLength <= 0:
            continue
        start = float(n.offset)
        midi = max(p.midi for p in n.pitches) + piece.transpose
        if start not in raw or midi > raw[start][1]:
            raw[start] = (float(n.quarterLength), midi)
    starts = sorted(raw)
    notes: list[Note] = []
    for i, start in enumerate(starts):
        ql, midi = raw[start]
        onset = LEAD_IN_S + start * sec_per_ql
        if onset - LEAD_IN_S >= piece.max_seconds:
            break
        end = start + ql
        if i + 1 < len(starts):
            end = min(end, starts[i + 1])
        offset = onset + (end - start) * sec_per_ql * piece.articulation
        offset = min(offset, LEAD_IN_S + piece.max_seconds)
        velocity = int(np.clip(round(90 + rng.normal(0, 8)), 60, 120))
        # Snap to MIDI ticks so the truth equals what FluidSynth is told to play.
        on_t, off_t = round(onset * TICKS_PER_SECOND), round(offset * TICKS_PER_SECOND)
        if off_t - on_t >= 0.03 * TICKS_PER_SECOND:
            notes.append(Note(on_t / TICKS_PER_SECOND, off_t / TICKS_PER_SECOND, midi, velocity))
    check_monophonic(notes)
    return notes


def check_monophonic(notes: list[Note]) -> None:
    for a, b in itertools.pairwise(notes):
        if b.onset < a.offset or b.onset <= a.onset:
            raise AssertionError(f"overlapping notes: {a} {b}")
    if not notes:
        raise AssertionError("empty melody")


def write_midi(notes: list[Note], program: int, path: Path) -> None:
    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
    track.append(mido.Message("program_change", program=program, channel=0, time=0))
    # (tick, order, message): note_off sorts before note_on at the same tick.
    events: list[tuple[int, int, mido.Message]] = []
    for n in notes:
        on, off = round(n.onset * TICKS_PER_SECOND), round(n.offset * TICKS_PER_SECOND)
        events.append((on, 1, mido.Message("note_on", note=n.midi, velocity=n.velocity, channel=0)))
        events.append((off, 0, mido.Message("note_off", note=n.midi, velocity=0, channel=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    last = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    end_tick = last + round(TAIL_S * TICKS_PER_SECOND)
    track.append(mido.MetaMessage("end_of_track", time=end_tick - last))
    mid.save(path)


def render(midi_path: Path, duration_s: float, normalise: bool = True) -> np.ndarray:
    """Renders with reverb and chorus off (they would smear the melody), downmixed
    to mono, normalised to ``PEAK`` unless told not to."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "render.wav"
        subprocess.run(
            ["fluidsynth", "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "0.5",
             "-r", str(SAMPLE_RATE), "-O", "float", "-T", "wav", "-F", str(wav),
             str(SOUNDFONT), str(midi_path)],
            check=True, capture_output=True,
        )
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise RuntimeError(f"FluidSynth rendered at {sr} Hz, expected {SAMPLE_RATE}")
    mono = audio.mean(axis=1)
    n = round(duration_s * SAMPLE_RATE)
    mono = np.pad(mono, (0, max(0, n - len(mono))))[:n]
    if normalise:
        mono = mono * (PEAK / np.max(np.abs(mono)))
    return mono.astype(np.float32)


def add_noise(clean: np.ndarray, notes: list[Note], snr_db: float, seed: int) -> np.ndarray:
    """White noise at ``snr_db`` below the signal's RMS while notes sound."""
    active = np.zeros(len(clean), dtype=bool)
    for n in notes:
        active[round(n.onset * SAMPLE_RATE):round(n.offset * SAMPLE_RATE)] = True
    rms = float(np.sqrt(np.mean(clean[active].astype(np.float64) ** 2)))
    noise = np.random.default_rng(seed).standard_normal(len(clean)) * rms / 10 ** (snr_db / 20)
    noisy = clean + noise.astype(np.float32)
    return np.clip(noisy, -1.0, 1.0).astype(np.float32)


def reference_f0(
    notes: list[Note], program: int, duration_s: float, tmp: Path
) -> tuple[np.ndarray, np.ndarray]:
    """f0 in Hz on a 10 ms grid: the pitch you hear, 0 where no note is held.

    A held note is voiced from its MIDI note-on to its note-off (release tails
    are unvoiced). Its pitch, though, is not simply the MIDI note's: at each
    note change the previous note's release tail overlaps the new note's
    attack, and with slow-attack patches (FluidR3's cello, violin, flute) the
    old pitch stays the louder one for 30-100 ms. Labelling those frames with
    the new note would charge every pitch tracker for physics, so the even and
    the odd notes are rendered separately and each frame takes the pitch of the
    louder of the two.
    """
    renders = []
    for parity in (0, 1):
        path = tmp / f"parity{parity}.mid"
        write_midi(notes[parity::2], program, path)
        renders.append(render(path, duration_s, normalise=False))
    times = np.arange(0.0, duration_s, F0_HOP_S)
    half = round(F0_HOP_S * SAMPLE_RATE / 2)
    energy = np.zeros((2, len(times)))
    for parity, audio in enumerate(renders):
        sq = np.concatenate(([0.0], np.cumsum(audio.astype(np.float64) ** 2)))
        centre = np.round(times * SAMPLE_RATE).astype(int)
        lo, hi = np.clip(centre - half, 0, len(audio)), np.clip(centre + half, 0, len(audio))
        energy[parity] = sq[hi] - sq[lo]
    f0 = np.zeros_like(times)
    for k, n in enumerate(notes):
        held = np.flatnonzero((times >= n.onset) & (times < n.offset))
        if k == 0 or held.size == 0:
            f0[held] = midi_hz(n.midi)
            continue
        prev = notes[k - 1]
        louder_prev = energy[(k - 1) % 2, held] > energy[k % 2, held]
        # Only while the previous note has not yet been overtaken: once the new
        # note dominates it keeps the label (no flapping in a tail's beating).
        overtaken = np.cumsum(~louder_prev) > 0
        f0[held] = np.where(louder_prev & ~overtaken, midi_hz(prev.midi), midi_hz(n.midi))
    return times, f0


def midi_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def build_piece(piece: Piece, out: Path, seed: int) -> dict:
    notes = extract_melody(piece)
    duration = notes[-1].offset + TAIL_S
    midi_path = out / f"{piece.name}.mid"
    write_midi(notes, piece.program, midi_path)
    clean = render(midi_path, duration)
    sf.write(out / f"{piece.name}.clean.wav", clean, SAMPLE_RATE, subtype="FLOAT")
    noisy = add_noise(clean, notes, NOISE_SNR_DB, seed)
    sf.write(out / f"{piece.name}.noisy.wav", noisy, SAMPLE_RATE, subtype="FLOAT")
    with tempfile.TemporaryDirectory() as tmp:
        _times, f0 = reference_f0(notes, piece.program, duration, Path(tmp))
    truth = {
        "notes": [[n.onset, n.offset, n.midi] for n in notes],
        "onsets": [n.onset for n in notes],
        "f0_hop_s": F0_HOP_S,
        "f0_hz": [round(float(x), 4) for x in f0],
    }
    (out / f"{piece.name}.truth.json").write_text(json.dumps(truth))
    midis = [n.midi for n in notes]
    return {
        **asdict(piece),
        "duration_s": round(duration, 3),
        "n_notes": len(notes),
        "lowest": min(midis),
        "highest": max(midis),
        "shortest_note_s": round(min(n.offset - n.onset for n in notes), 3),
        "noise_seed": seed,
    }


def build(out: Path = DEFAULT_DIR, force: bool = False) -> dict:
    """Builds the corpus into ``out`` unless an identical one is already there."""
    manifest_path = out / "manifest.json"
    spec = spec_hash()
    if not force and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("spec") == spec:
            return manifest
    if not SOUNDFONT.exists():
        raise FileNotFoundError(f"{SOUNDFONT} missing: apt-get install fluid-soundfont-gm")
    # Build into a sibling folder and swap it in, so a failed build leaves no half corpus.
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    items = [build_piece(p, tmp, seed=1000 + i) for i, p in enumerate(PIECES)]
    manifest = {
        "spec": spec,
        "sample_rate": SAMPLE_RATE,
        "snr_db": NOISE_SNR_DB,
        "conditions": list(CONDITIONS),
        "items": items,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return manifest


@dataclass
class Item:
    """One corpus recording with its truth, as the benchmarks consume it."""

    name: str
    instrument: str
    condition: str
    wav: Path
    notes: np.ndarray
    """(n, 3): onset s, offset s, MIDI note."""
    onsets: np.ndarray
    f0_times: np.ndarray
    f0_hz: np.ndarray


def load(out: Path = DEFAULT_DIR) -> list[Item]:
    """Builds the corpus if needed and returns every (piece, condition) recording."""
    manifest = build(out)
    items: list[Item] = []
    for meta in manifest["items"]:
        truth = json.loads((out / f"{meta['name']}.truth.json").read_text())
        f0 = np.asarray(truth["f0_hz"], dtype=float)
        for cond in manifest["conditions"]:
            items.append(
                Item(
                    name=meta["name"],
                    instrument=meta["instrument"],
                    condition=cond,
                    wav=out / f"{meta['name']}.{cond}.wav",
                    notes=np.asarray(truth["notes"], dtype=float),
                    onsets=np.asarray(truth["onsets"], dtype=float),
                    f0_times=np.arange(len(f0)) * truth["f0_hop_s"],
                    f0_hz=f0,
                )
            )
    return items


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_DIR, help="cache folder (default bench/.corpus)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the cache is current")
    args = ap.parse_args()
    try:
        manifest = build(args.out, args.force)
    except (OSError, subprocess.CalledProcessError, AssertionError) as exc:
        print(f"corpus: {exc}", file=sys.stderr)
        return 2
    total = 0.0
    print(f"{'file':28} {'instrument':14} {'notes':>5} {'range':>9} {'dur s':>6}")
    for it in manifest["items"]:
        total += it["duration_s"]
        print(f"{it['name']:28} {it['instrument']:14} {it['n_notes']:5d} "
              f"{it['lowest']:4d}-{it['highest']:<4d} {it['duration_s']:6.1f}")
    print(f"{len(manifest['items'])} pieces x {len(manifest['conditions'])} conditions, "
          f"{total:.0f} s per condition, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
