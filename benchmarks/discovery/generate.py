"""Generate benchmark inputs: installed plugbay plugins and fake Python distributions.

Importable (``generate_plugins``, ``generate_dists``) and runnable::

    python benchmarks/discovery/generate.py plugins DIR --count 1000
    python benchmarks/discovery/generate.py dists DIR --count 1000

``plugins`` writes N valid plugins in the installed layout of DESIGN §3 under ``DIR``
(a host's ``plugins`` folder), as ``plugbay install`` leaves it::

    DIR/<ns>/<name>/<version>/plugin.toml, MANIFEST.json, FILES.json
    DIR/<ns>/<name>/active
    DIR/.generation            the store's stamp, replaced by every install
    DIR/../receipts/<id>-<version>.json   a receipt per version (unsigned)

spread over about N/50 namespaces; about one plugin in five has two versions side by
side (the ``active`` file names the newer one, or for some the older one); about one in
ten depends on an earlier generated plugin with a SemVer range its active version
satisfies. Every plugin has ``requires = ">=1.0.0,<2.0.0"``, a description and one or
two ``[[contributes.module]]`` entries. The output is deterministic for a given seed.

``dists`` writes N fake installed distributions into one folder, as pip would leave
them: ``<dist>-<ver>.dist-info/`` (METADATA, RECORD, entry_points.txt with one entry in
the ``benchapp.plugins`` group) and a one-line module ``<dist>.py`` the entry points at,
so that stevedore can import it.

Every file and folder gets a modification time one day in the past: a freshly written
file is "racy" for plugbay's cache (it could change again within the file system's
timestamp granularity), so a cache built right after generation would not trust it and
the warm runs would re-parse. Installed plugins are normally older than a few seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import msgspec

from plugbay.store.bundle import bundle_metadata
from plugbay.store.layout import GENERATION_FILE, Receipt, receipt_name

__all__ = ["DistSummary", "PluginSummary", "generate_dists", "generate_plugins"]

GROUP = "benchapp.plugins"
REQUIRES = ">=1.0.0,<2.0.0"
PAST_SECONDS = 86_400  # every generated path is dated one day back (see module docstring)

_WORDS = (
    "inventory",
    "network",
    "storage",
    "compute",
    "identity",
    "monitor",
    "backup",
    "dns",
    "firewall",
    "images",
)


@dataclass(frozen=True)
class PluginSummary:
    """What :func:`generate_plugins` wrote."""

    plugins: int
    versions: int
    namespaces: int
    with_two_versions: int
    older_active: int
    with_dependency: int
    contributions: int
    seconds: float


@dataclass(frozen=True)
class DistSummary:
    """What :func:`generate_dists` wrote."""

    distributions: int
    group: str
    seconds: float


def _version(rng: random.Random) -> tuple[int, int, int]:
    return (1, rng.randrange(0, 10), rng.randrange(0, 20))


def _text(v: tuple[int, int, int]) -> str:
    return ".".join(map(str, v))


def _range_for(v: tuple[int, int, int], rng: random.Random) -> str:
    """A dependency range in one of several syntaxes, always satisfied by ``v``."""
    major, minor, patch = v
    choice = rng.randrange(4)
    if choice == 0:
        return f">={major}.{minor}.0,<{major + 1}.0.0"
    if choice == 1:
        return f"^{major}.{minor}"
    if choice == 2:
        return f"~{major}.{minor}.{patch}"
    return f"{major}.*"


def _manifest(
    namespace: str,
    name: str,
    version: str,
    modules: int,
    dependency: tuple[str, str] | None,
) -> str:
    package = f"{namespace}_{name}"
    word = _WORDS[int(name.lstrip("p")) % len(_WORDS)]
    lines = [
        "schema = 1",
        "",
        "[plugin]",
        f'namespace = "{namespace}"',
        f'name = "{name}"',
        f'version = "{version}"',
        f'description = "Benchmark plugin {namespace}.{name}: manage {word} resources"',
        'authors = ["Bench <bench@example.test>"]',
        'license = "Apache-2.0"',
        f'requires = "{REQUIRES}"',
        'runtime = "python"',
        f'entry = "{package}.plugin:Plugin"',
    ]
    if dependency is not None:
        lines += ["", "[dependencies]", f'"{dependency[0]}" = "{dependency[1]}"']
    for i in range(1, modules + 1):
        module = f"{name}_{word}_{i}"
        lines += [
            "",
            "[[contributes.module]]",
            f'name = "{module}"',
            f'entry = "{package}.modules:Module{i}"',
            f'summary = "Configure {word} objects ({i})"',
            f'help = "help/{module}.md"',
        ]
    return "\n".join(lines) + "\n"


def _date_back(root: Path, when: float) -> None:
    """Set the mtime of everything under ``root`` (files first, then folders) to ``when``."""
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for f in filenames:
            os.utime(os.path.join(dirpath, f), (when, when))
        os.utime(dirpath, (when, when))


def _as_installed(folder: Path, receipts: Path, plugin_id: str, version: str) -> None:
    """Add what ``plugbay install`` adds to a version folder, MANIFEST.json and FILES.json,
    and its receipt. There is no bundle: the receipt names the two files' hash instead."""
    _, manifest_json, files_json, _ = bundle_metadata(folder)
    (folder / "MANIFEST.json").write_bytes(manifest_json)
    (folder / "FILES.json").write_bytes(files_json)
    receipt = Receipt(
        id=plugin_id,
        version=version,
        source="generated",
        bundle_sha256=hashlib.sha256(manifest_json + files_json).hexdigest(),
        manifest_sha256=hashlib.sha256(manifest_json).hexdigest(),
        installed_at="2026-01-01T00:00:00Z",
    )
    (receipts / receipt_name(plugin_id, version)).write_bytes(msgspec.json.encode(receipt))


