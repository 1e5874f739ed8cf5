"""Lifecycle of the acme.hello plugin: reads its config at init."""

from __future__ import annotations

from typing import Any

from acme_hello import settings


class Plugin:
    """plugbay calls register, init, start, stop and health when they exist."""

    def init(self, ctx: Any) -> None:
        settings.greeting = ctx.config.get("greeting", "Hello")
        settings.punctuation = ctx.config.get("punctuation", "!")
        ctx.logger.info("acme.hello ready with greeting %r", settings.greeting)

    def health(self) -> bool:
        return bool(settings.greeting)
