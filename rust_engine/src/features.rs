//! Spectral features for visuals, from the onset detector's spectrum (no
//! second FFT): band levels, centroid, flatness, rolloff and chroma, each
//! also "visual-ready" in 0..1.
//!
//! Band and spectrum figures use the power spectrum scaled by Parseval so a
//! band's level is the mean square of the signal in it (a full-scale sine:
//! -3 dBFS, as the dynamics' RMS). Chroma follows the spectral-peak approach
//! of Gómez's HPCP ("Tonal description of music audio signals", 2006): the
//! onset frame's bins (47 Hz at 48 kHz) are wider than a semitone below
//! about 800 Hz, so a bin's own frequency names the wrong pitch class; each
//! local peak's frequency is refined by a parabola through its log magnitude
//! and its power goes to that frequency's pitch class.
//!
//! Visual-ready values: band levels in dB are mapped to 0..1 over
//! `range_db` below a slow peak follower of the loudest band (the auto-gain:
//! a quiet and a loud take of the same music read alike, the spectrum's shape
//! is kept), chroma is divided by its largest class, centroid and rolloff are
//! placed on a log scale between the band edges; then every value is smoothed
//! with separate attack and release times.

use realfft::num_complex::Complex;

use crate::config::{EngineConfig, MAX_BANDS};
use crate::dynamics::FLOOR_DB;

/// Share of the energy below the rolloff frequency.
const ROLLOFF_SHARE: f32 = 0.85;
/// Lowest frequency folded into the chroma: below it a bin spans more than a
/// few semitones and the room's rumble lives there.
const CHROMA_MIN_HZ: f32 = 60.0;
/// Highest frequency folded into the chroma: above it harmonics outweigh the
/// notes that made them.
const CHROMA_MAX_HZ: f32 = 5000.0;
/// Peaks this far below the frame's loudest bin are left out of the chroma.
const CHROMA_PEAK_FLOOR_DB: f32 = 60.0;
/// Power added before the logarithm of the flatness, so silent bins stay finite.
const FLATNESS_EPS: f32 = 1e-12;

/// One hop's features, raw and visual-ready.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    /// Number of bands in use.
    pub bands: usize,
    /// Level of each band in dBFS (mean square in the band), floored at -120.
    pub band_db: [f32; MAX_BANDS],
    /// Each band in 0..1, auto-gained and smoothed.
    pub band_level: [f32; MAX_BANDS],
    /// Magnitude-weighted mean frequency, in Hz (0 in silence).
    pub centroid_hz: f32,
    /// Geometric over arithmetic mean of the power spectrum: 1 for white noise
    /// in theory (0.56 for a windowed noise frame), near 0 for a tone.
    pub flatness: f32,
    /// Frequency below which 85% of the energy lies, in Hz.
    pub rolloff_hz: f32,
    /// Centroid, flatness and rolloff in 0..1, smoothed.
    pub spectrum_level: [f32; 3],
    /// Share of the peaks' energy in each pitch class, C first (sums to 1, or all 0).
    pub chroma: [f32; 12],
    /// Chroma over its largest class, smoothed.
    pub chroma_level: [f32; 12],
}

/// Feature extractor: `new` sizes and plans everything, `process` only computes.
pub struct SpectralFeatures {
    /// Bin range `[lo, hi)` of each band.
    band_bins: Vec<(usize, usize)>,
    /// Frequency of each bin in Hz.
    bin_hz: Vec<f32>,
    /// Bin range folded into the chroma.
    chroma_bins: (usize, usize),
    /// Power of each bin, scaled so sums are mean squares.
    power: Vec<f32>,
    power_scale: f32,
    low_hz: f32,
    high_hz: f32,
    range_db: f32,
    floor_db: f32,
    /// Per-hop decay of the auto-gain's peak, in dB.
    peak_decay_db: f32,
    peak_db: f32,
    attack: f32,
    release: f32,
    out: Features,
}

/// Smoothing coefficient per hop for a time constant of `ms` (0: instant).
fn coefficient(ms: f32, hop_ms: f32) -> f32 {
    if ms <= 0.0 {
        1.0
    } else {
        1.0 - (-hop_ms / ms).exp()
    }
}

