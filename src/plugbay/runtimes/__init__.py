"""Runtimes load and unload a plugin's code. Each runtime is one module here."""

from __future__ import annotations

from .python import PythonRuntime

__all__ = ["PythonRuntime"]
