//! MIDI beat clock (0xF8, 24 per quarter note) following a tracked beat.
//!
//! A beat source (the audio beat tracker, or JACK transport) reports each beat
//! it reaches with the sample where it was and where it predicts the next one.
//! The clock runs its own ticks, at exact sample positions, and locks them to
//! those reports with a second-order phase-locked loop, one step per report:
//!
//! - phase error: the predicted beat less where the clock's nearest beat tick
//!   (every 24th) will fall;
//! - the tick length moves `TEMPO_GAIN` of the way to the source's tempo and
//!   takes `FREQ_GAIN` of the phase error (the loop's integral term, which
//!   takes up a bias between the source's tempo and its beats);
//! - `PHASE_GAIN` of the phase error is spread over the next beat's ticks.
//!
//! So tick lengths change a little at each report and a receiver's tempo
//! follower sees a steady clock, while the clock's beat still converges onto
//! the source's within a few beats. A phase error beyond `LARGE_PHASE` of a
//! beat is taken as the tracker's noise the first time and ignored; if the next
//! report confirms it, or the tempo moves by more than `LARGE_TEMPO`, the clock
//! re-phases at once: the whole error over the next beat or more, ticks
//! stretched or squeezed by at most `MAX_STRETCH`. An exact source (the
//! transport) reports beats the clock already has, so its ticks keep its tempo.
//!
//! Start (0xFA) goes out when the source first reports a beat, at once, and the
//! first tick on the next (predicted) beat, which a receiver takes as the song's
//! start. When no beat comes for `LOSS_BEATS` beats after the predicted one the
//! beat is lost: Stop (0xFC) goes out and the ticks stop, or, with
//! `stop_on_loss` off, the clock runs on at its tempo and a later beat
//! re-phases it at once.
//!
//! Positions are the engine's sample positions (from the stream's start).
//! [`MidiClock::advance`] writes what falls before a position through a
//! callback; nothing allocates after [`MidiClock::new`].

/// MIDI timing clock, sent 24 times per quarter note.
pub const CLOCK: u8 = 0xF8;
/// MIDI Start: the receiver starts from the song's beginning at the next clock.
pub const START: u8 = 0xFA;
/// MIDI Stop.
pub const STOP: u8 = 0xFC;
/// Clocks per beat (per quarter note, in MIDI's terms).
pub const TICKS_PER_BEAT: u64 = 24;
/// Largest change of a tick's length while re-phasing, as a share of the
/// tempo's tick: 25 % still takes up a phase jump of half a beat within two beats.
const MAX_STRETCH: f64 = 0.25;
/// Share of the difference to the source's tempo the tick length takes per report.
const TEMPO_GAIN: f64 = 0.3;
/// Share of the phase error corrected over the next beat.
const PHASE_GAIN: f64 = 0.4;
/// Share of the phase error (per tick) added to the tick length: the integral term.
const FREQ_GAIN: f64 = 0.1;
/// A phase error beyond this share of a beat is a jump (re-phased once confirmed).
const LARGE_PHASE: f64 = 0.25;
/// A tempo change beyond this share is taken at once.
const LARGE_TEMPO: f64 = 0.10;
/// Beats without a report after the predicted one before the beat counts as lost.
const LOSS_BEATS: f64 = 2.0;

/// How a `MidiClock` behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockConfig {
    /// Sends Stop and stops the ticks when the beat is lost; else they run on.
    pub stop_on_loss: bool,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self { stop_on_loss: true }
    }
}

/// The state of one MIDI clock output.
#[derive(Debug, Clone)]
pub struct MidiClock {
    cfg: ClockConfig,
    /// Ticks are being sent.
    running: bool,
    /// The source has a beat (reported within `LOSS_BEATS` of its prediction).
    locked: bool,
    /// A Start waits to be written at the next `advance`.
    start_pending: bool,
    /// A Stop waits to be written, at this position.
    stop_at: Option<u64>,
    /// Position up to which everything is written.
    pos: u64,
    /// Ticks written since Start; tick `n * 24` is beat `n`.
    ticks: u64,
    /// Position of the next tick.
    next_tick: f64,
    /// The clock's tempo: its tick length, in samples.
    period: f64,
    /// Added to each of the next `corr_left` ticks to take up a phase error.
    corr: f64,
    corr_left: u64,
    /// The last report's phase error was a jump.
    phase_jump: bool,
    /// The last report's tempo if it was a jump, else 0.
    jump_tempo: f64,
    /// Where the beat counts as lost without another report.
    lost_at: u64,
}

