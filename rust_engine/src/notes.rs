//! Note segmentation: turns per-hop pitch, onsets and levels into note-on /
//! note-off pairs.
//!
//! A note starts when two consecutive estimates agree on a voiced pitch (or one
//! is very sure), and is placed at the onset (or the end of silence) that began
//! its segment. While a note waits to start, the analyser also estimates
//! between hops (`probe`), so a note starts as soon as two of its periods are
//! in. An onset during a note is a question, not an answer: the note changes at the
//! onset when the pitch after it settles on another note, and is re-struck
//! when the level jumps; otherwise (vibrato, a bow change, a false onset) it
//! goes on. Without an onset, a note changes on a pitch change that lasts
//! `change_ms` and passes the hysteresis; it is placed where its harmonics
//! rose (`AttackFinder`), which also gives the onset the spectral flux missed.
//! A note ends after `release_ms` of silence or low confidence. No note is shorter than `min_note_ms`.
//!
//! Attacks are where pitch is least sure: some start an octave low, some glide
//! in. Within `correct_ms` of a note-on, a different pitch that settles with
//! no onset between corrects the note rather than following it: the wrong note
//! is retracted (its note-off lands at its own start, so it has no length) and
//! the right one starts at the same onset. Live output hears the wrong note
//! briefly; transcriptions drop the retracted one.
//!
//! The tracker compares pitches in steps (`scale::NoteMap`): semitones against
//! the performer's reference, or scale degrees when a scale is set. A hop's
//! `midi` is turned into steps on the way in; a step becomes a MIDI note only
//! in `note_on`.

use crate::attack::AttackFinder;
use crate::config::EngineConfig;
use crate::dynamics::Dynamics;
use crate::event::{Event, EventData};
use crate::scale::NoteMap;

/// What the note tracker needs to know about one hop.
#[derive(Debug, Clone, Copy)]
pub struct HopInfo {
    /// Stream position just past the hop.
    pub end: u64,
    /// First sample of the hop.
    pub start: u64,
    /// Where the pitch of this hop's estimate was first heard.
    pub heard_from: u64,
    /// Voiced, confident and above the silence gate.
    pub voiced: bool,
    /// The heard pitch, fractional MIDI at A4 = 440 Hz.
    pub midi: f32,
    /// Pitch confidence, 0..1.
    pub confidence: f32,
    /// Hop RMS level in dBFS.
    pub db: f32,
    /// Smoothed level (the dynamics envelope) in dBFS.
    pub level_db: f32,
    /// Start of a new segment (onset, or sound after silence) found in this hop.
    pub segment: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    note: u8,
    /// The note in steps (see `NoteMap`).
    step: f32,
    on: u64,
    velocity: u8,
    /// Where the first note-on of this onset was sent: corrections count from here.
    emitted: u64,
}

/// A pitch seen on consecutive hops, not yet confirmed.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// In steps.
    step: f32,
    hops: usize,
    first: u64,
}

/// Consecutive agreeing estimates needed before a note starts: one could be a transient.
const CONFIRM_HOPS: usize = 2;

/// Agreeing estimates a new pitch after an onset needs: one more than a start,
/// as the frame right after an onset can still hold the previous note's tail.
const CHANGE_CONFIRM: usize = CONFIRM_HOPS + 1;

/// Confidence at which one voiced hop is enough to start a note.
const SURE_CONFIDENCE: f32 = 0.9;

/// Agreeing hops a corrected pitch needs: more than a start, as attacks waver.
const CORRECT_HOPS: usize = 3;

/// Level rise over the level before an onset that re-strikes the same note, in dB.
const RESTRIKE_DB: f32 = 6.0;

/// An onset during a note, waiting for the pitch and level after it to decide.
#[derive(Debug, Clone, Copy)]
struct Pending {
    at: u64,
    /// The smoothed level before the onset and its highest since: a re-strike
    /// must lift it. (One hop's RMS swings by 8 dB on a low note, whose
    /// period is longer than a hop.)
    level_before: f32,
    level_peak: f32,
    /// Loudest hop since the onset, for the velocity.
    peak_db: f32,
    hops: usize,
}

