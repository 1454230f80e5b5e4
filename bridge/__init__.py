"""daw-bridge: analyses a DAW's audio (pitch, onsets, dynamics) and sends it on as MIDI and OSC.

The analysis itself is the Rust extension ``rust_engine``; this package holds
the Python around it: the command line, offline file analysis, and the JACK,
MIDI and OSC plumbing of the live bridge.
"""

import importlib.util

# From a checkout, Python without the built extension would take the crate folder rust_engine/ for
# an empty namespace package and fail at its first attribute. Found, not imported: `--help` does
# not load the engine.
_engine = importlib.util.find_spec("rust_engine")
if _engine is None or _engine.origin is None:
    raise ImportError(
        "the Rust engine (module rust_engine) is not built for this Python: run `make install` "
        "and use .venv/bin/python, or `pip install .`"
    )
