//! daw-bridge's analysis engine: streaming monophonic pitch (YIN), onsets
//! (spectral flux), dynamics and note segmentation over mono f32 blocks of any
//! length, with events stamped at exact sample positions.
//!
//! Everything is allocated in [`Analyzer::new`]; [`Analyzer::process`] only
//! computes. The Python bindings live in `py` behind the `python` feature.

pub mod analyzer;
pub mod attack;
pub mod config;
pub mod dynamics;
pub mod error;
pub mod event;
pub mod live;
pub mod notes;
pub mod onset;
pub mod pitch;
pub mod voicing;

#[cfg(feature = "python")]
mod py;

pub use analyzer::Analyzer;
pub use config::EngineConfig;
pub use error::{ConfigError, ProcessError};
pub use event::{Event, EventData, Marking};
