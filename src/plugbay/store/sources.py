"""Where bundles come from: install specs, and the sources that turn them into bundles.

An install spec (DESIGN §7) is one of:

- ``ns.name``, ``ns.name@1.2.0``, ``ns.name:1.2.0`` (Galaxy style), ``ns.name>=1.0,<2``
  (any range): a plugin by id, found among the bundles given in the same command, the
  installed versions, or an index source;
- a folder (built on the fly), a ``.tar.gz`` bundle, an ``http(s)://`` URL of a bundle,
  ``git+URL[@ref]`` (cloned at the ref, then built), or ``oci://HOST/REPO/ns.name[:VERSION]``
  (a bundle in an OCI registry, see :mod:`.oci`; the same repository prefix then offers
  its dependencies).

Sources share one small interface, :class:`Source`, so an index (a later addition) plugs
in beside the local ones: ``available(plugin_id)`` lists candidate versions from metadata
alone, and ``fetch(candidate)`` returns the checked bundle.
"""

from __future__ import annotations

import abc
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self

import msgspec

from ..errors import BundleError, ManifestError, SourceError, VersionError
from ..manifest import Manifest
from ..versions import parse_range, parse_version
from .bundle import Limits, ReadBundle, build_bundle, read_bundle, read_bundle_bytes
from .layout import write_cache_file

if TYPE_CHECKING:
    import subprocess

    from .oci import OciSource

__all__ = [
    "OFFLINE_HINT",
    "Artifact",
    "Artifacts",
    "Candidate",
    "Requested",
    "Source",
    "download_path",
    "parse_spec",
]

_ID = r"(?:[a-z][a-z0-9_]*\.)?[a-z][a-z0-9_]*"
_BY_ID = re.compile(
    rf"^(?P<id>{_ID})(?:(?P<sep>[@:])(?P<version>[^\s]+)|(?P<range>[<>=^~*!|\s].*))?$"
)


class Requested(msgspec.Struct, frozen=True, gc=False):
    """A plugin asked for by id, with an optional version range."""

    id: str
    range: str | None = None
    spec: str = ""

    def __str__(self) -> str:
        return self.spec or (f"{self.id} {self.range}" if self.range else self.id)


class Artifact(msgspec.Struct, frozen=True, gc=False):
    """A bundle asked for by where it is: folder, file, URL or git."""

    kind: str  # dir | file | url | git | oci
    location: str  # absolute path for dir and file; the URL (without git+ or @ref) otherwise
    ref: str | None = None
    spec: str = ""

    def __str__(self) -> str:
        return self.spec or self.origin

    @property
    def origin(self) -> str:
        """Where it came from, in a form that means the same from any folder (receipts)."""
        if self.kind == "git":
            return f"git+{self.location}" + (f"@{self.ref}" if self.ref else "")
        return self.location


class Candidate(msgspec.Struct, frozen=True, eq=False):
    """One version of one plugin that could be installed (or is installed)."""

    id: str
    version: str
    manifest: Manifest
    origin: str  # "installed", or the source's description
    source: Source | None = None
    installed: bool = False
    active: bool = False
    bundle: ReadBundle | None = None

    def __repr__(self) -> str:
        # ``source`` and ``bundle`` (the whole bundle file, read) are left out.
        shown = (
            f"{n}={getattr(self, n)!r}"
            for n in self.__struct_fields__
            if n not in ("source", "bundle")
        )
        return f"{type(self).__qualname__}({', '.join(shown)})"

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"


class Source(Protocol):
    """Something that offers bundles: the artifacts of a command, an index, a registry.

    A source may also offer, and the store then uses: ``prefetch(candidates)``, to
    download many bundles at once before the trust check (so ``fetch`` returns at once);
    ``ids()``, every plugin id it lists (for "closest names" when one is missing);
    ``warnings``, a list of things to tell the user that did not stop the install; and
    ``close()``, to release its connections (see :mod:`.index`).
    """

    def available(self, plugin_id: str) -> list[Candidate]:
        """Candidate versions of ``plugin_id`` (metadata only; cheap)."""
        ...

    def fetch(self, candidate: Candidate) -> ReadBundle:
        """The checked bundle of a candidate this source offered."""
        ...


