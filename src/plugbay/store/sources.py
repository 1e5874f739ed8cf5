"""Where bundles come from: install specs, and the sources that turn them into bundles.

An install spec (DESIGN §7) is one of:

- ``ns.name``, ``ns.name@1.2.0``, ``ns.name:1.2.0`` (Galaxy style), ``ns.name>=1.0,<2``
  (any range): a plugin by id, found among the bundles given in the same command, the
  installed versions, or an index source;
- a folder (built on the fly), a ``.tar.gz`` bundle, an ``http(s)://`` URL of a bundle, or
  ``git+URL[@ref]`` (cloned at the ref, then built).

Sources share one small interface, :class:`Source`, so an index (a later addition) plugs
in beside the local ones: ``available(plugin_id)`` lists candidate versions from metadata
alone, and ``fetch(candidate)`` returns the checked bundle.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import BundleError, SourceError, VersionError
from ..manifest import Manifest
from ..versions import parse_range, parse_version
from .bundle import Limits, ReadBundle, build_bundle, read_bundle

__all__ = [
    "Artifact",
    "Candidate",
    "Requested",
    "Source",
    "parse_spec",
]

_ID = r"(?:[a-z][a-z0-9_]*\.)?[a-z][a-z0-9_]*"
_BY_ID = re.compile(
    rf"^(?P<id>{_ID})(?:(?P<sep>[@:])(?P<version>[^\s]+)|(?P<range>[<>=^~*!|\s].*))?$"
)


@dataclass(frozen=True)
class Requested:
    """A plugin asked for by id, with an optional version range."""

    id: str
    range: str | None = None
    spec: str = ""

    def __str__(self) -> str:
        return self.spec or (f"{self.id} {self.range}" if self.range else self.id)


@dataclass(frozen=True)
class Artifact:
    """A bundle asked for by where it is: folder, file, URL or git."""

    kind: str  # dir | file | url | git
    location: str
    ref: str | None = None
    spec: str = ""

    def __str__(self) -> str:
        return self.spec or self.location


@dataclass(frozen=True, eq=False)
class Candidate:
    """One version of one plugin that could be installed (or is installed)."""

    id: str
    version: str
    manifest: Manifest
    origin: str  # "installed", or the source's description
    source: Source | None = field(default=None, repr=False)
    installed: bool = False
    active: bool = False
    bundle: ReadBundle | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"


class Source(Protocol):
    """Something that offers bundles: local artifacts now, an index later."""

    def available(self, plugin_id: str) -> list[Candidate]:
        """Candidate versions of ``plugin_id`` (metadata only; cheap)."""
        ...

    def fetch(self, candidate: Candidate) -> ReadBundle:
        """The checked bundle of a candidate this source offered."""
        ...


def parse_spec(spec: str) -> Requested | Artifact:
    """Classify one install spec; raises SourceError saying what forms are accepted."""
    text = spec.strip()
    if text.startswith("git+"):
        url, ref = _split_ref(text[4:])
        return Artifact("git", url, ref, spec)
    if text.startswith(("http://", "https://")):
        return Artifact("url", text, None, spec)
    path = Path(text).expanduser()
    if text.endswith((".tar.gz", ".tgz")):
        if not path.is_file():
            raise SourceError(spec, "no such bundle file")
        return Artifact("file", str(path.resolve()), None, spec)
    if path.is_dir():
        return Artifact("dir", str(path.resolve()), None, spec)
    match = _BY_ID.match(text)
    if match:
        version = match.group("version")
        rng = match.group("range")
        try:
            if version is not None:
                parse_version(version)
                return Requested(match.group("id"), f"={version}", spec)
            if rng is not None:
                parse_range(rng.strip())
                return Requested(match.group("id"), rng.strip(), spec)
        except VersionError as exc:
            raise SourceError(spec, str(exc)) from None
        return Requested(match.group("id"), None, spec)
    if os.sep in text or text.startswith("."):
        raise SourceError(spec, "no such folder or bundle file")
    raise SourceError(
        spec,
        "is not a plugin id (ns.name, ns.name@1.2.0, ns.name>=1.0,<2), a folder, a .tar.gz "
        "bundle, an http(s):// URL or git+URL[@ref]",
    )


def _split_ref(url: str) -> tuple[str, str | None]:
    """``https://u@host/repo.git@v1`` → (``https://u@host/repo.git``, ``v1``).

    The ref is an ``@`` in the path part (after the host), so a user name in the host
    part (``git@host``) is not mistaken for one.
    """
    _, _, rest = url.partition("://")
    path = rest.split("/", 1)[1] if "/" in rest else ""
    if "@" not in path:
        return url, None
    head, _, ref = url.rpartition("@")
    return head, ref or None


# ---------------------------------------------------------------- local sources


class Artifacts:
    """The bundles named on the command line (files, folders, URLs, git), read up front."""

    def __init__(self, cache: Path, limits: Limits, *, offline: bool = False) -> None:
        self._cache = cache
        self._limits = limits
        self._offline = offline
        self._by_id: dict[str, list[Candidate]] = {}
        self._work = Path(tempfile.mkdtemp(prefix="plugbay-build-"))

    def close(self) -> None:
        shutil.rmtree(self._work, ignore_errors=True)

    def add(self, artifact: Artifact) -> Candidate:
        """Obtain and check the artifact's bundle; it becomes a candidate."""
        bundle = self._obtain(artifact)
        candidate = Candidate(
            bundle.id, bundle.version, bundle.manifest, str(artifact), self, bundle=bundle
        )
        known = self._by_id.setdefault(bundle.id, [])
        if not any(c.version == bundle.version for c in known):
            known.append(candidate)
        return candidate

    def available(self, plugin_id: str) -> list[Candidate]:
        return list(self._by_id.get(plugin_id, ()))

    def fetch(self, candidate: Candidate) -> ReadBundle:
        assert candidate.bundle is not None
        return candidate.bundle

    def _obtain(self, artifact: Artifact) -> ReadBundle:
        if artifact.kind == "file":
            return read_bundle(Path(artifact.location), self._limits)
        if artifact.kind == "dir":
            return self._build(Path(artifact.location), str(artifact))
        if artifact.kind == "url":
            return read_bundle(self._download(artifact), self._limits)
        if artifact.kind == "git":
            return self._build(self._clone(artifact), str(artifact))
        raise SourceError(str(artifact), f"unknown source type {artifact.kind!r}")

    def _build(self, folder: Path, spec: str) -> ReadBundle:
        out = Path(tempfile.mkdtemp(dir=self._work))
        try:
            return read_bundle(build_bundle(folder, out), self._limits)
        except BundleError as exc:
            raise SourceError(spec, f"cannot be built: {exc.problem}") from None

    def _download(self, artifact: Artifact) -> Path:
        url = artifact.location
        name = hashlib.sha256(url.encode()).hexdigest()[:32] + ".tar.gz"
        target = self._cache / "downloads" / name
        if self._offline:
            if target.is_file():
                return target
            raise SourceError(
                str(artifact), "is not in the download cache, and --offline forbids fetching it"
            )
        import httpx

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=30.0) as response:
                if response.status_code != 200:
                    raise SourceError(
                        str(artifact),
                        f"the server answered {response.status_code} {response.reason_phrase}",
                    )
                size = 0
                with open(tmp, "wb") as f:
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > self._limits.max_compressed_bytes:
                            raise SourceError(
                                str(artifact),
                                f"is larger than {self._limits.max_compressed_bytes:,} bytes",
                            )
                        f.write(chunk)
        except httpx.HTTPError as exc:
            tmp.unlink(missing_ok=True)
            raise SourceError(str(artifact), f"cannot be downloaded: {exc}") from None
        except SourceError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, target)
        return target

    def _clone(self, artifact: Artifact) -> Path:
        if self._offline and not artifact.location.startswith("file://"):
            raise SourceError(str(artifact), "--offline forbids cloning a remote repository")
        git = shutil.which("git")
        if git is None:
            raise SourceError(str(artifact), "needs git, which is not installed (install git)")
        dest = Path(tempfile.mkdtemp(dir=self._work)) / "src"
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        result = subprocess.run(
            [git, "clone", "--quiet", artifact.location, str(dest)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            raise SourceError(str(artifact), f"git clone failed: {_last_line(result.stderr)}")
        if artifact.ref is not None:
            checkout = subprocess.run(
                [git, "-C", str(dest), "checkout", "--quiet", artifact.ref],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if checkout.returncode != 0:
                raise SourceError(
                    str(artifact), f"has no ref {artifact.ref!r}: {_last_line(checkout.stderr)}"
                )
        return dest


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def installed_candidates(installed: Sequence[Candidate]) -> dict[str, list[Candidate]]:
    out: dict[str, list[Candidate]] = {}
    for c in installed:
        out.setdefault(c.id, []).append(c)
    return out
