"""OCI registries: plugbay bundles as OCI artifacts (docs/oci.md, docs/decisions/0010).

A bundle is pushed unchanged as the one layer of an OCI image manifest (an OCI 1.1
artifact), so its sha256 — the receipt's and the lock's — is the layer's digest, and a
signature (``MANIFEST.json.sig``, inside the bundle) travels with it:

- ``artifactType`` :data:`ARTIFACT_TYPE`;
- config, media type :data:`CONFIG_MEDIA_TYPE`: :class:`BundleConfig`, what a resolver needs
  without the bundle (the normalised manifest, dependencies, sha256, signer);
- one layer, media type :data:`LAYER_MEDIA_TYPE`: the bundle file;
- annotations ``dev.plugbay.*`` (id, version, sha256, signer, dependencies, requires,
  runtime) and ``org.opencontainers.image.version`` / ``.description`` for other tools.

Naming: ``oci://HOST[:PORT]/REPO`` and plugin ``ns.name`` give the repository
``REPO/ns.name``; the tag is the version, with ``+`` (build metadata, not allowed in tags)
written ``_`` as Helm does. :func:`parse_reference` reads the install forms
``oci://HOST/REPO/ns.name[:TAG | @VERSION | @sha256:DIGEST | RANGE]``.

:func:`push_bundle` pushes with the ``oras`` library. :class:`OciSource` is a
:class:`~.sources.Source`: it lists a repository's SemVer tags, reads each manifest and
config (not the bundles) to offer candidates, and downloads a chosen bundle, checking the
layer digest, size and artifact type. Manifests, configs and bundles are cached by digest
in ``<home>/cache/oci/``, with the last tag listing of each repository, so ``--offline``
installs what was seen online. Plain HTTP is used for loopback registries and those listed
in ``[oci] insecure-registries``; HTTPS otherwise. Credentials: ``PLUGBAY_OCI_USERNAME`` and
``PLUGBAY_OCI_PASSWORD``, else the docker config (``docker login``, ``oras login``).

``oras`` (and ``requests``, which it uses) is imported only when a registry is contacted.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin

import msgspec

from ..errors import BundleError, ManifestError, SourceError, VersionError
from ..versions import parse_range, parse_version, satisfies
from .bundle import Limits, ReadBundle, bundle_name, read_bundle, read_bundle_bytes
from .layout import write_cache_file
from .sources import (
    OFFLINE_HINT,
    Candidate,
    ClosingSource,
    cached_if_intact,
    lower_first,
    status_text,
    user_agent,
)

if TYPE_CHECKING:
    from ..manifest import Manifest

__all__ = [
    "ANNOTATION_PREFIX",
    "ARTIFACT_TYPE",
    "CONFIG_FORMAT",
    "CONFIG_MEDIA_TYPE",
    "LAYER_MEDIA_TYPE",
    "BundleConfig",
    "OciLocation",
    "OciReference",
    "OciSource",
    "Pushed",
    "parse_location",
    "parse_reference",
    "push_bundle",
    "tag_of",
    "version_of",
]

#: The manifest's ``artifactType``: a plugbay bundle.
ARTIFACT_TYPE = "application/vnd.plugbay.bundle.v1"
#: The config blob's media type: a :class:`BundleConfig` as JSON.
CONFIG_MEDIA_TYPE = "application/vnd.plugbay.bundle.config.v1+json"
#: The layer's media type: the bundle file (``<ns>-<name>-<version>.tar.gz``), unchanged.
LAYER_MEDIA_TYPE = "application/vnd.plugbay.bundle.layer.v1.tar+gzip"
#: Prefix of plugbay's manifest annotations.
ANNOTATION_PREFIX = "dev.plugbay."
#: The config format this plugbay writes and reads.
CONFIG_FORMAT = 1

Progress = Callable[[str, int, int], None]

_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
_ACCEPT = ", ".join((_OCI_MANIFEST, _OCI_INDEX, _DOCKER_MANIFEST, _DOCKER_LIST))
#: What other tools' config media types are, for messages.
_KNOWN_TYPES = {
    "application/vnd.oci.image.config.v1+json": "a container image",
    "application/vnd.docker.container.image.v1+json": "a container image",
    "application/vnd.cncf.helm.config.v1+json": "a Helm chart",
    "application/vnd.wasm.config.v0+json": "a WebAssembly module",
}
#: Manifests and configs are small; the OCI distribution spec lets registries refuse more.
_MAX_METADATA = 4 * 1024 * 1024

_ID = r"(?:[a-z][a-z0-9_]*\.)?[a-z][a-z0-9_]*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?"
# The OCI distribution spec's repository path component, and tag.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REFERENCE = re.compile(
    rf"^(?P<path>(?:[^/@:<>=^~*!|\s]+/)*)(?P<id>{_ID})"
    r"(?:@(?P<at>[^\s]+)|:(?P<tag>[^/\s]+)|(?P<range>[<>=^~*!|\s].*))?$"
)
_FORMS = (
    "use oci://HOST[:PORT]/REPO/ns.name with :VERSION (a tag), @VERSION, @sha256:DIGEST, "
    "a range (ns.name>=1.0,<2) or nothing (the highest version)"
)


# ---------------------------------------------------------------- names


class OciLocation(msgspec.Struct, frozen=True, gc=False):
    """A place in a registry that holds plugins: ``oci://HOST[:PORT]/REPO``.

    ``registry`` is ``HOST[:PORT]``; ``prefix`` the repository path above the plugins
    (may be empty). Plugin ``ns.name`` lives in the repository ``prefix/ns.name``.
    """

    registry: str
    prefix: str

    @property
    def url(self) -> str:
        return f"oci://{self.registry}/{self.prefix}".rstrip("/")

    def repository(self, plugin_id: str) -> str:
        return f"{self.prefix}/{plugin_id}" if self.prefix else plugin_id


class OciReference(msgspec.Struct, frozen=True):
    """One plugin in a registry, as an install spec names it: by tag, digest, version
    range, or nothing (the highest release)."""

    location: OciLocation
    plugin_id: str
    tag: str | None = None
    digest: str | None = None
    range: str | None = None

    @property
    def repository(self) -> str:
        return self.location.repository(self.plugin_id)

    def __str__(self) -> str:
        base = f"oci://{self.location.registry}/{self.repository}"
        if self.digest:
            return f"{base}@{self.digest}"
        if self.tag:
            return f"{base}:{self.tag}"
        return f"{base}{self.range}" if self.range else base


def tag_of(version: str) -> str:
    """The tag of a version: ``1.0.0+build.5`` → ``1.0.0_build.5`` (``+`` is not allowed in
    tags; ``_`` is not allowed in SemVer, so the mapping is one to one)."""
    return version.replace("+", "_")


def version_of(tag: str) -> str | None:
    """The version a tag names (:func:`tag_of` undone), or None for other tags (``latest``)."""
    text = tag.replace("_", "+")
    try:
        return text if str(parse_version(text)) == text else None
    except VersionError:
        return None


def parse_location(url: str) -> OciLocation:
    """``oci://HOST[:PORT]/REPO`` → :class:`OciLocation`; SourceError saying the form."""
    text = url.strip()
    if not text.startswith("oci://"):
        raise SourceError(url, "is not an OCI registry URL: use oci://HOST[:PORT]/REPO")
    host, _, prefix = text[len("oci://") :].partition("/")
    prefix = prefix.strip("/")
    _check_host(host, url)
    if prefix and not all(_COMPONENT.fullmatch(c) for c in prefix.split("/")):
        raise SourceError(
            url,
            f"{prefix!r} is not a repository path: lowercase letters, digits and . _ - "
            "between them, components separated by /",
        )
    return OciLocation(host.lower(), prefix)


