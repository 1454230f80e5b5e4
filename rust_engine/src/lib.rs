//! daw-bridge's analysis engine: streaming monophonic pitch (YIN), onsets
//! (spectral flux), dynamics and note segmentation over mono f32 blocks of any
//! length, with events stamped at exact sample positions.
//!
//! Everything is allocated in [`Analyzer::new`]; [`Analyzer::process`] only
//! computes. [`period::Period`] is one period of the live bridge without JACK;
//! the JACK clients (`live`, the bridge, and `player`, the test and demo
//! player) sit behind the `jack` feature, so the DSP builds and tests without
//! libjack. The Python bindings live in `py` behind the `python` feature.

pub mod analyzer;
pub mod attack;
pub mod beat;
pub mod clock;
pub mod config;
pub mod dynamics;
pub mod error;
pub mod event;
pub mod features;
#[cfg(feature = "jack")]
pub mod live;
pub mod notes;
pub mod onset;
pub mod period;
pub mod pitch;
#[cfg(feature = "jack")]
pub mod player;
pub mod scale;
pub mod voicing;

#[cfg(feature = "python")]
mod py;

pub use analyzer::Analyzer;
pub use config::EngineConfig;
pub use error::{ConfigError, ProcessError};
pub use event::{Event, EventData, Marking};
