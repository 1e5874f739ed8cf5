"""Bundles (DESIGN §4): reproducible building, and checked, safe extraction.

A bundle is ``<ns>-<name>-<version>.tar.gz`` holding, at its root, ``MANIFEST.json`` (the
normalised manifest, build info, and the sha256 of ``FILES.json``), ``FILES.json`` (every
other file: path, size, mode, sha256), optionally ``MANIFEST.json.sig``, and the plugin's
own files. Building sorts entries, fixes mtimes, owners and modes, and writes a gzip
header with no name or time, so the same source gives the same bytes.

Reading checks everything before a byte is written to the destination: entry names
(absolute, ``..``, duplicates, case collisions, a name both a file and a folder), entry
types (regular files and folders only: no links, even inside, no devices), size and count
limits (on the unpacked stream too, so tar metadata cannot be a decompression bomb), the
gzip stream to its end, and that every file is listed in FILES.json with the right size
and hash, and FILES.json has the hash MANIFEST.json names.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import posixpath
import re
import stat
import sys
import unicodedata
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec

from ..errors import BundleError, ManifestError

if TYPE_CHECKING:
    import gzip
    import tarfile

    # tarfile and gzip are imported by the functions that use them: a plain bundle is read
    # without them (see _plain_entries), and ``plugbay verify`` needs neither.
    # The manifest module (and the SemVer library under it) is imported by the functions
    # that parse one: ``plugbay verify`` reads bundles' metadata without either.
    from ..manifest import Manifest

__all__ = [
    "BUNDLE_FORMAT",
    "FileEntry",
    "Limits",
    "ManifestFile",
    "ReadBundle",
    "build_bundle",
    "bundle_metadata",
    "bundle_name",
    "collect_files",
    "read_bundle",
    "rewrite_bundle",
]

BUNDLE_FORMAT = 1
MANIFEST_JSON = "MANIFEST.json"
FILES_JSON = "FILES.json"
SIGNATURE = "MANIFEST.json.sig"
_META = frozenset({MANIFEST_JSON, FILES_JSON, SIGNATURE})

# What a build leaves out, besides the manifest's own ``exclude`` globs.
IGNORED_DIRS = frozenset(
    {".git", ".hg", ".svn", ".bzr", "__pycache__", ".pytest_cache", ".mypy_cache",
     ".ruff_cache", ".tox", ".nox", ".venv", "venv", ".idea", ".vscode", "node_modules",
     ".eggs", "build", "dist", ".hypothesis"}
)  # fmt: skip
IGNORED_FILES = ("*.pyc", "*.pyo", ".DS_Store", "*~", "*.swp", "*.tar.gz")

_MTIME = 0  # 1970-01-01: fixed, so builds are reproducible


class FileEntry(msgspec.Struct, frozen=True):
    """One file of a bundle, as FILES.json lists it."""

    path: str
    size: int
    mode: int
    sha256: str


class FilesList(msgspec.Struct, frozen=True):
    format: int
    files: tuple[FileEntry, ...]


class BuildInfo(msgspec.Struct, frozen=True):
    tool: str
    format: int


class ManifestFile(msgspec.Struct, frozen=True):
    """MANIFEST.json: what the bundle is and the hash that pins FILES.json."""

    format: int
    id: str
    version: str
    manifest: dict[str, Any]
    manifest_file: str
    files_sha256: str
    build: BuildInfo


class Limits(msgspec.Struct, frozen=True, gc=False):
    """Bounds a bundle must stay within (decompression bombs, runaway bundles)."""

    max_files: int = 10_000
    max_total_bytes: int = 512 * 1024 * 1024
    max_file_bytes: int = 256 * 1024 * 1024
    max_compressed_bytes: int = 256 * 1024 * 1024


def bundle_name(plugin_id: str, version: str) -> str:
    """``acme.tool`` 1.0.0 → ``acme-tool-1.0.0.tar.gz``."""
    return f"{plugin_id.replace('.', '-')}-{version}.tar.gz"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _normal_mode(mode: int) -> int:
    return 0o755 if mode & 0o111 else 0o644


def collect_files(folder: Path, exclude: Sequence[str] = ()) -> list[tuple[str, Path]]:
    """The files a build of ``folder`` takes: ``(bundle path, source path)``, sorted by path.

    Leaves out VCS folders, caches, virtual environments and the ``exclude`` globs
    (matched against the bundle path and against the file name). Symbolic links (to files
    or folders) are followed only when they stay inside ``folder``; one leading outside,
    to nothing, or back into a folder that holds it raises BundleError.
    """
    root = folder.resolve()
    out: list[tuple[str, Path]] = []
    # Real path of every folder walked, by its path as walked: spots symlink loops.
    real_dirs: dict[str, str] = {str(root): str(root)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        kept = []
        for d in sorted(dirnames):
            rel = posixpath.join(rel_dir, d)
            if d in IGNORED_DIRS or d.endswith(".egg-info") or _excluded(rel, d, exclude):
                continue
            path = Path(dirpath, d)
            real = os.path.realpath(path)
            if path.is_symlink():
                _check_link(folder, rel, Path(real), root)
                ancestors = {real_dirs.get(str(a)) for a in (Path(dirpath), *Path(dirpath).parents)}
                if real in ancestors:
                    raise BundleError(
                        str(folder),
                        f"{rel!r} is a symbolic link back into a folder that holds it (a loop); "
                        "remove it, or add it to the manifest's exclude list",
                    )
            real_dirs[str(path)] = real
            kept.append(d)
        dirnames[:] = kept
        for name in filenames:
            rel = posixpath.join(rel_dir, name) if rel_dir else name
            if rel in _META or any(fnmatch.fnmatch(name, g) for g in IGNORED_FILES):
                continue
            if _excluded(rel, name, exclude):
                continue
            path = Path(dirpath, name)
            if path.is_symlink():
                target = path.resolve()
                _check_link(folder, rel, target, root)
                if not target.is_file():
                    continue  # a link to a socket or fifo: never part of a plugin
            elif not path.is_file():
                continue  # sockets, fifos: never part of a plugin
            out.append((rel, path))
    out.sort()
    return out


def _check_link(folder: Path, rel: str, target: Path, root: Path) -> None:
    # The folder is the error's subject and the link is named in the problem, so callers
    # that re-word the problem ("cannot be built: ...") still say which link it is.
    if not target.exists():
        raise BundleError(
            str(folder),
            f"{rel!r} is a broken symbolic link; "
            "remove it, or add it to the manifest's exclude list",
        )
    if root != target and root not in target.parents:
        raise BundleError(
            str(folder),
            f"{rel!r} is a symbolic link leading outside the plugin folder (to {target}); "
            "copy the file in, or add it to the manifest's exclude list",
        )


def _excluded(rel: str, name: str, patterns: Sequence[str]) -> bool:
    return any(
        fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) or rel.startswith(p.rstrip("/") + "/")
        for p in patterns
    )


def build_bundle(
    folder: Path, out_dir: Path, *, sign: Callable[[bytes], bytes] | None = None
) -> Path:
    """Validate the plugin in ``folder`` and write its reproducible bundle into ``out_dir``.

    ``sign`` turns the bytes of MANIFEST.json into those of ``MANIFEST.json.sig``
    (:meth:`.signing.SigningKey.sign`); without it the bundle is unsigned.
    """
    manifest, manifest_json, files_json, blobs = bundle_metadata(folder)
    signature = sign(manifest_json) if sign is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / bundle_name(manifest.id, manifest.version)
    _write_tar(target, _bundle_members(manifest_json, files_json, signature, blobs))
    return target


def _bundle_members(
    manifest_json: bytes,
    files_json: bytes,
    signature: bytes | None,
    blobs: list[tuple[str, bytes, int]],
) -> list[tuple[str, bytes, int]]:
    """The entries of a bundle, in their order: metadata first, then the files by path."""
    members = [(MANIFEST_JSON, manifest_json, 0o644), (FILES_JSON, files_json, 0o644)]
    if signature is not None:
        members.append((SIGNATURE, signature, 0o644))
    return [*members, *blobs]


def rewrite_bundle(bundle: ReadBundle, target: Path, signature: bytes | None) -> None:
    """Write a checked bundle again, reproducibly, with ``signature`` as its
    ``MANIFEST.json.sig`` (None: without one). Every other entry keeps its bytes and
    FILES.json's mode; ``target`` is replaced atomically."""
    blobs = [(e.path, bundle.contents[e.path], e.mode) for e in sorted(bundle.files, key=_path)]
    manifest_json, files_json = bundle.contents[MANIFEST_JSON], bundle.contents[FILES_JSON]
    _write_tar(target, _bundle_members(manifest_json, files_json, signature, blobs))


