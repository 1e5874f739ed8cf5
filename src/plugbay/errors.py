"""Errors raised by plugbay.

Every error derives from one root, so a host can catch everything plugbay raises with
``except PluginError``. Each class carries the facts as attributes and builds a message
that says what went wrong and what to do about it.

    PluginError
    ├── VersionError            a SemVer version or range that does not parse
    ├── ManifestError           a manifest that does not parse or does not fit the schema
    ├── ConfigError             the host's config.toml, or a plugin's config, is invalid
    ├── PlanError               a plugin is not part of the load plan (disabled, blocked, unknown)
    ├── LoadError               importing, registering, initialising or starting a plugin failed
    │   └── LoadTimeout         a lifecycle step did not finish within its timeout
    ├── RegistryError           no contribution by that kind and name, or a bad registration
    │   └── ContributionNotFound
    ├── CommandError            a plugin command refused: name, arguments or authorisation
    ├── HookSpecError           a hook declared or called wrongly, or an implementation that
    │                           does not fit its spec
    ├── HookCallError           a hook implementation raised or timed out
    ├── PluginCallError         a call into an out-of-process plugin failed: an error answer,
    │                           a deadline, a crash, a protocol violation
    ├── PermissionDenied        a plugin lacks a permission the user has not granted
    └── StoreError              installing, removing, switching or verifying plugins failed
        ├── BundleError         a bundle that is unsafe, altered, truncated or not a bundle
        ├── SourceError         a source (folder, file, URL, git, requirements) cannot be used
        ├── LockfileError       a lock file (plugbay.lock) that cannot be read or is malformed
        ├── TrustError          refused by the trust policy: unsigned where signatures are
        │                       required, a key not trusted for the namespace, a denied plugin
        ├── KeyringError        a signing key or the keyring of trusted keys cannot be used
        └── ResolutionError     the requested plugins' dependencies cannot be satisfied
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class PluginError(Exception):
    """Root of every error plugbay raises.

    ``detail`` holds what ``-v`` shows beside the one-line message: the plugin's
    traceback, or the stack of a step that hung.
    """

    detail: str | None = None


class VersionError(PluginError):
    """A version or a version range is not valid SemVer 2.0 syntax."""

    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.what = what
        if what == "version":
            hint = 'expected MAJOR.MINOR.PATCH with optional -PRERELEASE and +BUILD, e.g. "1.2.0"'
        else:
            hint = (
                'expected comparators such as ">=1.0.0,<2.0.0", "^1.2", "~1.2.3", "1.2.*", "*",'
                ' alternatives joined with "||"'
            )
        super().__init__(f"{text!r} is not a valid {what}; {hint}")


class ManifestError(PluginError):
    """A manifest file that cannot be read, parsed or validated.

    ``file`` is the manifest path, ``field`` the dotted path of the offending field ("" for
    the whole document), ``value`` the offending value (or None), and ``problem`` says
    what is wrong and what would have been accepted.
    """

    def __init__(self, file: str, field: str, problem: str, value: object = None) -> None:
        self.file = file
        self.field = field
        self.problem = problem
        self.value = value
        where = f"{file}: {field}" if field else file
        super().__init__(f"{where}: {problem}")


class ConfigError(PluginError):
    """The host configuration file or a plugin's configuration is invalid.

    ``source`` is the file (or another origin), ``field`` the dotted path of the offending
    field ("" for the whole document) and ``value`` the offending value (or None).
    """

    def __init__(self, source: str, field: str, problem: str, value: object = None) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        self.value = value
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")


class PlanError(PluginError):
    """A plugin asked for by id is not in the load plan."""

    def __init__(self, plugin_id: str, reason: str) -> None:
        self.plugin_id = plugin_id
        self.reason = reason
        super().__init__(f"{plugin_id}: {reason}")


class LoadError(PluginError):
    """A plugin failed at one lifecycle step (import, register, init, start, stop, health)."""

    def __init__(self, plugin_id: str, step: str, reason: str) -> None:
        self.plugin_id = plugin_id
        self.step = step
        self.reason = reason
        super().__init__(f"{plugin_id}: {step} failed: {reason}")


class LoadTimeout(LoadError):
    """A lifecycle step did not finish in time; the plugin is marked failed."""

    def __init__(self, plugin_id: str, step: str, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            plugin_id,
            step,
            f"did not finish within {seconds:g} s (raise the host's load_timeout if it is slow"
            " on purpose)",
        )


class RegistryError(PluginError):
    """A registration that breaks the registry's rules."""


