"""The index benchmark's inputs: what is published, generated deterministically and cached.

Two workloads:

- **deps** (:func:`deps_plan`, :func:`build_deps`): 50 plugins in 2 namespaces
  (``bench00.p000`` …), 95 dependency edges, 8 top-level plugins that pull in all 50, and
  two versions of each plugin (the older one never satisfies the ranges, so every
  resolution must pick the newest). The same plugins are built twice: as plugbay bundles
  (with the library's ``build_bundle``, which is what ``plugbay build`` runs) indexed by
  ``plugbay index build`` (a flat ``index.json`` and a sharded ``sharded.json``), and as
  Ansible collections built by ``ansible-galaxy collection build``. The plugin files are
  those of the install benchmark (``benchmarks/install/generate.py``: two modules each,
  with their help pages), so both tools move the same content.
- **big** (:func:`build_big`): 10,000 plugins with bare names (``p00000`` … ``p09999``),
  one version each and a second, older one for every tenth; plugin ``i`` depends on the
  first plugin of its group of ten and, from the sixth on, on the plugin four before it,
  so ``p09999`` needs ``p09995``, ``p09991`` and ``p09990`` (4 plugins in all). Each bundle
  holds a manifest and one Python file. Indexed sharded (``index.json`` and ``index/``)
  and flat (``flat.json``).

Generation is deterministic (a seeded random generator; bundles are reproducible). The
results are kept between runs in ``.work/cache/<key>/``: the key covers this generator's
version, plugbay's and ansible-core's versions, so a change of either rebuilds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent

#: Bumped whenever what is generated changes: cached inputs of another version are rebuilt.
GENERATOR_VERSION = 3

DEPS_PLUGINS, DEPS_EDGES, DEPS_TOP = 50, 95, 8
BIG_PLUGINS = 10_000
BIG_TARGET = "p09999"


def _install_generator() -> ModuleType:
    """benchmarks/install/generate.py, loaded under its own name (both folders are scripts)."""
    path = HERE.parent / "install" / "generate.py"
    spec = importlib.util.spec_from_file_location("install_generate", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path} is missing: the index benchmark reuses its plugin files")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_gen = _install_generator()
PluginSpec = _gen.PluginSpec


# ---------------------------------------------------------------- deps: 50 plugins


@dataclass(frozen=True)
class Published:
    """One published version of one plugin: the same on both sides."""

    namespace: str
    name: str
    version: str
    dependencies: tuple[tuple[str, str], ...]  # (id, range)

    @property
    def id(self) -> str:
        return f"{self.namespace}.{self.name}"

    def spec(self) -> Any:
        """The install benchmark's PluginSpec: it writes the plugin's files."""
        return PluginSpec(self.namespace, self.name, self.version, 2, self.dependencies)


def deps_plan(seed: int = 7) -> tuple[list[Published], list[str]]:
    """Every published version of the *deps* workload, and the top-level ids to install.

    Plugins ``0 … 41`` are depended on, ``42 … 49`` (the top-level ones) are not: each of
    the first 42 gets one dependent drawn among the later plugins, the other 53 edges are
    drawn among all the pairs left (always from a later plugin to an earlier one: acyclic).
    Newest versions are ``1.M.P`` with M ≥ 1, a dependency on a plugin at ``1.M.P`` is
    ``>=1.M.0,<2.0.0``, and each plugin's older version ``1.(M-1).Q`` satisfies none.
    """
    rng = random.Random(seed)
    count, edges, top = DEPS_PLUGINS, DEPS_EDGES, DEPS_TOP
    namespaces = 2
    ids = [(f"bench{i % namespaces:02d}", f"p{i:03d}") for i in range(count)]
    newest = [(rng.randrange(1, 10), rng.randrange(20)) for _ in range(count)]
    chosen: set[tuple[int, int]] = set()
    for j in range(count - top):
        chosen.add((rng.randrange(j + 1, count), j))
    rest = [(i, j) for i in range(1, count) for j in range(min(i, count - top))]
    rest = [p for p in rest if p not in chosen]
    chosen.update(rng.sample(rest, edges - len(chosen)))
    deps: list[list[tuple[str, str]]] = [[] for _ in range(count)]
    for i, j in sorted(chosen):
        ns, name = ids[j]
        deps[i].append((f"{ns}.{name}", f">=1.{newest[j][0]}.0,<2.0.0"))
    out = []
    for i, (ns, name) in enumerate(ids):
        minor, patch = newest[i]
        older = f"1.{minor - 1}.{rng.randrange(20)}"
        for version in (f"1.{minor}.{patch}", older):
            out.append(Published(ns, name, version, tuple(sorted(deps[i]))))
    tops = [f"{ns}.{name}" for ns, name in ids[count - top :]]
    return out, tops


@dataclass(frozen=True)
class DepsInputs:
    """The built *deps* workload: the plugbay site and the Ansible collection tarballs."""

    published: list[Published]
    top: list[str]
    site: Path  # bundles, index.json (flat), sharded.json + sharded/
    collections: Path  # NS-NAME-VERSION.tar.gz from ansible-galaxy collection build
    facts: dict[str, Any]

    def newest(self) -> dict[str, str]:
        """id → the newest version: what an install must end with."""
        out: dict[str, str] = {}
        for p in self.published:
            out.setdefault(p.id, p.version)  # the newest comes first
        return out


def build_deps(
    cache: Path, plugbay: Path, galaxy: Path, env: dict[str, str], log: Callable[[str], None]
) -> DepsInputs:
    """The *deps* workload under ``cache`` (built now, unless a complete copy is there)."""
    published, top = deps_plan()
    root = cache / "deps"
    done = root / "done.json"
    if done.exists():
        return DepsInputs(
            published, top, root / "site", root / "collections", json.loads(done.read_text())
        )
    log("building the deps workload: 100 plugbay bundles and 100 Ansible collections")
    t0 = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    src, site, collections = root / "src", root / "site", root / "collections"
    from plugbay.store import build_bundle

    folders = []
    for n, p in enumerate(published):
        build_bundle(_gen.write_plugbay(p.spec(), src / "plugbay" / str(n)), site)
        folders.append(_gen.write_ansible(p.spec(), src / "ansible" / str(n)))
    _run([plugbay, "-q", "index", "build", site], env)
    _run([plugbay, "-q", "index", "build", site, "-o", site / "sharded.json", "--sharded"], env)
    collections.mkdir(parents=True)
    jobs = max(1, min(os.cpu_count() or 1, 4))
    chunks = [folders[i::jobs] for i in range(jobs)]

    def build(chunk: Sequence[Path]) -> None:
        _run([galaxy, "collection", "build", "--output-path", collections, *chunk], env)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(build, chunks))
    built = sorted(collections.glob("*.tar.gz"))
    bundles = sorted(site.glob("*.tar.gz"))
    if len(built) != len(published) or len(bundles) != len(published):
        raise SystemExit(f"deps: built {len(bundles)} bundles and {len(built)} collections")
    shutil.rmtree(src)
    facts = {
        "plugins": DEPS_PLUGINS,
        "versions": len(published),
        "dependency_edges": sum(len(p.dependencies) for p in published) // 2,
        "top_level": top,
        "bundle_bytes": sum(p.stat().st_size for p in bundles),
        "collection_bytes": sum(p.stat().st_size for p in built),
        "flat_index_bytes": (site / "index.json").stat().st_size,
        "sharded_root_bytes": (site / "sharded.json").stat().st_size,
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    done.write_text(json.dumps(facts, indent=2) + "\n")
    return DepsInputs(published, top, site, collections, facts)


# ---------------------------------------------------------------- big: 10,000 plugins


def big_dependencies(i: int) -> dict[str, str]:
    """What plugin ``i`` of the big workload depends on (see the module's docstring)."""
    base = i - i % 10
    deps = {}
    if i % 10:
        deps[f"p{base:05d}"] = ">=1.0.0,<2.0.0"
    if i % 10 >= 5:
        deps[f"p{i - 4:05d}"] = "^1.1"
    return deps


def big_versions(i: int) -> list[str]:
    """The versions of plugin ``i``: ``1.1.P`` (or ``1.2.P``), and ``1.0.0`` for every tenth."""
    newest = f"1.{1 + i % 2}.{i % 7}"
    return [newest, "1.0.0"] if i % 10 == 3 else [newest]


def big_closure(i: int) -> list[str]:
    """Ids a resolution of plugin ``i`` ends with, sorted."""
    todo, seen = [f"p{i:05d}"], set()
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += big_dependencies(int(pid[1:]))
    return sorted(seen)


def _write_big(indices: Sequence[int], src: Path, site: Path) -> int:
    """Write and build the bundles of the plugins ``indices`` (runs in a worker process)."""
    from plugbay.store import build_bundle

    built = 0
    for i in indices:
        name = f"p{i:05d}"
        for version in big_versions(i):
            folder = src / f"{name}-{version}"
            package = folder / f"{name}_pkg"
            package.mkdir(parents=True)
            lines = [
                "schema = 1",
                "[plugin]",
                f'name = "{name}"',
                f'version = "{version}"',
                f'description = "Benchmark plugin {name}"',
                'requires = ">=1.0.0,<2.0.0"',
                'runtime = "python"',
                f'entry = "{name}_pkg:Plugin"',
            ]
            deps = big_dependencies(i)
            if deps:
                lines.append("[dependencies]")
                lines += [f'"{k}" = "{v}"' for k, v in deps.items()]
            (folder / "plugin.toml").write_text("\n".join(lines) + "\n", "utf-8")
            (package / "__init__.py").write_text(
                f'"""{name} {version}."""\n\n\nclass Plugin:\n    pass\n', "utf-8"
            )
            build_bundle(folder, site)
            shutil.rmtree(folder)
            built += 1
    return built


@dataclass(frozen=True)
class BigInputs:
    site: Path  # bundles, index.json (sharded) + index/, flat.json
    facts: dict[str, Any]


def build_big(
    cache: Path, plugbay: Path, env: dict[str, str], log: Callable[[str], None]
) -> BigInputs:
    """The *big* workload under ``cache`` (built now, unless a complete copy is there)."""
    root = cache / "big"
    done = root / "done.json"
    if done.exists():
        return BigInputs(root / "site", json.loads(done.read_text()))
    log(f"building the big workload: {BIG_PLUGINS:,} plugins (kept for later runs)")
    shutil.rmtree(root, ignore_errors=True)
    src, site = root / "src", root / "site"
    site.mkdir(parents=True)
    t0 = time.perf_counter()
    jobs = os.cpu_count() or 1
    chunks = [list(range(k, BIG_PLUGINS, jobs)) for k in range(jobs)]
    with ProcessPoolExecutor(jobs) as pool:
        versions = sum(pool.map(_write_big, chunks, [src] * jobs, [site] * jobs))
    built = time.perf_counter()
    _run([plugbay, "-q", "index", "build", site, "--sharded"], env)
    sharded = time.perf_counter()
    _run([plugbay, "-q", "index", "build", site, "-o", site / "flat.json"], env)
    flat = time.perf_counter()
    shutil.rmtree(src, ignore_errors=True)
    shards = list((site / "index").glob("*.json"))
    facts = {
        "plugins": BIG_PLUGINS,
        "versions": versions,
        "target": BIG_TARGET,
        "target_closure": big_closure(int(BIG_TARGET[1:])),
        "bundle_bytes": sum(p.stat().st_size for p in site.glob("*.tar.gz")),
        "sharded_root_bytes": (site / "index.json").stat().st_size,
        "shards": len(shards),
        "shard_bytes_median": sorted(p.stat().st_size for p in shards)[len(shards) // 2],
        "flat_index_bytes": (site / "flat.json").stat().st_size,
        "bundle_seconds": round(built - t0, 1),
        "index_build_sharded_seconds": round(sharded - built, 1),
        "index_build_flat_seconds": round(flat - sharded, 1),
    }
    done.write_text(json.dumps(facts, indent=2) + "\n")
    return BigInputs(site, facts)


# ---------------------------------------------------------------- shared


def cache_key(plugbay_version: str, ansible_version: str) -> str:
    """The cache folder's name for this generator and these tool versions."""
    text = f"{GENERATOR_VERSION}|{plugbay_version}|{ansible_version}"
    return f"v{GENERATOR_VERSION}-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(cmd: Sequence[str | Path], env: dict[str, str]) -> None:
    proc = subprocess.run(
        [str(c) for c in cmd], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        shown = " ".join(str(c) for c in cmd[:6])
        raise SystemExit(f"{shown} … failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
