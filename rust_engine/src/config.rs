//! One configuration object for the whole engine, shared with Python.
//!
//! Every field carries its unit in its name. `validate` is the single place
//! that rejects a bad setting, so the analysers can assume a sane config.

use crate::error::ConfigError;
use crate::scale::SCALE_MODES;

/// Pitch tracking (YIN) settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PitchConfig {
    /// Lowest fundamental searched for, in Hz. Sets the longest lag, hence the window.
    pub fmin_hz: f32,
    /// Highest fundamental searched for, in Hz. Sets the shortest lag.
    pub fmax_hz: f32,
    /// YIN absolute threshold on the cumulative-mean-normalised difference (step 4).
    pub yin_threshold: f32,
    /// Analysis buffer in samples (integration window + longest lag).
    /// 0 derives it from `fmin_hz`: two periods of the lowest pitch.
    pub window: usize,
}

/// Onset detection (spectral flux) settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OnsetConfig {
    /// FFT frame length in samples.
    pub window: usize,
    /// Log compression factor: magnitudes become ln(1 + compression * |X|).
    pub compression: f32,
    /// Added to the moving median of the flux to form the adaptive threshold.
    pub delta: f32,
    /// Length of the moving-median history, in milliseconds.
    pub median_ms: f32,
    /// Minimum interval between two onsets, in milliseconds.
    pub min_ioi_ms: f32,
}

/// Dynamics (level and velocity) settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicsConfig {
    /// Level mapped to velocity 1, in dBFS (RMS).
    pub velocity_floor_db: f32,
    /// Level mapped to velocity 127, in dBFS (RMS).
    pub velocity_ceil_db: f32,
    /// Exponent of the dB-to-velocity curve: 1 is linear in dB, < 1 lifts soft notes.
    pub velocity_curve: f32,
    /// Release time constant of the smoothed envelope, in milliseconds.
    pub envelope_release_ms: f32,
}

/// Note segmentation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteConfig {
    /// Below this hop RMS (dBFS) the input counts as silence: no onset, no note.
    /// Once sound is in, the gate closes only 12 dB lower (hysteresis).
    pub silence_db: f32,
    /// Pitch confidence (1 - YIN aperiodicity) needed to start or hold a note.
    pub min_confidence: f32,
    /// How far past the half-semitone boundary (cents) the pitch must move to change note.
    pub hysteresis_cents: f32,
    /// How long a new pitch must persist before the note changes, in milliseconds.
    pub change_ms: f32,
    /// Shortest note emitted, in milliseconds; also the shortest gap before re-articulation.
    pub min_note_ms: f32,
    /// How long silence or low confidence must last before a note is released, in milliseconds.
    pub release_ms: f32,
    /// For this long after a note-on, another pitch settling without an onset
    /// corrects the note (an octave-wrong or gliding attack) instead of
    /// starting a new one, in milliseconds; 0 turns correction off.
    pub correct_ms: f32,
    /// How far before the pitch settled a slurred note's attack is looked for
    /// (`attack.rs`), in milliseconds. 64 suits instruments, whose slurred
    /// notes rise slowly; a voice gliding between notes wants about 16
    /// (bench/accuracy.py --voices: note F 0.76 -> 0.88).
    pub slur_look_back_ms: f32,
    /// The performer's A4, in Hz: note numbers are read against it (see `scale.rs`).
    pub tuning_hz: f32,
    /// Key of the scale that note numbers snap to, as a pitch class (0 = C .. 11 = B).
    pub scale_root: usize,
    /// Index into `scale::SCALE_MODES`; 0 (chromatic) snaps nothing.
    pub scale_mode: usize,
}

/// Most bands `features.bands` may ask for: events are fixed-size, so the
/// live queue never allocates.
pub const MAX_BANDS: usize = 16;

