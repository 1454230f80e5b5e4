//! End-to-end behaviour of the streaming analyser on known signals.

mod signals;

use proptest::prelude::*;
use rust_engine::{Analyzer, EngineConfig, EventData};
use signals::*;

const SCALE: [(f32, f32); 8] =
    [(40.0, 0.4), (45.0, 0.3), (52.0, 0.3), (60.0, 0.25), (64.0, 0.25), (71.0, 0.2), (79.0, 0.2), (84.0, 0.2)];

#[test]
fn a_melody_gives_exactly_its_notes_at_its_onsets() {
    let (x, truth) = melody(&SCALE, 0.1);
    let found = notes(&analyse(&EngineConfig::default(), &x, &[256]));
    assert_eq!(found.len(), truth.len(), "{found:?}");
    for ((on, note, off), (t, midi)) in found.iter().zip(&truth) {
        assert_eq!(*note, *midi);
        assert!((on - t).abs() < 0.010, "note {midi}: on at {on}, truth {t}");
        assert!(off > on);
    }
}

#[test]
fn a_legato_line_changes_note_without_gaps() {
    let mut x = vec![0.0; 4800];
    x.extend(legato(&[(57.0, 0.3), (59.0, 0.3), (60.0, 0.3), (62.0, 0.3)], 0.3));
    x.extend(vec![0.0; 4800]);
    let found = notes(&analyse(&EngineConfig::default(), &x, &[128]));
    let pitches: Vec<u8> = found.iter().map(|n| n.1).collect();
    assert_eq!(pitches, vec![57, 59, 60, 62]);
    for pair in found.windows(2) {
        // Each note ends where the next begins, within 30 ms of the true change.
        assert!((pair[0].2 - pair[1].0).abs() < 0.001);
    }
    for (i, n) in found.iter().enumerate().skip(1) {
        let truth = 0.1 + 0.3 * i as f32;
        assert!((n.0 - truth).abs() < 0.030, "{n:?} vs {truth}");
    }
}

#[test]
fn an_octave_low_attack_is_retracted_and_the_note_placed_at_its_onset() {
    let found = notes(&analyse(&EngineConfig::default(), &octave_low_attack(48.0), &[128]));
    assert!(found.iter().any(|n| n.1 == 36 && n.0 == n.2), "no retracted octave-low note: {found:?}");
    let kept = kept(&found);
    assert_eq!(kept.len(), 1, "{found:?}");
    assert_eq!(kept[0].1, 48);
    assert!((kept[0].0 - 0.1).abs() < 0.010, "{kept:?}");
}

#[test]
fn a_correction_can_be_turned_off() {
    let mut cfg = EngineConfig::default();
    cfg.notes.correct_ms = 0.0;
    let found = notes(&analyse(&cfg, &octave_low_attack(48.0), &[128]));
    // The misheard octave sounds as a note of its own.
    assert!(found.iter().any(|n| n.1 == 36), "{found:?}");
    assert!(found.iter().all(|n| n.2 > n.0), "{found:?}");
}

#[test]
fn a_slurred_change_is_placed_where_the_new_note_rises_with_an_onset_there() {
    let mut x = vec![0.0; 4800];
    x.extend(crossfade(57.0, 62.0, 0.3, 0.06, 0.6, 0.3));
    x.extend(vec![0.0; 4800]);
    let events = analyse(&EngineConfig::default(), &x, &[128]);
    let found = kept(&notes(&events));
    assert_eq!(found.iter().map(|n| n.1).collect::<Vec<_>>(), vec![57, 62], "{found:?}");
    let change = found[1].0;
    // The fade starts at 0.4 s; the new note is a fifth of the way in 12 ms later.
    assert!((0.395..0.43).contains(&change), "{found:?}");
    let onsets: Vec<f32> =
        events.iter().filter(|e| matches!(e.data, EventData::Onset { .. })).map(|e| e.sample as f32 / SR).collect();
    assert!(onsets.contains(&change), "no onset at the change {change}: {onsets:?}");
}

