"""Permissions: what plugins ask for (``[permissions]``) and what the user grants.

A manifest's ``[permissions]`` table lists what a plugin needs: network endpoints,
filesystem paths to read and write, environment variables, and running subprocesses. The
user grants them in ``config.toml`` (``[grants."<id>"]``) or with ``plugbay grant``.
Out-of-process and WebAssembly plugins load only when everything they ask for is granted;
in-process Python plugins run with the host's rights, so for them this is information,
not enforcement. Hosts check grants at their own points with :meth:`Permissions.check`.

Kinds and values (``kind=value`` on the command line):

- ``env=NAME``: the variable reaches the plugin's process (exact name);
- ``network=HOST:PORT`` (``HOST`` alone or ``HOST:*``: any port; ``*`` in the host matches
  any run of characters, dots included: ``*.acme.test:443``; ``*`` alone: anywhere;
  IPv6 addresses in brackets, ``[::1]:8080``);
- ``filesystem.read=PATH`` / ``filesystem.write=PATH``: the path and what is under it
  (``~`` expanded, ``..`` and symbolic links resolved before comparing; a write grant
  also allows reading);
- ``subprocess=true`` (or ``false``).

Everything here is pure but the path comparison, which resolves symbolic links.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from difflib import get_close_matches
from pathlib import PurePath
from typing import TYPE_CHECKING, Protocol

import msgspec

from .config import Grants, HostConfig
from .errors import ConfigError, PermissionDenied, _grant_command

if TYPE_CHECKING:
    from collections.abc import Callable

    from .manifest import Permissions as Requested
    from .manifest import PluginInfo

    _Bad = Callable[[str], ConfigError]

__all__ = [
    "BASE_ENV",
    "KINDS",
    "PermissionStatus",
    "Permissions",
    "asked_for",
    "check_kind",
    "child_environment",
    "covers",
    "enforced",
    "grant_command",
    "granted_pairs",
    "normalise",
    "parse_permission",
    "parse_revocation",
    "requested_pairs",
    "same_permission",
]

#: The permission kinds, as written on the command line.
KINDS = ("env", "network", "filesystem.read", "filesystem.write", "subprocess")

#: Variables every out-of-process plugin gets, granted or not (besides the protocol's own).
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST = re.compile(r"[A-Za-z0-9._*-]+")
_SOURCE = "permission"


# ---------------------------------------------------------------- parsing


def parse_permission(text: str) -> tuple[str, str]:
    """``KIND=VALUE`` (as given to ``plugbay grant``), checked and normalised.

    Raises ConfigError naming the text and saying what would be accepted: an unknown kind
    (with a "did you mean"), a missing or empty value, or a value that does not fit its
    kind (``subprocess`` takes ``true`` or ``false``).
    """
    kind, sep, value = text.partition("=")
    kind = _known_kind(kind.strip(), text)
    if not sep:
        example = "subprocess=true" if kind == "subprocess" else f"{kind}={_EXAMPLES[kind]}"
        raise ConfigError(_SOURCE, text, f"give a value, as KIND=VALUE (e.g. {example})", text)
    return kind, normalise(kind, value, text)


def parse_revocation(text: str) -> tuple[str, str | None]:
    """``KIND=VALUE`` or a bare ``KIND`` (every value of that kind), as ``plugbay revoke`` takes."""
    if "=" in text:
        return parse_permission(text)
    return _known_kind(text.strip(), text), None


_EXAMPLES = {
    "env": "API_TOKEN",
    "network": "api.example.test:443",
    "filesystem.read": "~/.config/example",
    "filesystem.write": "~/.cache/example",
}


def check_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`KINDS`; else ConfigError with a "did you mean"."""
    return _known_kind(kind, kind)


def _known_kind(kind: str, text: str) -> str:
    if kind in KINDS:
        return kind
    if kind in ("filesystem", "fs", "read", "write", "path"):
        hint = "say which access: filesystem.read=PATH or filesystem.write=PATH"
    else:
        close = get_close_matches(kind, KINDS, n=1, cutoff=0.5)
        hint = f'did you mean "{close[0]}"?' if close else "use KIND=VALUE"
        hint += f" (kinds: {', '.join(KINDS)})"
    what = f"unknown permission kind {kind!r}" if kind else "no permission kind"
    raise ConfigError(_SOURCE, text, f"{what}; {hint}", text)


def normalise(kind: str, value: str, text: str | None = None) -> str:
    """``value`` checked against ``kind``, in its written form (network hosts lower-cased).

    ``text`` is what to name in the error (default ``kind=value``).
    """
    where = text if text is not None else f"{kind}={value}"
    _known_kind(kind, where)

    def bad(problem: str) -> ConfigError:
        return ConfigError(_SOURCE, where, problem, value)

    if kind == "subprocess":
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise bad(f"subprocess takes true or false, not {value!r}")
        return lowered
    if not value.strip():
        raise bad(f"the value is empty; give one, e.g. {kind}={_EXAMPLES.get(kind, 'VALUE')}")
    if "\0" in value:
        raise bad("the value contains a NUL character")
    if kind == "env":
        if value.startswith("$"):
            raise bad(f"write the variable's name without $: env={value.lstrip('$')}")
        if not _ENV_NAME.fullmatch(value):
            raise bad(
                f"{value!r} is not an environment variable name (letters, digits and _, not "
                "starting with a digit; one exact name, no wildcards)"
            )
        return value
    if kind == "network":
        return _normalise_endpoint(value, bad)
    return value  # filesystem paths: kept as written, "~" and all; compared resolved


