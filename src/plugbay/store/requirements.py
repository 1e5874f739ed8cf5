"""Requirements files for ``plugbay install -r FILE`` (YAML or TOML).

```yaml
plugins:                     # "collections:" is accepted too (ansible-galaxy's word)
  - name: acme.nutanix
    version: ">=1.0.0,<2.0.0"
  - source: ./bundles/acme-common-1.2.0.tar.gz
    type: file               # file | dir | url | git | index (guessed when left out)
  - source: https://git.acme.test/acme/tools.git
    type: git
    version: v1.4.0          # for git: the ref to check out
```

```toml
[[plugins]]
name = "acme.nutanix"
version = "^1.0"
```

Relative ``source`` paths (and local git repositories) are relative to the requirements
file. With both ``name`` and a file, folder or URL ``source``, the bundle must be that
plugin, within ``version`` if given. As in ansible-galaxy, ``name`` may itself be the
source (a path, URL or ``git+URL``) when there is no ``source``. Unknown keys are errors
with a "did you mean".

A lock file (``plugbay.lock``, as ``plugbay lock`` and ``plugbay download`` write it) is
accepted too: :func:`read_requirement_files` returns it as the lock to install with
(``install --locked``), and its plugins as the specs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ..errors import SourceError, VersionError
from ..versions import parse_version

if TYPE_CHECKING:
    from .lock import Lockfile

__all__ = ["is_lock_file", "read_requirement_files", "read_requirements"]

_KEYS = ("name", "version", "source", "type")
_TYPES = ("file", "dir", "url", "git", "index")
_SUFFIXES = (".tar.gz", ".tgz", ".git")
_SCP = re.compile(r"^[\w.-]+@[\w.-]+:")  # git's user@host:path


class _Entry(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    version: str | None = None
    source: str | None = None
    type: Literal["file", "dir", "url", "git", "index"] | None = None


def is_lock_file(path: Path) -> bool:
    """Whether a ``-r`` file is a lock: named ``*.lock``, or TOML with ``lock-version``."""
    if path.name.endswith(".lock"):
        return True
    if not path.name.endswith(".toml"):
        return False
    try:
        head = path.read_bytes()[:65536]
    except OSError:
        return False  # read_requirements says why
    return re.search(rb"^\s*lock-version\s*=", head, re.MULTILINE) is not None


def read_requirement_files(paths: Sequence[Path]) -> tuple[list[str], Lockfile | None]:
    """The install specs of ``-r`` files, and the lock among them (at most one).

    A lock's plugins become ``id@version`` specs; the caller installs them with the lock
    (``install --locked``), so that each comes from the lock's source with the lock's
    sha256. Raises SourceError for two locks, LockfileError for a malformed one.
    """
    specs: list[str] = []
    lock: Lockfile | None = None
    for path in paths:
        if not is_lock_file(path):
            specs += read_requirements(path)
            continue
        from .lock import read_lock

        if lock is not None:
            raise SourceError(
                str(path), f"is a second lock file (after {lock.name}): give one lock at a time"
            )
        lock = read_lock(path)
        if not lock.entries:
            raise SourceError(
                str(path), "pins no plugin (write one with plugbay lock or plugbay download)"
            )
        specs += [f"{e.id}@{e.version}" for e in lock.entries]
    return specs, lock


def read_requirements(path: Path) -> list[str]:
    """The install specs a requirements file names; SourceError says what is wrong where."""
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(where, f"cannot be read: {exc.strerror or exc}") from None
    raw = _decode(data, where)
    entries = raw.get("plugins", raw.get("collections")) if isinstance(raw, dict) else raw
    if isinstance(raw, dict):
        unknown = [k for k in raw if k not in ("plugins", "collections")]
        if unknown:
            raise SourceError(where, _unknown(unknown[0], ["plugins", "collections"], "at the top"))
    if not isinstance(entries, list):
        raise SourceError(where, 'expected a list under "plugins:" (or "collections:")')
    return [spec for n, e in enumerate(entries, start=1) for spec in _specs(e, n, path)]


def _decode(data: bytes, where: str) -> Any:
    try:
        if where.endswith(".toml"):
            import tomllib

            return tomllib.loads(data.decode("utf-8"))
        import yaml

        return yaml.safe_load(data)
    except Exception as exc:  # noqa: BLE001 - each format has its own error classes
        kind = "TOML" if where.endswith(".toml") else "YAML"
        raise SourceError(where, f"is not valid {kind}: {' '.join(str(exc).split())}") from None


def _unknown(key: str, allowed: list[str], where: str) -> str:
    close = get_close_matches(key, allowed, n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return f"unknown key {key!r} {where}{hint} (allowed: {', '.join(allowed)})"


def _specs(raw: Any, n: int, path: Path) -> list[str]:
    """The install specs of one entry (a source with a name also pins that name's range)."""
    where = f"{path}: entry {n}"
    if isinstance(raw, str):
        return [raw]  # a bare spec, as on the command line
    if not isinstance(raw, dict):
        raise SourceError(where, "expected a table with name, version, source or type")
    for key in raw:
        if key not in _KEYS:
            raise SourceError(where, _unknown(str(key), list(_KEYS), "in this entry"))
    try:
        entry = msgspec.convert(raw, _Entry)
    except msgspec.ValidationError as exc:
        raise SourceError(where, f"{exc}; type is one of {', '.join(_TYPES)}") from None
    if entry.source is None and entry.name and _looks_like_source(entry.name):
        # ansible-galaxy style: the name is where to get it (a URL, a path, git+…).
        entry = _Entry(None, entry.version, entry.name, entry.type)
    kind = entry.type or _guess(entry)
    if kind in ("index", None):
        if not entry.name:
            raise SourceError(where, "needs a name (a plugin id such as acme.tools) or a source")
        return [f"{entry.name}{_range(entry.version)}"]
    if entry.source is None:
        raise SourceError(where, f"has type {kind!r} but no source (where to get it)")
    if kind == "git":
        url = entry.source.removeprefix("git+")
        if "://" not in url and not _SCP.match(url):
            url = (path.parent / Path(url).expanduser()).resolve().as_uri()  # a local repository
        return [f"git+{url}" + (f"@{entry.version}" if entry.version else "")]
    if kind == "url":
        source = entry.source
    else:
        local = Path(entry.source).expanduser()
        source = str(local if local.is_absolute() else path.parent / local)
    if entry.name:
        # The bundle must be the plugin named, in the range given.
        return [source, f"{entry.name}{_range(entry.version)}"]
    if entry.version:
        raise SourceError(
            where,
            f"has a version but no name: add the plugin id (name: …) so that the {kind} "
            "can be checked against the version",
        )
    return [source]


def _looks_like_source(name: str) -> bool:
    return "/" in name or name.startswith(("git+", ".", "~")) or name.endswith(_SUFFIXES)


def _guess(entry: _Entry) -> str | None:
    source = entry.source
    if source is None:
        return None
    if source.startswith("git+") or source.endswith(".git"):
        return "git"
    if source.startswith(("http://", "https://")):
        return "url"
    return "file" if source.endswith((".tar.gz", ".tgz")) else "dir"


def _range(version: str | None) -> str:
    """``1.2.0`` → ``@1.2.0``; ranges: ``>=1.0`` as it is, ``1.2.*`` → `` 1.2.*``."""
    if not version or version.strip() == "*":
        return ""
    version = version.strip()
    try:
        parse_version(version)
    except VersionError:
        # "acme.x>=1.0" reads as one spec; "acme.x1.2.*" would not, so a space there.
        return f" {version}" if version[0].isalnum() else version
    return f"@{version}"