def parse_reference(spec: str) -> OciReference:
    """An install spec ``oci://HOST[:PORT]/REPO/ns.name[…]`` → :class:`OciReference`.

    After the plugin id: ``:TAG`` (the version, written as :func:`tag_of` does, or any
    tag such as ``latest``), ``@VERSION``, ``@sha256:DIGEST`` (a manifest digest), a range
    (``>=1.0,<2``, ``^1.2``: any range of the manifest's syntax), or nothing (the highest
    release). Raises SourceError saying the accepted forms.
    """
    text = spec.strip()
    if not text.startswith("oci://"):
        raise SourceError(spec, f"is not an oci:// reference: {_FORMS}")
    host, _, path = text[len("oci://") :].partition("/")
    _check_host(host, spec)
    match = _REFERENCE.match(path)
    if not path or match is None:
        raise SourceError(spec, f"does not name a plugin: {_FORMS}")
    location = parse_location(f"oci://{host}/{match.group('path')}")
    plugin_id = match.group("id")
    at, tag, rng = match.group("at"), match.group("tag"), match.group("range")
    if not _valid_repository(location.repository(plugin_id)):
        raise SourceError(spec, f"{plugin_id} cannot be an OCI repository name")
    if at is not None and at.startswith("sha256:"):
        if not _DIGEST.fullmatch(at):
            raise SourceError(spec, f"{at!r} is not a digest: expected sha256: and 64 hex digits")
        return OciReference(location, plugin_id, digest=at)
    try:
        if at is not None:
            return OciReference(location, plugin_id, tag=tag_of(str(parse_version(at))))
        if rng is not None:
            parse_range(rng.strip())
            return OciReference(location, plugin_id, range=rng.strip())
    except VersionError as exc:
        raise SourceError(spec, str(exc)) from None
    if tag is not None:
        tag = tag_of(tag)
        if not _TAG.fullmatch(tag):
            raise SourceError(
                spec, f"{tag!r} is not a tag (letters, digits, . _ -, at most 128): {_FORMS}"
            )
    return OciReference(location, plugin_id, tag=tag)


def _check_host(host: str, spec: str) -> None:
    if not host or not re.fullmatch(_HOST, host):
        raise SourceError(
            spec, f"{host!r} is not a registry host: use oci://HOST[:PORT]/REPO (e.g. ghcr.io/acme)"
        )


def _valid_repository(name: str) -> bool:
    return len(name) < 256 and all(_COMPONENT.fullmatch(c) for c in name.split("/"))


def _plain_http(registry: str, insecure: Sequence[str]) -> bool:
    """Whether to talk plain HTTP to ``registry``: loopback addresses, and the registries
    listed as insecure (``HOST:PORT``, or ``HOST`` for any port)."""
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    host = host.strip("[]").lower()
    if registry in insecure or host in insecure or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _insecure_registries(home: Path) -> tuple[str, ...]:
    from ..config import load_host_config

    return tuple(r.lower() for r in load_host_config(home / "config.toml").oci.insecure_registries)


# ---------------------------------------------------------------- the config blob


class BundleConfig(msgspec.Struct, frozen=True):
    """The config blob of a plugbay artifact (:data:`CONFIG_MEDIA_TYPE`): what a resolver
    needs without downloading the bundle.

    ``manifest`` is the normalised manifest, as the bundle's MANIFEST.json holds it;
    ``dependencies``, ``requires``, ``runtime`` and ``summary`` repeat it for other readers
    and must agree with it. ``sha256`` and ``size`` are the bundle's (the layer's digest
    and size); ``signer`` the id of the key whose signature the bundle carries (None:
    unsigned; the signature itself is checked at install). New optional fields may appear
    within format 1.
    """

    format: int
    id: str
    version: str
    sha256: str
    size: int
    signer: str | None
    summary: str
    requires: str
    runtime: str
    dependencies: dict[str, str]
    manifest: dict[str, Any]


def _config_of(bundle: ReadBundle, size: int) -> BundleConfig:
    from .index import published_facts

    return BundleConfig(format=CONFIG_FORMAT, size=size, **published_facts(bundle))


def _annotations(config: BundleConfig) -> dict[str, str]:
    out = {
        f"{ANNOTATION_PREFIX}id": config.id,
        f"{ANNOTATION_PREFIX}version": config.version,
        f"{ANNOTATION_PREFIX}sha256": config.sha256,
        f"{ANNOTATION_PREFIX}requires": config.requires,
        f"{ANNOTATION_PREFIX}runtime": config.runtime,
        f"{ANNOTATION_PREFIX}dependencies": json.dumps(config.dependencies, sort_keys=True),
        "org.opencontainers.image.version": config.version,
    }
    if config.signer:
        out[f"{ANNOTATION_PREFIX}signer"] = config.signer
    if config.summary:
        out["org.opencontainers.image.description"] = config.summary
    return out


# ---------------------------------------------------------------- errors inside


class _Unreachable(Exception):
    """No usable answer from the registry; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Denied(Exception):
    """401 or 403 after offering what credentials there are. ``reason``: ``login`` (none
    were given, and some are needed), ``rejected`` (those given were refused) or ``scope``
    (authenticated, or an anonymous token, but not allowed here: public registries answer
    so for a repository that does not exist)."""

    def __init__(self, status: int, method: str, credentials: str | None, reason: str) -> None:
        super().__init__(status)
        self.status = status
        self.method = method
        self.credentials = credentials
        self.reason = reason


class _Invalid(Exception):
    """A plugbay artifact at odds with itself; ``problem`` says how."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = (
            f"is not a valid plugbay artifact: {problem} (push it again with plugbay push)"
        )


