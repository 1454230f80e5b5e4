//! Test signals shared by the integration tests.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use rust_engine::{Analyzer, EngineConfig, Event, EventData};

pub const SR: f32 = 48_000.0;

pub fn midi_to_hz(midi: f32) -> f32 {
    440.0 * 2f32.powf((midi - 69.0) / 12.0)
}

/// A harmonic tone (1/h amplitudes) with a 5 ms attack and a 20 ms release.
pub fn tone(midi: f32, seconds: f32, amp: f32) -> Vec<f32> {
    let hz = midi_to_hz(midi);
    let n = (seconds * SR) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / SR;
            let env = (t / 0.005).min(1.0).min((seconds - t) / 0.02).max(0.0);
            let v: f32 = (1..=5).map(|h| (2.0 * std::f32::consts::PI * hz * h as f32 * t).sin() / h as f32).sum();
            amp * env * v
        })
        .collect()
}

/// A continuous-phase harmonic line at constant level: notes change with no gap.
pub fn legato(notes: &[(f32, f32)], amp: f32) -> Vec<f32> {
    let mut phase = 0.0f32;
    let mut x = Vec::new();
    for &(midi, dur) in notes {
        let step = 2.0 * std::f32::consts::PI * midi_to_hz(midi) / SR;
        for _ in 0..(dur * SR) as usize {
            phase = (phase + step) % (2.0 * std::f32::consts::PI);
            x.push(amp * (1..=5).map(|h| (phase * h as f32).sin() / h as f32).sum::<f32>());
        }
    }
    x
}

/// Two harmonic tones cross-faded linearly over `fade` seconds starting at
/// `at` seconds: a slurred change with no attack for the spectral flux.
pub fn crossfade(from: f32, to: f32, at: f32, fade: f32, seconds: f32, amp: f32) -> Vec<f32> {
    let (a, b) = (legato(&[(from, seconds)], amp), legato(&[(to, seconds)], amp));
    a.iter()
        .zip(&b)
        .enumerate()
        .map(|(i, (&a, &b))| {
            let w = ((i as f32 / SR - at) / fade).clamp(0.0, 1.0);
            (1.0 - w) * a + w * b
        })
        .collect()
}

/// 0.1 s of silence, then a tone whose first 40 ms carry its sub-octave as
/// loud as itself (the period doubles), faded out by 60 ms, so that YIN first
/// hears the octave below; 0.1 s of silence after.
pub fn octave_low_attack(midi: f32) -> Vec<f32> {
    let silence = vec![0.0; (0.1 * SR) as usize];
    let sub = tone(midi - 12.0, 0.5, 0.3);
    let mut x = silence.clone();
    x.extend(tone(midi, 0.5, 0.3).iter().zip(&sub).enumerate().map(|(i, (&v, &s))| {
        let fade = (1.0 - (i as f32 / SR - 0.04) / 0.02).clamp(0.0, 1.0);
        v + s * fade
    }));
    x.extend(silence);
    x
}

/// A melody of (midi, seconds) notes separated by `gap` seconds of silence,
/// after 0.1 s of silence. Returns the audio and the true (onset seconds, midi).
pub fn melody(notes: &[(f32, f32)], gap: f32) -> (Vec<f32>, Vec<(f32, u8)>) {
    let mut x = vec![0.0; (0.1 * SR) as usize];
    let mut truth = Vec::new();
    for &(midi, dur) in notes {
        truth.push((x.len() as f32 / SR, midi as u8));
        x.extend(tone(midi, dur, 0.3));
        x.extend(std::iter::repeat_n(0.0, (gap * SR) as usize));
    }
    (x, truth)
}

/// Deterministic white noise in [-amp, amp].
pub fn noise(n: usize, amp: f32, seed: u32) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

/// Runs `x` through a fresh analyser in blocks of the given lengths (cycled), then flushes.
pub fn analyse(cfg: &EngineConfig, x: &[f32], blocks: &[usize]) -> Vec<Event> {
    let mut an = Analyzer::new(cfg.clone()).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    for &b in blocks.iter().cycle() {
        if pos >= x.len() {
            break;
        }
        let end = (pos + b).min(x.len());
        an.process(&x[pos..end], &mut out).unwrap();
        pos = end;
    }
    an.flush(&mut out);
    out
}

/// The notes a transcription keeps: those not retracted (note-off at their own start).
pub fn kept(notes: &[(f32, u8, f32)]) -> Vec<(f32, u8, f32)> {
    notes.iter().copied().filter(|n| n.2 > n.0).collect()
}

/// (note-on seconds, note, note-off seconds) for every note, checking pairing.
pub fn notes(events: &[Event]) -> Vec<(f32, u8, f32)> {
    let mut open: Option<(f32, u8)> = None;
    let mut done = Vec::new();
    for e in events {
        let t = e.sample as f32 / SR;
        match e.data {
            EventData::NoteOn { note, velocity } => {
                assert!(open.is_none(), "note-on while {open:?} is open");
                assert!((1..=127).contains(&velocity));
                open = Some((t, note));
            }
            EventData::NoteOff { note } => {
                let (on, n) = open.take().expect("note-off without note-on");
                assert_eq!(n, note);
                assert!(t >= on);
                done.push((on, note, t));
            }
            _ => {}
        }
    }
    assert!(open.is_none(), "note left open");
    done
}

/// A kick drum (a sine burst falling from 150 to 50 Hz) on every beat at `bpm`
/// and a noise hi-hat between, for `seconds`: the beat tracker's case.
pub fn drums(bpm: f32, seconds: f32) -> Vec<f32> {
    let n = (seconds * SR) as usize;
    let beat = (60.0 / bpm * SR) as usize;
    let hat = noise(beat / 8, 0.05, 7);
    let mut x = vec![0.0f32; n];
    let mut start = 0;
    while start < n {
        let mut phase = 0.0f32;
        for i in 0..(0.3 * SR) as usize {
            let t = i as f32 / SR;
            phase += 2.0 * std::f32::consts::PI * (50.0 + 100.0 * (-t / 0.03).exp()) / SR;
            if let Some(v) = x.get_mut(start + i) {
                *v += 0.5 * phase.sin() * (-t / 0.08).exp();
            }
        }
        for (i, h) in hat.iter().enumerate() {
            if let Some(v) = x.get_mut(start + beat / 2 + i) {
                *v += h * (1.0 - i as f32 / hat.len() as f32);
            }
        }
        start += beat;
    }
    x
}
