"""The DAW templates, shipped as package data.

`daw-bridge templates install` copies them from here (through
importlib.resources, so it works from a wheel as from the source tree):
ardour/daw-bridge/ is an Ardour 7/8 session template folder, reaper/ holds a
track template, a project template and an OSC pattern file.
"""
