//! MIDI beat clock (0xF8, 24 per quarter note) following a tracked beat.
//!
//! A beat source (the audio beat tracker, or JACK transport) reports each beat
//! it reaches with the sample where it was and where it predicts the next one;
//! the clock places its ticks at exact sample positions between, so the first
//! tick of each beat lands on the predicted beat. The ticks left in the current
//! beat are spread evenly up to that prediction (stretched or squeezed by at
//! most `MAX_STRETCH`, so a jump of the tracker's phase is followed over a few
//! beats instead of bursting clocks); after the predicted beat they run at the
//! tempo the source reported, until the next report.
//!
//! Start (0xFA) goes out when the source first reports a beat, at once, and the
//! first tick on the next (predicted) beat, which a receiver takes as the song's
//! start. When no beat comes for `LOSS_BEATS` beats after the predicted one the
//! beat is lost: Stop (0xFC) goes out and the ticks stop, or, with
//! `stop_on_loss` off, the clock runs on at the last tempo and a later beat only
//! re-phases it.
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
/// Largest change of a tick's length while catching up with a predicted beat,
/// as a share of the tempo's tick: 25 % keeps a receiver's tempo smooth and
/// still takes up a phase jump of half a beat within three beats.
const MAX_STRETCH: f64 = 0.25;
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
    /// The tempo's tick length, in samples.
    nominal: f64,
    /// Tick length until tick `boundary` (the predicted beat), in samples.
    stretch: f64,
    boundary: u64,
    /// The predicted next beat of the last report.
    predicted: u64,
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
            nominal: 0.0,
            stretch: 0.0,
            boundary: 0,
            predicted: 0,
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

    /// The tempo the ticks follow, in BPM at `sample_rate` (0 before the first beat).
    pub fn bpm(&self, sample_rate: u32) -> f64 {
        if self.nominal > 0.0 {
            60.0 * sample_rate as f64 / (self.nominal * TICKS_PER_BEAT as f64)
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

    /// A beat of the source at sample `beat`, the next predicted at `next`;
    /// reported at the position last advanced to.
    pub fn beat(&mut self, beat: u64, next: u64) {
        if next <= beat {
            return;
        }
        let nominal = (next - beat) as f64 / TICKS_PER_BEAT as f64;
        self.nominal = nominal;
        self.predicted = next;
        self.locked = true;
        self.stop_at = None;
        if !self.running {
            // First lock (or after a Stop): Start now, the first tick on the predicted beat.
            self.running = true;
            self.start_pending = true;
            self.ticks = 0;
            self.boundary = 0;
            self.next_tick = next as f64;
            self.stretch = nominal;
            return;
        }
        // Which of our beats (tick multiples of 24) this one is: the nearest to where
        // our ticks had `beat`. Its successor should fall on `next`.
        let at_beat = self.ticks as f64 + (beat as f64 - self.next_tick) / self.stretch.max(1.0);
        let this_beat = (at_beat / TICKS_PER_BEAT as f64).round().max(0.0) as u64 * TICKS_PER_BEAT;
        let mut boundary = this_beat + TICKS_PER_BEAT;
        if boundary <= self.ticks || boundary > self.ticks + 2 * TICKS_PER_BEAT {
            // Our ticks are more than a beat away from the source's: take up the
            // nearest beat boundary still ahead.
            boundary = (self.ticks / TICKS_PER_BEAT + 1) * TICKS_PER_BEAT;
        }
        let left = (boundary - self.ticks) as f64;
        let wanted = (next as f64 - self.next_tick) / left;
        self.stretch = wanted.clamp(nominal * (1.0 - MAX_STRETCH), nominal * (1.0 + MAX_STRETCH));
        self.boundary = boundary;
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
        // The beat is lost two beats after the prediction with no report.
        if self.locked && self.nominal > 0.0 {
            let lost = self.predicted as f64 + LOSS_BEATS * self.nominal * TICKS_PER_BEAT as f64;
            if (lost as u64) < to {
                self.locked = false;
                if self.cfg.stop_on_loss && self.running {
                    self.stop_at = Some((lost as u64).max(self.pos));
                }
            }
        }
        let end = self.stop_at.map_or(to, |s| s.min(to));
        while self.running && self.next_tick < end as f64 {
            let at = (self.next_tick.round() as u64).clamp(self.pos, to - 1);
            out(at, CLOCK);
            self.ticks += 1;
            self.next_tick += if self.ticks <= self.boundary { self.stretch } else { self.nominal };
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

    #[test]
    fn a_drifting_source_is_followed_smoothly_and_lost_beats_stop_the_clock() {
        // Beats 2 % slower than the first report, and a beat shifted by 3 ms.
        let mut beats: Vec<u64> = (0..12).map(|i| 5_000 + i * 24_480).collect();
        beats[6] += 144;
        let mut clock = MidiClock::new(ClockConfig::default());
        let out = run(&mut clock, &beats, 256, 128, beats[11] + 3 * 24_480);
        let t = ticks(&out);
        let gaps: Vec<u64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| (750..=1250).contains(&g)), "{gaps:?}");
        // After the last report the clock runs on to two beats past its prediction, then stops.
        assert_eq!(out.last().unwrap().1, STOP);
        let stop = out.last().unwrap().0;
        assert_eq!(stop, beats[11] + 2 * 24_480);
        assert!(t.iter().all(|&p| p < stop));
        assert!(!clock.running());
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