class _Foreign(Exception):
    """A manifest that is not a plugbay artifact; ``kind`` says what it is."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class _Manifest(msgspec.Struct, frozen=True, gc=False):
    body: bytes
    digest: str


# ---------------------------------------------------------------- the registry client


class _Client:
    """One registry, over HTTP(S): requests with timeouts, bounded retries, credentials and
    token auth; pushes through oras's ``Registry`` (whose own request method, with its
    minutes-long retry sleeps and no timeout, is replaced by :meth:`request`).
    """

    attempts = 3
    backoff = (0.2, 0.6)

    def __init__(self, registry: str, *, plain_http: bool, timeout: float) -> None:
        import requests

        self.registry = registry
        self.scheme = "http" if plain_http else "https"
        self.timeout = timeout
        self.last_error = ""
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent()
        # A client nobody closed closes its connections when it is collected.
        weakref.finalize(self, self._session.close)
        self._authorization: dict[str, str] = {}
        self._token_refused = False
        self._basic, self.credentials = _credentials(registry)

    def close(self) -> None:
        self._session.close()

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.registry}/v2/{path}"

    # ------------------------------------------------------------ HTTP

    def request(
        self,
        method: str,
        url: str,
        *,
        data: Any = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        stream: bool = False,
    ) -> Any:
        """One request, its answer (a ``requests.Response``), authenticated as the registry
        asks; connection errors and 5xx are retried for GET and HEAD. Raises _Unreachable,
        or _Denied for a 401 or 403 that credentials did not (or could not) answer."""
        import requests

        attempts = self.attempts if method in ("GET", "HEAD") else 1
        reason = ""
        for attempt in range(1, attempts + 1):
            try:
                response = self._send(
                    method, url, data=data, headers=dict(headers or {}), json=json, stream=stream
                )
            except requests.exceptions.SSLError as exc:
                raise _Unreachable(
                    f"the TLS handshake with {self.registry} failed ({_reason(exc)}); if the "
                    "registry speaks plain HTTP, list it in [oci] insecure-registries in "
                    "config.toml"
                ) from None
            except requests.exceptions.Timeout:
                raise _Unreachable(
                    f"{self.registry} did not answer within {self.timeout:g} s"
                ) from None
            except requests.exceptions.ConnectionError as exc:
                reason = f"cannot connect to {self.registry}: {_reason(exc)}"
            except requests.exceptions.RequestException as exc:
                raise _Unreachable(f"{self.registry}: {_reason(exc)}") from None
            else:
                status = response.status_code
                if status in (401, 403):
                    response.close()
                    raise _Denied(status, method, self.credentials, self._denial(response))
                if status >= 400:
                    # Error bodies are short JSON; read at most 64 KiB of one.
                    head = (
                        response.raw.read(65536, decode_content=True)
                        if stream
                        else response.content
                    )
                    self.last_error = _error_text(head)
                if status < 500 or attempt == attempts:
                    return response
                reason = f"{self.registry} answered {status_text(status)}"
                response.close()
            if attempt < attempts:
                time.sleep(self.backoff[min(attempt, len(self.backoff)) - 1])
        raise _Unreachable(reason + (f" ({attempts} attempts)" if attempts > 1 else ""))

    def _send(
        self,
        method: str,
        url: str,
        *,
        data: Any,
        headers: dict[str, str],
        json: Any,
        stream: bool,
    ) -> Any:
        def send() -> Any:
            return self._session.request(
                method,
                url,
                data=data,
                json=json,
                headers={**headers, **self._authorization},
                stream=stream,
                timeout=self.timeout,
            )

        response = send()
        if response.status_code == 401 and self._authenticate(response):
            response.close()
            response = send()
        return response

    def _denial(self, response: Any) -> str:
        """Why a 401 or 403 stands (see :class:`_Denied`)."""
        scheme = response.headers.get("WWW-Authenticate", "").partition(" ")[0].lower()
        if response.status_code == 403 or (
            scheme == "bearer" and self._authorization and not self._token_refused
        ):
            return "scope"
        return "rejected" if self._basic else "login"

    def _authenticate(self, response: Any) -> bool:
        """Answer a 401's challenge (Basic, or Bearer through the token realm); whether to
        send the request again."""
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            wanted = {"Authorization": f"Basic {self._basic}"} if self._basic else {}
            if not wanted or wanted == self._authorization:
                return False
            self._authorization = wanted
            return True
        if scheme.lower() != "bearer":
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            return False
        import requests

        query = {k: fields[k] for k in ("service", "scope") if k in fields}
        token_headers = {"Authorization": f"Basic {self._basic}"} if self._basic else {}
        self._token_refused = False
        try:
            answer = self._session.get(
                realm + ("?" + urlencode(query) if query else ""),
                headers=token_headers,
                timeout=self.timeout,
            )
        except requests.exceptions.RequestException:
            return False  # no token: the 401 stands, and says so
        if answer.status_code != 200:
            self._token_refused = True
            return False
        try:
            body = answer.json()
        except ValueError:
            return False
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        wanted = {"Authorization": f"Bearer {token}"} if isinstance(token, str) else {}
        if not wanted or wanted == self._authorization:
            return False
        self._authorization = wanted
        return True

    def _read(
        self, response: Any, cap: int, on_chunk: Callable[[int], None] | None = None
    ) -> bytes:
        """The body (a Content-Encoding undone: digests are of the content), at most
        ``cap + 1`` bytes."""
        body = bytearray()
        with response:
            for chunk in response.raw.stream(65536, decode_content=True):
                body += chunk
                if on_chunk is not None:
                    on_chunk(len(chunk))
                if len(body) > cap:
                    break
        return bytes(body[: cap + 1])

    # ------------------------------------------------------------ distribution API

    def tags(self, repository: str) -> list[str] | None:
        """Every tag of ``repository`` (following pages), or None if there is no such
        repository."""
        url = self.url(f"{repository}/tags/list?n=1000")
        found: list[str] = []
        for _ in range(100):  # at most 100,000 tags: a registry that pages forever stops here
            response = self.request("GET", url, stream=True)
            if not self._found(response, "to the tag list"):
                return None
            link = response.links.get("next", {}).get("url")
            try:
                page = msgspec.json.decode(self._read(response, _MAX_METADATA))
            except msgspec.DecodeError:
                raise _Unreachable(f"{self.registry} sent a tag list that is not JSON") from None
            tags = page.get("tags") if isinstance(page, dict) else None
            found += [t for t in tags or () if isinstance(t, str)]
            if not link:
                break
            url = urljoin(url, link)
        return found

    def manifest(self, repository: str, reference: str) -> _Manifest | None:
        """The manifest ``reference`` (a tag or digest) names, checked against its digest;
        None if the registry has none there."""
        response = self.request(
            "GET",
            self.url(f"{repository}/manifests/{reference}"),
            headers={"Accept": _ACCEPT},
            stream=True,
        )
        if not self._found(response, f"for the manifest {repository}:{reference}"):
            return None
        said = response.headers.get("Docker-Content-Digest")
        body = self._read(response, _MAX_METADATA)
        if len(body) > _MAX_METADATA:
            raise _Foreign(f"a manifest over {_MAX_METADATA:,} bytes")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        expected = reference if reference.startswith("sha256:") else said
        if expected and expected != digest:
            at = "@" if reference.startswith("sha256:") else ":"
            raise BundleError(
                f"oci://{self.registry}/{repository}{at}{reference}",
                f"the registry sent a manifest whose digest is {digest}, not {expected}: it "
                "was altered in the registry or on the way, and is refused",
            )
        return _Manifest(body, digest)

    def blob(
        self,
        repository: str,
        digest: str,
        size: int,
        on_chunk: Callable[[int], None] | None = None,
    ) -> bytes:
        """The blob ``digest``, at most ``size + 1`` bytes (the caller checks both)."""
        response = self.request("GET", self.url(f"{repository}/blobs/{digest}"), stream=True)
        self._found(response, f"for the blob {digest}", missing_ok=False)
        return self._read(response, size, on_chunk)

    def _found(self, response: Any, what: str, *, missing_ok: bool = True) -> bool:
        """True for a 200; False for a 404 (``missing_ok``); any other answer is
        _Unreachable, saying what was asked (``what``). The response is closed unless 200."""
        if response.status_code == 200:
            return True
        response.close()
        if response.status_code == 404 and missing_ok:
            return False
        raise _Unreachable(
            f"{self.registry} answered {status_text(response.status_code)} {what}"
            + (f" ({self.last_error})" if self.last_error else "")
        )

    def catalog(self) -> list[str]:
        """The registry's repositories (``/v2/_catalog``), or [] where it does not list them."""
        url = self.url("_catalog?n=1000")
        found: list[str] = []
        for _ in range(20):
            try:
                response = self.request("GET", url, stream=True)
            except (_Unreachable, _Denied):
                return found
            if response.status_code != 200:
                response.close()
                return found
            link = response.links.get("next", {}).get("url")
            try:
                page = msgspec.json.decode(self._read(response, _MAX_METADATA))
            except msgspec.DecodeError:
                return found
            names = page.get("repositories") if isinstance(page, dict) else None
            found += [n for n in names or () if isinstance(n, str)]
            if not link:
                break
            url = urljoin(url, link)
        return found

    def push(
        self,
        repository: str,
        tag: str,
        layer: Path,
        config: Path,
        annotations: dict[str, str],
    ) -> str:
        """Push the artifact with oras; the digest of the manifest pushed."""
        registry = _oras_registry()(hostname=self.registry, insecure=self.scheme == "http")
        registry.client = self
        import oras.container

        target = oras.container.Container("plugbay", registry=self.registry)
        # Set, not parsed: a repository whose first component holds a dot would read as a host.
        target.namespace, _, target.repository = repository.rpartition("/")
        target.namespace = target.namespace or None
        target.tag, target.digest = tag, None
        try:
            response = registry.push(
                target=target,
                files=[f"{layer}:{LAYER_MEDIA_TYPE}"],
                manifest_config=f"{config}:{CONFIG_MEDIA_TYPE}",
                manifest_annotations=annotations,
                disable_path_validation=True,
                quiet=True,
            )
        except ValueError as exc:
            # oras raises ValueError("Issue with <url>: <reason>") for a refused request.
            raise _Unreachable(
                f"{self.registry} refused the upload: {self.last_error or _reason(exc)}"
            ) from None
        digest = response.headers.get("Docker-Content-Digest")
        return str(digest) if digest else ""