impl SpectralFeatures {
    /// Computes the band edges and bin tables; `cfg` must be validated.
    pub fn new(cfg: &EngineConfig) -> Self {
        let f = &cfg.features;
        let n = cfg.onset.window;
        let bins = n / 2 + 1;
        let df = cfg.sample_rate as f32 / n as f32;
        let nyquist = cfg.sample_rate as f32 / 2.0;
        let high_hz = f.high_hz.min(nyquist);
        let to_bin = |hz: f32| ((hz / df).ceil() as usize).clamp(1, bins);
        let ratio = (high_hz / f.low_hz).powf(1.0 / f.bands as f32);
        let band_bins = (0..f.bands)
            .map(|k| {
                let (lo_hz, hi_hz) = (f.low_hz * ratio.powi(k as i32), f.low_hz * ratio.powi(k as i32 + 1));
                let lo = to_bin(lo_hz);
                let hi = to_bin(hi_hz);
                // A band narrower than a bin takes the bin nearest its centre.
                if hi > lo {
                    (lo, hi)
                } else {
                    let c = (((lo_hz * hi_hz).sqrt() / df).round() as usize).clamp(1, bins - 1);
                    (c, c + 1)
                }
            })
            .collect();
        let hop_ms = cfg.hop as f32 / cfg.samples_per_ms();
        let mut out = Features {
            bands: f.bands,
            band_db: [FLOOR_DB; MAX_BANDS],
            band_level: [0.0; MAX_BANDS],
            centroid_hz: 0.0,
            flatness: 0.0,
            rolloff_hz: 0.0,
            spectrum_level: [0.0; 3],
            chroma: [0.0; 12],
            chroma_level: [0.0; 12],
        };
        out.band_db[f.bands..].fill(0.0);
        Self {
            band_bins,
            bin_hz: (0..bins).map(|k| k as f32 * df).collect(),
            chroma_bins: (to_bin(CHROMA_MIN_HZ).max(2), to_bin(CHROMA_MAX_HZ.min(nyquist)).min(bins - 1)),
            power: vec![0.0; bins],
            // Parseval with a periodic Hann window (sum of w^2 = 3N/8); the
            // positive-frequency bins stand for their negative twins too.
            power_scale: 2.0 / (n as f32 * 3.0 * n as f32 / 8.0),
            low_hz: f.low_hz,
            high_hz,
            range_db: f.range_db,
            floor_db: cfg.notes.silence_db,
            peak_decay_db: 20.0 * std::f32::consts::LOG10_E * hop_ms / f.autogain_ms,
            peak_db: cfg.notes.silence_db,
            attack: coefficient(f.attack_ms, hop_ms),
            release: coefficient(f.release_ms, hop_ms),
            out,
        }
    }

    /// Follows a live change of `notes.silence_db`: the auto-gain's peak never
    /// falls below the gate, so silence keeps reading 0.
    pub fn set_floor_db(&mut self, db: f32) {
        self.floor_db = db;
        self.peak_db = self.peak_db.max(db);
    }

    /// Back to the state after `new`.
    pub fn reset(&mut self) {
        self.peak_db = self.floor_db;
        let bands = self.out.bands;
        self.out.band_db[..bands].fill(FLOOR_DB);
        self.out.band_level.fill(0.0);
        self.out.spectrum_level.fill(0.0);
        self.out.chroma_level.fill(0.0);
    }

    /// Features of one frame's spectrum (`onset.window / 2 + 1` bins of a Hann-windowed FFT).
    pub fn process(&mut self, spectrum: &[Complex<f32>]) -> &Features {
        debug_assert_eq!(spectrum.len(), self.power.len());
        for (p, c) in self.power.iter_mut().zip(spectrum) {
            *p = c.norm_sqr() * self.power_scale;
        }
        // DC and Nyquist have no twin.
        self.power[0] *= 0.5;
        let last = self.power.len() - 1;
        self.power[last] *= 0.5;
        self.bands();
        self.spectrum_shape(spectrum);
        self.chroma(spectrum);
        &self.out
    }

