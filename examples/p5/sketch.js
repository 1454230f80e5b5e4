// daw-bridge's WebSocket feed in p5.js: a circle that follows pitch (height) and level (size)
// and flashes on onsets; notes fall as bars. Every message is one JSON event of the README's
// "Event schema" plus `input`; see "WebSocket feed" there.

const params = new URLSearchParams(location.search);
const FEED = params.get("ws") || "ws://127.0.0.1:8765/ws";
const INPUT = Number(params.get("input") || 1);

let midi = 60, level = 0, flash = 0, socket;
const bars = [];  // {note, y, on}

function connect() {
  socket = new WebSocket(FEED);
  // Only what this sketch draws, and pitch/dynamics at most 60 times a second.
  socket.onopen = () => socket.send(JSON.stringify({
    subscribe: ["pitch", "dynamics", "onset", "note_on", "note_off"], rate_hz: 60,
  }));
  socket.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.input !== undefined && m.input !== INPUT) return;
    if (m.type === "pitch" && m.voiced) midi = m.midi;
    else if (m.type === "dynamics") level = constrain((m.db + 60) / 60, 0, 1);
    else if (m.type === "onset") flash = 1;
    else if (m.type === "note_on") bars.push({ note: m.note, y: 0, on: true });
    else if (m.type === "note_off") for (const b of bars) if (b.note === m.note) b.on = false;
  };
  socket.onclose = () => setTimeout(connect, 1000);  // the bridge restarted: try again
}

function setup() {
  createCanvas(windowWidth, windowHeight);
  colorMode(HSB, 360, 100, 100, 1);
  noStroke();
  connect();
}

function windowResized() {
  resizeCanvas(windowWidth, windowHeight);
}

function draw() {
  background(220, 30, 8, 0.35);
  const x = (note) => map(note, 36, 96, 0, width);
  for (const b of bars) {
    fill((b.note % 12) * 30, 70, 90, b.on ? 0.9 : 0.4);
    rect(x(b.note) - 6, b.y, 12, b.on ? 24 : 12, 4);
    b.y += 2;
  }
  while (bars.length && bars[0].y > height) bars.shift();
  const y = map(midi, 36, 96, height * 0.9, height * 0.1);
  fill((midi % 12) * 30, 60 - 50 * flash, 100, 0.9);
  circle(width / 2, y, 40 + 260 * level + 60 * flash);
  flash = max(0, flash - 0.08);
}
