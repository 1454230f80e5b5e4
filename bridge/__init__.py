"""daw-bridge: analyses a DAW's audio (pitch, onsets, dynamics) and sends it on as MIDI and OSC.

The analysis itself is the Rust extension ``rust_engine``; this package holds
the Python around it: the command line, offline file analysis, and the JACK,
MIDI and OSC plumbing of the live bridge.
"""
