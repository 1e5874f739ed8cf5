"""Bundles: reproducible building (through the real CLI), and reading that refuses hostile
bundles before a byte is written."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from conftest import write_plugin
from plugbay.errors import BundleError
from plugbay.manifest import parse_manifest
from plugbay.store import Limits, Store, build_bundle, read_bundle

# ---------------------------------------------------------------- helpers


def plugbay(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "plugbay", "--home", str(home), *args],
        capture_output=True,
        text=True,
        cwd=cwd or home,
        check=False,
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_plugin(root: Path, plugin_id: str = "acme.tool", version: str = "1.0.0") -> Path:
    """A plugin folder with code, help, an executable script and a nested package."""
    folder = write_plugin(
        root,
        plugin_id,
        version,
        code={
            "tool/__init__.py": "from .core import run\n",
            "tool/core.py": "def run():\n    return 42\n",
            "help/tool.md": "# tool\n\nRuns the tool.\n",
            "README.md": "The tool.\n",
            "bin/tool.sh": "#!/bin/sh\necho tool\n",
        },
    )
    (folder / "bin" / "tool.sh").chmod(0o755)
    return folder


def members(bundle: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(bundle, "r:gz") as tar:
        return tar.getmembers()


def read_member(bundle: Path, name: str) -> bytes:
    with tarfile.open(bundle, "r:gz") as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (``.lock`` aside) with its bytes, by relative path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# ---------------------------------------------------------------- building


def test_build_writes_the_named_bundle_with_metadata_and_every_file(
    tmp_path: Path, home: Path
) -> None:
    folder = make_plugin(tmp_path / "src")
    out = tmp_path / "out"

    result = plugbay(home, "build", str(folder), "-o", str(out))

    assert result.returncode == 0, result.stderr
    bundle = out / "acme-tool-1.0.0.tar.gz"
    assert result.stdout.strip() == str(bundle)
    assert sorted(p.name for p in out.iterdir()) == ["acme-tool-1.0.0.tar.gz"]
    files = {m.name for m in members(bundle) if m.isfile()}
    assert files == {
        "MANIFEST.json",
        "FILES.json",
        "plugin.toml",
        "README.md",
        "bin/tool.sh",
        "help/tool.md",
        "tool/__init__.py",
        "tool/core.py",
    }

    files_json = read_member(bundle, "FILES.json")
    listing = json.loads(files_json)
    assert listing["format"] == 1
    by_path = {e["path"]: e for e in listing["files"]}
    assert set(by_path) == files - {"MANIFEST.json", "FILES.json"}
    for rel, entry in by_path.items():
        data = (folder / rel).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == sha256(data)
        assert read_member(bundle, rel) == data
    assert by_path["bin/tool.sh"]["mode"] == 0o755
    assert by_path["tool/core.py"]["mode"] == 0o644

    manifest = json.loads(read_member(bundle, "MANIFEST.json"))
    assert manifest["id"] == "acme.tool"
    assert manifest["version"] == "1.0.0"
    assert manifest["manifest_file"] == "plugin.toml"
    assert manifest["files_sha256"] == sha256(files_json)
    assert manifest["manifest"]["plugin"]["name"] == "tool"
    assert manifest["manifest"]["plugin"]["namespace"] == "acme"


def test_build_without_out_writes_into_the_current_folder(tmp_path: Path, home: Path) -> None:
    folder = make_plugin(tmp_path / "src")
    work = tmp_path / "work"
    work.mkdir()

    result = plugbay(home, "build", str(folder), cwd=work)

    assert result.returncode == 0, result.stderr
    assert [p.name for p in work.iterdir()] == ["acme-tool-1.0.0.tar.gz"]


def test_build_inside_the_plugin_folder_leaves_earlier_bundles_out(
    tmp_path: Path, home: Path
) -> None:
    folder = make_plugin(tmp_path / "src")

    first = plugbay(home, "build", ".", cwd=folder)
    second = plugbay(home, "build", ".", cwd=folder)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    inside = folder / "acme-tool-1.0.0.tar.gz"
    names = {m.name for m in members(inside)}
    assert not any(n.endswith((".tar.gz", ".tmp")) for n in names)
    inside.rename(tmp_path / "inside.tar.gz")
    assert (tmp_path / "inside.tar.gz").read_bytes() == build_bundle(folder, tmp_path).read_bytes()


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            'schema = 1\n[plugin]\nnamespace = "acme"\nname = "bad"\nversion = "1.0"\n',
            "plugin.version: '1.0' is not a valid version",
        ),
        (
            'schema = 1\n[plugin]\nnamespace = "acme"\nname = "bad"\nversion = "1.0.0"\n'
            "colour = 1\n",
            "plugin.colour: unknown key 'colour'",
        ),
        ("schema = 1\n[plugin\n", "plugin.toml"),
    ],
    ids=["bad-version", "unknown-key", "bad-toml"],
)
def test_build_refuses_an_invalid_manifest(
    tmp_path: Path, home: Path, manifest: str, message: str
) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "plugin.toml").write_text(manifest)
    out = tmp_path / "out"

    result = plugbay(home, "build", str(folder), "-o", str(out))

    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not out.exists() or not any(out.iterdir())


def test_build_refuses_a_folder_without_a_manifest(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "code.py").write_text("x = 1\n")

    result = plugbay(home, "build", str(folder), "-o", str(tmp_path / "out"))

    assert result.returncode == 1
    assert "has no manifest (plugin.toml" in result.stderr


def test_build_leaves_out_vcs_caches_venvs_and_the_manifests_exclude_globs(
    tmp_path: Path, home: Path
) -> None:
    folder = make_plugin(tmp_path / "src")
    manifest = folder / "plugin.toml"
    # Top-level keys come before the first table.
    manifest.write_text('exclude = ["tests", "*.log", "notes/draft-*"]\n' + manifest.read_text())
    unwanted = [
        ".git/config",
        ".git/objects/ab/cdef",
        "tool/__pycache__/core.cpython-311.pyc",
        "stray.pyc",
        ".venv/lib/python3.11/site-packages/x.py",
        "tests/test_tool.py",
        "debug.log",
        "tool/deep/trace.log",
        "notes/draft-1.md",
    ]
    for rel in unwanted:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text("left out\n")
    (folder / "notes" / "final.md").write_text("kept\n")

    result = plugbay(home, "build", str(folder), "-o", str(tmp_path / "out"))

    assert result.returncode == 0, result.stderr
    bundle = tmp_path / "out" / "acme-tool-1.0.0.tar.gz"
    names = {m.name for m in members(bundle) if m.isfile()}
    assert "notes/final.md" in names
    assert "tool/core.py" in names
    for rel in unwanted:
        assert rel not in names
    assert not any(n.startswith((".git", ".venv", "tests")) or "__pycache__" in n for n in names)
    listed = {e["path"] for e in json.loads(read_member(bundle, "FILES.json"))["files"]}
    assert listed == names - {"MANIFEST.json", "FILES.json"}


def test_an_exclude_glob_never_leaves_out_the_manifest(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "src")
    manifest = folder / "plugin.toml"
    manifest.write_text('exclude = ["*.toml", "*.md"]\n' + manifest.read_text())

    bundle = build_bundle(folder, tmp_path / "out")

    names = {m.name for m in members(bundle) if m.isfile()}
    assert "plugin.toml" in names
    assert "README.md" not in names
    assert read_bundle(bundle).manifest.id == "acme.tool"


def test_the_same_source_gives_the_same_bytes(tmp_path: Path, home: Path) -> None:
    folder = make_plugin(tmp_path / "src")

    first = plugbay(home, "build", str(folder), "-o", str(tmp_path / "a"))
    second = plugbay(home, "build", str(folder), "-o", str(tmp_path / "b"))

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    a = (tmp_path / "a" / "acme-tool-1.0.0.tar.gz").read_bytes()
    b = (tmp_path / "b" / "acme-tool-1.0.0.tar.gz").read_bytes()
    assert a == b


def test_a_copy_with_other_mtimes_and_permission_bits_gives_the_same_bytes(
    tmp_path: Path, home: Path
) -> None:
    folder = make_plugin(tmp_path / "src")
    copy = tmp_path / "elsewhere" / "a-copy"
    shutil.copytree(folder, copy)
    for n, path in enumerate(sorted(copy.rglob("*"))):
        os.utime(path, (1_000_000 + n * 7919, 2_000_000_000 - n * 104_729))
        if path.is_file():
            # Other read/write bits; the execute bit kept where it was.
            path.chmod(0o700 if os.access(path, os.X_OK) else 0o600 + (n % 2) * 0o060)
    (copy / "tool").chmod(0o700)

    original = plugbay(home, "build", str(folder), "-o", str(tmp_path / "a"))
    copied = plugbay(home, "build", str(copy), "-o", str(tmp_path / "b"))

    assert original.returncode == 0, original.stderr
    assert copied.returncode == 0, copied.stderr
    a = (tmp_path / "a" / "acme-tool-1.0.0.tar.gz").read_bytes()
    b = (tmp_path / "b" / "acme-tool-1.0.0.tar.gz").read_bytes()
    assert a == b


def test_entries_are_sorted_with_fixed_times_owners_and_modes(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "src")
    (folder / "zz.py").write_text("z = 1\n")
    (folder / "aa" / "b").mkdir(parents=True)
    (folder / "aa" / "b" / "c.py").write_text("c = 1\n")
    (folder / "tool" / "core.py").chmod(0o600)
    (folder / "help").chmod(0o700)

    bundle = build_bundle(folder, tmp_path / "out")

    infos = members(bundle)
    # As stored: tarfile strips the "/" that ends a folder's name when it reads one.
    names = [m.name + "/" if m.isdir() else m.name for m in infos]
    assert names[:2] == ["MANIFEST.json", "FILES.json"]
    assert names[2:] == sorted(names[2:])
    assert {"aa/", "aa/b/", "tool/", "help/", "bin/"} <= set(names)
    for m in infos:
        assert m.mtime == 0, m.name
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", ""), m.name
        if m.isdir():
            assert m.mode == 0o755, m.name
        else:
            assert m.isfile(), m.name
            assert m.mode == (0o755 if m.name == "bin/tool.sh" else 0o644), m.name
    listed = [e["path"] for e in json.loads(read_member(bundle, "FILES.json"))["files"]]
    assert listed == sorted(listed)

    raw = bundle.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] == 0, "no file name (or other optional field) in the gzip header"
    assert raw[4:8] == b"\0\0\0\0", "gzip header mtime is 0"


def test_a_built_bundle_reads_back_and_extracts_to_the_same_files(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "src")
    bundle = build_bundle(folder, tmp_path / "out")

    read = read_bundle(bundle)
    dest = tmp_path / "dest"
    read.extract_to(dest)

    assert (read.id, read.version) == ("acme.tool", "1.0.0")
    assert read.sha256 == sha256(bundle.read_bytes())
    assert read.manifest_sha256 == sha256(read_member(bundle, "MANIFEST.json"))
    extracted = tree(dest)
    assert extracted.pop("MANIFEST.json") == read_member(bundle, "MANIFEST.json")
    assert extracted.pop("FILES.json") == read_member(bundle, "FILES.json")
    assert extracted == tree(folder)
    assert (dest / "bin" / "tool.sh").stat().st_mode & 0o777 == 0o755
    assert (dest / "tool" / "core.py").stat().st_mode & 0o777 == 0o644


def test_a_symlink_leading_outside_the_folder_is_refused(tmp_path: Path, home: Path) -> None:
    folder = make_plugin(tmp_path / "src")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not ship\n")
    (folder / "tool" / "secret.txt").symlink_to(secret)
    out = tmp_path / "out"

    result = plugbay(home, "build", str(folder), "-o", str(out))

    assert result.returncode == 1
    assert f"error: {folder}: 'tool/secret.txt' is a symbolic link leading outside the plugin" in (
        result.stderr
    )
    assert "exclude" in result.stderr  # says how to fix it
    assert not out.exists() or not any(out.iterdir())


def test_a_symlinked_folder_leading_outside_is_refused(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "src")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.py").write_text("KEY = 'x'\n")
    (folder / "vendor").symlink_to(outside, target_is_directory=True)

    with pytest.raises(BundleError, match="'vendor' is a symbolic link leading outside"):
        build_bundle(folder, tmp_path / "out")

    assert not (tmp_path / "out").exists()


def test_a_broken_symlink_is_refused(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "src")
    (folder / "gone.py").symlink_to(folder / "never-there.py")

    with pytest.raises(BundleError, match=r"'gone\.py' is a broken symbolic link"):
        build_bundle(folder, tmp_path / "out")


def test_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "src")
    (folder / "tool" / "again").symlink_to(folder, target_is_directory=True)

    with pytest.raises(
        BundleError, match="'tool/again' is a symbolic link back into a folder that holds it"
    ):
        build_bundle(folder, tmp_path / "out")


def test_symlinks_inside_the_folder_are_bundled_as_regular_files(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "src")
    (folder / "LICENSE").symlink_to("README.md")
    (folder / "alias").symlink_to("tool", target_is_directory=True)

    bundle = build_bundle(folder, tmp_path / "out")

    infos = {m.name: m for m in members(bundle)}
    assert infos["LICENSE"].isfile()
    assert read_member(bundle, "LICENSE") == (folder / "README.md").read_bytes()
    assert read_member(bundle, "alias/core.py") == (folder / "tool" / "core.py").read_bytes()
    assert not any(m.issym() or m.islnk() for m in infos.values())
    read_bundle(bundle)  # and it reads back


def test_names_differing_only_in_case_are_refused_at_build(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "src")
    (folder / "readme.md").write_text("lower\n")

    with pytest.raises(BundleError, match="differ only in case") as info:
        build_bundle(folder, tmp_path / "out")

    assert "README.md" in str(info.value)
    assert "readme.md" in str(info.value)


def test_a_file_and_a_folder_differing_only_in_case_are_refused_at_build(
    tmp_path: Path,
) -> None:
    folder = make_plugin(tmp_path / "src")
    (folder / "Tool").write_text("a file\n")

    with pytest.raises(BundleError, match="the file 'Tool' and the folder 'tool'"):
        build_bundle(folder, tmp_path / "out")


# ---------------------------------------------------------------- hostile bundles

PLUGIN_TOML = b'schema = 1\n[plugin]\nnamespace = "acme"\nname = "tool"\nversion = "1.0.0"\n'
CODE = b"def run():\n    return 42\n"


def plain_files() -> dict[str, bytes]:
    return {"plugin.toml": PLUGIN_TOML, "tool/__init__.py": CODE, "README.md": b"Tool.\n"}


def files_json(files: Mapping[str, bytes]) -> bytes:
    """FILES.json for ``files``, as bundle.py computes it."""
    listing = [
        {"path": p, "size": len(d), "mode": 0o644, "sha256": sha256(d)}
        for p, d in sorted(files.items())
    ]
    return json.dumps({"format": 1, "files": listing}).encode()


def manifest_json(
    files_json_bytes: bytes,
    manifest_text: bytes = PLUGIN_TOML,
    **override: object,
) -> bytes:
    """MANIFEST.json pinning ``files_json_bytes``, as bundle.py computes it."""
    manifest = parse_manifest(manifest_text, "plugin.toml")
    doc: dict[str, object] = {
        "format": 1,
        "id": manifest.id,
        "version": manifest.version,
        "manifest": msgspec.to_builtins(manifest),
        "manifest_file": "plugin.toml",
        "files_sha256": sha256(files_json_bytes),
        "build": {"tool": "tests", "format": 1},
    }
    doc.update(override)
    return json.dumps(doc).encode()


@dataclass(frozen=True)
class Member:
    """One tar entry to write as is: a name, bytes, and a type (regular file by default)."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""


