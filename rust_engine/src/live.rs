//! The real-time side of the live bridge: a JACK client whose process
//! callback reads every input, runs one `Analyzer` per input and writes MIDI
//! at the exact frame where each note event became known.
//!
//! The callback never blocks and never allocates: results leave through a
//! wait-free ring buffer (`rtrb`) to a non-real-time consumer (OSC, files, UI),
//! control changes come in through another. Graph management (connections)
//! is left to the caller.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use jack::{
    AudioIn, Client, ClientOptions, Control, MidiOut, NotificationHandler, Port, ProcessHandler, ProcessScope, RawMidi,
};
use rtrb::{Consumer, Producer, RingBuffer};

use crate::analyzer::Analyzer;
use crate::config::{EngineConfig, LiveParam, MAX_BLOCK};
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

/// Widest pitch bend range, in semitones (the MIDI RPN allows 0..127; 48 covers every synth's setting).
pub const MAX_BEND_RANGE: f32 = 48.0;

/// No note sounding, in `Shared::active`.
const NO_NOTE: u8 = 255;

/// Counters and flags the callback publishes for the control side.
pub struct Shared {
    pub xruns: AtomicU64,
    pub cycles: AtomicU64,
    /// Events the consumer was too slow to take (ring full).
    pub dropped: AtomicU64,
    /// MIDI events JACK could not take (port buffer full).
    pub midi_lost: AtomicU64,
    /// Longest process callback so far, in nanoseconds.
    pub max_cycle_ns: AtomicU64,
    pub notes_off_done: AtomicU64,
    pub server_lost: AtomicBool,
    /// Note sounding on the MIDI port per input, `NO_NOTE` if none.
    active: Vec<AtomicU8>,
}

impl Shared {
    /// Notes sounding on the MIDI port, per input.
    pub fn active_notes(&self) -> Vec<Option<u8>> {
        self.active.iter().map(|a| Some(a.load(Ordering::Acquire)).filter(|&n| n != NO_NOTE)).collect()
    }
}

struct Notifications {
    shared: Arc<Shared>,
}

impl NotificationHandler for Notifications {
    fn xrun(&mut self, _: &Client) -> Control {
        self.shared.xruns.fetch_add(1, Ordering::Relaxed);
        Control::Continue
    }

    unsafe fn shutdown(&mut self, _status: jack::ClientStatus, _reason: &str) {
        // Async-signal context: set a flag and nothing else.
        self.shared.server_lost.store(true, Ordering::Release);
    }
}

/// `jack_on_shutdown` callback; `arg` is the client's `Shared`.
///
/// The jack crate registers only `jack_on_info_shutdown`, which PipeWire's libjack
/// (0.3.65, Debian 12) never calls: there a lost server comes only through the plain
/// `jack_on_shutdown`. jackd2 calls just one of the two, the info one when both are
/// set, and both only set the same flag.
unsafe extern "C" fn plain_shutdown(arg: *mut std::ffi::c_void) {
    let shared = &*(arg as *const Shared);
    shared.server_lost.store(true, Ordering::Release);
}

/// One MIDI message waiting to be written in frame order.
#[derive(Debug, Clone, Copy)]
struct Outgoing {
    offset: u32,
    seq: u32,
    bytes: [u8; 3],
    len: u8,
}

struct Processor {
    inputs: Vec<Port<AudioIn>>,
    midi: Port<MidiOut>,
    engines: Vec<Analyzer>,
    events: Vec<Event>,
    outgoing: Vec<Outgoing>,
    /// Pitch bend range in semitones; 0 sends no bend.
    bend_range: f32,
    last_bend: Vec<u16>,
    midi_enabled: bool,
    /// Set by `Finish`: no more analysis, so no note can start after the last note-off.
    finished: bool,
    /// Note-offs owed from before a server loss, sent once `midi_out` is connected.
    owed_offs: Vec<(u8, u8)>,
    tx: Producer<LiveEvent>,
    rx: Consumer<ControlMsg>,
    shared: Arc<Shared>,
}

