"""The live bridge: JACK in, MIDI and OSC out.

The process callback lives in Rust (`rust_engine.LiveBridge`): it reads the
inputs, runs the engines and writes JACK MIDI, and never blocks. Everything
else happens here, on one dispatch thread that polls the callback's event ring
every few milliseconds: OSC bundles, the MIDI take and event log, rtmidi
output, the state the TUI shows, and recovery when the server goes away.
Controls from the UI reach the dispatch thread as wanted settings that it
passes on (a burst of requests merges into the latest value of each) and as
questions on a bounded queue, so only that thread ever touches the JACK client. That includes the LiveBridge object itself:
its close() runs without the GIL while holding the object's exclusive borrow, and
any other call on it meanwhile (even reading `name`) raises RuntimeError.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import rust_engine

from bridge import addresses, jackd, params, processes
from bridge.config import default, engine_config, with_features
from bridge.connections import PortWatcher
from bridge.errors import BridgeError
from bridge.osc_out import OscSender, parse_target
from bridge.recorder import EventLog, RecordingError, TakeRecorder, TakeSnapshot, open_directory
from bridge.rtmidi_out import RtMidiOut
from bridge.state import InputState, Snapshot
from bridge.tuning import LiveEstimate
from bridge.ws import WsFeed, is_loopback, parse_listen

if TYPE_CHECKING:  # started by run() only, as clients of the runner
    from bridge.osc_in import OscControlIn
    from bridge.oscquery import OscQueryServer

log = logging.getLogger(__name__)

CLOCK_SLACK_S = 0.02
"""How far a fresh reading of the frame clock may stray from the anchored one before
the OSC stamps re-anchor: well above a preempted read, well below a lost period run."""
CONTROL_TIMEOUT_S = 2.0
"""How long a UI request waits for the dispatch thread, which is away while the server is lost."""
QUESTIONS_MAX = 32
"""Questions (port lists, connections) waiting for the dispatch thread; more are refused."""
T = TypeVar("T")


@dataclass
class LiveOptions:
    """Everything `daw-bridge run` can be told (config file and flags merged); the
    defaults are the config file's (`bridge.config.SETTINGS`)."""

    client_name: str = default("bridge.client_name")
    inputs: int = default("bridge.inputs")
    connect: str | None = None
    osc: list[tuple[str, int]] = field(default_factory=list)
    osc_prefix: str = default("osc.prefix")
    osc_rate: float = default("osc.rate_hz")
    osc_silence: str = default("osc.silence")
    osc_timetag: str = default("osc.timetag")
    osc_features: tuple[str, ...] = ()
    """The spectral features OSC sends ([osc] bands, spectrum, chroma set to true)."""
    bend_range: float = default("bridge.bend_range")
    midi_port: str | None = None
    midi_api: str = default("bridge.midi_api")
    record_midi: Path | None = None
    events: Path | None = None
    checkpoint_s: float = default("bridge.checkpoint_s")
    ws_listen: tuple[str, int] | None = None
    ws_rate: float = default("ws.rate_hz")
    beat_source: str = default("bridge.beat_source")
    clock_input: int = default("bridge.clock_input")
    clock_stop_on_loss: bool = default("bridge.clock_stop_on_loss")
    osc_in: tuple[str, int] | None = None
    """Where OSC controls are received (`--osc-in`): host and UDP port."""
    oscquery: tuple[str, int] | None = None
    """Where the OSCQuery namespace is served (`--oscquery`): host and TCP port."""
    auto_tuning: bool = False
    """`--tuning auto`: the A4 reference estimated as the music plays (`bridge.tuning.LiveEstimate`)."""
    auto_scale: bool = False
    """`--scale auto`: the key estimated as the music plays."""
    poll_ms: float = 5.0