def _path(entry: FileEntry) -> str:
    return entry.path


def bundle_metadata(folder: Path) -> tuple[Manifest, bytes, bytes, list[tuple[str, bytes, int]]]:
    """What a build of ``folder`` holds: the manifest, MANIFEST.json, FILES.json, the files."""
    from .. import __version__
    from ..manifest import MANIFEST_NAMES, load_manifest, manifest_in

    manifest_path = manifest_in(folder)
    if manifest_path is None:
        raise BundleError(str(folder), f"has no manifest ({', '.join(MANIFEST_NAMES)})")
    manifest = load_manifest(manifest_path)
    files = collect_files(folder, manifest.exclude)
    if manifest_path.name not in dict(files):
        # An exclude glob such as "*.toml" must not leave out the manifest itself.
        files = sorted([*files, (manifest_path.name, manifest_path)])
    _check_names([rel for rel, _ in files], str(folder))
    entries: list[FileEntry] = []
    blobs: list[tuple[str, bytes, int]] = []
    for rel, path in files:
        data = path.read_bytes()
        mode = _normal_mode(path.stat().st_mode)
        entries.append(FileEntry(rel, len(data), mode, _sha256(data)))
        blobs.append((rel, data, mode))
    files_json = msgspec.json.encode(FilesList(BUNDLE_FORMAT, tuple(entries)))
    manifest_json = msgspec.json.encode(
        ManifestFile(
            BUNDLE_FORMAT,
            manifest.id,
            manifest.version,
            msgspec.to_builtins(manifest),
            manifest_path.name,
            _sha256(files_json),
            BuildInfo(f"plugbay {__version__}", BUNDLE_FORMAT),
        )
    )
    return manifest, manifest_json, files_json, blobs


