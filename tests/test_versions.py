"""SemVer 2.0 versions and the range syntax of DESIGN §2, checked against node-semver."""

from __future__ import annotations

import functools
import random

import nodesemver
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugbay.errors import PluginError, VersionError
from plugbay.versions import Range, Version, parse_range, parse_version

# The precedence example of semver.org §11, lowest first.
SEMVER_ORG_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
]


# ---------------------------------------------------------------- versions


def test_versions_follow_semver_org_precedence() -> None:
    versions = [parse_version(v) for v in SEMVER_ORG_ORDER]
    for i, low in enumerate(versions):
        for high in versions[i + 1 :]:
            assert low < high, (low, high)
            assert high > low
            assert low != high
    shuffled = versions[:]
    random.Random(7).shuffle(shuffled)
    assert [v.text for v in sorted(shuffled)] == SEMVER_ORG_ORDER


def test_numeric_parts_compare_as_numbers() -> None:
    assert parse_version("1.9.0") < parse_version("1.10.0")
    assert parse_version("2.0.0") > parse_version("1.99.99")
    assert parse_version("0.0.1") < parse_version("0.1.0")


def test_build_metadata_is_ignored_for_precedence() -> None:
    a, b, plain = Version("1.0.0+build.1"), Version("1.0.0+exp.sha.5114f85"), Version("1.0.0")
    assert a == b == plain
    assert hash(a) == hash(b) == hash(plain)
    assert not a < b
    assert not b < a
    assert len({a, b, plain}) == 1
    assert Version("1.0.0-rc.1+build") < Version("1.0.0")
    # The text keeps the build: it is what the author wrote.
    assert str(a) == "1.0.0+build.1"


def test_version_parts() -> None:
    v = parse_version("12.3.45-rc.1.beta+build.7")
    assert (v.major, v.minor, v.patch) == (12, 3, 45)
    assert v.prerelease == ("rc", 1, "beta")
    assert str(v) == "12.3.45-rc.1.beta+build.7"
    assert repr(v) == "Version('12.3.45-rc.1.beta+build.7')"
    assert parse_version("1.2.3").prerelease == ()


def test_parse_version_is_memoised() -> None:
    assert parse_version("3.1.4") is parse_version("3.1.4")


def test_version_does_not_compare_with_text() -> None:
    assert Version("1.0.0") != "1.0.0"
    with pytest.raises(TypeError):
        _ = Version("1.0.0") < "2.0.0"  # type: ignore[operator]


@pytest.mark.parametrize(
    "text",
    [
        "1.0",
        "01.2.3",
        "1.02.3",
        "1.2.3-",
        "1.2.3-alpha.01",
        "1.2.3+",
        "1.2.3.4",
        "abc",
        "",
        "v1.2.3",
        "=1.2.3",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3\n",
        "1.2.3-é",
    ],
)
def test_invalid_versions_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(VersionError) as info:
        parse_version(text)
    err = info.value
    assert isinstance(err, PluginError)
    assert err.text == text
    assert err.what == "version"
    message = str(err)
    assert repr(text) in message
    assert "is not a valid version" in message
    assert 'e.g. "1.2.0"' in message
    assert "MAJOR.MINOR.PATCH" in message


# ---------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("range_text", "inside", "outside"),
    [
        (
            ">=1.0.0,<2.0.0",
            ["1.0.0", "1.4.2", "1.99.99"],
            ["0.9.9", "2.0.0", "2.0.0-rc.1", "1.5.0-beta"],
        ),
        (">= 1.0.0 , < 2.0.0", ["1.0.0", "1.9.0"], ["2.0.0", "0.1.0"]),
        (">1.0.0,<=1.2.0", ["1.0.1", "1.2.0"], ["1.0.0", "1.2.1"]),
        ("^1.2", ["1.2.0", "1.3.0", "1.99.0"], ["1.1.9", "2.0.0", "0.2.0"]),
        ("^1.2.3", ["1.2.3", "1.9.9"], ["1.2.2", "2.0.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2", "1.0.0"]),
        ("~1.2.3", ["1.2.3", "1.2.99"], ["1.2.2", "1.3.0", "2.0.0"]),
        ("~1.2", ["1.2.0", "1.2.7"], ["1.3.0", "1.1.0"]),
        ("1.2.*", ["1.2.0", "1.2.42"], ["1.1.9", "1.3.0", "2.2.0"]),
        ("1.*", ["1.0.0", "1.7.3"], ["0.9.0", "2.0.0"]),
        ("1.2.3", ["1.2.3", "1.2.3+build"], ["1.2.4", "1.2.2"]),
        ("*", ["0.0.0", "0.0.1", "1.0.0", "99.5.3"], ["1.0.0-alpha"]),
        ("^1.0.0 || ^3.0.0", ["1.0.0", "1.5.2", "3.0.0", "3.9.0"], ["0.9.0", "2.0.0", "4.0.0"]),
        (">=1.0.0,<1.5.0 || >=2.0.0", ["1.0.0", "1.4.9", "2.0.0", "7.0.0"], ["1.5.0", "1.9.9"]),
        ("~1.2.3 || 2.*", ["1.2.5", "2.4.0"], ["1.3.0", "3.0.0"]),
        # A prerelease matches only a range that names a prerelease of the same x.y.z.
        (
            ">=1.2.3-beta.1,<1.3.0",
            ["1.2.3-beta.1", "1.2.3-beta.2", "1.2.3", "1.2.9"],
            ["1.2.4-alpha"],
        ),
    ],
)
def test_range_syntax_of_the_design(range_text: str, inside: list[str], outside: list[str]) -> None:
    r = parse_range(range_text)
    for v in inside:
        assert parse_version(v) in r, f"{v} should be in {range_text}"
    for v in outside:
        assert parse_version(v) not in r, f"{v} should not be in {range_text}"


