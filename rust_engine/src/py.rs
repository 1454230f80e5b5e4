//! Python bindings: every PyO3 line of the crate lives here.

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};

use crate::analyzer::Analyzer;
use crate::clock::ClockConfig;
use crate::config::{EngineConfig, LiveParam, SetError, LIVE_PARAMS, MAX_BLOCK};
use crate::error;
use crate::event::{Event, EventData};
use crate::live::{
    BeatOptions, BeatSource, ControlMsg, LiveBridge, LiveConfig, LiveError, LiveEvent, MAX_BEND_RANGE, MAX_INPUTS,
};
use crate::player::{Player, PlayerConfig, PlayerError, PlayerShared};
use crate::scale::SCALE_MODES;

// -- errors: every engine error becomes a Python exception here, and only here --

pyo3::create_exception!(
    rust_engine,
    ConfigError,
    PyValueError,
    "A setting the engine cannot work with: `key` names it (\"pitch.fmin_hz\"), `reason` says why."
);

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A `ConfigError` whose message is `message`, carrying `key` and `reason`.
fn config_error(key: &str, reason: &str, message: String) -> PyErr {
    Python::attach(|py| {
        let err = ConfigError::new_err(message);
        let value = err.value(py);
        match value.setattr("key", key).and_then(|_| value.setattr("reason", reason)) {
            Ok(()) => err,
            Err(e) => e,
        }
    })
}

impl From<error::ConfigError> for PyErr {
    fn from(e: error::ConfigError) -> Self {
        config_error(e.key, &e.reason, e.to_string())
    }
}

/// The error for setting `key`: an unknown key is a ConfigError too.
fn set_error(key: &str, e: SetError) -> PyErr {
    match e {
        SetError::UnknownKey => config_error(key, "unknown key", format!("unknown key '{key}'")),
        SetError::Invalid(e) => e.into(),
    }
}

impl From<LiveError> for PyErr {
    fn from(e: LiveError) -> Self {
        match e {
            LiveError::Jack(e) => PyRuntimeError::new_err(format!("cannot open a JACK client: {e}")),
            LiveError::Config(e) => e.into(),
            other => value_error(other),
        }
    }
}

/// Sets one value from Python, with the errors a user can act on.
fn set_value(cfg: &mut EngineConfig, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if value.is_instance_of::<PyBool>() {
        let reason = "must be a number, not a boolean";
        return Err(config_error(key, reason, format!("{key}: {reason}")));
    }
    let number: f64 =
        value.extract().map_err(|_| config_error(key, "must be a number", format!("{key}: must be a number")))?;
    cfg.set(key, number).map_err(|e| set_error(key, e))
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
        cfg.validate()?;
        Ok(Self { inner: cfg })
    }

    #[staticmethod]
    fn defaults<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        to_dict(py, &EngineConfig::default())
    }

    /// Every setting's dotted name and what it does, in file order.
    #[staticmethod]
    fn docs() -> Vec<(&'static str, &'static str)> {
        EngineConfig::keys().map(|k| (k, EngineConfig::doc(k).expect("key from the table"))).collect()
    }

    /// The settings that may change while running, with their ranges.
    #[staticmethod]
    fn live_params<'py>(py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let defaults = EngineConfig::default();
        LIVE_PARAMS
            .iter()
            .map(|spec| {
                let d = PyDict::new(py);
                d.set_item("key", spec.key)?;
                d.set_item("lo", spec.lo as f64)?;
                d.set_item("hi", spec.hi as f64)?;
                d.set_item("unit", spec.unit.trim())?;
                d.set_item("whole", EngineConfig::is_whole(spec.key))?;
                d.set_item("doc", EngineConfig::doc(spec.key))?;
                d.set_item("default", shortest(defaults.get(spec.key).expect("key from the table")))?;
                Ok(d)
            })
            .collect()
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
            dict.set_item(leaf, shortest(value))?;
        }
    }
    Ok(root)
}