def _check_names(names: Sequence[str], where: str) -> None:
    """Refuse, at build time, names that reading would refuse (so the error names the file)."""
    folded: dict[str, str] = {}
    for rel in names:
        if "\\" in rel:
            raise BundleError(
                where, f"holds {rel!r}, whose name has a backslash; rename it (bundles use /)"
            )
        other = folded.setdefault(_fold(rel), rel)
        if other != rel:
            raise BundleError(
                where,
                f"holds {other!r} and {rel!r}, which differ only in case; rename one "
                "(a bundle must unpack on case-insensitive file systems)",
            )
    for rel in names:
        for parent in _parents(rel):
            clash = folded.get(_fold(parent))
            if clash is not None:
                raise BundleError(
                    where,
                    f"holds the file {clash!r} and the folder {parent!r}, which differ only "
                    "in case; rename one (a bundle must unpack on case-insensitive file systems)",
                )


def _write_tar(target: Path, members: list[tuple[str, bytes, int]]) -> None:
    import gzip
    import tarfile

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for rel, data, mode in members:
            for parent in _parents(rel):
                if parent not in dirs:
                    dirs.add(parent)
                    tar.addfile(_info(parent + "/", tarfile.DIRTYPE, 0o755, 0))
            tar.addfile(_info(rel, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
    # mtime=0 and no file name in the gzip header: the same tar gives the same bytes.
    with (
        open(tmp, "wb") as f,
        gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=6) as gz,
    ):
        gz.write(raw.getvalue())
    os.replace(tmp, target)


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    import tarfile

    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = _MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# ---------------------------------------------------------------- reading


class ReadBundle(msgspec.Struct, frozen=True):
    """A bundle read into memory and checked: safe to write out with :meth:`extract_to`."""

    path: str
    sha256: str
    manifest_file: ManifestFile
    manifest_sha256: str
    manifest: Manifest
    files: tuple[FileEntry, ...]
    contents: dict[str, bytes]
    signature: bytes | None
    # Compared too (a Struct compares every field), which changes no comparison's result:
    # read_bundle_bytes always passes it, and ``sha256``, compared already, is its digest.
    #: The bundle file's bytes, as read (what ``sha256`` is of): ``plugbay download`` copies them.
    data: bytes = b""

    def __repr__(self) -> str:
        # ``data`` (the whole bundle file) is left out.
        shown = (f"{n}={getattr(self, n)!r}" for n in self.__struct_fields__ if n != "data")
        return f"{type(self).__qualname__}({', '.join(shown)})"

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def version(self) -> str:
        return self.manifest.version

    def extract_to(self, folder: Path) -> None:
        """Write the checked files (and the metadata files) into a new folder.

        One ``mkdir`` per folder and one ``open`` per file (created with its final mode
        unless the umask takes bits away): file creation is most of an install's time.
        """
        folder.mkdir(parents=True, exist_ok=False)
        root = str(folder)
        made = {""}
        modes = {e.path: e.mode for e in self.files}
        mask = _umask()
        for rel, data in sorted(self.contents.items()):
            parent, _, _ = rel.rpartition("/")
            if parent not in made:
                os.makedirs(os.path.join(root, parent), exist_ok=True)
                made.add(parent)
            mode = modes.get(rel, 0o644)
            fd = os.open(os.path.join(root, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if mode & mask:
                    os.fchmod(fd, mode)
            finally:
                os.close(fd)


def _umask() -> int:
    # Read without changing it for long: set and restore in one go.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_bundle(path: Path, limits: Limits | None = None) -> ReadBundle:
    """Read and check a bundle file; raises BundleError saying what is wrong."""
    limits = limits or Limits()
    try:
        with open(path, "rb") as f:
            _check_compressed_size(os.fstat(f.fileno()).st_size, str(path), limits)
            # One byte over the limit is enough to know a file that grew is over it.
            data = f.read(limits.max_compressed_bytes + 1)
    except OSError as exc:
        raise BundleError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    return read_bundle_bytes(data, str(path), limits)


def _check_compressed_size(size: int, where: str, limits: Limits) -> None:
    if size > limits.max_compressed_bytes:
        raise BundleError(
            where,
            f"is {size:,} bytes, over the limit of {limits.max_compressed_bytes:,} (compressed)",
        )


def read_bundle_bytes(data: bytes, where: str, limits: Limits | None = None) -> ReadBundle:
    """:func:`read_bundle` for bytes already in memory (a download)."""
    limits = limits or Limits()
    _check_compressed_size(len(data), where, limits)
    contents = _read_members(data, where, limits)
    if MANIFEST_JSON not in contents or FILES_JSON not in contents:
        raise BundleError(
            where,
            f"is not a plugbay bundle: {MANIFEST_JSON} or {FILES_JSON} is missing at its root",
        )
    try:
        mfile = msgspec.json.decode(contents[MANIFEST_JSON], type=ManifestFile)
        flist = msgspec.json.decode(contents[FILES_JSON], type=FilesList)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BundleError(
            where, f"has an unreadable {MANIFEST_JSON} or {FILES_JSON}: {exc}"
        ) from None
    if mfile.format != BUNDLE_FORMAT:
        raise BundleError(
            where, f"has bundle format {mfile.format}; this plugbay reads format {BUNDLE_FORMAT}"
        )
    if _sha256(contents[FILES_JSON]) != mfile.files_sha256:
        raise BundleError(
            where,
            f"{FILES_JSON} does not match the hash in {MANIFEST_JSON}: the bundle was altered",
        )
    _check_listing(flist.files, contents, where)
    from ..manifest import MANIFEST_NAMES

    manifest_text = contents.get(mfile.manifest_file)
    if manifest_text is None or mfile.manifest_file not in MANIFEST_NAMES:
        raise BundleError(
            where, f"names {mfile.manifest_file!r} as its manifest, which it does not hold"
        )
    # MANIFEST.json is the plugin's description from here on (discovery of installed
    # versions reads it too): validate it as fully as a manifest file, without parsing
    # the TOML or YAML again (decision 0006). The manifest file itself is pinned by
    # FILES.json like every other file.
    from ..manifest import manifest_from_json_member

    try:
        manifest = manifest_from_json_member(contents[MANIFEST_JSON], f"{where}!{MANIFEST_JSON}")
    except ManifestError as exc:
        raise BundleError(where, f"holds an invalid manifest: {exc}") from None
    if manifest.id != mfile.id or manifest.version != mfile.version:
        raise BundleError(
            where,
            f"{MANIFEST_JSON} says {mfile.id} {mfile.version} but its manifest says "
            f"{manifest.id} {manifest.version}",
        )
    return ReadBundle(
        where,
        _sha256(data),
        mfile,
        _sha256(contents[MANIFEST_JSON]),
        manifest,
        flist.files,
        contents,
        contents.get(SIGNATURE),
        data,
    )


# Tar headers, PAX records and padding around each entry: what a stream may hold beyond
# the entries' own bytes before it is refused as a decompression bomb.
_ENTRY_OVERHEAD = 8192


def _read_members(data: bytes, where: str, limits: Limits) -> dict[str, bytes]:
    cap = limits.max_total_bytes + (limits.max_files + 2) * _ENTRY_OVERHEAD
    plain = _plain_entries(data, cap)
    if plain is None:
        return _read_members_with_tarfile(data, where, limits, cap)
    entries = _Entries(where, limits)
    for raw_name, blob in plain:
        name = entries.name(raw_name)
        if blob is None:
            entries.dirs.add(name)
        else:
            entries.file(name, len(blob))
            entries.contents[name] = blob
    return entries.done()


def _read_members_with_tarfile(
    data: bytes, where: str, limits: Limits, cap: int
) -> dict[str, bytes]:
    """Any .tar.gz the tarfile module reads, checked member by member as it is read."""
    import gzip
    import tarfile

    entries = _Entries(where, limits)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as gz:
            stream = _Capped(gz, cap, where, limits.max_total_bytes)
            # Stream mode: tarfile reads forward only, through the cap, and never seeks.
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in _members(tar):
                    name = entries.name(member.name)
                    if member.isdir():
                        entries.dirs.add(name)
                        continue
                    _check_type(member, where)
                    entries.file(name, member.size)
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    entries.contents[name] = _read_exactly(extracted, member.size, where, name)
            # Read to the end of the gzip stream: its length and CRC catch a truncated or
            # altered file whose tar part happens to end cleanly.
            stream.drain()
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise BundleError(where, f"is not a valid .tar.gz (truncated or corrupt): {exc}") from None
    return entries.done()


class _Entries:
    """A bundle's entries as they are read, each checked before the next is read."""

    def __init__(self, where: str, limits: Limits) -> None:
        self.where = where
        self.limits = limits
        self.contents: dict[str, bytes] = {}
        self.folded: dict[str, str] = {}
        self.dirs: set[str] = set()
        self.total = 0
        self.count = 0

    def name(self, raw: str) -> str:
        """The safe name of the next entry (counted against the limit)."""
        self.count += 1
        if self.count > self.limits.max_files:
            raise BundleError(self.where, f"has more than {self.limits.max_files:,} entries")
        return _safe_name(raw, self.where)

    def file(self, name: str, size: int) -> None:
        """A regular file of ``size`` bytes is next: within the limits, and new."""
        limits = self.limits
        if size > limits.max_file_bytes:
            raise BundleError(
                self.where,
                f"entry {name!r} is {size:,} bytes, over the limit of {limits.max_file_bytes:,}",
            )
        self.total += size
        if self.total > limits.max_total_bytes:
            raise BundleError(self.where, f"unpacks to more than {limits.max_total_bytes:,} bytes")
        _check_unique(name, self.contents, self.folded, self.where)

    def done(self) -> dict[str, bytes]:
        _check_folders(self.contents, self.dirs, self.where)
        return self.contents


# ---------------------------------------------------------------- plain archives
#
# The tarfile module spends ~50 µs per entry on this machine (a 200-plugin install reads
# 9,000), most of it in layers of file objects. A bundle as ``plugbay build`` writes it is
# a plain POSIX tar in one gzip member: a header block per entry, the data, padding. Such
# an archive is parsed here in one pass over the decompressed bytes, with exactly
# tarfile's reading of it; anything else (other entry types, GNU or old headers, a global
# or unusual PAX header, base-256 numbers, a checksum only tarfile's signed sum accepts,
# trailing bytes, truncation, over the cap...) makes _plain_entries answer None, and
# tarfile reads the bundle, with the errors it has always given. (Decision 0012.)

_BLOCK = 512
_POSIX_MAGIC = b"ustar\x0000"
# PAX keys tarfile applies to the next entry and that mean nothing else for a file here.
_PAX_KEYS = frozenset({"path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname"})
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")  # tarfile's own reading of a record
_DIGITS = re.compile(r"[0-9]+\Z")
# (start, end) of the numeric header fields tarfile parses: mode, uid, gid, size, mtime,
# checksum, devmajor, devminor.
_NUMBERS = (
    (100, 108),
    (108, 116),
    (116, 124),
    (124, 136),
    (136, 148),
    (148, 156),
    (329, 337),
    (337, 345),
)
_NAMES_ARE_UTF8 = sys.getfilesystemencoding().lower().replace("-", "") == "utf8"


def _plain_entries(data: bytes, cap: int) -> list[tuple[str, bytes | None]] | None:
    """``(name, bytes)`` per file and ``(name, None)`` per folder, as tarfile names them,
    if ``data`` is a plain archive (see above); else None."""
    if not _NAMES_ARE_UTF8:
        return None
    try:
        unzip = zlib.decompressobj(31)
        raw = unzip.decompress(data, cap + 1)
    except zlib.error:
        return None
    if len(raw) > cap or not unzip.eof or unzip.unused_data or unzip.unconsumed_tail:
        return None
    out: list[tuple[str, bytes | None]] = []
    pax: dict[str, str] | None = None
    pos, end = 0, len(raw)
    try:
        while pos < end:
            header = raw[pos : pos + _BLOCK]
            if len(header) == _BLOCK and header.count(0) == _BLOCK:
                break  # the end of the archive; what follows is not read (nor by tarfile)
            parsed = _plain_header(header)
            if parsed is None:
                return None
            kind, size, name, prefix = parsed
            pos += _BLOCK
            if kind == b"x":
                if pax is not None:
                    return None
                padded = -(-size // _BLOCK) * _BLOCK
                if end - pos < padded:
                    return None
                pax = _pax_records(raw[pos : pos + padded])  # (tarfile reads the padding too)
                if pax is None:
                    return None
                pos += padded
                continue
            if kind == b"5" and size == 0 and pax is None:
                name = name.rstrip("/")
                out.append(((f"{prefix}/{name}" if prefix else name).rstrip("/"), None))
                continue
            if kind != b"0":
                return None
            if prefix:
                name = f"{prefix}/{name}"
            if pax is not None:
                if "path" in pax:
                    name = pax["path"].rstrip("/")
                if "size" in pax:
                    if not _DIGITS.match(pax["size"]):
                        return None
                    size = int(pax["size"])
                pax = None
            blob = raw[pos : pos + size]
            if len(blob) != size:
                return None
            out.append((name, blob))
            pos += -(-size // _BLOCK) * _BLOCK
            if pos > end:
                return None  # its padding is cut off: tarfile says "unexpected end of data"
    except (ValueError, UnicodeDecodeError):
        return None
    # An empty archive, or a PAX header with no entry after it, is tarfile's to refuse.
    if not out or pax is not None:
        return None
    return out


def _plain_header(header: bytes) -> tuple[bytes, int, str, str] | None:
    """Type, size, name and prefix of a POSIX header block whose checksum tarfile's
    unsigned sum accepts; None for any other block. ValueError, UnicodeDecodeError: a
    field tarfile would read another way (or not at all)."""
    if len(header) < _BLOCK or header[257:265] != _POSIX_MAGIC:
        return None
    numbers = [_octal(header[a:b]) for a, b in _NUMBERS]
    if numbers[5] != sum(header) - sum(header[148:156]) + 8 * 32:
        return None
    return header[156:157], numbers[3], _text(header[0:100]), _text(header[345:500])


def _octal(field: bytes) -> int:
    """A numeric header field as tarfile reads it (not its base-256 form: ValueError)."""
    if field[0] in (0o200, 0o377):
        raise ValueError("base-256")
    return int(field.split(b"\0", 1)[0].decode("ascii").strip() or "0", 8)


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8")


def _pax_records(buf: bytes) -> dict[str, str] | None:
    """The records of an extended header, read as tarfile reads them; None if one of them
    is not a key of _PAX_KEYS (or the header says how its names are encoded)."""
    records: dict[str, str] = {}
    pos = 0
    while (match := _PAX_RECORD.match(buf, pos)) is not None:
        length = int(match.group(1))
        key = match.group(2).decode("utf-8")
        if length == 0 or key not in _PAX_KEYS:
            return None
        records[key] = buf[match.end(2) + 1 : match.start(1) + length - 1].decode("utf-8")
        pos += length
    return records


class _Capped:
    """A forward-only reader that refuses to give more than ``cap`` bytes."""

    def __init__(self, inner: gzip.GzipFile, cap: int, where: str, limit: int) -> None:
        self._inner = inner
        self._cap = cap
        self._where = where
        self._limit = limit
        self._count = 0

    def read(self, size: int = -1) -> bytes:
        want = self._cap + 1 - self._count if size < 0 else min(size, self._cap + 1 - self._count)
        chunk = self._inner.read(max(want, 0))
        self._count += len(chunk)
        if self._count > self._cap:
            raise BundleError(self._where, f"unpacks to more than {self._limit:,} bytes")
        return chunk

    def tell(self) -> int:
        return self._count

    def seek(self, pos: int, /) -> int:
        raise io.UnsupportedOperation("a bundle is read forward only")

    def write(self, b: bytes, /) -> int:
        raise io.UnsupportedOperation("a bundle is read, never written, through this reader")

    def close(self) -> None:
        """The gzip stream underneath is closed by its owner."""

    def drain(self) -> None:
        while self.read(1 << 16):
            pass


def _check_type(member: tarfile.TarInfo, where: str) -> None:
    if member.isreg() and not member.issparse():
        return
    if member.issym() or member.islnk():
        kind = "a symbolic link" if member.issym() else "a hard link"
        what = f"{kind} (to {member.linkname!r})"
    elif member.isdev():
        what = "a device or fifo"
    else:
        what = "a special file"
    raise BundleError(
        where, f"entry {member.name!r} is {what}; bundles hold regular files and folders only"
    )


def _fold(name: str) -> str:
    """The form two names share if a case-insensitive (or normalising) file system merges them."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def _check_unique(
    name: str, contents: dict[str, bytes], folded: dict[str, str], where: str
) -> None:
    if name in contents:
        raise BundleError(where, f"has entry {name!r} twice")
    other = folded.setdefault(_fold(name), name)
    if other != name:
        raise BundleError(
            where,
            f"has entries {other!r} and {name!r}, which differ only in case and would "
            "overwrite each other on a case-insensitive file system",
        )


def _check_folders(contents: dict[str, bytes], dirs: set[str], where: str) -> None:
    """No name may be a file and also a folder (given, or implied by a file below it)."""
    files = {_fold(name): name for name in contents}
    for name in sorted({*dirs, *(p for n in contents for p in _parents(n))}):
        clash = files.get(_fold(name))
        if clash is not None:
            raise BundleError(where, f"has {clash!r} both as a file and as a folder")


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while True:
        member = tar.next()
        if member is None:
            return
        yield member


def _read_exactly(f: IO[bytes], size: int, where: str, name: str) -> bytes:
    blob = f.read(size + 1)
    if len(blob) != size:
        raise BundleError(where, f"entry {name!r} is truncated")
    return blob


def _safe_name(name: str, where: str) -> str:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise BundleError(where, f"entry {name!r} has an absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BundleError(where, f"entry {name!r} leaves the bundle (..)")
    if not parts:
        raise BundleError(where, f"entry {name!r} has an empty path")
    if any("\x00" in p or len(p) > 255 for p in parts):
        raise BundleError(where, f"entry {name!r} has an invalid file name")
    return "/".join(parts)


def _check_listing(files: Sequence[FileEntry], contents: dict[str, bytes], where: str) -> None:
    listed = {e.path: e for e in files}
    if len(listed) != len(files):
        raise BundleError(where, f"{FILES_JSON} lists a file twice")
    for e in files:
        data = contents.get(e.path)
        if data is None:
            raise BundleError(
                where, f"{FILES_JSON} lists {e.path!r}, which the bundle does not hold"
            )
        if len(data) != e.size or _sha256(data) != e.sha256:
            raise BundleError(
                where, f"{e.path!r} does not match its size or sha256 in {FILES_JSON}"
            )
        if e.mode not in (0o644, 0o755):
            raise BundleError(
                where, f"{e.path!r} has mode {oct(e.mode)} in {FILES_JSON}; expected 0o644 or 0o755"
            )
    for name in contents:
        if name not in listed and name not in _META:
            raise BundleError(where, f"holds {name!r}, which {FILES_JSON} does not list")


def hash_file(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (read in C, in large blocks)."""
    with open(path, "rb", buffering=0) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def is_executable(mode: int) -> bool:
    return bool(stat.S_IMODE(mode) & 0o111)
