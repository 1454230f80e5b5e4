//! A JACK client that plays audio into the graph and records the MIDI that
//! comes back: the "DAW" of the tests and benchmarks, and the feed of
//! `daw-bridge run --demo`.
//!
//! Its process callback is Rust, so a busy machine or a busy Python process
//! does not make it miss cycles, and it neither allocates nor locks:
//! - playback starts at the next period and goes on period after period, so
//!   the audio arrives whole, and the frame time of its first sample is
//!   reported; or, started at a given frame time, it is locked to JACK frame
//!   time: the period starting at frame `t` gets sample `t - start`, so a
//!   missed period leaves a hole instead of shifting what follows (what the
//!   latency benchmarks need; the frame clock may also jump, e.g. when the
//!   period size changes, which chops the audio). A new buffer arrives
//!   through a ring, and the old one goes back through another to be freed
//!   off the real-time thread;
//! - every MIDI event on the inputs goes, with the frame time at which it
//!   arrived, into a preallocated wait-free ring that a collector thread
//!   empties every few milliseconds into an unbounded list.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use jack::{AudioOut, Client, Control, MidiIn, Port, ProcessHandler, ProcessScope};
use rtrb::{Consumer, Producer, RingBuffer};

use crate::live::{graph_name, open_client, register_ports, Notifications, ServerFlags};
use crate::period::{ClockStep, FrameClock};

/// Play requests that may wait for the callback at once.
const COMMANDS: usize = 16;
/// How often the collector moves captured MIDI out of the ring.
const COLLECT_EVERY: Duration = Duration::from_millis(5);
/// No play has started yet, in `PlayerShared::started`.
const NOT_STARTED: u64 = u64::MAX;

/// One MIDI event received, at the JACK frame time it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured {
    /// Index of the MIDI input it came in on.
    pub input: u8,
    pub frame: u32,
    len: u8,
    data: [u8; 3],
}

impl Captured {
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }
}

enum Command {
    Play { id: u32, audio: Box<[f32]>, looped: bool, at: Option<u32> },
    Stop,
}

/// What the callback publishes.
#[derive(Default)]
pub struct PlayerShared {
    /// `(id << 32) | start frame` of the play that started last.
    started: AtomicU64,
    /// Id of the last play that reached its end.
    finished: AtomicU32,
    pub cycles: AtomicU64,
    /// Periods the server ran without the player (see `FrameClock`).
    pub skipped_periods: AtomicU64,
    /// Steps of the frame clock shorter than a period (the server re-syncing it after an xrun).
    pub short_steps: AtomicU64,
    /// Xruns the server reported (anywhere in the graph).
    pub xruns: AtomicU64,
    /// MIDI events lost because the ring was full.
    pub midi_dropped: AtomicU64,
    /// MIDI events longer than 3 bytes (SysEx), not kept.
    pub midi_skipped: AtomicU64,
    pub server_lost: AtomicBool,
}

impl PlayerShared {
    /// Id of the last play that reached its end (0: none).
    pub fn finished_id(&self) -> u32 {
        self.finished.load(Ordering::Acquire)
    }
}

impl ServerFlags for PlayerShared {
    fn xruns(&self) -> &AtomicU64 {
        &self.xruns
    }
    fn server_lost(&self) -> &AtomicBool {
        &self.server_lost
    }
}

struct Processor {
    outputs: Vec<Port<AudioOut>>,
    midi_inputs: Vec<Port<MidiIn>>,
    audio: Box<[f32]>,
    looped: bool,
    /// Frame time of the audio's first sample; `None` when silent.
    start: Option<u32>,
    /// Locked to frame time (`start` was given), else played period after period.
    locked: bool,
    /// Frames played so far, when not locked.
    played: i64,
    id: u32,
    clock: FrameClock,
    commands: Consumer<Command>,
    used: Producer<Box<[f32]>>,
    captured: Producer<Captured>,
    shared: Arc<PlayerShared>,
}

impl Processor {
    fn apply(&mut self, command: Command, now: u32) {
        let old = match command {
            Command::Play { id, audio, looped, at } => {
                let start = at.unwrap_or(now);
                (self.id, self.looped, self.start, self.locked, self.played) =
                    (id, looped, Some(start), at.is_some(), 0);
                self.shared.started.store((id as u64) << 32 | start as u64, Ordering::Release);
                std::mem::replace(&mut self.audio, audio)
            }
            Command::Stop => {
                self.start = None;
                std::mem::take(&mut self.audio)
            }
        };
        // `used` holds one more slot than there can be commands: never full here.
        if let Err(rtrb::PushError::Full(old)) = self.used.push(old) {
            std::mem::forget(old);
        }
    }
}

/// Sample `pos` (frames since the start) of `audio`, or silence.
fn sample(audio: &[f32], looped: bool, pos: i64) -> f32 {
    let n = audio.len() as i64;
    match pos {
        _ if pos < 0 || n == 0 => 0.0,
        _ if looped => audio[(pos % n) as usize],
        _ if pos < n => audio[pos as usize],
        _ => 0.0,
    }
}