class LiveRunner:
    """Opens the JACK client, keeps it connected and fed, and survives server loss."""

    def __init__(self, options: LiveOptions, config: rust_engine.EngineConfig) -> None:
        self.options = options
        self._config = config
        self._server = jackd.default_server_name()
        self._questions: queue.Queue[Callable[[], None]] = queue.Queue(QUESTIONS_MAX)
        self._lock = threading.Lock()  # guards the UI-visible state only
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: str | None = None
        """Why the dispatch thread stopped on its own (a bug): the bridge must not run on without it."""
        self._bridge: rust_engine.LiveBridge | None = None
        # The open client's name and rate, copied for other threads (see the module docstring).
        self._client_name = options.client_name
        self._sample_rate = 0
        self._watcher: PortWatcher | None = None
        self._opened_at = 0.0  # wall time of the current client's stream start
        self._clock_anchor: tuple[int, float] | None = None  # (JACK frame, its wall time), for OSC stamps
        self._take_started = 0.0  # wall time of the current take's start
        self._log_started = 0.0  # wall time of the event log's t = 0
        self._states = [InputState() for _ in range(options.inputs)]
        self._latencies: deque[float] = deque(maxlen=32)
        self._stream_time = 0.0
        self._status = "starting"
        self._stats: dict[str, Any] = {}
        self._connections: list[tuple[str, str]] = []
        self._midi_enabled = True
        self._osc_enabled = True
        self._tempo_held = False
        self._sent_held: bool | None = None
        self._params = params.values(config)
        self.control_port: int | None = None
        # What the open client was last sent: the dispatch thread sends what differs.
        self._sent_params: dict[str, float] = {}
        self._sent_midi: bool | None = None
        self._osc = (
            OscSender(
                options.osc, options.osc_prefix, options.inputs, options.osc_rate,
                options.osc_silence, self._params["notes.silence_db"], options.osc_timetag,
                options.osc_features,
            )
            if options.osc
            else None
        )
        self._rtmidi = (
            RtMidiOut(
                options.midi_port, options.midi_api, options.client_name + addresses.RTMIDI_CLIENT_SUFFIX,
                options.bend_range,
            )
            if options.midi_port
            else None
        )
        self._ws: WsFeed | None = None
        if options.ws_listen is not None:
            host, port = options.ws_listen
            try:
                self._ws = WsFeed(host, port, options.inputs, options.ws_rate)
            except OSError as e:
                raise BridgeError(f"--ws: cannot listen on {host}:{port}: {e.strerror or e}") from None
        self._take: TakeRecorder | None = None
        # A take asked for (a recorder) or stopped (None), for the dispatch thread to swap in.
        self._take_request: tuple[TakeRecorder | None] | None = None
        # Takes are written off the dispatch thread, one write at a time, in order.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="daw-bridge-takes")
        self._saving: Future[None] | None = None
        self._checkpoint_failed = False
        # Files this run writes or is about to: no take may be created over them.
        self._in_use = {_file_key(p) for p in (options.record_midi, options.events) if p is not None}
        if options.record_midi and options.events and len(self._in_use) == 1:
            raise BridgeError(f"--record-midi and --events name the same file '{options.events}'")
        self._log = EventLog(options.events, options.inputs) if options.events else None
        self.on_notes: Callable[[int, str, int, int, float], None] | None = None
        self.event_sinks: list[Callable[[list[rust_engine.Event]], None]] = []
        """Called with every batch of events on the dispatch thread (e.g. the OSCQuery server's
        publish): each must return at once and never raise. Set before `start`."""

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Opens the client and starts dispatching; BridgeError when JACK is not there."""
        if jackd.probe(self._server) is None:
            raise BridgeError(
                f"no JACK server '{self._server}' is running (start one, e.g. 'jackd -d dummy', or use 'make run')"
            )
        if self.options.record_midi:
            self._take = TakeRecorder(self.options.record_midi, self.options.inputs,
                                      bend_range=self.options.bend_range)
        self._open(owed=[])
        self._take_started = self._log_started = self._opened_at
        self._thread = threading.Thread(target=self._dispatch_loop, name="daw-bridge-dispatch", daemon=True)
        self._thread.start()

    def _open(self, owed: Sequence[tuple[int, int]]) -> None:
        try:
            bridge = rust_engine.LiveBridge(
                self.options.client_name,
                self.options.inputs,
                self._config,
                **addresses.port_names(self.options.inputs),
                bend_range=self.options.bend_range,
                owed_note_offs=list(owed),
                beat_source=self.options.beat_source,
                clock_input=self.options.clock_input,
                clock_stop_on_loss=self.options.clock_stop_on_loss,
            )
        except (RuntimeError, ValueError) as e:
            raise BridgeError(str(e)) from None
        self._sent_params, self._sent_midi, self._sent_held = {}, None, None
        self._send_settings(bridge)
        self._opened_at = time.time()
        self._clock_anchor = None  # a new client: a new frame clock
        inputs = [f"{bridge.name}:{addresses.input_port(k)}" for k in range(1, self.options.inputs + 1)]
        try:
            self._watcher = PortWatcher(inputs, self.options.connect, client_name=bridge.name + addresses.GRAPH_CLIENT_SUFFIX)
        except Exception:
            bridge.close()
            raise
        with self._lock:
            self._bridge = bridge
            self._client_name, self._sample_rate = bridge.name, bridge.sample_rate
        self._status = f"running as '{bridge.name}' at {bridge.sample_rate} Hz, {bridge.buffer_size} frames"

    def stop(self) -> None:
        """All notes off everywhere, files closed and valid, client closed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._bridge is not None:
            events = self._bridge.close()  # the callback's last note-offs go out on JACK MIDI
            self._bridge = None
            if self.failure is None:  # else the dispatch path itself is broken: the sinks close below
                self._dispatch(events)
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        self._release_all()
        if self._osc is not None:
            self._osc.close()
        if self._rtmidi is not None:
            self._rtmidi.close()
        if self._log is not None:
            self._log.close()
        if self._ws is not None:
            self._ws.close()
        with self._lock:
            request, self._take_request = self._take_request, None
        if request is not None and request[0] is not None:
            request[0].close()  # asked for, never started: it stays an empty take
        take, self._take = self._take, None
        last = take.finish(self._stream_time) if take is not None else None
        self._writer.shutdown(wait=True)  # checkpoints and ended takes still being written
        if take is not None and last is not None:
            take.save(last)  # RecordingError reaches the caller: the take stops at its checkpoint

    @property
    def ws_url(self) -> str | None:
        """The browser page's address when the WebSocket feed is on (its port is known once bound)."""
        return self._ws.url if self._ws is not None else None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- controls (any thread) ---------------------------------------------

    def control(self, action: Callable[[], None]) -> None:
        """Runs `action` on the dispatch thread, the only one that touches the client;
        BridgeError when too many are waiting already (the thread is away or stuck)."""
        try:
            self._questions.put_nowait(action)
        except queue.Full:
            raise BridgeError("the bridge is busy; try again") from None

    def set_param(self, key: str, value: float) -> None:
        if key not in params.PARAMS:
            raise BridgeError(f"'{key}' cannot be changed while running")
        # Validate here, by the engine's own rules, so the UI hears about a bad value at once.
        section, name = params.split_key(key)
        settings = self._config.to_dict()
        settings[section][name] = value
        try:
            rust_engine.EngineConfig(settings)
        except rust_engine.ConfigError as e:
            raise BridgeError(str(e)) from None
        with self._lock:
            self._params[key] = value  # the dispatch thread passes it on
        if key == "notes.silence_db" and self._osc is not None:
            self._osc.silence_db = value  # OSC's idea of silence follows the engine's gate

    def param(self, key: str) -> float:
        """A live setting's value, as last set (the engine gets it within a poll)."""
        with self._lock:
            return self._params[key]

    def set_midi_enabled(self, enabled: bool) -> None:
        self._midi_enabled = enabled  # the dispatch thread passes it on

    def set_osc_enabled(self, enabled: bool) -> None:
        self._osc_enabled = enabled

    def hold_tempo(self, held: bool) -> None:
        """Freezes the tracked tempo (beats keep their phase), or lets it follow the audio."""
        self._tempo_held = held  # the dispatch thread passes it on

    def scale_tempo(self, factor: float) -> None:
        """Multiplies the tracked tempo: 2 doubles it, 0.5 halves it (within beat.min_bpm..max_bpm)."""
        lo, hi = params.TEMPO_FACTORS
        if not (math.isfinite(factor) and lo <= factor <= hi):
            raise BridgeError(f"tempo factor must be {lo:g}..{hi:g}, got {factor}")

        def scale() -> None:
            if self._bridge is not None:
                self._bridge.scale_tempo(factor)

        self.control(scale)

    def tap_tempo(self, at: float | None = None) -> None:
        """A tapped beat at wall time `at` (`time.time()` when the user tapped; now
        if None). The dispatch thread turns it into the JACK frame of that moment,
        so the delay before it gets there does not move the tap."""
        now = time.time()
        at = now if at is None else at
        if not (math.isfinite(at) and now - params.TAP_WINDOW_S <= at <= now + 1.0):
            raise BridgeError(f"a tap's time must lie within the last {params.TAP_WINDOW_S:g} s")

        def tap() -> None:
            bridge = self._bridge
            if bridge is not None:
                ago = round((time.time() - at) * bridge.sample_rate)
                bridge.tap((bridge.frame_time() - ago) & 0xFFFFFFFF)

        self.control(tap)

    def start_recording(self, path: Path, dir_fd: int | None = None) -> None:
        """Starts a new MIDI take (a take in progress is ended first): `path.name` in
        the open directory `dir_fd`, else in `path`'s directory.

        The file is created here, in the caller's thread, exclusively and never
        through a link: never over an existing file, nor under a name this run
        writes or is about to (its own take, its event log, another take);
        RecordingError says why not.
        """
        directory = open_directory(path.parent) if dir_fd is None else dir_fd
        try:
            stat = os.fstat(directory)
            key = (stat.st_dev, stat.st_ino, path.name)
            with self._lock:
                if key in self._in_use:
                    raise RecordingError(f"'{path.name}' is in use by this bridge (its take, event log or another take)")
                self._in_use.add(key)
            take = TakeRecorder(path, self.options.inputs, start_t=self._stream_time, dir_fd=directory,
                                bend_range=self.options.bend_range)
        finally:
            if dir_fd is None:
                os.close(directory)
        self._request_take(take)

    def stop_recording(self) -> None:
        self._request_take(None)

    def _request_take(self, take: TakeRecorder | None) -> None:
        with self._lock:
            replaced, self._take_request = self._take_request, (take,)
        if replaced is not None and replaced[0] is not None:
            replaced[0].close()  # asked for and at once replaced: it stays an empty take

    def _ask(self, question: Callable[[PortWatcher], T], timeout: float = CONTROL_TIMEOUT_S) -> T:
        """Runs `question` with the port watcher on the dispatch thread, which may
        close the watcher at any moment (a lost server), and waits for its answer."""
        if self._thread is None or not self._thread.is_alive():
            raise BridgeError("not connected to JACK")
        answer: Future[T] = Future()

        def ask() -> None:
            if self._watcher is None or self._bridge is None:
                answer.set_exception(BridgeError("not connected to JACK"))
                return
            try:
                answer.set_result(question(self._watcher))
            except Exception as e:  # noqa: BLE001 - the asker's problem, never the dispatch thread's
                answer.set_exception(e)

        self.control(ask)
        try:
            return answer.result(timeout)
        except FutureTimeout:
            raise BridgeError("not connected to JACK (the bridge is waiting for the server)") from None

    def connect(self, source: str, input_number: int, connected: bool = True) -> None:
        target = f"{self._client_name}:{addresses.input_port(input_number)}"
        self._ask(lambda watcher: watcher.set_connection(source, target, connected))

    def audio_outputs(self) -> list[str]:
        try:
            return self._ask(lambda watcher: watcher.audio_outputs())
        except BridgeError:
            return []

    # -- state ---------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._lock:
            latency = statistics.median(self._latencies) * 1000 if self._latencies else None
            connected = self._bridge is not None
            return Snapshot(
                inputs=[s.copy() for s in self._states],
                stream_time=self._stream_time,
                server=self._server,
                client=self._client_name if connected else self.options.client_name,
                sample_rate=self._sample_rate if connected else 0,
                block_size=self._stats.get("block_size", 0),
                dsp_load=self._stats.get("dsp_load", 0.0),
                xruns=self._stats.get("xruns", 0),
                skipped_periods=self._stats.get("skipped_periods", 0),
                dropouts=self._stats.get("dropouts", 0),
                dropped_events=self._stats.get("dropped_events", 0),
                latency_ms=latency,
                connections=list(self._connections),
                osc=self._osc.stats() if self._osc else {},
                osc_enabled=self._osc_enabled,
                midi_enabled=self._midi_enabled,
                tempo_held=self._tempo_held,
                beat_source=self.options.beat_source,
                clock_input=self.options.clock_input,
                recording=str(take.path) if (take := self._take) is not None else None,
                params=dict(self._params),
                status=self._status,
                connected=connected,
                control_port=self.control_port,
            )

    # -- dispatch thread -------------------------------------------------------

    def _dispatch_loop(self) -> None:
        try:
            self._dispatch_until_stopped()
        except BaseException as e:
            # A bug: without this thread nothing reaches the files, OSC or the UI.
            self.failure = f"the dispatch thread stopped: {type(e).__name__}: {e}"
            with self._lock:
                self._status = self.failure
            raise  # threading.excepthook prints the traceback

    def _dispatch_until_stopped(self) -> None:
        last_stats = last_checkpoint = 0.0
        while not self._stop.wait(self.options.poll_ms / 1000):
            while True:
                try:
                    self._questions.get_nowait()()
                except queue.Empty:
                    break
            self._swap_take()
            bridge = self._bridge
            if bridge is None:
                continue
            self._send_settings(bridge)
            events = bridge.poll()
            self._dispatch(events)
            if not events and self._osc is not None and self._osc_enabled:
                self._osc.send_block([], time.time())  # lets rate-limited values out
            now = time.monotonic()
            if now - last_stats > 0.25:
                last_stats = now
                stats = bridge.stats()
                stats["block_size"] = bridge.buffer_size
                with self._lock:
                    self._stats = stats
                    self._connections = self._watcher.connections() if self._watcher else []
            if self._take is not None and now - last_checkpoint > self.options.checkpoint_s:
                last_checkpoint = now
                self._checkpoint(self._take)
            if bridge.server_lost:
                self._recover()

    def _send_settings(self, bridge: rust_engine.LiveBridge) -> None:
        """Passes the latest wanted settings on to the process callback, one message
        per changed setting. A full control ring (a callback that does not run, e.g.
        a stopped server) is no error: what is not sent now is sent next time."""
        with self._lock:
            wanted = dict(self._params)
        midi, held = self._midi_enabled, self._tempo_held
        try:
            if self._sent_held != held:
                bridge.hold_tempo(held)
                self._sent_held = held
            for key, value in wanted.items():
                if self._sent_params.get(key) != value:
                    bridge.set_param(key, value)
                    self._sent_params[key] = value
            if self._sent_midi != midi:
                bridge.set_midi_enabled(midi)
                self._sent_midi = midi
        except RuntimeError:
            pass  # the control ring is full

    def _swap_take(self) -> None:
        """Carries out the latest start or stop of a take asked for."""
        with self._lock:
            request, self._take_request = self._take_request, None
        if request is None:
            return
        ended, self._take = self._take, request[0]
        self._take_started = time.time()
        if ended is not None and (last := ended.finish(self._stream_time)) is not None:
            self._writer.submit(self._save_ended, ended, last)

    def _save_ended(self, take: TakeRecorder, last: TakeSnapshot) -> None:
        """On the writer thread: the last write of a take that was stopped or replaced."""
        try:
            take.save(last)
        except RecordingError as e:
            with self._lock:
                self._status = str(e)
            log.warning("%s", e)

    def _checkpoint(self, take: TakeRecorder) -> None:
        """Hands the take so far to the writer thread, unless it is still writing
        the previous one (then the next interval tries again)."""
        if self._saving is not None and not self._saving.done():
            return
        snapshot = take.snapshot()
        if snapshot is not None:
            self._saving = self._writer.submit(self._save_checkpoint, take, snapshot)

    def _save_checkpoint(self, take: TakeRecorder, snapshot: TakeSnapshot) -> None:
        """On the writer thread. A failure (a full disk) is reported once and
        recording goes on in memory, in case space comes back by the end."""
        try:
            take.save(snapshot)
        except RecordingError as e:
            if not self._checkpoint_failed:
                self._checkpoint_failed = True
                log.warning("%s; recording goes on in memory", e)

    def _frame_to_wall(self, frame: int) -> float:
        """Wall time of JACK frame `frame`. Stamps follow the frame clock from an
        anchor, so successive periods are stamped in order and a period apart; reading
        "now" from both clocks afresh each time jitters by however long this thread was
        preempted between the two reads (bundles went out of order under load). The
        anchor is taken again when the estimate drifts away from it (a new client, a
        server that restarted or skipped)."""
        bridge = self._bridge
        if bridge is None:
            return time.time()
        rate = bridge.sample_rate
        estimate = time.time() - max(_frames_between(frame, bridge.frame_time()), 0) / rate
        if self._clock_anchor is not None:
            anchor_frame, anchor_wall = self._clock_anchor
            stamp = anchor_wall + _frames_between(anchor_frame, frame) / rate
            if abs(stamp - estimate) < CLOCK_SLACK_S:
                return stamp
            # Re-anchored forward only: receivers schedule by these stamps, and a later
            # period must never be stamped before an earlier one.
            estimate = max(estimate, stamp)
        self._clock_anchor = (frame, estimate)
        return estimate

    def _dispatch(self, events: list[rust_engine.Event]) -> None:
        if not events:
            return
        self._update_state(events)
        if self._take is not None:
            self._take.add(events)
        if self._log is not None:
            self._log.write(events)
        if self._ws is not None:
            self._ws.publish(events)
        for sink in self.event_sinks:
            sink(events)
        if self._rtmidi is not None:
            self._rtmidi.set_enabled(self._midi_enabled)
            self._rtmidi.send(events)
        if self._osc is not None and self._osc_enabled:
            # One bundle per JACK period, stamped with the period's time.
            start = 0
            for i in range(1, len(events) + 1):
                if i == len(events) or events[i].block_frame != events[start].block_frame:
                    self._osc.send_block(events[start:i], self._frame_to_wall(events[start].block_frame))
                    start = i

    def _update_state(self, events: list[rust_engine.Event]) -> None:
        with self._lock:
            sample_rate = self._sample_rate
            for e in events:
                s = self._states[max(e.input, 1) - 1]
                # The stream clock runs on when events are sent, not on the
                # (earlier) audio they describe: a late onset still flashes.
                sent = e.emit_sample / sample_rate if sample_rate else e.t
                self._stream_time = max(self._stream_time, sent)
                if e.kind == "pitch":
                    s.hz, s.midi, s.confidence, s.voiced = e.hz, e.midi, e.confidence, e.voiced
                    s.history.append((e.t, e.midi if e.voiced else None))
                elif e.kind == "dynamics":
                    s.db, s.envelope_db, s.marking = e.db, e.envelope_db, e.marking
                    # Peak hold, falling 0.05 dB a hop (~19 dB/s at 128-frame hops).
                    s.peak_db = max(20 * math.log10(max(e.peak, 1e-6)), s.peak_db - 0.05)
                elif e.kind == "onset":
                    s.onsets += 1
                    s.onset_times.append(e.t)
                    s.last_onset = sent
                elif e.kind == "note_on":
                    s.note = e.note
                    s.notes.append((e.t, e.note, e.velocity))
                    self._latencies.append(sent - e.t)
                elif e.kind == "note_off" and s.note == e.note:
                    s.note = None
                elif e.kind == "beat":
                    s.beat, s.bpm, s.beat_confidence, s.last_beat = e.beat, e.bpm, e.confidence, e.t
                elif e.kind == "tempo":
                    s.bpm, s.beat_confidence = e.bpm, e.confidence
        if self.on_notes is not None:
            for e in events:
                if e.kind in ("note_on", "note_off"):
                    self.on_notes(e.input, e.kind, e.note, e.velocity, e.t)

    def _release_all(self) -> None:
        """Note-offs for notes the sinks still hold (OSC receivers, the take) when
        the engine that would have closed them is gone."""
        sounding = [(k + 1, s.note) for k, s in enumerate(self._states) if s.note is not None]
        if self._osc is not None and sounding:
            self._osc.send_note_offs(sounding, time.time())
        with self._lock:
            for s in self._states:
                s.note = None
        if self._take is not None:
            self._take.notes_off()

    def _recover(self) -> None:
        """The server went away: close what we can, wait for it, reopen, reconnect."""
        bridge = self._bridge
        assert bridge is not None
        owed = [(k + 1, n) for k, n in enumerate(bridge.active_notes()) if n is not None]
        self._dispatch(bridge.close())
        self._release_all()
        self._bridge = None
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        self._status = f"JACK server '{self._server}' lost; waiting for it to come back"
        while not self._stop.wait(0.25):
            if jackd.probe(self._server) is None:
                continue
            try:
                self._open(owed)
            except BridgeError as e:
                self._status = f"JACK server back but reopening failed ({e}); retrying"
                continue
            # The new client's stream starts at t = 0.
            with self._lock:
                self._stream_time = 0.0
                for s in self._states:
                    s.history.clear()
            if self._take is not None:
                self._take.begin_stream(self._opened_at - self._take_started)
            if self._log is not None:
                self._log.begin_stream(self._opened_at - self._log_started)
            return


