"""Permissions: what plugins ask for (``[permissions]``) and what the user grants.

A manifest's ``[permissions]`` table lists what a plugin needs: network endpoints,
filesystem paths to read and write, environment variables, and running subprocesses. The
user grants them in ``config.toml`` (``[grants."<id>"]``) or with ``plugbay grant``.
Out-of-process and WebAssembly plugins load only when everything they ask for is granted;
in-process Python plugins run with the host's rights, so for them this is information,
not enforcement. Hosts check grants at their own points with :meth:`Permissions.check`.

Kinds and values (``kind=value`` on the command line):

- ``env=NAME``: the variable reaches the plugin's process;
- ``network=HOST:PORT`` (``HOST`` alone: any port; ``*`` wildcards, ``*.acme.test:443``);
- ``filesystem.read=PATH`` / ``filesystem.write=PATH``: the path and what is under it
  (``~`` expanded; a write grant also allows reading);
- ``subprocess=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from pathlib import PurePath

from .config import Grants, HostConfig
from .errors import PermissionDenied
from .manifest import Permissions as Requested

__all__ = ["KINDS", "Permissions", "child_environment", "requested_pairs"]

#: The permission kinds, as written on the command line.
KINDS = ("env", "network", "filesystem.read", "filesystem.write", "subprocess")

#: Variables every out-of-process plugin gets, granted or not (besides the protocol's own).
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def requested_pairs(asked: Requested) -> Iterator[tuple[str, str]]:
    """Each permission a manifest asks for, as ``(kind, value)``."""
    for name in asked.env:
        yield "env", name
    for endpoint in asked.network:
        yield "network", endpoint
    for path in asked.filesystem.read:
        yield "filesystem.read", path
    for path in asked.filesystem.write:
        yield "filesystem.write", path
    if asked.subprocess:
        yield "subprocess", "true"


def _granted(grants: Grants, kind: str, value: str) -> bool:
    if kind == "env":
        return value in grants.env
    if kind == "network":
        return any(_endpoint_matches(pattern, value) for pattern in grants.network)
    if kind == "filesystem.read":
        paths = (*grants.filesystem.read, *grants.filesystem.write)
        return any(_under(value, granted) for granted in paths)
    if kind == "filesystem.write":
        return any(_under(value, granted) for granted in grants.filesystem.write)
    if kind == "subprocess":
        return grants.subprocess
    raise ValueError(f"unknown permission kind {kind!r} (known: {', '.join(KINDS)})")


def _endpoint_matches(pattern: str, endpoint: str) -> bool:
    if pattern == "*":
        return True
    p_host, _, p_port = pattern.rpartition(":") if ":" in pattern else (pattern, "", "")
    e_host, _, e_port = endpoint.rpartition(":") if ":" in endpoint else (endpoint, "", "")
    if p_port and p_port not in (e_port, "*"):
        return False
    return fnmatchcase(e_host.lower(), p_host.lower())


def _under(path: str, granted: str) -> bool:
    target = PurePath(os.path.normpath(os.path.expanduser(path)))
    base = PurePath(os.path.normpath(os.path.expanduser(granted)))
    return target == base or base in target.parents


class Permissions:
    """The grants of one host's config; ``host.permissions``."""

    def __init__(self, config: HostConfig) -> None:
        self._grants = config.grants

    def granted(self, plugin_id: str) -> Grants:
        """What the user granted ``plugin_id`` (nothing, if it has no ``[grants]`` table)."""
        return self._grants.get(plugin_id, Grants())

    def allows(self, plugin_id: str, kind: str, value: str) -> bool:
        """Whether ``plugin_id`` holds the permission ``kind=value``."""
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
        """Raise PermissionDenied for the first permission asked for and not granted."""
        missing = self.missing(plugin_id, asked)
        if missing:
            raise PermissionDenied(plugin_id, *missing[0])


def child_environment(
    grants: Grants, environ: Mapping[str, str], extra: Mapping[str, str] = {}
) -> dict[str, str]:
    """The environment of an out-of-process plugin: the base variables, the granted ones,
    then ``extra`` (the protocol's own), nothing else from ``environ``."""
    env = {name: environ[name] for name in (*BASE_ENV, *grants.env) if name in environ}
    env.update(extra)
    return env
