//! Arbitrary bytes as audio and block splits into `Analyzer::process`.
//!
//! Input layout: byte 0 picks the hop (low 3 bits) and the sample format
//! (bit 7: 16-bit PCM, which mutations turn into plausible audio; else raw
//! little-endian f32, which is full of NaN, Inf, denormals and huge values;
//! bit 6 turns on every spectral feature, whose levels must stay in 0..1);
//! byte 1 gives the number of split lengths (1..=16), each a u16 taken modulo
//! MAX_BLOCK + 1 (so 0 and 8192 both occur); the rest is samples.
//!
//! Checked for every input: `process` accepts every block up to MAX_BLOCK,
//! never produces more events than `max_events` promises, every float is
//! finite, note-ons and note-offs alternate, `flush` leaves no note sounding,
//! and the events are the same as with a fixed 128-frame split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rust_engine::config::MAX_BLOCK;
use rust_engine::{Analyzer, EngineConfig, Event, EventData};

const HOPS: [usize; 8] = [16, 64, 128, 128, 256, 441, 512, 1024];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mut cfg = EngineConfig::default();
    cfg.hop = HOPS[(data[0] & 7) as usize];
    if data[0] & 0x40 != 0 {
        for key in ["features.bands_enabled", "features.spectrum_enabled", "features.chroma_enabled"] {
            cfg.set(key, 1.0).expect("a valid setting");
        }
    }
    let n_splits = (data[1] % 16 + 1) as usize;
    let header = 2 + 2 * n_splits;
    if data.len() < header {
        return;
    }
    let splits: Vec<usize> =
        data[2..header].chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize % (MAX_BLOCK + 1)).collect();
    let body = &data[header..];
    let samples: Vec<f32> = if data[0] & 0x80 != 0 {
        body.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).collect()
    } else {
        body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    };

    let split_events = analyse(cfg.clone(), &samples, &splits);
    check(&split_events);
    let fixed_events = analyse(cfg, &samples, &[128]);
    assert_eq!(split_events, fixed_events, "events depend on the block split");
});

fn analyse(cfg: EngineConfig, samples: &[f32], splits: &[usize]) -> Vec<Event> {
    let mut an = Analyzer::new(cfg).expect("the fuzzed configs are valid");
    let mut all = Vec::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < samples.len() {
        let mut len = splits[i % splits.len()];
        i += 1;
        if i > splits.len() && splits.iter().all(|&s| s == 0) {
            len = (samples.len() - pos).min(MAX_BLOCK);
        }
        let block = &samples[pos..(pos + len).min(samples.len())];
        pos += block.len();
        out.clear();
        an.process(block, &mut out).expect("blocks of at most MAX_BLOCK are accepted");
        assert!(out.len() <= an.max_events(block.len()), "more events than max_events promises");
        all.extend_from_slice(&out);
    }
    out.clear();
    an.flush(&mut out);
    all.extend_from_slice(&out);
    assert_eq!(an.active_note(), None, "flush left a note sounding");
    all
}

fn check(events: &[Event]) {
    let mut open: Option<u8> = None;
    for e in events {
        let finite = match e.data {
            EventData::Pitch { hz, midi, confidence, .. } => [hz, midi, confidence].iter().all(|v| v.is_finite()),
            EventData::Onset { strength } => strength.is_finite(),
            EventData::Dynamics { rms, peak, db, envelope_db, velocity, .. } => {
                velocity <= 127 && [rms, peak, db, envelope_db].iter().all(|v| v.is_finite())
            }
            EventData::NoteOn { note, velocity } => {
                assert!(open.is_none(), "note-on {note} while {open:?} sounds");
                assert!(note <= 127 && (1..=127).contains(&velocity));
                open = Some(note);
                true
            }
            EventData::NoteOff { note } => {
                assert_eq!(open, Some(note), "note-off {note} does not match the sounding note");
                open = None;
                true
            }
            EventData::Beat { beat, bpm, confidence, next_sample } => {
                assert!((1..=16).contains(&beat) && next_sample > e.sample, "{e:?}");
                bpm.is_finite() && (0.0..=1.0).contains(&confidence)
            }
            EventData::Tempo { bpm, confidence } => bpm.is_finite() && (0.0..=1.0).contains(&confidence),
            EventData::Bands { count, db, level } => {
                let n = count as usize;
                db[..n].iter().all(|v| v.is_finite()) && level[..n].iter().all(|v| (0.0..=1.0).contains(v))
            }
            EventData::Spectrum { centroid_hz, flatness, rolloff_hz, level } => {
                [centroid_hz, flatness, rolloff_hz].iter().all(|v| v.is_finite())
                    && level.iter().all(|v| (0.0..=1.0).contains(v))
            }
            EventData::Chroma { energy, level } => {
                energy.iter().all(|v| v.is_finite()) && level.iter().all(|v| (0.0..=1.0).contains(v))
            }
        };
        assert!(finite, "non-finite value in {e:?}");
    }
    assert_eq!(open, None, "a note-on without its note-off");
}