/// Settings are f32 inside; this gives the f64 of the shortest f32 text (0.02, not 0.0199999995).
fn shortest(value: f64) -> f64 {
    format!("{}", value as f32).parse::<f64>().unwrap_or(value)
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
    /// Bands: level of each band in dBFS.
    band_db: Vec<f32>,
    centroid_hz: f32,
    flatness: f32,
    rolloff_hz: f32,
    /// Chroma: energy share of each pitch class, C first.
    chroma: Vec<f32>,
    /// Bands, spectrum and chroma: the visual-ready values in 0..1.
    level: Vec<f32>,
    /// Beat only: its place in the bar, 1-based.
    beat: u8,
    /// Beat and tempo: the tracked tempo.
    bpm: f32,
    /// Beat only: where the next beat is predicted, in samples and seconds.
    next_sample: u64,
    next_t: f64,
    /// Live only: input number (1-based); 0 offline.
    input: u8,
    /// Live only: JACK frame time at which the event was sent; 0 offline.
    frame: u32,
    /// Live only: JACK frame time of the first frame of its period; 0 offline.
    block_frame: u32,
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
            band_db: Vec::new(),
            centroid_hz: 0.0,
            flatness: 0.0,
            rolloff_hz: 0.0,
            chroma: Vec::new(),
            level: Vec::new(),
            beat: 0,
            bpm: 0.0,
            next_sample: 0,
            next_t: 0.0,
            input: 0,
            frame: 0,
            block_frame: 0,
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
            EventData::Bands { count, db, level } => {
                out.band_db = db[..count as usize].to_vec();
                out.level = level[..count as usize].to_vec();
            }
            EventData::Spectrum { centroid_hz, flatness, rolloff_hz, level } => {
                (out.centroid_hz, out.flatness, out.rolloff_hz) = (centroid_hz, flatness, rolloff_hz);
                out.level = level.to_vec();
            }
            EventData::Chroma { energy, level } => {
                out.chroma = energy.to_vec();
                out.level = level.to_vec();
            }
            EventData::Beat { beat, bpm, confidence, next_sample } => {
                (out.beat, out.bpm, out.confidence, out.next_sample) = (beat, bpm, confidence, next_sample);
                out.next_t = next_sample as f64 / sample_rate as f64;
            }
            EventData::Tempo { bpm, confidence } => (out.bpm, out.confidence) = (bpm, confidence),
        }
        out
    }
}

/// Rounds to 6 significant digits so the JSON log stays readable and stable.
fn round6(v: f32) -> f64 {
    format!("{v:.6e}").parse().unwrap_or(0.0)
}

fn round6_all(values: &[f32]) -> Vec<f64> {
    values.iter().copied().map(round6).collect()
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
            "bands" => {
                d.set_item("db", round6_all(&self.band_db))?;
                d.set_item("level", round6_all(&self.level))?;
            }
            "spectrum" => {
                d.set_item("centroid_hz", round6(self.centroid_hz))?;
                d.set_item("flatness", round6(self.flatness))?;
                d.set_item("rolloff_hz", round6(self.rolloff_hz))?;
                d.set_item("level", round6_all(&self.level))?;
            }
            "chroma" => {
                d.set_item("energy", round6_all(&self.chroma))?;
                d.set_item("level", round6_all(&self.level))?;
            }
            "beat" => {
                d.set_item("beat", self.beat)?;
                d.set_item("bpm", round6(self.bpm))?;
                d.set_item("confidence", round6(self.confidence))?;
                d.set_item("next_t", (self.next_t * 1e6).round() / 1e6)?;
            }
            "tempo" => {
                d.set_item("bpm", round6(self.bpm))?;
                d.set_item("confidence", round6(self.confidence))?;
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
        let inner = Analyzer::new(cfg)?;
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

    fn process<'py>(&mut self, py: Python<'py>, block: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyEvent>>> {
        let block: PyReadonlyArrayDyn<'py, f32> = block.extract().map_err(|_| {
            let what = block
                .getattr("dtype")
                .map(|d| format!("a numpy array of dtype {d}"))
                .unwrap_or_else(|_| block.get_type().name().map(|n| n.to_string()).unwrap_or_default());
            PyTypeError::new_err(format!("block must be a float32 numpy array, got {what}"))
        })?;
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
        let param = check_live_value(self.inner.config(), key, value)?;
        self.inner.set_live(param, value as f32);
        Ok(())
    }
}