@cache
def _oras_registry() -> type[Any]:
    """oras's Registry, with requests made by :class:`_Client` and ``artifactType`` set."""
    import logging

    import oras.provider

    # oras logs through its own logger; plugbay says what matters in its errors.
    logging.getLogger("oras.logger").addHandler(logging.NullHandler())

    class Registry(oras.provider.Registry):  # type: ignore[misc]  # oras ships no types
        client: _Client

        def do_request(  # noqa: PLR0917 - oras calls it with these positional arguments
            self,
            url: str,
            method: str = "GET",
            data: Any = None,
            headers: dict[str, str] | None = None,
            json: Any = None,
            stream: bool = False,
        ) -> Any:
            return self.client.request(
                method, url, data=data, headers=headers, json=json, stream=stream
            )

        def upload_manifest(self, manifest: dict[str, Any], container: Any) -> Any:
            # OCI 1.1 artifacts name their type; oras-py's push does not set the field.
            return super().upload_manifest({**manifest, "artifactType": ARTIFACT_TYPE}, container)

    return Registry


def _credentials(registry: str) -> tuple[str | None, str | None]:
    """Basic credentials (base64 of ``user:password``) for ``registry``, and where they come
    from: ``PLUGBAY_OCI_USERNAME``/``PLUGBAY_OCI_PASSWORD``, else the docker config
    (``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``, credential helpers too),
    read by oras."""
    user = os.environ.get("PLUGBAY_OCI_USERNAME")
    password = os.environ.get("PLUGBAY_OCI_PASSWORD")
    if user or password:
        if not (user and password):
            missing = "PLUGBAY_OCI_PASSWORD" if user else "PLUGBAY_OCI_USERNAME"
            raise SourceError(
                f"oci://{registry}",
                f"{missing} is not set: set both PLUGBAY_OCI_USERNAME and PLUGBAY_OCI_PASSWORD, "
                "or neither (to use the docker config)",
            )
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return token, "PLUGBAY_OCI_USERNAME and PLUGBAY_OCI_PASSWORD"
    folder = os.environ.get("DOCKER_CONFIG")
    config = Path(folder) / "config.json" if folder else Path.home() / ".docker" / "config.json"
    if not config.is_file():
        return None, None
    import oras.auth
    import oras.container

    _oras_registry()  # quiets oras's logger
    auth = oras.auth.get_auth_backend("token")
    try:
        auth.load_configs(oras.container.Container("plugbay", registry=registry), [str(config)])
    except (OSError, ValueError):
        return None, None
    found = getattr(auth, "_basic_auth", None)  # what oras found for this registry, if any
    return (found, str(config)) if isinstance(found, str) and found else (None, None)


# ---------------------------------------------------------------- the source