/// Spectral features for visuals (see `features.rs`). Each kind is computed
/// and emitted only when enabled (1); the live bridge enables the kinds its
/// OSC output asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaturesConfig {
    /// 1 emits a `bands` event per hop, 0 does not.
    pub bands_enabled: u8,
    /// 1 emits a `spectrum` event (centroid, flatness, rolloff) per hop.
    pub spectrum_enabled: u8,
    /// 1 emits a `chroma` event per hop.
    pub chroma_enabled: u8,
    /// Number of log-spaced bands, 1..=`MAX_BANDS`.
    pub bands: usize,
    /// Lower edge of the lowest band, in Hz.
    pub low_hz: f32,
    /// Upper edge of the highest band, in Hz; capped at Nyquist.
    pub high_hz: f32,
    /// Span of the visual band levels below the auto-gain's peak, in dB.
    pub range_db: f32,
    /// Time constant of the auto-gain's falling peak, in milliseconds.
    pub autogain_ms: f32,
    /// Rise time constant of the visual values, in milliseconds (0: instant).
    pub attack_ms: f32,
    /// Fall time constant of the visual values, in milliseconds (0: instant).
    pub release_ms: f32,
}

impl FeaturesConfig {
    /// Whether any feature is computed at all.
    pub fn any_enabled(&self) -> bool {
        self.bands_enabled + self.spectrum_enabled + self.chroma_enabled > 0
    }
}

/// Beat tracking settings (see `beat.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct BeatConfig {
    /// 1 runs the beat tracker, 0 leaves it out.
    pub enabled: u8,
    /// Slowest tempo considered, in BPM.
    pub min_bpm: f32,
    /// Fastest tempo considered, in BPM.
    pub max_bpm: f32,
    /// Centre of the tempo prior, in BPM: between a tempo and its double or
    /// half, the one nearer this wins.
    pub prior_bpm: f32,
    /// Beats in a bar, for the beat's position in it.
    pub beats_per_bar: usize,
}

/// The whole engine's configuration.
///
/// The fields hold the values in use. `hop` and `onset.window` count samples,
/// so unless they were set they follow the sample rate (`follows_rate`):
/// [`EngineConfig::set_sample_rate`] derives them again. By name they read 0
/// while they follow it, as `pitch.window` does, so a file that leaves them
/// at 0 works at any rate.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub sample_rate: u32,
    /// Analysis hop in samples: one pitch and one dynamics event per hop.
    pub hop: usize,
    pub pitch: PitchConfig,
    pub onset: OnsetConfig,
    pub dynamics: DynamicsConfig,
    pub notes: NoteConfig,
    pub features: FeaturesConfig,
    pub beat: BeatConfig,
    pub follows_rate: FollowsRate,
}

/// Which sample-counted settings were left to the sample rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowsRate {
    pub hop: bool,
    pub onset_window: bool,
}

/// The rate at which the derived hop and onset window take their reference
/// values (128 and 1024 samples, about 2.7 and 21 ms).
const REFERENCE_RATE: f32 = 48_000.0;
const REFERENCE_HOP: usize = 128;
const REFERENCE_ONSET_WINDOW: usize = 1024;
/// Longest pitch window at the reference rate; it doubles with each octave of
/// rate above it, so two periods of the default lowest pitch fit at 384 kHz.
const REFERENCE_MAX_PITCH_WINDOW: usize = 16_384;

/// Octaves from the reference rate to `sample_rate`, rounded: 0 at 44.1 and
/// 48 kHz (so their settings never move), 1 at 88.2 / 96 kHz, -3 at 8 kHz.
fn rate_octaves(sample_rate: u32) -> i32 {
    (sample_rate as f32 / REFERENCE_RATE).log2().round() as i32
}