def _file_key(path: Path) -> tuple[int, int, str] | str:
    """Names one directory entry however it is spelled (links, '..' and relative paths)."""
    real = Path(os.path.realpath(path))
    try:
        stat = os.stat(real.parent)
    except OSError:
        return str(real)  # its directory is missing: opening it fails with a clear message
    return (stat.st_dev, stat.st_ino, real.name)


def options_from_settings(settings: dict[str, Any]) -> LiveOptions:
    """LiveOptions from checked config settings (bridge.config.load plus flags)."""
    b, o = settings["bridge"], settings["osc"]
    return LiveOptions(
        client_name=b["client_name"],
        inputs=b["inputs"],
        connect=b["connect"] or None,
        osc=[parse_target(t) for t in o["targets"]],
        osc_prefix=o["prefix"],
        osc_rate=float(o["rate_hz"]),
        osc_silence=o["silence"],
        osc_timetag=o["timetag"],
        osc_features=tuple(k for k in addresses.FEATURE_KINDS if o[k]),
        bend_range=float(b["bend_range"]),
        midi_port=b["midi_port"] or None,
        midi_api=b["midi_api"],
        record_midi=Path(b["record_midi"]) if b["record_midi"] else None,
        events=Path(b["events"]) if b["events"] else None,
        checkpoint_s=float(b["checkpoint_s"]),
        ws_listen=parse_listen(settings["ws"]["listen"]) if settings["ws"]["listen"] else None,
        ws_rate=float(settings["ws"]["rate_hz"]),
        beat_source=b["beat_source"],
        clock_input=_clock_input(b["clock_input"], b["inputs"]),
        clock_stop_on_loss=b["clock_stop_on_loss"],
        osc_in=parse_listen(o["control_in"]) if o["control_in"] else None,
        oscquery=parse_listen(o["oscquery"]) if o["oscquery"] else None,
    )


