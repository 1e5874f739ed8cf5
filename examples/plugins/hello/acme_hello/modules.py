"""The hello_world module."""

from __future__ import annotations

from typing import Any

from . import settings


class HelloWorld:
    """Greets ``name``; never changes anything, so ``check`` says what ``apply`` says."""

    def validate(self, args: dict[str, Any]) -> None:
        if not isinstance(args.get("name", "world"), str):
            raise ValueError("hello_world: name must be a string")

    def check(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.apply(args)  # greeting changes nothing: checking is applying

    def apply(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args.get("name", "world")
        return {
            "changed": False,
            "msg": f"{settings.greeting}, {name}{settings.punctuation}",
            "artifacts": {"greeted": name},
        }
