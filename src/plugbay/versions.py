"""SemVer 2.0 versions and ranges, parsed by the node-semver library.

Range syntax (DESIGN §2): comparators joined by commas or spaces (``>=1.0.0,<2.0.0``),
caret (``^1.2``), tilde (``~1.2.3``), wildcards (``1.2.*``, ``1.x``, ``*``) and
alternatives with ``||``. Prerelease versions sort as semver.org defines and, as in npm,
only match a range that names a prerelease of the same MAJOR.MINOR.PATCH.
"""

from __future__ import annotations

from functools import cache, total_ordering
from typing import Any

from .errors import VersionError

__all__ = ["Range", "Version", "parse_range", "parse_version", "satisfies"]


@cache
def _nodesemver() -> Any:
    """The library, imported on the first version parsed: it compiles some 47 regular
    expressions on import (about 11 ms), which a warm start with a cached plan never needs."""
    import nodesemver

    return nodesemver


@total_ordering
class Version:
    """A parsed SemVer 2.0 version; ordered by semver.org precedence (build ignored)."""

    __slots__ = ("_semver", "text")

    def __init__(self, text: str) -> None:
        try:
            self._semver: Any = _nodesemver().make_semver(text, loose=False)
        except (ValueError, TypeError) as exc:
            raise VersionError(str(text), "version") from exc
        # node-semver also takes "v1.2.3" and surrounding white space, which SemVer 2.0
        # does not: a version must read back exactly as the library prints it.
        if text != _canonical(self._semver):
            raise VersionError(text, "version")
        self.text = text

    @property
    def major(self) -> int:
        return int(self._semver.major)

    @property
    def minor(self) -> int:
        return int(self._semver.minor)

    @property
    def patch(self) -> int:
        return int(self._semver.patch)

    @property
    def prerelease(self) -> tuple[str | int, ...]:
        return tuple(self._semver.prerelease)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return bool(self._semver.compare(other._semver) == 0)

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return bool(self._semver.compare(other._semver) < 0)

    def __hash__(self) -> int:
        return hash((self.major, self.minor, self.patch, self.prerelease))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


class Range:
    """A parsed version range; ``version in range`` tests membership."""

    __slots__ = ("_range", "text")

    def __init__(self, text: str) -> None:
        normalised = _to_npm_syntax(text)
        try:
            self._range: Any = _nodesemver().make_range(normalised, loose=False)
        except (ValueError, TypeError) as exc:
            raise VersionError(text, "version range") from exc
        self.text = text

    def __contains__(self, version: Version) -> bool:
        return bool(self._range.test(version._semver))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Range) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Range({self.text!r})"


def _canonical(semver: Any) -> str:
    build = "+" + ".".join(semver.build) if semver.build else ""
    return f"{semver.version}{build}"


def _to_npm_syntax(text: str) -> str:
    """Our range text in node-semver's syntax: comparators joined by spaces, not commas.

    An empty alternative or comparator ("^1 ||", ">=1,") is refused here: node-semver
    would read it as "any version", silently widening the range.
    """
    alternatives = []
    for alternative in text.split("||"):
        comparators = [c.strip() for c in alternative.split(",")]
        if not all(comparators):
            raise VersionError(text, "version range")
        alternatives.append(" ".join(comparators))
    return " || ".join(alternatives)


@cache
def parse_version(text: str) -> Version:
    """Parse (and memoise) a version; raises VersionError with a hint on bad syntax."""
    return Version(text)


@cache
def parse_range(text: str) -> Range:
    """Parse (and memoise) a range; raises VersionError with a hint on bad syntax."""
    return Range(text)


@cache
def satisfies(version: str, rng: str) -> bool:
    """Whether ``version`` is in range ``rng`` (memoised: a few ranges recur everywhere)."""
    return parse_version(version) in parse_range(rng)