/// `reference` samples at 48 kHz scaled by whole octaves of rate, within `lo..=hi`.
fn scaled(reference: usize, sample_rate: u32, lo: usize, hi: usize) -> usize {
    let octaves = rate_octaves(sample_rate);
    let shift = octaves.unsigned_abs().min(16);
    let value = if octaves >= 0 { reference << shift } else { reference >> shift };
    value.clamp(lo, hi)
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            hop: 128,
            pitch: PitchConfig { fmin_hz: 40.0, fmax_hz: 2000.0, yin_threshold: 0.2, window: 0 },
            onset: OnsetConfig { window: 1024, compression: 10.0, delta: 0.02, median_ms: 60.0, min_ioi_ms: 80.0 },
            dynamics: DynamicsConfig {
                velocity_floor_db: -54.0,
                velocity_ceil_db: -6.0,
                velocity_curve: 1.0,
                envelope_release_ms: 150.0,
            },
            notes: NoteConfig {
                silence_db: -50.0,
                min_confidence: 0.8,
                hysteresis_cents: 10.0,
                change_ms: 40.0,
                min_note_ms: 40.0,
                release_ms: 20.0,
                correct_ms: 100.0,
                slur_look_back_ms: 64.0,
                tuning_hz: 440.0,
                scale_root: 0,
                scale_mode: 0,
            },
            features: FeaturesConfig {
                bands_enabled: 0,
                spectrum_enabled: 0,
                chroma_enabled: 0,
                bands: 8,
                low_hz: 40.0,
                high_hz: 16_000.0,
                range_db: 60.0,
                autogain_ms: 5000.0,
                attack_ms: 10.0,
                release_ms: 150.0,
            },
            beat: BeatConfig { enabled: 1, min_bpm: 60.0, max_bpm: 180.0, prior_bpm: 120.0, beats_per_bar: 4 },
            follows_rate: FollowsRate { hop: true, onset_window: true },
        }
    }
}

/// Largest block `process` accepts at once; longer input is split by the caller
/// (the Python binding does it) so the event buffer can be sized up front.
pub const MAX_BLOCK: usize = 8192;

impl EngineConfig {
    /// Samples per millisecond, for converting the `_ms` settings.
    pub fn samples_per_ms(&self) -> f32 {
        self.sample_rate as f32 / 1000.0
    }

    /// Converts a duration in milliseconds to a whole number of hops (at least 1).
    pub fn ms_to_hops(&self, ms: f32) -> usize {
        ((ms * self.samples_per_ms() / self.hop as f32).round() as usize).max(1)
    }

    /// Sets the sample rate and derives the sample-counted settings that follow it.
    pub fn set_sample_rate(&mut self, sample_rate: u32) {
        self.sample_rate = sample_rate;
        if self.follows_rate.hop {
            self.hop = scaled(REFERENCE_HOP, sample_rate, 16, 4096);
        }
        if self.follows_rate.onset_window {
            self.onset.window = scaled(REFERENCE_ONSET_WINDOW, sample_rate, 128, 8192);
        }
    }

    /// Longest pitch window allowed at this rate (see `REFERENCE_MAX_PITCH_WINDOW`).
    pub fn max_pitch_window(&self) -> usize {
        scaled(REFERENCE_MAX_PITCH_WINDOW, self.sample_rate, REFERENCE_MAX_PITCH_WINDOW, usize::MAX)
    }

    /// The pitch analysis buffer length actually used.
    pub fn pitch_window(&self) -> usize {
        if self.pitch.window > 0 {
            self.pitch.window
        } else {
            2 * (self.sample_rate as f32 / self.pitch.fmin_hz).ceil() as usize
        }
    }