/// Checks a live-tunable value against the same rules as the config.
fn check_live_value(cfg: &EngineConfig, key: &str, value: f64) -> PyResult<LiveParam> {
    let reason = "cannot be changed while running";
    let param = LiveParam::from_key(key).ok_or_else(|| config_error(key, reason, format!("'{key}' {reason}")))?;
    let mut check = cfg.clone();
    check.set(key, value).map_err(|e| set_error(key, e))?;
    check.validate()?;
    Ok(param)
}

#[pyclass(name = "LiveBridge", module = "rust_engine")]
struct PyLiveBridge {
    /// The ring buffer ends are Send but not Sync, and a pyclass must be Sync.
    /// `&mut self` methods reach the state through `get_mut` (PyO3's borrow flag
    /// already makes them exclusive); the `&self` getters lock it, which never
    /// waits: no `&mut self` method can run meanwhile.
    live: std::sync::Mutex<LiveState>,
    config: EngineConfig,
}

struct LiveState {
    bridge: LiveBridge,
    drained: Vec<LiveEvent>,
}

impl PyLiveBridge {
    fn state(&mut self) -> &mut LiveState {
        self.live.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bridge(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn send(&mut self, msg: ControlMsg) -> PyResult<()> {
        if self.state().bridge.send(msg) {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err("control queue full: the process callback is not running"))
        }
    }

    fn take<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyEvent>>> {
        let state = self.state();
        let sr = state.bridge.sample_rate;
        let out = state
            .drained
            .iter()
            .map(|e| {
                Bound::new(
                    py,
                    PyEvent {
                        input: e.input,
                        frame: e.block_frame.wrapping_add(e.offset),
                        block_frame: e.block_frame,
                        ..PyEvent::new(&e.event, sr)
                    },
                )
            })
            .collect();
        state.drained.clear();
        out
    }
}

#[pymethods]
impl PyLiveBridge {
    #[new]
    #[pyo3(signature = (client_name, inputs, config = None, *, input_ports, midi_port, clock_port, bend_range = 0.0, owed_note_offs = Vec::new(), queue_capacity = 65536, beat_source = "auto", clock_input = 1, clock_stop_on_loss = true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        client_name: &str,
        inputs: usize,
        config: Option<PyRef<'_, PyEngineConfig>>,
        input_ports: Vec<String>,
        midi_port: String,
        clock_port: String,
        bend_range: f32,
        owed_note_offs: Vec<(u8, u8)>,
        queue_capacity: usize,
        beat_source: &str,
        clock_input: usize,
        clock_stop_on_loss: bool,
    ) -> PyResult<Self> {
        let source = match beat_source {
            "audio" => BeatSource::Audio,
            "transport" => BeatSource::Transport,
            "auto" => BeatSource::Auto,
            other => return Err(value_error(format!("beat_source must be audio, transport or auto, got {other:?}"))),
        };
        if !(1..=inputs).contains(&clock_input) {
            return Err(value_error(format!("clock_input must be 1..{inputs}, got {clock_input}")));
        }
        if !(0.0..=MAX_BEND_RANGE).contains(&bend_range) {
            return Err(value_error(format!("bend_range must be 0..{MAX_BEND_RANGE} semitones")));
        }
        if input_ports.len() != inputs {
            return Err(value_error(format!("input_ports must name {inputs} ports, got {}", input_ports.len())));
        }
        let engine = config.map(|c| c.inner.clone()).unwrap_or_default();
        let cfg = LiveConfig {
            client_name: client_name.to_string(),
            input_ports,
            midi_port,
            clock_port,
            beat: BeatOptions {
                source,
                clock_input: clock_input - 1,
                clock: ClockConfig { stop_on_loss: clock_stop_on_loss },
            },
            engine: engine.clone(),
            bend_range,
            queue_capacity,
            owed_note_offs,
        };
        let inner = py.detach(|| LiveBridge::open(cfg))?;
        let mut config = engine;
        config.set_sample_rate(inner.sample_rate);
        let state = LiveState { bridge: inner, drained: Vec::with_capacity(queue_capacity) };
        Ok(Self { live: std::sync::Mutex::new(state), config })
    }

