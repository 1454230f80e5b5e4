//! Monophonic pitch with YIN (de Cheveigné & Kawahara, "YIN, a fundamental
//! frequency estimator for speech and music", JASA 111(4), 2002).
//!
//! The difference function (step 2) is computed through an FFT
//! cross-correlation, O(N log N) instead of O(N²). The frame length adapts: the
//! caller passes only the audio since the last onset (up to the configured
//! window), so a new note is estimated as soon as two of its periods are in,
//! and never mixed with the note before it. Two departures from the paper
//! serve those short frames: the difference function matches the levels of the
//! stretches it compares (an attack is still periodic while it swells), and a
//! dip cut off by the frame's longest lag is not taken for a period.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::config::EngineConfig;

/// One pitch estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PitchEstimate {
    /// Fundamental in Hz; for an unvoiced frame, the best guess (the deepest dip).
    pub hz: f32,
    /// 1 - aperiodicity at the chosen lag, in [0, 1], also for unvoiced frames.
    pub confidence: f32,
    /// Whether the YIN absolute threshold (step 4) was met.
    pub voiced: bool,
}

impl PitchEstimate {
    pub const NONE: Self = Self { hz: 0.0, confidence: 0.0, voiced: false };
}

/// A dip at a sub-multiple of the chosen lag this deep wins the octave check
/// (tuned on the accuracy corpus: 0.2 beat 0, 0.3, 0.5 and 0.7).
const OCTAVE_DIP: f32 = 0.2;

/// A split dip's deeper half lies within 1/this of the first half's lag.
const SPLIT_DIP_DIVISOR: usize = 12;

/// ... and is taken when it is this much deeper.
const SPLIT_DIP_RATIO: f32 = 0.5;

/// Least share of the frame's energy the integration window (its newest
/// half) must hold to be measured.
const MIN_WINDOW_SHARE: f64 = 0.01;

/// Largest level ratio (in amplitude) the difference function makes up for
/// between the two stretches it compares (tuned on the latency tones and the
/// accuracy corpus: 2 kept every pitch right, 4 and 8 did not).
const MAX_GAIN: f32 = 2.0;

/// Converts a frequency to a fractional MIDI note number (A4 = 440 Hz = 69).
pub fn hz_to_midi(hz: f32) -> f32 {
    69.0 + 12.0 * (hz / 440.0).log2()
}

/// Streaming YIN over frames of variable length.
pub struct Yin {
    sample_rate: f32,
    threshold: f32,
    /// Longest frame, in samples: integration window plus longest lag.
    max_frame: usize,
    /// Shortest lag searched (highest pitch).
    tau_min: usize,
    /// Longest lag searched (lowest pitch).
    tau_max: usize,
    /// FFTs from a sixteenth of the longest frame up to it, shortest first:
    /// a short frame (an attack) is correlated at its own length.
    plans: Vec<Plan>,
    // Preallocated work buffers, sized for `max_frame` in `new`.
    frame: Vec<f32>,
    head: Vec<f32>,
    frame_spec: Vec<Complex<f32>>,
    head_spec: Vec<Complex<f32>>,
    corr: Vec<f32>,
    scratch_fwd: Vec<Complex<f32>>,
    scratch_inv: Vec<Complex<f32>>,
    energy: Vec<f64>,
    cmnd: Vec<f32>,
}

/// One FFT length with its forward and inverse plans.
struct Plan {
    n: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    ifft: Arc<dyn ComplexToReal<f32>>,
}

/// Smallest n >= `min` whose only prime factors are 2, 3 and 5: sizes the FFT
/// tightly without leaving the fast radices.
fn fft_size(min: usize) -> usize {
    let mut n = min.max(2);
    loop {
        let mut m = n;
        for p in [2, 3, 5] {
            while m.is_multiple_of(p) {
                m /= p;
            }
        }
        if m == 1 {
            return n;
        }
        n += 1;
    }
}

