"""The store's resolution: its shortcut (every id's preferred candidate) answers exactly
what resolvelib answers, whenever it answers at all."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from plugbay.manifest import Manifest, manifest_from_mapping
from plugbay.resolution import Requirement, _all_preferred, _resolvelib, resolve

IDS = ["acme.a", "acme.b", "acme.c", "acme.d"]
VERSIONS = ["1.0.0", "1.5.0", "2.0.0"]
RANGES = ["*", ">=1.5.0", "<2.0.0", "^1.0.0", "2.0.0", ">=1.0.0,<1.5.0"]


@dataclass(frozen=True)
class Cand:
    id: str
    version: str
    manifest: Manifest

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"


def cand(plugin_id: str, version: str, deps: dict[str, str]) -> Cand:
    namespace, _, name = plugin_id.partition(".")
    raw = {
        "schema": 1,
        "plugin": {"namespace": namespace, "name": name, "version": version},
        "dependencies": deps,
    }
    return Cand(plugin_id, version, manifest_from_mapping(raw, "<test>"))


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Requirement], dict[str, list[Cand]]]:
    candidates: dict[str, list[Cand]] = {}
    for plugin_id in IDS:
        versions = draw(st.lists(st.sampled_from(VERSIONS), unique=True, max_size=3))
        others = [i for i in IDS if i != plugin_id]
        candidates[plugin_id] = [
            cand(
                plugin_id,
                v,
                draw(st.dictionaries(st.sampled_from(others), st.sampled_from(RANGES), max_size=2)),
            )
            for v in versions
        ]
    roots = [
        Requirement(i, draw(st.sampled_from([None, *RANGES])))
        for i in draw(st.lists(st.sampled_from(IDS), unique=True, min_size=1, max_size=3))
    ]
    return roots, candidates


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_the_shortcut_agrees_with_resolvelib(
    world: tuple[list[Requirement], dict[str, list[Cand]]],
) -> None:
    roots, candidates = world

    shortcut = _all_preferred(roots, candidates)

    if shortcut is not None:
        assert shortcut == _resolvelib(roots, candidates)
        assert resolve(roots, candidates) == shortcut


def test_the_shortcut_gives_way_when_a_preferred_version_does_not_fit() -> None:
    candidates = {
        "acme.a": [cand("acme.a", "1.0.0", {"acme.b": ">=2.0.0"})],
        "acme.b": [cand("acme.b", "1.0.0", {}), cand("acme.b", "2.0.0", {})],
    }
    roots = [Requirement("acme.a", None)]

    assert _all_preferred(roots, candidates) is None
    result = resolve(roots, candidates)
    assert isinstance(result, dict)
    assert {k: c.version for k, c in result.items()} == {"acme.a": "1.0.0", "acme.b": "2.0.0"}
