//! The real-time side of the live bridge: a JACK client whose process
//! callback reads every input, runs one `Analyzer` per input and writes MIDI
//! at the exact frame where each note event became known.
//!
//! The per-period work is `period::Period`, free of JACK types; this module
//! feeds it the ports' buffers and writes its MIDI. The callback never blocks
//! and never allocates: results leave through a wait-free ring buffer (`rtrb`)
//! to a non-real-time consumer (OSC, files, UI), control changes come in
//! through another, and the one fact it needs from the graph (does `midi_out`
//! have a reader?) through an atomic set by a thread of its own. Graph
//! management (connections) is left to the caller.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jack::{
    AudioIn, Client, ClientOptions, Control, MidiOut, NotificationHandler, Port, ProcessHandler, ProcessScope, RawMidi,
};
use rtrb::{Consumer, Producer, RingBuffer};

use crate::config::EngineConfig;
use crate::period::{Bbt, Period, Transport};
pub use crate::period::{BeatOptions, BeatSource, ControlMsg, LiveEvent, Shared, MAX_INPUTS};

/// How often the graph side looks for a reader of `midi_out` while note-offs are owed.
const READER_POLL: Duration = Duration::from_millis(5);

/// Widest pitch bend range, in semitones (the MIDI RPN allows 0..127; 48 covers every synth's setting).
pub const MAX_BEND_RANGE: f32 = 48.0;

/// The two facts a client's JACK notifications give its owner to poll.
pub(crate) trait ServerFlags: Send + Sync + 'static {
    fn xruns(&self) -> &AtomicU64;
    fn server_lost(&self) -> &AtomicBool;
}

impl ServerFlags for Shared {
    fn xruns(&self) -> &AtomicU64 {
        &self.xruns
    }
    fn server_lost(&self) -> &AtomicBool {
        &self.server_lost
    }
}

/// Counts xruns and flags the server's loss; the bridge's and the player's clients share it.
pub(crate) struct Notifications<S: ServerFlags> {
    pub(crate) shared: Arc<S>,
}

impl<S: ServerFlags> NotificationHandler for Notifications<S> {
    fn xrun(&mut self, _: &Client) -> Control {
        self.shared.xruns().fetch_add(1, Ordering::Relaxed);
        Control::Continue
    }

    unsafe fn shutdown(&mut self, _status: jack::ClientStatus, _reason: &str) {
        // Async-signal context: set a flag and nothing else.
        self.shared.server_lost().store(true, Ordering::Release);
    }
}