    fn smooth(&self, y: &mut f32, x: f32) {
        let k = if x > *y { self.attack } else { self.release };
        *y += (x - *y) * k;
    }

    fn bands(&mut self) {
        let mut loudest = FLOOR_DB;
        for (db, &(lo, hi)) in self.out.band_db.iter_mut().zip(&self.band_bins) {
            let energy: f32 = self.power[lo..hi].iter().sum();
            *db = if energy > 1e-12 { 10.0 * energy.log10() } else { FLOOR_DB };
            loudest = loudest.max(*db);
        }
        // The auto-gain: a peak follower of the loudest band that falls slowly,
        // never below the silence gate so silence reads 0, not amplified noise.
        self.peak_db = loudest.max(self.peak_db - self.peak_decay_db).max(self.floor_db);
        for k in 0..self.out.bands {
            let x = (1.0 + (self.out.band_db[k] - self.peak_db) / self.range_db).clamp(0.0, 1.0);
            let mut y = self.out.band_level[k];
            self.smooth(&mut y, x);
            self.out.band_level[k] = y;
        }
    }

    fn spectrum_shape(&mut self, spectrum: &[Complex<f32>]) {
        // Every bin but DC, so an offset does not pull the figures to 0 Hz.
        let power = &self.power[1..];
        let hz = &self.bin_hz[1..];
        let total: f32 = power.iter().sum();
        let (mut weighted, mut magnitude) = (0.0f32, 0.0f32);
        for (c, &f) in spectrum[1..].iter().zip(hz) {
            let m = c.norm_sqr().sqrt();
            weighted += m * f;
            magnitude += m;
        }
        let silent = total <= 1e-12;
        self.out.centroid_hz = if silent { 0.0 } else { weighted / magnitude };
        let log_mean = power.iter().map(|&p| (p + FLATNESS_EPS).ln()).sum::<f32>() / power.len() as f32;
        let mean = total / power.len() as f32 + FLATNESS_EPS;
        self.out.flatness = if silent { 0.0 } else { (log_mean.exp() / mean).clamp(0.0, 1.0) };
        let mut rolloff = 0.0;
        if !silent {
            let target = ROLLOFF_SHARE * total;
            let mut acc = 0.0f32;
            for (&p, &f) in power.iter().zip(hz) {
                acc += p;
                if acc >= target {
                    rolloff = f;
                    break;
                }
            }
        }
        self.out.rolloff_hz = rolloff;
        let span = (self.high_hz / self.low_hz).ln();
        let place = |f: f32| if f > 0.0 { ((f / self.low_hz).ln() / span).clamp(0.0, 1.0) } else { 0.0 };
        let x = [place(self.out.centroid_hz), self.out.flatness, place(self.out.rolloff_hz)];
        for (k, &v) in x.iter().enumerate() {
            let mut y = self.out.spectrum_level[k];
            self.smooth(&mut y, v);
            self.out.spectrum_level[k] = y;
        }
    }

