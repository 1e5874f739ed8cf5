"""Plugin-contributed commands: naming rules, argument sanitising, authorisation.

A plugin declares commands in its manifest (``[[contributes.command]]``), so a host's CLI
lists them, and shows their help, without importing the plugin. Running one loads the
plugin and calls its entry with the sanitised arguments: ``entry(args: list[str])``,
returning an exit code (None means 0).

Rules:

- a command name must not collide with a reserved name (the host's own commands plus
  :data:`RESERVED_COMMANDS`) nor with another plugin's command: the later one (by the
  registry's rule: lower search-path precedence, then plugin id) is refused;
- each argument is at most :data:`MAX_ARGUMENT_BYTES` bytes (UTF-8) and loses its
  control characters (escape sequences included) before the plugin sees it;
- a command declared ``requires-auth = true`` runs only if the host's authoriser says
  yes; a host without an authoriser refuses such commands.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import CommandError

__all__ = [
    "MAX_ARGUMENT_BYTES",
    "RESERVED_COMMANDS",
    "ActivityLock",
    "Authorizer",
    "CommandInfo",
    "refusals",
    "sanitize_args",
]

#: Names no plugin command may take, whatever the host: plugbay's own management commands
#: and the words CLIs conventionally keep for themselves.
RESERVED_COMMANDS = frozenset(
    {
        "build", "config", "disable", "doctor", "download", "enable", "help", "index", "info",
        "install", "key", "list", "load", "lock", "new", "plugin", "plugins", "remove",
        "run", "sign", "status", "sync", "uninstall", "update", "upgrade", "use", "verify",
        "version", "watch",
    }
)  # fmt: skip

MAX_ARGUMENT_BYTES = 4096

# C0 and C1 control characters and DEL; tab is kept (it is ordinary text in an argument).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# A whole escape sequence (CSI … final byte, OSC … BEL/ST), so no printable remnant is left.
_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")

#: ``authorize(command, plugin_id, args) -> bool``
Authorizer = Callable[[str, str, Sequence[str]], bool]


@dataclass(frozen=True)
class CommandInfo:
    """A plugin command as the manifest declares it (nothing imported)."""

    name: str
    plugin_id: str
    summary: str
    requires_auth: bool
    help: str | None


def sanitize_args(command: str, args: Iterable[str]) -> list[str]:
    """Arguments as a plugin may see them: control characters removed, size checked."""
    out = []
    for n, arg in enumerate(args, start=1):
        size = len(arg.encode("utf-8", "surrogateescape"))
        if size > MAX_ARGUMENT_BYTES:
            raise CommandError(
                command,
                f"argument {n} is {size:,} bytes; a plugin command argument may be at most "
                f"{MAX_ARGUMENT_BYTES:,} bytes (pass large data in a file and give its path)",
            )
        out.append(_CONTROL.sub("", _ESCAPE.sub("", arg)))
    return out


def refusals(
    commands: Iterable[CommandInfo], reserved: Iterable[str]
) -> tuple[dict[str, CommandInfo], dict[tuple[str, str], str]]:
    """Split commands (already in winner-first order per name) into usable and refused.

    Returns the usable commands by name, and a reason for each refused
    ``(plugin_id, name)``.
    """
    taken = set(reserved) | RESERVED_COMMANDS
    usable: dict[str, CommandInfo] = {}
    refused: dict[tuple[str, str], str] = {}
    for c in commands:
        if c.name in taken:
            refused[(c.plugin_id, c.name)] = (
                f"command {c.name!r} from {c.plugin_id} is refused: {c.name!r} is reserved by "
                "the host; rename the command in the plugin's manifest"
            )
        elif c.name in usable:
            refused[(c.plugin_id, c.name)] = (
                f"command {c.name!r} from {c.plugin_id} is refused: {usable[c.name].plugin_id} "
                f"already provides {c.name!r}; disable one of the two plugins"
            )
        else:
            usable[c.name] = c
    return usable, refused


class ActivityLock:
    """Many commands may run at once; a reload or unload waits until none runs.

    Re-entrant per thread: a command that runs another command does not wait behind a
    pending unload (which is itself waiting for the first command), and a command that
    tries to unload or reload plugins gets an error instead of waiting for itself.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._changing = 0
        self._local = threading.local()

    def _depth(self) -> int:
        return int(getattr(self._local, "depth", 0))

    @contextmanager
    def running(self) -> Iterator[None]:
        """Held while a plugin command runs."""
        nested = self._depth() > 0
        with self._cond:
            while self._changing and not nested:
                self._cond.wait()
            self._running += 1
        self._local.depth = self._depth() + 1
        try:
            yield
        finally:
            self._local.depth = self._depth() - 1
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Held while plugins are unloaded or reloaded; waits for running commands."""
        if self._depth() > 0:
            raise CommandError(
                "(running command)",
                "plugins cannot be stopped, restarted or reloaded from inside a plugin command;"
                " do it after the command returns",
            )
        with self._cond:
            self._changing += 1
            while self._running:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._changing -= 1
                self._cond.notify_all()