class ContributionNotFound(RegistryError, LookupError):
    """No contribution of that kind and name is registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = known
        from difflib import get_close_matches

        close = get_close_matches(name, known, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        listing = "plugbay list" if not known else f"one of: {', '.join(sorted(known)[:10])}"
        super().__init__(f"no {kind} named {name!r} is registered{hint} (known: {listing})")


class CommandError(PluginError):
    """A plugin command was refused (its name, an argument, or authorisation)."""

    def __init__(self, command: str, reason: str) -> None:
        self.command = command
        self.reason = reason
        super().__init__(f"{command}: {reason}")


class HookSpecError(PluginError):
    """A hook declaration, or an implementation that does not fit its spec."""


class HookCallError(PluginError):
    """An implementation raised (or timed out); names the hook and the plugin.

    The original exception is ``__cause__`` and :attr:`error`.
    """

    def __init__(self, hook: str, plugin_id: str, error: BaseException) -> None:
        self.hook = hook
        self.plugin_id = plugin_id
        self.error = error
        text = str(error)
        what = f"{type(error).__name__}: {text}" if text else type(error).__name__
        super().__init__(f"hook {hook}: the implementation from {plugin_id} raised {what}")


class PluginCallError(PluginError):
    """A call into an out-of-process plugin failed.

    ``cause`` says which way: ``"error"`` (the plugin answered with an error),
    ``"deadline"``, ``"exited"``, ``"protocol"`` (it wrote a non-protocol line),
    ``"handshake"``, ``"spawn"``, ``"stopped"`` (called after its plugin stopped) or
    ``"failed"`` (its restart budget is spent).
    ``target`` is the contribution (``kind:name``) or protocol method called. ``detail``
    holds the plugin's traceback, or the last lines of its stderr.
    """

    def __init__(
        self, plugin_id: str, target: str, cause: str, reason: str, detail: str | None = None
    ) -> None:
        self.plugin_id = plugin_id
        self.target = target
        self.cause = cause
        self.reason = reason
        self.detail = detail
        super().__init__(f"{plugin_id}: {target}: {reason}")


class PermissionDenied(PluginError):
    """A plugin needs a permission (``kind``, ``value``) the user has not granted.

    ``missing`` lists every permission missing, as ``(kind, value)`` pairs: the first is
    ``kind``/``value``, then ``more``. The message names them all and the ``plugbay
    grant`` command that grants them.
    """

    def __init__(
        self,
        plugin_id: str,
        kind: str,
        value: str,
        more: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.plugin_id = plugin_id
        self.kind = kind
        self.value = value
        self.missing = [(kind, value), *more]
        names = ", ".join(f"{k}={v}" for k, v in self.missing)
        if len(self.missing) == 1:
            what, them = f"permission {names} is", "it"
        else:
            what, them = f"permissions {names} are", "them"
        super().__init__(
            f"{plugin_id}: {what} not granted; grant {them} with "
            f"`{_grant_command(plugin_id, self.missing)}` (or in config.toml, "
            f'[grants."{plugin_id}"])'
        )


def _grant_command(plugin_id: str, pairs: Iterable[tuple[str, str]]) -> str:
    """``plugbay grant ID KIND=VALUE…``, quoted for a POSIX shell (``~`` and ``*`` too)."""
    from shlex import quote

    return " ".join(["plugbay", "grant", quote(plugin_id), *(quote(f"{k}={v}") for k, v in pairs)])


class StoreError(PluginError):
    """Changing the installed plugins failed; nothing was changed."""


class BundleError(StoreError):
    """A bundle is unsafe, altered, truncated or not a bundle at all."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


class SourceError(StoreError):
    """A source named in an install cannot be read, fetched or understood."""

    def __init__(self, spec: str, problem: str) -> None:
        self.spec = spec
        self.problem = problem
        super().__init__(f"{spec}: {problem}")


class LockfileError(StoreError):
    """A lock file (``plugbay.lock``) that cannot be read or does not fit its format.

    ``file`` is the lock file, ``field`` the path of the offending field (``plugin[2].sha256``;
    "" for the whole file) and ``problem`` says what is wrong and what to do.
    """

    def __init__(self, file: str, field: str, problem: str) -> None:
        self.file = file
        self.field = field
        self.problem = problem
        where = f"{file}: {field}" if field else file
        super().__init__(f"{where}: {problem}")


class TrustError(StoreError):
    """The trust policy refuses a plugin version (see docs/security.md).

    ``plugin`` is ``id version`` (or a bundle path) and ``problem`` says which rule refused
    it and what to do: sign it, trust a key for its namespace, or change the policy.
    """

    def __init__(self, plugin: str, problem: str) -> None:
        self.plugin = plugin
        self.problem = problem
        super().__init__(f"{plugin} {problem}")


class KeyringError(StoreError):
    """A key file, a signature file or the keyring in ``<home>/keys`` cannot be used.

    ``file`` is the file at fault and ``problem`` says what is wrong and what to do.
    """

    def __init__(self, file: str, problem: str) -> None:
        self.file = file
        self.problem = problem
        super().__init__(f"{file}: {problem}")


class ResolutionError(StoreError):
    """The requested plugins, with what is installed, have no consistent set of versions."""
