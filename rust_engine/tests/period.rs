//! One period of the live bridge (`Period`, what the JACK process callback
//! runs) driven without JACK: the MIDI it writes, the note-offs it owes, and a
//! counting allocator proving it allocates nothing once constructed.

mod signals;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rust_engine::clock::{CLOCK, START, STOP};
use rust_engine::config::LiveParam;
use rust_engine::period::{Bbt, BeatOptions, BeatSource, ControlMsg, LiveEvent, Period, Shared, Transport};
use rust_engine::EngineConfig;
use signals::*;

thread_local! {
    /// Allocations made by this thread: tests run in parallel threads.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// A MIDI message with its absolute frame.
type Sent = (u64, Vec<u8>);

/// Drives a `Period` over whole signals, one per input, in periods of `frames`.
struct Run {
    period: Period,
    shared: Arc<Shared>,
    frame: u64,
    events: Vec<LiveEvent>,
    sent: Vec<Sent>,
    /// What went to `clock_out`: (absolute frame, byte).
    clocked: Vec<(u64, u8)>,
}

impl Run {
    fn new(inputs: usize, owed: &[(u8, u8)]) -> Self {
        let shared = Arc::new(Shared::new(inputs));
        let period = Period::new(&EngineConfig::default(), inputs, 2.0, owed, shared.clone()).unwrap();
        Self {
            period,
            shared,
            frame: 0,
            events: Vec::with_capacity(1 << 16),
            sent: Vec::with_capacity(1 << 14),
            clocked: Vec::new(),
        }
    }

    /// One period; returns the allocations it made.
    fn step(&mut self, blocks: &[&[f32]], controls: &[ControlMsg]) -> usize {
        let frames = blocks[0].len() as u32;
        let mut pending = controls.iter().copied();
        let events = &mut self.events;
        let before = allocations();
        let messages = self.period.process(
            self.frame as u32,
            frames,
            |k| blocks[k],
            || pending.next(),
            |e| {
                // Full like a ring: nothing is ever dropped here (capacity 65536).
                events.len() < events.capacity() && {
                    events.push(e);
                    true
                }
            },
        );
        let made = allocations() - before;
        assert!(messages.windows(2).all(|w| w[0].offset <= w[1].offset), "{messages:?}");
        assert!(messages.iter().all(|m| m.offset < frames.max(1)));
        for m in messages {
            self.sent.push((self.frame + m.offset as u64, m.bytes().to_vec()));
        }
        let clock = self.period.clock_messages();
        assert!(clock.windows(2).all(|w| w[0].offset <= w[1].offset), "{clock:?}");
        assert!(clock.iter().all(|m| m.offset < frames.max(1) && m.bytes().len() == 1));
        self.clocked.extend(clock.iter().map(|m| (self.frame + m.offset as u64, m.bytes()[0])));
        self.frame += frames as u64;
        made
    }

    /// Plays `signals` (one per input) in periods cycling through `sizes`; returns the allocations.
    fn play(&mut self, signals: &[Vec<f32>], sizes: &[usize]) -> usize {
        let len = signals.iter().map(Vec::len).max().unwrap();
        let mut padded: Vec<Vec<f32>> = signals.to_vec();
        padded.iter_mut().for_each(|s| s.resize(len, 0.0));
        let (mut pos, mut made) = (0, 0);
        for &n in sizes.iter().cycle() {
            if pos >= len {
                break;
            }
            let end = (pos + n).min(len);
            let blocks: Vec<&[f32]> = padded.iter().map(|s| &s[pos..end]).collect();
            made += self.step(&blocks, &[]);
            pos = end;
        }
        made
    }

    /// (channel, "on"/"off", note) of the note messages sent.
    fn notes(&self) -> Vec<(u8, &'static str, u8)> {
        self.sent
            .iter()
            .filter_map(|(_, b)| match b[0] & 0xF0 {
                0x90 if b[2] > 0 => Some((b[0] & 0x0F, "on", b[1])),
                0x80 | 0x90 => Some((b[0] & 0x0F, "off", b[1])),
                _ => None,
            })
            .collect()
    }
}

fn melody_of(notes: &[f32]) -> Vec<f32> {
    melody(&notes.iter().map(|&m| (m, 0.25)).collect::<Vec<_>>(), 0.15).0
}

#[test]
fn each_input_plays_its_melody_on_its_channel_every_note_closed() {
    let mut run = Run::new(2, &[]);
    run.play(&[melody_of(&[60.0, 64.0, 67.0]), melody_of(&[45.0, 52.0])], &[128, 64, 1000, 256]);
    let notes = run.notes();
    for (channel, melody) in [(0u8, vec![60u8, 64, 67]), (1, vec![45, 52])] {
        let mine: Vec<_> = notes.iter().filter(|n| n.0 == channel).map(|n| (n.1, n.2)).collect();
        let expected: Vec<_> = melody.iter().flat_map(|&m| [("on", m), ("off", m)]).collect();
        assert_eq!(mine, expected, "channel {channel}");
    }
    // The whole stream is in frame order, and events carry their period's frame.
    assert!(run.sent.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(run.events.iter().all(|e| (e.block_frame as u64) < run.frame && e.input >= 1 && e.input <= 2));
    assert!(run.shared.active_notes().iter().all(Option::is_none));
}

#[test]
fn a_period_allocates_nothing_whatever_it_is_told() {
    let mut run = Run::new(3, &[(1, 50), (3, 51)]);
    let a = melody_of(&[40.0, 64.0, 88.0]);
    let b = melody_of(&[57.0, 62.0]);
    let c = noise(a.len(), 0.2, 7);
    // The owed note-offs leave in the first period, with a reader there.
    run.shared.midi_readers.store(true, Ordering::Release);
    let mut made = run.play(&[a.clone(), b.clone(), c.clone()], &[1, 64, 128, 1000, 8192, 77]);
    // Every control message.
    let block = &a[4800..4928];
    for controls in [
        vec![ControlMsg::Set(LiveParam::OnsetDelta, 0.2), ControlMsg::Set(LiveParam::SilenceDb, -50.0)],
        vec![ControlMsg::Midi(false)],
        vec![ControlMsg::Midi(true), ControlMsg::Set(LiveParam::MinConfidence, 0.5)],
        vec![
            ControlMsg::Set(LiveParam::TuningHz, 432.0),
            ControlMsg::Set(LiveParam::ScaleRoot, 2.0),
            ControlMsg::Set(LiveParam::ScaleMode, 3.0),
        ],
        vec![ControlMsg::AllNotesOff],
        vec![ControlMsg::Finish],
    ] {
        made += run.step(&[block, block, block], &controls);
    }
    made += run.play(&[a, b, c], &[128]);
    assert_eq!(made, 0, "the period allocated");
    assert!(run.notes().iter().filter(|n| n.1 == "on").count() >= 5, "{:?}", run.notes());
    assert_eq!(run.sent[..2], [(0, vec![0x80, 50, 0]), (0, vec![0x82, 51, 0])]);
    assert!(!run.shared.owed_pending.load(Ordering::Acquire));
}

#[test]
fn owed_note_offs_wait_for_a_reader_of_the_port() {
    let mut run = Run::new(2, &[(1, 64), (2, 67)]);
    assert!(run.shared.owed_pending.load(Ordering::Acquire));
    let silence = vec![0.0f32; 128];
    for _ in 0..10 {
        run.step(&[&silence, &silence], &[]);
    }
    assert!(run.sent.is_empty(), "note-offs sent to no one: {:?}", run.sent);
    run.shared.midi_readers.store(true, Ordering::Release);
    run.step(&[&silence, &silence], &[]);
    run.step(&[&silence, &silence], &[]);
    assert_eq!(run.sent, vec![(1280, vec![0x80, 64, 0]), (1280, vec![0x81, 67, 0])]);
    assert!(!run.shared.owed_pending.load(Ordering::Acquire));
}

#[test]
fn muting_closes_the_sounding_note_and_finish_stops_the_analysis() {
    let mut run = Run::new(1, &[]);
    let long = tone(69.0, 1.0, 0.3);
    run.play(&[long[..24_000].to_vec()], &[128]);
    assert_eq!(run.notes(), vec![(0, "on", 69)]);
    let block = &long[24_000..24_128];
    run.step(&[block], &[ControlMsg::Midi(false)]);
    assert_eq!(run.notes(), vec![(0, "on", 69), (0, "off", 69)]);
    // Muted: the note goes on in the engine (events) but not on the port.
    run.step(&[block], &[ControlMsg::Midi(true)]);
    run.step(&[block], &[ControlMsg::Finish]);
    assert_eq!(run.shared.notes_off_done.load(Ordering::Acquire), 1);
    let events = run.events.len();
    run.play(&[melody_of(&[60.0])], &[128]);
    assert_eq!(run.events.len(), events, "analysis went on after Finish");
    assert_eq!(run.notes().len(), 2);
}

#[test]
fn owed_note_offs_never_follow_a_new_note_on() {
    // The reader connected, but the graph side has not told the callback yet.
    let mut run = Run::new(1, &[(1, 64)]);
    run.play(&[melody_of(&[67.0])], &[128]);
    assert_eq!(run.notes(), vec![(0, "off", 64), (0, "on", 67), (0, "off", 67)]);
    assert_eq!(run.sent[0].0, run.sent[1].0, "the owed note-off goes with the note-on");
    run.shared.midi_readers.store(true, Ordering::Release);
    run.step(&[&[0.0; 128]], &[]);
    assert_eq!(run.notes().len(), 3, "sent twice: {:?}", run.notes());
}

#[test]
fn the_frame_clock_counts_the_periods_a_client_was_not_run_for() {
    use rust_engine::period::{ClockStep, FrameClock};
    let mut clock = FrameClock::default();
    let steps: Vec<ClockStep> =
        [(0, 128), (128, 128), (384, 128), (576, 128), (960, 128), (900, 128)].map(|(t, n)| clock.step(t, n)).into();
    use ClockStep::*;
    let skipped = |periods, frames| Skipped { periods, frames };
    assert_eq!(steps, [Next, Next, skipped(1, 128), skipped(1, 64), skipped(2, 256), Short]);
    // The 32-bit frame time wraps: still the next period.
    let mut clock = FrameClock::default();
    assert_eq!([clock.step(u32::MAX - 63, 128), clock.step(64, 128)], [Next, Next]);
}

#[test]
fn a_period_the_server_skipped_is_counted_for_the_user() {
    let mut h = Run::new(1, &[]);
    let block = vec![0.0f32; 256];
    h.step(&[&block], &[]);
    h.frame += 3 * 256; // the server ran three periods without the bridge
    assert_eq!(h.step(&[&block], &[]) + h.step(&[&block], &[]), 0, "counting allocates nothing");
    assert_eq!(h.shared.skipped_periods.load(Ordering::Relaxed), 3);
}

/// Clock tick frames, and the beats (sample, next predicted) of input `input`.
fn ticks(run: &Run) -> Vec<u64> {
    run.clocked.iter().filter(|m| m.1 == CLOCK).map(|m| m.0).collect()
}

#[test]
fn the_midi_clock_follows_a_drum_groove_at_24_per_beat_and_allocates_nothing() {
    for bpm in [96.0f32, 128.0] {
        let mut run = Run::new(2, &[]);
        let beat = (60.0 / bpm * 48_000.0) as usize; // as signals::drums places them
        let groove = drums(bpm, 14.0);
        let quiet = vec![0.0f32; groove.len()];
        // The clock follows input 1; input 2 is silent and has no beat.
        let made = run.play(&[groove, quiet], &[128, 256, 1000, 64]);
        assert_eq!(made, 0, "the period allocated");
        let starts: Vec<u64> = run.clocked.iter().filter(|m| m.1 == START).map(|m| m.0).collect();
        assert_eq!(starts.len(), 1, "{bpm}: {:?}", &run.clocked[..5]);
        let t = ticks(&run);
        assert!(t[0] > starts[0]);
        // The rate over the last 8 s: 24 ticks per beat within 1 %.
        let late: Vec<u64> = t.iter().copied().filter(|&f| f > 6 * 48_000).collect();
        let per_tick = (late[late.len() - 1] - late[0]) as f64 / (late.len() - 1) as f64;
        let rate = beat as f64 / 24.0 / per_tick;
        assert!((rate - 1.0).abs() < 0.01, "{bpm}: {rate}");
        // Smooth: from one tick to the next the tick length changes by at most 0.25 ms.
        let gaps: Vec<i64> = late.windows(2).map(|w| (w[1] - w[0]) as i64).collect();
        let worst = gaps.windows(2).map(|w| (w[1] - w[0]).abs()).max().unwrap();
        assert!(worst <= 12, "{bpm}: a tick length changed by {worst} samples");
        // The first tick of a beat falls where the tracker put the beat, within 10 ms.
        let beats: Vec<u64> = run
            .events
            .iter()
            .filter(|e| e.input == 1 && e.event.sample > 6 * 48_000)
            .filter_map(|e| matches!(e.event.data, rust_engine::EventData::Beat { .. }).then_some(e.event.sample))
            .collect();
        assert!(beats.len() > 8);
        for b in &beats[1..] {
            let nearest = late.iter().map(|&f| f.abs_diff(*b)).min().unwrap();
            assert!(nearest < 480, "{bpm}: beat {b} has no tick near it ({nearest})");
        }
        // Silence after the groove: the beat is lost and the clock stops, after its last tick.
        run.play(&[vec![0.0; 5 * 48_000], vec![0.0; 5 * 48_000]], &[128]);
        let last = run.clocked.last().unwrap();
        assert_eq!(last.1, STOP, "{bpm}");
        assert!(ticks(&run).iter().all(|&f| f <= last.0));
        // Never on midi_out.
        assert!(run.sent.iter().all(|(_, b)| b.len() == 3));
    }
}

/// A timebase master's position at `frame`: 120 BPM in 4/4 from bar 1 beat 1,
/// 24000 frames a beat at 48 kHz.
fn transport_at(frame: u64, rolling: bool) -> Transport {
    let at = frame as f64 / 24_000.0;
    let beats = at.floor() as u32;
    let bbt = Bbt {
        bar: beats / 4 + 1,
        beat: beats % 4 + 1,
        tick: at.fract() * 1920.0,
        ticks_per_beat: 1920.0,
        beats_per_bar: 4.0,
        bpm: 120.0,
    };
    Transport { rolling, bbt: Some(bbt) }
}

/// The beat events of a run: (stream sample, place in the bar).
fn beats(run: &Run) -> Vec<(u64, u8)> {
    run.events
        .iter()
        .filter_map(|e| match e.event.data {
            rust_engine::EventData::Beat { beat, .. } => Some((e.event.sample, beat)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_transport_drives_beats_and_clock_when_it_rolls() {
    let mut run = Run::new(1, &[]);
    run.period.set_beat_options(BeatOptions { source: BeatSource::Auto, ..BeatOptions::default() });
    // A tick of 1000 frames.
    let silence_and_roll = |run: &mut Run, periods: usize, rolling: bool| {
        let block = vec![0.0f32; 256];
        for _ in 0..periods {
            run.period.set_transport(transport_at(run.frame, rolling));
            assert_eq!(run.step(&[&block], &[]), 0);
        }
    };
    silence_and_roll(&mut run, 1000, true);
    let beats = beats(&run);
    assert_eq!(beats.len(), 11, "{beats:?}");
    for (i, &(sample, place)) in beats.iter().enumerate() {
        assert_eq!(sample, i as u64 * 24_000);
        assert_eq!(place as usize, i % 4 + 1);
    }
    let t = ticks(&run);
    assert_eq!(t[0], 24_000, "the first tick on the second beat, after Start at the first");
    assert!(t.windows(2).all(|w| w[1] - w[0] == 1000), "{t:?}");
    // Stopped: no beats, and the clock stops two beats after the last.
    silence_and_roll(&mut run, 400, false);
    assert_eq!(run.clocked.last().unwrap(), &(10 * 24_000 + 24_000 + 48_000, STOP));
}

#[test]
fn transport_beats_in_periods_the_client_missed_come_late_and_none_twice() {
    let mut run = Run::new(1, &[]);
    run.period.set_beat_options(BeatOptions { source: BeatSource::Transport, ..BeatOptions::default() });
    let block = vec![0.0f32; 256];
    let mut frame = 0u64; // The server's frame clock; `run.frame` counts only periods the client ran.
    for i in 0..1000u64 {
        // Periods 185-194 (over beat 3, at frame 48000) go by without the client; at 469
        // the server publishes the position of the period before, which held beat 6.
        if !(185..195).contains(&i) {
            let at = if i == 469 { frame - 256 } else { frame };
            run.period.set_transport(transport_at(at, true));
            run.frame = frame;
            run.step(&[&block], &[]);
        }
        frame += 256;
    }
    let got = beats(&run);
    assert_eq!(got.len(), 11, "every beat of the 256000 frames, once: {got:?}");
    assert!(got.iter().enumerate().all(|(i, &(_, place))| place as usize == i % 4 + 1), "{got:?}");
    // Beat 3 fell in the missed periods: it comes at the start of the first period after them.
    assert_eq!(got[2].0, 195 * 256);
    // On the server's frame clock, the others where the transport had them.
    assert!(got.iter().enumerate().all(|(i, &(sample, _))| i == 2 || sample == i as u64 * 24_000), "{got:?}");
    assert_eq!(run.shared.skipped_periods.load(Ordering::Relaxed), 10);
    // A relocation a bar on is no gap to fill: the beats from there on, none late.
    let before = got.len();
    for _ in 0..200 {
        run.period.set_transport(transport_at(frame + 96_000, true));
        run.frame = frame;
        run.step(&[&block], &[]);
        frame += 256;
    }
    let after = &beats(&run)[before..];
    assert_eq!(after.first().map(|b| b.1), Some(4), "{after:?}");
}

#[test]
fn after_periods_the_server_skipped_notes_keep_their_place_in_the_session() {
    // Notes of 0.4 s with 0.2 s gaps; the server skips the client for 20 periods
    // (5120 frames) in the middle of the first note, audio the engine never hears.
    let (x, truth) = melody(&[(60.0, 0.4), (64.0, 0.4), (67.0, 0.4)], 0.2);
    let on_samples = |skip: bool| {
        let mut run = Run::new(1, &[]);
        let mut pos = 0usize;
        while pos + 256 <= x.len() {
            if skip && (40..60).contains(&(pos / 256)) {
                run.frame += 256; // the server's clock runs on; the client is not run
            } else {
                run.step(&[&x[pos..pos + 256]], &[]);
            }
            pos += 256;
        }
        let ons: Vec<u64> = run
            .events
            .iter()
            .filter_map(|e| matches!(e.event.data, rust_engine::EventData::NoteOn { .. }).then_some(e.event.sample))
            .collect();
        (ons, run.shared.skipped_periods.load(Ordering::Relaxed))
    };
    let (whole, none) = on_samples(false);
    let (skipped, twenty) = on_samples(true);
    assert_eq!((none, twenty), (0, 20));
    assert_eq!(whole.len(), truth.len());
    assert_eq!(skipped.len(), truth.len(), "{skipped:?}");
    // The notes after the skip: where they were without it, not 5120 frames early.
    assert_eq!(&skipped[1..], &whole[1..]);
}

/// `periods` periods of 256 frames of silence with the transport rolling, but for those
/// in `skipped`, which the server runs without the client.
fn roll_silence(run: &mut Run, periods: u64, skipped: std::ops::Range<u64>) {
    let block = vec![0.0f32; 256];
    for i in 0..periods {
        if skipped.contains(&i) {
            run.frame += 256;
        } else {
            run.period.set_transport(transport_at(run.frame, true));
            run.step(&[&block], &[]);
        }
    }
}

#[test]
fn the_midi_clock_keeps_its_count_across_periods_the_server_skipped() {
    // The transport at 120 BPM (a tick every 1000 frames); 10 periods of 256 skipped.
    let mut run = Run::new(1, &[]);
    run.period.set_beat_options(BeatOptions { source: BeatSource::Transport, ..BeatOptions::default() });
    roll_silence(&mut run, 1000, 300..310);
    let t = ticks(&run);
    // Every tick from the first beat (24000) to the end (256000), none lost: the ticks
    // due in the skipped periods come at the start of the first period after them.
    assert_eq!(t.len() as u64, (256_000 - 24_000) / 1000, "{t:?}");
    assert!(t.iter().filter(|&&f| f == 310 * 256).count() >= 2, "{t:?}");
    assert!(t.iter().filter(|&&f| f > 310 * 256).all(|f| f % 1000 == 0), "back on the beat's grid: {t:?}");
}

#[test]
fn a_hole_of_zeros_inside_a_note_is_a_dropout_and_the_melodys_own_gaps_are_not() {
    // The melody's notes end with a fade and 150 ms of silence between them: no dropout.
    let x = melody_of(&[60.0, 64.0, 67.0]);
    let mut run = Run::new(1, &[]);
    run.play(std::slice::from_ref(&x), &[256]);
    assert_eq!(run.shared.dropouts.load(Ordering::Relaxed), 0);
    // One period of zeros in the middle of the first note, as a late player leaves on PipeWire.
    let mut holed = x;
    holed[38 * 256..39 * 256].fill(0.0);
    let mut run = Run::new(1, &[]);
    run.play(&[holed], &[256]);
    assert_eq!(run.shared.dropouts.load(Ordering::Relaxed), 1);
}

#[test]
fn after_a_long_stall_the_clock_sends_at_most_a_beat_of_late_ticks() {
    // The transport at 120 BPM (24 ticks a beat, one every 1000 frames); the server
    // runs 400 periods of 256 (102400 frames, over four beats) without the client. A
    // clock that stops on loss would stop there; this one runs on.
    let mut run = Run::new(1, &[]);
    let clock = rust_engine::clock::ClockConfig { stop_on_loss: false };
    run.period.set_beat_options(BeatOptions { source: BeatSource::Transport, clock, ..BeatOptions::default() });
    roll_silence(&mut run, 1200, 300..700);
    let t = ticks(&run);
    let burst = t.iter().filter(|&&f| f == 700 * 256).count();
    let near: Vec<_> = run.clocked.iter().filter(|c| (70_000..190_000).contains(&c.0)).collect();
    assert!((20..=25).contains(&burst), "a beat of late ticks at most, got {burst}: {near:?}");
    assert_eq!(run.shared.midi_lost.load(Ordering::Relaxed), 0);
    assert!(t.iter().filter(|&&f| f > 700 * 256).all(|f| f % 1000 == 0), "back on the beat's grid: {t:?}");
}