class _Entry(msgspec.Struct, frozen=True):
    """One plugbay artifact: where it is, its digests, and its config."""

    reference: OciReference  # with the tag (or digest) it was found by
    manifest_digest: str
    layer_digest: str
    layer_size: int
    config: BundleConfig
    manifest: Manifest


class OciSource(ClosingSource):
    """Plugins in an OCI registry under ``oci://HOST[:PORT]/REPO``: a :class:`~.sources.Source`.

    ``available`` lists the SemVer tags of ``REPO/<id>`` and reads each manifest and config
    blob (not the bundles); ``fetch`` downloads a bundle and checks its digest, size and
    manifest; :meth:`pull` gets the bundle an ``oci://`` install spec names. Refuses, with
    a clear error, a manifest of another artifact type. ``cache`` is the home's cache folder
    (``<home>/cache``): manifests, configs and bundles are kept by digest in ``cache/oci``,
    with each repository's last tag listing, for ``offline`` use and for a registry that
    cannot be reached (a warning then). Plain HTTP for loopback registries and ``insecure``
    ones (default: ``[oci] insecure-registries`` of the home's config.toml).
    """

    def __init__(
        self,
        url: str,
        *,
        cache: Path,
        limits: Limits,
        offline: bool = False,
        timeout: float = 30.0,
        progress: Progress | None = None,
        name: str | None = None,
        insecure: Sequence[str] | None = None,
    ) -> None:
        self.location = parse_location(url)
        self.url = self.location.url
        self.label = f"{name} ({self.url})" if name else self.url
        self.warnings: list[str] = []
        self._cache = cache / "oci"
        self._limits = limits
        self._offline = offline
        self._timeout = timeout
        self._progress = progress
        self._insecure = (
            tuple(insecure) if insecure is not None else _insecure_registries(cache.parent)
        )
        self._client: _Client | None = None
        self._entries: dict[str, list[_Entry]] = {}
        self._candidates: dict[str, list[Candidate]] = {}
        self._by_key: dict[str, _Entry] = {}
        self._bundles: dict[str, ReadBundle] = {}
        self._catalog: list[str] | None = None

    def __repr__(self) -> str:
        return f"OciSource({self.url!r})"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------ the Source interface

    def ids(self) -> list[str]:
        """Plugin ids under the location (the registry's catalog; [] where it has none)."""
        if self._catalog is None:
            self._catalog = []
            if not self._offline:
                with self._errors(self.url):
                    names = self._http().catalog()
                head = f"{self.location.prefix}/" if self.location.prefix else ""
                self._catalog = sorted(
                    n[len(head) :]
                    for n in names
                    if n.startswith(head) and re.fullmatch(_ID, n[len(head) :])
                )
        return list(self._catalog)

    def available(self, plugin_id: str) -> list[Candidate]:
        """The versions of ``plugin_id`` tagged in ``REPO/<id>``, newest first (metadata
        only). Raises SourceError when the registry refuses or sends what is not plugbay's."""
        found = self._candidates.get(plugin_id)
        if found is None:
            found = [self._candidate(e) for e in self._list(plugin_id)]
            self._candidates[plugin_id] = found
        return list(found)

    def fetch(self, candidate: Candidate) -> ReadBundle:
        """The checked bundle of a candidate this source offered."""
        entry = self._by_key.get(candidate.key)
        if entry is None or candidate.source is not self:
            raise SourceError(
                self.label,
                f"does not offer {candidate.id} {candidate.version} (from {candidate.origin})",
            )
        bundle = self._bundles.get(candidate.key)
        if bundle is None:
            bundle = self._bundles[candidate.key] = self._download(entry)
        return bundle

    def sha256_of(self, candidate: Candidate) -> str:
        """The sha256 of ``candidate``'s bundle (its layer digest), without downloading it."""
        entry = self._by_key.get(candidate.key)
        if entry is None:
            raise SourceError(self.label, f"does not offer {candidate.id} {candidate.version}")
        return entry.layer_digest.removeprefix("sha256:")

    def pull(self, reference: OciReference) -> ReadBundle:
        """The checked bundle ``reference`` names (a tag, a digest, a range, or the highest
        release). Its ``path`` is the exact reference (with the tag) it came from."""
        shown = str(reference)
        if reference.tag is None and reference.digest is None:
            entries = self._list(reference.plugin_id, required=True, shown=shown)
            rng = reference.range or "*"
            chosen = next((e for e in entries if satisfies(e.config.version, rng)), None)
            if chosen is None:
                raise SourceError(shown, self._no_version(reference, entries))
            return self._download(chosen)
        ref = reference.digest or reference.tag
        assert ref is not None
        manifest = self._manifest(reference, ref, shown)
        assert manifest is not None  # not missing_ok: a missing one raised
        try:
            entry = self._entry(reference, manifest, shown)
        except _Foreign as exc:
            raise SourceError(shown, _foreign_message(exc.kind)) from None
        except _Invalid as exc:
            raise SourceError(shown, exc.problem) from None
        return self._download(entry)

    # ------------------------------------------------------------ listing

    def _list(self, plugin_id: str, *, required: bool = False, shown: str = "") -> list[_Entry]:
        """The plugbay artifacts of ``plugin_id``'s repository, newest version first.

        Tags that are not versions are left out. Tags holding other artifact types, or
        artifacts at odds with themselves, are left out with a warning; a repository
        holding only those is refused. A missing repository has no versions (``required``,
        for an install spec: it is an error naming the closest repositories).
        """
        if plugin_id in self._entries:
            return self._entries[plugin_id]
        repository = self.location.repository(plugin_id)
        shown = shown or f"oci://{self.location.registry}/{repository}"
        if not _valid_repository(repository):
            return []
        tags = self._tags(plugin_id, repository, shown, required=required)
        entries: list[_Entry] = []
        skipped: dict[str, str] = {}
        listing: dict[str, str] = {}
        for tag in tags:
            if version_of(tag) is None:
                continue
            reference = OciReference(self.location, plugin_id, tag=tag)
            manifest = self._manifest(reference, tag, str(reference), missing_ok=True)
            if manifest is None:
                continue
            try:
                entries.append(self._entry(reference, manifest, str(reference)))
            except (_Foreign, _Invalid) as exc:
                problem = _foreign_message(exc.kind) if isinstance(exc, _Foreign) else exc.problem
                skipped[tag] = problem
                continue
            listing[tag] = manifest.digest
        if skipped:
            why = "; ".join(f"{tag} {problem}" for tag, problem in sorted(skipped.items()))
            if not entries:
                raise SourceError(shown, f"holds no usable plugbay bundle: {why}")
            self.warnings.append(f"{shown}: left out tag(s): {why}")
        if not self._offline and tags:
            self._store_listing(repository, listing)
        entries.sort(key=lambda e: parse_version(e.config.version), reverse=True)
        self._entries[plugin_id] = entries
        return entries

    def _tags(self, plugin_id: str, repository: str, shown: str, *, required: bool) -> list[str]:
        """The repository's tags: from the registry, or the cached listing offline or when
        the registry cannot be reached (with a warning). A missing repository has none;
        ``required`` (an install spec): it is an error naming the closest repositories."""
        if self._offline:
            cached = self._cached_listing(repository)
            if cached is None and required:
                raise SourceError(
                    shown, f"was never listed from the registry here, and {OFFLINE_HINT}"
                )
            return list(cached or ())
        try:
            tags = self._http().tags(repository)
        except _Denied as exc:
            if exc.reason == "scope" and not required:
                return []  # what public registries answer for a repository they do not have
            raise SourceError(shown, _denied_message(exc, self.location.registry)) from None
        except _Unreachable as exc:
            cached = self._cached_listing(repository)
            if cached is None:
                raise SourceError(
                    shown,
                    f"cannot be listed: {exc.reason}; no cached listing of it to use instead "
                    "(try again when the registry answers)",
                ) from None
            self.warnings.append(
                f"{shown} cannot be listed ({exc.reason}): using the tags listed on "
                f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(cached.stored))}"
            )
            return list(cached)
        if tags is None:
            if required:
                raise SourceError(shown, self._no_repository(plugin_id))
            return []
        return tags

    def _no_repository(self, plugin_id: str) -> str:
        from difflib import get_close_matches

        close = get_close_matches(plugin_id, self.ids(), n=3, cutoff=0.6)
        hint = f"; closest names: {', '.join(close)}" if close else ""
        where = self.location.url
        return (
            f"no such repository in the registry (nothing was pushed for {plugin_id} under "
            f"{where}){hint}"
        )

    def _no_version(self, reference: OciReference, entries: Sequence[_Entry]) -> str:
        versions = [e.config.version for e in entries]
        if not versions:
            return "has no version tags (push one with plugbay push)"
        shown = ", ".join(versions[:10]) + (", …" if len(versions) > 10 else "")
        if reference.range:
            return f"has no version in {reference.range} (it has {shown})"
        return (
            f"has only pre-releases ({shown}): name one, e.g. "
            f"oci://{self.location.registry}/{reference.repository}:{tag_of(versions[0])}"
        )

    def _manifest(
        self, reference: OciReference, ref: str, shown: str, *, missing_ok: bool = False
    ) -> _Manifest | None:
        """The manifest a tag or digest names: from the registry, or offline from the cache."""
        if self._offline:
            return self._cached_manifest(reference.repository, ref, shown, missing_ok=missing_ok)
        with self._errors(shown):
            manifest = self._http().manifest(reference.repository, ref)
        if manifest is None:
            if missing_ok:
                return None
            with self._errors(shown):
                tags = self._http().tags(reference.repository)
            if tags is None:
                raise SourceError(shown, self._no_repository(reference.plugin_id))
            versions = sorted(
                (v for t in tags if (v := version_of(t))), key=parse_version, reverse=True
            )
            listed = ", ".join(versions[:10]) + (", …" if len(versions) > 10 else "")
            what = "manifest" if ref.startswith("sha256:") else "tag"
            raise SourceError(
                shown,
                f"the registry has no {what} {ref} in {reference.repository}"
                + (f" (its versions: {listed})" if listed else " (it has no version tags)"),
            )
        write_cache_file(self._blob_path(manifest.digest), manifest.body)
        return manifest

    def _entry(self, reference: OciReference, manifest: _Manifest, shown: str) -> _Entry:
        """Check a manifest is a plugbay artifact of the plugin and version it is tagged as,
        and read its config (the bundle's normalised manifest). Raises _Foreign for another
        artifact type, _Invalid for an artifact at odds with itself."""
        try:
            doc = json.loads(manifest.body)
        except ValueError:
            raise _Foreign("a manifest that is not JSON") from None
        if not isinstance(doc, dict):
            raise _Foreign("a manifest that is not a JSON object")
        media = doc.get("mediaType")
        if media in (_OCI_INDEX, _DOCKER_LIST) or "manifests" in doc:
            raise _Foreign("an image index (a multi-platform image)")
        raw_config = doc.get("config")
        config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
        artifact = doc.get("artifactType")
        config_type = config.get("mediaType")
        if config_type != CONFIG_MEDIA_TYPE or artifact not in (None, ARTIFACT_TYPE):
            kind = artifact or config_type
            raise _Foreign(
                _KNOWN_TYPES.get(str(config_type), f"an artifact of type {kind}")
                if kind
                else "a manifest without a type"
            )
        layers = doc.get("layers")
        if not (
            isinstance(layers, list)
            and len(layers) == 1
            and isinstance(layers[0], dict)
            and layers[0].get("mediaType") == LAYER_MEDIA_TYPE
        ):
            raise _Invalid(f"must have exactly one layer of type {LAYER_MEDIA_TYPE}")
        layer_digest, layer_size = _descriptor(layers[0], "layers[0]")
        config_digest, config_size = _descriptor(config, "config")
        parsed = _decode_config(self._config_blob(reference, config_digest, config_size, shown))
        problems = []
        if parsed.id != reference.plugin_id:
            problems.append(f"it holds {parsed.id}, in the repository of {reference.plugin_id}")
        tagged = version_of(reference.tag) if reference.tag else None
        if tagged is not None and tagged != parsed.version:
            problems.append(f"it holds version {parsed.version}, tagged {reference.tag}")
        if (f"sha256:{parsed.sha256}", parsed.size) != (layer_digest, layer_size):
            problems.append(
                f"its config names the bundle sha256:{parsed.sha256[:16]}… ({parsed.size:,} "
                f"bytes), its layer is {layer_digest[:23]}… ({layer_size:,} bytes)"
            )
        if problems:
            raise _Invalid(f"is not a consistent plugbay artifact ({'; '.join(problems)})")
        from ..manifest import manifest_from_mapping

        try:
            plugin_manifest = manifest_from_mapping(parsed.manifest, "config: manifest")
        except ManifestError as exc:
            raise _Invalid(str(exc)) from None
        from .index import disagreement

        differs = disagreement(plugin_manifest, parsed)
        if differs is not None:
            raise _Invalid(f"its config's {differs}")
        return _Entry(reference, manifest.digest, layer_digest, layer_size, parsed, plugin_manifest)

    def _config_blob(self, reference: OciReference, digest: str, size: int, shown: str) -> bytes:
        if size > _MAX_METADATA:
            raise SourceError(shown, f"has a config of {size:,} bytes, over {_MAX_METADATA:,}")
        kept = cached_if_intact(self._blob_path(digest), digest.removeprefix("sha256:"))
        if kept is not None:
            return kept
        if self._offline:
            raise SourceError(shown, f"its config is not in the cache, and {OFFLINE_HINT}")
        with self._errors(shown):
            body = self._http().blob(reference.repository, digest, size)
        _check_digest(body, digest, size, shown, "config")
        write_cache_file(self._blob_path(digest), body)
        return body

    def _candidate(self, entry: _Entry) -> Candidate:
        config = entry.config
        candidate = Candidate(config.id, config.version, entry.manifest, str(entry.reference), self)
        self._by_key[candidate.key] = entry
        return candidate

    # ------------------------------------------------------------ bundles

    def _download(self, entry: _Entry) -> ReadBundle:
        """The bundle of ``entry``: from the cache when it holds these bytes, else from the
        registry; its digest and size checked, then read whole with the store's limits."""
        shown = str(entry.reference)
        digest, size = entry.layer_digest, entry.layer_size
        if size > self._limits.max_compressed_bytes:
            raise BundleError(
                shown, f"is {size:,} bytes, over the limit of {self._limits.max_compressed_bytes:,}"
            )
        data = cached_if_intact(self._blob_path(digest), digest.removeprefix("sha256:"))
        if data is None:
            if self._offline:
                raise SourceError(shown, f"is not in the download cache, and {OFFLINE_HINT}")
            what = f"downloading {shown}"
            done = 0

            def step(n: int) -> None:
                nonlocal done
                done += n
                if self._progress is not None:
                    self._progress(what, min(done, size), size)

            with self._errors(shown):
                data = self._http().blob(entry.reference.repository, digest, size, step)
            _check_digest(data, digest, size, shown, "bundle")
            write_cache_file(self._blob_path(digest), data)
        bundle = read_bundle_bytes(data, shown, self._limits)
        config = entry.config
        if (bundle.id, bundle.version) != (config.id, config.version) or (
            bundle.manifest_file.manifest != config.manifest
        ):
            raise BundleError(
                shown,
                f"is {bundle.id} {bundle.version} with another manifest than its config "
                f"describes for {config.id} {config.version}; it is refused (push it again "
                "with plugbay push)",
            )
        return bundle

    # ------------------------------------------------------------ plumbing

    def _http(self) -> _Client:
        if self._client is None:
            registry = self.location.registry
            self._client = _Client(
                registry,
                plain_http=_plain_http(registry, self._insecure),
                timeout=self._timeout,
            )
        return self._client

    @contextmanager
    def _errors(self, shown: str, *, reachable_only: bool = False) -> Iterator[None]:
        """Registry failures as one SourceError naming ``shown``; with ``reachable_only``,
        _Unreachable is let through (the caller falls back to its cache)."""
        try:
            yield
        except _Unreachable as exc:
            if reachable_only:
                raise
            raise SourceError(shown, f"cannot be reached: {exc.reason}") from None
        except _Denied as exc:
            raise SourceError(shown, _denied_message(exc, self.location.registry)) from None
        except _Foreign as exc:
            raise SourceError(shown, _foreign_message(exc.kind)) from None

    def _blob_path(self, digest: str) -> Path:
        return self._cache / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def _listing_path(self, repository: str) -> Path:
        key = hashlib.sha256(f"{self.location.registry}/{repository}".encode()).hexdigest()[:32]
        return self._cache / "tags" / f"{key}.json"

    def _store_listing(self, repository: str, tags: dict[str, str]) -> None:
        doc = {"registry": self.location.registry, "repository": repository, "tags": tags}
        write_cache_file(
            self._listing_path(repository), json.dumps(doc, sort_keys=True).encode() + b"\n"
        )

    def _cached_listing(self, repository: str) -> _Listing | None:
        path = self._listing_path(repository)
        try:
            doc = json.loads(path.read_bytes())
            stored = path.stat().st_mtime
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("repository") != repository:
            return None
        tags = doc.get("tags")
        if not isinstance(tags, dict):
            return None
        return _Listing({t: d for t, d in tags.items() if isinstance(d, str)}, stored)

    def _cached_manifest(
        self, repository: str, ref: str, shown: str, *, missing_ok: bool
    ) -> _Manifest | None:
        digest: str | None = ref
        if not ref.startswith("sha256:"):
            listing = self._cached_listing(repository)
            digest = listing.get(ref) if listing is not None else None
        body = (
            cached_if_intact(self._blob_path(digest), digest.removeprefix("sha256:"))
            if digest
            else None
        )
        if body is None or digest is None:
            if missing_ok:
                return None
            raise SourceError(shown, f"is not in the cache, and {OFFLINE_HINT}")
        return _Manifest(body, digest)


