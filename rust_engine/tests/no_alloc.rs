//! `Analyzer::process` must not touch the heap once constructed: a counting
//! global allocator proves it over a melody, silence, noise, drums (the beat
//! tracker) and odd block sizes.

mod signals;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rust_engine::{Analyzer, EngineConfig};
use signals::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn process_allocates_nothing_after_construction() {
    let (mut x, _) = melody(&[(40.0, 0.3), (64.0, 0.2), (64.0, 0.2), (88.0, 0.2)], 0.05);
    // A retracted attack and a slurred change take the corrector's and the attack finder's paths.
    x.extend(octave_low_attack(48.0));
    x.extend(crossfade(57.0, 62.0, 0.3, 0.06, 0.6, 0.3));
    // A note re-attacked straight after another takes the probes' change path.
    x.extend(tone(60.0, 0.2, 0.3));
    x.extend(tone(52.0, 0.2, 0.3));
    x.extend(noise(48_000, 0.2, 3));
    x.push(f32::NAN);
    // Drums long enough for the beat tracker to lock and report beats.
    x.extend(drums(120.0, 8.0));
    // Every spectral feature on, so their path is counted too.
    let mut cfg = EngineConfig::default();
    for key in ["features.bands_enabled", "features.spectrum_enabled", "features.chroma_enabled"] {
        cfg.set(key, 1.0).unwrap();
    }
    let mut an = Analyzer::new(cfg).unwrap();
    let mut out = Vec::with_capacity(an.max_events(8192));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut pos = 0;
    let mut notes_seen = 0;
    let mut features_seen = 0;
    let mut beats_seen = 0;
    for b in [1usize, 64, 128, 1000, 8192, 77].iter().cycle() {
        if pos >= x.len() {
            break;
        }
        let end = (pos + b).min(x.len());
        out.clear();
        an.process(&x[pos..end], &mut out).unwrap();
        notes_seen += out.iter().filter(|e| e.kind() == "note_on").count();
        features_seen += out.iter().filter(|e| e.kind() == "chroma").count();
        beats_seen += out.iter().filter(|e| e.kind() == "beat").count();
        pos = end;
    }
    out.clear();
    an.all_notes_off(&mut out);
    an.flush(&mut out);
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), before, "the engine allocated while processing");
    assert!(notes_seen >= 8, "{notes_seen} note-ons");
    assert!(features_seen > 1000, "{features_seen} feature events");
    assert!(beats_seen >= 4, "{beats_seen} beats");
}