impl ProcessHandler for Processor {
    fn process(&mut self, _: &Client, ps: &ProcessScope) -> Control {
        let (now, frames) = (ps.last_frame_time(), ps.n_frames());
        match self.clock.step(now, frames) {
            ClockStep::Skipped { periods, .. } => {
                _ = self.shared.skipped_periods.fetch_add(periods as u64, Ordering::Relaxed)
            }
            ClockStep::Short => _ = self.shared.short_steps.fetch_add(1, Ordering::Relaxed),
            ClockStep::Next => {}
        }
        while let Ok(command) = self.commands.pop() {
            self.apply(command, now);
        }
        for (k, port) in self.midi_inputs.iter().enumerate() {
            for event in port.iter(ps) {
                if event.bytes.len() > 3 {
                    self.shared.midi_skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let mut data = [0; 3];
                data[..event.bytes.len()].copy_from_slice(event.bytes);
                let captured = Captured {
                    input: k as u8,
                    frame: now.wrapping_add(event.time),
                    len: event.bytes.len() as u8,
                    data,
                };
                if self.captured.push(captured).is_err() {
                    self.shared.midi_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Frames since the start, signed: a start in the future is negative.
        let since = match self.start {
            Some(s) if self.locked => Some(now.wrapping_sub(s) as i32 as i64),
            Some(_) => Some(self.played),
            None => None,
        };
        self.played += frames as i64;
        let (audio, looped) = (&self.audio, self.looped);
        if let Some((first, rest)) = self.outputs.split_first_mut() {
            let out = first.as_mut_slice(ps);
            match since {
                Some(d) => out.iter_mut().enumerate().for_each(|(i, x)| *x = sample(audio, looped, d + i as i64)),
                None => out.fill(0.0),
            }
            for port in rest {
                port.as_mut_slice(ps).copy_from_slice(out);
            }
        }
        if let Some(d) = since {
            if !self.looped && d + frames as i64 >= self.audio.len() as i64 {
                self.shared.finished.store(self.id, Ordering::Release);
            }
        }
        self.shared.cycles.fetch_add(1, Ordering::Relaxed);
        Control::Continue
    }
}

/// Settings for opening a player.
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    pub client_name: String,
    /// Short names of the audio outputs; all play the same audio.
    pub outputs: Vec<String>,
    /// Short names of the MIDI inputs.
    pub midi_inputs: Vec<String>,
    /// Capacity of the capture ring, in events.
    pub midi_capacity: usize,
}

/// Errors of the player.
#[derive(Debug)]
pub enum PlayerError {
    Jack(jack::Error),
    /// The callback has not taken the previous requests (it is not running).
    Busy,
    /// More than 255 ports of one kind.
    BadPorts,
}

impl std::fmt::Display for PlayerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jack(e) => write!(f, "JACK: {e}"),
            Self::Busy => write!(f, "the player's process callback is not running"),
            Self::BadPorts => write!(f, "a player takes at most 255 audio outputs and 255 MIDI inputs"),
        }
    }
}

impl std::error::Error for PlayerError {}

/// A running player.
pub struct Player {
    client: Option<jack::AsyncClient<Notifications<PlayerShared>, Processor>>,
    commands: Producer<Command>,
    used: Consumer<Box<[f32]>>,
    collector: Option<JoinHandle<()>>,
    stop_collecting: Arc<AtomicBool>,
    /// Every MIDI event captured so far, in arrival order.
    pub captured: Arc<Mutex<Vec<Captured>>>,
    pub shared: Arc<PlayerShared>,
    next_id: u32,
    pub name: String,
    pub sample_rate: u32,
    /// Full names of the audio outputs and MIDI inputs.
    pub outputs: Vec<String>,
    pub midi_inputs: Vec<String>,
}