const BEND_CENTRE: u16 = 8192;

impl Processor {
    fn queue_midi(&mut self, offset: u32, bytes: [u8; 3], len: u8) {
        if self.outgoing.len() < self.outgoing.capacity() {
            let seq = self.outgoing.len() as u32;
            self.outgoing.push(Outgoing { offset, seq, bytes, len });
        } else {
            self.shared.midi_lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn publish(&mut self, input: usize, block_frame: u32, offset: u32, event: Event) {
        let live = LiveEvent { input: input as u8 + 1, block_frame, offset, event };
        if self.tx.push(live).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes a note-off for whatever input `k` has sounding on the MIDI port.
    fn release_sent(&mut self, k: usize, offset: u32) {
        let note = self.shared.active[k].swap(NO_NOTE, Ordering::AcqRel);
        if note != NO_NOTE {
            self.queue_midi(offset, [0x80 | (k % 16) as u8, note, 0], 3);
        }
    }

    fn apply_control(&mut self, msg: ControlMsg, frame0: u32) {
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
                        self.publish(k, frame0, 0, e);
                    }
                    self.release_sent(k, 0);
                }
                self.shared.notes_off_done.fetch_add(1, Ordering::Release);
            }
        }
    }

    fn handle_event(&mut self, k: usize, e: Event, block_frame: u32, offset: u32) {
        let channel = (k % 16) as u8;
        match e.data {
            EventData::NoteOn { note, velocity } if self.midi_enabled => {
                self.release_sent(k, offset);
                if self.bend_range > 0.0 && self.last_bend[k] != BEND_CENTRE {
                    self.last_bend[k] = BEND_CENTRE;
                    self.queue_midi(offset, bend_bytes(channel, BEND_CENTRE), 3);
                }
                self.queue_midi(offset, [0x90 | channel, note, velocity.max(1)], 3);
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
                        self.queue_midi(offset, bend_bytes(channel, bend), 3);
                    }
                }
            }
            _ => {}
        }
        self.publish(k, block_frame, offset, e);
    }
}

/// 14-bit pitch bend for a deviation in semitones.
fn bend_value(semitones: f32, range: f32) -> u16 {
    (BEND_CENTRE as f32 + semitones / range * 8192.0).round().clamp(0.0, 16383.0) as u16
}

fn bend_bytes(channel: u8, value: u16) -> [u8; 3] {
    [0xE0 | channel, (value & 0x7F) as u8, (value >> 7) as u8]
}

