"""What a host holds for an out-of-process plugin: its lifecycle object and proxies of its
contributions, which call into the child as in-process ones would be called.

- object-like kinds (modules, tools, providers…): a :class:`RemoteObject`; each attribute
  is a :class:`RemoteMethod` that invokes ``kind:name`` with that method, restricted to the
  ``methods`` the child listed in ``plugbay/ready`` when it listed them;
- hooks: a function taking keyword arguments only (it gets every argument of the hook);
- commands: a function taking the argument list and returning the exit code.

Every proxy call accepts ``_timeout=`` (seconds), the deadline of that one call in place of
the plugin's ``call-timeout``; ``await proxy.method.acall(...)`` is the asyncio form.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from ..config import Grants, PluginConfig, Secret
from ..context import HostInfo, PluginApi, PluginContext
from ..errors import RegistryError
from ..manifest import Manifest
from .exec import Supervisor

__all__ = ["OutOfProcessPlugin", "RemoteMethod", "RemoteObject"]

_log = logging.getLogger("plugbay.exec")

#: Kinds whose contributions are callables rather than objects.
CALLABLE_KINDS = ("hook", "command")


class RemoteMethod:
    """One method of a contribution in a child process; call it like the method itself."""

    __slots__ = ("_method", "_supervisor", "_target")

    def __init__(self, supervisor: Supervisor, target: str, method: str | None) -> None:
        self._supervisor = supervisor
        self._target = target
        self._method = method

    def __call__(self, *args: Any, _timeout: float | None = None, **kwargs: Any) -> Any:
        """Invoke it and wait for the answer; ``_timeout`` is this call's deadline."""
        return self._supervisor.call(self._target, self._method, args, kwargs, _timeout)

    async def acall(self, *args: Any, _timeout: float | None = None, **kwargs: Any) -> Any:
        """Invoke it from asyncio; many calls may be in flight at once."""
        return await self._supervisor.acall(self._target, self._method, args, kwargs, _timeout)

    def __repr__(self) -> str:
        name = f"{self._target}.{self._method}" if self._method else self._target
        return f"<remote method {name} of {self._supervisor.plugin_id}>"


class RemoteObject:
    """An object-like contribution (``module``, ``tool``…) of an out-of-process plugin."""

    __slots__ = ("_kind", "_methods", "_name", "_supervisor")

    def __init__(
        self, supervisor: Supervisor, kind: str, name: str, methods: tuple[str, ...] | None
    ) -> None:
        self._supervisor = supervisor
        self._kind = kind
        self._name = name
        self._methods = methods

    def __getattr__(self, attr: str) -> RemoteMethod:
        if attr.startswith("_"):
            raise AttributeError(attr)
        if self._methods is not None and attr not in self._methods:
            listed = ", ".join(self._methods) or "none"
            raise AttributeError(
                f"{self._kind} {self._name!r} of {self._supervisor.plugin_id} has no method "
                f"{attr!r} (its methods: {listed})"
            )
        return RemoteMethod(self._supervisor, f"{self._kind}:{self._name}", attr)

    def __call__(self, *args: Any, _timeout: float | None = None, **kwargs: Any) -> Any:
        """Invoke the contribution itself (``method`` null), for callable kinds."""
        target = f"{self._kind}:{self._name}"
        return self._supervisor.call(target, None, args, kwargs, _timeout)

    async def acall(self, *args: Any, _timeout: float | None = None, **kwargs: Any) -> Any:
        target = f"{self._kind}:{self._name}"
        return await self._supervisor.acall(target, None, args, kwargs, _timeout)

    def __dir__(self) -> list[str]:
        return sorted(self._methods or ())

    def __repr__(self) -> str:
        return f"<{self._kind} {self._name!r} of {self._supervisor.plugin_id} (out of process)>"


def hook_function(supervisor: Supervisor, name: str) -> Callable[..., Any]:
    """A hook implementation that calls the child: keyword arguments only."""
    target = f"hook:{name}"

    def hook(**kwargs: Any) -> Any:
        return supervisor.call(target, None, (), kwargs)

    hook.__name__ = hook.__qualname__ = name
    return hook


def command_function(supervisor: Supervisor, name: str) -> Callable[[list[str]], Any]:
    """A plugin command that runs in the child; returns its exit code (None means 0)."""
    target = f"command:{name}"

    def command(args: list[str]) -> Any:
        return supervisor.call(target, None, [list(args)])

    command.__name__ = command.__qualname__ = name
    return command


