//! Finds where a note began when no onset marked it.
//!
//! A legato change (a slurred string or wind note, a slow attack) gives the
//! spectral flux nothing sharp to fire on, and the pitch only settles on the
//! new note once it dominates the frame, often 50-100 ms after it began. Once
//! the note tracker knows the new pitch, this looks back over the recent
//! log-magnitude spectra at that pitch's harmonics and returns where their
//! energy rose: the first hop past the midpoint between its lowest and its
//! highest level in the look-back.

use crate::config::EngineConfig;

/// Harmonics of the new pitch whose energy is followed.
const HARMONICS: usize = 8;

/// No harmonic above this is used: noise and the onset FFT's leakage dominate there.
const MAX_HARMONIC_HZ: f32 = 5000.0;

/// Hops kept: the look-back plus the hops a change takes to confirm (`notes.change_ms`).
const RING_MS: f32 = 160.0;

/// Share of the way from the lowest to the highest level that marks the rise.
const RISE: f32 = 0.2;

/// Where a note's harmonic energy rose, and by how much.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attack {
    pub sample: u64,
    /// Mean rise of the log magnitude per harmonic, in the onset detector's units.
    pub strength: f32,
}

/// A ring of the onset detector's log-magnitude spectra, one per hop.
pub struct AttackFinder {
    bins: usize,
    hop: u64,
    /// Samples per FFT bin (the onset window over the sample rate).
    bin_hz: f32,
    /// How far before the end of its frame a spectrum's energy sits: the frame's centre.
    centre: u64,
    look_back: u64,
    ring: Vec<f32>,
    /// Stream position just past the newest spectrum's frame.
    newest_end: u64,
    /// Slot of the newest spectrum.
    newest: usize,
    stored: usize,
}

impl AttackFinder {
    /// Allocates the ring; `cfg` must be validated.
    pub fn new(cfg: &EngineConfig) -> Self {
        let bins = cfg.onset.window / 2 + 1;
        let look_back_ms = cfg.notes.slur_look_back_ms;
        let slots = cfg.ms_to_hops(RING_MS.max(look_back_ms + cfg.notes.change_ms + 20.0));
        Self {
            bins,
            hop: cfg.hop as u64,
            bin_hz: cfg.sample_rate as f32 / cfg.onset.window as f32,
            centre: (cfg.onset.window / 2 + cfg.hop) as u64,
            look_back: (look_back_ms * cfg.samples_per_ms()) as u64,
            ring: vec![0.0; slots * bins],
            newest_end: 0,
            newest: slots - 1,
            stored: 0,
        }
    }

    fn slots(&self) -> usize {
        self.ring.len() / self.bins
    }

    /// Forgets every spectrum.
    pub fn reset(&mut self) {
        self.stored = 0;
        self.newest_end = 0;
    }

    /// Stores the log-magnitude spectrum of the frame ending at `end`.
    pub fn push(&mut self, end: u64, log_spectrum: &[f32]) {
        debug_assert_eq!(log_spectrum.len(), self.bins);
        self.newest = (self.newest + 1) % self.slots();
        let at = self.newest * self.bins;
        self.ring[at..at + self.bins].copy_from_slice(log_spectrum);
        self.newest_end = end;
        self.stored = (self.stored + 1).min(self.slots());
    }

    /// Where the note at `midi`, whose pitch settled at `settled`, began: not
    /// before `earliest`. `None` when the spectra do not reach back that far or
    /// show no rise.
    pub fn find(&self, midi: f32, settled: u64, earliest: u64) -> Option<Attack> {
        let hz = 440.0 * 2f32.powf((midi - 69.0) / 12.0);
        let mut bins = [0usize; HARMONICS];
        let mut n = 0;
        for h in 1..=HARMONICS {
            let f = hz * h as f32;
            let bin = (f / self.bin_hz).round() as usize;
            if f > MAX_HARMONIC_HZ || bin >= self.bins {
                break;
            }
            bins[n] = bin;
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let bins = &bins[..n];
        // Spectra are addressed by how many hops before the newest they are; a
        // spectrum's energy sits `centre` samples before the end of its frame.
        let place = |age: usize| (self.newest_end - age as u64 * self.hop).saturating_sub(self.centre);
        let level = |age: usize| {
            let slot = (self.newest + self.slots() - age) % self.slots();
            bins.iter().map(|&b| self.ring[slot * self.bins + b]).sum::<f32>()
        };
        let from = settled.saturating_sub(self.look_back).max(earliest);
        let to = settled + 4 * self.hop;
        let ages = (0..self.stored).filter(|&age| (from..=to).contains(&place(age)));
        let (oldest, newest) = (ages.clone().max()?, ages.min()?);
        let (lo, hi) =
            (newest..=oldest).map(level).fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if hi <= lo {
            return None;
        }
        let threshold = lo + RISE * (hi - lo);
        let age = (newest..=oldest).rev().find(|&age| level(age) >= threshold)?;
        Some(Attack { sample: place(age), strength: (hi - lo) / n as f32 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat spectrum in which the bins of one pitch's harmonics rise from `at` on.
    fn run(rise_at: u64) -> (AttackFinder, EngineConfig) {
        run_with(EngineConfig::default(), rise_at)
    }

    fn run_with(cfg: EngineConfig, rise_at: u64) -> (AttackFinder, EngineConfig) {
        let mut finder = AttackFinder::new(&cfg);
        let bin_hz = cfg.sample_rate as f32 / cfg.onset.window as f32;
        let hz = 440.0;
        let mut spec = vec![0.1f32; cfg.onset.window / 2 + 1];
        let mut end = cfg.onset.window as u64;
        while end < 48_000 {
            let centre = end - (cfg.onset.window / 2 + cfg.hop) as u64;
            let v = if centre >= rise_at { 3.0 } else { 0.1 };
            for h in 1..=8 {
                spec[(hz * h as f32 / bin_hz).round() as usize] = v;
            }
            finder.push(end, &spec);
            end += cfg.hop as u64;
        }
        (finder, cfg)
    }

    #[test]
    fn finds_the_rise_of_the_new_pitch_harmonics() {
        let (finder, _) = run(40_000);
        let attack = finder.find(69.0, 42_000, 0).expect("a rise");
        assert!(attack.sample.abs_diff(40_000) <= 128, "{attack:?}");
        assert!(attack.strength > 2.0, "{attack:?}");
    }

    #[test]
    fn no_rise_before_the_pitch_settled_gives_none() {
        let (finder, _) = run(46_000);
        assert_eq!(finder.find(69.0, 42_000, 0), None);
    }

    #[test]
    fn looks_back_no_further_than_set() {
        // A rise 2000 samples (42 ms) before the pitch settled: within the default 64 ms, beyond 16 ms.
        let (finder, _) = run(40_000);
        assert!(finder.find(69.0, 42_000, 0).is_some_and(|a| a.sample.abs_diff(40_000) <= 128));
        let mut cfg = EngineConfig::default();
        cfg.notes.slur_look_back_ms = 16.0;
        let (short, _) = run_with(cfg, 40_000);
        let attack = short.find(69.0, 42_000, 0);
        assert!(attack.is_none_or(|a| a.sample >= 42_000 - 16 * 48), "{attack:?}");
    }

    #[test]
    fn never_before_earliest() {
        let (finder, _) = run(40_000);
        let attack = finder.find(69.0, 42_000, 40_500);
        assert!(attack.is_none_or(|a| a.sample >= 40_500), "{attack:?}");
    }
}