#[test]
fn a_steady_low_tone_is_one_note_at_every_hop_phase() {
    // A hop is shorter than these notes' periods, so its RMS swings with the
    // waveform: a stray onset mid-note must not read that swing as a re-strike.
    for midi in 40..=47 {
        for offset in (0..256).step_by(16) {
            let mut x = vec![0.0; 4800 + offset];
            x.extend(tone(midi as f32, 0.25, 0.3));
            x.extend(vec![0.0; 4800]);
            let found = notes(&analyse(&EngineConfig::default(), &x, &[128]));
            assert_eq!(found.iter().map(|n| n.1).collect::<Vec<_>>(), vec![midi], "offset {offset}: {found:?}");
        }
    }
}

#[test]
fn a_repeated_pitch_is_re_articulated() {
    let (x, truth) = melody(&[(67.0, 0.25), (67.0, 0.25), (67.0, 0.25)], 0.03);
    let found = notes(&analyse(&EngineConfig::default(), &x, &[512]));
    assert_eq!(found.len(), 3, "{found:?}");
    for ((on, note, _), (t, _)) in found.iter().zip(&truth) {
        assert_eq!(*note, 67);
        assert!((on - t).abs() < 0.010);
    }
}

#[test]
fn silence_gives_no_pitch_and_no_notes() {
    let events = analyse(&EngineConfig::default(), &vec![0.0; 48_000], &[1000]);
    assert!(events.iter().all(|e| match e.data {
        EventData::Pitch { hz, voiced, .. } => hz == 0.0 && !voiced,
        EventData::NoteOn { .. } | EventData::Onset { .. } => false,
        _ => true,
    }));
    assert_eq!(events.iter().filter(|e| matches!(e.data, EventData::Pitch { .. })).count(), 48_000 / 128);
}

#[test]
fn white_noise_gives_low_confidence_and_no_notes() {
    let x = noise(96_000, 0.3, 7);
    let events = analyse(&EngineConfig::default(), &x, &[333]);
    assert!(notes(&events).is_empty());
    let confident =
        events.iter().filter(|e| matches!(e.data, EventData::Pitch { confidence, .. } if confidence > 0.8)).count();
    assert!(confident < 5, "{confident} confident hops in noise");
}

#[test]
fn nan_inf_dc_and_clipping_stay_finite() {
    let mut x = tone(60.0, 1.0, 4.0); // clipped
    for v in x.iter_mut() {
        *v = v.clamp(-1.0, 1.0) + 0.5; // plus DC
    }
    for i in (0..x.len()).step_by(997) {
        x[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, 1e-40][i % 5];
    }
    x.extend(std::iter::repeat_n(f32::NAN, 4800));
    x.extend(std::iter::repeat_n(0.7, 48_000)); // pure DC
    let events = analyse(&EngineConfig::default(), &x, &[100, 8192, 1]);
    for e in &events {
        let finite = match e.data {
            EventData::Pitch { hz, midi, confidence, .. } => {
                hz.is_finite() && midi.is_finite() && confidence.is_finite()
            }
            EventData::Onset { strength } => strength.is_finite(),
            EventData::Dynamics { rms, peak, db, envelope_db, .. } => {
                rms.is_finite() && peak.is_finite() && db.is_finite() && envelope_db.is_finite()
            }
            _ => true,
        };
        assert!(finite, "{e:?}");
    }
    // Pairing is checked by `notes`; the clipped C4 is still found.
    assert!(notes(&events).iter().any(|n| n.1 == 60));
}

#[test]
fn events_are_in_emission_order_and_never_early() {
    let (x, _) = melody(&SCALE, 0.05);
    let events = analyse(&EngineConfig::default(), &x, &[4096]);
    for pair in events.windows(2) {
        assert!(pair[0].emit_sample <= pair[1].emit_sample);
    }
    for e in &events {
        assert!(e.sample <= e.emit_sample, "{e:?}");
    }
}