impl MidiClock {
    pub fn new(cfg: ClockConfig) -> Self {
        Self {
            cfg,
            running: false,
            locked: false,
            start_pending: false,
            stop_at: None,
            pos: 0,
            ticks: 0,
            next_tick: 0.0,
            period: 0.0,
            corr: 0.0,
            corr_left: 0,
            phase_jump: false,
            jump_tempo: 0.0,
            lost_at: 0,
        }
    }

    /// Forgets the beat; a running clock is not stopped (the stream it followed is gone).
    pub fn reset(&mut self) {
        *self = Self::new(self.cfg);
    }

    /// Whether ticks are being sent.
    pub fn running(&self) -> bool {
        self.running
    }

    /// Whether the source has a beat.
    pub fn locked(&self) -> bool {
        self.locked
    }

    /// The length of a tick at the present tempo, in samples (0 before the first beat).
    pub fn tick_length(&self) -> f64 {
        self.period
    }

    /// The tempo the ticks follow, in BPM at `sample_rate` (0 before the first beat).
    pub fn bpm(&self, sample_rate: u32) -> f64 {
        if self.period > 0.0 {
            60.0 * sample_rate as f64 / (self.period * TICKS_PER_BEAT as f64)
        } else {
            0.0
        }
    }

    /// Most messages one `advance` over `samples` samples can write at tempos up
    /// to `max_bpm`: the capacity a caller preallocates.
    pub fn max_messages(samples: usize, sample_rate: u32, max_bpm: f32) -> usize {
        let shortest = 60.0 * sample_rate as f64 / max_bpm as f64 / TICKS_PER_BEAT as f64 * (1.0 - MAX_STRETCH);
        (samples as f64 / shortest.max(1.0)).ceil() as usize + 3
    }

    /// Where tick `n` (not yet written) falls with the present tick lengths.
    fn tick_at(&self, n: u64) -> f64 {
        let k = n.saturating_sub(self.ticks) as f64;
        self.next_tick + k * self.period + k.min(self.corr_left as f64) * self.corr
    }

    /// A beat of the source at sample `beat`, the next predicted at `next`;
    /// reported at the position last advanced to.
    pub fn beat(&mut self, beat: u64, next: u64) {
        if next <= beat {
            return;
        }
        let tempo = (next - beat) as f64 / TICKS_PER_BEAT as f64;
        let relock = !self.locked;
        self.lost_at = next + (LOSS_BEATS * (next - beat) as f64) as u64;
        self.locked = true;
        self.stop_at = None;
        if !self.running {
            // First lock (or after a Stop): Start now, the first tick on the predicted beat.
            self.running = true;
            self.start_pending = true;
            self.ticks = 0;
            self.next_tick = next as f64;
            self.period = tempo;
            self.corr = 0.0;
            self.corr_left = 0;
            self.phase_jump = false;
            self.jump_tempo = 0.0;
            return;
        }
        let per_beat = TICKS_PER_BEAT as f64;
        // Our beat tick nearest the predicted beat, not yet written, and how far off it is.
        let at = self.ticks as f64 + (next as f64 - self.next_tick) / self.period;
        let beat_tick = ((at / per_beat).round().max(0.0) as u64 * TICKS_PER_BEAT).max(self.ticks);
        let error = next as f64 - self.tick_at(beat_tick);
        let tempo_jump = (tempo / self.period - 1.0).abs() > LARGE_TEMPO;
        let phase_jump = error.abs() > LARGE_PHASE * per_beat * self.period;
        // A jump counts once the next report confirms it (or at once on a new lock):
        // a single report off the beat is the tracker's noise. Either sign confirms a phase
        // jump: near half a beat the sign may flip, and either way round is as good.
        let same_tempo = (tempo / self.jump_tempo - 1.0).abs() <= LARGE_TEMPO;
        let confirmed = relock || (tempo_jump && same_tempo) || (phase_jump && self.phase_jump);
        let jumped = tempo_jump || phase_jump;
        self.phase_jump = phase_jump;
        self.jump_tempo = if tempo_jump { tempo } else { 0.0 };
        if jumped && !confirmed {
            return;
        }
        if jumped {
            self.period = tempo;
        } else {
            self.period += TEMPO_GAIN * (tempo - self.period) + FREQ_GAIN * error / per_beat;
        }
        // The error left with the new tempo and without the correction under way:
        // re-phasing takes it all, else the correction under way and `PHASE_GAIN` of
        // the rest; spread over a beat or more, within the stretch allowed.
        let pending = self.corr * self.corr_left as f64;
        self.corr_left = 0;
        let error = next as f64 - self.tick_at(beat_tick);
        let total = if jumped { error } else { pending + PHASE_GAIN * (error - pending) };
        let span = (total.abs() / (MAX_STRETCH * self.period)).ceil().max(per_beat);
        self.corr = total / span;
        self.corr_left = span as u64;
    }