impl ProcessHandler for Processor {
    fn process(&mut self, _: &Client, ps: &ProcessScope) -> Control {
        let started = Instant::now();
        let n = ps.n_frames();
        let frame0 = ps.last_frame_time();
        self.outgoing.clear();
        // Owed note-offs wait for a listener: right after a server restart
        // nothing is connected yet, and JACK MIDI to no one is lost.
        if !self.owed_offs.is_empty() && self.midi.connected_count().unwrap_or(0) > 0 {
            for i in 0..self.owed_offs.len() {
                let (channel, note) = self.owed_offs[i];
                self.queue_midi(0, [0x80 | channel, note, 0], 3);
            }
            self.owed_offs.clear();
        }
        while let Ok(msg) = self.rx.pop() {
            self.apply_control(msg, frame0);
        }
        for k in 0..self.engines.len() {
            if self.finished {
                break;
            }
            let start = self.engines[k].position();
            self.events.clear();
            let samples = self.inputs[k].as_slice(ps);
            // JACK never hands more than MAX_BLOCK frames; the error is unreachable.
            let _ = self.engines[k].process(&samples[..samples.len().min(MAX_BLOCK)], &mut self.events);
            for i in 0..self.events.len() {
                let e = self.events[i];
                let offset = (e.emit_sample.saturating_sub(start + 1)).min(n as u64 - 1) as u32;
                self.handle_event(k, e, frame0, offset);
            }
        }
        // JACK wants a port's events in frame order; inputs were appended one after another.
        self.outgoing.sort_unstable_by_key(|o| (o.offset, o.seq));
        let mut writer = self.midi.writer(ps);
        for o in &self.outgoing {
            let msg = RawMidi { time: o.offset, bytes: &o.bytes[..o.len as usize] };
            if writer.write(&msg).is_err() {
                self.shared.midi_lost.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.shared.cycles.fetch_add(1, Ordering::Relaxed);
        self.shared.max_cycle_ns.fetch_max(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Control::Continue
    }
}

/// Settings for opening a live bridge.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub client_name: String,
    /// Audio input port names, one per input (the caller names them: `bridge/addresses.py`).
    pub input_ports: Vec<String>,
    /// MIDI output port name.
    pub midi_port: String,
    pub engine: EngineConfig,
    pub bend_range: f32,
    /// Capacity of the event ring, in events.
    pub queue_capacity: usize,
    /// Note-offs (input, note) owed to the MIDI port from a previous session.
    pub owed_note_offs: Vec<(u8, u8)>,
}

/// Errors opening a live bridge.
#[derive(Debug)]
pub enum LiveError {
    Jack(jack::Error),
    Config(crate::error::ConfigError),
    BadInputs(usize),
}

impl std::fmt::Display for LiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jack(e) => write!(f, "JACK: {e}"),
            Self::Config(e) => write!(f, "{e}"),
            Self::BadInputs(n) => write!(f, "inputs must be 1..{MAX_INPUTS}, got {n}"),
        }
    }
}

impl std::error::Error for LiveError {}

/// The client's name as other clients see it in the graph, which is what its ports are
/// called by. When the name is taken, jackd2 renames the client and says so through
/// `jack_get_client_name`; PipeWire's libjack (0.3.65) renames it too (`NAME-<id>`) but
/// `jack_get_client_name` keeps returning the requested name, whose ports are another
/// client's. Looking our own uuid up gives the real name on both.
fn graph_name(client: &Client) -> String {
    client.name_by_uuid_str(&client.uuid_string()).unwrap_or_else(|| client.name().to_string())
}

/// A running live bridge.
pub struct LiveBridge {
    client: Option<jack::AsyncClient<Notifications, Processor>>,
    events: Consumer<LiveEvent>,
    control: Producer<ControlMsg>,
    pub shared: Arc<Shared>,
    pub name: String,
    pub sample_rate: u32,
    pub inputs: usize,
}

