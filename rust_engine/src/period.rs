//! One JACK period of the live bridge, without JACK: read each input's block,
//! run its `Analyzer`, turn the events into MIDI messages sorted by frame, and
//! hand every event to the caller.
//!
//! `live.rs` drives it from the process callback; a test drives it from plain
//! slices and counts its allocations (tests/period.rs). Everything it needs is
//! allocated in [`Period::new`]; [`Period::process`] only computes.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use crate::analyzer::Analyzer;
use crate::config::{EngineConfig, LiveParam, MAX_BLOCK};
use crate::error::ConfigError;
use crate::event::{Event, EventData};

/// One event of one input, with the JACK frame time at which it was sent.
#[derive(Debug, Clone, Copy)]
pub struct LiveEvent {
    /// Input number, 1-based (MIDI channel `(input - 1) % 16`).
    pub input: u8,
    /// JACK frame time (wrapping u32) of the first frame of the period it came from.
    pub block_frame: u32,
    /// Frame within that period at which it was sent.
    pub offset: u32,
    pub event: Event,
}

/// The server's frame clock seen from one client, period after period.
///
/// A late client misses periods: jackd2 reports that as an xrun, but PipeWire's
/// libjack (0.3.65) runs the graph on without a word, and the client's next
/// period simply starts further on. That jump is the only trace of the audio it
/// never saw, so both the bridge and the test player count it.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameClock {
    /// Frame time and length of the previous period.
    last: Option<(u32, u32)>,
}

/// How a period followed the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockStep {
    /// Right after it (or the first period).
    Next,
    /// After this many periods the client was not run for.
    Skipped(u32),
    /// Sooner than a period: the server re-synced its clock.
    Short,
}

impl FrameClock {
    pub fn step(&mut self, now: u32, frames: u32) -> ClockStep {
        let step = match self.last {
            Some((prev, prev_frames)) if prev_frames > 0 => {
                let gap = now.wrapping_sub(prev);
                // A wrapped (negative) gap is a clock set back: also a re-sync.
                if gap > prev_frames && gap < u32::MAX / 2 {
                    // A gap of less than two periods still lost audio: one period.
                    ClockStep::Skipped((gap - 1) / prev_frames)
                } else if gap != prev_frames {
                    ClockStep::Short
                } else {
                    ClockStep::Next
                }
            }
            _ => ClockStep::Next,
        };
        self.last = Some((now, frames));
        step
    }
}

/// Requests from the control thread to the process callback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ControlMsg {
    Set(LiveParam, f32),
    /// Enable or mute MIDI output; muting sends note-offs for sounding notes.
    Midi(bool),
    /// Close every open note (engine and MIDI).
    AllNotesOff,
    /// Close every open note and stop analysing: the client is about to go.
    Finish,
}

/// Most inputs one client takes; input k plays on MIDI channel (k - 1) % 16.
pub const MAX_INPUTS: usize = 64;

/// No note sounding, in `Shared::active`.
const NO_NOTE: u8 = 255;

const BEND_CENTRE: u16 = 8192;

/// Counters and flags the real-time side publishes, and the one flag the graph
/// side sets for it (`midi_readers`).
pub struct Shared {
    pub xruns: AtomicU64,
    /// Periods the server ran without this client (see [`FrameClock`]).
    pub skipped_periods: AtomicU64,
    pub cycles: AtomicU64,
    /// Events the consumer was too slow to take (ring full).
    pub dropped: AtomicU64,
    /// MIDI events JACK could not take (port buffer full).
    pub midi_lost: AtomicU64,
    /// Longest process callback so far, in nanoseconds.
    pub max_cycle_ns: AtomicU64,
    pub notes_off_done: AtomicU64,
    pub server_lost: AtomicBool,
    /// Whether `midi_out` has a reader. Set off the real-time thread (asking JACK
    /// takes a mutex in PipeWire's libjack); owed note-offs wait for it.
    pub midi_readers: AtomicBool,
    /// Whether note-offs owed from a previous session are still waiting.
    pub owed_pending: AtomicBool,
    /// Note sounding on the MIDI port per input, `NO_NOTE` if none.
    active: Vec<AtomicU8>,
}

impl Shared {
    pub fn new(inputs: usize) -> Self {
        Self {
            xruns: AtomicU64::new(0),
            skipped_periods: AtomicU64::new(0),
            cycles: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            midi_lost: AtomicU64::new(0),
            max_cycle_ns: AtomicU64::new(0),
            notes_off_done: AtomicU64::new(0),
            server_lost: AtomicBool::new(false),
            midi_readers: AtomicBool::new(false),
            owed_pending: AtomicBool::new(false),
            active: (0..inputs).map(|_| AtomicU8::new(NO_NOTE)).collect(),
        }
    }