impl Player {
    /// Opens the JACK client (never starting a server), registers its ports and
    /// activates it, silent until `play`.
    pub fn open(cfg: PlayerConfig) -> Result<Self, PlayerError> {
        if cfg.outputs.len() > 255 || cfg.midi_inputs.len() > 255 {
            return Err(PlayerError::BadPorts);
        }
        let client = open_client(&cfg.client_name).map_err(PlayerError::Jack)?;
        let outputs = register_ports::<AudioOut>(&client, &cfg.outputs).map_err(PlayerError::Jack)?;
        let midi_inputs = register_ports::<MidiIn>(&client, &cfg.midi_inputs).map_err(PlayerError::Jack)?;
        let name = graph_name(&client);
        let sample_rate = client.sample_rate();
        let shared = Arc::new(PlayerShared { started: AtomicU64::new(NOT_STARTED), ..Default::default() });
        let (commands, commands_rx) = RingBuffer::new(COMMANDS);
        let (used_tx, used) = RingBuffer::new(COMMANDS + 1);
        let (captured_tx, mut captured_rx) = RingBuffer::new(cfg.midi_capacity.max(1024));
        let processor = Processor {
            outputs,
            midi_inputs,
            audio: Box::new([]),
            looped: false,
            start: None,
            locked: false,
            played: 0,
            id: 0,
            clock: FrameClock::default(),
            commands: commands_rx,
            used: used_tx,
            captured: captured_tx,
            shared: shared.clone(),
        };
        let client =
            client.activate_async(Notifications { shared: shared.clone() }, processor).map_err(PlayerError::Jack)?;
        let captured = Arc::new(Mutex::new(Vec::new()));
        let stop_collecting = Arc::new(AtomicBool::new(false));
        let (sink, stop) = (captured.clone(), stop_collecting.clone());
        let collector = std::thread::Builder::new()
            .name("player-midi".into())
            .spawn(move || loop {
                let last_round = stop.load(Ordering::Acquire);
                let waiting = captured_rx.slots();
                if waiting > 0 {
                    let mut list = sink.lock().unwrap_or_else(|p| p.into_inner());
                    list.extend(std::iter::from_fn(|| captured_rx.pop().ok()).take(waiting));
                }
                if last_round {
                    break;
                }
                std::thread::sleep(COLLECT_EVERY);
            })
            .expect("spawning a thread");
        let full = |names: &[String]| names.iter().map(|n| format!("{name}:{n}")).collect();
        Ok(Self {
            outputs: full(&cfg.outputs),
            midi_inputs: full(&cfg.midi_inputs),
            client: Some(client),
            commands,
            used,
            collector: Some(collector),
            stop_collecting,
            captured,
            shared,
            next_id: 0,
            name,
            sample_rate,
        })
    }

    fn client(&self) -> Option<&Client> {
        self.client.as_ref().map(|c| c.as_client())
    }

    fn send(&mut self, command: Command) -> Result<(), PlayerError> {
        while self.used.pop().is_ok() {} // buffers the callback is done with, freed here
        self.commands.push(command).map_err(|_| PlayerError::Busy)
    }

    /// Plays `audio` locked to frame time from `at`, or from the start of the
    /// next period on; returns the play's id for `start_frame` and `finished`.
    pub fn play(&mut self, audio: Vec<f32>, looped: bool, at: Option<u32>) -> Result<u32, PlayerError> {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        self.send(Command::Play { id, audio: audio.into_boxed_slice(), looped, at })?;
        Ok(id)
    }

    /// Silence from the next period on.
    pub fn stop(&mut self) -> Result<(), PlayerError> {
        self.send(Command::Stop)
    }

    /// Id of the last play requested (0: none).
    pub fn last_id(&self) -> u32 {
        self.next_id
    }

    /// Frame time of the first sample of play `id`, once the callback has taken it.
    pub fn start_frame(&self, id: u32) -> Option<u32> {
        let started = self.shared.started.load(Ordering::Acquire);
        (started != NOT_STARTED && (started >> 32) as u32 == id).then_some(started as u32)
    }

    /// Whether play `id` has played its last sample (never, for a loop).
    pub fn finished(&self, id: u32) -> bool {
        self.shared.finished_id() == id
    }

    pub fn buffer_size(&self) -> u32 {
        self.client().map_or(0, |c| c.buffer_size())
    }

    pub fn frame_time(&self) -> u32 {
        self.client().map_or(0, |c| c.frame_time())
    }

    /// Connects two ports by name (any two, as `jack_connect` does).
    pub fn connect(&self, source: &str, destination: &str) -> Result<(), PlayerError> {
        let client = self.client().ok_or(PlayerError::Busy)?;
        client.connect_ports_by_name(source, destination).map_err(PlayerError::Jack)
    }

    pub fn disconnect(&self, source: &str, destination: &str) -> Result<(), PlayerError> {
        let client = self.client().ok_or(PlayerError::Busy)?;
        client.disconnect_ports_by_name(source, destination).map_err(PlayerError::Jack)
    }

    /// Names of the ports connected to `port`.
    pub fn connections(&self, port: &str) -> Vec<String> {
        self.client().and_then(|c| c.port_by_name(port)).map_or_else(Vec::new, |p| p.get_connections())
    }

    /// Names of the ports matching the regular expression `pattern`.
    pub fn ports(&self, pattern: &str) -> Vec<String> {
        self.client().map_or_else(Vec::new, |c| c.ports(Some(pattern), None, jack::PortFlags::empty()))
    }

    /// Deactivates and closes the client; what was captured stays readable.
    pub fn close(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.deactivate();
        }
        self.stop_collecting.store(true, Ordering::Release);
        if let Some(collector) = self.collector.take() {
            let _ = collector.join();
        }
        while self.used.pop().is_ok() {}
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.close();
    }
}