impl Yin {
    /// Plans the FFTs and allocates every buffer; `cfg` must be validated.
    pub fn new(cfg: &EngineConfig) -> Self {
        let sr = cfg.sample_rate as f32;
        let max_frame = cfg.pitch_window();
        let tau_min = ((sr / cfg.pitch.fmax_hz).floor() as usize).max(2);
        let tau_max = ((sr / cfg.pitch.fmin_hz).ceil() as usize).min(max_frame / 2);
        let mut planner = RealFftPlanner::<f32>::new();
        let mut plans: Vec<Plan> = (0..5)
            .rev()
            .map(|k| fft_size((max_frame >> k).max(2)))
            .map(|n| Plan { n, fft: planner.plan_fft_forward(n), ifft: planner.plan_fft_inverse(n) })
            .collect();
        plans.dedup_by_key(|p| p.n);
        let longest = plans.last().expect("at least one plan");
        let scratch = |len: fn(&Plan) -> usize| plans.iter().map(len).max().unwrap_or(0);
        let (scratch_fwd, scratch_inv) = (scratch(|p| p.fft.get_scratch_len()), scratch(|p| p.ifft.get_scratch_len()));
        Self {
            sample_rate: sr,
            threshold: cfg.pitch.yin_threshold,
            max_frame,
            tau_min,
            tau_max,
            frame: longest.fft.make_input_vec(),
            head: longest.fft.make_input_vec(),
            frame_spec: longest.fft.make_output_vec(),
            head_spec: longest.fft.make_output_vec(),
            corr: longest.ifft.make_output_vec(),
            scratch_fwd: vec![Complex::default(); scratch_fwd],
            scratch_inv: vec![Complex::default(); scratch_inv],
            energy: vec![0.0; max_frame + 1],
            cmnd: vec![0.0; max_frame / 2 + 1],
            plans,
        }
    }

    /// Longest frame `estimate` uses.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Shortest frame that can hold two periods of the highest pitch searched.
    pub fn min_frame(&self) -> usize {
        4 * self.tau_min + 2
    }