def _clock_input(clock_input: int, inputs: int) -> int:
    """The clock's input, which must be one of the bridge's."""
    if clock_input > inputs:
        raise BridgeError(f"bridge.clock_input (--clock-input) is {clock_input} but the bridge has {inputs} input(s)")
    return clock_input


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that stop `run()` in order, besides SIGINT (Python's KeyboardInterrupt)."""


def _frames_between(earlier: int, later: int) -> int:
    """`later - earlier` in JACK frame times, which wrap at 2**32, read as signed: the
    dummy driver's estimate of "now" can even trail the period's start slightly."""
    return ((later - earlier + 2**31) & 0xFFFFFFFF) - 2**31


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run(
    options: LiveOptions,
    engine: dict[str, Any],
    *,
    ui: Callable[[LiveRunner], bool] | None = None,
    demo: Path | None = None,
    duration: float | None = None,
    control_port: int | None = None,
) -> int:
    """`daw-bridge run`: runs until Ctrl-C, SIGTERM or `duration`, then closes
    every note and file. With `demo`, starts a dummy JACK server if none runs
    and loops that recording into the bridge. `ui`, when given, runs a user
    interface on the runner in this thread until the user quits, and says
    whether it ended cleanly; the caller chooses it, so nothing here depends
    on a UI."""
    # The engine computes the features only for an output that sends them: the OSC
    # kinds switched on, and all of them for the WebSocket feed (its page draws them).
    kinds = set(options.osc_features if options.osc else ())
    if options.ws_listen is not None or options.oscquery is not None:
        kinds |= set(addresses.FEATURE_KINDS)
    config = engine_config(with_features(engine, sorted(kinds)))
    # SIGHUP (the terminal closed) stops the bridge as SIGTERM and Ctrl-C do: every note closed.
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupt)
    server: jackd.JackServer | None = None
    player: subprocess.Popen[bytes] | None = None
    runner: LiveRunner | None = None
    control = None
    receiver: OscControlIn | None = None
    query: OscQueryServer | None = None
    started = False
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    try:
        if demo is not None:
            try:
                server = jackd.start(die_with_parent=True)
            except jackd.JackdError as e:
                raise BridgeError(str(e)) from None
        osc_in = options.osc_in
        if options.oscquery is not None and osc_in is None:
            osc_in = (options.oscquery[0], 0)  # OSCQuery's HOST_INFO tells clients the port
        _warn_if_public("the WebSocket feed", options.ws_listen)
        _warn_if_public("the OSC control in", osc_in)
        _warn_if_public("the OSCQuery server", options.oscquery)
        runner = LiveRunner(options, config)
        runner.on_notes = lambda k, kind, note, vel, t: lines.put(_note_line(k, kind, note, vel, t))
        if options.auto_tuning or options.auto_scale:
            estimate = LiveEstimate(options.auto_tuning, options.auto_scale, runner.param, runner.set_param)
            runner.event_sinks.append(estimate.add)
        if control_port is not None:
            # Bound before the client opens: a bad or busy port fails before anything is live.
            from bridge.control import ControlServer

            control = ControlServer(runner, port=control_port)
            runner.control_port = control.port
            print(f"daw-bridge: control port 127.0.0.1:{control.port} ('daw-bridge tui --port {control.port}')", file=sys.stderr)
        if osc_in is not None:
            receiver, query = _open_remotes(runner, options, osc_in, config)
        if runner.ws_url is not None:
            print(f"daw-bridge: browser page {runner.ws_url}, WebSocket feed {runner.ws_url}ws", file=sys.stderr)
        runner.start()
        started = True
        snapshot = runner.snapshot()
        print(f"daw-bridge: {snapshot.status} on JACK server '{snapshot.server}'", file=sys.stderr)
        if demo is not None:
            player = _start_demo_player(demo, snapshot.client, options.inputs)
        if ui is not None:
            notes = runner.on_notes
            runner.on_notes = None
            if not ui(runner):
                # A crashed UI must not take the MIDI and OSC output down with it.
                print("daw-bridge: the TUI stopped with an error; the bridge goes on (Ctrl-C stops it)", file=sys.stderr)
                runner.on_notes = notes
                _live_log(runner, lines, duration)
        else:
            _live_log(runner, lines, duration)
    except KeyboardInterrupt:
        pass
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        try:
            if control is not None:
                control.close()
            if receiver is not None:
                receiver.close()  # no control may arrive while the runner stops
            if player is not None:
                processes.stop_process(player)
            if runner is not None:
                runner.stop()
                _drain_lines(lines)
                if started:
                    print(f"daw-bridge: stopped; {_xrun_summary(runner.snapshot())}", file=sys.stderr)
            if query is not None:
                query.close()
            if receiver is not None:
                print(f"daw-bridge: OSC control in: {receiver.messages} messages, {receiver.refused} refused",
                      file=sys.stderr)
        finally:
            if server is not None and server.owned:
                server.stop()
    if runner is not None and runner.failure is not None:
        print(f"daw-bridge: error: {runner.failure}", file=sys.stderr)
        return 1
    return 0


