//! Causal beat tracking on the onset detector's spectral flux, after
//! Stark, Davies & Plumbley, "Real-time beat-synchronous analysis of musical
//! audio" (DAFx 2009, the BTrack algorithm), which makes the context-dependent
//! tracker of Davies & Plumbley (IEEE TASLP 2007) causal with the cumulative
//! score of Ellis ("Beat tracking by dynamic programming", JNMR 2007):
//!
//! 1. Novelty: the flux of `D` hops summed into one frame of about 10 ms
//!    (`FRAME_RATE_HZ`), less its slow moving mean, half-wave rectified.
//! 2. Tempo: a leaky autocorrelation of the novelty (time constant `ACF_TAU_S`)
//!    scored by a comb over the first `COMB_MULTIPLES` multiples of each
//!    candidate period, weighted by a log-Gaussian prior around
//!    `beat.prior_bpm` (Ellis) that settles octave ambiguities, and smoothed
//!    by a Viterbi-like step over a 1-BPM grid of tempo states (BTrack).
//! 3. Phase: the cumulative score `C[k] = (1 - α) o[k] + α max_v W(v) C[k - v]`
//!    over `v` in half to twice the period, `W` a log-Gaussian around it.
//! 4. Prediction: half a period after each beat the score is projected one
//!    period into the future without new novelty, weighted by a Gaussian
//!    around the expected beat, and its maximum is the next beat; it is
//!    reported when the stream reaches it, carrying the beat after it.
//!
//! Where it departs: the autocorrelation is updated recursively every frame
//! instead of over a 6 s window each beat (constant work per hop); the period
//! is refined from the autocorrelation peak at its largest multiple (finer
//! than the frame grid); a beat is only reported while the novelty is periodic
//! enough (`MIN_CONFIDENCE`) and sound was heard within two periods; and the
//! downbeat is the position in the bar with the strongest low-frequency
//! (kick-drum) flux at its beats, accumulated with a decay, rather than a
//! separate downbeat model.

use crate::config::EngineConfig;
use crate::event::{Event, EventData};

/// Target rate of the novelty frames: BTrack's 86 Hz at 44.1 kHz / 512.
const FRAME_RATE_HZ: f32 = 100.0;
/// Time constant of the leaky autocorrelation: long enough to hold a few
/// bars, short enough to follow a tempo jump within a few seconds.
const ACF_TAU_S: f32 = 3.0;
/// Time constant of the moving mean taken off the novelty.
const MEAN_TAU_S: f32 = 1.0;
/// Multiples of the period the tempo comb sums.
const COMB_MULTIPLES: usize = 4;
/// Width of the log-Gaussian tempo prior, in octaves.
const PRIOR_OCTAVES: f32 = 1.0;
/// Tempo states (1 BPM apart) one update may move, and the Gaussian width of that move.
const TRANSITION_STATES: usize = 8;
const TRANSITION_SIGMA: f32 = 2.0;
/// Floor of the transition, as a share of the best previous state: lets a
/// tempo jump win once the new tempo's evidence outweighs it.
const JUMP_FLOOR: f32 = 0.05;
/// Frames between two tempo updates (about 80 ms).
const TEMPO_EVERY: usize = 8;
/// Weight of the past in the cumulative score (BTrack's α).
const ALPHA: f32 = 0.9;
/// Tightness of the log-Gaussian transition weight (BTrack's and Ellis' 5).
const TIGHTNESS: f32 = 5.0;
/// Seconds of audio before the first prediction: the autocorrelation needs a few beats.
const WARMUP_S: f32 = 2.0;
/// Beats predicted from the projected score alone, without the Gaussian around
/// the expected beat that keeps the phase.
const FREE_BEATS: u64 = 4;
/// Normalised autocorrelation at the period below which no beat is reported.
const MIN_CONFIDENCE: f32 = 0.1;
/// Relative tempo change that sends a tempo event between downbeats.
const TEMPO_CHANGE: f32 = 0.02;
/// Upper edge of the low band whose flux marks accents (kick drum), in Hz.
const ACCENT_HZ: f32 = 100.0;
/// Weight of the low band's flux (per bin) added to the whole spectrum's
/// (averaged over bins): the kick drum marks the beat but fills few bins, the
/// hi-hat's broadband noise fills most of them and would have the tracker
/// follow the off-beats.
const LOW_WEIGHT: f32 = 1.0;
/// Decay of the accent accumulated per position in the bar, per bar.
const ACCENT_DECAY: f32 = 0.9;
/// The downbeat moves only when another position's accent exceeds its own by this factor.
const DOWNBEAT_MARGIN: f32 = 1.5;
/// Taps averaged into a tapped tempo; a gap longer than the slowest beat by
/// `TAP_GAP` starts a new count.
const TAPS: usize = 4;
const TAP_GAP: f32 = 1.5;
/// Share of the tempo states' probability left off the state a user chose
/// (halve, double, tap), so the evidence can still move it later.
const CHOSEN_FLOOR: f32 = 0.01;