impl LiveBridge {
    /// Opens the JACK client (never starting a server), registers the input
    /// ports and the MIDI port, and activates it. The engine runs at the server's rate.
    pub fn open(cfg: LiveConfig) -> Result<Self, LiveError> {
        let n_inputs = cfg.input_ports.len();
        if !(1..=MAX_INPUTS).contains(&n_inputs) {
            return Err(LiveError::BadInputs(n_inputs));
        }
        let (client, _status) =
            Client::new(&cfg.client_name, ClientOptions::NO_START_SERVER).map_err(LiveError::Jack)?;
        let mut engine_cfg = cfg.engine.clone();
        engine_cfg.set_sample_rate(client.sample_rate());
        let mut engines = Vec::with_capacity(n_inputs);
        let mut inputs = Vec::with_capacity(n_inputs);
        for port in &cfg.input_ports {
            engines.push(Analyzer::new(engine_cfg.clone()).map_err(LiveError::Config)?);
            inputs.push(client.register_port(port, AudioIn::default()).map_err(LiveError::Jack)?);
        }
        let midi = client.register_port(&cfg.midi_port, MidiOut::default()).map_err(LiveError::Jack)?;
        let per_input = engines[0].max_events(MAX_BLOCK);
        let shared = Arc::new(Shared {
            xruns: AtomicU64::new(0),
            cycles: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            midi_lost: AtomicU64::new(0),
            max_cycle_ns: AtomicU64::new(0),
            notes_off_done: AtomicU64::new(0),
            server_lost: AtomicBool::new(false),
            active: (0..n_inputs).map(|_| AtomicU8::new(NO_NOTE)).collect(),
        });
        let (tx, events) = RingBuffer::new(cfg.queue_capacity.max(1024));
        let (control, rx) = RingBuffer::new(256);
        let mut owed_offs = Vec::with_capacity(cfg.owed_note_offs.len());
        owed_offs.extend(cfg.owed_note_offs.iter().map(|&(input, note)| (input.saturating_sub(1) % 16, note)));
        let processor = Processor {
            inputs,
            midi,
            engines,
            events: Vec::with_capacity(per_input),
            // Each engine event may add a bend and a note-off before a note-on.
            outgoing: Vec::with_capacity(n_inputs * (per_input * 3 + 4) + owed_offs.len()),
            bend_range: cfg.bend_range,
            last_bend: vec![BEND_CENTRE; n_inputs],
            midi_enabled: true,
            finished: false,
            owed_offs,
            tx,
            rx,
            shared: shared.clone(),
        };
        let name = graph_name(&client);
        let sample_rate = client.sample_rate();
        // JACK takes callbacks only before activation. `shared` outlives the client:
        // the notification handler below holds it until the client is closed.
        unsafe {
            jack::jack_sys::jack_on_shutdown(client.raw(), Some(plain_shutdown), Arc::as_ptr(&shared) as *mut _);
        }
        let client =
            client.activate_async(Notifications { shared: shared.clone() }, processor).map_err(LiveError::Jack)?;
        Ok(Self { client: Some(client), events, control, shared, name, sample_rate, inputs: n_inputs })
    }

    /// Current period size in frames.
    pub fn buffer_size(&self) -> u32 {
        self.client.as_ref().map_or(0, |c| c.as_client().buffer_size())
    }

    /// JACK's DSP load estimate, in percent.
    pub fn cpu_load(&self) -> f32 {
        self.client.as_ref().map_or(0.0, |c| c.as_client().cpu_load())
    }

    /// The server's current frame time, to relate event frames to now.
    pub fn frame_time(&self) -> u32 {
        self.client.as_ref().map_or(0, |c| c.as_client().frame_time())
    }

    /// Takes every event waiting in the ring.
    pub fn drain(&mut self, out: &mut Vec<LiveEvent>) {
        while let Ok(e) = self.events.pop() {
            out.push(e);
        }
    }

    /// Queues a control message; false when the control ring is full.
    pub fn send(&mut self, msg: ControlMsg) -> bool {
        self.control.push(msg).is_ok()
    }

    /// Whether the server went away.
    pub fn server_lost(&self) -> bool {
        self.shared.server_lost.load(Ordering::Acquire)
    }

    /// Closes all notes (when the server is alive), waits for the callback to
    /// write them, then deactivates and closes the client.
    pub fn close(&mut self, out: &mut Vec<LiveEvent>) {
        if self.client.is_none() {
            return;
        }
        if !self.server_lost() {
            let before = self.shared.notes_off_done.load(Ordering::Acquire);
            if self.send(ControlMsg::Finish) {
                let deadline = Instant::now() + std::time::Duration::from_millis(500);
                while self.shared.notes_off_done.load(Ordering::Acquire) == before
                    && Instant::now() < deadline
                    && !self.server_lost()
                {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                // One more period so the note-offs reach the port's readers.
                std::thread::sleep(std::time::Duration::from_millis(
                    (2000 * self.buffer_size().max(64) as u64 / self.sample_rate.max(1) as u64).max(5),
                ));
            }
        }
        self.drain(out);
        if let Some(client) = self.client.take() {
            let _ = client.deactivate();
        }
    }
}

impl Drop for LiveBridge {
    fn drop(&mut self) {
        let mut sink = Vec::new();
        self.close(&mut sink);
    }
}