    /// Rejects every setting the analysers could not work with, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn check(ok: bool, key: &'static str, reason: &'static str) -> Result<(), ConfigError> {
            if ok {
                Ok(())
            } else {
                Err(ConfigError { key, reason: reason.into() })
            }
        }
        fn check_live(param: LiveParam, value: f32) -> Result<(), ConfigError> {
            let spec = param.spec();
            if value.is_finite() && (spec.lo..=spec.hi).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError {
                    key: spec.key,
                    reason: format!("must be {}..{}{}", spec.lo, spec.hi, spec.unit).into(),
                })
            }
        }
        let sr = self.sample_rate as f32;
        check((8_000..=384_000).contains(&self.sample_rate), "sample_rate", "must be 8000..384000 Hz")?;
        check((16..=4096).contains(&self.hop), "hop", "must be 16..4096 samples")?;
        let p = &self.pitch;
        check(p.fmin_hz.is_finite() && p.fmin_hz >= 20.0, "pitch.fmin_hz", "must be >= 20 Hz")?;
        check(
            p.fmax_hz.is_finite() && p.fmax_hz > p.fmin_hz && p.fmax_hz <= sr / 4.0,
            "pitch.fmax_hz",
            "must be above fmin_hz and at most a quarter of the sample rate",
        )?;
        check(p.yin_threshold > 0.0 && p.yin_threshold < 1.0, "pitch.yin_threshold", "must be in (0, 1)")?;
        let w = self.pitch_window();
        let window_ok = (64..=self.max_pitch_window()).contains(&w) && w >= self.hop;
        if self.pitch.window == 0 {
            // Derived from fmin_hz: name the setting the user chose.
            check(
                window_ok,
                "pitch.fmin_hz",
                "gives a pitch window (two periods) shorter than 64 samples or the hop, or longer than \
                 16384 samples (doubled for each octave of rate above 48 kHz)",
            )?;
        }
        check(
            window_ok,
            "pitch.window",
            "must be 64..16384 samples (doubled for each octave of rate above 48 kHz) and at least the hop",
        )?;
        check(
            (w / 2) as f32 >= sr / p.fmax_hz * 2.0,
            "pitch.window",
            "too short for fmax_hz: half the window must hold two periods",
        )?;
        let o = &self.onset;
        check(
            o.window.is_power_of_two() && (128..=8192).contains(&o.window) && o.window >= self.hop,
            "onset.window",
            "must be a power of two in 128..8192 and at least the hop",
        )?;
        check(o.compression.is_finite() && o.compression > 0.0, "onset.compression", "must be > 0")?;
        check_live(LiveParam::OnsetDelta, o.delta)?;
        check(
            o.median_ms.is_finite() && (0.0..=2000.0).contains(&o.median_ms),
            "onset.median_ms",
            "must be 0..2000 ms",
        )?;
        check(
            o.min_ioi_ms.is_finite() && (0.0..=2000.0).contains(&o.min_ioi_ms),
            "onset.min_ioi_ms",
            "must be 0..2000 ms",
        )?;
        let d = &self.dynamics;
        check(
            d.velocity_floor_db.is_finite() && d.velocity_floor_db >= -120.0,
            "dynamics.velocity_floor_db",
            "must be >= -120 dB",
        )?;
        check(
            d.velocity_ceil_db.is_finite() && d.velocity_ceil_db > d.velocity_floor_db && d.velocity_ceil_db <= 0.0,
            "dynamics.velocity_ceil_db",
            "must be above velocity_floor_db and <= 0 dB",
        )?;
        check(
            d.velocity_curve.is_finite() && (0.1..=10.0).contains(&d.velocity_curve),
            "dynamics.velocity_curve",
            "must be 0.1..10",
        )?;
        check(
            d.envelope_release_ms.is_finite() && (1.0..=10_000.0).contains(&d.envelope_release_ms),
            "dynamics.envelope_release_ms",
            "must be 1..10000 ms",
        )?;
        let n = &self.notes;
        check_live(LiveParam::SilenceDb, n.silence_db)?;
        check_live(LiveParam::MinConfidence, n.min_confidence)?;
        check(
            n.hysteresis_cents.is_finite() && (0.0..=49.0).contains(&n.hysteresis_cents),
            "notes.hysteresis_cents",
            "must be 0..49 cents",
        )?;
        for (v, key) in [
            (n.change_ms, "notes.change_ms"),
            (n.min_note_ms, "notes.min_note_ms"),
            (n.release_ms, "notes.release_ms"),
            (n.correct_ms, "notes.correct_ms"),
        ] {
            check(v.is_finite() && (0.0..=2000.0).contains(&v), key, "must be 0..2000 ms")?;
        }
        check(
            n.slur_look_back_ms.is_finite() && (0.0..=200.0).contains(&n.slur_look_back_ms),
            "notes.slur_look_back_ms",
            "must be 0..200 ms",
        )?;
        check_live(LiveParam::TuningHz, n.tuning_hz)?;
        check_live(LiveParam::ScaleRoot, n.scale_root as f32)?;
        check_live(LiveParam::ScaleMode, n.scale_mode as f32).map_err(|e| ConfigError {
            reason: format!("{} ({})", e.reason, SCALE_MODES.map(|(name, _)| name).join(", ")).into(),
            ..e
        })?;
        let f = &self.features;
        for (v, key) in [
            (f.bands_enabled, "features.bands_enabled"),
            (f.spectrum_enabled, "features.spectrum_enabled"),
            (f.chroma_enabled, "features.chroma_enabled"),
        ] {
            check(v <= 1, key, "must be 0 (off) or 1 (on)")?;
        }
        check((1..=MAX_BANDS).contains(&f.bands), "features.bands", "must be 1..16")?;
        check(
            f.low_hz.is_finite() && f.low_hz >= 10.0 && f.low_hz < sr / 4.0,
            "features.low_hz",
            "must be at least 10 Hz and below a quarter of the sample rate",
        )?;
        check(
            f.high_hz.is_finite() && f.high_hz > f.low_hz * 2.0 && f.high_hz <= 192_000.0,
            "features.high_hz",
            "must be above twice low_hz and at most 192000 Hz (capped at Nyquist)",
        )?;
        check(f.range_db.is_finite() && (6.0..=120.0).contains(&f.range_db), "features.range_db", "must be 6..120 dB")?;
        check(
            f.autogain_ms.is_finite() && (100.0..=600_000.0).contains(&f.autogain_ms),
            "features.autogain_ms",
            "must be 100..600000 ms",
        )?;
        for (v, key) in [(f.attack_ms, "features.attack_ms"), (f.release_ms, "features.release_ms")] {
            check(v.is_finite() && (0.0..=10_000.0).contains(&v), key, "must be 0..10000 ms")?;
        }
        let b = &self.beat;
        check(b.enabled <= 1, "beat.enabled", "must be 0 or 1")?;
        check(b.min_bpm.is_finite() && (20.0..=300.0).contains(&b.min_bpm), "beat.min_bpm", "must be 20..300 BPM")?;
        check(
            b.max_bpm.is_finite() && b.max_bpm >= b.min_bpm + 10.0 && b.max_bpm <= 400.0,
            "beat.max_bpm",
            "must be at least min_bpm + 10 and at most 400 BPM",
        )?;
        check(
            b.prior_bpm.is_finite() && (b.min_bpm..=b.max_bpm).contains(&b.prior_bpm),
            "beat.prior_bpm",
            "must be within min_bpm..max_bpm",
        )?;
        check((1..=16).contains(&b.beats_per_bar), "beat.beats_per_bar", "must be 1..16")?;
        Ok(())
    }
}