/// One beat tracker; `process` once per hop, allocating nothing.
pub struct BeatTracker {
    hop: usize,
    /// Hops per novelty frame.
    decim: usize,
    frame_rate: f32,
    hops_in_frame: usize,
    flux_sum: f32,
    accent_sum: f32,
    gate_in_frame: bool,
    /// Frames processed; frame `k` ends at the hop end passed with it.
    frame: usize,
    mean: f32,
    mean_coef: f32,
    acf_coef: f32,
    /// Rectified novelty, a ring indexed by frame.
    novelty: Vec<f32>,
    /// Low-band flux per frame, same ring.
    accents: Vec<f32>,
    /// Cumulative score, same ring, extended by a period for prediction.
    cumulative: Vec<f32>,
    future: Vec<f32>,
    ring: usize,
    acf: Vec<f32>,
    /// Tempo grid in BPM, the states' probabilities and the scratch for their update.
    bpms: Vec<f32>,
    prior: Vec<f32>,
    states: Vec<f32>,
    next_states: Vec<f32>,
    /// Gaussian transition weights for moves of -TRANSITION_STATES..=TRANSITION_STATES states.
    transition: Vec<f32>,
    /// Period in frames and the log-Gaussian weights of its transition window.
    period: f32,
    weights: Vec<f32>,
    /// Lags where `weights` is not 0: half to twice the period.
    window: (usize, usize),
    confidence: f32,
    /// Previous low-band log magnitudes, for the accent flux.
    low_prev: Vec<f32>,
    low_bins: usize,
    /// Frame of the next prediction and of the predicted beat.
    predict_at: usize,
    next_beat: Option<usize>,
    last_beat: Option<usize>,
    last_sound: Option<usize>,
    beats: u64,
    beats_per_bar: usize,
    accent_bar: Vec<f32>,
    downbeat: usize,
    reported_bpm: f32,
    /// Samples from a frame's end back to the audio its novelty peak describes.
    compensation: u64,
    /// Centre of the tempo prior: `beat.prior_bpm`, moved by halve, double and tap.
    prior_bpm: f32,
    config_prior_bpm: f32,
    min_bpm: f32,
    max_bpm: f32,
    /// The tempo is frozen: the autocorrelation no longer moves it.
    held: bool,
    /// The metrical level is the user's (halve, double, tap): the tempo does not
    /// jump an octave back, and confidence counts the period's double too (a
    /// doubled tempo's every other beat may be silent).
    chosen: bool,
    /// The last taps' sample positions, oldest first, and how many are in.
    taps: [u64; TAPS],
    tap_count: usize,
}

