"""Planning: Catalog + host API version + policy + state → :class:`LoadPlan`.

A pure function: no I/O, no imports of plugin code. It decides, for every discovered
plugin id, either the version that loads and where it stands in the load order, or why
it does not load:

- *disabled*: turned off in config, refused by the policy, incompatible with this host
  (API version, platform), or its dependencies cannot be met (missing, conflicting,
  cyclic);
- *blocked*: it needs a plugin that is disabled or blocked.

Dependencies are resolved with resolvelib across every discovered version, preferring
the active version, then the highest. When the preferred versions already satisfy every
dependency (the common case), resolvelib is not needed and is not run.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, cast

import msgspec

from .config import Policy
from .discovery import Catalog, PluginRecord, Problem
from .resolution import Provider, Requirement
from .store.layout import write_cache_file
from .versions import parse_version, satisfies

if TYPE_CHECKING:
    from pathlib import Path

    from resolvelib import AbstractProvider

__all__ = ["LoadPlan", "PlannedPlugin", "Rejected", "plan", "plan_with_cache"]

RejectedState = Literal["disabled", "blocked"]


class PlannedPlugin(msgspec.Struct, frozen=True):
    """A plugin version chosen to load, with the ids it depends on."""

    record: PluginRecord
    dependencies: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.record.id


class Rejected(msgspec.Struct, frozen=True, gc=False):
    """A plugin id that will not load, and why (one line a user can act on)."""

    plugin_id: str
    version: str | None
    state: RejectedState
    reason: str
    #: why, as a word: config, policy, incompatible, dependency, cycle or blocked
    cause: str = "dependency"


class LoadPlan(msgspec.Struct, frozen=True):
    """What loads, in which order, and what does not (with reasons)."""

    order: tuple[PlannedPlugin, ...]
    rejected: Mapping[str, Rejected]
    problems: tuple[Problem, ...]
    api_version: str | None
    # Built from ``order``: comparing it too (a Struct compares every field) changes no
    # comparison's result.
    _index: dict[str, PlannedPlugin] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        for p in self.order:
            self._index[p.id] = p

    def __repr__(self) -> str:
        return (
            f"LoadPlan(order={self.order!r}, rejected={self.rejected!r}, "
            f"problems={self.problems!r}, api_version={self.api_version!r})"
        )

    def get(self, plugin_id: str) -> PlannedPlugin | None:
        """The planned entry for ``plugin_id``, or None if it does not load."""
        return self._index.get(plugin_id)

    def dependents(self, plugin_id: str) -> list[str]:
        """Ids in the plan that depend on ``plugin_id`` directly."""
        return [p.id for p in self.order if plugin_id in p.dependencies]


class _Stored(msgspec.Struct, array_like=True, gc=False):
    """A plan as kept in the cache: planned records by their place in the catalog."""

    key: bytes
    #: (index in Catalog.records, that record's key, its dependencies), in load order
    order: tuple[tuple[int, str, tuple[str, ...]], ...]
    rejected: dict[str, Rejected]
    problems: tuple[Problem, ...]


def plan_with_cache(
    catalog: Catalog,
    cache_path: Path | None,
    *,
    api_version: str | None = None,
    policy: Policy | None = None,
    disabled: Iterable[str] = (),
    platform: str | None = None,
) -> LoadPlan:
    """:func:`plan`, kept in ``cache_path`` for the next start.

    A plan is a pure function of the catalog and the other arguments. When the catalog
    was answered wholly from discovery's cache, its fingerprint names it, and a plan made
    for the same fingerprint and arguments is read back instead of being made again (a
    warm start then neither plans nor parses a version). Any other catalog is planned as
    usual; a cache file that is missing, damaged or from another plugbay is ignored.
    """
    off = sorted(set(disabled))
    if catalog.fingerprint is None or cache_path is None:
        return plan(
            catalog, api_version=api_version, policy=policy, disabled=off, platform=platform
        )
    from . import __version__

    inputs = [__version__, catalog.fingerprint, api_version, policy or Policy(), off, platform]
    key = msgspec.msgpack.encode(inputs)
    stored = _read_stored(cache_path)
    if stored is not None and stored.key == key:
        kept = _rebuild(stored, catalog, api_version)
        if kept is not None:
            return kept
    made = plan(catalog, api_version=api_version, policy=policy, disabled=off, platform=platform)
    _store(cache_path, key, made, catalog)
    return made


def _read_stored(path: Path) -> _Stored | None:
    try:
        return msgspec.msgpack.decode(path.read_bytes(), type=_Stored)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _rebuild(stored: _Stored, catalog: Catalog, api_version: str | None) -> LoadPlan | None:
    records = catalog.records
    order = []
    for index, key, dependencies in stored.order:
        if index >= len(records) or records[index].key != key:
            return None  # not the catalog it was made for after all
        order.append(PlannedPlugin(records[index], dependencies))
    return LoadPlan(tuple(order), stored.rejected, stored.problems, api_version)


def _store(path: Path, key: bytes, made: LoadPlan, catalog: Catalog) -> None:
    places = {id(r): n for n, r in enumerate(catalog.records)}
    order = []
    for p in made.order:
        index = places.get(id(p.record))
        if index is None:
            return  # a record that is not the catalog's own: nothing to point at
        order.append((index, p.record.key, p.dependencies))
    stored = _Stored(key, tuple(order), dict(made.rejected), made.problems)
    write_cache_file(path, msgspec.msgpack.encode(stored))


def plan(
    catalog: Catalog,
    *,
    api_version: str | None = None,
    policy: Policy | None = None,
    disabled: Iterable[str] = (),
    platform: str | None = None,
) -> LoadPlan:
    """Decide what loads. ``api_version=None`` leaves ``requires`` unchecked."""
    policy = policy or Policy()
    off = set(disabled)
    rejected: dict[str, Rejected] = {}
    candidates: dict[str, list[PluginRecord]] = {}
    refused: list[Problem] = []
    if api_version is not None:
        parse_version(api_version)  # a bad host version fails here, with a clear error
    for plugin_id in catalog.ids():
        versions = catalog.versions(plugin_id)
        if not policy.allow_shadowing_builtins:
            versions = _builtins_kept(catalog, plugin_id, versions, refused)
        if not versions:
            continue
        # Most preferred first (as Catalog.preferred ranks them): active, then highest.
        ranked = sorted(versions, key=_preference, reverse=True) if len(versions) > 1 else versions
        preferred = ranked[0]
        if plugin_id in off:
            rejected[plugin_id] = Rejected(
                plugin_id,
                preferred.version,
                "disabled",
                f"disabled in config (run: plugbay enable {plugin_id})",
                "config",
            )
            continue
        refusal = policy.refuses(plugin_id)
        if refusal is not None:
            rejected[plugin_id] = Rejected(
                plugin_id, preferred.version, "disabled", refusal, "policy"
            )
            continue
        ok = [r for r in ranked if _incompatibility(r, api_version, platform) is None]
        if not ok:
            reason = _incompatibility(preferred, api_version, platform)
            assert reason is not None
            rejected[plugin_id] = Rejected(
                plugin_id, preferred.version, "disabled", reason, "incompatible"
            )
            continue
        candidates[plugin_id] = ok

    chosen = _choose(candidates, rejected, catalog)
    order, cycle_rejections = _order(chosen)
    rejected.update(cycle_rejections)
    rejected = dict(sorted(rejected.items()))
    problems = [
        Problem(
            "info" if r.cause in ("config", "policy") else "error",
            f"plugin.{r.cause}",
            f"{r.plugin_id}{' ' + r.version if r.version else ''}: {r.reason}",
            plugin_id=r.plugin_id,
        )
        for r in rejected.values()
    ]
    return LoadPlan(tuple(order), rejected, tuple(refused + problems), api_version)


def _builtins_kept(
    catalog: Catalog, plugin_id: str, versions: list[PluginRecord], refused: list[Problem]
) -> list[PluginRecord]:
    """``[policy] allow-shadowing-builtins = false``: a plugin with a built-in copy keeps it;
    the copies found in search paths are refused, each with a problem saying so."""
    if not any(r.origin != "builtin" for r in versions):
        return versions
    builtins = [
        r for r in catalog.versions(plugin_id, include_shadowed=True) if r.origin == "builtin"
    ]
    if not builtins:
        return versions
    kept = builtins[0]
    for r in versions:
        if r.origin == "builtin":
            continue
        refused.append(
            Problem(
                "warning",
                "plugin.shadowing-refused",
                f"{r.key} ({r.origin}, {r.path}) may not shadow the built-in {kept.key}: "
                "[policy] allow-shadowing-builtins is false, so the built-in loads (remove "
                "that copy, or set allow-shadowing-builtins = true in config.toml)",
                plugin_id=plugin_id,
                path=r.path,
            )
        )
    return builtins


def _preference(r: PluginRecord) -> tuple[bool, Any]:
    return (r.active, parse_version(r.version))


@lru_cache(maxsize=4096)
def _spec(plugin_id: str, rng: str) -> str:
    """``acme.b >=2.0.0``, or just ``acme.b`` when any version will do."""
    return plugin_id if rng.strip() == "*" else f"{plugin_id} {rng}"


def _incompatibility(r: PluginRecord, api: str | None, platform: str | None) -> str | None:
    p = r.manifest.plugin
    if api is not None and not satisfies(api, p.requires):
        return f"needs host API {p.requires}, but this host provides {api}"
    if (
        platform is not None
        and p.platforms
        and p.runtime != "python"
        and platform not in p.platforms
    ):
        return f"has no build for {platform} (it has: {', '.join(sorted(p.platforms))})"
    return None


# ---------------------------------------------------------------- choosing versions


def _choose(
    candidates: dict[str, list[PluginRecord]],
    rejected: dict[str, Rejected],
    catalog: Catalog,
) -> dict[str, PluginRecord]:
    """Pick one version per id; ids that cannot be satisfied move to ``rejected``."""
    while True:
        chosen = {pid: versions[0] for pid, versions in candidates.items()}
        troubled = _unsatisfied(chosen)
        if not troubled:
            return chosen
        # Missing and rejected dependencies are settled first, without a solver.
        if _reject_unreachable(candidates, rejected, catalog):
            continue
        component = _component(troubled, candidates)
        outcome = _resolve(component, candidates)
        if isinstance(outcome, dict):
            for pid, record in outcome.items():
                # Put the solver's choice first so the next round's fast check accepts it.
                candidates[pid] = [record] + [r for r in candidates[pid] if r is not record]
            continue
        for pid, rejection in outcome:
            rejected[pid] = rejection
            candidates.pop(pid, None)


def _unsatisfied(chosen: Mapping[str, PluginRecord]) -> list[str]:
    out = []
    for pid, record in chosen.items():
        for dep, rng in record.manifest.dependencies.items():
            target = chosen.get(dep)
            if target is None or not satisfies(target.version, rng):
                out.append(pid)
                break
    return out


def _reject_unreachable(
    candidates: dict[str, list[PluginRecord]],
    rejected: dict[str, Rejected],
    catalog: Catalog,
) -> bool:
    """Reject ids whose every version needs a plugin that is absent or rejected."""
    changed = False
    for pid in sorted(candidates):
        keep = []
        reason = ""
        state: RejectedState = "disabled"
        for record in candidates[pid]:
            why = _absent_dependency(record, candidates, rejected, catalog)
            if why is None:
                keep.append(record)
            elif not reason:
                state, reason = why
        if keep:
            # Dropping a version (the preferred one, maybe) changes the next round's choice.
            changed = changed or len(keep) != len(candidates[pid])
            candidates[pid] = keep
            continue
        cause = "blocked" if state == "blocked" else "dependency"
        rejected[pid] = Rejected(pid, candidates[pid][0].version, state, reason, cause)
        del candidates[pid]
        changed = True
    return changed


def _absent_dependency(
    record: PluginRecord,
    candidates: Mapping[str, list[PluginRecord]],
    rejected: Mapping[str, Rejected],
    catalog: Catalog,
) -> tuple[RejectedState, str] | None:
    for dep, rng in sorted(record.manifest.dependencies.items()):
        if dep in candidates:
            continue
        if dep in rejected:
            r = rejected[dep]
            return "blocked", f"needs {_spec(dep, rng)}, which is {r.state}: {r.reason}"
        if catalog.versions(dep):
            return "disabled", f"needs {_spec(dep, rng)}, but {dep} cannot load"
        return "disabled", f"needs {_spec(dep, rng)}, but {dep} is not installed"
    return None


def _component(troubled: Sequence[str], candidates: Mapping[str, list[PluginRecord]]) -> list[str]:
    """The ids connected to ``troubled`` through dependencies of any version."""
    links: dict[str, set[str]] = {}
    for pid, versions in candidates.items():
        for record in versions:
            for dep in record.manifest.dependencies:
                if dep in candidates:
                    links.setdefault(pid, set()).add(dep)
                    links.setdefault(dep, set()).add(pid)
    seen: set[str] = set()
    todo = list(troubled)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(links.get(pid, ()))
    return sorted(seen)


def _resolve(
    component: list[str], candidates: Mapping[str, list[PluginRecord]]
) -> dict[str, PluginRecord] | list[tuple[str, Rejected]]:
    """Resolve one connected component; on failure, say which ids to reject and why."""
    from resolvelib import BaseReporter, Resolver
    from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

    typed = cast("AbstractProvider[Requirement, PluginRecord, str]", Provider(candidates))
    resolver: Resolver[Requirement, PluginRecord, str] = Resolver(typed, BaseReporter())
    roots = [Requirement(pid, None) for pid in component]
    try:
        result = resolver.resolve(roots, max_rounds=10_000)
    except ResolutionImpossible as exc:
        return _culprits(list(exc.causes), candidates)
    except ResolutionTooDeep:
        return [
            (
                pid,
                Rejected(
                    pid,
                    candidates[pid][0].version,
                    "disabled",
                    "its dependencies could not be resolved in 10,000 rounds; "
                    "pin versions with plugbay use ID@VERSION",
                ),
            )
            for pid in component
        ]
    return {pid: result.mapping[pid] for pid in component if pid in result.mapping}


def _culprits(
    causes: list[Any], candidates: Mapping[str, list[PluginRecord]]
) -> list[tuple[str, Rejected]]:
    """Which ids to reject after resolvelib gave up, each with a reason naming the ranges."""
    by_dep: dict[str, list[Requirement]] = {}
    for cause in causes:
        req: Requirement = cause.requirement
        if req.parent is not None:
            by_dep.setdefault(req.id, []).append(req)
    out: dict[str, Rejected] = {}
    for dep, reqs in sorted(by_dep.items()):
        preferred = candidates[dep][0] if dep in candidates else None
        # Blame whoever asks for something other than the version that would load anyway.
        odd = [
            r
            for r in reqs
            if preferred is None or r.range is None or not satisfies(preferred.version, r.range)
        ]
        reason = _explain(dep, reqs, candidates)
        for r in odd or reqs:
            assert r.parent is not None
            out.setdefault(r.parent.id, Rejected(r.parent.id, r.parent.version, "disabled", reason))
    if not out:  # resolvelib named only roots: reject them all rather than loop
        for cause in causes:
            pid = cause.requirement.id
            version = candidates[pid][0].version if candidates.get(pid) else None
            reason = "its dependencies cannot be met together with the other plugins' needs"
            out.setdefault(pid, Rejected(pid, version, "disabled", reason))
    return sorted(out.items())


def _explain(
    dep: str, reqs: list[Requirement], candidates: Mapping[str, list[PluginRecord]]
) -> str:
    needs = sorted(
        {
            f"{r.parent.id} {r.parent.version} needs {_spec(dep, r.range or '*')}"
            for r in reqs
            if r.parent is not None
        }
    )
    versions = sorted({parse_version(c.version) for c in candidates.get(dep, [])})
    listed = ", ".join(v.text for v in versions)
    if len(needs) > 1:
        return f"{'; '.join(needs)} (installed: {dep} {listed or 'none that can load'})"
    if not versions:
        return f"{needs[0]}, but {dep} cannot load"
    verb = "is" if len(versions) == 1 else "are"
    return f"{needs[0]}, but only {dep} {listed} {verb} installed"


# ---------------------------------------------------------------- load order


def _order(
    chosen: Mapping[str, PluginRecord],
) -> tuple[list[PlannedPlugin], dict[str, Rejected]]:
    """Topological order with ties broken by id; cycles and what hangs on them rejected."""
    nodes = {pid: tuple(sorted(r.manifest.dependencies)) for pid, r in chosen.items()}
    order = _kahn(nodes)
    planned = [PlannedPlugin(chosen[pid], nodes[pid]) for pid in order]
    if len(order) == len(nodes):
        return planned, {}
    placed = set(order)
    rest = {pid: tuple(d for d in deps if d not in placed) for pid, deps in nodes.items()}
    rest = {pid: deps for pid, deps in rest.items() if pid not in placed}
    out: dict[str, Rejected] = {}
    for scc in _strongly_connected(rest):
        if len(scc) > 1:
            ring = " → ".join([*scc, scc[0]])
            for pid in scc:
                out[pid] = Rejected(
                    pid, chosen[pid].version, "disabled", f"dependency cycle: {ring}", "cycle"
                )
    # The rest need a cycle member, directly or through one another; each pass settles
    # at least the plugins one step further from a cycle.
    waiting = sorted(pid for pid in rest if pid not in out)
    for _ in range(len(waiting)):
        for pid in waiting:
            dep = next((d for d in rest[pid] if d in out), None)
            if dep is not None:
                out[pid] = Rejected(
                    pid, chosen[pid].version, "blocked", _blocked_by(dep, out[dep]), "blocked"
                )
        waiting = [pid for pid in waiting if pid not in out]
    return planned, out


def _blocked_by(dep: str, rejected: Rejected) -> str:
    if rejected.cause == "cycle":
        return f"needs {dep}, which is in a {rejected.reason}"
    return f"needs {dep}, which is blocked: {rejected.reason}"


def _kahn(nodes: Mapping[str, tuple[str, ...]]) -> list[str]:
    waiting = {pid: sum(1 for d in deps if d in nodes) for pid, deps in nodes.items()}
    dependents: dict[str, list[str]] = {}
    for pid, deps in nodes.items():
        for d in deps:
            if d in nodes:
                dependents.setdefault(d, []).append(pid)
    ready = [pid for pid, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        pid = heapq.heappop(ready)
        order.append(pid)
        for nxt in dependents.get(pid, ()):
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, nxt)
    return order


def _strongly_connected(nodes: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative.

    Each component is listed along its dependency edges, starting from its smallest id.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(nodes):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [
            (start, iter(d for d in nodes[start] if d in nodes))
        ]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(d for d in nodes[nxt] if d in nodes)))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                scc = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    scc.append(w)
                    if w == node:
                        break
                out.append(_ring(sorted(scc), nodes))
    return out


def _ring(members: list[str], nodes: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Order a cycle's members along their dependency edges, from the smallest id."""
    if len(members) < 2:
        return members
    inside = set(members)
    ring = [members[0]]
    while len(ring) < len(members):
        nxt = next((d for d in nodes[ring[-1]] if d in inside and d not in ring), None)
        if nxt is None:
            ring.extend(m for m in members if m not in ring)
            break
        ring.append(nxt)
    return ring