class ClosingSource(abc.ABC):
    """A source that holds connections: ``close()`` them, or use it in a ``with`` block."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connections (what the source read stays usable)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_spec(spec: str) -> Requested | Artifact:
    """Classify one install spec; raises SourceError saying what forms are accepted."""
    text = spec.strip()
    if text.startswith("git+"):
        url, ref = _split_ref(text[4:])
        _check_git_url(url, spec)
        if ref is not None and ref.startswith("-"):
            raise SourceError(spec, f"{ref!r} is not a branch, tag or commit name")
        return Artifact("git", url, ref, spec)
    if text.startswith(("http://", "https://")):
        return Artifact("url", text, None, spec)
    if text.startswith("oci://"):
        from .oci import parse_reference

        return Artifact("oci", str(parse_reference(text)), None, spec)
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
        "bundle, an http(s):// URL, git+URL[@ref] or oci://HOST/REPO/ns.name[:VERSION]",
    )


_GIT_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")


def _check_git_url(url: str, spec: str) -> None:
    """Only the transports people mean; git's ``ext::`` and friends run commands."""
    if url.startswith(_GIT_SCHEMES) or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return
    raise SourceError(
        spec,
        "is not a git URL: use git+https://…, git+ssh://…, git+git://…, git+file:///… "
        "or git+user@host:path, with @ref to pick a branch, tag or commit",
    )


def _split_ref(url: str) -> tuple[str, str | None]:
    """``https://u@host/repo.git@v1`` → (``https://u@host/repo.git``, ``v1``).

    The ref is an ``@`` in the path part (after the host), so a user name in the host
    part (``git@host``) is not mistaken for one.
    """
    if "://" in url:
        _, _, rest = url.partition("://")
        path = rest.split("/", 1)[1] if "/" in rest else ""
    else:  # scp-like: user@host:path
        path = url.split(":", 1)[1] if ":" in url else url
    if "@" not in path:
        return url, None
    head, _, ref = url.rpartition("@")
    return head, ref or None


# ---------------------------------------------------------------- local sources