/// How a setting is read and written through its dotted name.
struct Field {
    key: &'static str,
    whole: bool,
    /// What the setting does, for the commented config file and the UI.
    doc: &'static str,
    get: fn(&EngineConfig) -> f64,
    set: fn(&mut EngineConfig, f64),
}

macro_rules! fields {
    ($( $key:literal, $whole:literal, $($path:ident).+ as $ty:ty, $doc:literal; )*) => {
        [$( Field {
            key: $key,
            whole: $whole,
            doc: $doc,
            get: |c| c.$($path).+ as f64,
            set: |c, v| c.$($path).+ = v as $ty,
        }, )*]
    };
}

/// The single table of settings: the TOML file, the Python dict, the
/// generated defaults and their comments all go through it, in this order.
const FIELDS: [Field; 41] = fields! {
    "sample_rate", true, sample_rate as u32, "offline only: the live bridge runs at the JACK server's rate";
    "hop", true, hop as usize,
        "analysis hop in samples: one pitch and one dynamics event per hop; 0 follows the sample rate (128 at 44.1/48 kHz, doubling per octave of rate)";
    "pitch.fmin_hz", false, pitch.fmin_hz as f32, "lowest pitch searched (sets the window: two periods)";
    "pitch.fmax_hz", false, pitch.fmax_hz as f32, "highest pitch searched";
    "pitch.yin_threshold", false, pitch.yin_threshold as f32, "YIN absolute threshold: lower is stricter";
    "pitch.window", true, pitch.window as usize, "analysis buffer in samples; 0 derives it from fmin_hz";
    "onset.window", true, onset.window as usize,
        "spectral flux FFT size (power of two); 0 follows the sample rate (1024 at 44.1/48 kHz, doubling per octave of rate)";
    "onset.compression", false, onset.compression as f32, "log compression of magnitudes";
    "onset.delta", false, onset.delta as f32,
        "onset sensitivity: threshold above the moving median (lower is more sensitive)";
    "onset.median_ms", false, onset.median_ms as f32, "moving median length";
    "onset.min_ioi_ms", false, onset.min_ioi_ms as f32, "minimum time between onsets";
    "dynamics.velocity_floor_db", false, dynamics.velocity_floor_db as f32, "RMS level (dBFS) given velocity 1";
    "dynamics.velocity_ceil_db", false, dynamics.velocity_ceil_db as f32, "RMS level (dBFS) given velocity 127";
    "dynamics.velocity_curve", false, dynamics.velocity_curve as f32,
        "exponent of the dB-to-velocity curve (<1 lifts soft notes)";
    "dynamics.envelope_release_ms", false, dynamics.envelope_release_ms as f32, "release of the smoothed envelope";
    "notes.silence_db", false, notes.silence_db as f32,
        "silence gate: quieter hops start no notes; open ones end 12 dB lower";
    "notes.min_confidence", false, notes.min_confidence as f32, "pitch confidence needed for a note (0..1)";
    "notes.hysteresis_cents", false, notes.hysteresis_cents as f32,
        "how far past the half-semitone a pitch must move to change note";
    "notes.change_ms", false, notes.change_ms as f32, "how long a new pitch must last to change note";
    "notes.min_note_ms", false, notes.min_note_ms as f32, "shortest note";
    "notes.release_ms", false, notes.release_ms as f32, "silence or low confidence this long ends a note";
    "notes.correct_ms", false, notes.correct_ms as f32,
        "a new pitch settling this soon after a note-on corrects it (0: never)";
    "notes.slur_look_back_ms", false, notes.slur_look_back_ms as f32,
        "how far before a slurred note's pitch settled its attack is looked for: 64 for instruments, about 16 for a voice's glides";
    "notes.tuning_hz", false, notes.tuning_hz as f32,
        "the performer's A4 in Hz (400..480): note numbers are read against it; pitch and bend keep the heard pitch";
    "notes.scale_root", true, notes.scale_root as usize, "key of the scale note numbers snap to: 0 = C, 1 = C#, ... 11 = B";
    "notes.scale_mode", true, notes.scale_mode as usize,
        "scale note numbers snap to: 0 chromatic (none), 1 major, 2 minor, 3 dorian, 4 phrygian, 5 lydian, 6 mixolydian, 7 locrian, 8 harmonic_minor, 9 major_pentatonic, 10 minor_pentatonic";
    "features.bands_enabled", true, features.bands_enabled as u8,
        "1 emits band levels each hop (the live bridge turns it on for [osc] bands)";
    "features.spectrum_enabled", true, features.spectrum_enabled as u8,
        "1 emits centroid, flatness and rolloff each hop (on for [osc] spectrum)";
    "features.chroma_enabled", true, features.chroma_enabled as u8,
        "1 emits a 12-bin chroma each hop (on for [osc] chroma)";
    "features.bands", true, features.bands as usize, "number of log-spaced bands (1..16)";
    "features.low_hz", false, features.low_hz as f32, "lower edge of the lowest band";
    "features.high_hz", false, features.high_hz as f32, "upper edge of the highest band (capped at Nyquist)";
    "features.range_db", false, features.range_db as f32,
        "visual band levels span this many dB below the auto-gain's peak";
    "features.autogain_ms", false, features.autogain_ms as f32,
        "time constant of the auto-gain's falling peak (longer: slower to lift a quiet passage)";
    "features.attack_ms", false, features.attack_ms as f32, "rise time of the 0..1 visual values (0: instant)";
    "features.release_ms", false, features.release_ms as f32, "fall time of the 0..1 visual values (0: instant)";
    "beat.enabled", true, beat.enabled as u8, "1 tracks the beat and tempo (beat and tempo events), 0 does not";
    "beat.min_bpm", false, beat.min_bpm as f32, "slowest tempo considered (20..300 BPM)";
    "beat.max_bpm", false, beat.max_bpm as f32, "fastest tempo considered (at least min_bpm + 10, at most 400 BPM)";
    "beat.prior_bpm", false, beat.prior_bpm as f32,
        "preferred tempo: of a tempo and its double or half the one nearer this wins (within min..max)";
    "beat.beats_per_bar", true, beat.beats_per_bar as usize, "beats in a bar, for the beat's place in it (1..16)";
};