    /// Writes every message before position `to` through `out(position, byte)`, in order.
    pub fn advance(&mut self, to: u64, mut out: impl FnMut(u64, u8)) {
        if to <= self.pos {
            return;
        }
        if self.start_pending {
            self.start_pending = false;
            out(self.pos, START);
        }
        // The beat is lost two of the source's beats after its prediction with no report.
        if self.locked && self.lost_at < to {
            self.locked = false;
            if self.cfg.stop_on_loss && self.running {
                self.stop_at = Some(self.lost_at.max(self.pos));
            }
        }
        let end = self.stop_at.map_or(to, |s| s.min(to));
        while self.running && (self.next_tick.round() as u64) < end {
            let at = (self.next_tick.round() as u64).clamp(self.pos, to - 1);
            out(at, CLOCK);
            self.ticks += 1;
            self.next_tick += self.period;
            if self.corr_left > 0 {
                self.corr_left -= 1;
                self.next_tick += self.corr;
            }
        }
        if let Some(s) = self.stop_at.filter(|&s| s < to) {
            self.stop_at = None;
            self.running = false;
            out(s, STOP);
        }
        self.pos = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds beats `period` samples apart from `first` on (each reported `late`
    /// samples after it), advancing in blocks of `block`, up to `end`.
    fn run(clock: &mut MidiClock, beats: &[u64], late: u64, block: u64, end: u64) -> Vec<(u64, u8)> {
        let mut out = Vec::new();
        let mut reports: Vec<(u64, u64, u64)> = beats.windows(2).map(|w| (w[0] + late, w[0], w[1])).collect::<Vec<_>>();
        reports.reverse();
        let mut pos = 0;
        while pos < end {
            let stop = (pos + block).min(end);
            while let Some(&(at, b, n)) = reports.last().filter(|r| r.0 < stop) {
                clock.advance(at, |p, m| out.push((p, m)));
                clock.beat(b, n);
                reports.pop();
            }
            clock.advance(stop, |p, m| out.push((p, m)));
            pos = stop;
        }
        out
    }

    fn ticks(out: &[(u64, u8)]) -> Vec<u64> {
        out.iter().filter(|m| m.1 == CLOCK).map(|m| m.0).collect()
    }

    #[test]
    fn steady_beats_give_24_ticks_per_beat_with_each_beats_first_on_the_beat() {
        let period = 24_000u64; // 120 BPM at 48 kHz
        let beats: Vec<u64> = (0..20).map(|i| 10_000 + i * period).collect();
        let mut clock = MidiClock::new(ClockConfig::default());
        let out = run(&mut clock, &beats, 300, 256, beats[19]);
        assert_eq!(out[0], (10_300, START));
        let t = ticks(&out);
        assert_eq!(t[0], beats[1], "the first tick on the predicted beat");
        for (i, chunk) in t.chunks(24).enumerate() {
            assert_eq!(chunk[0], beats[i + 1], "beat {i}");
            assert!(chunk.windows(2).all(|w| w[1] - w[0] == 1000), "{chunk:?}");
        }
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    /// Changes of the tick length from one tick to the next, in samples.
    fn steps(t: &[u64]) -> Vec<i64> {
        let gaps: Vec<i64> = t.windows(2).map(|w| (w[1] - w[0]) as i64).collect();
        gaps.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Distance from each beat in `beats` after `from` to the nearest beat tick (every 24th).
    fn beat_errors(t: &[u64], beats: &[u64], from: u64) -> Vec<u64> {
        beats
            .iter()
            .filter(|&&b| b >= from && b <= *t.last().unwrap())
            .map(|&b| t.iter().step_by(24).map(|&f| f.abs_diff(b)).min().unwrap())
            .collect()
    }

    /// A small deterministic noise in -1..1.
    fn noise(i: u64) -> f64 {
        let x = (i.wrapping_mul(2_654_435_761) % 1000) as f64;
        x / 500.0 - 1.0
    }

    #[test]
    fn a_drifting_source_is_followed_smoothly_and_lost_beats_stop_the_clock() {
        // Beats 2 % slower than the first report says, and a beat shifted by 3 ms.
        let grid: Vec<u64> = (0..20).map(|i| 5_000 + i * 24_480).collect();
        let mut beats = grid.clone();
        beats[0] = beats[1] - 24_000;
        beats[10] += 144;
        let mut clock = MidiClock::new(ClockConfig::default());
        let out = run(&mut clock, &beats, 256, 128, beats[19] + 3 * 24_480);
        let t = ticks(&out);
        // Past the first report, a tick is never more than 0.25 ms longer or shorter than the one before.
        let late: Vec<u64> = t.iter().copied().filter(|&f| f > beats[3]).collect();
        assert!(steps(&late).iter().all(|s| s.abs() <= 12), "{:?}", steps(&late));
        // Within seven beats the clock's beats are on the source's grid (1 ms); the beat
        // 3 ms off moves them by less than that, and they come back.
        let errors = beat_errors(&t, &grid[..19], grid[8]);
        assert!(errors[..2].iter().chain(&errors[5..]).all(|&e| e <= 48), "{errors:?}");
        assert!(errors.iter().all(|&e| e < 144), "{errors:?}");
        // After the last report the clock runs on to two beats past its prediction, then stops.
        assert_eq!(out.last().unwrap().1, STOP);
        let stop = out.last().unwrap().0;
        assert_eq!(stop, beats[19] + 2 * 24_480);
        assert!(t.iter().all(|&p| p < stop));
        assert!(!clock.running());
    }

    #[test]
    fn a_noisy_source_gives_steady_ticks_on_its_mean_beat() {
        // 128 BPM whose reported beats wander by up to 5 ms each, and a tempo as noisy.
        let period = 22_500u64;
        let beats: Vec<u64> = (0..40).map(|i| 50_000 + i * period + (240.0 * noise(i)) as u64 + 240).collect();
        let mut clock = MidiClock::new(ClockConfig::default());
        let out = run(&mut clock, &beats, 480, 128, beats[39]);
        let t = ticks(&out);
        let late: Vec<u64> = t.iter().copied().filter(|&f| f > beats[8]).collect();
        // Tick to tick, the length moves by at most 0.25 ms: far below what a receiver hears.
        assert!(steps(&late).iter().all(|s| s.abs() <= 12), "{:?}", steps(&late));
        // The rate is the source's within 0.1 %, and each beat within its 5 ms of noise.
        let per_tick = (late[late.len() - 1] - late[0]) as f64 / (late.len() - 1) as f64;
        assert!((per_tick * 24.0 / period as f64 - 1.0).abs() < 0.001, "{per_tick}");
        let errors = beat_errors(&t, &beats, beats[8]);
        assert!(errors.iter().all(|&e| e <= 480), "{errors:?}");
    }

    #[test]
    fn a_tempo_jump_or_a_confirmed_phase_jump_is_taken_within_a_few_beats_and_an_outlier_is_not() {
        // 120 BPM, then 140 BPM from beat 10, then 0.4 beat later from beat 20 on,
        // with one report a third of a beat off at beat 30.
        let mut beats: Vec<u64> = (0..10).map(|i| 10_000 + i * 24_000).collect();
        for i in 0..30 {
            beats.push(beats[9] + (i + 1) * 20_571 + if i >= 10 { 8_228 } else { 0 });
        }
        let outlier = beats[30];
        beats[30] += 6_857;
        let mut clock = MidiClock::new(ClockConfig::default());
        let out = run(&mut clock, &beats, 300, 128, beats[39]);
        let t = ticks(&out);
        for (from, to) in [(14, 20), (24, 30), (31, 39)] {
            let errors = beat_errors(&t, &beats[from..to], 0);
            assert!(errors.iter().all(|&e| e <= 48), "beats {from}..{to}: {errors:?}");
        }
        // The outlier moved no beat tick.
        let nearest = t.iter().step_by(24).map(|&f| f.abs_diff(outlier)).min().unwrap();
        assert!(nearest <= 48, "{nearest}");
        // Even re-phasing, a tick is at most 25 % off the tempo's.
        let gaps: Vec<u64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| (600..=1250).contains(&g)), "{gaps:?}");
    }

    #[test]
    fn without_stop_on_loss_the_ticks_run_on_and_a_new_beat_only_rephases() {
        let beats: Vec<u64> = (0..4).map(|i| i * 24_000).collect();
        let mut clock = MidiClock::new(ClockConfig { stop_on_loss: false });
        let out = run(&mut clock, &beats, 100, 512, 480_000);
        assert!(out.iter().all(|m| m.1 != STOP));
        assert_eq!(out.iter().filter(|m| m.1 == START).count(), 1);
        assert!(clock.running() && !clock.locked());
        let t = ticks(&out);
        assert!(t.windows(2).all(|w| w[1] - w[0] == 1000));
        assert_eq!(*t.last().unwrap(), 479_000);
    }
}
