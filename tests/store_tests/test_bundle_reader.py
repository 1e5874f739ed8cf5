"""The quick reader of plain bundles reads exactly what tarfile reads, or leaves it to tarfile.

``plugbay.store.bundle`` parses a bundle that is a plain POSIX tar in one gzip member (what
``plugbay build`` writes) itself, and hands anything else to the tarfile module. These tests
make archives of every kind tarfile writes (ustar, PAX, GNU; long and non-ASCII names, folders,
links, empty files), damage some of them, and check that whenever the quick reader answers,
tarfile, reading the same bytes the way plugbay always did, gives the same entries.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from plugbay.errors import BundleError
from plugbay.store import bundle
from plugbay.store.bundle import Limits

CAP = 1 << 24
OTHER = "tarfile reads an entry that is neither a file nor a folder"
ERROR = "tarfile refuses it"

Entries = list[tuple[str, bytes | None]]


def tarfile_reading(data: bytes) -> Entries | str:
    """The entries as tarfile gives them in stream mode, reading the gzip stream to its end."""
    out: Entries = []
    try:
        with (
            gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as gz,
            tarfile.open(fileobj=gz, mode="r|") as tar,
        ):
            for member in tar:
                if member.isdir():
                    out.append((member.name, None))
                elif member.isreg() and not member.issparse():
                    f = tar.extractfile(member)
                    assert f is not None
                    blob = f.read(member.size + 1)
                    if len(blob) != member.size:
                        return ERROR
                    out.append((member.name, blob))
                else:
                    return OTHER
            while gz.read(1 << 16):
                pass
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        return ERROR
    return out


def archive(entries: list[tuple[str, str, bytes]], fmt: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = "../elsewhere"
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return raw.getvalue()


_name_part = st.text(alphabet="abcXYZ019_-.é漢 ", min_size=1, max_size=40)
_names = st.lists(_name_part, min_size=1, max_size=5).map("/".join)
_entry = st.tuples(
    st.sampled_from(["file", "file", "file", "dir", "link"]), _names, st.binary(max_size=1500)
)
_formats = st.sampled_from([tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])


@st.composite
def bundles(draw: st.DrawFn) -> bytes:
    """A .tar.gz of random entries, maybe damaged after it was made."""
    raw = bytearray(archive(draw(st.lists(_entry, max_size=8)), draw(_formats)))
    damage = draw(st.sampled_from(["none", "none", "flip", "cut", "trailing", "two members"]))
    if damage == "flip" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw[at] = draw(st.integers(0, 255))
    elif damage == "cut" and raw:
        del raw[draw(st.integers(0, len(raw) - 1)) :]
    data = gzip.compress(bytes(raw), mtime=0)
    if damage == "trailing":
        data += draw(st.binary(min_size=1, max_size=8))
    elif damage == "two members":
        data += gzip.compress(b"\0" * 1024, mtime=0)
    return data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=bundles())
@example(data=gzip.compress(archive([("file", "a" * 150, b"long name")], tarfile.PAX_FORMAT)))
@example(data=gzip.compress(archive([("file", "é/x", b"")], tarfile.PAX_FORMAT)))
@example(data=gzip.compress(archive([("dir", "d" * 120 + "/e", b"")], tarfile.USTAR_FORMAT)))
def test_the_quick_reader_agrees_with_tarfile(data: bytes) -> None:
    quick = bundle._plain_entries(data, CAP)
    if quick is not None:
        assert tarfile_reading(data) == quick


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT])
def test_plain_posix_archives_are_read_quickly(fmt: int) -> None:
    entries = [("dir", "help", b""), ("file", "help/x.md", b"# x\n"), ("file", "e", b"")]
    data = gzip.compress(archive(entries, fmt))
    assert bundle._plain_entries(data, CAP) == [("help", None), ("help/x.md", b"# x\n"), ("e", b"")]
    # A long non-ASCII name goes into a PAX header: read here too.
    long = [("file", "é" * 120, b"data")]
    assert bundle._plain_entries(gzip.compress(archive(long, tarfile.PAX_FORMAT)), CAP) == [
        ("é" * 120, b"data")
    ]


@pytest.mark.parametrize(
    "data",
    [
        gzip.compress(archive([("file", "x" * 120, b"")], tarfile.GNU_FORMAT)),  # GNU long name
        gzip.compress(archive([("link", "l", b"")], tarfile.PAX_FORMAT)),  # a link
        gzip.compress(archive([], tarfile.PAX_FORMAT)),  # empty
        gzip.compress(archive([("file", "f", b"x" * 700)], tarfile.PAX_FORMAT))[:-12],  # cut
        gzip.compress(archive([("file", "f", b"x")], tarfile.PAX_FORMAT)) + b"junk",
        gzip.compress(archive([("file", "f", b"x" * 600)], tarfile.PAX_FORMAT)[:1100]),
    ],
    ids=["gnu", "link", "empty", "truncated-gzip", "trailing-bytes", "cut-in-padding"],
)
def test_anything_else_is_left_to_tarfile(data: bytes) -> None:
    assert bundle._plain_entries(data, CAP) is None


def test_over_the_cap_is_left_to_tarfile_which_refuses_it() -> None:
    data = gzip.compress(archive([("file", "big", b"\0" * 100_000)], tarfile.PAX_FORMAT))
    limits = Limits(max_total_bytes=1000, max_files=2)
    assert bundle._plain_entries(data, 1000 + 4 * bundle._ENTRY_OVERHEAD) is None
    with pytest.raises(BundleError, match="unpacks to more than 1,000 bytes"):
        bundle._read_members(data, "big.tar.gz", limits)
