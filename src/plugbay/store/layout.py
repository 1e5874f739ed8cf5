"""The installed layout of a host home (DESIGN §3), and receipts.

```
<home>/plugins/<ns>/<name>/<version>/   one folder per installed version (bare ids: ns "_")
<home>/plugins/<ns>/<name>/active       the active version, replaced atomically
<home>/receipts/<id>-<version>.json     where it came from, bundle and MANIFEST hashes
<home>/staging/<transaction>/           work in progress (same file system)
<home>/.lock                            held by every change
```
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec

__all__ = ["InstalledVersion", "Layout", "Receipt"]


#: Rewritten with new random content in the plugins folder by every change the store
#: commits; discovery trusts its cache of that folder while it is unchanged (decision 0004).
GENERATION_FILE = ".generation"
#: Discovery's metadata cache, in the home (shared by the host and the store).
DISCOVERY_CACHE = "cache/discovery.msgpack"
#: Who signed each installed version, by receipt (see plugbay.store.signers).
SIGNERS_CACHE = "cache/signers.msgpack"
#: the store's stamps are 32 hex digits; a longer file is read this far
_STAMP_MAX = 256


def generation_stamp(plugins: str) -> bytes:
    """The store's generation stamp in the plugins folder ``plugins`` (empty when there is
    none).

    Its content, random for every change the store commits: unlike an (inode, mtime)
    pair, it cannot come back within one timestamp tick, so what was cached under it may
    be trusted the moment the change is made (decision 0004).
    """
    try:
        with open(os.path.join(plugins, GENERATION_FILE), "rb") as f:
            return f.read(_STAMP_MAX)
    except OSError:
        return b""


class Receipt(msgspec.Struct, frozen=True, omit_defaults=True):
    """What plugbay recorded when it installed one version."""

    id: str
    version: str
    source: str
    bundle_sha256: str
    manifest_sha256: str
    installed_at: str
    signer: str | None = None
    python_dependencies: tuple[str, ...] = ()


class InstalledVersion(msgspec.Struct, frozen=True):
    """One version folder in the layout, with its receipt if it has one."""

    id: str
    version: str
    path: Path
    active: bool
    receipt: Receipt | None


def _plugin_folder(plugin_id: str) -> str:
    """``acme.tool`` → ``acme/tool``; a plugin without a namespace goes in ``_``."""
    namespace, _, name = plugin_id.rpartition(".")
    return f"{namespace or '_'}/{name}"


def receipt_name(plugin_id: str, version: str) -> str:
    """The file name of one version's receipt in ``<home>/receipts``."""
    return f"{plugin_id}-{version}.json"


def read_receipt_file(path: str | Path) -> Receipt | None:
    """The receipt in ``path``; None when it is missing or not a receipt."""
    try:
        with open(path, "rb") as f:
            return msgspec.json.decode(f.read(), type=Receipt)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


class Layout:
    """Paths of one home; reading only (changes go through a Transaction)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.plugins = home / "plugins"
        self.receipts = home / "receipts"
        self.staging = home / "staging"
        self.cache = home / "cache"
        self.discovery_cache = home / DISCOVERY_CACHE
        self.signers_cache = home / SIGNERS_CACHE
        self.lock_path = home / ".lock"
        self.config = home / "config.toml"

    def plugin_dir(self, plugin_id: str) -> Path:
        return self.plugins / _plugin_folder(plugin_id)

    def version_dir(self, plugin_id: str, version: str) -> Path:
        return self.plugin_dir(plugin_id) / version

    def version_path(self, plugin_id: str, version: str) -> str:
        """:meth:`version_dir` as a string, for code that runs once per plugin."""
        return os.path.join(self.plugins, _plugin_folder(plugin_id), version)

    def active_file(self, plugin_id: str) -> Path:
        return self.plugin_dir(plugin_id) / "active"

    def receipt_path(self, plugin_id: str, version: str) -> Path:
        return self.receipts / receipt_name(plugin_id, version)

    def active_version(self, plugin_id: str) -> str | None:
        try:
            return self.active_file(plugin_id).read_text("utf-8").strip() or None
        except OSError:
            return None

    def read_receipt(self, plugin_id: str, version: str) -> Receipt | None:
        return read_receipt_file(os.path.join(self.receipts, receipt_name(plugin_id, version)))

    def installed(self) -> Iterator[InstalledVersion]:
        """Every version folder the store installed (one holding MANIFEST.json)."""
        try:
            namespaces = sorted(os.listdir(self.plugins))
        except OSError:
            return
        for ns in namespaces:
            ns_dir = self.plugins / ns
            if ns.startswith(".") or not ns_dir.is_dir():
                continue
            for name in sorted(os.listdir(ns_dir)):
                base = ns_dir / name
                plugin_id = name if ns == "_" else f"{ns}.{name}"
                active = self.active_version(plugin_id)
                if active is None and not any(base.glob("*/MANIFEST.json")):
                    continue
                for version in sorted(os.listdir(base)):
                    folder = base / version
                    if (folder / "MANIFEST.json").is_file():
                        yield InstalledVersion(
                            plugin_id,
                            version,
                            folder,
                            version == active,
                            self.read_receipt(plugin_id, version),
                        )


def write_cache_file(path: Path, data: bytes) -> None:
    """Replace a cache file (discovery's, a download, an index document) with ``data``;
    a home that cannot be written only loses the speed-up next time.

    Written aside and renamed over: a reader never sees half a file. The name is unique
    so that two hosts saving at once (threads too) do not share a temporary file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