class _Listing(dict[str, str]):
    """A cached tag listing: tag → manifest digest, and when it was stored."""

    def __init__(self, tags: dict[str, str], stored: float) -> None:
        super().__init__(tags)
        self.stored = stored


# ---------------------------------------------------------------- push


class Pushed(msgspec.Struct, frozen=True, gc=False):
    """What :func:`push_bundle` did: the reference and manifest digest of the artifact,
    the bundle's facts, and ``unchanged`` when the tag already held this very bundle."""

    reference: str
    digest: str
    id: str
    version: str
    sha256: str
    signer: str | None
    unchanged: bool = False


def push_bundle(
    bundle: Path,
    url: str,
    *,
    home: Path,
    plain_http: bool = False,
    force: bool = False,
    timeout: float = 30.0,
    limits: Limits | None = None,
) -> Pushed:
    """Push ``bundle`` to ``oci://HOST[:PORT]/REPO`` as ``REPO/<id>:<version>``.

    The bundle is read and checked whole first (as an install would). A tag that already
    holds the same bundle is left as it is (``unchanged``); one holding another bundle or
    another artifact is refused unless ``force`` (versions are meant to be immutable).
    ``plain_http`` talks HTTP to a registry that is neither loopback nor listed in the
    home's ``[oci] insecure-registries``. Raises BundleError for a bad bundle and
    SourceError for a registry that refuses or cannot be reached.
    """
    location = parse_location(url)
    read = read_bundle(bundle, limits)
    repository = location.repository(read.id)
    if not _valid_repository(repository):
        raise SourceError(
            str(bundle), f"{read.id} cannot be an OCI repository name under {location.url}"
        )
    tag = tag_of(read.version)
    if not _TAG.fullmatch(tag):
        raise SourceError(str(bundle), f"version {read.version} is too long for an OCI tag")
    config = _config_of(read, bundle.stat().st_size)
    reference = OciReference(location, read.id, tag=tag)
    shown = str(reference)
    registry = location.registry
    client = _Client(
        registry,
        plain_http=plain_http or _plain_http(registry, _insecure_registries(home)),
        timeout=timeout,
    )
    pushed = Pushed(shown, "", read.id, read.version, read.sha256, config.signer)
    try:
        with _push_errors(shown, registry):
            existing = client.manifest(repository, tag)
        if existing is not None:
            same = _holds(existing, read.sha256)
            if same is True:
                return msgspec.structs.replace(pushed, digest=existing.digest, unchanged=True)
            if not force:
                what = (
                    "another bundle of the same version"
                    if same is False
                    else f"{same}, not a plugbay bundle"
                )
                raise SourceError(
                    shown,
                    f"already holds {what}; a version is published once: bump the version, "
                    "or pass --force to replace the tag",
                )
        with tempfile.TemporaryDirectory(prefix="plugbay-push-") as tmp:
            # The layer's title annotation is the file's name: the bundle's canonical one.
            layer = Path(tmp) / bundle_name(read.id, read.version)
            shutil.copyfile(bundle, layer)
            config_file = Path(tmp) / "config.json"
            config_file.write_bytes(msgspec.json.encode(config, order="deterministic"))
            with _push_errors(shown, registry):
                digest = client.push(repository, tag, layer, config_file, _annotations(config))
    finally:
        client.close()
    return Pushed(shown, digest, read.id, read.version, read.sha256, config.signer)