def _normalise_endpoint(value: str, bad: _Bad) -> str:
    if value == "*":
        return value
    if "://" in value or "/" in value:
        raise bad(
            f"{value!r} is not HOST or HOST:PORT; give the host and port, not a URL "
            "(e.g. api.example.test:443)"
        )
    host, port = _split_endpoint(value)
    bracketed = host.startswith("[")
    if not bracketed and ":" in host:
        raise bad(f"write an IPv6 address in brackets, e.g. [{value}] or [{value}]:443")
    if bracketed:
        if not re.fullmatch(r"\[[0-9A-Fa-f:.*]+\]", host):
            raise bad(f"{host!r} is not an IPv6 address in brackets")
    elif not _HOST.fullmatch(host):
        raise bad(
            f"{host!r} is not a host name pattern (letters, digits, '.', '-', '_' and '*' "
            "wildcards)"
        )
    if port is not None and port != "*" and not (port.isdigit() and 0 < int(port) < 65536):
        raise bad(f"{port!r} is not a port: give a number from 1 to 65535, or *")
    host = host.lower()
    return host if port in (None, "*") else f"{host}:{int(port)}"


def _split_endpoint(text: str) -> tuple[str, str | None]:
    """``(host, port)`` of ``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT`` (port None: any)."""
    if text.startswith("["):
        end = text.find("]")
        if end != -1:
            rest = text[end + 1 :]
            return text[: end + 1], rest[1:] if rest.startswith(":") else None
        return text, None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, None  # no port, or an IPv6 address without brackets


# ---------------------------------------------------------------- matching


def requested_pairs(asked: Requested) -> Iterator[tuple[str, str]]:
    """Each permission a manifest asks for, as ``(kind, value)``."""
    yield from _pairs(asked.env, asked.network, asked.filesystem, asked.subprocess)


def granted_pairs(grants: Grants) -> Iterator[tuple[str, str]]:
    """Each permission granted, as ``(kind, value)`` (``subprocess`` only when true)."""
    yield from _pairs(grants.env, grants.network, grants.filesystem, grants.subprocess)


class _Filesystem(Protocol):
    @property
    def read(self) -> Sequence[str]: ...
    @property
    def write(self) -> Sequence[str]: ...


def _pairs(
    env: Iterable[str], network: Iterable[str], filesystem: _Filesystem, subprocess: bool
) -> Iterator[tuple[str, str]]:
    for name in env:
        yield "env", name
    for endpoint in network:
        yield "network", endpoint
    for path in filesystem.read:
        yield "filesystem.read", path
    for path in filesystem.write:
        yield "filesystem.write", path
    if subprocess:
        yield "subprocess", "true"


def covers(kind: str, granted: str, value: str) -> bool:
    """Whether the granted value ``granted`` of ``kind`` allows ``value``.

    For ``filesystem.read`` this looks at one granted path only; :meth:`Permissions.allows`
    also counts write grants as read grants.
    """
    if kind == "env":
        return granted == value
    if kind == "network":
        return _endpoint_matches(granted, value)
    if kind in ("filesystem.read", "filesystem.write"):
        return _under(value, granted)
    if kind == "subprocess":
        return _truthy(granted) or not _truthy(value)
    _known_kind(kind, f"{kind}={value}")
    raise AssertionError  # pragma: no cover - _known_kind raised


