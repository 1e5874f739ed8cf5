"""The module contract: what a plugin's ``module`` contribution provides to opsrun."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class Module(Protocol):
    """A module, in-process (a class or an object) or a proxy of an out-of-process one.

    - ``validate(args)`` raises when the arguments are wrong; it touches nothing.
    - ``check(args)`` reads the current state: ``{"changed": would_change, "msg": …,
      "artifacts": {…}}``; ``opsrun --check`` calls it instead of ``apply``.
    - ``apply(args)`` makes the change when one is needed (running it twice changes
      nothing the second time) and returns ``{"changed", "msg", "artifacts"}``.
    """

    def validate(self, args: dict[str, Any]) -> Any: ...

    def check(self, args: dict[str, Any]) -> Any: ...

    def apply(self, args: dict[str, Any]) -> Any: ...


class ResultError(Exception):
    """A module returned something that is not a result."""


@dataclass(frozen=True)
class Result:
    """What ``check`` or ``apply`` said: whether it changes, a message, named artifacts."""

    changed: bool
    msg: str = ""
    artifacts: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Any, module: str, method: str) -> Result:
        """The Result in ``value`` (a mapping); ResultError saying what is wrong."""
        if not isinstance(value, Mapping):
            raise ResultError(
                f"{module}.{method} returned {type(value).__name__}, not a mapping with "
                "changed, msg and artifacts"
            )
        changed = value.get("changed")
        msg = value.get("msg", "")
        artifacts = value.get("artifacts") or {}
        if not isinstance(changed, bool):
            raise ResultError(f"{module}.{method} returned changed={changed!r}, not true/false")
        if not isinstance(msg, str):
            raise ResultError(f"{module}.{method} returned msg={msg!r}, not text")
        if not isinstance(artifacts, Mapping):
            raise ResultError(f"{module}.{method} returned artifacts that are not a mapping")
        return cls(changed, msg, dict(artifacts))
