"""The DAW templates, the OSC docs and the receiving examples agree with bridge/addresses.py.

Every template is parsed as its DAW reads it (Ardour: XML; Reaper: the RPP
chunk format; the OSC pattern file: REAPER's pattern rules), the port names and
OSC addresses found in them are compared with the code, `templates install` is
run as a user runs it into a temporary HOME, and the receiver example gets a
real OSC bundle over UDP.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import UDPClient

from bridge import templates
from bridge.addresses import (
    CLIENT_NAME,
    DEFAULT_OSC_PREFIX,
    MIDI_OUT_PORT,
    OSC_MESSAGES,
    input_port,
    osc_address,
)

ROOT = Path(__file__).resolve().parents[1]
BRIDGE_IN_1 = f"{CLIENT_NAME}:{input_port(1)}"
BRIDGE_MIDI = f"{CLIENT_NAME}:{MIDI_OUT_PORT}"


def packaged(daw: str, *parts: str) -> bytes:
    return templates.template_dir(daw).joinpath(*parts).read_bytes()


# --- Ardour ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ardour_session() -> ET.Element:
    return ET.fromstring(packaged("ardour", templates.ARDOUR_TEMPLATE, f"{templates.ARDOUR_TEMPLATE}.template"))


def route(session: ET.Element, name: str) -> ET.Element:
    found = [r for r in session.iter("Route") if r.get("name") == name]
    assert len(found) == 1, f"expected one route named {name!r}, found {len(found)}"
    return found[0]


def io_ports(r: ET.Element, direction: str) -> list[ET.Element]:
    ios = [io for io in r.findall("IO") if io.get("direction") == direction]
    assert len(ios) == 1
    return ios[0].findall("Port")


def connections(port: ET.Element) -> set[str]:
    return {c.get("other", "") for c in port.findall("Connection")}


def controllable(r: ET.Element, name: str) -> float:
    values = [c.get("value") for c in r.findall("Controllable") if c.get("name") == name]
    assert len(values) == 1
    return float(values[0] or "nan")


def test_ardour_template_is_a_session_template_in_ardour_7_format(ardour_session: ET.Element) -> None:
    assert ardour_session.tag == "Session"
    assert 7000 <= int(ardour_session.get("version", "0")) < 8000
    # A template carries neither the session's name nor its rate: Ardour gives it both.
    assert "name" not in ardour_session.attrib and "sample-rate" not in ardour_session.attrib
    assert ardour_session.find("Sources") is not None and not list(ardour_session.find("Sources"))


def test_ardour_voice_track_feeds_the_bridge_input_before_its_fader(ardour_session: ET.Element) -> None:
    voice = route(ardour_session, "Voice")
    assert "AudioTrack" in voice.find("PresentationInfo").get("flags", "")
    # The panned, faded outputs go to the master bus only, so the singer hears themself ...
    outs = io_ports(voice, "Output")
    assert len(outs) == 2 and all(p.get("type") == "audio" for p in outs)
    for port in outs:
        assert connections(port) == {f"Master/audio_in {outs.index(port) + 1}"}
    # ... and the bridge hears the track from a mono external send placed before the
    # fader (the "amp" processor; "trim" is the input trim) and the panner (main-outs).
    order = [p.get("type") for p in voice.findall("Processor")]
    sends = [p for p in voice.findall("Processor") if p.get("type") == "send"]
    assert len(sends) == 1 and sends[0].get("role") == "Send" and sends[0].get("active") == "1"
    assert order.index("send") < order.index("amp") < order.index("main-outs")
    send_ports = sends[0].find("IO").findall("Port")
    assert [(p.get("type"), connections(p)) for p in send_ports] == [("audio", {BRIDGE_IN_1})]
    send_gain = [c.get("value") for c in sends[0].findall("Controllable") if c.get("name") == "gaincontrol"]
    assert send_gain == ["1"]
    assert controllable(voice, "rec-enable") == 1


def test_ardour_midi_track_records_the_bridge_output(ardour_session: ET.Element) -> None:
    midi = route(ardour_session, "Bridge MIDI")
    assert "MidiTrack" in midi.find("PresentationInfo").get("flags", "")
    ins = io_ports(midi, "Input")
    assert [p.get("type") for p in ins] == ["midi"]
    assert connections(ins[0]) == {BRIDGE_MIDI}
    assert controllable(midi, "rec-enable") == 1
    synths = [p.get("name") for p in midi.findall("Processor") if p.get("type") == "lv2"]
    assert synths == ["ACE Reasonable Synth"]


def test_ardour_template_names_only_real_bridge_ports(ardour_session: ET.Element) -> None:
    bridge_ports = {f"{CLIENT_NAME}:{p}" for p in (input_port(1), MIDI_OUT_PORT)}
    named = {
        c.get("other", "")
        for c in ardour_session.iter("Connection")
        if c.get("other", "").startswith(f"{CLIENT_NAME}:")
    }
    assert named == bridge_ports
    description = ardour_session.findtext("description/content", "")
    assert BRIDGE_IN_1 in description and BRIDGE_MIDI in description


def test_ardour_build_script_defaults_to_the_bridge_ports() -> None:
    lua = templates.template_dir("ardour").joinpath("build_template.lua").read_text()
    assert f'or "{BRIDGE_IN_1}"' in lua and f'or "{BRIDGE_MIDI}"' in lua


# --- Reaper: the RPP chunk format --------------------------------------------------------

_TOKEN = re.compile(r'"([^"]*)"|\'([^\']*)\'|`([^`]*)`|(\S+)')


def rpp_tokens(line: str) -> list[str]:
    """Splits a line as REAPER does: whitespace, with "...", '...' or `...` quoting."""
    return [next(g for g in m.groups() if g is not None) for m in _TOKEN.finditer(line)]


@dataclass
class Chunk:
    name: str
    params: list[str]
    lines: list[list[str]] = field(default_factory=list)
    children: list[Chunk] = field(default_factory=list)

    def get(self, key: str) -> list[str]:
        found = [line[1:] for line in self.lines if line and line[0] == key]
        assert len(found) == 1, f"{self.name}: expected one {key} line, found {len(found)}"
        return found[0]

    def chunks(self, name: str) -> list[Chunk]:
        return [c for c in self.children if c.name == name]


def parse_rpp(text: str) -> list[Chunk]:
    """Top-level chunks of an RPP / track template; fails on unbalanced < >."""
    top: list[Chunk] = []
    stack: list[Chunk] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("<"):
            tokens = rpp_tokens(line[1:])
            assert tokens, f"line {n}: chunk without a name"
            chunk = Chunk(tokens[0], tokens[1:])
            (stack[-1].children if stack else top).append(chunk)
            stack.append(chunk)
        elif line == ">":
            assert stack, f"line {n}: '>' closes no chunk"
            stack.pop()
        else:
            assert stack, f"line {n}: text outside any chunk: {line!r}"
            stack[-1].lines.append(rpp_tokens(line))
    assert not stack, f"unclosed chunk <{stack[-1].name}"
    return top


@pytest.fixture(scope="module")
def rpp() -> Chunk:
    chunks = parse_rpp(packaged("reaper", "daw-bridge.RPP").decode())
    assert [c.name for c in chunks] == ["REAPER_PROJECT"]
    return chunks[0]


def track(project: Chunk, name: str) -> Chunk:
    found = [t for t in project.chunks("TRACK") if t.get("NAME") == [name]]
    assert len(found) == 1
    return found[0]


MIDI_INPUT_FLAG = 4096  # REC input field: MIDI; then 6 bits of device (63 = all), 5 of channel (0 = all)


def test_rpp_project_has_the_two_tracks_in_order(rpp: Chunk) -> None:
    assert rpp.params[0] == "0.1"
    assert [t.get("NAME")[0] for t in rpp.chunks("TRACK")] == ["Voice", "Bridge MIDI"]
    guids = [t.params[0] for t in rpp.chunks("TRACK")]
    assert len(set(guids)) == 2
    for t in rpp.chunks("TRACK"):
        assert re.fullmatch(r"\{[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}\}", t.params[0])
        assert t.get("TRACKID") == [t.params[0]]


def test_rpp_voice_track_records_input_1_and_feeds_the_bridge_output(rpp: Chunk) -> None:
    voice = track(rpp, "Voice")
    armed, rec_input, monitor = (int(v) for v in voice.get("REC")[:3])
    assert (armed, rec_input, monitor) == (1, 0, 1)  # armed, mono input 1, monitoring on
    dest, mode, volume, _pan, mute, _phase, src = voice.get("HWOUT")[:7]
    # 1024 + k = mono hardware output k+1; REAPER on JACK names it REAPER:out<k+1>.
    assert int(dest) == 1024 + templates.REAPER_FEED_OUTPUT - 1
    assert templates.reaper_feed_port() == f"REAPER:out{templates.REAPER_FEED_OUTPUT}"
    assert (int(mode), float(volume), int(mute), int(src)) == (3, 1.0, 0, 1024)  # pre-fader, unity, mono ch 1
    assert voice.get("MAINSEND")[0] == "1"


def test_rpp_midi_track_records_every_midi_input(rpp: Chunk) -> None:
    midi = track(rpp, "Bridge MIDI")
    armed, rec_input, monitor = (int(v) for v in midi.get("REC")[:3])
    assert armed == 1 and monitor == 1
    assert rec_input & MIDI_INPUT_FLAG
    assert (rec_input >> 5) & 63 == 63 and rec_input & 31 == 0  # all devices, all channels
    assert not [line for line in midi.lines if line[0] == "HWOUT"]


def test_track_template_holds_the_project_tracks(rpp: Chunk) -> None:
    tracks = parse_rpp(packaged("reaper", "daw-bridge.RTrackTemplate").decode())
    assert tracks == rpp.chunks("TRACK")


# --- Reaper: the OSC pattern file --------------------------------------------------------

# Keys of REAPER's Default.ReaperOSC that the file may use; REAPER rejects the
# whole file on an unknown key.
REAPER_OSC_KEYS = {
    "DEVICE_TRACK_COUNT", "DEVICE_SEND_COUNT", "DEVICE_RECEIVE_COUNT", "DEVICE_FX_COUNT",
    "DEVICE_FX_PARAM_COUNT", "DEVICE_FX_INST_PARAM_COUNT", "REAPER_TRACK_FOLLOWS",
    "DEVICE_TRACK_FOLLOWS", "DEVICE_TRACK_BANK_FOLLOWS", "DEVICE_FX_FOLLOWS",
    "TRACK_VOLUME", "TRACK_PAN", "TRACK_MUTE", "TRACK_SELECT", "FX_PARAM_VALUE",
    "ACTION", "DEVICE_TRACK_SELECT", "RECORD", "STOP", "PLAY", "TEMPO",
}
FOLLOWS_VALUES = {"REAPER", "DEVICE", "LAST_TOUCHED", "FOCUSED", "MIXER"}


def reaper_osc_entries() -> list[tuple[str, list[str]]]:
    entries = []
    for line in packaged("reaper", "daw-bridge.ReaperOSC").decode().splitlines():
        tokens = line.split()
        if tokens and not tokens[0].startswith("#"):
            entries.append((tokens[0], tokens[1:]))
    return entries


def bridge_address(pattern_address: str) -> str | None:
    """The bridge address a pattern matches ('@' standing for the input number), or None."""
    for kind in OSC_MESSAGES:
        if pattern_address == osc_address(DEFAULT_OSC_PREFIX, 1, 1, kind):
            return pattern_address
        if pattern_address.replace("@", "2") == osc_address(DEFAULT_OSC_PREFIX, 2, 2, kind):
            return pattern_address
    return None


def test_reaper_osc_file_follows_reapers_pattern_rules() -> None:
    entries = reaper_osc_entries()
    assert entries
    for key, values in entries:
        assert key in REAPER_OSC_KEYS, f"REAPER does not know {key}"
        assert values, f"{key} has no pattern"
        if key.endswith("_COUNT"):
            assert len(values) == 1 and values[0].isdigit()
        elif key.endswith("_FOLLOWS"):
            assert len(values) == 1 and values[0] in FOLLOWS_VALUES
        else:
            for pattern in values:
                assert pattern[0] in "nfbtrsi" and pattern[1] == "/", pattern
                assert len(pattern) <= 512


def test_reaper_osc_bridge_patterns_are_bridge_addresses() -> None:
    bridge_patterns = [
        (key, p) for key, values in reaper_osc_entries() for p in values if p[1:].startswith(DEFAULT_OSC_PREFIX + "/")
    ]
    assert bridge_patterns
    for key, pattern in bridge_patterns:
        assert bridge_address(pattern[1:]) is not None, f"{key} {pattern} is no address the bridge sends"
    # The level rides a fader in dB ("f", REAPER's TRACK_VOLUME .../db type), from a message whose
    # first argument, the only one REAPER reads, is that dB value; for one input and input <n> of several.
    first = OSC_MESSAGES["level"].args[0]
    assert (first.type, first.name) == ("f", "db")
    assert ("TRACK_VOLUME", "f" + osc_address(DEFAULT_OSC_PREFIX, 1, 1, "level")) in bridge_patterns
    assert ("TRACK_VOLUME", "f" + osc_address(DEFAULT_OSC_PREFIX, 2, 2, "level").replace("/2/", "/@/")) in bridge_patterns
    assert not [p for key, p in bridge_patterns if key == "TRACK_VOLUME" and p[0] == "n"], "a linear value on the fader"
    # The onset relay's /action message has its pattern.
    assert ("ACTION", ["i/action", "t/action/@"]) in reaper_osc_entries()


# --- templates install -------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME without XDG_CONFIG_HOME, for the CLI subprocesses too."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return home


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("daw-bridge: error:"), result.stderr
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in result.stderr


def test_install_ardour_into_ardour_7_and_8(cli, home: Path) -> None:
    result = cli("templates", "install", "ardour")
    assert result.returncode == 0, result.stderr
    expected = packaged("ardour", "daw-bridge", "daw-bridge.template")
    for version in ("ardour7", "ardour8"):
        installed = home / ".config" / version / "templates" / "daw-bridge" / "daw-bridge.template"
        assert installed.read_bytes() == expected
        assert str(installed) in result.stdout
    assert len(files_under(home)) == 2


def test_install_honours_xdg_config_home(cli, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert cli("templates", "install", "ardour").returncode == 0
    assert cli("templates", "install", "reaper").returncode == 0
    assert (xdg / "ardour8" / "templates" / "daw-bridge" / "daw-bridge.template").exists()
    for name, folder in templates.REAPER_FILES.items():
        assert (xdg / "REAPER" / folder / name).read_bytes() == packaged("reaper", name)
    assert files_under(home) == set()


def test_install_refuses_to_overwrite_without_force(cli, home: Path) -> None:
    assert cli("templates", "install", "ardour").returncode == 0
    mine = home / ".config" / "ardour7" / "templates" / "daw-bridge" / "daw-bridge.template"
    mine.write_text("my own edits")
    before = files_under(home)

    result = cli("templates", "install", "ardour")
    assert_one_line_error(result, str(mine), "--force")
    assert mine.read_text() == "my own edits" and files_under(home) == before

    assert cli("templates", "install", "ardour", "--force").returncode == 0
    assert mine.read_bytes() == packaged("ardour", "daw-bridge", "daw-bridge.template")


def test_refusal_leaves_nothing_behind(cli, tmp_path: Path, home: Path) -> None:
    dest = tmp_path / "reaper-portable"
    taken = dest / "OSC" / "daw-bridge.ReaperOSC"
    taken.parent.mkdir(parents=True)
    taken.write_text("# mine\n")
    result = cli("templates", "install", "reaper", "--dest", dest)
    assert_one_line_error(result, "already exists")
    assert files_under(dest) == {taken}


def test_install_reaper_into_a_resource_path(cli, tmp_path: Path, home: Path) -> None:
    dest = tmp_path / "reaper-portable"
    result = cli("templates", "install", "reaper", "--dest", dest)
    assert result.returncode == 0, result.stderr
    assert files_under(dest) == {dest / folder / name for name, folder in templates.REAPER_FILES.items()}
    assert templates.reaper_feed_port() in result.stdout


def test_install_into_an_unwritable_place_is_one_line(cli, tmp_path: Path, home: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert_one_line_error(cli("templates", "install", "reaper", "--dest", blocker), "cannot install")
    assert blocker.read_text() == ""


def test_install_rejects_an_unknown_daw(cli, home: Path) -> None:
    assert_one_line_error(cli("templates", "install", "cubase"), "cubase")
    assert files_under(home) == set()


# --- docs and examples -------------------------------------------------------------------


def test_committed_osc_reference_is_generated_from_the_code() -> None:
    spec = importlib.util.spec_from_file_location("gen_osc", ROOT / "docs" / "gen_osc.py")
    assert spec is not None and spec.loader is not None
    gen_osc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_osc)
    assert (ROOT / "docs" / "osc.md").read_text() == gen_osc.render()


def test_readme_osc_table_is_the_code_s() -> None:
    from bridge.addresses import osc_reference_markdown

    assert osc_reference_markdown().strip() in (ROOT / "README.md").read_text()


def test_guide_uses_the_code_names() -> None:
    guide = (ROOT / "README.md").read_text()
    for name in (BRIDGE_IN_1, BRIDGE_MIDI, templates.reaper_feed_port(), DEFAULT_OSC_PREFIX + "/level"):
        assert name in guide, name
    for heading in ("## Use with Ardour", "## Use with Reaper", "## Drive visuals"):
        assert heading in guide


def test_processing_sketch_listens_for_the_bridge_kinds() -> None:
    sketch = (ROOT / "examples" / "processing" / "bridge_receiver" / "bridge_receiver.pde").read_text()
    for kind in OSC_MESSAGES:
        assert f'endsWith("/{kind}")' in sketch
    # Where the sketch checks argument types, they are the types the bridge sends.
    checked = re.findall(r'endsWith\("/(\w+)"\) && m\.checkTypetag\("(\w+)"\)', sketch)
    assert checked
    for kind, typetag in checked:
        assert typetag == "".join(a.type for a in OSC_MESSAGES[kind].args), kind


def _lines(stream, out: queue.Queue[str]) -> None:
    for line in stream:
        out.put(line)


def test_receiver_example_prints_a_real_bundle(tmp_path: Path) -> None:
    """As the README runs it on a visuals machine: a copy of the file, a Python with
    python-osc and nothing else (no site-packages, no bridge), listening on every interface."""
    import pythonosc

    only_osc = tmp_path / "site"
    only_osc.mkdir()
    (only_osc / "pythonosc").symlink_to(Path(pythonosc.__file__).parent)
    script = tmp_path / "osc_receiver.py"
    shutil.copy(ROOT / "examples" / "osc_receiver.py", script)
    proc = subprocess.Popen(
        [sys.executable, "-S", str(script), "--port", "0", "--count", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(only_osc), "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        first = lines.get(timeout=30)
        port = int(re.fullmatch(r"listening on 0\.0\.0\.0:(\d+)\n", first).group(1))

        bundle = OscBundleBuilder(IMMEDIATELY)
        for kind, values in (("pitch", (440.0, 69.0, 0.9)), ("onset", (2.5,)), ("dynamics", (0.1, 0.3, -20.0, 64))):
            msg = OscMessageBuilder(osc_address(DEFAULT_OSC_PREFIX, 1, 1, kind))
            for arg, value in zip(OSC_MESSAGES[kind].args, values):
                msg.add_arg(value, arg.type)
            bundle.add_content(msg.build())
        UDPClient("127.0.0.1", port).send(bundle.build())

        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        printed = [lines.get(timeout=5) for _ in range(3)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    bodies = [line.split(" ", 1)[1].strip() for line in printed]
    assert bodies == [
        "/bridge/pitch hz=440 midi=69 confidence=0.9",
        "/bridge/onset strength=2.5",
        "/bridge/dynamics rms=0.1 peak=0.3 db=-20 velocity=64",
    ]


def test_receiver_example_names_the_arguments_as_the_bridge_does() -> None:
    spec = importlib.util.spec_from_file_location("osc_receiver", ROOT / "examples" / "osc_receiver.py")
    assert spec is not None and spec.loader is not None
    receiver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(receiver)
    assert receiver.ARG_NAMES == {kind: [a.name for a in s.args] for kind, s in OSC_MESSAGES.items()}