def same_permission(kind: str, a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are the same grant of ``kind`` (the same text, normalised).

    Used to keep grants free of duplicates and to find what ``revoke`` removes; a broader
    grant that merely covers the other is not the same.
    """
    if kind == "network":
        return _endpoint_key(a) == _endpoint_key(b)
    if kind in ("filesystem.read", "filesystem.write"):
        return _lexical(a) == _lexical(b)
    if kind == "subprocess":
        return _truthy(a) == _truthy(b)
    return a == b


def _truthy(value: str) -> bool:
    return value.strip().lower() == "true"


def _endpoint_key(text: str) -> tuple[str, str]:
    if text == "*":
        return "*", "*"
    host, port = _split_endpoint(text)
    return host.lower(), port or "*"


def _endpoint_matches(pattern: str, endpoint: str) -> bool:
    if pattern == "*":
        return True
    p_host, p_port = _split_endpoint(pattern)
    e_host, e_port = _split_endpoint(endpoint)
    # A grant with a port allows that port only: not an endpoint asking for any port.
    if p_port not in (None, "*") and p_port != e_port:
        return False
    return _glob(p_host).fullmatch(e_host.lower()) is not None


def _glob(pattern: str) -> re.Pattern[str]:
    # Only "*" is special (fnmatch's "?" and "[...]" would misread IPv6 brackets). Matched
    # against a value that has "*" itself (a manifest asking for *.acme.test), a "*" of
    # the value can only be matched by a "*" of the pattern: a broader grant covers it, a
    # narrower one does not.
    return re.compile(".*".join(re.escape(part) for part in pattern.lower().split("*")))


def _lexical(path: str) -> str:
    return os.path.normpath(os.path.expanduser(path))


def _resolved(path: str) -> PurePath:
    # realpath: ".." after a symbolic link, and a link inside a granted folder that points
    # out of it, are judged by where they really lead.
    return PurePath(os.path.realpath(os.path.expanduser(path)))


def _under(path: str, granted: str) -> bool:
    target, base = _resolved(path), _resolved(granted)
    return target == base or base in target.parents


def enforced(plugin: PluginInfo) -> bool:
    """Whether the plugin's permissions are enforced: it runs out of process or sandboxed.

    In-process Python plugins run with the host's rights; their permissions are shown,
    not enforced.
    """
    return plugin.runtime != "python" or plugin.isolation == "process"


def grant_command(plugin_id: str, pairs: Iterable[tuple[str, str]]) -> str:
    """The ``plugbay grant`` command line that grants ``pairs``, quoted for a POSIX shell."""
    return _grant_command(plugin_id, pairs)


# ---------------------------------------------------------------- a host's grants


class PermissionStatus(msgspec.Struct, frozen=True, gc=False):
    """One permission a plugin asks for, and whether it is granted."""

    kind: str
    value: str
    granted: bool

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


class Permissions:
    """The grants of one host's config; ``host.permissions``."""

    def __init__(self, config: HostConfig) -> None:
        self._grants = config.grants

    def granted(self, plugin_id: str) -> Grants:
        """What the user granted ``plugin_id`` (nothing, if it has no ``[grants]`` table)."""
        return self._grants.get(plugin_id, Grants())

    def allows(self, plugin_id: str, kind: str, value: str) -> bool:
        """Whether ``plugin_id`` holds the permission ``kind=value``.

        Raises ConfigError for an unknown ``kind``.
        """
        return _granted(self.granted(plugin_id), kind, value)

    def check(self, plugin_id: str, kind: str, value: str) -> None:
        """Raise PermissionDenied unless ``plugin_id`` holds ``kind=value``."""
        if not self.allows(plugin_id, kind, value):
            raise PermissionDenied(plugin_id, kind, value)

    def missing(self, plugin_id: str, asked: Requested) -> list[tuple[str, str]]:
        """What the plugin asks for and has not been granted, as ``(kind, value)`` pairs."""
        grants = self.granted(plugin_id)
        return [(k, v) for k, v in requested_pairs(asked) if not _granted(grants, k, v)]

    def require(self, plugin_id: str, asked: Requested) -> None:
        """Raise PermissionDenied unless everything the plugin asks for is granted.

        The error names every missing permission (the first as ``kind``/``value``, all
        of them in ``missing``) and the ``plugbay grant`` command that grants them.
        """
        missing = self.missing(plugin_id, asked)
        if missing:
            raise PermissionDenied(plugin_id, *missing[0], more=missing[1:])

    def report(self, plugin_id: str, asked: Requested) -> list[PermissionStatus]:
        """Each permission the plugin asks for, in manifest order, granted or not."""
        grants = self.granted(plugin_id)
        return [PermissionStatus(k, v, _granted(grants, k, v)) for k, v in requested_pairs(asked)]


def asked_for(kind: str, value: str, asked: Requested) -> bool:
    """Whether granting ``kind=value`` gives the plugin something it asks for.

    True when the grant covers at least one permission of the same kind in ``asked``; a
    grant nothing asks for is allowed, but worth a warning.
    """
    if kind == "subprocess":
        return asked.subprocess or not _truthy(value)
    return any(k == kind and covers(kind, value, v) for k, v in requested_pairs(asked))


def _granted(grants: Grants, kind: str, value: str) -> bool:
    if kind == "subprocess":
        return grants.subprocess or not _truthy(value)
    check_kind(kind)
    # A write grant is a read grant too.
    kinds = (kind, "filesystem.write") if kind == "filesystem.read" else (kind,)
    return any(k in kinds and covers(kind, have, value) for k, have in granted_pairs(grants))


def child_environment(
    grants: Grants, environ: Mapping[str, str], extra: Mapping[str, str] = {}
) -> dict[str, str]:
    """The environment of an out-of-process plugin: the base variables, the granted ones,
    then ``extra`` (the protocol's own), nothing else from ``environ``."""
    env = {name: environ[name] for name in (*BASE_ENV, *grants.env) if name in environ}
    env.update(extra)
    return env