/// Registers one port of kind `P` per name, in order.
pub(crate) fn register_ports<P: jack::PortSpec + Default>(
    client: &Client,
    names: &[String],
) -> Result<Vec<Port<P>>, jack::Error> {
    names.iter().map(|n| client.register_port(n, P::default())).collect()
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

struct Processor {
    inputs: Vec<Port<AudioIn>>,
    midi: Port<MidiOut>,
    clock: Port<MidiOut>,
    period: Period,
    tx: Producer<LiveEvent>,
    rx: Consumer<ControlMsg>,
    shared: Arc<Shared>,
}

impl ProcessHandler for Processor {
    fn process(&mut self, client: &Client, ps: &ProcessScope) -> Control {
        let started = Instant::now();
        self.period.set_transport(transport(client));
        let (inputs, rx, tx) = (&self.inputs, &mut self.rx, &mut self.tx);
        let messages = self.period.process(
            ps.last_frame_time(),
            ps.n_frames(),
            |k| inputs[k].as_slice(ps),
            || rx.pop().ok(),
            |e| tx.push(e).is_ok(),
        );
        let mut writer = self.midi.writer(ps);
        for m in messages {
            if writer.write(&RawMidi { time: m.offset, bytes: m.bytes() }).is_err() {
                self.shared.midi_lost.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut writer = self.clock.writer(ps);
        for m in self.period.clock_messages() {
            if writer.write(&RawMidi { time: m.offset, bytes: m.bytes() }).is_err() {
                self.shared.midi_lost.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.shared.cycles.fetch_add(1, Ordering::Relaxed);
        self.shared.max_cycle_ns.fetch_max(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Control::Continue
    }
}

/// The transport at this period's first frame. `jack_transport_query` is
/// real-time safe (it copies the position the server published for the cycle).
fn transport(client: &Client) -> Transport {
    let Ok(now) = client.transport().query() else {
        return Transport::default();
    };
    let bbt = now.pos.bbt().map(|b| Bbt {
        bar: b.bar as u32,
        beat: b.beat as u32,
        tick: b.tick as f64,
        ticks_per_beat: b.ticks_per_beat,
        beats_per_bar: b.sig_num,
        bpm: b.bpm,
    });
    Transport { rolling: now.state == jack::TransportState::Rolling, bbt }
}

/// Settings for opening a live bridge.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub client_name: String,
    /// Audio input port names, one per input (the caller names them: `bridge/addresses.py`).
    pub input_ports: Vec<String>,
    /// MIDI output port name.
    pub midi_port: String,
    /// MIDI clock output port name.
    pub clock_port: String,
    /// Where beats come from and which input's drive the clock.
    pub beat: BeatOptions,
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

/// Opens a client, never starting a server. jackd2 refuses a new client with
/// "server error" when telling the other clients about it fails, as it does
/// for a client closing at that moment on a busy machine: that is retried.
pub(crate) fn open_client(name: &str) -> Result<Client, jack::Error> {
    let mut attempts = 0;
    loop {
        match Client::new(name, ClientOptions::NO_START_SERVER) {
            Err(jack::Error::ClientError(status))
                if status.contains(jack::ClientStatus::SERVER_ERROR) && attempts < 4 =>
            {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            opened => return opened.map(|(client, _status)| client),
        }
    }
}

/// The client's name as other clients see it in the graph, which is what its ports are
/// called by. When the name is taken, jackd2 renames the client and says so through
/// `jack_get_client_name`; PipeWire's libjack (0.3.65) renames it too (`NAME-<id>`) but
/// `jack_get_client_name` keeps returning the requested name, whose ports are another
/// client's. Looking our own uuid up gives the real name on both.
pub(crate) fn graph_name(client: &Client) -> String {
    client.name_by_uuid_str(&client.uuid_string()).unwrap_or_else(|| client.name().to_string())
}

/// Tells the callback when `midi_out` gains a reader, from a thread of its own:
/// `jack_port_connected` takes a mutex in PipeWire's libjack, so the real-time
/// thread never calls it. Runs only while note-offs are owed (after a server
/// loss), until they are sent or the bridge closes.
fn watch_readers(midi: &Port<jack::Unowned>, shared: &Shared, stop: &AtomicBool) {
    while shared.owed_pending.load(Ordering::Acquire)
        && !stop.load(Ordering::Acquire)
        && !shared.server_lost.load(Ordering::Acquire)
    {
        shared.midi_readers.store(midi.connected_count().unwrap_or(0) > 0, Ordering::Release);
        std::thread::sleep(READER_POLL);
    }
}

/// A running live bridge.
pub struct LiveBridge {
    client: Option<jack::AsyncClient<Notifications<Shared>, Processor>>,
    /// The graph side of `Shared::midi_readers`, while note-offs are owed.
    watcher: Option<JoinHandle<()>>,
    stop_watch: Arc<AtomicBool>,
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
        let client = open_client(&cfg.client_name).map_err(LiveError::Jack)?;
        let mut engine_cfg = cfg.engine.clone();
        engine_cfg.set_sample_rate(client.sample_rate());
        let shared = Arc::new(Shared::new(n_inputs));
        let mut period = Period::new(&engine_cfg, n_inputs, cfg.bend_range, &cfg.owed_note_offs, shared.clone())
            .map_err(LiveError::Config)?;
        period.set_beat_options(cfg.beat);
        let inputs = register_ports::<AudioIn>(&client, &cfg.input_ports).map_err(LiveError::Jack)?;
        let midi = client.register_port(&cfg.midi_port, MidiOut::default()).map_err(LiveError::Jack)?;
        let clock = client.register_port(&cfg.clock_port, MidiOut::default()).map_err(LiveError::Jack)?;
        let midi_port = midi.clone_unowned();
        let (tx, events) = RingBuffer::new(cfg.queue_capacity.max(1024));
        let (control, rx) = RingBuffer::new(256);
        let processor = Processor { inputs, midi, clock, period, tx, rx, shared: shared.clone() };
        let name = graph_name(&client);
        let sample_rate = client.sample_rate();
        // JACK takes callbacks only before activation. `shared` outlives the client:
        // the notification handler below holds it until the client is closed.
        unsafe {
            jack::jack_sys::jack_on_shutdown(client.raw(), Some(plain_shutdown), Arc::as_ptr(&shared) as *mut _);
        }
        let client =
            client.activate_async(Notifications { shared: shared.clone() }, processor).map_err(LiveError::Jack)?;
        let stop_watch = Arc::new(AtomicBool::new(false));
        let watcher = shared.owed_pending.load(Ordering::Acquire).then(|| {
            let (shared, stop) = (shared.clone(), stop_watch.clone());
            std::thread::Builder::new()
                .name("daw-bridge-midi-readers".into())
                .spawn(move || watch_readers(&midi_port, &shared, &stop))
                .expect("spawning a thread")
        });
        Ok(Self {
            client: Some(client),
            watcher,
            stop_watch,
            events,
            control,
            shared,
            name,
            sample_rate,
            inputs: n_inputs,
        })
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
                let deadline = Instant::now() + Duration::from_millis(500);
                while self.shared.notes_off_done.load(Ordering::Acquire) == before
                    && Instant::now() < deadline
                    && !self.server_lost()
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // Two more periods, so the note-offs written in the last one have
                // surely been read by the port's readers before the port goes.
                std::thread::sleep(Duration::from_millis(
                    (2000 * self.buffer_size().max(64) as u64 / self.sample_rate.max(1) as u64).max(5),
                ));
            }
        }
        self.stop_watch.store(true, Ordering::Release);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
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
