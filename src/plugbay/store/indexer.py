"""``plugbay index build``: a static index (see :mod:`.index`) of the bundles in a folder.

Every ``*.tar.gz`` in the folder is read and checked whole with the store's reader (as an
install would), so an index never lists a bundle that an install would refuse. Output is
deterministic — the same bundles give the same bytes — and written atomically: a flat
index in one file; a sharded index as one shard per plugin (written first) and the root
(replaced last), after which shards of plugins no longer present are removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import msgspec

from ..errors import SourceError
from ..versions import parse_version
from .bundle import Limits, read_bundle
from .index import INDEX_FORMAT, FlatIndex, IndexEntry, RootIndex, ShardIndex, published_facts

__all__ = ["IndexReport", "build_index", "shard_folder"]

Progress = Callable[[str, int, int], None]


class IndexReport(msgspec.Struct, frozen=True):
    """What :func:`build_index` wrote: the index file, and how much it lists."""

    path: Path
    plugins: int
    versions: int
    shards: Path | None = None


def shard_folder(index: Path) -> Path:
    """Where the shards of the sharded index ``index`` go: ``index.json`` → ``index/``."""
    return index.with_name(
        index.name.removesuffix(".json") if index.suffix == ".json" else index.name + ".d"
    )


def build_index(
    folder: Path,
    out: Path | None = None,
    *,
    sharded: bool = False,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> IndexReport:
    """Write the index of the bundles in ``folder`` to ``out`` (default ``folder/index.json``;
    a folder: ``out/index.json``).

    The index must lie in ``folder`` or a folder above it, so that bundle URLs stay under
    the index's folder (clients refuse any other). Raises BundleError for a bundle that an
    install would refuse, SourceError for two different bundles of one id and version.
    """
    if not folder.is_dir():
        raise SourceError(str(folder), "is not a folder of bundles")
    target = _target(folder, out)
    base = target.parent.resolve()
    bundles = sorted(
        p for p in folder.iterdir() if p.name.endswith(".tar.gz") and not p.name.startswith(".")
    )
    if not bundles:
        raise SourceError(
            str(folder), "holds no bundles (*.tar.gz): build some with plugbay build DIR -o FOLDER"
        )
    found: dict[tuple[str, str], tuple[Path, IndexEntry]] = {}
    for n, path in enumerate(bundles, start=1):
        if progress is not None:
            progress("reading bundles", n, len(bundles))
        entry = _entry(path, _relative(path, base, target))
        key = (entry.id, entry.version)
        seen = found.get(key)
        if seen is None:
            found[key] = (path, entry)
        elif seen[1].sha256 != entry.sha256:
            raise SourceError(
                str(folder),
                f"holds two different bundles of {entry.id} {entry.version}: {seen[0].name} "
                f"and {path.name}; remove one (an index lists one bundle per version)",
            )
    by_id: dict[str, list[IndexEntry]] = {}
    for (plugin_id, _), (_, entry) in sorted(found.items()):
        by_id.setdefault(plugin_id, []).append(entry)
    for versions in by_id.values():
        versions.sort(key=lambda e: parse_version(e.version), reverse=True)
    if sharded:
        _write_sharded(target, by_id)
    else:
        doc = FlatIndex(INDEX_FORMAT, {pid: tuple(vs) for pid, vs in by_id.items()})
        _write(target, _encode(doc))
    return IndexReport(target, len(by_id), len(found), shard_folder(target) if sharded else None)


def _target(folder: Path, out: Path | None) -> Path:
    if out is None:
        return folder / "index.json"
    if out.is_dir() or str(out).endswith(("/", os.sep)):
        return out / "index.json"
    return out


def _relative(bundle: Path, base: Path, target: Path) -> str:
    """The bundle's path relative to the index's folder, as a URL path."""
    real = bundle.resolve()
    if not real.is_relative_to(base):
        raise SourceError(
            str(target),
            f"must be in the folder of the bundles or above it ({bundle.parent.resolve()}), so "
            "that bundle URLs stay under the index's folder: write it there with -o",
        )
    return quote(real.relative_to(base).as_posix())


def _entry(path: Path, url: str) -> IndexEntry:
    facts = published_facts(read_bundle(path))
    return IndexEntry(url=url, size=os.path.getsize(path), **facts)


def _write_sharded(target: Path, by_id: dict[str, list[IndexEntry]]) -> None:
    shards = shard_folder(target)
    shards.mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    for plugin_id, versions in by_id.items():
        name = f"{plugin_id}.json"
        # Bundle URLs are relative to the shard, one folder below the root.
        moved = tuple(msgspec.structs.replace(e, url=f"../{e.url}") for e in versions)
        _write(shards / name, _encode(ShardIndex(INDEX_FORMAT, plugin_id, moved)))
        names[plugin_id] = f"{quote(shards.name)}/{name}"
    _write(target, _encode(RootIndex(INDEX_FORMAT, names)))
    keep = {f"{pid}.json" for pid in by_id}
    for old in shards.glob("*.json"):
        if old.name not in keep:
            old.unlink(missing_ok=True)


def _encode(doc: msgspec.Struct) -> bytes:
    # Sorted keys inside manifests: the same bundles give the same bytes.
    return msgspec.json.encode(doc, order="deterministic") + b"\n"


def _write(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SourceError(str(target), f"cannot be written: {exc.strerror or exc}") from None