    /// The client's name as the server knows it (it may add a suffix).
    #[getter]
    fn name(&self) -> String {
        self.bridge().bridge.name.clone()
    }

    #[getter]
    fn sample_rate(&self) -> u32 {
        self.bridge().bridge.sample_rate
    }

    #[getter]
    fn buffer_size(&self) -> u32 {
        self.bridge().bridge.buffer_size()
    }

    #[getter]
    fn inputs(&self) -> usize {
        self.bridge().bridge.inputs
    }

    #[getter]
    fn server_lost(&self) -> bool {
        self.bridge().bridge.server_lost()
    }

    fn frame_time(&self) -> u32 {
        self.bridge().bridge.frame_time()
    }

    /// Events the callback produced since the last call, in emission order per input.
    fn poll<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyEvent>>> {
        let state = self.state();
        state.bridge.drain(&mut state.drained);
        self.take(py)
    }

    fn set_param(&mut self, key: &str, value: f64) -> PyResult<()> {
        let param = check_live_value(&self.config, key, value)?;
        self.config.set(key, value).expect("checked above");
        self.send(ControlMsg::Set(param, value as f32))
    }

    fn set_midi_enabled(&mut self, enabled: bool) -> PyResult<()> {
        self.send(ControlMsg::Midi(enabled))
    }

    fn all_notes_off(&mut self) -> PyResult<()> {
        self.send(ControlMsg::AllNotesOff)
    }

    fn scale_tempo(&mut self, factor: f32) -> PyResult<()> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(value_error(format!("factor must be a positive number, got {factor}")));
        }
        self.send(ControlMsg::ScaleTempo(factor))
    }

    fn hold_tempo(&mut self, held: bool) -> PyResult<()> {
        self.send(ControlMsg::HoldTempo(held))
    }

    fn tap(&mut self, frame: u32) -> PyResult<()> {
        self.send(ControlMsg::Tap(frame))
    }

    /// Notes sounding on the MIDI port, per input (None when silent).
    fn active_notes(&self) -> Vec<Option<u8>> {
        self.bridge().bridge.shared.active_notes()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        use std::sync::atomic::Ordering::Relaxed;
        let state = self.bridge();
        let s = &state.bridge.shared;
        let d = PyDict::new(py);
        d.set_item("xruns", s.xruns.load(Relaxed))?;
        d.set_item("skipped_periods", s.skipped_periods.load(Relaxed))?;
        d.set_item("dropouts", s.dropouts.load(Relaxed))?;
        d.set_item("cycles", s.cycles.load(Relaxed))?;
        d.set_item("dropped_events", s.dropped.load(Relaxed))?;
        d.set_item("midi_lost", s.midi_lost.load(Relaxed))?;
        d.set_item("max_cycle_us", s.max_cycle_ns.load(Relaxed) as f64 / 1000.0)?;
        d.set_item("dsp_load", state.bridge.cpu_load())?;
        d.set_item("server_lost", state.bridge.server_lost())?;
        Ok(d)
    }

    /// Sends note-offs for every sounding note, deactivates and closes the
    /// client; returns the last events (those note-offs among them).
    fn close<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyEvent>>> {
        let state = self.state();
        let (bridge, drained) = (&mut state.bridge, &mut state.drained);
        py.detach(|| bridge.close(drained));
        self.take(py)
    }
}

