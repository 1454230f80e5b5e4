-- Rebuilds daw-bridge/daw-bridge.template with Ardour itself, so the file is
-- always in the format the installed Ardour writes (run it again when Ardour's
-- session format changes).
--
-- Needs a running JACK server with the bridge's client on it (the connections
-- are only kept if the ports exist), then:
--   OUT_DIR=daw_templates/ardour/daw-bridge ardour7-lua daw_templates/ardour/build_template.lua
-- Optional: BRIDGE_IN (default daw-bridge:in_1), BRIDGE_MIDI (default
-- daw-bridge:midi_out); tests/test_templates.py checks them against
-- bridge/addresses.py.

local bridge_in = os.getenv("BRIDGE_IN") or "daw-bridge:in_1"
local bridge_midi = os.getenv("BRIDGE_MIDI") or "daw-bridge:midi_out"
local out_dir = assert(os.getenv("OUT_DIR"), "set OUT_DIR to the template folder")
local work = os.tmpname()
os.remove(work)

assert(AudioEngine:set_backend("JACK", "ardour", ""), "no JACK backend")
assert(AudioEngine:start(false) == 0, "cannot start the JACK backend (is jackd running?)")
local s = assert(create_session(work, "build", 48000), "cannot create a scratch session")
local nogroup = PBD.GroupControlDisposition.NoGroup
local last = ARDOUR.PresentationInfo.max_order

-- Voice: mono input from the first capture port (Ardour's auto-connect), stereo
-- output to the master bus. The bridge hears the voice through an external
-- send placed before the fader (LuaAPI.new_send inserts it before the given
-- processor, here the Amp): the fader and the panner ride what the audience
-- hears, never what the bridge measures. The send is mono, like the track
-- before its panner, so no pan law touches it either.
local voice = s:new_audio_track(1, 2, nil, 1, "Voice", last, ARDOUR.TrackMode.Normal, true, false):front()
local tap = ARDOUR.LuaAPI.new_send(s, voice, voice:amp())
assert(not tap:isnil(), "cannot add the pre-fader send")
local tap_out = tap:to_send():output()
assert(tap_out:audio(0):connect(bridge_in) == 0, "cannot connect to " .. bridge_in)

-- Bridge MIDI: records the bridge's notes; Ardour's bundled ACE Reasonable
-- Synth makes them audible.
local synth = ARDOUR.LuaAPI.new_plugin_info("ACE Reasonable Synth", ARDOUR.PluginType.LV2)
local midi = s:new_midi_track(
  ARDOUR.ChanCount(ARDOUR.DataType("midi"), 1), ARDOUR.ChanCount(ARDOUR.DataType("audio"), 2),
  true, synth, nil, nil, 1, "Bridge MIDI", last, ARDOUR.TrackMode.Normal, true, false):front()
local midi_in = midi:input():midi(0)
midi_in:disconnect_all()
assert(midi_in:connect(bridge_midi) == 0, "cannot connect to " .. bridge_midi)

-- Armed, so that Ardour monitors the voice and records both tracks at once.
voice:rec_enable_control():set_value(1, nogroup)
midi:rec_enable_control():set_value(1, nogroup)
sleep(1) -- rec-enable is applied by the process thread
assert(voice:rec_enable_control():get_value() == 1 and midi:rec_enable_control():get_value() == 1)

-- save_template is not bound to Lua; a template-only snapshot is the same XML
-- (Session::get_template) without the <description> that save_template adds.
assert(s:save_state("daw-bridge", false, false, true, false, false) == 0)
close_session()

local f = assert(io.open(work .. "/daw-bridge.ardour", "r"))
local xml = f:read("a")
f:close()
local description = "  <description>\n    <content>Voice track feeding " .. bridge_in .. " from a pre-fader send"
  .. ", MIDI track recording " .. bridge_midi .. ", both armed. Start daw-bridge before Ardour.</content>\n"
  .. "  </description>\n"
xml = xml:gsub("</Session>", function() return description .. "</Session>" end)
local out = assert(io.open(out_dir .. "/daw-bridge.template", "w"))
out:write(xml)
out:close()
os.execute("rm -rf '" .. work .. "'")
print("wrote " .. out_dir .. "/daw-bridge.template")
quit()
