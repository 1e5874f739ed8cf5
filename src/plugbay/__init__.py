"""plugbay: a plugin platform for Python applications.

The public names below are imported on first use, so ``import plugbay`` (and the
``plugbay`` command's start-up) pays only for what it touches.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import HostConfig, PluginConfig, Policy, Secret
    from .context import HostInfo, PluginApi, PluginContext
    from .discovery import Catalog, DiscoveryReporter, PluginRecord, Problem, SearchPath, discover
    from .errors import (
        BundleError,
        CommandError,
        ConfigError,
        ContributionNotFound,
        HookCallError,
        HookSpecError,
        LoadError,
        LoadTimeout,
        ManifestError,
        PermissionDenied,
        PlanError,
        PluginCallError,
        PluginError,
        RegistryError,
        ResolutionError,
        SourceError,
        StoreError,
        VersionError,
    )
    from .hooks import HookCaller, HookImpl, HookResults, Hooks, HookSpec
    from .host import Health, Host, LifecycleEvent, PluginState, PluginStatus
    from .manifest import Contribution, Manifest, PluginInfo, load_manifest, parse_manifest
    from .plan import LoadPlan, PlannedPlugin, Rejected
    from .plan import plan as make_plan
    from .registry import Handle, Registry
    from .store import Store
    from .versions import Range, Version, parse_range, parse_version

__version__ = "0.1.0"

_LAZY = {
    "BundleError": "errors",
    "Catalog": "discovery",
    "CommandError": "errors",
    "ConfigError": "errors",
    "Contribution": "manifest",
    "ContributionNotFound": "errors",
    "DiscoveryReporter": "discovery",
    "Handle": "registry",
    "Health": "host",
    "HookCallError": "errors",
    "HookCaller": "hooks",
    "HookImpl": "hooks",
    "HookResults": "hooks",
    "HookSpec": "hooks",
    "HookSpecError": "errors",
    "Hooks": "hooks",
    "Host": "host",
    "HostConfig": "config",
    "HostInfo": "context",
    "LifecycleEvent": "host",
    "LoadError": "errors",
    "LoadPlan": "plan",
    "LoadTimeout": "errors",
    "Manifest": "manifest",
    "ManifestError": "errors",
    "PermissionDenied": "errors",
    "PlanError": "errors",
    "PlannedPlugin": "plan",
    "PluginApi": "context",
    "PluginCallError": "errors",
    "PluginConfig": "config",
    "PluginContext": "context",
    "PluginError": "errors",
    "PluginInfo": "manifest",
    "PluginRecord": "discovery",
    "PluginState": "host",
    "PluginStatus": "host",
    "Policy": "config",
    "Problem": "discovery",
    "Range": "versions",
    "Registry": "registry",
    "RegistryError": "errors",
    "Rejected": "plan",
    "ResolutionError": "errors",
    "SearchPath": "discovery",
    "Secret": "config",
    "SourceError": "errors",
    "Store": "store",
    "StoreError": "errors",
    "Version": "versions",
    "VersionError": "errors",
    "discover": "discovery",
    "load_manifest": "manifest",
    "make_plan": "plan",
    "parse_manifest": "manifest",
    "parse_range": "versions",
    "parse_version": "versions",
}

__all__ = [
    "BundleError",
    "Catalog",
    "CommandError",
    "ConfigError",
    "Contribution",
    "ContributionNotFound",
    "DiscoveryReporter",
    "Handle",
    "Health",
    "HookCallError",
    "HookCaller",
    "HookImpl",
    "HookResults",
    "HookSpec",
    "HookSpecError",
    "Hooks",
    "Host",
    "HostConfig",
    "HostInfo",
    "LifecycleEvent",
    "LoadError",
    "LoadPlan",
    "LoadTimeout",
    "Manifest",
    "ManifestError",
    "PermissionDenied",
    "PlanError",
    "PlannedPlugin",
    "PluginApi",
    "PluginCallError",
    "PluginConfig",
    "PluginContext",
    "PluginError",
    "PluginInfo",
    "PluginRecord",
    "PluginState",
    "PluginStatus",
    "Policy",
    "Problem",
    "Range",
    "Registry",
    "RegistryError",
    "Rejected",
    "ResolutionError",
    "SearchPath",
    "Secret",
    "SourceError",
    "Store",
    "StoreError",
    "Version",
    "VersionError",
    "__version__",
    "discover",
    "load_manifest",
    "make_plan",
    "parse_manifest",
    "parse_range",
    "parse_version",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plugbay' has no attribute {name!r}")
    # make_plan is plan.plan: a top-level "plan" would be replaced by the submodule.
    attr = "plan" if name == "make_plan" else name
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
