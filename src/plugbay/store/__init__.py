"""The store: build, install, remove, switch and verify plugin bundles in a home.

Apart from the load path: nothing here imports plugin code, and hosts need none of it
to run plugins.
"""

from __future__ import annotations

from .bundle import Limits, build_bundle, read_bundle
from .install import Change, Outcome, Store
from .layout import Layout, Receipt

__all__ = [
    "Change",
    "Layout",
    "Limits",
    "Outcome",
    "Receipt",
    "Store",
    "build_bundle",
    "read_bundle",
]
