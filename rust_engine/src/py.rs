//! Python bindings: every PyO3 line of the crate lives here.

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};

use crate::analyzer::Analyzer;
use crate::config::{EngineConfig, SetError, MAX_BLOCK};
use crate::event::{Event, EventData};

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Sets one value from Python, with the errors a user can act on.
fn set_value(cfg: &mut EngineConfig, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if value.is_instance_of::<PyBool>() {
        return Err(value_error(format!("{key}: must be a number, not a boolean")));
    }
    let number: f64 = value.extract().map_err(|_| value_error(format!("{key}: must be a number")))?;
    cfg.set(key, number).map_err(|e| match e {
        SetError::UnknownKey => value_error(format!("unknown key '{key}'")),
        SetError::Invalid(e) => value_error(e),
    })
}

#[pyclass(name = "EngineConfig", module = "rust_engine")]
#[derive(Clone)]
struct PyEngineConfig {
    inner: EngineConfig,
}

#[pymethods]
impl PyEngineConfig {
    #[new]
    #[pyo3(signature = (values = None))]
    fn new(values: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut cfg = EngineConfig::default();
        for (name, value) in values.into_iter().flat_map(|d| d.iter()) {
            let name: String = name.extract().map_err(|_| value_error("config keys must be strings"))?;
            match value.cast::<PyDict>() {
                Ok(section) => {
                    for (key, value) in section.iter() {
                        let key: String = key.extract().map_err(|_| value_error("config keys must be strings"))?;
                        set_value(&mut cfg, &format!("{name}.{key}"), &value)?;
                    }
                }
                Err(_) => set_value(&mut cfg, &name, &value)?,
            }
        }
        cfg.validate().map_err(value_error)?;
        Ok(Self { inner: cfg })
    }

    #[staticmethod]
    fn defaults<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        to_dict(py, &EngineConfig::default())
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        to_dict(py, &self.inner)
    }

    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate
    }

    #[getter]
    fn hop(&self) -> usize {
        self.inner.hop
    }

    fn __repr__(&self) -> String {
        format!("EngineConfig(sample_rate={}, hop={})", self.inner.sample_rate, self.inner.hop)
    }
}

/// The settings as a nested dict, whole-number settings as ints.
fn to_dict<'py>(py: Python<'py>, cfg: &EngineConfig) -> PyResult<Bound<'py, PyDict>> {
    let root = PyDict::new(py);
    for key in EngineConfig::keys() {
        let value = cfg.get(key).expect("key from the table");
        let (dict, leaf) = match key.split_once('.') {
            Some((section, leaf)) => {
                let sub = match root.get_item(section)? {
                    Some(existing) => existing.cast_into::<PyDict>()?,
                    None => {
                        let sub = PyDict::new(py);
                        root.set_item(section, &sub)?;
                        sub
                    }
                };
                (sub, leaf)
            }
            None => (root.clone(), key),
        };
        if EngineConfig::is_whole(key) {
            dict.set_item(leaf, value as u64)?;
        } else {
            // Settings are f32 inside; round-trip through the shortest f32 text.
            dict.set_item(leaf, format!("{}", value as f32).parse::<f64>().unwrap_or(value))?;
        }
    }
    Ok(root)
}

#[pyclass(name = "Event", module = "rust_engine", frozen, get_all)]
struct PyEvent {
    kind: &'static str,
    sample: u64,
    emit_sample: u64,
    t: f64,
    hz: f32,
    midi: f32,
    confidence: f32,
    voiced: bool,
    strength: f32,
    rms: f32,
    peak: f32,
    db: f32,
    envelope_db: f32,
    velocity: u8,
    marking: &'static str,
    note: u8,
}

impl PyEvent {
    fn new(e: &Event, sample_rate: u32) -> Self {
        let mut out = Self {
            kind: e.kind(),
            sample: e.sample,
            emit_sample: e.emit_sample,
            t: e.sample as f64 / sample_rate as f64,
            hz: 0.0,
            midi: 0.0,
            confidence: 0.0,
            voiced: false,
            strength: 0.0,
            rms: 0.0,
            peak: 0.0,
            db: 0.0,
            envelope_db: 0.0,
            velocity: 0,
            marking: "",
            note: 0,
        };
        match e.data {
            EventData::Pitch { hz, midi, confidence, voiced } => {
                (out.hz, out.midi, out.confidence, out.voiced) = (hz, midi, confidence, voiced)
            }
            EventData::Onset { strength } => out.strength = strength,
            EventData::Dynamics { rms, peak, db, envelope_db, velocity, marking } => {
                (out.rms, out.peak, out.db, out.envelope_db, out.velocity) = (rms, peak, db, envelope_db, velocity);
                out.marking = marking.as_str();
            }
            EventData::NoteOn { note, velocity } => (out.note, out.velocity) = (note, velocity),
            EventData::NoteOff { note } => out.note = note,
        }
        out
    }
}

