"""Lifecycle of the acme.nutanix plugin: it keeps the logger the host gives it."""

from __future__ import annotations

from typing import Any

from acme_nutanix import prism


class Plugin:
    """plugbay calls init when the plugin loads (on first use of one of its modules)."""

    def init(self, ctx: Any) -> None:
        prism.log = ctx.logger