    fn chroma(&mut self, spectrum: &[Complex<f32>]) {
        let (lo, hi) = self.chroma_bins;
        self.out.chroma.fill(0.0);
        let peak = spectrum.iter().map(|c| c.norm_sqr()).fold(0.0f32, f32::max);
        let floor = peak * 10f32.powf(-CHROMA_PEAK_FLOOR_DB / 10.0);
        let df = self.bin_hz[1];
        let mut total = 0.0f32;
        for k in lo..hi {
            let b = spectrum[k].norm_sqr();
            if b <= floor || b <= spectrum[k - 1].norm_sqr() || b < spectrum[k + 1].norm_sqr() {
                continue;
            }
            // Parabola through the log power of the peak and its neighbours.
            let (a, bb, c) =
                (spectrum[k - 1].norm_sqr().max(1e-30).ln(), b.ln(), spectrum[k + 1].norm_sqr().max(1e-30).ln());
            let denom = a - 2.0 * bb + c;
            let offset = if denom < 0.0 { (0.5 * (a - c) / denom).clamp(-0.5, 0.5) } else { 0.0 };
            let hz = (k as f32 + offset) * df;
            // Pitch class with C = 0: A4 (440 Hz) is class 9.
            let class = (12.0 * (hz / 440.0).log2()).round() as i32 + 9;
            let energy = self.power[k - 1] + self.power[k] + self.power[k + 1];
            self.out.chroma[class.rem_euclid(12) as usize] += energy;
            total += energy;
        }
        let largest = self.out.chroma.iter().copied().fold(0.0f32, f32::max);
        for k in 0..12 {
            let x = if largest > 0.0 { self.out.chroma[k] / largest } else { 0.0 };
            if total > 0.0 {
                self.out.chroma[k] /= total;
            }
            let mut y = self.out.chroma_level[k];
            self.smooth(&mut y, x);
            self.out.chroma_level[k] = y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onset::SpectralFlux;
    use std::f32::consts::TAU;

    /// Features of every hop of `x` at the default settings with `edit` applied.
    fn run(x: &[f32], edit: impl Fn(&mut EngineConfig)) -> Vec<Features> {
        let mut cfg = EngineConfig::default();
        edit(&mut cfg);
        let mut flux = SpectralFlux::new(&cfg);
        let mut feats = SpectralFeatures::new(&cfg);
        let (hop, win) = (cfg.hop, cfg.onset.window);
        (win..=x.len())
            .step_by(hop)
            .map(|end| {
                flux.process(&x[end - win..end], true);
                *feats.process(flux.spectrum())
            })
            .collect()
    }

    fn sine(hz: f32, amp: f32, seconds: f32) -> Vec<f32> {
        (0..(48_000.0 * seconds) as usize).map(|i| amp * (TAU * hz * i as f32 / 48_000.0).sin()).collect()
    }

    /// White noise from a fixed seed (xorshift), uniform in -amp..amp.
    fn noise(n: usize, amp: f32) -> Vec<f32> {
        let mut s = 0x2545_f491_4f6c_dd1d_u64;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                amp * ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
            })
            .collect()
    }

    #[test]
    fn a_sine_lands_in_its_band_with_its_centroid_and_pitch_class() {
        let last = *run(&sine(440.0, 0.5, 1.0), |_| {}).last().unwrap();
        // Default edges: 40, 84, 179, 377, 795 Hz...: 440 Hz is band 3.
        let loudest = (0..8).max_by(|&a, &b| last.band_db[a].total_cmp(&last.band_db[b])).unwrap();
        assert_eq!(loudest, 3, "{:?}", last.band_db);
        // Mean square 0.125: -9 dBFS, all of it in that band.
        assert!((last.band_db[3] + 9.03).abs() < 0.3, "{}", last.band_db[3]);
        assert!((last.centroid_hz - 440.0).abs() < 25.0, "{}", last.centroid_hz);
        assert!(last.flatness < 0.1, "{}", last.flatness);
        let class = (0..12).max_by(|&a, &b| last.chroma[a].total_cmp(&last.chroma[b])).unwrap();
        assert_eq!(class, 9, "{:?}", last.chroma);
        assert!(last.chroma[9] > 0.9);
        assert!((last.chroma_level[9] - 1.0).abs() < 1e-3);
    }

    #[test]
    fn every_pitch_class_from_c3_to_b5_is_named() {
        for midi in 48..84 {
            let hz = 440.0 * 2f32.powf((midi as f32 - 69.0) / 12.0);
            let last = *run(&sine(hz, 0.3, 0.2), |_| {}).last().unwrap();
            let class = (0..12).max_by(|&a, &b| last.chroma[a].total_cmp(&last.chroma[b])).unwrap();
            assert_eq!(class, midi % 12, "midi {midi}: {:?}", last.chroma);
        }
    }

    #[test]
    fn noise_is_flat_and_a_lowpassed_noise_rolls_off_below_its_cutoff() {
        let white = noise(48_000, 0.3);
        let hops = run(&white, |_| {});
        let flatness = hops.iter().map(|f| f.flatness).sum::<f32>() / hops.len() as f32;
        assert!(flatness > 0.5, "{flatness}");
        assert!(hops.iter().all(|f| f.rolloff_hz > 15_000.0), "white noise rolls off near Nyquist");
        // A one-pole low-pass cut four times over at 1 kHz (-24 dB/octave).
        let mut low = white.clone();
        let a = (-TAU * 1000.0 / 48_000.0).exp();
        for _ in 0..4 {
            let mut y = 0.0;
            for v in low.iter_mut() {
                y = (1.0 - a) * *v + a * y;
                *v = y;
            }
        }
        let hops = run(&low, |_| {});
        assert!(hops[10..].iter().all(|f| f.rolloff_hz < 1000.0 && f.rolloff_hz > 100.0), "{:?}", hops[10].rolloff_hz);
        assert!(hops[10..].iter().all(|f| f.centroid_hz < 2000.0));
    }

