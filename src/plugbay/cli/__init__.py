"""The ``plugbay`` command, and the functions that mount it in a host's own CLI."""

from __future__ import annotations

from .app import add_plugin_commands, command_group, main, mount

__all__ = ["add_plugin_commands", "command_group", "main", "mount"]
