"""The store: build, install, remove, switch and verify plugin bundles in a home.

Apart from the load path: nothing here imports plugin code, and hosts need none of it
to run plugins. Names are imported on first use, so ``plugbay verify`` does not load the
installer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bundle import Limits, build_bundle, read_bundle
    from .install import Change, Outcome, Store, SyncOutcome
    from .layout import Layout, Receipt
    from .lock import LockEntry, Lockfile, read_lock, write_lock

__all__ = [
    "Change",
    "Layout",
    "Limits",
    "LockEntry",
    "Lockfile",
    "Outcome",
    "Receipt",
    "Store",
    "SyncOutcome",
    "build_bundle",
    "read_bundle",
    "read_lock",
    "write_lock",
]

_LAZY = {
    "Change": "install",
    "Layout": "layout",
    "Limits": "bundle",
    "LockEntry": "lock",
    "Lockfile": "lock",
    "Outcome": "install",
    "Receipt": "layout",
    "Store": "install",
    "SyncOutcome": "install",
    "build_bundle": "bundle",
    "read_bundle": "bundle",
    "read_lock": "lock",
    "write_lock": "lock",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plugbay.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
