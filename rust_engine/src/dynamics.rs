//! Per-hop level: RMS, peak, dBFS, a smoothed envelope (instant attack,
//! exponential release), MIDI velocity through a dB curve, and a dynamic marking.

use crate::config::{DynamicsConfig, EngineConfig};
use crate::event::Marking;

/// Floor for every dB figure, so silence stays finite.
pub const FLOOR_DB: f32 = -120.0;

/// Amplitude to dBFS, floored at `FLOOR_DB`.
pub fn to_db(amplitude: f32) -> f32 {
    if amplitude > 1e-6 {
        20.0 * amplitude.log10()
    } else {
        FLOOR_DB
    }
}

/// The marking for an envelope level; the steps are 8 dB apart, ppp below -50 dBFS.
pub fn marking_for_db(db: f32) -> Marking {
    const STEPS: [(f32, Marking); 7] = [
        (-50.0, Marking::Ppp),
        (-42.0, Marking::Pp),
        (-34.0, Marking::P),
        (-26.0, Marking::Mp),
        (-18.0, Marking::Mf),
        (-12.0, Marking::F),
        (-6.0, Marking::Ff),
    ];
    STEPS.iter().find(|(limit, _)| db < *limit).map_or(Marking::Fff, |&(_, m)| m)
}

/// Levels of one hop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    pub rms: f32,
    pub peak: f32,
    pub db: f32,
    pub envelope_db: f32,
    pub velocity: u8,
    pub marking: Marking,
}

/// Dynamics tracker.
pub struct Dynamics {
    cfg: DynamicsConfig,
    release_coef: f32,
    envelope: f32,
}

impl Dynamics {
    pub fn new(cfg: &EngineConfig) -> Self {
        let hop_ms = cfg.hop as f32 / cfg.samples_per_ms();
        Self {
            release_coef: (-hop_ms / cfg.dynamics.envelope_release_ms).exp(),
            cfg: cfg.dynamics.clone(),
            envelope: 0.0,
        }
    }

    pub fn reset(&mut self) {
        self.envelope = 0.0;
    }

    /// MIDI velocity (1..=127) for an RMS level in dBFS, through the configured curve.
    pub fn velocity_for_db(&self, db: f32) -> u8 {
        let span = self.cfg.velocity_ceil_db - self.cfg.velocity_floor_db;
        let x = ((db - self.cfg.velocity_floor_db) / span).clamp(0.0, 1.0);
        (1.0 + 126.0 * x.powf(self.cfg.velocity_curve)).round() as u8
    }

    /// Measures one hop of (finite) samples.
    pub fn process(&mut self, hop: &[f32]) -> Levels {
        let (sum_sq, peak) = hop.iter().fold((0.0f32, 0.0f32), |(s, p), &v| (s + v * v, p.max(v.abs())));
        let rms = (sum_sq / hop.len() as f32).sqrt();
        self.envelope = rms.max(self.envelope * self.release_coef);
        let envelope_db = to_db(self.envelope);
        Levels {
            rms,
            peak,
            db: to_db(rms),
            envelope_db,
            velocity: self.velocity_for_db(envelope_db),
            marking: marking_for_db(envelope_db),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scale_sine_levels() {
        let cfg = EngineConfig::default();
        let mut d = Dynamics::new(&cfg);
        let x: Vec<f32> = (0..128).map(|i| (2.0 * std::f32::consts::PI * i as f32 / 32.0).sin()).collect();
        let l = d.process(&x);
        assert!((l.db + 3.01).abs() < 0.05, "{}", l.db);
        assert!((l.peak - 1.0).abs() < 1e-3);
        assert_eq!(l.velocity, 127);
        assert_eq!(l.marking, Marking::Fff);
    }

    #[test]
    fn velocity_is_monotonic_and_in_range() {
        let d = Dynamics::new(&EngineConfig::default());
        let mut last = 0;
        for db in -130..=10 {
            let v = d.velocity_for_db(db as f32);
            assert!((1..=127).contains(&v) && v >= last);
            last = v;
        }
        assert_eq!(d.velocity_for_db(-200.0), 1);
    }

    #[test]
    fn envelope_decays_after_the_sound_stops() {
        let cfg = EngineConfig::default();
        let mut d = Dynamics::new(&cfg);
        d.process(&[0.5; 128]);
        let first = d.process(&[0.0; 128]);
        assert!(first.envelope_db > -7.0 && first.db == FLOOR_DB);
        let mut l = first;
        for _ in 0..1000 {
            l = d.process(&[0.0; 128]);
        }
        assert!(l.envelope_db < -60.0 && l.marking == Marking::Ppp);
    }
}
