//! Events the engine emits, stamped with sample positions.

use crate::config::MAX_BANDS;

/// What an event says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventData {
    /// Once per hop. `hz` is 0 and `voiced` false when there is no pitch.
    Pitch {
        hz: f32,
        midi: f32,
        confidence: f32,
        voiced: bool,
    },
    /// A detected onset; `strength` is the flux peak above its adaptive threshold.
    Onset {
        strength: f32,
    },
    /// Once per hop: level of the hop, smoothed envelope and its velocity and marking.
    Dynamics {
        rms: f32,
        peak: f32,
        db: f32,
        envelope_db: f32,
        velocity: u8,
        marking: Marking,
    },
    NoteOn {
        note: u8,
        velocity: u8,
    },
    NoteOff {
        note: u8,
    },
    /// Once per hop when enabled: `db` per band in dBFS, `level` in 0..1
    /// (auto-gained, smoothed); only the first `count` entries are used.
    Bands {
        count: u8,
        db: [f32; MAX_BANDS],
        level: [f32; MAX_BANDS],
    },
    /// Once per hop when enabled: spectral shape, and `level` holding
    /// centroid, flatness and rolloff in 0..1 (smoothed).
    Spectrum {
        centroid_hz: f32,
        flatness: f32,
        rolloff_hz: f32,
        level: [f32; 3],
    },
    /// Once per hop when enabled: energy share per pitch class (C first) and
    /// `level`, each class over the largest in 0..1 (smoothed).
    Chroma {
        energy: [f32; 12],
        level: [f32; 12],
    },
    /// A beat: `beat` is its place in the bar (1-based), `next_sample` where
    /// the next one is predicted, so a live output can leave on it.
    Beat {
        beat: u8,
        bpm: f32,
        confidence: f32,
        next_sample: u64,
    },
    /// The tracked tempo, sent on downbeats and when it changes.
    Tempo {
        bpm: f32,
        confidence: f32,
    },
}

/// Dynamic marking of the smoothed envelope, softest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Marking {
    Ppp,
    Pp,
    P,
    Mp,
    Mf,
    F,
    Ff,
    Fff,
}

impl Marking {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ppp => "ppp",
            Self::Pp => "pp",
            Self::P => "p",
            Self::Mp => "mp",
            Self::Mf => "mf",
            Self::F => "f",
            Self::Ff => "ff",
            Self::Fff => "fff",
        }
    }
}

/// One event.
///
/// `sample` is the position (from the start of the stream) of the audio the
/// event describes, already compensated for the analysis delay: a note-on sits
/// at its detected onset. `emit_sample` is the position at which the engine
/// knew it (the end of the hop that produced it), never earlier than `sample`
/// for notes and onsets; a live bridge sends the event at that frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    pub sample: u64,
    pub emit_sample: u64,
    pub data: EventData,
}

impl Event {
    /// The same event `frames` later: its positions (and a beat's next one) moved on.
    pub fn shifted(mut self, frames: u64) -> Self {
        self.sample += frames;
        self.emit_sample += frames;
        if let EventData::Beat { next_sample, .. } = &mut self.data {
            *next_sample += frames;
        }
        self
    }

    /// Short lower-case name used in the JSON-lines schema.
    pub fn kind(&self) -> &'static str {
        match self.data {
            EventData::Pitch { .. } => "pitch",
            EventData::Onset { .. } => "onset",
            EventData::Dynamics { .. } => "dynamics",
            EventData::NoteOn { .. } => "note_on",
            EventData::NoteOff { .. } => "note_off",
            EventData::Bands { .. } => "bands",
            EventData::Spectrum { .. } => "spectrum",
            EventData::Chroma { .. } => "chroma",
            EventData::Beat { .. } => "beat",
            EventData::Tempo { .. } => "tempo",
        }
    }
}
