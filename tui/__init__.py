"""The Textual terminal UI that monitors and steers a running daw-bridge."""