/// Rounds to 6 significant digits so the JSON log stays readable and stable.
fn round6(v: f32) -> f64 {
    format!("{v:.6e}").parse().unwrap_or(0.0)
}

#[pymethods]
impl PyEvent {
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("t", (self.t * 1e6).round() / 1e6)?;
        d.set_item("type", self.kind)?;
        match self.kind {
            "pitch" => {
                d.set_item("hz", round6(self.hz))?;
                d.set_item("midi", round6(self.midi))?;
                d.set_item("confidence", round6(self.confidence))?;
                d.set_item("voiced", self.voiced)?;
            }
            "onset" => d.set_item("strength", round6(self.strength))?,
            "dynamics" => {
                d.set_item("rms", round6(self.rms))?;
                d.set_item("peak", round6(self.peak))?;
                d.set_item("db", round6(self.db))?;
                d.set_item("velocity", self.velocity)?;
                d.set_item("envelope_db", round6(self.envelope_db))?;
                d.set_item("marking", self.marking)?;
            }
            "note_on" => {
                d.set_item("note", self.note)?;
                d.set_item("velocity", self.velocity)?;
            }
            _ => d.set_item("note", self.note)?,
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!("Event(kind={:?}, t={:.6}, sample={})", self.kind, self.t, self.sample)
    }
}

#[pyclass(name = "Analyzer", module = "rust_engine")]
struct PyAnalyzer {
    inner: Analyzer,
    /// Reused for every call: sized for `MAX_BLOCK`, so `process` allocates
    /// nothing in Rust for blocks up to that length.
    events: Vec<Event>,
}

impl PyAnalyzer {
    fn drain<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyEvent>>> {
        let sr = self.inner.config().sample_rate;
        let out = self.events.iter().map(|e| Bound::new(py, PyEvent::new(e, sr))).collect();
        self.events.clear();
        out
    }
}

#[pymethods]
impl PyAnalyzer {
    #[new]
    #[pyo3(signature = (config = None))]
    fn new(config: Option<PyRef<'_, PyEngineConfig>>) -> PyResult<Self> {
        let cfg = config.map(|c| c.inner.clone()).unwrap_or_default();
        let inner = Analyzer::new(cfg).map_err(value_error)?;
        let events = Vec::with_capacity(inner.max_events(MAX_BLOCK) + 1);
        Ok(Self { inner, events })
    }

    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.config().sample_rate
    }

    #[getter]
    fn hop(&self) -> usize {
        self.inner.config().hop
    }

    #[getter]
    fn position(&self) -> u64 {
        self.inner.position()
    }

    #[getter]
    fn latency_samples(&self) -> usize {
        self.inner.latency_samples()
    }

    fn process<'py>(&mut self, py: Python<'py>, block: PyReadonlyArrayDyn<'py, f32>) -> PyResult<Vec<Bound<'py, PyEvent>>> {
        if block.ndim() != 1 {
            return Err(value_error(format!("block must be 1-D, got {} dimensions", block.ndim())));
        }
        let samples = block.as_slice().map_err(|_| value_error("block must be C-contiguous"))?;
        let (inner, events) = (&mut self.inner, &mut self.events);
        py.detach(|| {
            for chunk in samples.chunks(MAX_BLOCK) {
                inner.process(chunk, events).expect("chunks are at most MAX_BLOCK long");
            }
        });
        self.drain(py)
    }

    fn flush<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyEvent>>> {
        self.inner.flush(&mut self.events);
        self.drain(py)
    }

    fn all_notes_off<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyEvent>>> {
        self.inner.all_notes_off(&mut self.events);
        self.drain(py)
    }

    fn reset(&mut self) {
        self.inner.reset();
        self.events.clear();
    }

    fn set_param(&mut self, key: &str, value: f64) -> PyResult<()> {
        let mut check = self.inner.config().clone();
        match key {
            "onset.delta" | "notes.silence_db" | "notes.min_confidence" => {}
            _ => return Err(value_error(format!("'{key}' cannot be changed while running"))),
        }
        check.set(key, value).map_err(|e| match e {
            SetError::UnknownKey => PyRuntimeError::new_err("key table out of step"),
            SetError::Invalid(e) => value_error(e),
        })?;
        check.validate().map_err(value_error)?;
        let v = value as f32;
        match key {
            "onset.delta" => self.inner.set_onset_delta(v),
            "notes.silence_db" => self.inner.set_silence_db(v),
            _ => self.inner.set_min_confidence(v),
        }
        Ok(())
    }
}

/// The dynamic marking for an envelope level in dBFS.
#[pyfunction]
fn marking_for_db(db: f32) -> &'static str {
    crate::dynamics::marking_for_db(db).as_str()
}

#[pymodule]
fn rust_engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngineConfig>()?;
    m.add_class::<PyAnalyzer>()?;
    m.add_class::<PyEvent>()?;
    m.add_function(wrap_pyfunction!(marking_for_db, m)?)?;
    m.add("__all__", ["Analyzer", "EngineConfig", "Event", "marking_for_db"])?;
    Ok(())
}
