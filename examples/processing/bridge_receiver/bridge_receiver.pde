// daw-bridge receiver for Processing (needs the oscP5 library:
// Sketch > Import Library > Manage Libraries > "oscP5").
//
// Run the bridge with `daw-bridge run --osc 127.0.0.1:12000`, then this sketch.
// A circle follows the voice: its size is the level (/bridge/dynamics), its
// height the pitch (/bridge/pitch), and it flashes on every onset
// (/bridge/onset); the level in dBFS (/bridge/level) is printed. Addresses: docs/osc.md. With several bridge inputs the
// input number sits after the prefix (/bridge/2/pitch); the tests below
// look only at the last part, so every input drives the same circle.
// With `[osc] bands = true`, `spectrum = true` and `chroma = true` in the
// bridge's config, bars along the bottom show the bands (/bridge/bands, each
// 0..1), twelve dots along the top the chroma (/bridge/chroma, C first), and
// the background's hue the brightness (/bridge/spectrum's centroid).

import oscP5.*;

final int PORT = 12000;

OscP5 osc;
float level = 0;      // linear RMS 0..1
float db = -120;      // RMS in dBFS
float midi = 60;      // fractional MIDI note
float confidence = 0;
float flash = 0;      // 1 at an onset, fades out
int note = -1;        // sounding note, -1 when none
float[] bands = new float[0];     // 0..1 each, lowest band first
float[] chroma = new float[12];   // 0..1 each, C first
float centroid = 0;   // spectral centroid in Hz
float pulse = 0;      // 1 at a beat (more on the downbeat), fades out
float bpm = 0;        // tracked tempo

void setup() {
  size(640, 480);
  colorMode(HSB, 1.0);
  osc = new OscP5(this, PORT);  // bundles are unpacked into single messages
}

// oscP5 calls this from its own thread: only store values here.
void oscEvent(OscMessage m) {
  String a = m.addrPattern();
  if (a.endsWith("/dynamics") && m.checkTypetag("fffi")) {
    level = m.get(0).floatValue();
  } else if (a.endsWith("/level") && m.checkTypetag("f")) {
    db = m.get(0).floatValue();
  } else if (a.endsWith("/pitch") && m.checkTypetag("fff")) {
    if (m.get(1).floatValue() > 0) midi = m.get(1).floatValue();
    confidence = m.get(2).floatValue();
  } else if (a.endsWith("/onset")) {
    flash = 1;
  } else if (a.endsWith("/note") && m.checkTypetag("ii")) {
    note = m.get(1).intValue() > 0 ? m.get(0).intValue() : -1;
  } else if (a.endsWith("/bands")) {
    // As many floats as the bridge's engine.features.bands (default 8).
    float[] b = new float[m.typetag().length()];
    for (int i = 0; i < b.length; i++) b[i] = m.get(i).floatValue();
    bands = b;
  } else if (a.endsWith("/spectrum") && m.checkTypetag("fff")) {
    centroid = m.get(0).floatValue();
  } else if (a.endsWith("/chroma") && m.typetag().length() == 12) {
    for (int i = 0; i < 12; i++) chroma[i] = m.get(i).floatValue();
  } else if (a.endsWith("/beat") && m.checkTypetag("if")) {
    pulse = m.get(0).intValue() == 1 ? 1 : 0.5;
    bpm = m.get(1).floatValue();
  } else if (a.endsWith("/tempo") && m.checkTypetag("ff")) {
    bpm = m.get(0).floatValue();
  }
}

void draw() {
  float bright = centroid > 0 ? constrain(log(centroid / 40.0) / log(400.0), 0, 1) : 0;
  background(bright * 0.7, centroid > 0 ? 0.5 : 0, flash * 0.35);
  flash *= 0.85;
  float y = map(constrain(midi, 36, 96), 36, 96, height - 40, 40);
  float d = 20 + 600 * sqrt(level);
  noStroke();
  fill((midi % 12) / 12.0, 0.8, 0.4 + 0.6 * confidence);
  ellipse(width / 2, y, d, d);
  fill(0, 0, 1);
  text(note >= 0 ? "note " + note : "", 10, 20);
  text(nf(db, 0, 1) + " dBFS", 10, 40);
  float[] b = bands;  // the OSC thread replaces the array, never fills it in place
  for (int i = 0; i < b.length; i++) {
    float w = width / (float) b.length;
    fill(i / (float) b.length, 0.7, 0.9);
    rect(i * w + 2, height - b[i] * 120, w - 4, b[i] * 120);
  }
  for (int i = 0; i < 12; i++) {
    fill(i / 12.0, 0.8, 0.3 + 0.7 * chroma[i]);
    ellipse(width / 2 + (i - 5.5) * 24, 20, 6 + 14 * chroma[i], 6 + 14 * chroma[i]);
  }
  text(bpm > 0 ? nf(bpm, 0, 1) + " BPM" : "", 10, 60);
  fill(0, 0, pulse);
  rect(width - 30, 10, 20, 20);
  pulse *= 0.9;
}
