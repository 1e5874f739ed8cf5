"""A real OCI registry on 127.0.0.1 for the OCI tests: Debian's ``docker-registry``.

:func:`serve_registry` writes a config (filesystem storage in a tmp folder, port 0, and
optionally htpasswd auth or token auth), starts ``docker-registry serve CONFIG.yml``, learns
the port from its "listening on" log line, checks that ``/v2/`` answers, and stops it at
the end. ``scripts/ensure-test-tools`` installs the registry and ``htpasswd``; when they
are missing the fixture fails saying so (it never skips).

Token auth (the Bearer challenges of ghcr.io, Docker Hub, Harbor) needs a token service:
:func:`serve_tokens` runs one on 127.0.0.1 that issues ES256 JWTs the registry verifies
against a self-signed certificate, to users with a password (pull and push) and to
anonymous clients (pull only), and records the scopes it was asked for.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import secrets
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

REGISTRY = "/usr/bin/docker-registry"
HTPASSWD = "/usr/bin/htpasswd"
_MISSING = (
    "{tool} is missing: run scripts/ensure-test-tools (it installs Debian's docker-registry "
    "and apache2-utils packages), then run the tests again"
)


@dataclass
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:PORT``; ``storage`` its blob store."""

    host: str
    storage: Path
    log: list[str] = field(default_factory=list)

    def url(self, prefix: str = "") -> str:
        """``oci://127.0.0.1:PORT/prefix``."""
        return f"oci://{self.host}/{prefix}".rstrip("/")

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps the blob ``sha256:…`` on disk (its filesystem driver)."""
        hex_ = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


def require(tool: str) -> str:
    """The path of a tool the tests need; fails the test naming the script that installs it."""
    if not Path(tool).is_file():
        pytest.fail(_MISSING.format(tool=tool), pytrace=False)
    return tool


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry (the registry accepts only bcrypt)."""
    out = subprocess.run(
        [require(HTPASSWD), "-nbB", user, password],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@contextmanager
def serve_registry(
    folder: Path,
    *,
    users: dict[str, str] | None = None,
    tokens: Tokens | None = None,
    timeout: float = 20.0,
) -> Iterator[Registry]:
    """Run ``docker-registry`` on 127.0.0.1 with storage in ``folder``; with ``users``,
    only they may pull or push (htpasswd auth, Basic challenges); with ``tokens``, clients
    need a token from that service (Bearer challenges)."""
    binary = require(REGISTRY)
    folder.mkdir(parents=True, exist_ok=True)
    storage = folder / "storage"
    auth = ""
    if tokens is not None:
        auth = (
            f"auth:\n  token:\n    realm: {tokens.url}\n    service: {tokens.service}\n"
            f"    issuer: {tokens.issuer}\n    rootcertbundle: {tokens.certificate}\n"
        )
    elif users:
        passwords = folder / "htpasswd"
        passwords.write_text("".join(htpasswd_line(u, p) + "\n" for u, p in users.items()))
        auth = f"auth:\n  htpasswd:\n    realm: plugbay-tests\n    path: {passwords}\n"
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        "http:\n  addr: 127.0.0.1:0\n  secret: plugbay-tests\n" + auth
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    registry = Registry("", storage)
    listening = threading.Event()

    def read_log() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            registry.log.append(line.rstrip())
            found = re.search(r'msg="listening on (127\.0\.0\.1:\d+)"', line)
            if found and not listening.is_set():
                registry.host = found.group(1)
                listening.set()
        listening.set()  # the registry ended: stop waiting

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        if not listening.wait(timeout) or not registry.host:
            pytest.fail(
                f"docker-registry did not start within {timeout:g} s; its log:\n"
                + "\n".join(registry.log[-20:]),
                pytrace=False,
            )
        _check_answers(registry, authenticated=bool(users) or tokens is not None)
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(storage, ignore_errors=True)


def _check_answers(registry: Registry, *, authenticated: bool) -> None:
    """``GET /v2/`` answers 200 (or 401 when auth is on): the registry is serving."""
    try:
        with urllib.request.urlopen(f"http://{registry.host}/v2/", timeout=10) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    expected = 401 if authenticated else 200
    if status != expected:
        pytest.fail(f"docker-registry answered {status} to /v2/, not {expected}", pytrace=False)


# ---------------------------------------------------------------- a token service


@dataclass
class Tokens:
    """A running token service: its URL (the registry's realm) and what it was asked."""

    url: str
    certificate: Path
    service: str = "plugbay-tests-registry"
    issuer: str = "plugbay-tests-tokens"
    scopes: list[tuple[str | None, str]] = field(default_factory=list)  # (user, scope)
    #: Repositories anonymous clients get no access to (as for a private repository).
    private: set[str] = field(default_factory=set)


@contextmanager
def serve_tokens(folder: Path, users: dict[str, str]) -> Iterator[Tokens]:
    """A token service on 127.0.0.1: ``users`` get the actions they ask for, anonymous
    clients ``pull`` only (nothing for :attr:`Tokens.private` repositories); a wrong
    password gets 401."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plugbay-tests-tokens")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pem = folder / "tokens.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    chain = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
    tokens = Tokens("", pem)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def jwt(user: str | None, access: list[dict[str, Any]]) -> str:
        header = {"typ": "JWT", "alg": "ES256", "x5c": chain}
        stamp = int(time.time())
        claims = {
            "iss": tokens.issuer,
            "sub": user or "",
            "aud": tokens.service,
            "exp": stamp + 300,
            "nbf": stamp - 10,
            "iat": stamp,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signed = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(key.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signed}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            user: str | None = None
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                if users.get(name) != password:
                    self._answer(401, {"details": "wrong user name or password"})
                    return
                user = name
            access = []
            for scope in query.get("scope", []):
                tokens.scopes.append((user, scope))
                kind, _, rest = scope.partition(":")
                repo, _, actions = rest.rpartition(":")
                allowed = [
                    a
                    for a in actions.split(",")
                    if user is not None or (a == "pull" and repo not in tokens.private)
                ]
                access.append({"type": kind, "name": repo, "actions": allowed})
            token = jwt(user, access)
            self._answer(200, {"token": token, "access_token": token, "expires_in": 300})

        def _answer(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tokens.url = f"http://127.0.0.1:{server.server_address[1]}/token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tokens
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