def _warn_if_public(what: str, listen: tuple[str, int] | None) -> None:
    """Every listener binds loopback unless told otherwise, and says so when told."""
    if listen is not None and not is_loopback(listen[0]):
        print(f"daw-bridge: warning: {what} will listen on {listen[0]}, where other machines may reach it; "
              "it has no authentication", file=sys.stderr)


def _open_remotes(
    runner: LiveRunner, options: LiveOptions, osc_in: tuple[str, int], config: rust_engine.EngineConfig
) -> tuple[OscControlIn, OscQueryServer | None]:
    """The OSC control in and (with `options.oscquery`) the OSCQuery server, both clients of
    the runner: bound before the JACK client opens, so a busy port fails before anything is live."""
    from bridge.osc_in import CONTROL, OscControlIn
    from bridge.oscquery import OscQueryServer

    try:
        receiver = OscControlIn(runner, *osc_in, options.osc_prefix)
    except OSError as e:
        flag = "--osc-in" if options.osc_in is not None else "--oscquery (its OSC control in)"
        raise BridgeError(f"{flag}: cannot listen on {osc_in[0]}:{osc_in[1]}: {e.strerror or e}") from None
    print(f"daw-bridge: OSC control in on udp {_host_port(receiver.host, receiver.port)} "
          f"({options.osc_prefix}/{CONTROL}/...)", file=sys.stderr)
    if options.oscquery is None:
        return receiver, None
    host, port = options.oscquery
    try:
        query = OscQueryServer(
            host, port, name=runner.options.client_name, prefix=options.osc_prefix, n_inputs=options.inputs,
            bands=int(config.to_dict()["features"]["bands"]), rate_hz=options.osc_rate,
            osc_in=(receiver.host, receiver.port), snapshot=runner.snapshot,
        )
    except OSError as e:
        receiver.close()
        raise BridgeError(f"--oscquery: cannot listen on {host}:{port}: {e.strerror or e}") from None
    runner.event_sinks.append(query.publish)
    print(f"daw-bridge: OSCQuery namespace {query.url} (LISTEN over WebSocket on the same port)", file=sys.stderr)
    return receiver, query


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _start_demo_player(audio: Path, client: str, inputs: int) -> subprocess.Popen[bytes]:
    """Loops `audio` into the bridge from a process of its own: a Python process
    callback here would wait for the GIL behind the TUI and chop the audio."""
    if not audio.is_file():
        raise BridgeError(f"demo audio '{audio}' not found")
    ports = [arg for k in range(1, inputs + 1) for arg in ("--to", f"{client}:{addresses.input_port(k)}")]
    return subprocess.Popen(
        [sys.executable, "-m", "bridge.player", str(audio), "--name", client + addresses.DEMO_CLIENT_SUFFIX, "--loop", *ports],
        stdin=subprocess.DEVNULL,
        # Also when the bridge is SIGKILLed; started from the main thread.
        preexec_fn=processes.die_with_parent,  # noqa: PLW1509 - prctl must run in the child
    )