    /// Estimates the pitch of `x` (at most `max_frame` samples, most recent last).
    /// Frames shorter than `min_frame` give `PitchEstimate::NONE`.
    pub fn estimate(&mut self, x: &[f32]) -> PitchEstimate {
        let len = x.len().min(self.max_frame);
        let x = &x[x.len() - len..];
        if len < self.min_frame() {
            return PitchEstimate::NONE;
        }
        let w = len / 2;
        let tau_max = self.tau_max.min(len - w);
        if tau_max <= self.tau_min + 1 {
            return PitchEstimate::NONE;
        }

        // The frame is analysed time-reversed, so the integration window is the
        // most recent `w` samples compared with the audio `tau` before them:
        // the estimate follows the newest audio, which halves the delay of a
        // pitch change. The difference function ignores a constant offset;
        // removing the mean keeps the FFT's rounding error small.
        let mean = (x.iter().map(|&v| v as f64).sum::<f64>() / len as f64) as f32;
        for (dst, &src) in self.frame.iter_mut().zip(x.iter().rev()) {
            *dst = src - mean;
        }
        // No lag reaches past the frame, so an FFT as long as the frame does
        // not wrap the correlation around.
        let plan = self.plans.iter().find(|p| p.n >= len).expect("the longest plan holds max_frame");
        let n = plan.n;
        self.frame[len..n].fill(0.0);
        self.head[..w].copy_from_slice(&self.frame[..w]);
        self.head[w..n].fill(0.0);
        self.energy[0] = 0.0;
        for i in 0..len {
            let v = self.frame[i] as f64;
            self.energy[i + 1] = self.energy[i] + v * v;
        }
        let e0 = self.energy[w];
        // A frame whose newest half is all but silent (a click, then nothing)
        // has nothing to measure; its difference function is rounding noise.
        if e0 <= MIN_WINDOW_SHARE * self.energy[len] {
            return PitchEstimate::NONE;
        }

        // Step 2: d(tau) from r, the cross-correlation of the first w samples
        // with the frame (via FFT), and e(tau), the energy of the w samples
        // starting at tau (via prefix sums).
        let bins = n / 2 + 1;
        let (frame_spec, head_spec) = (&mut self.frame_spec[..bins], &mut self.head_spec[..bins]);
        plan.fft
            .process_with_scratch(&mut self.frame[..n], frame_spec, &mut self.scratch_fwd)
            .expect("buffers sized for the longest plan");
        plan.fft
            .process_with_scratch(&mut self.head[..n], head_spec, &mut self.scratch_fwd)
            .expect("buffers sized for the longest plan");
        for (f, h) in frame_spec.iter_mut().zip(head_spec.iter()) {
            *f *= h.conj();
        }
        // A real signal's spectrum has real DC and Nyquist bins; rounding may not.
        frame_spec[0].im = 0.0;
        if n.is_multiple_of(2) {
            frame_spec[n / 2].im = 0.0;
        }
        plan.ifft
            .process_with_scratch(frame_spec, &mut self.corr[..n], &mut self.scratch_inv)
            .expect("buffers sized for the longest plan");
        let scale = 1.0 / n as f32;

        // Plain YIN has d = e(0) + e(tau) - 2 r(tau). Here the levels are
        // matched: the audio `tau` back is scaled by g = sqrt(e(0) / e(tau))
        // (within MAX_GAIN), so d = e(0)/g + g e(tau) - 2 r(tau), which is
        // 2 (sqrt(e(0) e(tau)) - r(tau)) inside the range. A note swelling in or
        // dying away is still periodic; plain YIN counts the level change as
        // aperiodicity and hears an attack late.
        let e0f = e0 as f32;
        let max_ratio = MAX_GAIN * MAX_GAIN;
        let lags = self.cmnd[1..=tau_max].iter_mut();
        let ends = &self.energy[1 + w..=tau_max + w];
        for (((d, &end), &begin), &r) in lags.zip(ends).zip(&self.energy[1..]).zip(&self.corr[1..]) {
            let e_tau = (end - begin) as f32;
            // Written as selects so the loop vectorises.
            let geometric = 2.0 * (e0f * e_tau).sqrt();
            let quieter = e0f / MAX_GAIN + MAX_GAIN * e_tau;
            let louder = MAX_GAIN * e0f + e_tau / MAX_GAIN;
            let matched = if e_tau * max_ratio < e0f { quieter } else { geometric };
            let matched = if e_tau > e0f * max_ratio { louder } else { matched };
            *d = (matched - 2.0 * r * scale).max(0.0);
        }

        // Step 3: cumulative mean normalised difference d'(tau), in place.
        self.cmnd[0] = 1.0;
        let mut running = 0.0f64;
        for tau in 1..=tau_max {
            let d = self.cmnd[tau] as f64;
            running += d;
            self.cmnd[tau] = if running > 0.0 { (d * tau as f64 / running) as f32 } else { 1.0 };
        }

        // Step 4: the first lag under the absolute threshold, followed down to
        // its local minimum; without one, the global minimum (unvoiced).
        let cmnd = &self.cmnd[..=tau_max];
        let mut best = None;
        let mut tau = self.tau_min;
        while tau < tau_max {
            if cmnd[tau] < self.threshold {
                // The deepest point of the dip. An inharmonic or detuned tone
                // (a piano's low strings) splits it in two a few per cent
                // apart; the next true candidate, the octave below, is twice as far.
                while tau + 1 < tau_max && cmnd[tau + 1] < cmnd[tau] {
                    tau += 1;
                }
                if tau + 1 >= tau_max {
                    // Still falling at the longest lag the frame holds: the
                    // period is longer than that, not here.
                    break;
                }
                let end = (tau + tau / SPLIT_DIP_DIVISOR).min(tau_max - 1);
                let deepest = (tau..=end).min_by(|&a, &b| cmnd[a].total_cmp(&cmnd[b])).expect("non-empty");
                best = Some(if cmnd[deepest] < SPLIT_DIP_RATIO * cmnd[tau] { deepest } else { tau });
                break;
            }
            tau += 1;
        }
        let voiced = best.is_some();
        let mut tau = best.unwrap_or_else(|| {
            (self.tau_min..tau_max).min_by(|&a, &b| cmnd[a].total_cmp(&cmnd[b])).expect("tau_min < tau_max")
        });
        // Octave check: on attacks and in noise the dip at the true period can
        // sit just above the threshold while the one at twice the period is
        // under it. Prefer a sub-multiple of the lag whose own dip is nearly
        // as deep.
        for k in [3usize, 2] {
            let sub = tau as f32 / k as f32;
            let (lo, hi) = ((sub - 2.0).max(self.tau_min as f32) as usize, (sub + 2.0) as usize);
            if hi >= tau || lo >= hi {
                continue;
            }
            let cand = (lo..=hi).min_by(|&a, &b| cmnd[a].total_cmp(&cmnd[b])).expect("non-empty");
            if cmnd[cand] < OCTAVE_DIP && cand > lo && cand < hi {
                tau = cand;
                break;
            }
        }
        let confidence = (1.0 - cmnd[tau]).clamp(0.0, 1.0);

        // Step 5: parabolic interpolation of the dip for sub-sample accuracy.
        let (a, b, c) = (cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]);
        let denom = a - 2.0 * b + c;
        let shift = if denom > 0.0 { (0.5 * (a - c) / denom).clamp(-0.5, 0.5) } else { 0.0 };
        let period = tau as f32 + shift;
        PitchEstimate { hz: self.sample_rate / period, confidence, voiced }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, sr: f32, len: usize, harmonics: usize) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let t = i as f32 / sr;
                (1..=harmonics).map(|h| (2.0 * std::f32::consts::PI * hz * h as f32 * t).sin() / h as f32).sum::<f32>()
                    * 0.3
            })
            .collect()
    }

    fn cents(a: f32, b: f32) -> f32 {
        1200.0 * (a / b).log2()
    }

    /// The FFT path must equal the textbook O(N²) difference function, with
    /// the levels of the two stretches matched within MAX_GAIN, at every FFT length.
    #[test]
    fn fft_difference_matches_direct_formula() {
        let cfg = EngineConfig::default();
        let mut yin = Yin::new(&cfg);
        for len in [2400, 1500, 1000, 333, 150] {
            // A swell from 0.2 to 1: the gain is clamped at the longest lags only.
            let forward: Vec<f32> = tone(220.0, 48_000.0, len, 4)
                .iter()
                .enumerate()
                .map(|(i, v)| v * (0.2 + 0.8 * i as f32 / len as f32))
                .collect();
            yin.estimate(&forward);
            // The frame is analysed newest-first.
            let x: Vec<f64> = forward.iter().rev().map(|&v| v as f64).collect();
            let mean = x.iter().sum::<f64>() / x.len() as f64;
            let x: Vec<f64> = x.iter().map(|v| v - mean).collect();
            let w = len / 2;
            let energy = |from: usize| x[from..from + w].iter().map(|v| v * v).sum::<f64>();
            let e0 = energy(0);
            let mut running = 0.0;
            for tau in 1..=(len - w).min(1200) {
                let g = (e0 / energy(tau)).sqrt().clamp(1.0 / MAX_GAIN as f64, MAX_GAIN as f64);
                let d: f64 = (0..w).map(|j| (x[j] / g.sqrt() - x[j + tau] * g.sqrt()).powi(2)).sum();
                running += d;
                let direct = d * tau as f64 / running;
                let got = yin.cmnd[tau] as f64;
                assert!((got - direct).abs() < 2e-3, "len {len} tau {tau}: {got} vs {direct}");
            }
        }
    }

    #[test]
    fn a_swelling_or_decaying_tone_is_still_periodic() {
        let cfg = EngineConfig::default();
        let mut yin = Yin::new(&cfg);
        // Two and a half periods of A3 rising from or falling to nearly
        // nothing, as in an attack or a pluck: plain YIN counts the change as
        // aperiodicity (confidence 0.87 and 0.65).
        let steady = tone(220.0, 48_000.0, 560, 5);
        let envelope = |x: &[f32], level: &dyn Fn(f32) -> f32| -> Vec<f32> {
            x.iter().enumerate().map(|(i, v)| v * level(i as f32 / x.len() as f32)).collect()
        };
        let swell = envelope(&steady, &|t| 0.05 + t);
        let decay = envelope(&steady, &|t| 1.05 - t);
        for x in [swell, decay] {
            let est = yin.estimate(&x);
            assert!(est.voiced && est.confidence > 0.9, "{est:?}");
            assert!(cents(est.hz, 220.0).abs() < 10.0, "{est:?}");
        }
    }

    #[test]
    fn a_frame_short_of_two_periods_gives_no_pitch_rather_than_a_wrong_one() {
        let cfg = EngineConfig::default();
        let mut yin = Yin::new(&cfg);
        // E2: 582 samples a period. Below two periods the dip is cut off at the
        // longest lag the frame holds, which would read as F2 or higher.
        for len in [1100, 1130, 1150, 1160] {
            let est = yin.estimate(&tone(82.41, 48_000.0, len, 5));
            assert!(!est.voiced || cents(est.hz, 82.41).abs() < 50.0, "{len} samples: {est:?}");
        }
        let est = yin.estimate(&tone(82.41, 48_000.0, 1200, 5));
        assert!(est.voiced && cents(est.hz, 82.41).abs() < 10.0, "{est:?}");
    }

    #[test]
    fn sines_and_harmonic_tones_within_ten_cents() {
        let cfg = EngineConfig::default();
        let mut yin = Yin::new(&cfg);
        // E1 (41.2 Hz) to C7 (2093 Hz) is past fmax; C7 checked with a raised fmax below.
        for midi in 28..=95 {
            let hz = 440.0 * 2f32.powf((midi as f32 - 69.0) / 12.0);
            for harmonics in [1, 6] {
                let est = yin.estimate(&tone(hz, 48_000.0, 2400, harmonics));
                assert!(est.voiced, "midi {midi} h{harmonics} unvoiced");
                assert!(cents(est.hz, hz).abs() < 10.0, "midi {midi} h{harmonics}: {} Hz vs {hz}", est.hz);
            }
        }
        let mut cfg = EngineConfig::default();
        cfg.pitch.fmax_hz = 2200.0;
        let mut yin = Yin::new(&cfg);
        let est = yin.estimate(&tone(2093.0, 48_000.0, 2400, 3));
        assert!(cents(est.hz, 2093.0).abs() < 10.0, "{}", est.hz);
    }

    #[test]
    fn short_frames_estimate_high_notes_early() {
        let cfg = EngineConfig::default();
        let mut yin = Yin::new(&cfg);
        // 440 Hz: two periods are 218 samples; 256 suffice.
        let est = yin.estimate(&tone(440.0, 48_000.0, 256, 4));
        assert!(est.voiced && cents(est.hz, 440.0).abs() < 10.0, "{est:?}");
    }

    #[test]
    fn silence_and_noise_are_unvoiced() {
        let cfg = EngineConfig::default();
        let mut yin = Yin::new(&cfg);
        assert!(!yin.estimate(&vec![0.0; 2400]).voiced);
        assert!(!yin.estimate(&vec![0.5; 2400]).voiced);
        let mut state = 1u32;
        let noise: Vec<f32> = (0..2400)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as f32 / u32::MAX as f32 - 0.5
            })
            .collect();
        let est = yin.estimate(&noise);
        assert!(!est.voiced && est.confidence < 0.8, "{est:?}");
    }
}