pub struct NoteTracker {
    map: NoteMap,
    /// In steps.
    hysteresis: f32,
    change_hops: usize,
    release_hops: usize,
    min_note: u64,
    /// Samples after a note-on within which a settling pitch corrects it.
    correct: u64,
    /// How far a segment start may precede the first voiced frame and still place the note:
    /// two pitch windows, as low notes (a piano's G1) stay aperiodic that long after their attack.
    max_segment_lead: u64,
    active: Option<Active>,
    candidate: Option<Candidate>,
    change: Option<Candidate>,
    unvoiced_hops: usize,
    first_unvoiced: u64,
    segment: Option<u64>,
    segment_peak_db: f32,
    last_off: u64,
    pending: Option<Pending>,
    /// How many hops an onset stays pending.
    pending_hops: usize,
    last_level: f32,
}

impl NoteTracker {
    pub fn new(cfg: &EngineConfig) -> Self {
        let n = &cfg.notes;
        Self {
            map: NoteMap::new(cfg),
            hysteresis: n.hysteresis_cents / 100.0,
            change_hops: cfg.ms_to_hops(n.change_ms),
            release_hops: cfg.ms_to_hops(n.release_ms),
            min_note: (n.min_note_ms * cfg.samples_per_ms()) as u64,
            correct: (n.correct_ms * cfg.samples_per_ms()) as u64,
            max_segment_lead: 2 * cfg.pitch_window() as u64,
            active: None,
            candidate: None,
            change: None,
            unvoiced_hops: 0,
            first_unvoiced: 0,
            segment: None,
            segment_peak_db: f32::MIN,
            last_off: 0,
            pending: None,
            pending_hops: cfg.ms_to_hops(n.change_ms.max(60.0)),
            last_level: f32::MIN,
        }
    }

    /// Reads pitches against a new tuning or scale from the next hop on. The
    /// sounding note stays; it and the pitches waiting to be confirmed keep
    /// the pitch they stand for, in the new map's steps.
    pub fn set_map(&mut self, map: NoteMap) {
        let old = std::mem::replace(&mut self.map, map);
        let convert = |step: &mut f32| *step = self.map.steps(old.midi(*step));
        if let Some(a) = &mut self.active {
            convert(&mut a.step);
        }
        for c in [&mut self.candidate, &mut self.change].into_iter().flatten() {
            convert(&mut c.step);
        }
    }

    /// The sounding note, if any.
    pub fn active_note(&self) -> Option<u8> {
        self.active.map(|a| a.note)
    }

    /// Forgets everything, dropping an open note without a note-off.
    pub fn reset(&mut self) {
        self.active = None;
        self.candidate = None;
        self.change = None;
        self.unvoiced_hops = 0;
        self.segment = None;
        self.segment_peak_db = f32::MIN;
        self.last_off = 0;
        self.pending = None;
        self.last_level = f32::MIN;
    }

    fn note_off(&mut self, at: u64, emit: u64, out: &mut Vec<Event>) {
        if let Some(a) = self.active.take() {
            // Never before the note's own start, never after the moment it is sent
            // (a note started in the silence that pads the end of a stream may lie
            // past `emit`).
            let at = at.max(a.on);
            let emit = emit.max(at);
            out.push(Event { sample: at, emit_sample: emit, data: EventData::NoteOff { note: a.note } });
            self.last_off = at;
        }
        self.change = None;
        self.pending = None;
    }

    fn note_on(&mut self, step: f32, at: u64, velocity: u8, emit: u64, out: &mut Vec<Event>) {
        let note = self.map.note(step);
        let at = at.clamp(self.last_off, emit);
        out.push(Event { sample: at, emit_sample: emit, data: EventData::NoteOn { note, velocity } });
        self.active = Some(Active { note, step: (step + 0.5).floor(), on: at, velocity, emitted: emit });
        self.candidate = None;
        self.change = None;
        self.unvoiced_hops = 0;
        self.segment = None;
        self.pending = None;
    }

