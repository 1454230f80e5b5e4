//! Tuning and key for note numbers: which MIDI note a sung pitch stands for.
//!
//! The note tracker works on a continuous "step" coordinate instead of the raw
//! fractional MIDI pitch. With the default (A4 = 440 Hz, chromatic) a step is
//! a semitone and the coordinate is the MIDI pitch itself. A reference of
//! `notes.tuning_hz` shifts it, so a performer tuned to A4 = 432 Hz sings
//! whole note numbers. A scale (`notes.scale_root`, `notes.scale_mode`)
//! makes one step per scale degree, linear in semitones between two degrees,
//! so rounding the coordinate snaps to the nearest degree, the boundary lies
//! half-way between two degrees, and the tracker's hysteresis and agreement
//! tests keep working unchanged (in steps). Only note numbers move: pitch
//! events and the pitch bend keep the pitch that was heard.

use crate::config::EngineConfig;

/// Scale modes by `notes.scale_mode`: name and the semitones of each degree above the root.
pub const SCALE_MODES: [(&str, &[u8]); 11] = [
    ("chromatic", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    ("major", &[0, 2, 4, 5, 7, 9, 11]),
    ("minor", &[0, 2, 3, 5, 7, 8, 10]),
    ("dorian", &[0, 2, 3, 5, 7, 9, 10]),
    ("phrygian", &[0, 1, 3, 5, 7, 8, 10]),
    ("lydian", &[0, 2, 4, 6, 7, 9, 11]),
    ("mixolydian", &[0, 2, 4, 5, 7, 9, 10]),
    ("locrian", &[0, 1, 3, 5, 6, 8, 10]),
    ("harmonic_minor", &[0, 2, 3, 5, 7, 8, 11]),
    ("major_pentatonic", &[0, 2, 4, 7, 9]),
    ("minor_pentatonic", &[0, 3, 5, 7, 10]),
];

/// Maps heard pitch (fractional MIDI at A4 = 440 Hz) to steps and steps to note numbers.
#[derive(Debug, Clone)]
pub struct NoteMap {
    /// Semitones the reference lies above A4 = 440 Hz.
    offset: f32,
    root: f32,
    /// The mode's degrees, plus the octave as a last entry.
    degrees: [f32; 13],
    count: usize,
}

impl NoteMap {
    pub fn new(cfg: &EngineConfig) -> Self {
        let (_, intervals) = SCALE_MODES[cfg.notes.scale_mode.min(SCALE_MODES.len() - 1)];
        let mut degrees = [0.0; 13];
        for (d, &i) in degrees.iter_mut().zip(intervals) {
            *d = i as f32;
        }
        degrees[intervals.len()] = 12.0;
        Self {
            offset: 12.0 * (cfg.notes.tuning_hz / 440.0).log2(),
            root: (cfg.notes.scale_root % 12) as f32,
            degrees,
            count: intervals.len(),
        }
    }

    /// The step coordinate of a heard pitch `midi`.
    pub fn steps(&self, midi: f32) -> f32 {
        let m = midi - self.offset - self.root;
        let octave = (m / 12.0).floor();
        let within = m - 12.0 * octave;
        // The last degree at or below `within` (the first is 0, so there is one).
        let i = self.degrees[..self.count].iter().rposition(|&d| d <= within).unwrap_or(0);
        let (lo, hi) = (self.degrees[i], self.degrees[i + 1]);
        octave * self.count as f32 + i as f32 + (within - lo) / (hi - lo)
    }

    /// The heard pitch (fractional MIDI at A4 = 440 Hz) at a step coordinate: the inverse of `steps`.
    pub fn midi(&self, steps: f32) -> f32 {
        let octave = (steps / self.count as f32).floor();
        let within = steps - octave * self.count as f32;
        let i = (within.floor() as usize).min(self.count - 1);
        let (lo, hi) = (self.degrees[i], self.degrees[i + 1]);
        self.root + self.offset + 12.0 * octave + lo + (within - i as f32) * (hi - lo)
    }

    /// The MIDI note number of the nearest whole step (a tie goes up), 0..127.
    pub fn note(&self, steps: f32) -> u8 {
        (self.midi((steps + 0.5).floor()) - self.offset).round().clamp(0.0, 127.0) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(tuning_hz: f32, root: usize, mode: usize) -> NoteMap {
        let mut c = EngineConfig::default();
        c.notes.tuning_hz = tuning_hz;
        c.notes.scale_root = root;
        c.notes.scale_mode = mode;
        c.validate().unwrap();
        NoteMap::new(&c)
    }

    #[test]
    fn default_is_the_midi_pitch() {
        let m = map(440.0, 0, 0);
        for x in [21.0f32, 57.3, 60.0, 68.49, 69.51, 108.0] {
            assert!((m.steps(x) - x).abs() < 1e-4, "{x}");
            assert_eq!(m.note(m.steps(x)), x.round() as u8);
        }
    }

    #[test]
    fn a_lower_reference_reads_flat_singing_as_in_tune() {
        let m = map(432.0, 0, 0);
        // A4 sung at 432 Hz is 31.8 cents under 69 at 440; 40 cents under E4 at 432 reads D#4 at 440.
        let a4_432 = 69.0 + 12.0 * (432.0f32 / 440.0).log2();
        assert_eq!(m.note(m.steps(a4_432)), 69);
        assert_eq!(m.note(m.steps(a4_432 - 5.0 - 0.4)), 64);
        assert_eq!(map(440.0, 0, 0).note(a4_432 - 5.0 - 0.4), 63);
    }

    #[test]
    fn a_scale_snaps_to_its_nearest_degree() {
        let c_major = map(440.0, 0, 1);
        let notes: Vec<u8> = (60..=72).map(|n| c_major.note(c_major.steps(n as f32))).collect();
        // C# halfway between C and D goes up (a tie goes to the upper degree); F# to G.
        assert_eq!(notes, [60, 62, 62, 64, 64, 65, 67, 67, 69, 69, 71, 71, 72]);
        // Between E and F (a semitone apart) the boundary is at the quarter tone.
        assert_eq!(c_major.note(c_major.steps(64.4)), 64);
        assert_eq!(c_major.note(c_major.steps(64.6)), 65);
        let d_dorian = map(440.0, 2, 3);
        assert_eq!(d_dorian.note(d_dorian.steps(66.0)), 67); // F# is not in D dorian: the tie goes up to G
        assert_eq!(d_dorian.note(d_dorian.steps(65.9)), 65);
        assert_eq!(d_dorian.note(d_dorian.steps(71.0)), 71); // B is
        let a_minor_pent = map(440.0, 9, 10);
        assert_eq!(a_minor_pent.note(a_minor_pent.steps(66.0)), 67);
    }

    #[test]
    fn steps_and_midi_are_inverse() {
        for (tuning, root, mode) in [(440.0, 0, 0), (432.0, 2, 3), (446.0, 9, 10), (440.0, 11, 8)] {
            let m = map(tuning, root, mode);
            let mut x = 20.0f32;
            while x < 110.0 {
                assert!((m.midi(m.steps(x)) - x).abs() < 1e-3, "{tuning} {root} {mode} {x}");
                x += 0.37;
            }
        }
    }
}