fn player_error(e: PlayerError) -> PyErr {
    match e {
        PlayerError::BadPorts => value_error(e),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

#[pyclass(name = "Player", module = "rust_engine")]
struct PyPlayer {
    /// The ring buffer ends are Send but not Sync, and a pyclass must be Sync;
    /// locking never waits, as for `LiveBridge`.
    player: std::sync::Mutex<Player>,
    /// The callback's counters, read without the lock (`wait_finished` sleeps).
    shared: std::sync::Arc<PlayerShared>,
    /// Frame-time anchor of the last play, set once known.
    last_start: Option<u32>,
    name: String,
    sample_rate: u32,
    outputs: Vec<String>,
    midi_inputs: Vec<String>,
}

impl PyPlayer {
    fn inner(&self) -> std::sync::MutexGuard<'_, Player> {
        self.player.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[pymethods]
impl PyPlayer {
    #[new]
    #[pyo3(signature = (name, outputs = vec!["out".to_string()], midi_inputs = vec!["midi_in".to_string()], midi_capacity = 65536))]
    fn new(
        py: Python<'_>,
        name: &str,
        outputs: Vec<String>,
        midi_inputs: Vec<String>,
        midi_capacity: usize,
    ) -> PyResult<Self> {
        let cfg = PlayerConfig { client_name: name.to_string(), outputs, midi_inputs, midi_capacity };
        let player = py.detach(|| Player::open(cfg)).map_err(|e| match e {
            PlayerError::Jack(e) => PyRuntimeError::new_err(format!("cannot open JACK client '{name}': {e}")),
            other => player_error(other),
        })?;
        Ok(Self {
            shared: player.shared.clone(),
            last_start: None,
            name: player.name.clone(),
            sample_rate: player.sample_rate,
            outputs: player.outputs.clone(),
            midi_inputs: player.midi_inputs.clone(),
            player: std::sync::Mutex::new(player),
        })
    }

    /// The client's name in the graph.
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    #[getter]
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    #[getter]
    fn buffer_size(&self) -> u32 {
        self.inner().buffer_size()
    }

    /// Full names of the audio outputs.
    #[getter]
    fn outputs(&self) -> Vec<String> {
        self.outputs.clone()
    }

    /// Full names of the MIDI inputs.
    #[getter]
    fn midi_inputs(&self) -> Vec<String> {
        self.midi_inputs.clone()
    }

    // The raw identifier hides `loop`'s default from PyO3's generated signature: spelled out.
    #[pyo3(signature = (audio, r#loop = false, at_frame = None), text_signature = "(self, /, audio, loop=False, at_frame=None)")]
    fn play(&mut self, audio: PyReadonlyArrayDyn<'_, f32>, r#loop: bool, at_frame: Option<u32>) -> PyResult<()> {
        if audio.ndim() != 1 {
            return Err(value_error(format!("audio must be 1-D, got {} dimensions", audio.ndim())));
        }
        let samples = audio.as_slice().map_err(|_| value_error("audio must be C-contiguous"))?.to_vec();
        self.last_start = None;
        self.player
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .play(samples, r#loop, at_frame)
            .map_err(player_error)?;
        Ok(())
    }

    fn stop(&mut self) -> PyResult<()> {
        self.player.get_mut().unwrap_or_else(|p| p.into_inner()).stop().map_err(player_error)
    }

    /// Frame time of the last play's first sample, once its period has begun.
    #[getter]
    fn start_frame(&mut self) -> Option<u32> {
        if self.last_start.is_none() {
            let player = self.inner();
            let start = player.start_frame(player.last_id());
            drop(player);
            self.last_start = start;
        }
        self.last_start
    }

    /// Whether the last play (not looped) has played its last sample.
    #[getter]
    fn finished(&self) -> bool {
        let player = self.inner();
        player.last_id() != 0 && player.finished(player.last_id())
    }

    /// Waits up to `timeout` seconds for the last play to end; false on timeout.
    fn wait_finished(&self, py: Python<'_>, timeout: f64) -> bool {
        let id = self.inner().last_id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(timeout.max(0.0));
        let shared = &self.shared;
        py.detach(|| loop {
            if id != 0 && shared_finished(shared, id) {
                return true;
            }
            if std::time::Instant::now() >= deadline || shared.server_lost.load(std::sync::atomic::Ordering::Acquire) {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        })
    }

    /// (frame time, bytes) of every MIDI event received so far on MIDI input
    /// `input` (an index into `midi_inputs`), or on all of them.
    #[pyo3(signature = (input = None))]
    fn midi<'py>(&self, py: Python<'py>, input: Option<usize>) -> Vec<(u32, Bound<'py, pyo3::types::PyBytes>)> {
        let captured = self.inner().captured.clone();
        let list = captured.lock().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .filter(|c| input.is_none_or(|k| c.input as usize == k))
            .map(|c| (c.frame, pyo3::types::PyBytes::new(py, c.bytes())))
            .collect()
    }

    fn frame_time(&self) -> u32 {
        self.inner().frame_time()
    }

    fn connect(&self, source: &str, destination: &str) -> PyResult<()> {
        self.inner()
            .connect(source, destination)
            .map_err(|e| PyRuntimeError::new_err(format!("cannot connect {source} -> {destination}: {e}")))
    }

    fn disconnect(&self, source: &str, destination: &str) -> PyResult<()> {
        self.inner()
            .disconnect(source, destination)
            .map_err(|e| PyRuntimeError::new_err(format!("cannot disconnect {source} -> {destination}: {e}")))
    }

    /// Names of the ports connected to `port`.
    fn connections(&self, port: &str) -> Vec<String> {
        self.inner().connections(port)
    }

    /// Names of the ports whose names match the regular expression `pattern`.
    fn ports(&self, pattern: &str) -> Vec<String> {
        self.inner().ports(pattern)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.shared;
        let d = PyDict::new(py);
        d.set_item("cycles", s.cycles.load(Relaxed))?;
        d.set_item("skipped_periods", s.skipped_periods.load(Relaxed))?;
        d.set_item("short_steps", s.short_steps.load(Relaxed))?;
        d.set_item("xruns", s.xruns.load(Relaxed))?;
        d.set_item("midi_dropped", s.midi_dropped.load(Relaxed))?;
        d.set_item("midi_skipped", s.midi_skipped.load(Relaxed))?;
        d.set_item("server_lost", s.server_lost.load(std::sync::atomic::Ordering::Acquire))?;
        Ok(d)
    }

    /// Deactivates and closes the client; `midi()` stays readable.
    fn close(&mut self, py: Python<'_>) {
        let player = self.player.get_mut().unwrap_or_else(|p| p.into_inner());
        py.detach(|| player.close());
    }
}

fn shared_finished(shared: &PlayerShared, id: u32) -> bool {
    shared.finished_id() == id
}

/// The dynamic marking for an envelope level in dBFS.
#[pyfunction]
fn marking_for_db(db: f32) -> &'static str {
    crate::dynamics::marking_for_db(db).as_str()
}

#[pymodule]
fn rust_engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add_class::<PyEngineConfig>()?;
    m.add_class::<PyAnalyzer>()?;
    m.add_class::<PyEvent>()?;
    m.add_class::<PyLiveBridge>()?;
    m.add_class::<PyPlayer>()?;
    m.add_function(wrap_pyfunction!(marking_for_db, m)?)?;
    m.add("MAX_INPUTS", MAX_INPUTS)?;
    m.add("MAX_BEND_RANGE", MAX_BEND_RANGE as f64)?;
    m.add("SCALE_MODES", SCALE_MODES.iter().map(|(name, _)| *name).collect::<Vec<_>>())?;
    m.add(
        "__all__",
        [
            "Analyzer",
            "ConfigError",
            "EngineConfig",
            "Event",
            "LiveBridge",
            "MAX_BEND_RANGE",
            "MAX_INPUTS",
            "Player",
            "SCALE_MODES",
            "marking_for_db",
        ],
    )?;
    Ok(())
}
