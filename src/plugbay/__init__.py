"""plugbay: a plugin platform for Python applications."""

from __future__ import annotations

from .config import HostConfig, Policy
from .context import HostInfo, PluginApi, PluginContext
from .discovery import Catalog, DiscoveryReporter, PluginRecord, Problem, SearchPath, discover
from .errors import (
    ConfigError,
    ContributionNotFound,
    LoadError,
    LoadTimeout,
    ManifestError,
    PlanError,
    PluginError,
    RegistryError,
    VersionError,
)
from .host import Health, Host, LifecycleEvent, PluginState, PluginStatus
from .manifest import Contribution, Manifest, PluginInfo, load_manifest, parse_manifest
from .plan import LoadPlan, PlannedPlugin, Rejected, plan
from .registry import Handle, Registry
from .versions import Range, Version, parse_range, parse_version

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "ConfigError",
    "Contribution",
    "ContributionNotFound",
    "DiscoveryReporter",
    "Handle",
    "Health",
    "Host",
    "HostConfig",
    "HostInfo",
    "LifecycleEvent",
    "LoadError",
    "LoadPlan",
    "LoadTimeout",
    "Manifest",
    "ManifestError",
    "PlanError",
    "PlannedPlugin",
    "PluginApi",
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
    "SearchPath",
    "Version",
    "VersionError",
    "__version__",
    "discover",
    "load_manifest",
    "parse_manifest",
    "parse_range",
    "parse_version",
    "plan",
]