    /// Notes sounding on the MIDI port, per input.
    pub fn active_notes(&self) -> Vec<Option<u8>> {
        self.active.iter().map(|a| Some(a.load(Ordering::Acquire)).filter(|&n| n != NO_NOTE)).collect()
    }
}

/// One MIDI message of a period, at its frame offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MidiMessage {
    pub offset: u32,
    /// Order of queueing, which breaks ties between messages at the same offset.
    seq: u32,
    bytes: [u8; 3],
}

impl MidiMessage {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The state of the live bridge's per-period work, for `inputs` engines.
pub struct Period {
    engines: Vec<Analyzer>,
    events: Vec<Event>,
    outgoing: Vec<MidiMessage>,
    /// Pitch bend range in semitones; 0 sends no bend.
    bend_range: f32,
    last_bend: Vec<u16>,
    midi_enabled: bool,
    /// Set by `Finish`: no more analysis, so no note can start after the last note-off.
    finished: bool,
    /// Note-offs (channel, note) owed from before a server loss, sent once `midi_out`
    /// has a reader, or with the first new note-on, whichever comes first.
    owed_offs: Vec<(u8, u8)>,
    clock: FrameClock,
    shared: std::sync::Arc<Shared>,
}

impl Period {
    /// Engines for `inputs` inputs at `cfg`'s rate; `owed_note_offs` are (input, note)
    /// pairs left sounding by a previous session.
    pub fn new(
        cfg: &EngineConfig,
        inputs: usize,
        bend_range: f32,
        owed_note_offs: &[(u8, u8)],
        shared: std::sync::Arc<Shared>,
    ) -> Result<Self, ConfigError> {
        let engines = (0..inputs).map(|_| Analyzer::new(cfg.clone())).collect::<Result<Vec<_>, _>>()?;
        let per_input = engines.first().map_or(0, |e| e.max_events(MAX_BLOCK));
        let mut owed_offs = Vec::with_capacity(owed_note_offs.len());
        owed_offs.extend(owed_note_offs.iter().map(|&(input, note)| (input.saturating_sub(1) % 16, note)));
        shared.owed_pending.store(!owed_offs.is_empty(), Ordering::Release);
        Ok(Self {
            engines,
            events: Vec::with_capacity(per_input),
            // Each engine event may add a bend and a note-off before a note-on.
            outgoing: Vec::with_capacity(inputs * (per_input * 3 + 4) + owed_offs.len()),
            bend_range,
            last_bend: vec![BEND_CENTRE; inputs],
            midi_enabled: true,
            finished: false,
            owed_offs,
            clock: FrameClock::default(),
            shared,
        })
    }

    /// One period of `frames` frames starting at JACK frame time `frame0`:
    /// applies the waiting `controls`, analyses `input(k)` for every input,
    /// gives every event to `publish` (false: the consumer's ring is full) and
    /// returns the period's MIDI messages in frame order.
    pub fn process<'a>(
        &mut self,
        frame0: u32,
        frames: u32,
        input: impl Fn(usize) -> &'a [f32],
        mut controls: impl FnMut() -> Option<ControlMsg>,
        mut publish: impl FnMut(LiveEvent) -> bool,
    ) -> &[MidiMessage] {
        self.outgoing.clear();
        if let ClockStep::Skipped(n) = self.clock.step(frame0, frames) {
            self.shared.skipped_periods.fetch_add(n as u64, Ordering::Relaxed);
        }
        // Owed note-offs wait for a listener: right after a server restart
        // nothing is connected yet, and JACK MIDI to no one is lost.
        if self.shared.midi_readers.load(Ordering::Acquire) {
            self.send_owed(0);
        }
        while let Some(msg) = controls() {
            self.apply_control(msg, frame0, &mut publish);
        }
        for k in 0..self.engines.len() {
            if self.finished {
                break;
            }
            let start = self.engines[k].position();
            self.events.clear();
            let samples = input(k);
            // JACK never hands more than MAX_BLOCK frames; the error is unreachable.
            let _ = self.engines[k].process(&samples[..samples.len().min(MAX_BLOCK)], &mut self.events);
            for i in 0..self.events.len() {
                let e = self.events[i];
                let offset = (e.emit_sample.saturating_sub(start + 1)).min(frames.max(1) as u64 - 1) as u32;
                self.handle_event(k, e, frame0, offset, &mut publish);
            }
        }
        // JACK wants a port's events in frame order; inputs were appended one after another.
        self.outgoing.sort_unstable_by_key(|o| (o.offset, o.seq));
        &self.outgoing
    }