    #[test]
    fn visual_values_stay_in_range_and_the_auto_gain_evens_out_levels() {
        // A tone in noise, loud, and the same 30 dB quieter: once the peak
        // follower has met each, their visual values agree.
        let mix = |amp: f32| -> Vec<f32> {
            sine(330.0, amp, 2.0).iter().zip(noise(96_000, 0.1 * amp)).map(|(s, n)| s + n).collect()
        };
        let loud = run(&mix(0.5), |_| {});
        let quiet = run(&mix(0.5 * 10f32.powf(-1.5)), |_| {});
        for f in loud.iter().chain(&quiet) {
            let all = f.band_level[..f.bands].iter().chain(&f.spectrum_level).chain(&f.chroma_level);
            assert!(all.clone().all(|v| (0.0..=1.0).contains(v)), "{f:?}");
        }
        let (a, b) = (loud.last().unwrap(), quiet.last().unwrap());
        assert!((a.band_db[2] - b.band_db[2] - 30.0).abs() < 1.0, "raw levels keep the difference");
        for k in 0..8 {
            assert!(
                (a.band_level[k] - b.band_level[k]).abs() < 0.05,
                "band {k}: {} vs {}",
                a.band_level[k],
                b.band_level[k]
            );
        }
        assert!(a.band_level[2] > 0.95, "the tone's band reads full scale: {}", a.band_level[2]);
    }

    #[test]
    fn silence_reads_zero_and_the_visual_values_release() {
        let mut x = sine(440.0, 0.5, 0.5);
        x.extend(vec![0.0; 48_000]);
        let hops = run(&x, |c| c.features.release_ms = 100.0);
        let last = hops.last().unwrap();
        assert_eq!((last.centroid_hz, last.flatness, last.rolloff_hz), (0.0, 0.0, 0.0));
        assert!(last.band_level.iter().chain(&last.chroma_level).chain(&last.spectrum_level).all(|&v| v < 1e-3));
        assert!(last.band_db[..8].iter().all(|&d| d == FLOOR_DB));
    }

    #[test]
    fn a_raised_gate_lowers_a_quiet_band() {
        let mut cfg = EngineConfig::default();
        (cfg.features.attack_ms, cfg.features.release_ms) = (0.0, 0.0);
        let x = sine(440.0, 0.01, 0.3);
        let mut flux = SpectralFlux::new(&cfg);
        let mut feats = SpectralFeatures::new(&cfg);
        let win = cfg.onset.window;
        flux.process(&x[x.len() - win..], true);
        // -43 dBFS in its band: the peak sits at it, so it reads 1.
        assert!(feats.process(flux.spectrum()).band_level[3] > 0.99);
        // With the gate at -20 dBFS the peak is held there: 23 dB below it over 60 dB.
        feats.set_floor_db(-20.0);
        let level = feats.process(flux.spectrum()).band_level[3];
        assert!((level - (1.0 - 23.0 / 60.0)).abs() < 0.02, "{level}");
    }

    #[test]
    fn bands_are_capped_at_nyquist_and_never_empty() {
        let mut cfg = EngineConfig::default();
        cfg.set("sample_rate", 8000.0).unwrap();
        cfg.features.bands = 16;
        cfg.validate().unwrap();
        let f = SpectralFeatures::new(&cfg);
        let bins = cfg.onset.window / 2 + 1;
        assert!(f.band_bins.iter().all(|&(lo, hi)| lo >= 1 && hi > lo && hi <= bins), "{:?}", f.band_bins);
        assert_eq!(f.high_hz, 4000.0);
    }
}
