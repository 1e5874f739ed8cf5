"""Planning: version resolution, load order and rejections.

Resolver cases are data files in ``tests/data/plan/`` (installed plugins, host API
version, disabled ids, policy, and the expected plan) checked by one parametrized test;
Hypothesis checks the resolver's invariants on random small catalogs.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugbay import plan as plan_module
from plugbay.config import Policy
from plugbay.discovery import Catalog, PluginRecord
from plugbay.manifest import manifest_from_mapping
from plugbay.plan import LoadPlan, plan, plan_with_cache
from plugbay.versions import parse_range, parse_version

CASES = Path(__file__).parent / "data" / "plan"

# What a reason a user reads must never contain.
_UNREADABLE = re.compile(r"object at 0x|Traceback|Record\(|Range\(|Version\(|_Requirement|\n")


def make_record(
    plugin_id: str,
    version: str,
    *,
    active: bool = True,
    dependencies: Mapping[str, str] | None = None,
    **plugin: Any,
) -> PluginRecord:
    """An installed plugin version, built in memory (planning needs no disk)."""
    namespace, _, name = plugin_id.rpartition(".")
    info: dict[str, Any] = {"name": name, "version": version, **plugin}
    if namespace:
        info["namespace"] = namespace
    raw = {"plugin": info, "dependencies": dict(dependencies or {})}
    manifest = manifest_from_mapping(raw, f"<{plugin_id}@{version}>")
    folder = f"/plugins/{plugin_id.replace('.', '/')}/{version}"
    return PluginRecord(manifest, folder, f"{folder}/plugin.toml", "user", 1, active)


def catalog_of(records: Sequence[PluginRecord]) -> Catalog:
    return Catalog(tuple(records), ())


def summary(result: LoadPlan) -> tuple[object, ...]:
    """Everything a plan decides, in comparable form."""
    return (
        [(p.id, p.record.version, p.dependencies) for p in result.order],
        sorted(
            (r.plugin_id, r.version, r.state, r.cause, r.reason) for r in result.rejected.values()
        ),
        result.problems,
    )


# ---------------------------------------------------------------- data-file cases


def load_case(path: Path) -> tuple[list[PluginRecord], dict[str, Any]]:
    case = tomllib.loads(path.read_text("utf-8"))
    records = [
        make_record(
            p["id"],
            p["version"],
            active=p.get("active", True),
            dependencies=p.get("dependencies"),
            **{k: v for k, v in p.items() if k in ("requires", "runtime", "entry", "platforms")},
        )
        for p in case["plugins"]
    ]
    return records, case


@pytest.mark.parametrize("path", sorted(CASES.glob("*.toml")), ids=lambda p: p.stem)
def test_plan_case(path: Path) -> None:
    records, case = load_case(path)
    expected = case["expected"]

    result = plan(
        catalog_of(records),
        api_version=case.get("api_version"),
        policy=Policy(**{k: tuple(v) for k, v in case.get("policy", {}).items()}),
        disabled=case.get("disabled", ()),
        platform=case.get("platform"),
    )

    assert [p.id for p in result.order] == expected["order"]
    assert {p.id: p.record.version for p in result.order} == expected["chosen"]
    assert sorted(result.rejected) == sorted(expected.get("rejected", {}))
    for plugin_id, want in expected.get("rejected", {}).items():
        got = result.rejected[plugin_id]
        assert got.plugin_id == plugin_id
        assert got.state == want["state"], got
        assert want["reason"] in got.reason
        assert got.cause == want.get("cause", got.cause)
        assert got.version == want.get("version", got.version)
        assert not _UNREADABLE.search(got.reason), got.reason
    # Each rejection is one problem, in id order, naming the plugin and version.
    assert [p.plugin_id for p in result.problems] == sorted(result.rejected)
    for problem in result.problems:
        rejected = result.rejected[problem.plugin_id or ""]
        assert problem.message.startswith(f"{rejected.plugin_id} ")
        assert problem.message.endswith(rejected.reason)
        assert problem.severity == ("info" if rejected.cause in ("config", "policy") else "error")
    # The same catalog in the reverse order plans the same.
    again = plan(
        catalog_of(records[::-1]),
        api_version=case.get("api_version"),
        policy=Policy(**{k: tuple(v) for k, v in case.get("policy", {}).items()}),
        disabled=case.get("disabled", ()),
        platform=case.get("platform"),
    )
    assert summary(again) == summary(result)


def test_every_case_file_is_a_valid_case() -> None:
    files = sorted(CASES.glob("*.toml"))
    assert len(files) >= 15
    for path in files:
        _, case = load_case(path)
        assert set(case) <= {"api_version", "platform", "disabled", "policy", "plugins", "expected"}
        assert set(case["expected"]) <= {"order", "chosen", "rejected"}


# ---------------------------------------------------------------- API details


def test_planned_plugins_carry_their_dependencies() -> None:
    records = [
        make_record("acme.a", "1.0.0", dependencies={"acme.c": "*", "acme.b": "*"}),
        make_record("acme.b", "1.0.0"),
        make_record("acme.c", "1.0.0", dependencies={"acme.b": "*"}),
    ]

    result = plan(catalog_of(records))

    assert [(p.id, p.dependencies) for p in result.order] == [
        ("acme.b", ()),
        ("acme.c", ("acme.b",)),
        ("acme.a", ("acme.b", "acme.c")),
    ]
    assert result.get("acme.c") is result.order[1]
    assert result.get("acme.nope") is None
    assert sorted(result.dependents("acme.b")) == ["acme.a", "acme.c"]
    assert result.api_version is None


def test_shadowed_versions_are_not_candidates() -> None:
    low = make_record("acme.a", "2.0.0")
    high = make_record("acme.a", "1.0.0")
    records = [
        PluginRecord(low.manifest, low.path, low.manifest_path, "user", 1, shadowed=True),
        PluginRecord(high.manifest, high.path, high.manifest_path, "project", 2),
        make_record("acme.b", "1.0.0", dependencies={"acme.a": ">=2.0.0"}),
    ]

    result = plan(catalog_of(records))

    assert [(p.id, p.record.version) for p in result.order] == [("acme.a", "1.0.0")]
    assert "only acme.a 1.0.0 is installed" in result.rejected["acme.b"].reason


_FAST_PATH = """
import sys
from plugbay.discovery import Catalog, PluginRecord
from plugbay.manifest import manifest_from_mapping
from plugbay.plan import plan