def regular(files: Mapping[str, bytes]) -> list[Member]:
    return [Member(name, data) for name, data in files.items()]


def with_metadata(
    files: Mapping[str, bytes], listed: Mapping[str, bytes] | None = None
) -> list[Member]:
    """MANIFEST.json and FILES.json for ``listed`` (default: ``files``), then ``files``."""
    fj = files_json(files if listed is None else listed)
    return [Member("MANIFEST.json", manifest_json(fj)), Member("FILES.json", fj), *regular(files)]


def tar_bytes(entries: Sequence[Member]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.type
            info.linkname = e.linkname
            info.mode = 0o755 if e.type == tarfile.DIRTYPE else 0o644
            if e.type == tarfile.REGTYPE:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return raw.getvalue()


def write_tgz(path: Path, entries: Sequence[Member]) -> Path:
    path.write_bytes(gzip.compress(tar_bytes(entries), mtime=0))
    return path


def bomb(path: Path) -> Path:
    """A valid-looking bundle whose one data file is 50 MB of zeros (a few dozen KB packed)."""
    files = plain_files()
    zeros = 50 * 1024 * 1024
    fj = json.dumps(
        {
            "format": 1,
            "files": [
                *json.loads(files_json(files))["files"],
                {"path": "data.bin", "size": zeros, "mode": 0o644, "sha256": "0" * 64},
            ],
        }
    ).encode()
    with (
        gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        entries = [Member("MANIFEST.json", manifest_json(fj)), Member("FILES.json", fj)]
        for e in [*entries, *regular(files)]:
            info = tarfile.TarInfo(e.name)
            info.size = len(e.data)
            tar.addfile(info, io.BytesIO(e.data))
        info = tarfile.TarInfo("data.bin")
        info.size = zeros
        tar.addfile(info, io.BytesIO(bytes(zeros)))
    assert path.stat().st_size < 200_000
    return path


def pax_bomb(path: Path) -> Path:
    """A bundle whose first entry carries a 20 MB PAX header: tar metadata, not file data."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("README.md")
        info.pax_headers = {"comment": "x" * (20 * 1024 * 1024)}
        tar.addfile(info, io.BytesIO(b""))
    path.write_bytes(gzip.compress(raw.getvalue(), compresslevel=9, mtime=0))
    return path


def good_bundle(path: Path) -> Path:
    return write_tgz(path, with_metadata(plain_files()))


def truncated(keep: Callable[[int], int]) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        data = good_bundle(path).read_bytes()
        path.write_bytes(data[: keep(len(data))])
        return path

    return make


def truncated_tar(path: Path) -> Path:
    """A complete gzip stream of a tar cut off in the middle of its last file's data."""
    data = tar_bytes(with_metadata(plain_files()))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        last = tar.getmembers()[-1]
    path.write_bytes(gzip.compress(data[: last.offset_data + last.size // 2], mtime=0))
    return path


def tampered_files_json(path: Path) -> Path:
    files = plain_files()
    fj = files_json(files)
    altered = fj.replace(b'"format": 1', b'"format":  1')
    assert altered != fj
    entries = [Member("MANIFEST.json", manifest_json(fj)), Member("FILES.json", altered)]
    return write_tgz(path, [*entries, *regular(files)])


def manifest_json_says(path: Path, **override: object) -> Path:
    files = plain_files()
    fj = files_json(files)
    entries = [Member("MANIFEST.json", manifest_json(fj, **override)), Member("FILES.json", fj)]
    return write_tgz(path, [*entries, *regular(files)])


def manifest_content_differs(path: Path) -> Path:
    """MANIFEST.json holds another manifest than plugin.toml (same id and version)."""
    files = plain_files()
    fj = files_json(files)
    other = PLUGIN_TOML + b'description = "not what plugin.toml says"\n'
    entries = [Member("MANIFEST.json", manifest_json(fj, other)), Member("FILES.json", fj)]
    return write_tgz(path, [*entries, *regular(files)])


def plus(*extra: Member, listed: bool = False) -> Callable[[Path], Path]:
    """The plain bundle with ``extra`` entries after its files (listed in FILES.json or not)."""

    def make(path: Path) -> Path:
        files = plain_files()
        listing = {**files, **{e.name: e.data for e in extra}} if listed else files
        return write_tgz(path, [*with_metadata(files, listing), *extra])

    return make


def listed_as(rel: str, claimed: bytes) -> Callable[[Path], Path]:
    """FILES.json describes ``rel`` as ``claimed``; the bundle holds the real bytes."""

    def make(path: Path) -> Path:
        files = plain_files()
        return write_tgz(path, with_metadata(files, {**files, rel: claimed}))

    return make


@dataclass(frozen=True)
class Hostile:
    make: Callable[[Path], Path]
    message: str
    limits: Limits = field(default_factory=Limits)


HOSTILE = {
    "absolute-path": Hostile(plus(Member("/tmp/evil.py", b"x")), "has an absolute path"),
    "dot-dot": Hostile(plus(Member("tool/../../evil.py", b"x")), "leaves the bundle (..)"),
    "dot-dot-first": Hostile(
        lambda p: write_tgz(p, [Member("../evil.py", b"x"), *with_metadata(plain_files())]),
        "'../evil.py' leaves the bundle (..)",
    ),
    "symlink-inside": Hostile(
        plus(Member("tool/link.py", type=tarfile.SYMTYPE, linkname="__init__.py")),
        "entry 'tool/link.py' is a symbolic link (to '__init__.py')",
    ),
    "symlink-outside": Hostile(
        plus(Member("etc", type=tarfile.SYMTYPE, linkname="/etc")),
        "entry 'etc' is a symbolic link (to '/etc')",
    ),
    "hardlink-inside": Hostile(
        plus(Member("copy.toml", type=tarfile.LNKTYPE, linkname="plugin.toml")),
        "entry 'copy.toml' is a hard link (to 'plugin.toml')",
    ),
    "char-device": Hostile(
        plus(Member("null", type=tarfile.CHRTYPE)), "entry 'null' is a device or fifo"
    ),
    "block-device": Hostile(
        plus(Member("disk", type=tarfile.BLKTYPE)), "entry 'disk' is a device or fifo"
    ),
    "fifo": Hostile(
        plus(Member("pipe", type=tarfile.FIFOTYPE)), "entry 'pipe' is a device or fifo"
    ),
    "duplicate": Hostile(
        plus(Member("tool/__init__.py", b"import os\n")),
        "has entry 'tool/__init__.py' twice",
    ),
    "duplicate-spelled-differently": Hostile(
        plus(Member("./tool//__init__.py", b"import os\n")),
        "has entry 'tool/__init__.py' twice",
    ),
    "case-collision": Hostile(
        plus(Member("readme.md", b"other\n"), listed=True),
        "has entries 'README.md' and 'readme.md', which differ only in case",
    ),
    "case-collision-folders": Hostile(
        plus(Member("TOOL/__init__.py", b"other\n"), listed=True),
        "has entries 'tool/__init__.py' and 'TOOL/__init__.py', which differ only in case",
    ),
    "file-and-folder": Hostile(
        plus(Member("README.md/x.py", b"x\n"), listed=True),
        "has 'README.md' both as a file and as a folder",
    ),
    "not-listed": Hostile(
        plus(Member("tool/backdoor.py", b"import os\n")),
        "holds 'tool/backdoor.py', which FILES.json does not list",
    ),
    "listed-not-held": Hostile(
        listed_as("tool/missing.py", b"x\n"),
        "FILES.json lists 'tool/missing.py', which the bundle does not hold",
    ),
    "content-differs": Hostile(
        listed_as("tool/__init__.py", CODE.replace(b"42", b"43")),
        "'tool/__init__.py' does not match its size or sha256 in FILES.json",
    ),
    "size-differs": Hostile(
        listed_as("tool/__init__.py", CODE + b"\n"),
        "'tool/__init__.py' does not match its size or sha256 in FILES.json",
    ),
    "files-json-altered": Hostile(
        tampered_files_json, "FILES.json does not match the hash in MANIFEST.json"
    ),
    "manifest-json-other-version": Hostile(
        lambda p: manifest_json_says(p, version="9.9.9"),
        "MANIFEST.json says acme.tool 9.9.9 but its manifest says acme.tool 1.0.0",
    ),
    "manifest-json-other-id": Hostile(
        lambda p: manifest_json_says(p, id="evil.tool"),
        "MANIFEST.json says evil.tool 1.0.0 but its manifest says acme.tool 1.0.0",
    ),
    "manifest-file-not-held": Hostile(
        lambda p: manifest_json_says(p, manifest_file="plugin.yaml"),
        "names 'plugin.yaml' as its manifest, which it does not hold",
    ),
    "no-metadata": Hostile(
        lambda p: write_tgz(p, regular(plain_files())),
        "is not a plugbay bundle: MANIFEST.json or FILES.json is missing",
    ),
    "truncated-gzip-trailer": Hostile(
        truncated(lambda n: n - 4), "is not a valid .tar.gz (truncated or corrupt)"
    ),
    "truncated-gzip-half": Hostile(
        truncated(lambda n: n // 2), "is not a valid .tar.gz (truncated or corrupt)"
    ),
    "truncated-tar": Hostile(truncated_tar, "is not a valid .tar.gz (truncated or corrupt)"),
    "garbage": Hostile(
        lambda p: (p.write_bytes(b"this is not a bundle\n" * 50), p)[1],
        "is not a valid .tar.gz (truncated or corrupt)",
    ),
    "gzip-of-garbage": Hostile(
        lambda p: (p.write_bytes(gzip.compress(bytes(range(256)) * 40, mtime=0)), p)[1],
        "is not a valid .tar.gz (truncated or corrupt)",
    ),
    "empty-file": Hostile(
        lambda p: (p.write_bytes(b""), p)[1], "is not a valid .tar.gz (truncated or corrupt)"
    ),
    "too-many-files": Hostile(
        plus(*(Member(f"f{i}.txt", b"x") for i in range(10)), listed=True),
        "has more than 8 entries",
        Limits(max_files=8),
    ),
    "decompression-bomb": Hostile(
        bomb, "unpacks to more than 1,048,576 bytes", Limits(max_total_bytes=1024 * 1024)
    ),
    "pax-header-bomb": Hostile(
        pax_bomb,
        "unpacks to more than 1,048,576 bytes",
        Limits(max_total_bytes=1024 * 1024, max_files=16),
    ),
    "file-too-large": Hostile(
        plus(Member("big.bin", bytes(5000)), listed=True),
        "entry 'big.bin' is 5,000 bytes, over the limit of 4,096",
        Limits(max_file_bytes=4096),
    ),
    "compressed-too-large": Hostile(
        good_bundle, "bytes, over the limit of 100 (compressed)", Limits(max_compressed_bytes=100)
    ),
}


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE.keys())
def test_reading_refuses_a_hostile_bundle_before_writing_anything(
    tmp_path: Path, case: Hostile
) -> None:
    bundle = case.make(tmp_path / "hostile.tar.gz")
    dest = tmp_path / "dest"

    with pytest.raises(BundleError) as info:
        read_bundle(bundle, case.limits).extract_to(dest)

    assert case.message in str(info.value)
    assert info.value.where == str(bundle)
    assert not dest.exists()


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE.keys())
def test_installing_a_hostile_bundle_leaves_the_home_unchanged(
    tmp_path: Path, home: Path, case: Hostile
) -> None:
    store = Store(home, limits=case.limits)
    # A home with one plugin installed already, so "unchanged" means something.
    other = build_bundle(make_plugin(tmp_path / "src", "acme.other"), tmp_path / "out")
    Store(home).install([str(other)])
    before = tree(home)
    bundle = case.make(tmp_path / "hostile.tar.gz")

    with pytest.raises(BundleError) as info:
        store.install([str(bundle)])

    assert case.message in str(info.value)
    assert tree(home) == before
    assert not (home / "plugins" / "acme" / "tool").exists()
    assert not (home / "receipts" / "acme.tool-1.0.0.json").exists()
    assert not (home / "staging").exists() or not any((home / "staging").iterdir())


def test_the_hostile_bundle_helper_makes_a_valid_bundle_when_untampered(tmp_path: Path) -> None:
    """The hostile cases fail for their tampering, not for a mistake in the helpers."""
    bundle = good_bundle(tmp_path / "good.tar.gz")

    read = read_bundle(bundle)
    read.extract_to(tmp_path / "dest")

    assert (read.id, read.version) == ("acme.tool", "1.0.0")
    assert (tmp_path / "dest" / "tool" / "__init__.py").read_bytes() == CODE
    for make in (plus(Member("extra.txt", b"x"), listed=True), listed_as("README.md", b"Tool.\n")):
        read_bundle(make(tmp_path / "variant.tar.gz"))
    read_bundle(good_bundle(tmp_path / "b.tar.gz"), Limits(max_files=8))


def test_extraction_refuses_an_existing_destination(tmp_path: Path) -> None:
    read = read_bundle(good_bundle(tmp_path / "good.tar.gz"))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine\n")

    with pytest.raises(FileExistsError):
        read.extract_to(dest)

    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_manifest_json_is_what_an_installed_version_is(home: Path, tmp_path: Path) -> None:
    """MANIFEST.json, pinned by the receipt, describes the installed version (decision 0006):
    a plugin.toml that says something else is kept as a file but believed by nobody."""
    import json
    import subprocess
    import sys

    from plugbay.store import Store

    bundle = manifest_content_differs(tmp_path / "acme-tool-1.0.0.tar.gz")
    Store(home).install([str(bundle)])
    listed = subprocess.run(
        [sys.executable, "-m", "plugbay", "--home", str(home), "info", "acme.tool", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    # The description MANIFEST.json holds, not the one in plugin.toml.
    assert json.loads(listed.stdout)["description"] == "not what plugin.toml says"
