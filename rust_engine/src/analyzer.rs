//! The streaming analyser: cuts any block split into fixed hops and runs
//! dynamics, onsets, pitch and notes on each, so results never depend on the
//! block size.

use crate::attack::AttackFinder;
use crate::beat::BeatTracker;
use crate::config::{EngineConfig, LiveParam, MAX_BLOCK};
use crate::dynamics::{to_db, Dynamics, FLOOR_DB};
use crate::error::{ConfigError, ProcessError};
use crate::event::{Event, EventData};
use crate::features::SpectralFeatures;
use crate::notes::{HopInfo, NoteTracker};
use crate::onset::SpectralFlux;
use crate::pitch::{PitchEstimate, Yin};
use crate::scale::NoteMap;
use crate::voicing::Voicing;

/// Largest magnitude a sample may have; beyond it (and for NaN / Inf) the
/// input is clamped so every sum stays finite.
const MAX_SAMPLE: f32 = 1000.0;

/// Most events one hop can produce: onset, pitch, dynamics, note-off, and a
/// note-on with the onset found for it, plus one spare, the three feature
/// events, and a beat with its tempo. (A probe's note-off and note-on leave a
/// note too young for the rest of the hop to end or change.)
pub const MAX_EVENTS_PER_HOP: usize = 12;

/// Pitch estimates per hop while a note waits to start: a hop's worth of
/// waiting is most of the latency left once two periods of the note are in.
const PROBES_PER_HOP: usize = 4;

/// The silence gate closes this far below the level that opens it. A quiet low
/// note's hop RMS swings by more than 8 dB within its period; without the
/// margin the gate chattered and cut a -30 dBFS melody into extra notes.
const GATE_HYSTERESIS_DB: f32 = 12.0;

/// Everything for one mono channel; allocates only in `new`.
pub struct Analyzer {
    cfg: EngineConfig,
    yin: Yin,
    flux: SpectralFlux,
    attacks: AttackFinder,
    dynamics: Dynamics,
    notes: NoteTracker,
    /// Spectral features, when any kind is enabled.
    features: Option<SpectralFeatures>,
    /// None when `beat.enabled` is 0.
    beat: Option<BeatTracker>,
    /// The most recent samples, oldest first; long enough for both frames.
    history: Vec<f32>,
    /// Samples of the hop being filled.
    pending: Vec<f32>,
    filled: usize,
    /// Samples between two probes of a waiting note's pitch (see `probe`).
    probe_step: usize,
    /// The frame of a probe, assembled from `history` and `pending`.
    probe_frame: Vec<f32>,
    /// Samples consumed (whole hops plus `filled`).
    position: u64,
    /// Start of the current segment: the pitch frame never reaches before it.
    segment_start: u64,
    /// Position of the last sound-after-silence, to place the onset that follows it.
    last_gate_open: Option<u64>,
    gate_was_open: bool,
    silence_db: f32,
    gate_amplitude: f32,
    voicing: Voicing,
}