def _plain(value: Any) -> Any:
    """Config values as JSON would have them, secrets revealed (for ``initialize`` only)."""
    if isinstance(value, Secret):
        return _plain(value.reveal())
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class OutOfProcessPlugin:
    """The plugin object the host's lifecycle drives, for a plugin in a child process.

    Loading spawns the child and checks its ``plugbay/ready`` line (:meth:`spawn`);
    ``register(api)`` adds what the child announced and the manifest does not declare;
    ``init(ctx)`` sends ``initialize``; ``stop()`` shuts the child down; ``health()`` asks it.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        manifest: Manifest,
        *,
        plugin_dir: Path,
        host: HostInfo,
        grants: Grants,
        health_timeout: float,
    ) -> None:
        self.supervisor = supervisor
        self._manifest = manifest
        self._plugin_dir = plugin_dir
        self._host = host
        self._grants = grants
        self._health_timeout = health_timeout
        self._proxies: dict[tuple[str, str], Any] = {}
        self._api: PluginApi | None = None
        self._added: set[tuple[str, str]] = set()

    @property
    def step_timeout(self) -> float:
        """How long the host should allow ``init`` (the handshake's second half)."""
        settings = self.supervisor.settings
        return settings.handshake_timeout + settings.cancel_grace + 1.0

    def spawn(self) -> None:
        """Start the child and check its ready line (raises PluginCallError)."""
        self.supervisor.start()

    def register(self, api: PluginApi) -> None:
        self._api = api  # initialize's answer may announce more (see init)
        declared = {
            (kind, c.name) for kind, entries in self._manifest.contributes.items() for c in entries
        }
        announced = self.supervisor.contributions
        self._add_announced(api, declared)
        silent = sorted(f"{k}:{n}" for k, n in declared if n not in announced.get(k, {}))
        if silent and announced:
            _log.warning(
                "%s declares %s in its manifest, but its process did not announce them",
                api.plugin_id,
                ", ".join(silent),
                extra={"plugin_id": api.plugin_id},
            )

    def _add_announced(self, api: PluginApi, skip: set[tuple[str, str]]) -> None:
        """Add each announced contribution not in ``skip`` to the host (``api.add``)."""
        for kind, names in self.supervisor.contributions.items():
            for name in names:
                if (kind, name) in skip or (kind, name) in self._added:
                    continue
                self._added.add((kind, name))
                try:
                    api.add(kind, name, self.contribution(kind, name))
                except RegistryError as exc:  # one odd announcement does not fail the plugin
                    _log.warning(
                        "%s: not added: %s", api.plugin_id, exc, extra={"plugin_id": api.plugin_id}
                    )

    def init(self, ctx: PluginContext) -> Any:
        from .. import __version__

        supervisor = self.supervisor
        supervisor.logger = ctx.logger
        if isinstance(ctx.config, PluginConfig):
            supervisor.secrets = tuple(ctx.config.secret_values())
        params = {
            "host": {
                "app": self._host.app,
                "api_version": self._host.api_version,
                "plugbay_version": __version__,
            },
            "plugin": {"id": ctx.plugin_id, "version": ctx.version, "dir": str(self._plugin_dir)},
            "config": _plain(ctx.config),
            "grants": msgspec.to_builtins(self._grants),
        }
        answer = supervisor.initialize(params)
        if self._api is not None:  # what initialize announced beyond the ready line
            declared = {
                (kind, c.name)
                for kind, entries in self._manifest.contributes.items()
                for c in entries
            }
            self._add_announced(self._api, declared)
        return answer

    def stop(self) -> None:
        self.supervisor.shutdown()

    def health(self) -> dict[str, str]:
        return self.supervisor.health(self._health_timeout)

    def hook(self, name: str) -> Callable[..., Any]:
        """The host-side function of this plugin's implementation of hook ``name``."""
        fn: Callable[..., Any] = self.contribution("hook", name)
        return fn

    def contribution(self, kind: str, name: str) -> Any:
        """The proxy of one contribution (the same object each time)."""
        key = (kind, name)
        proxy = self._proxies.get(key)
        if proxy is None:
            if kind == "hook":
                proxy = hook_function(self.supervisor, name)
            elif kind == "command":
                proxy = command_function(self.supervisor, name)
            else:
                methods = self.supervisor.contributions.get(kind, {}).get(name)
                proxy = RemoteObject(self.supervisor, kind, name, methods)
            self._proxies[key] = proxy
        return proxy
