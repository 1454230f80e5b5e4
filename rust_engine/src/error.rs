//! Engine errors: construction errors are separate from processing errors,
//! and both carry the data a caller needs to say what went wrong.

use std::borrow::Cow;
use std::fmt;

/// A configuration value the engine cannot work with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted name of the offending setting, as in the TOML file (`pitch.fmin_hz`).
    pub key: &'static str,
    /// What is wrong, e.g. "must be 0..1"; built only when a setting is refused.
    pub reason: Cow<'static, str>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// A block the engine refuses to process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessError {
    BlockTooLong { max: usize, actual: usize },
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BlockTooLong { max, actual } => {
                write!(f, "block of {actual} frames is longer than the maximum of {max}")
            }
        }
    }
}

impl std::error::Error for ProcessError {}