def _note_line(k: int, kind: str, note: int, velocity: int, t: float) -> str:
    from bridge.analyze import note_name

    what = f"on  {note_name(note):<4} vel {velocity:3d}" if kind == "note_on" else f"off {note_name(note):<4}"
    return f"{t:9.3f}  in_{k}  {what}"


def _xrun_summary(snap: Snapshot) -> str:
    """"3 xruns", and the periods the server skipped the bridge for and the dropouts
    it heard, when there were any."""
    skipped = f", {snap.skipped_periods} periods skipped" if snap.skipped_periods else ""
    dropouts = f", {snap.dropouts} dropouts" if snap.dropouts else ""
    return f"{snap.xruns} xruns{skipped}{dropouts}"


def _drain_lines(lines: queue.SimpleQueue[str]) -> None:
    while not lines.empty():
        print(lines.get(), flush=True)


def _live_log(runner: LiveRunner, lines: queue.SimpleQueue[str], duration: float | None) -> None:
    """Prints notes as they are sent and status changes, from the main thread."""
    end = time.monotonic() + duration if duration is not None else None
    status = runner.snapshot().status
    while end is None or time.monotonic() < end:
        time.sleep(0.05)
        _drain_lines(lines)
        if runner.failure is not None:
            return  # run() reports it
        now = runner.snapshot().status
        if now != status:
            status = now
            print(f"daw-bridge: {status}", file=sys.stderr, flush=True)