/// The settings that may change while the engine runs (from the UI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveParam {
    OnsetDelta,
    SilenceDb,
    MinConfidence,
    TuningHz,
    ScaleRoot,
    ScaleMode,
}

/// A live-tunable setting and its range: `validate` and every UI read it here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveSpec {
    pub param: LiveParam,
    pub key: &'static str,
    pub lo: f32,
    pub hi: f32,
    /// Unit for messages (" dB"), empty for plain numbers.
    pub unit: &'static str,
}

/// Every live-tunable setting, in the order a UI lists them.
pub const LIVE_PARAMS: [LiveSpec; 6] = [
    LiveSpec { param: LiveParam::OnsetDelta, key: "onset.delta", lo: 0.0, hi: 1.0, unit: "" },
    LiveSpec { param: LiveParam::SilenceDb, key: "notes.silence_db", lo: -120.0, hi: 0.0, unit: " dB" },
    LiveSpec { param: LiveParam::MinConfidence, key: "notes.min_confidence", lo: 0.0, hi: 1.0, unit: "" },
    // A little under a semitone either side of 440 Hz.
    LiveSpec { param: LiveParam::TuningHz, key: "notes.tuning_hz", lo: 400.0, hi: 480.0, unit: " Hz" },
    LiveSpec { param: LiveParam::ScaleRoot, key: "notes.scale_root", lo: 0.0, hi: 11.0, unit: "" },
    LiveSpec {
        param: LiveParam::ScaleMode,
        key: "notes.scale_mode",
        lo: 0.0,
        hi: (SCALE_MODES.len() - 1) as f32,
        unit: "",
    },
];