def record(name, version, deps, active=True):
    raw = {"plugin": {"namespace": "acme", "name": name, "version": version},
           "dependencies": deps}
    return PluginRecord(manifest_from_mapping(raw), "/p", "/p/plugin.toml", "user", 1, active)

records = [record(f"p{i}", "1.0.0", {}) for i in range(50)]
records += [record(f"q{i}", "1.0.0", {f"acme.p{i}": "^1.0.0"}) for i in range(50)]
records.append(record("p0", "0.9.0", {}, active=False))  # nothing needs it
if sys.argv[1] == "conflict":
    records.append(record("z", "1.0.0", {"acme.p0": "<1.0.0"}))
result = plan(Catalog(tuple(records), ()))
print(len(result.order), len(result.rejected), "resolvelib" in sys.modules)
"""


@pytest.mark.parametrize(
    ("case", "expected"),
    [("fitting", "100 0 False"), ("conflict", "100 1 True")],
)
def test_resolver_runs_only_when_preferred_versions_do_not_fit(
    case: str, expected: str, tmp_path: Path
) -> None:
    """The common case (preferred versions fit) never imports resolvelib, let alone runs it."""
    script = tmp_path / "fast_path.py"
    script.write_text(_FAST_PATH)

    done = subprocess.run(
        [sys.executable, str(script), case], capture_output=True, text=True, check=True
    )

    assert done.stdout.split() == expected.split()


# ---------------------------------------------------------------- invariants (Hypothesis)

IDS = ("p.a", "p.b", "p.c", "p.d", "p.e")
VERSIONS = ("1.0.0", "1.1.0", "2.0.0")
RANGES = ("*", ">=1.0.0", "<2.0.0", "^1.0.0", ">=1.1.0", ">=2.0.0", "1.1.0", "~1.0.0")
API = "1.0.0"


@st.composite
def catalogs(draw: st.DrawFn, *, acyclic: bool = False) -> tuple[list[PluginRecord], list[str]]:
    """A few plugins with a few versions each, random ranges, some missing dependencies,
    some incompatible versions, some disabled ids, in a random record order."""
    ids = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=len(IDS), unique=True))
    if acyclic:
        ids.sort()
    records = []
    for n, plugin_id in enumerate(ids):
        versions = draw(st.lists(st.sampled_from(VERSIONS), min_size=1, max_size=3, unique=True))
        active = draw(st.none() | st.sampled_from(versions))
        targets = ids[:n] if acyclic else [i for i in (*IDS, "p.missing") if i != plugin_id]
        for version in versions:
            deps = draw(
                st.dictionaries(st.sampled_from(targets), st.sampled_from(RANGES), max_size=3)
                if targets
                else st.just({})
            )
            requires = draw(st.sampled_from(("*", "*", "*", ">=2.0.0")))
            records.append(
                make_record(
                    plugin_id,
                    version,
                    active=active is None or active == version,
                    dependencies=deps,
                    requires=requires,
                )
            )
    disabled = [] if acyclic else draw(st.lists(st.sampled_from(ids), max_size=2, unique=True))
    return draw(st.permutations(records)), disabled


def _satisfies(version: str, rng: str) -> bool:
    return parse_version(version) in parse_range(rng)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalogs())
def test_resolver_invariants(case: tuple[list[PluginRecord], list[str]]) -> None:
    records, disabled = case
    ids = {r.id for r in records}

    result = plan(catalog_of(records), api_version=API, disabled=disabled)

    chosen = {p.id: p.record for p in result.order}
    assert len(chosen) == len(result.order)  # no id twice
    position = {p.id: i for i, p in enumerate(result.order)}
    for p in result.order:
        assert p.record in records
        assert _satisfies(API, p.record.manifest.plugin.requires)
        assert p.dependencies == tuple(sorted(p.record.manifest.dependencies))
        for dep, rng in p.record.manifest.dependencies.items():
            # Every dependency is planned, in a version its range accepts, and loads first.
            assert dep in chosen
            assert _satisfies(chosen[dep].version, rng)
            assert position[dep] < position[p.id]
    # Every discovered id is either planned or rejected: never both, never neither.
    assert set(chosen).isdisjoint(result.rejected)
    assert set(chosen) | set(result.rejected) == ids
    for plugin_id in disabled:
        assert result.rejected[plugin_id].cause == "config"
    for rejected in result.rejected.values():
        assert rejected.reason
        assert not _UNREADABLE.search(rejected.reason), rejected.reason
    # Deterministic, and independent of the order discovery listed the records in.
    assert summary(plan(catalog_of(records), api_version=API, disabled=disabled)) == summary(result)
    reordered = sorted(records, key=lambda r: (r.id, r.version), reverse=True)
    assert summary(plan(catalog_of(reordered), api_version=API, disabled=disabled)) == summary(
        result
    )


def _loadable_assignment_exists(records: Sequence[PluginRecord]) -> bool:
    """Brute force: can one compatible version per id be chosen so that every
    dependency is present and satisfied?"""
    by_id: dict[str, list[PluginRecord]] = {}
    for r in records:
        if _satisfies(API, r.manifest.plugin.requires):
            by_id.setdefault(r.id, []).append(r)
    if len(by_id) != len({r.id for r in records}):
        return False
    for combo in itertools.product(*by_id.values()):
        picked = {r.id: r.version for r in combo}
        if all(
            dep in picked and _satisfies(picked[dep], rng)
            for r in combo
            for dep, rng in r.manifest.dependencies.items()
        ):
            return True
    return False


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalogs(acyclic=True))
def test_resolver_finds_a_full_plan_when_one_exists(
    case: tuple[list[PluginRecord], list[str]],
) -> None:
    records, _ = case
    catalog = catalog_of(records)

    result = plan(catalog, api_version=API)

    if _loadable_assignment_exists(records):
        assert result.rejected == {}
    else:
        assert result.rejected
    # When the preferred versions already fit, they are what loads.
    preferred = {pid: catalog.preferred(pid) for pid in catalog.ids()}
    fits = all(
        r is not None
        and _satisfies(API, r.manifest.plugin.requires)
        and all(
            (d := preferred.get(dep)) is not None and _satisfies(d.version, rng)
            for dep, rng in r.manifest.dependencies.items()
        )
        for r in preferred.values()
    )
    if fits:
        assert {p.id: p.record for p in result.order} == preferred


# ---------------------------------------------------------------- the plan cache


def _fingerprinted(records: Sequence[PluginRecord], fingerprint: bytes | None = b"f1") -> Catalog:
    return Catalog(tuple(records), (), fingerprint=fingerprint)


def _planning_counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = plan_module.plan

    def counted(*args: Any, **kwargs: Any) -> LoadPlan:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(plan_module, "plan", counted)
    return calls


def _records() -> list[PluginRecord]:
    return [
        make_record("acme.base", "1.0.0"),
        make_record("acme.base", "2.0.0", active=False),
        make_record("acme.app", "1.0.0", dependencies={"acme.base": ">=1.0.0,<2.0.0"}),
        make_record("acme.old", "1.0.0", requires=">=2.0.0"),
        make_record("acme.needs", "1.0.0", dependencies={"acme.gone": "*"}),
    ]


def test_a_plan_is_kept_for_a_fingerprinted_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "plan.msgpack"
    calls = _planning_counted(monkeypatch)
    catalog = _fingerprinted(_records())
    made = plan_with_cache(catalog, cache, api_version="1.5.0", disabled=["acme.x"])
    assert calls == [1]
    assert cache.exists()
    again = plan_with_cache(catalog, cache, api_version="1.5.0", disabled=["acme.x"])
    assert calls == [1]  # read back, not made again
    assert again == made == plan(catalog, api_version="1.5.0", disabled=["acme.x"])
    assert [p.id for p in again.order] == ["acme.base", "acme.app"]
    assert set(again.rejected) == {"acme.old", "acme.needs"}
    assert again.get("acme.app") is not None
    # The records are the catalog's own.
    assert again.order[0].record is catalog.records[0]


@pytest.mark.parametrize(
    "change",
    [
        {"api_version": "2.1.0"},
        {"disabled": ["acme.base"]},
        {"policy": Policy(deny=("acme.app",))},
        {"platform": "darwin-arm64"},
        {"fingerprint": b"f2"},
    ],
    ids=["api-version", "disabled", "policy", "platform", "catalog"],
)
def test_a_kept_plan_is_not_used_when_anything_it_was_made_from_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]
) -> None:
    cache = tmp_path / "plan.msgpack"
    base: dict[str, Any] = {"api_version": "1.5.0", "disabled": (), "policy": None}
    plan_with_cache(_fingerprinted(_records()), cache, **base)
    calls = _planning_counted(monkeypatch)
    inputs = {**base, **{k: v for k, v in change.items() if k != "fingerprint"}}
    catalog = _fingerprinted(_records(), change.get("fingerprint", b"f1"))
    changed = plan_with_cache(catalog, cache, **inputs)
    assert calls == [1]
    monkeypatch.undo()
    assert changed == plan(catalog, **inputs)


def test_no_plan_is_kept_without_a_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "plan.msgpack"
    calls = _planning_counted(monkeypatch)
    plan_with_cache(_fingerprinted(_records(), None), cache)
    plan_with_cache(_fingerprinted(_records(), None), cache)
    assert calls == [1, 1]
    assert not cache.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other records"])
def test_a_damaged_or_foreign_plan_cache_is_planned_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    cache = tmp_path / "plan.msgpack"
    records = _records()
    plan_with_cache(_fingerprinted(records), cache)
    if damage == "garbage":
        cache.write_bytes(b"\x00not a plan")
    elif damage == "truncated":
        cache.write_bytes(cache.read_bytes()[:20])
    calls = _planning_counted(monkeypatch)
    # Same fingerprint, other records (as if the cache were wrong): the kept plan names
    # records that are not there, so it is planned again rather than believed.
    catalog = _fingerprinted(records[:1] if damage == "other records" else records)
    result = plan_with_cache(catalog, cache)
    assert calls == [1]
    monkeypatch.undo()
    assert result == plan(catalog)
