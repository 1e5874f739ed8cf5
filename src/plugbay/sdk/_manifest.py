"""Reading a plugin's manifest inside the plugin's own process (standard library only).

The SDK needs little of it: the plugin's id and version, its entry and its declared
contributions. It does not validate: the host validated the manifest before starting
the plugin.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .server import SdkError

__all__ = ["MANIFEST_FILES", "identity", "read_manifest"]

#: Where a manifest may be, best first: the store's MANIFEST.json, then the author's files.
MANIFEST_FILES = (
    "MANIFEST.json",
    "plugin.toml",
    "plugin.yaml",
    "plugin.yml",
    "plugin.json",
    "collection.yml",
)


def read_manifest(folder: str) -> tuple[str, dict[str, Any]]:
    """The manifest in ``folder`` as a mapping, and the file it came from.

    ``MANIFEST.json`` (written by ``plugbay install``) holds the manifest under its
    ``manifest`` key. YAML manifests are read only when PyYAML is importable. Raises
    SdkError saying what to do when there is no usable manifest.
    """
    for name in MANIFEST_FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                data = f.read()
            raw = _decode(name, data)
        except SdkError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoding failure is reported the same way
            raise SdkError(f"cannot read {path}: {exc}") from None
        if (
            name == "MANIFEST.json"
            and isinstance(raw, dict)
            and isinstance(raw.get("manifest"), dict)
        ):
            raw = raw["manifest"]
        if not isinstance(raw, dict):
            raise SdkError(f"{path} does not hold a table of manifest fields")
        return path, raw
    raise SdkError(
        f"no plugin manifest in {folder} (looked for {', '.join(MANIFEST_FILES)}); "
        "run the plugin from its folder, or set PLUGBAY_PLUGIN_DIR"
    )


def _decode(name: str, data: bytes) -> Any:
    if name.endswith(".json"):
        return json.loads(data)
    if name.endswith(".toml"):
        import tomllib

        return tomllib.loads(data.decode())
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise SdkError(
            f"{name} is YAML, and PyYAML is not installed in this plugin's environment: "
            "write the manifest as plugin.toml, or install the plugin with `plugbay install` "
            "(it writes MANIFEST.json, which needs nothing)"
        ) from None
    return yaml.safe_load(data)


def identity(manifest: dict[str, Any]) -> tuple[str, str]:
    """``(id, version)`` of a manifest mapping; SdkError when they are missing."""
    table = manifest.get("plugin")
    if not isinstance(table, dict):
        raise SdkError("the manifest has no [plugin] table")
    name, version = table.get("name"), table.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise SdkError("the manifest's [plugin] table needs a name and a version")
    namespace = table.get("namespace")
    return (f"{namespace}.{name}" if namespace else name), version
