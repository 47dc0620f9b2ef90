"""The reconstruction worker process the Blender add-on talks to: JSON lines in, progress and results out (docs/worker-protocol.md)."""