impl BeatTracker {
    /// Allocates every buffer; `cfg` must be validated.
    pub fn new(cfg: &EngineConfig) -> Self {
        let hops_per_s = cfg.sample_rate as f32 / cfg.hop as f32;
        let decim = ((hops_per_s / FRAME_RATE_HZ).round() as usize).max(1);
        let frame_rate = hops_per_s / decim as f32;
        let b = &cfg.beat;
        let max_period = (60.0 * frame_rate / b.min_bpm).ceil() as usize;
        let lags = COMB_MULTIPLES * max_period + 2;
        let ring = (lags + 1).max(3 * max_period + 2).next_power_of_two();
        let lo = b.min_bpm.ceil() as usize;
        let hi = b.max_bpm.floor() as usize;
        let bpms: Vec<f32> = (lo..=hi).map(|v| v as f32).collect();
        let prior = vec![0.0; bpms.len()];
        let n = bpms.len();
        let bins = cfg.onset.window / 2 + 1;
        let low_bins = ((ACCENT_HZ * cfg.onset.window as f32 / cfg.sample_rate as f32).ceil() as usize).clamp(1, bins);
        let mut tracker = Self {
            hop: cfg.hop,
            decim,
            frame_rate,
            hops_in_frame: 0,
            flux_sum: 0.0,
            accent_sum: 0.0,
            gate_in_frame: false,
            frame: 0,
            mean: 0.0,
            mean_coef: (-1.0 / (MEAN_TAU_S * frame_rate)).exp(),
            acf_coef: (-1.0 / (ACF_TAU_S * frame_rate)).exp(),
            novelty: vec![0.0; ring],
            accents: vec![0.0; ring],
            cumulative: vec![0.0; ring],
            future: vec![0.0; 3 * max_period + 4],
            ring,
            acf: vec![0.0; lags],
            prior,
            states: vec![1.0 / n as f32; n],
            next_states: vec![0.0; n],
            transition: (0..=2 * TRANSITION_STATES)
                .map(|i| {
                    let d = (i as f32 - TRANSITION_STATES as f32) / TRANSITION_SIGMA;
                    (-0.5 * d * d).exp()
                })
                .collect(),
            bpms,
            period: 60.0 * frame_rate / b.prior_bpm,
            weights: vec![0.0; 2 * max_period + 2],
            window: (1, 1),
            confidence: 0.0,
            low_prev: vec![0.0; low_bins],
            low_bins,
            predict_at: 0,
            next_beat: None,
            last_beat: None,
            last_sound: None,
            beats: 0,
            beats_per_bar: b.beats_per_bar,
            accent_bar: vec![0.0; b.beats_per_bar],
            downbeat: 0,
            reported_bpm: 0.0,
            // A beat falls on the frame whose novelty peaks, a quarter of the
            // onset window after the attack (measured on the generated grooves
            // at 48 kHz: with half the window plus a frame, beats came 15 ms
            // early at every tempo; with a quarter, within 2 ms).
            compensation: (cfg.onset.window / 4) as u64,
            prior_bpm: b.prior_bpm,
            config_prior_bpm: b.prior_bpm,
            min_bpm: b.min_bpm,
            max_bpm: b.max_bpm,
            held: false,
            chosen: false,
            taps: [0; TAPS],
            tap_count: 0,
        };
        tracker.reset();
        tracker
    }

    /// Forgets everything heard.
    pub fn reset(&mut self) {
        self.hops_in_frame = 0;
        self.flux_sum = 0.0;
        self.accent_sum = 0.0;
        self.gate_in_frame = false;
        self.frame = 0;
        self.mean = 0.0;
        self.novelty.fill(0.0);
        self.accents.fill(0.0);
        self.cumulative.fill(0.0);
        self.acf.fill(0.0);
        let n = self.states.len() as f32;
        self.states.fill(1.0 / n);
        self.confidence = 0.0;
        self.low_prev.fill(0.0);
        self.predict_at = (WARMUP_S * self.frame_rate) as usize;
        self.next_beat = None;
        self.last_beat = None;
        self.last_sound = None;
        self.beats = 0;
        self.accent_bar.fill(0.0);
        self.downbeat = 0;
        self.reported_bpm = 0.0;
        self.held = false;
        self.chosen = false;
        self.tap_count = 0;
        self.set_prior(self.config_prior_bpm);
        let prior_period = 60.0 * self.frame_rate / self.prior_bpm;
        self.set_period(prior_period);
    }

    /// Whether the tempo is held.
    pub fn held(&self) -> bool {
        self.held
    }

    /// Freezes the tempo (the beats keep their phase) or lets it follow the audio again.
    pub fn hold(&mut self, held: bool) {
        self.held = held;
    }

    /// Scales the tracked tempo by `factor` (2 doubles it, 0.5 halves it), within
    /// `beat.min_bpm`..`beat.max_bpm`: the tempo prior moves with it, so the
    /// tracker stays at the chosen metrical level.
    pub fn scale_tempo(&mut self, factor: f32) {
        if factor.is_finite() && factor > 0.0 {
            self.choose_tempo(self.bpm() * factor);
        }
    }