impl LiveParam {
    pub fn from_key(key: &str) -> Option<Self> {
        LIVE_PARAMS.iter().find(|s| s.key == key).map(|s| s.param)
    }

    pub fn spec(self) -> &'static LiveSpec {
        LIVE_PARAMS.iter().find(|s| s.param == self).expect("every LiveParam is in LIVE_PARAMS")
    }

    pub fn key(self) -> &'static str {
        self.spec().key
    }
}

/// Result of setting a value by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    UnknownKey,
    Invalid(ConfigError),
}

impl EngineConfig {
    /// Every setting's dotted name, in file order.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        FIELDS.iter().map(|f| f.key)
    }

    /// A setting by its dotted name (`"pitch.fmin_hz"`); 0 for a setting
    /// that follows the sample rate.
    pub fn get(&self, key: &str) -> Option<f64> {
        let field = FIELDS.iter().find(|f| f.key == key)?;
        Some(if self.follows_rate_flag(key).is_some_and(|f| f) { 0.0 } else { (field.get)(self) })
    }

    /// What a setting does, by its dotted name.
    pub fn doc(key: &str) -> Option<&'static str> {
        FIELDS.iter().find(|f| f.key == key).map(|f| f.doc)
    }

    /// Whether the setting `key` follows the sample rate, for the two that can.
    fn follows_rate_flag(&self, key: &str) -> Option<bool> {
        match key {
            "hop" => Some(self.follows_rate.hop),
            "onset.window" => Some(self.follows_rate.onset_window),
            _ => None,
        }
    }

    /// Whether a setting takes whole numbers only.
    pub fn is_whole(key: &str) -> bool {
        FIELDS.iter().any(|f| f.key == key && f.whole)
    }

    /// Sets one value by name; range checks are left to `validate`, but the
    /// type (whole, finite, non-negative for counts) is checked here.
    pub fn set(&mut self, key: &str, value: f64) -> Result<(), SetError> {
        let field = FIELDS.iter().find(|f| f.key == key).ok_or(SetError::UnknownKey)?;
        if !value.is_finite() {
            return Err(SetError::Invalid(ConfigError { key: field.key, reason: "must be a finite number".into() }));
        }
        if field.whole && (value.fract() != 0.0 || !(0.0..=u32::MAX as f64).contains(&value)) {
            return Err(SetError::Invalid(ConfigError {
                key: field.key,
                reason: "must be a whole number >= 0".into(),
            }));
        }
        match field.key {
            "sample_rate" => self.set_sample_rate(value as u32),
            "hop" => {
                self.follows_rate.hop = value == 0.0;
                (field.set)(self, value);
                self.set_sample_rate(self.sample_rate);
            }
            "onset.window" => {
                self.follows_rate.onset_window = value == 0.0;
                (field.set)(self, value);
                self.set_sample_rate(self.sample_rate);
            }
            _ => (field.set)(self, value),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        EngineConfig::default().validate().unwrap();
        assert_eq!(EngineConfig::default().pitch_window(), 2400);
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c = EngineConfig::default();
        c.pitch.fmax_hz = 10.0;
        assert_eq!(c.validate().unwrap_err().key, "pitch.fmax_hz");
        let mut c = EngineConfig::default();
        c.onset.window = 1000;
        assert_eq!(c.validate().unwrap_err().key, "onset.window");
        let mut c = EngineConfig::default();
        c.notes.min_confidence = f32::NAN;
        assert_eq!(c.validate().unwrap_err().key, "notes.min_confidence");
    }

    #[test]
    fn every_key_round_trips_by_name() {
        let defaults = EngineConfig::default();
        let mut c = EngineConfig::default();
        for key in EngineConfig::keys() {
            let v = defaults.get(key).unwrap();
            c.set(key, v).unwrap();
            assert_eq!(c.get(key), Some(v), "{key}");
        }
        assert_eq!(c, defaults);
        assert_eq!(c.set("pitch.nope", 1.0), Err(SetError::UnknownKey));
        assert!(matches!(c.set("hop", 1.5), Err(SetError::Invalid(_))));
        assert!(EngineConfig::keys().all(|k| EngineConfig::doc(k).is_some_and(|d| !d.is_empty())));
    }

    #[test]
    fn unset_sample_counts_follow_the_rate() {
        let at = |sr: u32| {
            let mut c = EngineConfig::default();
            c.set("sample_rate", sr as f64).unwrap();
            c.validate().unwrap_or_else(|e| panic!("{sr} Hz: {e}"));
            (c.hop, c.onset.window, c.pitch_window())
        };
        // 44.1 and 48 kHz keep the figures every benchmark was measured with.
        assert_eq!(at(48_000), (128, 1024, 2400));
        assert_eq!(at(44_100), (128, 1024, 2206));
        assert_eq!(at(8_000), (16, 128, 400));
        assert_eq!(at(22_050), (64, 512, 1104));
        assert_eq!(at(96_000), (256, 2048, 4800));
        assert_eq!(at(192_000), (512, 4096, 9600));
        assert_eq!(at(384_000), (1024, 8192, 19_200));
        // Read by name they are 0 (following), and a set value stays put.
        let mut c = EngineConfig::default();
        assert_eq!(c.get("hop"), Some(0.0));
        c.set("hop", 256.0).unwrap();
        c.set("sample_rate", 8000.0).unwrap();
        assert_eq!((c.hop, c.get("hop"), c.onset.window, c.get("onset.window")), (256, Some(256.0), 128, Some(0.0)));
    }

    #[test]
    fn live_ranges_are_the_validated_ranges() {
        for spec in LIVE_PARAMS {
            assert_eq!(LiveParam::from_key(spec.key), Some(spec.param));
            assert_eq!(spec.param.key(), spec.key);
            // Just outside the range: a step of the setting's kind (whole numbers take whole steps).
            let out = if EngineConfig::is_whole(spec.key) { 1.0 } else { 0.01 };
            for (v, ok) in [(spec.lo, true), (spec.hi, true), (spec.lo - out, false), (spec.hi + out, false)] {
                let mut c = EngineConfig::default();
                if v < 0.0 && EngineConfig::is_whole(spec.key) {
                    assert!(c.set(spec.key, v as f64).is_err(), "{} = {v}", spec.key);
                    continue;
                }
                c.set(spec.key, v as f64).unwrap();
                assert_eq!(c.validate().is_ok(), ok, "{} = {v}", spec.key);
                if !ok {
                    assert_eq!(c.validate().unwrap_err().key, spec.key);
                }
            }
        }
    }

    #[test]
    fn a_derived_window_names_fmin() {
        let mut c = EngineConfig::default();
        c.set("sample_rate", 8_000.0).unwrap();
        c.pitch.fmin_hz = 400.0; // two periods: 40 samples
        assert_eq!(c.validate().unwrap_err().key, "pitch.fmin_hz");
        c.pitch.window = 40;
        assert_eq!(c.validate().unwrap_err().key, "pitch.window");
    }
}
