//! One JACK period of the live bridge, without JACK: read each input's block,
//! run its `Analyzer`, turn the events into MIDI messages sorted by frame, and
//! hand every event to the caller.
//!
//! `live.rs` drives it from the process callback; a test drives it from plain
//! slices and counts its allocations (tests/period.rs). Everything it needs is
//! allocated in [`Period::new`]; [`Period::process`] only computes.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use crate::analyzer::Analyzer;
use crate::clock::{ClockConfig, MidiClock, CLOCK, STOP, TICKS_PER_BEAT};
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
    /// After periods the client was not run for: how many, and their frames.
    Skipped { periods: u32, frames: u32 },
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
                    ClockStep::Skipped { periods: (gap - 1) / prev_frames, frames: gap - prev_frames }
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

/// Holes of digital silence in one input's sound, one period after another.
///
/// A client upstream of the bridge that is late on PipeWire leaves its port
/// silent for that period, and nobody's frame clock jumps: the bridge hears a
/// run of exact zeros inside a note, which no instrument plays. Counting them
/// tells such a dropout from a wrong analysis.
#[derive(Debug, Default, Clone, Copy)]
pub struct DropoutWatch {
    /// The last period ended in sound.
    tail_loud: bool,
    /// Frames of exact zeros since that sound, if any.
    hole: u32,
}

/// Level (peak of the 16 samples at an edge) that counts as sound around a hole: -60 dBFS.
const EDGE_LOUD: f32 = 1e-3;

impl DropoutWatch {
    /// Takes the next period of the input; true when it ends a hole of at most
    /// `max_hole` frames between sound and sound.
    pub fn step(&mut self, block: &[f32], max_hole: u32) -> bool {
        let loud = |edge: &[f32]| edge.iter().any(|x| x.abs() > EDGE_LOUD);
        if block.iter().all(|&x| x == 0.0) {
            if self.tail_loud || self.hole > 0 {
                self.hole = self.hole.saturating_add(block.len() as u32);
            }
            self.tail_loud = false;
            return false;
        }
        let dropout = self.hole > 0 && self.hole <= max_hole && loud(&block[..block.len().min(16)]);
        self.hole = 0;
        self.tail_loud = loud(&block[block.len().saturating_sub(16)..]);
        dropout
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
    /// Multiply the tracked tempo (2 doubles, 0.5 halves it).
    ScaleTempo(f32),
    /// Freeze the tracked tempo, or let it follow the audio again.
    HoldTempo(bool),
    /// A tapped beat at this JACK frame time.
    Tap(u32),
}

/// Where the beat, tempo and MIDI clock come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BeatSource {
    /// The beat tracker of the clock's input.
    Audio,
    /// JACK transport's bar, beat and tempo (from a timebase master), only while it rolls.
    Transport,
    /// The transport while it rolls with bar and beat known, else the audio.
    #[default]
    Auto,
}

/// Bar, beat and tick of the transport at a period's first frame, as a JACK timebase master gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bbt {
    /// Bar, 1-based.
    pub bar: u32,
    /// Beat in the bar, 1-based.
    pub beat: u32,
    pub tick: f64,
    pub ticks_per_beat: f64,
    pub beats_per_bar: f32,
    pub bpm: f64,
}

/// The transport at a period's first frame (what `jack_transport_query` says), without JACK types.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Transport {
    pub rolling: bool,
    pub bbt: Option<Bbt>,
}

/// Where beats come from and where the MIDI clock goes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BeatOptions {
    pub source: BeatSource,
    /// The input (0-based) whose beats drive the clock, and whose number transport beats carry.
    pub clock_input: usize,
    pub clock: ClockConfig,
}

/// Most inputs one client takes; input k plays on MIDI channel (k - 1) % 16.
pub const MAX_INPUTS: usize = 64;

/// Longest hole of digital silence inside sound counted as a dropout: a
/// period or two at PipeWire's quanta; a longer one may be the music's own.
const MAX_DROPOUT_MS: u32 = 25;

/// Most transport beats a gap in this client's periods may hold before it counts
/// as a relocation, whose passed beats are not sent late.
const LATE_BEATS: u64 = 2;

/// No note sounding, in `Shared::active`.
const NO_NOTE: u8 = 255;

const BEND_CENTRE: u16 = 8192;

/// Counters and flags the real-time side publishes, and the one flag the graph
/// side sets for it (`midi_readers`).
pub struct Shared {
    pub xruns: AtomicU64,
    /// Periods the server ran without this client (see [`FrameClock`]).
    pub skipped_periods: AtomicU64,
    /// Holes of digital silence inside an input's sound (see [`DropoutWatch`]).
    pub dropouts: AtomicU64,
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
            dropouts: AtomicU64::new(0),
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
    len: u8,
}