    /// Writes the owed note-offs, if any, at `offset`.
    fn send_owed(&mut self, offset: u32) {
        if self.owed_offs.is_empty() {
            return;
        }
        for i in 0..self.owed_offs.len() {
            let (channel, note) = self.owed_offs[i];
            self.queue_midi(offset, [0x80 | channel, note, 0]);
        }
        self.owed_offs.clear();
        self.shared.owed_pending.store(false, Ordering::Release);
    }

    fn queue_midi(&mut self, offset: u32, bytes: [u8; 3]) {
        if self.outgoing.len() < self.outgoing.capacity() {
            let seq = self.outgoing.len() as u32;
            self.outgoing.push(MidiMessage { offset, seq, bytes });
        } else {
            self.shared.midi_lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn publish(
        &self,
        publish: &mut impl FnMut(LiveEvent) -> bool,
        input: usize,
        block_frame: u32,
        offset: u32,
        event: Event,
    ) {
        if !publish(LiveEvent { input: input as u8 + 1, block_frame, offset, event }) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes a note-off for whatever input `k` has sounding on the MIDI port.
    fn release_sent(&mut self, k: usize, offset: u32) {
        let note = self.shared.active[k].swap(NO_NOTE, Ordering::AcqRel);
        if note != NO_NOTE {
            self.queue_midi(offset, [0x80 | (k % 16) as u8, note, 0]);
        }
    }

    fn apply_control(&mut self, msg: ControlMsg, frame0: u32, publish: &mut impl FnMut(LiveEvent) -> bool) {
        match msg {
            ControlMsg::Set(param, v) => self.engines.iter_mut().for_each(|e| e.set_live(param, v)),
            ControlMsg::Midi(on) => {
                if !on {
                    (0..self.engines.len()).for_each(|k| self.release_sent(k, 0));
                }
                self.midi_enabled = on;
            }
            ControlMsg::AllNotesOff | ControlMsg::Finish => {
                self.finished |= msg == ControlMsg::Finish;
                for k in 0..self.engines.len() {
                    self.events.clear();
                    self.engines[k].all_notes_off(&mut self.events);
                    for i in 0..self.events.len() {
                        let e = self.events[i];
                        self.publish(publish, k, frame0, 0, e);
                    }
                    self.release_sent(k, 0);
                }
                self.shared.notes_off_done.fetch_add(1, Ordering::Release);
            }
        }
    }

    fn handle_event(
        &mut self,
        k: usize,
        e: Event,
        block_frame: u32,
        offset: u32,
        publish: &mut impl FnMut(LiveEvent) -> bool,
    ) {
        let channel = (k % 16) as u8;
        match e.data {
            EventData::NoteOn { note, velocity } if self.midi_enabled => {
                // The reader may be there before the graph side has seen it: a
                // note-off owed from before must not follow a new note-on.
                self.send_owed(offset);
                self.release_sent(k, offset);
                if self.bend_range > 0.0 && self.last_bend[k] != BEND_CENTRE {
                    self.last_bend[k] = BEND_CENTRE;
                    self.queue_midi(offset, bend_bytes(channel, BEND_CENTRE));
                }
                self.queue_midi(offset, [0x90 | channel, note, velocity.max(1)]);
                self.shared.active[k].store(note, Ordering::Release);
            }
            EventData::NoteOff { note } if self.shared.active[k].load(Ordering::Acquire) == note => {
                self.release_sent(k, offset);
            }
            EventData::Pitch { midi, voiced: true, .. } if self.bend_range > 0.0 => {
                let note = self.shared.active[k].load(Ordering::Acquire);
                if note != NO_NOTE {
                    let bend = bend_value(midi - note as f32, self.bend_range);
                    // Skip changes below ~1 cent at a 2-semitone range: no MIDI spam.
                    if bend.abs_diff(self.last_bend[k]) >= 64 {
                        self.last_bend[k] = bend;
                        self.queue_midi(offset, bend_bytes(channel, bend));
                    }
                }
            }
            _ => {}
        }
        self.publish(publish, k, block_frame, offset, e);
    }
}

/// 14-bit pitch bend for a deviation in semitones.
fn bend_value(semitones: f32, range: f32) -> u16 {
    (BEND_CENTRE as f32 + semitones / range * 8192.0).round().clamp(0.0, 16383.0) as u16
}

fn bend_bytes(channel: u8, value: u16) -> [u8; 3] {
    [0xE0 | channel, (value & 0x7F) as u8, (value >> 7) as u8]
}