def _holds(manifest: _Manifest, sha256: str) -> bool | str:
    """Whether an existing manifest is the plugbay artifact of the bundle ``sha256`` (True),
    of another bundle (False), or another kind of artifact (what it is)."""
    try:
        doc = json.loads(manifest.body)
        layers = doc["layers"]
        config_type = doc["config"]["mediaType"]
    except (ValueError, KeyError, TypeError):
        return "a manifest plugbay cannot read"
    if config_type != CONFIG_MEDIA_TYPE:
        return _KNOWN_TYPES.get(str(config_type), f"an artifact of type {config_type}")
    return bool(
        isinstance(layers, list)
        and len(layers) == 1
        and isinstance(layers[0], dict)
        and layers[0].get("digest") == f"sha256:{sha256}"
    )


@contextmanager
def _push_errors(shown: str, registry: str) -> Iterator[None]:
    try:
        yield
    except _Unreachable as exc:
        raise SourceError(shown, f"cannot be pushed: {exc.reason}") from None
    except _Denied as exc:
        raise SourceError(shown, _denied_message(exc, registry)) from None


# ---------------------------------------------------------------- helpers


def _denied_message(exc: _Denied, registry: str) -> str:
    answered = status_text(exc.status)
    login = (
        f"log in with `docker login {registry}` (or `oras login {registry}`; plugbay reads "
        "the docker config, ~/.docker/config.json or $DOCKER_CONFIG), or set "
        "PLUGBAY_OCI_USERNAME and PLUGBAY_OCI_PASSWORD"
    )
    pulling = exc.method in ("GET", "HEAD")
    if exc.reason == "login":
        return f"the registry {registry} asks for credentials ({answered}): {login}"
    if exc.reason == "rejected":
        return (
            f"the registry {registry} refused the credentials from {exc.credentials} "
            f"({answered}): check them, or {login}"
        )
    if exc.credentials is None and pulling:
        return (
            f"the registry {registry} denied anonymous access ({answered}): the repository "
            f"does not exist there, or it is private: {login}"
        )
    if exc.credentials is None:
        return f"the registry {registry} does not let anonymous users push ({answered}): {login}"
    action = "pull from" if pulling else "push to"
    return (
        f"the registry {registry} does not let the credentials from {exc.credentials} "
        f"{action} this repository ({answered})"
        + (": it does not exist there, or they have no access to it" if pulling else "")
        + f": ask its administrators for access, or {login} as a user who has it"
    )