def test_range_text_equality_and_hash() -> None:
    r = parse_range("^1.2")
    assert str(r) == "^1.2"
    assert repr(r) == "Range('^1.2')"
    assert r == Range("^1.2")
    assert hash(r) == hash(Range("^1.2"))
    assert r != Range("~1.2")
    assert parse_range("^1.2") is r


@pytest.mark.parametrize(
    "text",
    [
        ">=1.0 <<2",
        "foo",
        "",
        "   ",
        ",",
        ">=1,",
        ",>=1",
        ">=1.0.0,,<2.0.0",
        ">=1.0.0,<2.0.0 foo",
        "==1.2.3",
        "1.2.3-",
        ">=",
        "^",
        "latest",
        # An empty alternative would widen the range to every version.
        "^1 ||",
        "|| ^1",
        "^1 |||| ^2",
        "||",
        ">=1.0.0, || ^2",
    ],
)
def test_invalid_ranges_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(VersionError) as info:
        parse_range(text)
    err = info.value
    assert err.text == text
    assert err.what == "version range"
    message = str(err)
    assert repr(text) in message
    assert "is not a valid version range" in message
    assert '">=1.0.0,<2.0.0"' in message
    assert '"^1.2"' in message
    assert '"||"' in message


# ---------------------------------------------------------------- agreement with node-semver

_numbers = st.integers(min_value=0, max_value=12)
_alnum_ident = st.text(alphabet="abcxyzAZ-019", min_size=1, max_size=5).filter(
    lambda s: not s.isdigit()
)
_prerelease_ident = st.one_of(_numbers.map(str), _alnum_ident)
_build_ident = st.text(alphabet="abc019-", min_size=1, max_size=4)


@st.composite
def semver_text(draw: st.DrawFn) -> str:
    """A valid SemVer 2.0 version, with small numbers so that comparisons often tie."""
    text = f"{draw(_numbers)}.{draw(_numbers)}.{draw(_numbers)}"
    pre = draw(st.lists(_prerelease_ident, max_size=3))
    if pre:
        text += "-" + ".".join(pre)
    build = draw(st.lists(_build_ident, max_size=2))
    if build:
        text += "+" + ".".join(build)
    return text


@st.composite
def _partial(draw: st.DrawFn) -> str:
    major, minor, patch = draw(_numbers), draw(_numbers), draw(_numbers)
    return draw(
        st.sampled_from(
            [
                f"{major}",
                f"{major}.{minor}",
                f"{major}.{minor}.{patch}",
                f"{major}.{minor}.*",
                f"{major}.*",
                f"{major}.x",
                "*",
            ]
        )
    )


@st.composite
def _comparator(draw: st.DrawFn) -> str:
    op = draw(st.sampled_from(["", "=", ">", ">=", "<", "<=", "^", "~"]))
    target = draw(st.one_of(_partial(), semver_text().map(lambda v: v.split("+")[0])))
    return op + target


@st.composite
def range_text(draw: st.DrawFn) -> str:
    """A range in our syntax: comparators joined by commas, alternatives by ``||``."""
    alternatives = draw(
        st.lists(st.lists(_comparator(), min_size=1, max_size=3), min_size=1, max_size=3)
    )
    sep = draw(st.sampled_from([",", ", ", " , "]))
    return " || ".join(sep.join(comparators) for comparators in alternatives)


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


@given(semver_text(), semver_text())
def test_version_order_agrees_with_node_semver(a: str, b: str) -> None:
    va, vb = parse_version(a), parse_version(b)
    ours = (va > vb) - (va < vb)
    assert ours == _sign(nodesemver.compare(a, b, loose=False))
    assert (va == vb) == (ours == 0)
    if va == vb:
        assert hash(va) == hash(vb)


@given(st.lists(semver_text(), min_size=2, max_size=8))
def test_sorting_agrees_with_node_semver(texts: list[str]) -> None:
    ours = [v.text for v in sorted(parse_version(t) for t in texts)]
    theirs = sorted(texts, key=functools.cmp_to_key(lambda a, b: nodesemver.compare(a, b, False)))
    # Ties (same version, other build) may sort either way; compare precedence keys.
    assert [parse_version(t) for t in ours] == [parse_version(t) for t in theirs]


@given(semver_text(), range_text())
def test_range_membership_agrees_with_node_semver(version: str, text: str) -> None:
    npm_text = text.replace(",", " ")
    try:
        nodesemver.make_range(npm_text, loose=False)
    except ValueError:
        # node-semver refuses a few valid-looking ranges (e.g. "~1.2.3--x", a prerelease
        # starting with "-"); ours must refuse them too rather than guess.
        with pytest.raises(VersionError):
            parse_range(text)
        return
    expected = nodesemver.satisfies(version, npm_text, loose=False)
    assert (parse_version(version) in parse_range(text)) == expected


@given(semver_text())
def test_valid_versions_round_trip_their_text(text: str) -> None:
    v = parse_version(text)
    assert v.text == text
    assert str(v) == text
    assert v in parse_range(f">={text.split('+', maxsplit=1)[0]}")