    /// A tap of the user's at sample `sample`: from the second tap on, the
    /// tempo is the taps' mean interval and the next beat falls a beat after
    /// the last tap.
    pub fn tap(&mut self, sample: u64) {
        let slowest = (TAP_GAP * 60.0 / self.min_bpm * (self.decim * self.hop) as f32 * self.frame_rate) as u64;
        let last = self.taps[self.tap_count.saturating_sub(1)];
        if self.tap_count > 0 && (sample <= last || sample - last > slowest) {
            self.tap_count = 0;
        }
        if self.tap_count == TAPS {
            self.taps.copy_within(1.., 0);
            self.tap_count -= 1;
        }
        self.taps[self.tap_count] = sample;
        self.tap_count += 1;
        if self.tap_count < 2 {
            return;
        }
        let span = (self.taps[self.tap_count - 1] - self.taps[0]) as f32 / (self.tap_count - 1) as f32;
        let samples_per_frame = (self.decim * self.hop) as f32;
        self.choose_tempo(60.0 * self.frame_rate * samples_per_frame / span);
        // The beat after the last tap, as a frame whose end less the compensation is it.
        let beat = sample + (self.period * samples_per_frame) as u64 + self.compensation;
        let mut frame = (beat as f32 / samples_per_frame) as usize;
        while frame <= self.frame {
            frame += self.period.round().max(1.0) as usize;
        }
        self.next_beat = Some(frame.saturating_sub(1));
        self.predict_at = frame + (self.period / 2.0).round() as usize;
    }

    /// Sets the tempo to `bpm` (clamped to the range) as a user's choice.
    fn choose_tempo(&mut self, bpm: f32) {
        let bpm = bpm.clamp(self.min_bpm, self.max_bpm);
        self.chosen = true;
        self.set_prior(bpm);
        let nearest = self
            .bpms
            .iter()
            .enumerate()
            .min_by(|a, b| (a.1 - bpm).abs().total_cmp(&(b.1 - bpm).abs()))
            .map_or(0, |(s, _)| s);
        let n = self.states.len() as f32;
        self.states.fill(CHOSEN_FLOOR / n);
        self.states[nearest] += 1.0 - CHOSEN_FLOOR;
        self.set_period(60.0 * self.frame_rate / bpm);
    }

    fn set_prior(&mut self, centre: f32) {
        self.prior_bpm = centre;
        for (p, &bpm) in self.prior.iter_mut().zip(&self.bpms) {
            let octaves = (bpm / centre).log2() / PRIOR_OCTAVES;
            *p = (-0.5 * octaves * octaves).exp();
        }
    }

    /// The tracked tempo in BPM.
    pub fn bpm(&self) -> f32 {
        60.0 * self.frame_rate / self.period
    }

    /// Takes one hop ending at sample `end`: its spectral `flux`, the onset
    /// frame's log magnitudes and whether the silence gate is open. Pushes a
    /// beat event (and a tempo event) when the stream reaches a predicted beat.
    pub fn process(&mut self, end: u64, flux: f32, log_spectrum: &[f32], gate_open: bool, out: &mut Vec<Event>) {
        self.flux_sum += flux;
        let mut low = 0.0;
        for (prev, &now) in self.low_prev.iter_mut().zip(&log_spectrum[..self.low_bins]) {
            low += (now - *prev).max(0.0);
            *prev = now;
        }
        self.accent_sum += low / self.low_bins as f32;
        self.gate_in_frame |= gate_open;
        self.hops_in_frame += 1;
        if self.hops_in_frame < self.decim {
            return;
        }
        let (flux, accent, gate) = (self.flux_sum, self.accent_sum, self.gate_in_frame);
        (self.hops_in_frame, self.flux_sum, self.accent_sum, self.gate_in_frame) = (0, 0.0, 0.0, false);
        self.run_frame(end, flux, accent, gate, out);
    }

    fn at(&self, k: usize) -> usize {
        k & (self.ring - 1)
    }

