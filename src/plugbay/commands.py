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

import msgspec

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

# A whole escape sequence, 7-bit or 8-bit, so that no printable remnant is left: CSI
# (ESC [ or 0x9b, parameters, intermediates, final byte); OSC, DCS, SOS, PM and APC strings
# up to BEL or ST (or the end: an unterminated one would swallow the terminal's output
# anyway); ESC with intermediates and a final byte (nF, e.g. ESC ( B); ESC and one byte.
_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]+[0-~]"
    r"|\x1b[0-~]"
)
# Then the remaining C0 and C1 control characters and DEL; tab is kept (it is ordinary
# text in an argument).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")

#: ``authorize(command, plugin_id, args) -> bool``
Authorizer = Callable[[str, str, Sequence[str]], bool]


class CommandInfo(msgspec.Struct, frozen=True, gc=False):
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
        # surrogatepass: argv may hold lone surrogates (os.fsdecode of undecodable bytes).
        size = len(arg.encode("utf-8", "surrogatepass"))
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

    ``reserved`` are the host CLI's own command names. Returns the usable commands by
    name, and a reason naming both sides for each refused ``(plugin_id, name)``.
    """
    own = set(reserved)
    usable: dict[str, CommandInfo] = {}
    refused: dict[tuple[str, str], str] = {}
    for c in commands:
        refused_by = f"command {c.name!r} from {c.plugin_id} is refused: "
        if c.name in own:
            refused[(c.plugin_id, c.name)] = (
                f"{refused_by}the host's command line already has a command named {c.name!r}; "
                "rename the command in the plugin's manifest"
            )
        elif c.name in RESERVED_COMMANDS:
            refused[(c.plugin_id, c.name)] = (
                f"{refused_by}{c.name!r} is a name plugbay reserves for its own commands; "
                "rename the command in the plugin's manifest"
            )
        elif c.name in usable:
            refused[(c.plugin_id, c.name)] = (
                f"{refused_by}{usable[c.name].plugin_id} already provides {c.name!r}; "
                "disable one of the two plugins"
            )
        else:
            usable[c.name] = c
    return usable, refused


class ActivityLock:
    """Many commands may run at once; a reload or unload waits until none runs.

    Re-entrant per thread: a command that runs another command does not wait behind a
    pending unload (which is itself waiting for the first command), an unload may nest
    inside another (``stop()`` stops each plugin), and a command that tries to unload or
    reload plugins gets an error instead of waiting for itself.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._changing = 0
        self._local = threading.local()

    def _commands(self) -> list[str]:
        """The commands this thread is running, outermost first."""
        found: list[str] | None = getattr(self._local, "commands", None)
        if found is None:
            found = self._local.commands = []
        return found

    def _changes(self) -> int:
        return int(getattr(self._local, "changes", 0))

    @contextmanager
    def running(self, command: str = "") -> Iterator[None]:
        """Held while the plugin command ``command`` runs."""
        stack = self._commands()
        with self._cond:
            while self._changing and not stack and not self._changes():
                self._cond.wait()
            self._running += 1
        stack.append(command)
        try:
            yield
        finally:
            stack.pop()
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def check(self, action: str) -> None:
        """Raise CommandError if this thread is inside a plugin command.

        ``action`` names what was attempted (``"restart"``), for the message.
        """
        stack = self._commands()
        if stack:
            raise CommandError(
                stack[-1],
                f"{action} cannot be called from inside a plugin command ({stack[-1]}): "
                "plugins are not stopped, restarted or reloaded while a command runs, and "
                "this command would wait for itself; do it after the command returns",
            )

    @contextmanager
    def changing(self, action: str = "unload") -> Iterator[None]:
        """Held while plugins are unloaded or reloaded; waits for running commands."""
        self.check(action)
        nested = self._changes() > 0
        if not nested:
            with self._cond:
                self._changing += 1
                try:
                    while self._running:
                        self._cond.wait()
                except BaseException:
                    self._changing -= 1
                    self._cond.notify_all()
                    raise
        self._local.changes = self._changes() + 1
        try:
            yield
        finally:
            self._local.changes = self._changes() - 1
            if not nested:
                with self._cond:
                    self._changing -= 1
                    self._cond.notify_all()
