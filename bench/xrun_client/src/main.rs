//! A plain Rust JACK client, the baseline for `bench/xruns.py`.
//!
//! It does the same per-block work as the Python client in
//! `bench/xrun_pyclient.py` so the two differ only in the language of the
//! process callback. Protocol (shared with the Python client): it prints
//! `READY` once active and connected, `STOP` when the measured span ends (before
//! deactivating, which the harness must not count) and then one JSON line of
//! figures. The server is chosen by `JACK_DEFAULT_SERVER`.

use std::env;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Blocks between two MIDI events in the `work` variant (about 0.27 s at 128 frames).
const MIDI_EVERY: u64 = 100;

struct Args {
    name: String,
    work: bool,
    seconds: f64,
    connect: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { name: "xrun-rust".into(), work: false, seconds: 60.0, connect: None };
    let mut it = env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--name" => args.name = value()?,
            "--work" => {
                args.work = match value()?.as_str() {
                    "trivial" => false,
                    "work" => true,
                    other => return Err(format!("--work must be trivial or work, not {other}")),
                }
            }
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|_| "--seconds needs a number".to_string())?
            }
            "--connect" => args.connect = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// Per-cycle figures written by the process thread; read by main after deactivation.
struct Process {
    input: jack::Port<jack::AudioIn>,
    midi_out: jack::Port<jack::MidiOut>,
    work: bool,
    cycles: u64,
    /// Cycles and missed cycles so far, shared so main can snapshot the measured span.
    cycles_seen: Arc<AtomicU64>,
    missed: Arc<AtomicU64>,
    last_frame: Option<u32>,
    /// Callback durations and intervals between callback starts in ns, one per cycle
    /// (preallocated: nothing is allocated in the callback).
    durations: Vec<u64>,
    intervals: Vec<u64>,
    t_prev: Option<Instant>,
    sched_policy: i32,
    level: f32,
    midi_written: u64,
}

impl jack::ProcessHandler for Process {
    fn process(&mut self, _: &jack::Client, ps: &jack::ProcessScope) -> jack::Control {
        let t0 = Instant::now();
        let frame = ps.last_frame_time();
        if let Some(prev) = self.last_frame {
            let gap = frame.wrapping_sub(prev) / ps.n_frames();
            self.missed.fetch_add(u64::from(gap.saturating_sub(1)), Ordering::Relaxed);
        } else {
            self.sched_policy = unsafe { libc::sched_getscheduler(0) };
        }
        self.last_frame = Some(frame);
        let x = self.input.as_slice(ps);
        if self.work {
            // The same work as the Python client's: a level, and one MIDI event every 100 blocks.
            self.level = std::hint::black_box(x.iter().map(|v| v * v).sum::<f32>());
            let mut writer = self.midi_out.writer(ps);
            if self.cycles % MIDI_EVERY == 0 {
                let on = (self.cycles / MIDI_EVERY) % 2 == 0;
                let bytes = [if on { 0x90 } else { 0x80 }, 60, if on { 100 } else { 0 }];
                if writer.write(&jack::RawMidi { time: 0, bytes: &bytes }).is_ok() {
                    self.midi_written += 1;
                }
            }
        } else {
            std::hint::black_box(x.first());
        }
        let i = self.cycles as usize;
        if i < self.durations.len() {
            self.intervals[i] = self.t_prev.map_or(0, |t| (t0 - t).as_nanos() as u64);
            self.durations[i] = t0.elapsed().as_nanos() as u64;
        }
        self.t_prev = Some(t0);
        self.cycles += 1;
        self.cycles_seen.store(self.cycles, Ordering::Relaxed);
        jack::Control::Continue
    }
}

struct Notifications {
    xruns: Arc<AtomicU64>,
}

impl jack::NotificationHandler for Notifications {
    fn xrun(&mut self, _: &jack::Client) -> jack::Control {
        self.xruns.fetch_add(1, Ordering::Relaxed);
        jack::Control::Continue
    }
}

/// The q-quantile of `sorted` in microseconds (nearest rank).
fn percentile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 1e3
}

fn run(args: Args) -> Result<(), String> {
    let (client, _status) = jack::Client::new(&args.name, jack::ClientOptions::NO_START_SERVER)
        .map_err(|e| format!("cannot open a JACK client: {e}"))?;
    let rate = client.sample_rate() as f64;
    let period = client.buffer_size();
    let input = client.register_port("in", jack::AudioIn::default()).map_err(|e| e.to_string())?;
    let midi_out =
        client.register_port("midi_out", jack::MidiOut::default()).map_err(|e| e.to_string())?;
    let in_name = input.name().map_err(|e| e.to_string())?;
    let expected = (args.seconds * rate / f64::from(period)) as usize + 2048;
    let cycles_seen = Arc::new(AtomicU64::new(0));
    let missed = Arc::new(AtomicU64::new(0));
    let process = Process {
        input,
        midi_out,
        work: args.work,
        cycles: 0,
        cycles_seen: cycles_seen.clone(),
        missed: missed.clone(),
        last_frame: None,
        durations: vec![0; expected],
        intervals: vec![0; expected],
        t_prev: None,
        sched_policy: -1,
        level: 0.0,
        midi_written: 0,
    };
    let xruns = Arc::new(AtomicU64::new(0));
    let active = client
        .activate_async(Notifications { xruns: xruns.clone() }, process)
        .map_err(|e| format!("cannot activate: {e}"))?;
    if let Some(source) = &args.connect {
        active
            .as_client()
            .connect_ports_by_name(source, &in_name)
            .map_err(|e| format!("cannot connect {source}: {e}"))?;
    }
    sleep(Duration::from_millis(500)); // let activation and connection settle
    println!("READY");
    let (xruns0, cycles0, missed0) = (
        xruns.load(Ordering::Relaxed),
        cycles_seen.load(Ordering::Relaxed),
        missed.load(Ordering::Relaxed),
    );
    sleep(Duration::from_secs_f64(args.seconds));
    let own_xruns = xruns.load(Ordering::Relaxed) - xruns0;
    let cycles1 = cycles_seen.load(Ordering::Relaxed);
    let missed_span = missed.load(Ordering::Relaxed) - missed0;
    let cpu_load = active.as_client().cpu_load();
    println!("STOP");
    let (_client, _n, p) = active.deactivate().map_err(|e| format!("cannot deactivate: {e}"))?;
    let n = p.durations.len();
    let span = (cycles0 as usize + 1).min(n)..(cycles1 as usize).min(n);
    let mut durations = p.durations[span.clone()].to_vec();
    durations.sort_unstable();
    let interval_max = p.intervals[span].iter().copied().max().unwrap_or(0);
    println!(
        "{{\"client\": \"rust\", \"work\": \"{}\", \"cycles\": {}, \"missed_cycles\": {}, \
         \"own_xruns\": {}, \"callback_p50_us\": {:.1}, \"callback_p99_us\": {:.1}, \
         \"callback_max_us\": {:.1}, \"interval_max_us\": {:.1}, \"cpu_load\": {:.3}, \
         \"sched_policy\": {}, \"midi_written\": {}}}",
        if args.work { "work" } else { "trivial" },
        cycles1 - cycles0,
        missed_span,
        own_xruns,
        percentile_us(&durations, 0.5),
        percentile_us(&durations, 0.99),
        percentile_us(&durations, 1.0),
        interval_max as f64 / 1e3,
        cpu_load,
        p.sched_policy,
        p.midi_written,
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