def _foreign_message(kind: str) -> str:
    return (
        f"is {kind}, not a plugbay bundle (artifact type {ARTIFACT_TYPE}); it is refused: "
        "plugins are pushed with plugbay push"
    )


def _descriptor(raw: Any, where: str) -> tuple[str, int]:
    digest = raw.get("digest") if isinstance(raw, dict) else None
    size = raw.get("size") if isinstance(raw, dict) else None
    if not (isinstance(digest, str) and _DIGEST.fullmatch(digest)) or not (
        isinstance(size, int) and not isinstance(size, bool) and size >= 0
    ):
        raise _Invalid(f"its {where} needs a sha256 digest and a size")
    return digest, size


def _decode_config(body: bytes) -> BundleConfig:
    """The config blob; _Invalid if it is not one this plugbay reads."""
    try:
        parsed = msgspec.json.decode(body, type=BundleConfig)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        found = _config_format(body)
        if found not in (None, CONFIG_FORMAT):
            raise _Invalid(
                f"its config is format {found!r}; this plugbay reads format {CONFIG_FORMAT} "
                "(upgrade plugbay to read it)"
            ) from None
        raise _Invalid(f"its config: {lower_first(str(exc))}") from None
    if parsed.format != CONFIG_FORMAT:
        raise _Invalid(
            f"its config is format {parsed.format!r}; this plugbay reads format "
            f"{CONFIG_FORMAT} (upgrade plugbay to read it)"
        )
    return parsed


def _check_digest(data: bytes, digest: str, size: int, shown: str, what: str) -> None:
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if got != digest or len(data) != size:
        raise BundleError(
            shown,
            f"the registry sent a {what} that differs from its digest (got {got[:23]}…, "
            f"{len(data):,} bytes; the manifest says {digest[:23]}…, {size:,} bytes): it was "
            "altered in the registry or on the way, and is refused (tell the registry's "
            "administrators, or push it again)",
        )


def _config_format(body: bytes) -> Any:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc.get("format") if isinstance(doc, dict) else None


def _error_text(body: bytes) -> str:
    """The message of an OCI error answer (``{"errors": [{"code", "message"}]}``), or ""."""
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    texts = [
        f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
        for e in errors or ()
        if isinstance(e, dict)
    ]
    return "; ".join(t for t in texts if t)


def _reason(exc: BaseException) -> str:
    """The root cause of a requests error, without urllib3's object dumps."""
    text = str(exc)
    found: list[str] = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found[-1].strip()
    for pattern in (r"\[SSL: [^\]]+\] ([^'\")(]+)", r"Caused by \w+\('([^'<]+)"):
        match = re.search(pattern, text)
        if match:
            return match.group(1).strip(" .")
    return re.sub(r"<[^>]+ object at 0x[0-9a-f]+>:?\s*", "", text) or type(exc).__name__