    /// Closes the open note at `at` (end of stream, stop, or a lost server).
    pub fn close(&mut self, at: u64, out: &mut Vec<Event>) {
        self.note_off(at, at, out);
        self.candidate = None;
    }

    /// Whether a note waits to start: none sounds, or an onset during one
    /// waits for the pitch after it. Estimates between hops then count.
    pub fn awaiting_note(&self) -> bool {
        self.active.is_none() || self.pending.is_some()
    }

    /// Takes an estimate made between hops (`hop.end` is where it was made)
    /// while a note waits: it can start the note before the hop ends. Releases
    /// and re-strikes are left to the hops.
    pub fn probe(&mut self, hop: &HopInfo, dynamics: &Dynamics, out: &mut Vec<Event>) {
        debug_assert!(hop.segment.is_none());
        let step = self.map.steps(hop.midi);
        match (self.active, self.pending) {
            (None, _) => {
                self.segment_peak_db = self.segment_peak_db.max(hop.db);
                self.start(hop, step, dynamics, out);
            }
            (Some(active), Some(p)) if hop.voiced && !self.same_note(step, active) => {
                self.change_after_onset(p, hop, step, p.peak_db.max(hop.db), dynamics, out);
            }
            (Some(_), Some(_)) => self.change = None,
            (Some(_), None) => {}
        }
    }

    fn same_note(&self, step: f32, active: Active) -> bool {
        (step - active.step).abs() <= 0.5 + self.hysteresis
    }

    /// Another pitch after an onset: a few agreeing estimates suffice, and the
    /// new note starts at the onset, not where the pitch settled.
    fn change_after_onset(
        &mut self,
        p: Pending,
        hop: &HopInfo,
        step: f32,
        peak_db: f32,
        dynamics: &Dynamics,
        out: &mut Vec<Event>,
    ) {
        let change = self.track_change(step, p.at);
        if change.hops >= CHANGE_CONFIRM {
            let velocity = dynamics.velocity_for_db(peak_db);
            self.note_off(p.at, hop.end, out);
            self.note_on(change.step, p.at, velocity, hop.end, out);
        }
    }

    /// Advances one hop, appending any note events to `out`.
    pub fn process(&mut self, hop: &HopInfo, dynamics: &Dynamics, attacks: &AttackFinder, out: &mut Vec<Event>) {
        if let Some(start) = hop.segment {
            match self.active {
                Some(a) if hop.end - a.on >= self.min_note => {
                    self.pending = Some(Pending {
                        at: start,
                        level_before: self.last_level,
                        level_peak: hop.level_db,
                        peak_db: hop.db,
                        hops: 0,
                    });
                }
                Some(_) => {}
                None => {
                    self.segment = Some(start);
                    self.segment_peak_db = hop.db;
                    self.candidate = None;
                }
            }
        }
        self.segment_peak_db = self.segment_peak_db.max(hop.db);
        self.last_level = hop.level_db;

        let step = self.map.steps(hop.midi);
        match self.active {
            Some(active) => self.hold(active, hop, step, dynamics, attacks, out),
            None => self.start(hop, step, dynamics, out),
        }
    }

