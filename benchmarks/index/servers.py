"""The two servers of the index benchmark, on 127.0.0.1, each counting the requests it answers.

- :class:`StaticSite`: a folder served as any static web server serves it (what a plugbay
  index needs): GET of a file, ``404`` otherwise.
- :class:`GalaxyApi`: a small Galaxy v3 API over a set of Ansible collection tarballs, with
  the endpoints ``ansible-galaxy collection install`` calls: ``/api/`` (its
  ``available_versions``), ``/api/v3/collections/NS/NAME/`` (the collection, with its
  ``updated_at``), ``/api/v3/collections/NS/NAME/versions/`` (paginated with ``limit`` and
  ``offset``, as pulp_ansible does), ``/api/v3/collections/NS/NAME/versions/VER/`` (the
  ``download_url``, the artifact's sha256 and size, the dependencies) and the download
  itself, ``/download/NS-NAME-VER.tar.gz``.

Both run on :class:`http.server.ThreadingHTTPServer` speaking HTTP/1.1 with keep-alive,
with ``TCP_NODELAY`` on every connection: a handler writes the headers and the body in
two writes, and without it Nagle's algorithm meeting the client's delayed ACK would stall
each answer on a reused connection by about 40 ms. Files are read when asked for (from
the page cache, as a static server does); Galaxy documents are built per request.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

#: A route's answer: status, body, content type.
Answer = tuple[int, bytes, str]

NOT_FOUND: Answer = (404, b'{"detail": "Not found."}', "application/json")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client may reuse its connections
    disable_nagle_algorithm = True  # TCP_NODELAY: no 40 ms stall between headers and body
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        status, body, kind = self.server.routes.answer(path, parse_qs(parts.query))
        self.server.count(path, status)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the benchmark's output stays readable


class Routes:
    """What a server answers for a path (a subclass per kind of server)."""

    def answer(self, path: str, query: Mapping[str, list[str]]) -> Answer:
        raise NotImplementedError


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, routes: Routes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = routes
        self.lock = threading.Lock()
        self.paths: list[str] = []
        self.statuses: Counter[int] = Counter()

    def count(self, path: str, status: int) -> None:
        with self.lock:
            self.paths.append(path)
            self.statuses[status] += 1


@dataclass(frozen=True)
class Requests:
    """The requests a server answered since its counter was last reset."""

    total: int
    by_status: dict[int, int]
    paths: list[str]


class Running:
    """A started server: its base URL, and its request counter."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def reset(self) -> None:
        with self._server.lock:
            self._server.paths.clear()
            self._server.statuses.clear()

    def requests(self) -> Requests:
        with self._server.lock:
            return Requests(
                len(self._server.paths),
                dict(sorted(self._server.statuses.items())),
                list(self._server.paths),
            )