#[test]
fn blocks_longer_than_the_maximum_are_refused() {
    let mut an = Analyzer::new(EngineConfig::default()).unwrap();
    let mut out = Vec::new();
    assert!(an.process(&vec![0.0; 8193], &mut out).is_err());
    assert!(an.process(&[], &mut out).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Results never depend on how the audio is cut into blocks.
    #[test]
    fn block_size_independence(blocks in prop::collection::vec(1usize..=8192, 1..12)) {
        let (x, _) = melody(&[(48.0, 0.2), (55.0, 0.15), (72.0, 0.15)], 0.05);
        let cfg = EngineConfig::default();
        let reference = analyse(&cfg, &x, &[128]);
        prop_assert_eq!(analyse(&cfg, &x, &blocks), reference);
    }

    /// The spectral features too, and turning them on changes no other event.
    #[test]
    fn features_are_block_size_independent(blocks in prop::collection::vec(1usize..=8192, 1..12)) {
        let (x, _) = melody(&[(48.0, 0.2), (55.0, 0.15), (72.0, 0.15)], 0.05);
        let reference = analyse(&with_features(), &x, &[128]);
        prop_assert_eq!(analyse(&with_features(), &x, &blocks), reference.clone());
        let others: Vec<_> =
            reference.into_iter().filter(|e| !matches!(e.kind(), "bands" | "spectrum" | "chroma")).collect();
        prop_assert_eq!(others, analyse(&EngineConfig::default(), &x, &[128]));
    }
}

/// The beat tracker too: beats, tempo and their positions are the same whatever
/// the blocks (the live bridge feeds 128 or fewer frames, the benchmarks whole hops).
#[test]
fn beats_are_block_size_independent() {
    let x = drums(128.0, 10.0);
    let cfg = EngineConfig::default();
    let beats = |blocks: &[usize]| -> Vec<_> {
        analyse(&cfg, &x, blocks).into_iter().filter(|e| matches!(e.kind(), "beat" | "tempo")).collect()
    };
    let reference = beats(&[128]);
    assert!(reference.iter().filter(|e| e.kind() == "beat").count() > 10, "{reference:?}");
    for blocks in [&[64][..], &[1024], &[37, 128, 500, 3], &[8192]] {
        assert_eq!(beats(blocks), reference, "blocks {blocks:?}");
    }
}

/// The default settings with every feature kind enabled.
fn with_features() -> EngineConfig {
    let mut cfg = EngineConfig::default();
    for key in ["features.bands_enabled", "features.spectrum_enabled", "features.chroma_enabled"] {
        cfg.set(key, 1.0).unwrap();
    }
    cfg
}

#[test]
fn features_come_once_per_hop_only_when_enabled() {
    let (x, _) = melody(&SCALE, 0.05);
    let hops = x.len().div_ceil(128);
    let count = |cfg: &EngineConfig, kind: &str| analyse(cfg, &x, &[4096]).iter().filter(|e| e.kind() == kind).count();
    let cfg = with_features();
    for kind in ["bands", "spectrum", "chroma"] {
        assert_eq!(count(&cfg, kind), hops, "{kind}");
        assert_eq!(count(&EngineConfig::default(), kind), 0, "{kind}");
    }
    let mut only_chroma = EngineConfig::default();
    only_chroma.set("features.chroma_enabled", 1.0).unwrap();
    assert_eq!((count(&only_chroma, "chroma"), count(&only_chroma, "bands")), (hops, 0));
    let events = analyse(&cfg, &x, &[4096]);
    for pair in events.windows(2) {
        assert!(pair[0].emit_sample <= pair[1].emit_sample);
    }
    assert!(events.iter().all(|e| e.sample <= e.emit_sample));
}

/// Samples from a tone's first sample to the emission of its note-on.
fn note_on_delay(midi: f32, lead: usize) -> u64 {
    let mut x = vec![0.0; lead];
    x.extend(tone(midi, 0.2, 0.3));
    let events = analyse(&EngineConfig::default(), &x, &[128]);
    let on = events.iter().find(|e| matches!(e.data, EventData::NoteOn { .. })).expect("a note-on");
    assert!(matches!(on.data, EventData::NoteOn { note, .. } if note as f32 == midi), "{on:?}");
    on.emit_sample - lead as u64
}

#[test]
fn a_note_starts_once_two_periods_are_in_not_at_the_end_of_its_hop() {
    // At every phase of the hop, the note-on goes out within 1.5 ms of the
    // moment two periods of the tone exist; waiting for the hop's end alone
    // would cost up to a hop (2.7 ms) more.
    for midi in [45.0, 52.0, 57.0, 64.0] {
        let two_periods = 2.0 * SR / midi_to_hz(midi);
        for phase in (0..128).step_by(8) {
            let delay = note_on_delay(midi, 4800 + phase) as f32;
            assert!(
                delay < two_periods + 72.0,
                "midi {midi} phase {phase}: {delay} samples, two periods {two_periods}"
            );
        }
    }
}

#[test]
fn a_hop_four_does_not_divide_probes_within_it() {
    let cfg = EngineConfig { hop: 441, ..Default::default() };
    let (x, truth) = melody(&SCALE[..4], 0.1);
    let reference = analyse(&cfg, &x, &[441]);
    for blocks in [&[1][..], &[100, 7], &[4096]] {
        assert_eq!(analyse(&cfg, &x, blocks), reference, "blocks {blocks:?}");
    }
    let pitches: Vec<u8> = notes(&reference).iter().map(|n| n.1).collect();
    assert_eq!(pitches, truth.iter().map(|t| t.1).collect::<Vec<_>>());
}

/// Samples from the second tone's first sample to the emission of its note-on, the two played back to back.
fn change_delay(from: f32, to: f32, lead: usize) -> u64 {
    let mut x = vec![0.0; lead];
    x.extend(tone(from, 0.2, 0.3));
    let second = x.len();
    x.extend(tone(to, 0.2, 0.3));
    let events = analyse(&EngineConfig::default(), &x, &[128]);
    let on = events
        .iter()
        .find(|e| matches!(e.data, EventData::NoteOn { note, .. } if note as f32 == to))
        .expect("the second note");
    let ons = events.iter().filter(|e| matches!(e.data, EventData::NoteOn { .. })).count();
    assert_eq!(ons, 2, "{events:?}");
    on.emit_sample - second as u64
}

#[test]
fn a_re_attacked_note_changes_soon_after_its_pitch_is_sure() {
    // The change waits for the onset and for the previous note's tail to leave
    // the frame, then for three agreeing estimates, which come four per hop;
    // at the hops alone 60 -> 52 took up to 10.9 ms past two periods, now 8.9.
    for (from, to) in [(60.0, 52.0), (52.0, 64.0), (67.0, 57.0)] {
        let two_periods = 2.0 * SR / midi_to_hz(to);
        for phase in (0..128).step_by(16) {
            let delay = change_delay(from, to, 4800 + phase);
            assert!((delay as f32) < two_periods + 0.0095 * SR, "{from} -> {to} phase {phase}: {delay} samples");
        }
    }
}

#[test]
fn a_quiet_low_melody_is_not_cut_into_extra_notes() {
    // Around -35 dBFS a low note's hop RMS dips under the -50 dB gate within
    // each period; a gate without hysteresis reopened there, each time a new note.
    let quiet: Vec<(f32, f32)> = [36.0, 40.0, 43.0, 45.0, 38.0, 41.0].iter().map(|&m| (m, 0.5)).collect();
    let mut x = vec![0.0; 4800];
    let mut truth = Vec::new();
    for &(midi, dur) in &quiet {
        truth.push(midi as u8);
        x.extend(tone(midi, dur, 0.01));
        x.extend(vec![0.0; 2400]);
    }
    let found: Vec<u8> = notes(&analyse(&EngineConfig::default(), &x, &[128])).iter().map(|n| n.1).collect();
    assert_eq!(found, truth);
}

#[test]
fn clicks_in_silence_give_no_notes() {
    // A lone click leaves a frame whose newest half is silent: nothing to measure.
    let mut x = vec![0.0; 48_000];
    for (k, at) in [5_000, 10_037, 15_100, 20_077, 30_001, 40_123].into_iter().enumerate() {
        x[at] = if k % 2 == 0 { 0.9 } else { -0.2 };
    }
    let events = analyse(&EngineConfig::default(), &x, &[128]);
    assert!(notes(&events).is_empty(), "{:?}", notes(&events));
}
