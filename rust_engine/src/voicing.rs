//! Voicing: whether a hop's pitch estimate is a pitch.
//!
//! YIN's own test (a dip under the absolute threshold, confidence at least
//! `notes.min_confidence`) is strict enough to start a note on one hop, but it
//! drops the rough attack of a low piano string, a breathy onset or a decaying
//! tail, where the estimate is already right. So a fairly confident estimate
//! also counts when it agrees with the previous hop's: a pitch that holds
//! still is a pitch, noise does not hold still.

use crate::config::EngineConfig;
use crate::pitch::{hz_to_midi, PitchEstimate};

/// Confidence an estimate needs to count on agreement with the previous hop.
const STEADY_CONFIDENCE: f32 = 0.5;

/// How close (semitones) two consecutive estimates must be to agree.
const STEADY_SEMITONES: f32 = 0.5;

/// Decides voicing hop by hop; remembers one estimate.
pub struct Voicing {
    min_confidence: f32,
    /// The previous hop's estimate in fractional MIDI, voiced or not; 0 for none.
    last_guess: f32,
}

impl Voicing {
    pub fn new(cfg: &EngineConfig) -> Self {
        Self { min_confidence: cfg.notes.min_confidence, last_guess: 0.0 }
    }

    /// Sets the confidence at which one estimate alone is voiced (live-tunable).
    pub fn set_min_confidence(&mut self, value: f32) {
        self.min_confidence = value;
    }

    pub fn reset(&mut self) {
        self.last_guess = 0.0;
    }

    /// The hop's pitch in fractional MIDI when it is voiced.
    pub fn decide(&mut self, estimate: &PitchEstimate) -> Option<f32> {
        if estimate.hz <= 0.0 {
            self.last_guess = 0.0;
            return None;
        }
        let guess = hz_to_midi(estimate.hz);
        let sure = self.sure(estimate).is_some();
        let steady = estimate.confidence >= STEADY_CONFIDENCE && (guess - self.last_guess).abs() < STEADY_SEMITONES;
        self.last_guess = guess;
        (sure || steady).then_some(guess)
    }

    /// The pitch in fractional MIDI when YIN's own test passes, without
    /// touching the hop-to-hop state: for estimates between hops.
    pub fn sure(&self, estimate: &PitchEstimate) -> Option<f32> {
        (estimate.hz > 0.0 && estimate.voiced && estimate.confidence >= self.min_confidence)
            .then(|| hz_to_midi(estimate.hz))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(midi: f32, confidence: f32, voiced: bool) -> PitchEstimate {
        PitchEstimate { hz: 440.0 * 2f32.powf((midi - 69.0) / 12.0), confidence, voiced }
    }

    #[test]
    fn a_sure_estimate_is_voiced_at_once() {
        let mut v = Voicing::new(&EngineConfig::default());
        assert!(v.decide(&est(60.0, 0.9, true)).is_some_and(|m| (m - 60.0).abs() < 1e-3));
    }

    #[test]
    fn a_fair_estimate_needs_the_previous_hop_to_agree() {
        let mut v = Voicing::new(&EngineConfig::default());
        assert_eq!(v.decide(&est(40.0, 0.6, false)), None);
        assert!(v.decide(&est(40.2, 0.6, false)).is_some());
        assert_eq!(v.decide(&est(45.0, 0.6, false)), None, "a jump is not agreement");
        assert_eq!(v.decide(&est(45.1, 0.3, false)), None, "too unsure to count");
    }

    #[test]
    fn no_estimate_breaks_the_agreement() {
        let mut v = Voicing::new(&EngineConfig::default());
        v.decide(&est(50.0, 0.6, false));
        assert_eq!(v.decide(&PitchEstimate::NONE), None);
        assert_eq!(v.decide(&est(50.0, 0.6, false)), None);
    }
}