    fn run_frame(&mut self, end: u64, flux: f32, accent: f32, gate: bool, out: &mut Vec<Event>) {
        let k = self.frame;
        self.frame += 1;
        if gate {
            self.last_sound = Some(k);
        }
        // 1. Novelty: the flux with the low band's added, over its slow mean, rectified.
        let flux = flux + LOW_WEIGHT * accent;
        self.mean = self.mean_coef * self.mean + (1.0 - self.mean_coef) * flux;
        let o = (flux - self.mean).max(0.0);
        let i = self.at(k);
        self.novelty[i] = o;
        self.accents[i] = accent;

        // 2. Leaky autocorrelation, and the tempo every few frames.
        // novelty[k - lag] for lag = 0.. runs down the ring from slot i, then wraps.
        let (c, lags) = (self.acf_coef, self.acf.len().min(k + 1));
        let (head, tail) = self.acf[..lags].split_at_mut(lags.min(i + 1));
        for (a, &past) in head.iter_mut().zip(self.novelty[..=i].iter().rev()) {
            *a = c * *a + o * past;
        }
        for (a, &past) in tail.iter_mut().zip(self.novelty.iter().rev()) {
            *a = c * *a + o * past;
        }
        for a in &mut self.acf[lags..] {
            *a *= c;
        }
        if k.is_multiple_of(TEMPO_EVERY) {
            self.update_tempo();
        }

        // 3. Cumulative score.
        let best = self.best_past(k, |j| self.cumulative[j & (self.ring - 1)]);
        self.cumulative[i] = (1.0 - ALPHA) * o + ALPHA * best;

        // 4. Prediction half a period after each beat, and the beat when it comes.
        if k >= self.predict_at {
            self.predict(k);
        }
        if self.next_beat == Some(k) {
            self.next_beat = None;
            self.beat(k, end, out);
        }
    }

    /// `max_v W(v) score(k - v)` over the transition window of the current period.
    fn best_past(&self, k: usize, score: impl Fn(usize) -> f32) -> f32 {
        let (lo, hi) = (self.window.0, self.window.1.min(k));
        (lo..=hi).map(|v| self.weights[v] * score(k - v)).fold(0.0, f32::max)
    }

    fn set_period(&mut self, period: f32) {
        self.period = period;
        let lo = ((period / 2.0).round() as usize).max(1);
        let hi = ((2.0 * period).round() as usize).min(self.weights.len() - 1);
        self.window = (lo, hi);
        for (v, w) in self.weights.iter_mut().enumerate() {
            *w = if (lo..=hi).contains(&v) {
                let x = TIGHTNESS * (v as f32 / period).ln();
                (-0.5 * x * x).exp()
            } else {
                0.0
            };
        }
    }

    /// Largest autocorrelation within `m / 2` lags of `m * period`.
    fn comb_value(&self, period: f32, m: usize) -> f32 {
        let c = m as f32 * period;
        let lo = (c - m as f32 / 2.0).floor().max(1.0) as usize;
        let hi = ((c + m as f32 / 2.0).ceil() as usize).min(self.acf.len() - 1);
        self.acf[lo..=hi.max(lo)].iter().copied().fold(0.0, f32::max)
    }

    fn update_tempo(&mut self) {
        let energy = self.acf[0];
        if energy <= 1e-12 {
            self.confidence = 0.0;
            return;
        }
        if self.held {
            self.confidence = self.period_confidence(self.period, energy);
            return;
        }
        let prev_best = self.states.iter().copied().fold(0.0, f32::max);
        let mut total = 0.0;
        for s in 0..self.bpms.len() {
            let period = 60.0 * self.frame_rate / self.bpms[s];
            let comb: f32 = (1..=COMB_MULTIPLES).map(|m| self.comb_value(period, m)).sum::<f32>();
            let evidence = (comb / (COMB_MULTIPLES as f32 * energy)).max(0.0) * self.prior[s];
            let lo = s.saturating_sub(TRANSITION_STATES);
            let hi = (s + TRANSITION_STATES).min(self.bpms.len() - 1);
            let mut carried = if self.chosen { 0.0 } else { JUMP_FLOOR * prev_best };
            for j in lo..=hi {
                carried = carried.max(self.states[j] * self.transition[j + TRANSITION_STATES - s]);
            }
            self.next_states[s] = evidence * carried;
            total += self.next_states[s];
        }
        if total <= 0.0 {
            return;
        }
        let mut best = 0;
        for (s, (dst, &src)) in self.states.iter_mut().zip(&self.next_states).enumerate() {
            *dst = src / total;
            if src > self.next_states[best] {
                best = s;
            }
        }
        // Refine: the autocorrelation peak near the largest multiple in range, interpolated.
        let coarse = 60.0 * self.frame_rate / self.bpms[best];
        let mut m = COMB_MULTIPLES;
        while m > 1 && (m as f32 * coarse).ceil() as usize + m >= self.acf.len() - 1 {
            m -= 1;
        }
        let c = m as f32 * coarse;
        let lo = (c - m as f32).floor().max(1.0) as usize;
        let hi = (c + m as f32).ceil() as usize;
        let peak = (lo..=hi).max_by(|&a, &b| self.acf[a].total_cmp(&self.acf[b])).unwrap_or(lo);
        let (a, b, g) = (self.acf[peak - 1], self.acf[peak], self.acf[peak + 1]);
        let denom = a - 2.0 * b + g;
        let offset = if denom < 0.0 { (0.5 * (a - g) / denom).clamp(-0.5, 0.5) } else { 0.0 };
        let refined = (peak as f32 + offset) / m as f32;
        // Keep the refinement only when it agrees with the chosen state.
        let period = if (refined / coarse - 1.0).abs() < 0.02 { refined } else { coarse };
        self.set_period(period);
        // The largest autocorrelation next to the period: a period between two
        // frames puts the beats' products on either lag.
        self.confidence = self.period_confidence(period, energy);
    }