@contextmanager
def serve(routes: Routes) -> Iterator[Running]:
    """Serve ``routes`` on 127.0.0.1 (a free port) until the block ends."""
    server = _Server(routes)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="bench-server"
    )
    thread.start()
    try:
        yield Running(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ---------------------------------------------------------------- static files


class StaticSite(Routes):
    """The files under ``root``, as a static web server serves them."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def answer(self, path: str, query: Mapping[str, list[str]]) -> Answer:
        target = (self.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            return (404, b"not found\n", "text/plain")
        kind = "application/json" if target.suffix == ".json" else "application/gzip"
        return (200, target.read_bytes(), kind)


# ---------------------------------------------------------------- Galaxy v3


@dataclass(frozen=True)
class Collection:
    """One version of one collection, as the Galaxy API describes it."""

    namespace: str
    name: str
    version: str
    dependencies: dict[str, str]
    tarball: Path
    sha256: str


class GalaxyApi(Routes):
    """A Galaxy v3 API (the part ``collection install`` uses) over ``collections``.

    Versions are listed newest first, as Galaxy does (``versions`` must be given in that
    order per collection); ``page_size`` is the default page length when the client
    gives no ``limit``.
    """

    API = "/api/"
    V3 = "/api/v3/"
    UPDATED = "2025-01-01T00:00:00.000000Z"

    def __init__(self, collections: list[Collection], page_size: int = 10) -> None:
        self.page_size = page_size
        self.by_id: dict[tuple[str, str], list[Collection]] = {}
        for c in collections:
            self.by_id.setdefault((c.namespace, c.name), []).append(c)
        self.by_file = {c.tarball.name: c for c in collections}

    def answer(self, path: str, query: Mapping[str, list[str]]) -> Answer:
        if path == self.API:
            return self._json(
                {
                    "description": "GALAXY REST API",
                    "current_version": "v3",
                    "available_versions": {"v3": "v3/"},
                    "server_version": "4.9.0",
                }
            )
        if path.startswith("/download/"):
            found = self.by_file.get(path.removeprefix("/download/"))
            if found is None:
                return NOT_FOUND
            return (200, found.tarball.read_bytes(), "application/gzip")
        parts = path.removeprefix(self.V3).strip("/").split("/")
        if not path.startswith(self.V3) or len(parts) < 3 or parts[0] != "collections":
            return NOT_FOUND
        versions = self.by_id.get((parts[1], parts[2]))
        if versions is None:
            return NOT_FOUND
        if len(parts) == 3:
            return self._json(self._collection(versions))
        if parts[3] != "versions" or len(parts) > 5:
            return NOT_FOUND
        if len(parts) == 4:
            return self._json(self._versions(versions, query))
        match = [c for c in versions if c.version == parts[4]]
        return self._json(self._version(match[0])) if match else NOT_FOUND

    def _href(self, c: Collection, version: str | None = None) -> str:
        base = f"{self.V3}collections/{c.namespace}/{c.name}/"
        return base if version is None else f"{base}versions/{version}/"

    def _collection(self, versions: list[Collection]) -> dict[str, Any]:
        newest = versions[0]
        return {
            "href": self._href(newest),
            "namespace": newest.namespace,
            "name": newest.name,
            "deprecated": False,
            "versions_url": self._href(newest) + "versions/",
            "highest_version": {
                "href": self._href(newest, newest.version),
                "version": newest.version,
            },
            "created_at": self.UPDATED,
            "updated_at": self.UPDATED,
            "download_count": 0,
        }

    def _versions(
        self, versions: list[Collection], query: Mapping[str, list[str]]
    ) -> dict[str, Any]:
        limit = int(query.get("limit", [str(self.page_size)])[0])
        offset = int(query.get("offset", ["0"])[0])
        page = versions[offset : offset + limit]
        base = self._href(versions[0]) + "versions/"

        def link(at: int) -> str:
            return f"{base}?limit={limit}&offset={at}"

        last = max(0, (len(versions) - 1) // limit * limit)
        return {
            "meta": {"count": len(versions)},
            "links": {
                "first": link(0),
                "previous": link(max(0, offset - limit)) if offset > 0 else None,
                "next": link(offset + limit) if offset + limit < len(versions) else None,
                "last": link(last),
            },
            "data": [
                {
                    "version": c.version,
                    "href": self._href(c, c.version),
                    "created_at": self.UPDATED,
                    "updated_at": self.UPDATED,
                    "requires_ansible": ">=2.15.0",
                    "marks": [],
                }
                for c in page
            ],
        }

    def _version(self, c: Collection) -> dict[str, Any]:
        return {
            "href": self._href(c, c.version),
            "namespace": {"name": c.namespace},
            "collection": {"name": c.name},
            "version": c.version,
            "download_url": f"/download/{c.tarball.name}",
            "artifact": {
                "filename": c.tarball.name,
                "sha256": c.sha256,
                "size": c.tarball.stat().st_size,
            },
            "metadata": {"dependencies": dict(c.dependencies)},
            "signatures": [],
            "requires_ansible": ">=2.15.0",
            "created_at": self.UPDATED,
            "updated_at": self.UPDATED,
        }

    @staticmethod
    def _json(doc: dict[str, Any]) -> Answer:
        return (200, json.dumps(doc).encode(), "application/json")