impl MidiMessage {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
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
    dropouts: Vec<DropoutWatch>,
    shared: std::sync::Arc<Shared>,
    beat: BeatOptions,
    midi_clock: MidiClock,
    /// The clock's messages of the period, for `clock_out`, in frame order.
    clock_out: Vec<MidiMessage>,
    /// The transport at this period's start, set before `process`.
    transport: Transport,
    /// Tempo last sent in a transport tempo event, to send changes only.
    transport_bpm: f64,
    /// The next transport beat not yet published, counted from bar 1 beat 1.
    transport_next: Option<u64>,
    /// Frames of the periods the server ran without this client, so far.
    skipped_frames: u64,
    sample_rate: u32,
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
            dropouts: vec![DropoutWatch::default(); inputs],
            shared,
            beat: BeatOptions::default(),
            midi_clock: MidiClock::new(ClockConfig::default()),
            // A period's own messages, and a beat of ticks late from skipped periods (`clock_to`).
            clock_out: Vec::with_capacity(
                MidiClock::max_messages(MAX_BLOCK, cfg.sample_rate, cfg.beat.max_bpm) + TICKS_PER_BEAT as usize + 2,
            ),
            transport: Transport::default(),
            transport_bpm: 0.0,
            transport_next: None,
            skipped_frames: 0,
            sample_rate: cfg.sample_rate,
        })
    }

    /// Sets where beats come from and which input drives the clock (before the first period).
    pub fn set_beat_options(&mut self, options: BeatOptions) {
        self.beat = BeatOptions { clock_input: options.clock_input.min(self.engines.len() - 1), ..options };
        self.midi_clock = MidiClock::new(options.clock);
    }

    /// The transport at the coming period's first frame.
    pub fn set_transport(&mut self, transport: Transport) {
        self.transport = transport;
    }

    /// The MIDI clock messages of the last period, for `clock_out`, in frame order.
    pub fn clock_messages(&self) -> &[MidiMessage] {
        &self.clock_out
    }

    /// Whether the transport drives the beat this period.
    fn transport_drives(&self) -> bool {
        match self.beat.source {
            BeatSource::Audio => false,
            BeatSource::Transport => true,
            BeatSource::Auto => self.transport.rolling && self.transport.bbt.is_some(),
        }
    }

    /// Writes the clock's messages before engine position `to` into `clock_out`.
    /// Ticks that fell in periods the server skipped come at `start`, up to a beat of
    /// them: older ones are counted but not sent, as a burst of more would read as a
    /// tempo jump (after a long stall, e.g. a server stopped for seconds).
    fn clock_to(&mut self, start: u64, frames: u32, to: u64) {
        let (clock_out, last) = (&mut self.clock_out, frames.max(1) - 1);
        let shared = &self.shared;
        let per_beat = self.midi_clock.tick_length() * TICKS_PER_BEAT as f64;
        let oldest = start.saturating_sub(per_beat.ceil() as u64);
        self.midi_clock.advance(to, |at, byte| {
            if byte == CLOCK && at < oldest {
                return;
            }
            if clock_out.len() < clock_out.capacity() {
                let offset = (at.saturating_sub(start)).min(last as u64) as u32;
                let seq = clock_out.len() as u32;
                clock_out.push(MidiMessage { offset, seq, bytes: [byte, 0, 0], len: 1 });
            } else {
                shared.midi_lost.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// Beats of the rolling transport within this period: events for the clock's
    /// input, and the clock's beats. Beats the transport passed in periods the
    /// server ran without this client come at the period's start, late rather
    /// than never, so a count of beats and bars stays whole.
    fn transport_beats(&mut self, start: u64, frame0: u32, frames: u32, publish: &mut impl FnMut(LiveEvent) -> bool) {
        let Some(bbt) = self.transport.bbt.filter(|b| self.transport.rolling && b.bpm > 0.0) else {
            self.transport_next = None;
            return;
        };
        let per_beat = 60.0 * self.sample_rate as f64 / bbt.bpm;
        let within = if bbt.ticks_per_beat > 0.0 { (bbt.tick / bbt.ticks_per_beat).clamp(0.0, 1.0) } else { 0.0 };
        let bar = (bbt.beats_per_bar.round() as u64).clamp(1, 16);
        // The beat at or before the period's first frame, counted from bar 1 beat 1,
        // and the first beat at or after that frame. Positions round to whole frames,
        // so a beat half a frame away counts as here: the period before saw it a
        // whole period ahead and left it to this one.
        let current = u64::from(bbt.bar.max(1) - 1) * bar + (u64::from(bbt.beat).clamp(1, bar) - 1);
        let since = within * per_beat;
        let first = if since < 0.5 { current } else { current + 1 };
        let from = match self.transport_next {
            // Passed while this client was not run (a gap longer is a relocation).
            Some(next) if next < first && first - next <= LATE_BEATS => next,
            // Published by the period before, whose position ran a little ahead.
            Some(next) if next == first + 1 => next,
            _ => first,
        };
        for n in from.. {
            let at = (n as f64 - current as f64) * per_beat - since;
            let offset = at.round().max(0.0) as u64;
            if offset >= frames as u64 {
                break;
            }
            let sample = start + offset;
            let next = start + (at + per_beat).round().max(offset as f64 + 1.0) as u64;
            if n >= first {
                self.clock_to(start, frames, sample);
                self.midi_clock.beat(sample, next);
            }
            let k = self.beat.clock_input;
            let (bpm, confidence, place) = (bbt.bpm as f32, 1.0, (n % bar + 1) as u8);
            let offset = (offset as u32).min(frames.max(1) - 1);
            let beat = Event {
                sample,
                emit_sample: sample,
                data: EventData::Beat { beat: place, bpm, confidence, next_sample: next },
            };
            self.publish(publish, k, frame0, offset, beat);
            if place == 1 || (bbt.bpm / self.transport_bpm - 1.0).abs() > 0.02 {
                self.transport_bpm = bbt.bpm;
                let tempo = Event { sample, emit_sample: sample, data: EventData::Tempo { bpm, confidence } };
                self.publish(publish, k, frame0, offset, tempo);
            }
            self.transport_next = Some(n + 1);
        }
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
        if let ClockStep::Skipped { periods, frames: lost } = self.clock.step(frame0, frames) {
            self.shared.skipped_periods.fetch_add(periods as u64, Ordering::Relaxed);
            self.skipped_frames += lost as u64;
        }
        // Positions go out on the server's frame clock: the engines' own, which count
        // only what they heard, plus the frames of the periods the server skipped us for.
        // So a note after a skip keeps its place in the session, and the clock its tempo.
        let shift = self.skipped_frames;
        // Owed note-offs wait for a listener: right after a server restart
        // nothing is connected yet, and JACK MIDI to no one is lost.
        if self.shared.midi_readers.load(Ordering::Acquire) {
            self.send_owed(0);
        }
        self.clock_out.clear();
        while let Some(msg) = controls() {
            self.apply_control(msg, frame0, &mut publish);
        }
        let transport = self.transport_drives();
        let period_start = self.engines[0].position() + shift;
        for k in 0..self.engines.len() {
            if self.finished {
                break;
            }
            let start = self.engines[k].position();
            self.events.clear();
            let samples = input(k);
            if self.dropouts[k].step(samples, MAX_DROPOUT_MS * self.sample_rate / 1000) {
                self.shared.dropouts.fetch_add(1, Ordering::Relaxed);
            }
            // JACK never hands more than MAX_BLOCK frames; the error is unreachable.
            let _ = self.engines[k].process(&samples[..samples.len().min(MAX_BLOCK)], &mut self.events);
            for i in 0..self.events.len() {
                let offset =
                    (self.events[i].emit_sample.saturating_sub(start + 1)).min(frames.max(1) as u64 - 1) as u32;
                let e = self.events[i].shifted(shift);
                match e.data {
                    // The transport's beats stand in for the tracker's.
                    EventData::Beat { .. } | EventData::Tempo { .. } if transport => continue,
                    EventData::Beat { next_sample, .. } if k == self.beat.clock_input => {
                        self.clock_to(start + shift, frames, e.emit_sample);
                        self.midi_clock.beat(e.sample, next_sample);
                    }
                    _ => {}
                }
                self.handle_event(k, e, frame0, offset, &mut publish);
            }
        }
        if !self.finished {
            if transport {
                self.transport_beats(period_start, frame0, frames, &mut publish);
            } else {
                self.transport_next = None;
            }
            self.clock_to(period_start, frames, period_start + frames as u64);
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
            self.outgoing.push(MidiMessage { offset, seq, bytes, len: 3 });
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
            ControlMsg::ScaleTempo(factor) => {
                self.engines.iter_mut().filter_map(Analyzer::beat_tracker).for_each(|b| b.scale_tempo(factor))
            }
            ControlMsg::HoldTempo(held) => {
                self.engines.iter_mut().filter_map(Analyzer::beat_tracker).for_each(|b| b.hold(held))
            }
            ControlMsg::Tap(frame) => {
                // Frames from this period's start to the tap, signed: a tap is usually in the past.
                let ago = frame.wrapping_sub(frame0) as i32 as i64;
                let start = self.engines[0].position() as i64;
                if let Ok(sample) = u64::try_from(start + ago) {
                    self.engines.iter_mut().filter_map(Analyzer::beat_tracker).for_each(|b| b.tap(sample));
                }
            }
            ControlMsg::Set(param, v) => self.engines.iter_mut().for_each(|e| e.set_live(param, v)),
            ControlMsg::Midi(on) => {
                if !on {
                    (0..self.engines.len()).for_each(|k| self.release_sent(k, 0));
                }
                self.midi_enabled = on;
            }
            ControlMsg::AllNotesOff | ControlMsg::Finish => {
                if msg == ControlMsg::Finish && self.midi_clock.running() {
                    // The clock's receivers stop with the bridge.
                    self.midi_clock.reset();
                    let seq = self.clock_out.len() as u32;
                    self.clock_out.push(MidiMessage { offset: 0, seq, bytes: [STOP, 0, 0], len: 1 });
                }
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
