"""AI-Teacher shared library (import name `aiteacher`). Submodules are imported on use, never here."""

__version__ = "0.1.0"
