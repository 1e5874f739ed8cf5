"""Dependency resolution with resolvelib, for the store (what to install).

Works on any candidates that have ``id``, ``version``, ``manifest`` (for its
``dependencies``) and ``key``; the caller lists them per id in order of preference. No
I/O: all knowledge comes from the candidate lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

import msgspec

from .manifest import Manifest
from .versions import parse_version, satisfies

if TYPE_CHECKING:
    from resolvelib import AbstractProvider

__all__ = ["Conflict", "Provider", "Requirement", "Resolvable", "explain", "resolve"]


class Resolvable(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def manifest(self) -> Manifest: ...
    @property
    def key(self) -> str: ...


C = TypeVar("C", bound=Resolvable)


class Requirement(msgspec.Struct, frozen=True):
    """``id`` within ``range`` (None: any version), asked for by ``parent`` (None: a root)."""

    id: str
    range: str | None
    parent: Any = None
    #: For roots, the words before the requirement in messages ("you asked for": "you
    #: asked for acme.tools >=1.0.0"); dependencies are named by their parent instead.
    why: str = ""

    def satisfied_by(self, version: str) -> bool:
        if self.range is None or satisfies(version, self.range):
            return True
        # "=1.0.0-rc.1" asks for exactly that prerelease; ranges otherwise skip prereleases.
        return self.range.startswith("=") and self.range[1:] == version

    def __str__(self) -> str:
        return f"{self.id} {self.range}" if self.range is not None else self.id


class Conflict(msgspec.Struct, frozen=True, gc=False):
    """Why no consistent set exists: each failing requirement, in words."""

    lines: tuple[str, ...]
    parents: tuple[str, ...]  # ids whose requirements could not be met (roots: the id itself)

    def __str__(self) -> str:
        return "; ".join(self.lines)


class Provider(Generic[C]):
    """resolvelib's AbstractProvider interface, answered from the candidate lists.

    It does not subclass AbstractProvider so that resolvelib is imported only when a
    resolution actually runs.
    """

    def __init__(self, candidates: Mapping[str, Sequence[C]]) -> None:
        self._candidates = candidates

    def identify(self, requirement_or_candidate: Requirement | C) -> str:
        return requirement_or_candidate.id

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, C],
        candidates: Mapping[str, Iterator[C]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> tuple[int, str]:
        return (len(self._candidates.get(identifier, ())), identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Requirement]],
        incompatibilities: Mapping[str, Iterator[C]],
    ) -> list[C]:
        bad = {c.key for c in incompatibilities[identifier]}
        reqs = list(requirements[identifier])
        return [
            c
            for c in self._candidates.get(identifier, ())
            if c.key not in bad and all(r.satisfied_by(c.version) for r in reqs)
        ]

    def is_satisfied_by(self, requirement: Requirement, candidate: C) -> bool:
        return requirement.satisfied_by(candidate.version)

    def get_dependencies(self, candidate: C) -> list[Requirement]:
        return [
            Requirement(dep, rng, candidate)
            for dep, rng in sorted(candidate.manifest.dependencies.items())
        ]

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[str],
        resolutions: Mapping[str, C],
        candidates: Mapping[str, Iterator[C]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> Iterable[str]:
        # resolvelib >= 1.1 calls this; AbstractProvider's default keeps every identifier.
        return identifiers


def resolve(
    roots: Iterable[Requirement], candidates: Mapping[str, Sequence[C]]
) -> dict[str, C] | Conflict:
    """One version per id reachable from ``roots``, or the conflict that prevents it."""
    roots = list(roots)
    preferred = _all_preferred(roots, candidates)
    if preferred is not None:
        return preferred
    return _resolvelib(roots, candidates)


def _resolvelib(
    roots: Iterable[Requirement], candidates: Mapping[str, Sequence[C]]
) -> dict[str, C] | Conflict:
    from resolvelib import BaseReporter, Resolver
    from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

    provider = cast("AbstractProvider[Requirement, C, str]", Provider(candidates))
    resolver: Resolver[Requirement, C, str] = Resolver(provider, BaseReporter())
    try:
        result = resolver.resolve(list(roots), max_rounds=20_000)
    except ResolutionImpossible as exc:
        return explain([c.requirement for c in exc.causes], candidates)
    except ResolutionTooDeep:
        return Conflict(
            ("the dependencies could not be resolved in 20,000 rounds; pin versions",), ()
        )
    return dict(result.mapping)


def _all_preferred(
    roots: Iterable[Requirement], candidates: Mapping[str, Sequence[C]]
) -> dict[str, C] | None:
    """Each reachable id's first (most preferred) candidate, when those fit every
    requirement among them; else None.

    When it answers, resolvelib would answer the same (it pins, per id, the first candidate
    that fits what it knows, and these fit everything), without its bookkeeping: most
    installs ask for versions that simply fit together.
    """
    chosen: dict[str, C] = {}
    pending = list(roots)
    while pending:
        requirement = pending.pop()
        candidate = chosen.get(requirement.id)
        if candidate is None:
            found = candidates.get(requirement.id, ())
            if not found:
                return None
            candidate = chosen[requirement.id] = found[0]
            pending.extend(
                Requirement(dep, rng, candidate)
                for dep, rng in candidate.manifest.dependencies.items()
            )
        if not requirement.satisfied_by(candidate.version):
            return None
    return chosen


def explain(
    reqs: Sequence[Requirement], candidates: Mapping[str, Sequence[Resolvable]]
) -> Conflict:
    """Say, per id, who asks for which versions of it and which versions there are.

    ``acme.left 1.0.0 needs acme.shared <2.0.0; acme.right 1.0.0 needs acme.shared
    >=2.0.0 (available: 1.0.0, 2.0.0)``: every constraint named with where it comes from.
    """
    by_dep: dict[str, list[Requirement]] = {}
    for r in reqs:
        by_dep.setdefault(r.id, []).append(r)
    lines: list[str] = []
    parents: list[str] = []
    for dep, group in sorted(by_dep.items()):
        versions = sorted({parse_version(c.version) for c in candidates.get(dep, ())})
        # "Any version" constrains nothing: it is never the reason when others are named.
        named = [r for r in group if r.range is not None and r.range.strip() != "*"] or group
        unique = sorted({_demand(r): r for r in named}.items())
        needs = "; ".join(text for text, _ in unique)
        if len(unique) > 1:
            have = ", ".join(v.text for v in versions) or "none"
            lines.append(f"{needs} (available: {have})")
        elif not versions:
            lines.append(f"{needs}, but no version of {dep} is installed or available")
        else:
            only = ", ".join(v.text for v in versions)
            verb = "is" if len(versions) == 1 else "are"
            lines.append(f"{needs}, but only {dep} {only} {verb} installed or available")
        for _, r in unique:
            parents.append(r.parent.id if r.parent is not None else r.id)
    return Conflict(tuple(lines), tuple(dict.fromkeys(parents)))


def _demand(r: Requirement) -> str:
    """``acme.left 1.0.0 needs acme.shared <2.0.0`` or, for a root, ``{why} acme.shared``."""
    if r.range is None or r.range.strip() == "*":
        wanted = r.id if r.parent is None else f"{r.id} (any version)"
    else:
        # "=1.2.0" is how an exact version is asked for; people write it "1.2.0".
        shown = r.range[1:] if r.range.startswith("=") and r.range[1:2].isdigit() else r.range
        wanted = f"{r.id} {shown}"
    if r.parent is None:
        return f"{r.why or 'the request for'} {wanted}"
    return f"{r.parent.id} {r.parent.version} needs {wanted}"
