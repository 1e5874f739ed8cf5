"""The public API is pinned: a change to it is a deliberate change to this list."""

from __future__ import annotations

import plugbay


def test_all_is_sorted_and_exact() -> None:
    assert plugbay.__all__ == sorted(plugbay.__all__)
    assert plugbay.__all__ == [
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


def test_every_public_name_resolves() -> None:
    import plugbay.host  # importing submodules must not shadow the public names

    assert plugbay.host is not None
    for name in plugbay.__all__:
        assert getattr(plugbay, name) is not None, name
    assert callable(plugbay.make_plan)


def test_every_error_derives_from_the_root() -> None:
    for name in plugbay.__all__:
        obj = getattr(plugbay, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, plugbay.PluginError), name