    /// The normalised autocorrelation at `period` (and at its double, at a chosen level).
    fn period_confidence(&self, period: f32, energy: f32) -> f32 {
        let at = self.comb_value(period, 1);
        let at = if self.chosen { at.max(self.comb_value(period, 2)) } else { at };
        (at / energy).clamp(0.0, 1.0)
    }

    /// Projects the cumulative score one period ahead without new novelty and
    /// takes the most likely beat, weighted around half a period from now.
    fn predict(&mut self, k: usize) {
        let p = self.period;
        let span = (p.round() as usize).max(2);
        let history = self.weights.len();
        // future[0..history] is the past score, oldest first; the projection follows.
        for j in 0..history {
            self.future[j] = if k + 1 + j >= history { self.cumulative[self.at(k + 1 + j - history)] } else { 0.0 };
        }
        let mut best = (0.0f32, span / 2);
        for j in 0..span {
            let idx = history + j;
            let (lo, hi) = (self.window.0, self.window.1.min(idx));
            let v = (lo..=hi).map(|lag| self.weights[lag] * self.future[idx - lag]).fold(0.0, f32::max);
            self.future[idx] = v;
            // Until a few beats are in, no phase to keep: the projected maximum alone decides.
            let d = if self.beats < FREE_BEATS { 0.0 } else { (j as f32 + 1.0 - p / 2.0) / (p / 2.0) };
            let score = v * (-0.5 * d * d).exp();
            if score > best.0 {
                best = (score, j);
            }
        }
        let beat = k + 1 + best.1;
        self.next_beat = Some(beat);
        self.predict_at = beat + (p / 2.0).round() as usize;
    }