class Artifacts:
    """The bundles named on the command line (files, folders, URLs, git), read up front.

    Downloads, clones and builds happen in a temporary folder outside the home; a
    downloaded bundle is copied into the home's download cache only once it has been
    read and checked, and only with ``cache_downloads``.
    """

    def __init__(
        self,
        cache: Path,
        limits: Limits,
        *,
        offline: bool = False,
        cache_downloads: bool = True,
        timeout: float = 30.0,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self._progress = progress
        self._cache = cache
        self._limits = limits
        self._offline = offline
        self._cache_downloads = cache_downloads
        self._timeout = timeout
        self._by_id: dict[str, list[Candidate]] = {}
        # oci:// specs: their registry locations, which also offer the dependencies.
        self._registries: dict[str, OciSource] = {}
        self._work_dir: Path | None = None  # made when a folder is built or a clone made

    def close(self) -> None:
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
        for registry in self._registries.values():
            registry.close()

    def add(self, artifact: Artifact) -> Candidate:
        """Obtain and check the artifact's bundle; it becomes a candidate."""
        bundle = self._obtain(artifact)
        # An oci:// reference by range resolves to a tag: the bundle's path names it.
        origin = bundle.path if artifact.kind == "oci" else artifact.origin
        candidate = Candidate(
            bundle.id, bundle.version, bundle.manifest, origin, self, bundle=bundle
        )
        known = self._by_id.setdefault(bundle.id, [])
        if not any(c.version == bundle.version for c in known):
            known.append(candidate)
        return candidate

    def available(self, plugin_id: str) -> list[Candidate]:
        found = list(self._by_id.get(plugin_id, ()))
        for registry in self._registries.values():
            found += registry.available(plugin_id)
        return found

    def fetch(self, candidate: Candidate) -> ReadBundle:
        assert candidate.bundle is not None
        return candidate.bundle

    def _obtain(self, artifact: Artifact) -> ReadBundle:
        if artifact.kind == "file":
            return read_bundle(Path(artifact.location), self._limits)
        if artifact.kind == "dir":
            return self._build(Path(artifact.location), str(artifact))
        if artifact.kind == "url":
            return self._download(artifact)
        if artifact.kind == "git":
            return self._build(self._clone(artifact), str(artifact))
        if artifact.kind == "oci":
            return self._pull(artifact)
        raise SourceError(str(artifact), f"unknown source type {artifact.kind!r}")

    def _scratch(self) -> Path:
        """A new empty folder in this source's work folder (removed by :meth:`close`)."""
        import tempfile  # not needed to install bundles: most installs never import it

        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="plugbay-build-"))
        return Path(tempfile.mkdtemp(dir=self._work_dir))

    def _build(self, folder: Path, spec: str) -> ReadBundle:
        out = self._scratch()
        try:
            return read_bundle(build_bundle(folder, out), self._limits)
        except BundleError as exc:
            raise SourceError(spec, f"cannot be built: {exc.problem}") from None
        except ManifestError as exc:
            # Name the manifest by its place in the source: a clone's path means nothing.
            where = Path(exc.file).name + (f": {exc.field}" if exc.field else "")
            raise SourceError(spec, f"has an invalid manifest: {where}: {exc.problem}") from None

    def _pull(self, artifact: Artifact) -> ReadBundle:
        """An ``oci://`` reference's bundle; its registry location is kept as a source."""
        from .oci import OciSource, parse_reference

        reference = parse_reference(artifact.location)
        base = reference.location.url
        if base not in self._registries:
            self._registries[base] = OciSource(
                base,
                cache=self._cache,
                limits=self._limits,
                offline=self._offline,
                timeout=self._timeout,
                progress=self._progress,
            )
        return self._registries[base].pull(reference)

    def _download(self, artifact: Artifact) -> ReadBundle:
        url = artifact.location
        cached = download_path(self._cache, url)
        if self._offline:
            try:
                data = cached.read_bytes()
            except OSError:
                raise SourceError(
                    str(artifact), f"is not in the download cache, and {OFFLINE_HINT}"
                ) from None
            return read_bundle_bytes(data, str(artifact), self._limits)
        data = self._get(url, str(artifact))
        bundle = read_bundle_bytes(data, str(artifact), self._limits)
        if self._cache_downloads:
            write_cache_file(cached, data)  # kept for --offline
        return bundle

    def _get(self, url: str, spec: str) -> bytes:
        """The body of a 200 answer to GET ``url``, within the size limit."""
        preload_httpx()
        import httpx

        limit = self._limits.max_compressed_bytes
        try:
            with (
                httpx.Client(follow_redirects=True, timeout=self._timeout) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise SourceError(
                        spec,
                        f"the server answered {response.status_code} "
                        # The standard phrase: servers word theirs freely ("File not found").
                        f"{httpx.codes.get_reason_phrase(response.status_code)}".rstrip(),
                    )
                body = bytearray()
                total = int(response.headers.get("content-length") or 0)
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise SourceError(spec, f"is larger than {limit:,} bytes")
                    if self._progress is not None:
                        self._progress(f"downloading {spec}", len(body), total)
                return bytes(body)
        except httpx.TimeoutException:
            raise SourceError(
                spec, f"cannot be downloaded: no answer within {self._timeout:g} s"
            ) from None
        except httpx.ConnectError as exc:
            host = httpx.URL(url).host
            raise SourceError(
                spec, f"cannot be downloaded: cannot connect to {host}: {_os_reason(exc)}"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise SourceError(spec, f"cannot be downloaded: {_os_reason(exc)}") from None

    def _clone(self, artifact: Artifact) -> Path:
        """Clone the repository and check out the ref (default: the remote's HEAD)."""
        if self._offline and not artifact.location.startswith("file://"):
            raise SourceError(
                str(artifact),
                "is a remote repository, and --offline forbids cloning it: download it first "
                "with plugbay download (or clone it and use git+file:///PATH), or drop --offline",
            )
        git = shutil.which("git")
        if git is None:
            raise SourceError(str(artifact), "needs git, which is not installed (install git)")
        dest = self._scratch() / "src"
        clone = _git(git, "clone", "--quiet", "--no-checkout", "--", artifact.location, str(dest))
        if clone.returncode != 0:
            raise SourceError(str(artifact), f"git clone failed: {_git_reason(clone.stderr)}")
        names = [artifact.ref, f"origin/{artifact.ref}"] if artifact.ref else ["HEAD"]
        commit = None
        for name in names:
            found = _git(
                git, "-C", str(dest), "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"
            )
            if found.returncode == 0:
                commit = found.stdout.strip()
                break
        if commit is None:
            problem = (
                f"has no branch, tag or commit named {artifact.ref!r}"
                if artifact.ref
                else "is an empty repository (no commits)"
            )
            raise SourceError(str(artifact), problem)
        checkout = _git(git, "-C", str(dest), "checkout", "--quiet", "--detach", commit)
        if checkout.returncode != 0:
            raise SourceError(
                str(artifact), f"git checkout {commit[:12]} failed: {_git_reason(checkout.stderr)}"
            )
        return dest


#: What to do about something that needs the network under ``--offline``.
OFFLINE_HINT = (
    "--offline forbids fetching it: download it first with plugbay download, or drop --offline"
)


def download_path(cache: Path, url: str) -> Path:
    """Where the download cache (``<home>/cache/downloads``) keeps the bundle of ``url``:
    URL installs and index sources share it, so ``--offline`` finds either."""
    return cache / "downloads" / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".tar.gz")


def _git(git: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run git without ever waiting for a password: a missing credential is an error."""
    import subprocess

    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
    }
    return subprocess.run(
        [git, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False
    )


def _git_reason(stderr: str) -> str:
    """git's own reason: its first ``fatal:`` line (later lines are generic advice)."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith("fatal:"):
            return line.removeprefix("fatal:").strip()
    return lines[-1] if lines else "(no message)"


def _os_reason(exc: BaseException) -> str:
    """``[Errno 111] Connection refused`` → ``Connection refused``."""
    text = str(exc) or type(exc).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", text)


# ---------------------------------------------------------------- for remote sources
# (index.py and oci.py: the messages and caches of sources that fetch over HTTP)


def cached_if_intact(path: Path, sha256: str) -> bytes | None:
    """The bytes of the cache file ``path`` if their sha256 is ``sha256``; else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


def status_text(status: int) -> str:
    """``500`` → ``500 Internal Server Error``: the standard phrase (servers word theirs
    freely)."""
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def lower_first(text: str) -> str:
    """A library's sentence, continuing ours: ``Expected`` → ``expected`` (not ``JSON``)."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def user_agent() -> str:
    from .. import __version__

    return f"plugbay/{__version__}"


def preload_httpx() -> None:
    """Import httpx without its command-line client (call it before ``import httpx``).

    On its first import httpx also imports its own command-line client (``httpx._main``)
    whenever click and rich are installed, as they are beside plugbay: some 80 ms of rich
    and pygments that a download never uses. While httpx is first imported, that one
    module is marked absent (a ``None`` entry in ``sys.modules`` makes its import fail),
    so httpx takes its own fallback for a missing client; the mark is removed at once, so
    ``import httpx._main`` still works afterwards. Only ``httpx.main``, the client's entry
    point, is then the fallback that says the client's dependencies are missing.
    """
    import sys

    if "httpx" in sys.modules:
        return
    marked = "httpx._main" not in sys.modules
    if marked:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        if marked and "httpx._main" in sys.modules and sys.modules["httpx._main"] is None:
            del sys.modules["httpx._main"]