impl Analyzer {
    /// Validates `cfg`, plans every FFT and allocates every buffer.
    pub fn new(cfg: EngineConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let history = vec![0.0; cfg.pitch_window().max(cfg.onset.window)];
        Ok(Self {
            yin: Yin::new(&cfg),
            flux: SpectralFlux::new(&cfg),
            attacks: AttackFinder::new(&cfg),
            dynamics: Dynamics::new(&cfg),
            notes: NoteTracker::new(&cfg),
            features: cfg.features.any_enabled().then(|| SpectralFeatures::new(&cfg)),
            beat: (cfg.beat.enabled == 1).then(|| BeatTracker::new(&cfg)),
            history,
            pending: vec![0.0; cfg.hop],
            filled: 0,
            probe_step: cfg.hop / PROBES_PER_HOP,
            probe_frame: vec![0.0; cfg.pitch_window()],
            position: 0,
            segment_start: 0,
            last_gate_open: None,
            gate_was_open: false,
            silence_db: cfg.notes.silence_db,
            gate_amplitude: 10f32.powf(cfg.notes.silence_db / 20.0),
            voicing: Voicing::new(&cfg),
            cfg,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Samples consumed so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// How far a steady pitch event's `sample` trails its `emit_sample`.
    pub fn latency_samples(&self) -> usize {
        self.yin.max_frame() / 2
    }

    /// Capacity `out` needs so that `process` never reallocates it.
    pub fn max_events(&self, block_len: usize) -> usize {
        (block_len / self.cfg.hop + 1) * MAX_EVENTS_PER_HOP
    }

    /// The beat tracker, when `beat.enabled` is 1: the live bridge's beat
    /// controls (hold, halve, double, tap) reach it here.
    pub fn beat_tracker(&mut self) -> Option<&mut BeatTracker> {
        self.beat.as_mut()
    }

    /// The sounding note, if any.
    pub fn active_note(&self) -> Option<u8> {
        self.notes.active_note()
    }

    /// Changes a live-tunable setting; `value` must have passed `EngineConfig::validate`.
    pub fn set_live(&mut self, param: LiveParam, value: f32) {
        self.cfg.set(param.key(), value as f64).expect("live keys are in the table");
        match param {
            LiveParam::OnsetDelta => self.flux.set_delta(value),
            LiveParam::SilenceDb => {
                self.silence_db = value;
                self.gate_amplitude = 10f32.powf(value / 20.0);
                if let Some(f) = &mut self.features {
                    f.set_floor_db(value);
                }
            }
            LiveParam::MinConfidence => self.voicing.set_min_confidence(value),
            LiveParam::TuningHz | LiveParam::ScaleRoot | LiveParam::ScaleMode => {
                self.notes.set_map(NoteMap::new(&self.cfg))
            }
        }
    }

    /// Analyses `block` (at most `MAX_BLOCK` samples), appending events to `out`
    /// in emission order. With `out` reserved to `max_events(block.len())`
    /// this allocates nothing.
    pub fn process(&mut self, block: &[f32], out: &mut Vec<Event>) -> Result<(), ProcessError> {
        if block.len() > MAX_BLOCK {
            return Err(ProcessError::BlockTooLong { max: MAX_BLOCK, actual: block.len() });
        }
        let hop = self.cfg.hop;
        let step = self.probe_step;
        let mut rest = block;
        while !rest.is_empty() {
            let take = (step - self.filled % step).min(hop - self.filled).min(rest.len());
            for (dst, &src) in self.pending[self.filled..self.filled + take].iter_mut().zip(&rest[..take]) {
                *dst = sanitize(src);
            }
            self.filled += take;
            self.position += take as u64;
            rest = &rest[take..];
            if self.filled == hop {
                self.filled = 0;
                self.run_hop(out);
            } else if self.filled.is_multiple_of(step) {
                self.probe(out);
            }
        }
        Ok(())
    }

    /// Between hops, while a note waits to start (after silence, or after an
    /// onset during a note), estimates the pitch of the audio since the onset,
    /// so that the note can start as soon as two of its periods are in rather
    /// than at the end of the hop. Only YIN's own test counts here, and only
    /// while the segment is younger than the pitch window, which bounds the
    /// extra work to the attacks.
    fn probe(&mut self, out: &mut Vec<Event>) {
        let age = (self.position - self.segment_start) as usize;
        if !self.gate_was_open || !self.notes.awaiting_note() || age >= self.yin.max_frame() {
            return;
        }
        // The segment began at a hop's end or before, so the frame holds all of `pending`.
        let (old, new) = (age - self.filled, self.filled);
        let len = self.history.len();
        self.probe_frame[..old].copy_from_slice(&self.history[len - old..]);
        self.probe_frame[old..age].copy_from_slice(&self.pending[..new]);
        let frame = &self.probe_frame[..age];
        let estimate = self.yin.estimate(frame);
        let midi = self.voicing.sure(&estimate);
        let recent = &frame[age.saturating_sub(self.cfg.hop)..];
        let mean_square = recent.iter().map(|v| v * v).sum::<f32>() / recent.len() as f32;
        let info = HopInfo {
            end: self.position,
            start: self.position - self.probe_step as u64,
            heard_from: heard_from(self.position, age),
            voiced: midi.is_some(),
            midi: midi.unwrap_or(0.0),
            confidence: estimate.confidence,
            db: to_db(mean_square.sqrt()),
            level_db: FLOOR_DB,
            segment: None,
        };
        self.notes.probe(&info, &self.dynamics, out);
    }

    /// Ends the stream: pads the partial hop with silence, analyses it and
    /// closes the open note at the end of the real audio.
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        let end = self.position;
        if self.filled > 0 {
            self.pending[self.filled..].fill(0.0);
            self.position += (self.cfg.hop - self.filled) as u64;
            self.filled = 0;
            self.run_hop(out);
        }
        self.notes.close(end.min(self.position), out);
    }

    /// Closes the open note now, e.g. when output stops.
    pub fn all_notes_off(&mut self, out: &mut Vec<Event>) {
        self.notes.close(self.position, out);
    }

    /// Back to the state after `new`; an open note is dropped without note-off.
    pub fn reset(&mut self) {
        self.flux.reset();
        self.attacks.reset();
        self.dynamics.reset();
        self.notes.reset();
        if let Some(f) = &mut self.features {
            f.reset();
        }
        if let Some(beat) = &mut self.beat {
            beat.reset();
        }
        self.history.fill(0.0);
        self.filled = 0;
        self.position = 0;
        self.segment_start = 0;
        self.last_gate_open = None;
        self.gate_was_open = false;
        self.voicing.reset();
    }

    fn run_hop(&mut self, out: &mut Vec<Event>) {
        let hop = self.cfg.hop;
        let end = self.position - self.filled as u64;
        let start = end - hop as u64;
        self.history.copy_within(hop.., 0);
        let len = self.history.len();
        self.history[len - hop..].copy_from_slice(&self.pending);

        let levels = self.dynamics.process(&self.pending);
        let threshold = self.silence_db - if self.gate_was_open { GATE_HYSTERESIS_DB } else { 0.0 };
        let gate_open = levels.db > threshold;

        // A new segment starts where sound follows silence (placed at the first
        // sample over the gate) or at a spectral-flux onset.
        let mut segment = None;
        if gate_open && !self.gate_was_open {
            let first = self.pending.iter().position(|v| v.abs() >= self.gate_amplitude).unwrap_or(0);
            let at = start + first as u64;
            self.last_gate_open = Some(at);
            segment = Some(at);
        }
        self.gate_was_open = gate_open;
        let onset_frame = &self.history[len - self.flux.window()..];
        if let Some(strength) = self.flux.process(onset_frame, gate_open) {
            // The attack entered the frame within its last hops; when it
            // followed silence the gate knows the exact sample.
            let recent = end.saturating_sub(self.flux.window() as u64);
            let at = match self.last_gate_open {
                Some(g) if g >= recent => g,
                _ => end.saturating_sub(2 * hop as u64),
            };
            out.push(Event { sample: at, emit_sample: end, data: EventData::Onset { strength } });
            segment = segment.or(Some(at)).map(|s| s.max(at));
        }
        self.attacks.push(end, self.flux.log_spectrum());
        if let Some(beat) = &mut self.beat {
            beat.process(end, self.flux.last_flux(), self.flux.log_spectrum(), gate_open, out);
        }
        // A flux onset confirming the gate's segment is not a new one.
        let segment = segment.filter(|&s| s != self.segment_start);
        if let Some(s) = segment {
            self.segment_start = s;
        }

        // Pitch on the audio since the segment start, up to the full window.
        let frame_len = ((end - self.segment_start) as usize).min(self.yin.max_frame());
        let estimate =
            if gate_open { self.yin.estimate(&self.history[len - frame_len..]) } else { PitchEstimate::NONE };
        let voiced_midi = self.voicing.decide(&estimate);
        let (voiced, midi) = (voiced_midi.is_some(), voiced_midi.unwrap_or(0.0));
        // The estimate describes the middle of its frame, the convention of
        // framewise pitch trackers (monotonic from hop to hop).
        let frame_len = frame_len.max(hop);
        let pitch_sample = end - (frame_len / 2) as u64;
        out.push(Event {
            sample: pitch_sample,
            emit_sample: end,
            data: EventData::Pitch {
                hz: if voiced { estimate.hz } else { 0.0 },
                midi,
                confidence: estimate.confidence,
                voiced,
            },
        });
        out.push(Event {
            sample: start,
            emit_sample: end,
            data: EventData::Dynamics {
                rms: levels.rms,
                peak: levels.peak,
                db: levels.db,
                envelope_db: levels.envelope_db,
                velocity: levels.velocity,
                marking: levels.marking,
            },
        });
        self.emit_features(end, out);

        let info = HopInfo {
            end,
            start,
            heard_from: heard_from(end, frame_len),
            voiced,
            midi,
            confidence: estimate.confidence,
            db: if gate_open { levels.db } else { FLOOR_DB },
            level_db: if gate_open { levels.envelope_db } else { FLOOR_DB },
            segment,
        };
        self.notes.process(&info, &self.dynamics, &self.attacks, out);
    }
}

impl Analyzer {
    /// The enabled feature events of the onset frame ending at `end`, placed
    /// at its middle as the pitch is.
    fn emit_features(&mut self, end: u64, out: &mut Vec<Event>) {
        let Some(features) = &mut self.features else { return };
        let f = features.process(self.flux.spectrum());
        let cfg = &self.cfg.features;
        let sample = end.saturating_sub(self.flux.window() as u64 / 2);
        let mut push = |data| out.push(Event { sample, emit_sample: end, data });
        if cfg.bands_enabled == 1 {
            push(EventData::Bands { count: f.bands as u8, db: f.band_db, level: f.band_level });
        }
        if cfg.spectrum_enabled == 1 {
            push(EventData::Spectrum {
                centroid_hz: f.centroid_hz,
                flatness: f.flatness,
                rolloff_hz: f.rolloff_hz,
                level: f.spectrum_level,
            });
        }
        if cfg.chroma_enabled == 1 {
            push(EventData::Chroma { energy: f.chroma, level: f.chroma_level });
        }
    }
}

/// Where the pitch of a frame of `len` samples ending at `end` was first heard.
/// A new pitch wins once it fills most of YIN's integration window, the newest
/// half of the frame: it began between a quarter and a half of the frame back.
fn heard_from(end: u64, len: usize) -> u64 {
    end - (len * 3 / 8) as u64
}

/// Silence for NaN and Inf, zero for denormals, a clamp for absurd values.
#[inline]
fn sanitize(v: f32) -> f32 {
    if !v.is_finite() || v.abs() < 1e-30 {
        0.0
    } else {
        v.clamp(-MAX_SAMPLE, MAX_SAMPLE)
    }
}