    fn beat(&mut self, k: usize, end: u64, out: &mut Vec<Event>) {
        let p = self.period;
        // The previous beat's accent, now that the audio around it is in.
        if let Some(prev) = self.last_beat {
            let accent = (prev.saturating_sub(2)..=prev + 2).map(|j| self.accents[self.at(j)]).fold(0.0, f32::max);
            let pos = ((self.beats + self.beats_per_bar as u64 - 1) % self.beats_per_bar as u64) as usize;
            for a in self.accent_bar.iter_mut() {
                *a *= ACCENT_DECAY.powf(1.0 / self.beats_per_bar as f32);
            }
            self.accent_bar[pos] += accent;
            let strongest =
                (0..self.beats_per_bar).max_by(|&a, &b| self.accent_bar[a].total_cmp(&self.accent_bar[b])).unwrap_or(0);
            if self.accent_bar[strongest] > DOWNBEAT_MARGIN * self.accent_bar[self.downbeat] {
                self.downbeat = strongest;
            }
        }
        self.last_beat = Some(k);
        let pos = (self.beats % self.beats_per_bar as u64) as usize;
        self.beats += 1;
        let heard = self.last_sound.is_some_and(|s| k - s <= 2 * p as usize);
        if !heard || self.confidence < MIN_CONFIDENCE {
            return;
        }
        let in_bar = ((pos + self.beats_per_bar - self.downbeat) % self.beats_per_bar + 1) as u8;
        let sample = end.saturating_sub(self.compensation);
        let period_samples = (p * (self.decim * self.hop) as f32) as u64;
        let bpm = self.bpm();
        out.push(Event {
            sample,
            emit_sample: end,
            data: EventData::Beat {
                beat: in_bar,
                bpm,
                confidence: self.confidence,
                next_sample: sample + period_samples,
            },
        });
        if in_bar == 1 || (bpm / self.reported_bpm - 1.0).abs() > TEMPO_CHANGE {
            self.reported_bpm = bpm;
            out.push(Event { sample, emit_sample: end, data: EventData::Tempo { bpm, confidence: self.confidence } });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the tracker on `seconds` of hops whose flux (and low band) spikes
    /// on every beat at `bpm`, louder on the first of each bar of `bar` beats.
    fn run(bpm: f32, bar: usize, seconds: f32, gate_open: bool) -> Vec<Event> {
        let mut cfg = EngineConfig::default();
        cfg.beat.beats_per_bar = bar;
        let mut tracker = BeatTracker::new(&cfg);
        let hops = (seconds * 48_000.0 / cfg.hop as f32) as usize;
        let beat_hops = 60.0 * 48_000.0 / bpm / cfg.hop as f32;
        let bins = cfg.onset.window / 2 + 1;
        let (mut quiet, mut loud) = (vec![0.0f32; bins], vec![0.0f32; bins]);
        loud[..8].fill(5.0);
        quiet[..8].fill(0.0);
        let mut out = Vec::new();
        let mut next = 0.0f32;
        let mut count = 0;
        for h in 0..hops {
            let end = ((h + 1) * cfg.hop) as u64;
            let (flux, spectrum) = if h as f32 >= next {
                next += beat_hops;
                count += 1;
                (if count % bar == 1 { 1.0 } else { 0.5 }, &loud)
            } else {
                (0.01, &quiet)
            };
            tracker.process(end, flux, spectrum, gate_open, &mut out);
        }
        out
    }

    #[test]
    fn a_steady_pulse_gives_its_tempo_and_evenly_spaced_beats() {
        for bpm in [75.0f32, 100.0, 128.0, 160.0] {
            let events = run(bpm, 4, 12.0, true);
            let beats: Vec<(u64, f32, u8, u64)> = events
                .iter()
                .filter_map(|e| match e.data {
                    EventData::Beat { beat, bpm, next_sample, .. } => Some((e.sample, bpm, beat, next_sample)),
                    _ => None,
                })
                .collect();
            assert!(beats.len() as f32 >= bpm / 60.0 * 6.0, "{bpm}: {} beats", beats.len());
            let period = 60.0 * 48_000.0 / bpm;
            for pair in beats.windows(2).skip(4) {
                let gap = (pair[1].0 - pair[0].0) as f32;
                assert!((gap / period - 1.0).abs() < 0.05, "{bpm}: gap {gap} vs {period}");
                assert!((pair[1].1 / bpm - 1.0).abs() < 0.04, "{bpm}: {} BPM", pair[1].1);
                assert_eq!(pair[1].2 as usize, pair[0].2 as usize % 4 + 1, "{bpm}: places");
                assert!((pair[1].3 - pair[1].0) as f32 / period - 1.0 < 0.05);
            }
            assert!(events.iter().any(|e| matches!(e.data, EventData::Tempo { .. })));
        }
    }

    #[test]
    fn the_loud_beat_is_the_downbeat() {
        let events = run(120.0, 3, 16.0, true);
        let places: Vec<u8> = events
            .iter()
            .filter_map(|e| match e.data {
                EventData::Beat { beat, .. } if e.sample > 8 * 48_000 => Some(beat),
                _ => None,
            })
            .collect();
        assert!(places.len() > 6);
        // Beats fall on the pulse, counted from a loud one: 1 comes every third beat.
        assert!(places.windows(2).all(|p| p[1] == p[0] % 3 + 1), "{places:?}");
    }

    #[test]
    fn no_beats_while_the_gate_is_closed_or_the_input_silent() {
        assert!(run(120.0, 4, 8.0, false).is_empty());
        let mut tracker = BeatTracker::new(&EngineConfig::default());
        let spectrum = vec![0.0f32; 513];
        let mut out = Vec::new();
        for h in 0..3000u64 {
            tracker.process((h + 1) * 128, 0.0, &spectrum, true, &mut out);
        }
        assert!(out.is_empty());
    }
}

#[cfg(test)]
mod control_tests {
    use super::*;

    /// Hops of a pulse at `bpm` (flux 1 and a loud low band on the beat, 0.3 on the off-beat)
    /// from hop `from` to `to`; `at(h)` is called before each hop to steer the tracker.
    fn pulse(
        tracker: &mut BeatTracker,
        bpm: f32,
        hops: std::ops::Range<usize>,
        mut at: impl FnMut(usize, &mut BeatTracker),
    ) -> Vec<Event> {
        let hop = 128usize;
        let beat_hops = 60.0 * 48_000.0 / bpm / hop as f32;
        let (mut quiet, mut loud) = (vec![0.0f32; 513], vec![0.0f32; 513]);
        loud[..8].fill(5.0);
        quiet[..8].fill(0.0);
        let mut out = Vec::new();
        for h in hops {
            at(h, tracker);
            let phase = h as f32 / beat_hops;
            let (flux, spectrum) = if phase.fract() * beat_hops < 1.0 {
                (1.0, &loud)
            } else if ((phase + 0.5).fract() * beat_hops) < 1.0 {
                (0.3, &quiet)
            } else {
                (0.01, &quiet)
            };
            tracker.process(((h + 1) * hop) as u64, flux, spectrum, true, &mut out);
        }
        out
    }

    fn bpms(events: &[Event], after: u64) -> Vec<f32> {
        events
            .iter()
            .filter_map(|e| match e.data {
                EventData::Beat { bpm, .. } if e.sample > after => Some(bpm),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn doubling_and_halving_move_the_tempo_and_it_stays() {
        let mut t = BeatTracker::new(&EngineConfig::default());
        let lock = pulse(&mut t, 90.0, 0..3000, |_, _| {});
        assert!(bpms(&lock, 5 * 48_000).iter().all(|b| (b / 90.0 - 1.0).abs() < 0.04));
        let doubled = pulse(&mut t, 90.0, 3000..6000, |h, t| {
            if h == 3000 {
                t.scale_tempo(2.0);
            }
        });
        let after = bpms(&doubled, 3000 * 128 + 3 * 48_000);
        assert!(!after.is_empty() && after.iter().all(|b| (b / 180.0 - 1.0).abs() < 0.04), "{after:?}");
        let halved = pulse(&mut t, 90.0, 6000..9000, |h, t| {
            if h == 6000 {
                t.scale_tempo(0.5)
            }
        });
        let after = bpms(&halved, 6000 * 128 + 3 * 48_000);
        assert!(!after.is_empty() && after.iter().all(|b| (b / 90.0 - 1.0).abs() < 0.04), "{after:?}");
    }

    #[test]
    fn taps_set_the_tempo_and_the_next_beat_and_hold_keeps_it() {
        let mut t = BeatTracker::new(&EngineConfig::default());
        pulse(&mut t, 120.0, 0..3000, |_, _| {});
        // Four taps at 60 BPM (the pulse's half time), the last at hop 3000.
        let taps: Vec<u64> = (0..4).map(|k| 3000 * 128 - (3 - k) * 48_000).collect();
        for &s in &taps {
            t.tap(s);
        }
        assert!((t.bpm() - 60.0).abs() < 0.5, "{}", t.bpm());
        t.hold(true);
        let held = pulse(&mut t, 120.0, 3000..6000, |_, _| {});
        assert!((t.bpm() - 60.0).abs() < 0.5, "{}", t.bpm());
        let beats: Vec<u64> =
            held.iter().filter_map(|e| matches!(e.data, EventData::Beat { .. }).then_some(e.sample)).collect();
        // The first beat after the taps falls a beat after the last tap, within a frame.
        let first = *beats.first().expect("beats after the taps");
        assert!(first.abs_diff(taps[3] + 48_000) <= 640, "{first} vs {}", taps[3] + 48_000);
        t.hold(false);
        assert!(!t.held());
    }
}