def generate_plugins(root: Path, count: int, *, seed: int = 1) -> PluginSummary:
    """Write ``count`` installed plugins under ``root`` (emptied first); see the module doc."""
    t0 = time.perf_counter()
    rng = random.Random(seed)
    receipts = root.parent / "receipts"
    for folder in (root, receipts):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    n_namespaces = max(1, round(count / 50))
    namespaces = [f"ns{i:04d}" for i in range(n_namespaces)]
    # id -> active version, for dependencies on plugins generated earlier
    active_of: list[tuple[str, tuple[int, int, int]]] = []
    versions_written = two = older = deps = contributions = 0
    for i in range(count):
        namespace = namespaces[i % n_namespaces]
        name = f"p{i:05d}"
        plugin_id = f"{namespace}.{name}"
        first = _version(rng)
        versions = [first]
        if rng.random() < 0.2:
            second = (first[0], first[1] + 1 + rng.randrange(3), rng.randrange(5))
            versions.append(second)
            two += 1
        active = versions[-1]
        if len(versions) == 2 and rng.random() < 0.25:
            active = versions[0]  # a user who went back to the older version
            older += 1
        dependency = None
        if active_of and rng.random() < 0.1:
            dep_id, dep_version = active_of[rng.randrange(len(active_of))]
            dependency = (dep_id, _range_for(dep_version, rng))
            deps += 1
        modules = 1 + (rng.random() < 0.5)
        base = root / namespace / name
        for v in versions:
            folder = base / _text(v)
            folder.mkdir(parents=True)
            text = _manifest(namespace, name, _text(v), modules, dependency)
            (folder / "plugin.toml").write_text(text, "utf-8")
            _as_installed(folder, receipts, plugin_id, _text(v))
            versions_written += 1
            contributions += modules
        (base / "active").write_text(_text(active), "utf-8")
        active_of.append((plugin_id, active))
    (root / GENERATION_FILE).write_text(f"generated {count}", "utf-8")
    for folder in (root, receipts):
        _date_back(folder, time.time() - PAST_SECONDS)
    return PluginSummary(
        plugins=count,
        versions=versions_written,
        namespaces=n_namespaces,
        with_two_versions=two,
        older_active=older,
        with_dependency=deps,
        contributions=contributions,
        seconds=round(time.perf_counter() - t0, 3),
    )


def generate_dists(site: Path, count: int) -> DistSummary:
    """Write ``count`` fake distributions with one ``benchapp.plugins`` entry point each."""
    t0 = time.perf_counter()
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    for i in range(count):
        module = f"bench_ep_{i:05d}"
        version = f"1.{i % 10}.0"
        info = site / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: {version}\n"
            f"Summary: Benchmark distribution {i}\n",
            "utf-8",
        )
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n{module} = {module}:Plugin\n", "utf-8")
        (site / f"{module}.py").write_text("class Plugin: ...\n", "utf-8")
        record = [
            f"{module}.py,,",
            f"{info.name}/METADATA,,",
            f"{info.name}/entry_points.txt,,",
            f"{info.name}/RECORD,,",
        ]
        (info / "RECORD").write_text("\n".join(record) + "\n", "utf-8")
    _date_back(site, time.time() - PAST_SECONDS)
    return DistSummary(count, GROUP, round(time.perf_counter() - t0, 3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["plugins", "dists"])
    parser.add_argument("dir", type=Path, help="folder to (re)create")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1, help="plugins only")
    args = parser.parse_args(argv)
    if args.what == "plugins":
        summary: PluginSummary | DistSummary = generate_plugins(
            args.dir, args.count, seed=args.seed
        )
    else:
        summary = generate_dists(args.dir, args.count)
    json.dump(asdict(summary), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