    fn start(&mut self, hop: &HopInfo, step: f32, dynamics: &Dynamics, out: &mut Vec<Event>) {
        if !hop.voiced {
            self.candidate = None;
            return;
        }
        let candidate = match self.candidate {
            Some(c) if (step - c.step).abs() < 0.5 => Candidate { step, hops: c.hops + 1, ..c },
            _ => Candidate { step, hops: 1, first: hop.heard_from },
        };
        self.candidate = Some(candidate);
        // A very clean first estimate needs no second opinion: it saves a hop of latency.
        if candidate.hops < CONFIRM_HOPS && hop.confidence < SURE_CONFIDENCE {
            return;
        }
        let at = match self.segment {
            Some(s) if candidate.first.saturating_sub(s) <= self.max_segment_lead => s,
            _ => candidate.first,
        };
        let velocity = dynamics.velocity_for_db(self.segment_peak_db);
        self.note_on(candidate.step, at, velocity, hop.end, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        active: Active,
        hop: &HopInfo,
        step: f32,
        dynamics: &Dynamics,
        attacks: &AttackFinder,
        out: &mut Vec<Event>,
    ) {
        let old_enough = hop.end - active.on >= self.min_note;
        if !hop.voiced {
            if self.unvoiced_hops == 0 {
                self.first_unvoiced = hop.start;
            }
            self.unvoiced_hops += 1;
            self.change = None;
            if self.unvoiced_hops >= self.release_hops && old_enough {
                // The pitch often drops out right after an onset (the frame
                // restarts there); then the onset ended this note and begins
                // the next, which must start there, not where its pitch settles.
                match self.pending {
                    Some(p) => {
                        self.note_off(p.at, hop.end, out);
                        self.segment = Some(p.at);
                        self.segment_peak_db = p.peak_db;
                    }
                    None => self.note_off(self.first_unvoiced, hop.end, out),
                }
            }
            return;
        }
        self.unvoiced_hops = 0;
        let same_note = self.same_note(step, active);

        if let Some(mut p) = self.pending {
            p.hops += 1;
            p.peak_db = p.peak_db.max(hop.db);
            p.level_peak = p.level_peak.max(hop.level_db);
            self.pending = Some(p);
            if same_note {
                if p.level_peak - p.level_before >= RESTRIKE_DB {
                    let velocity = dynamics.velocity_for_db(p.peak_db);
                    self.note_off(p.at, hop.end, out);
                    self.note_on(active.step, p.at, velocity, hop.end, out);
                } else if p.hops >= self.pending_hops {
                    self.pending = None;
                }
                self.change = None;
                return;
            }
            self.change_after_onset(p, hop, step, p.peak_db, dynamics, out);
            return;
        }

        if same_note {
            self.change = None;
            return;
        }
        let change = self.track_change(step, hop.heard_from);
        if self.correct > 0 && change.first <= active.emitted + self.correct && change.hops >= CORRECT_HOPS {
            self.retract(active, change.step, hop.end, out);
        } else if change.hops >= self.change_hops && old_enough {
            let at = self.slurred_start(active, change, attacks, hop.end, out);
            self.note_off(at, hop.end, out);
            let velocity = dynamics.velocity_for_db(hop.db);
            self.note_on(change.step, at, velocity, hop.end, out);
        }
    }

    /// Replaces a misheard note: a note-off at its own start, then `step` in its place.
    fn retract(&mut self, active: Active, step: f32, emit: u64, out: &mut Vec<Event>) {
        self.note_off(active.on, emit, out);
        self.note_on(step, active.on, active.velocity, emit, out);
        if let Some(a) = self.active.as_mut() {
            a.emitted = active.emitted; // the correction window still counts from the first note-on
        }
    }

    /// Where a note reached without an onset began: where its harmonics rose,
    /// reported as the onset the flux missed, or else where its pitch was first heard.
    fn slurred_start(
        &self,
        active: Active,
        change: Candidate,
        attacks: &AttackFinder,
        emit: u64,
        out: &mut Vec<Event>,
    ) -> u64 {
        match attacks.find(self.map.midi(change.step), change.first, active.on + self.min_note) {
            Some(attack) if attack.sample < change.first => {
                let data = EventData::Onset { strength: attack.strength };
                out.push(Event { sample: attack.sample, emit_sample: emit, data });
                attack.sample
            }
            _ => change.first,
        }
    }

    /// Follows a pitch that differs from the sounding note over consecutive hops.
    fn track_change(&mut self, step: f32, first: u64) -> Candidate {
        let change = match self.change {
            Some(c) if (step - c.step).abs() < 0.5 => Candidate { step, hops: c.hops + 1, ..c },
            _ => Candidate { step, hops: 1, first },
        };
        self.change = Some(change);
        change
    }
}
