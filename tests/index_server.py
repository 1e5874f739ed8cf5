"""A static HTTP server on 127.0.0.1 for index tests: files with ETags, a request log, faults.

It serves a folder the way a static server or CDN does (HTTP/1.1 keep-alive, ETag and
If-None-Match → 304), records every request (path, the validator sent, the answer, the
client's port: one port per connection), and plays faults queued per path: an answer
status (500), a stall (no answer until the test ends), or a connection cut halfway
through the body.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

#: What a queued fault does: an int is an answer status; "stall" and "cut" are named.
Fault = int | str


@dataclass(frozen=True)
class Logged:
    path: str
    if_none_match: str | None
    status: int
    port: int


@dataclass
class IndexServer:
    """A folder served over HTTP on 127.0.0.1, its request log, and faults to play."""

    root: Path
    url: str
    log: list[Logged] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    always: dict[str, Fault] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, path: str, *faults: Fault) -> None:
        """Play ``faults`` on the next requests for ``path`` (one each), then serve it."""
        with self.lock:
            self.faults.setdefault(path, []).extend(faults)

    def fail_always(self, path: str, fault: Fault) -> None:
        with self.lock:
            self.always[path] = fault

    def next_fault(self, path: str) -> Fault | None:
        with self.lock:
            if path in self.always:
                return self.always[path]
            queued = self.faults.get(path)
            return queued.pop(0) if queued else None

    def paths(self) -> list[str]:
        """Paths asked for, in order."""
        with self.lock:
            return [entry.path for entry in self.log]

    def connections(self) -> int:
        """Distinct client connections (client ports) seen."""
        with self.lock:
            return len({entry.port for entry in self.log})


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:20] + '"'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients may reuse connections
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        path = unquote(urlsplit(self.path).path)
        sent = self.headers.get("If-None-Match")
        fault = state.next_fault(path)
        target = state.root / path.lstrip("/")
        if fault == "stall":
            self._log(path, sent, 0)
            state.release.wait(30)  # until the test ends: the client's timeout fires first
            self.close_connection = True
            return
        if isinstance(fault, int):
            self._log(path, sent, fault)
            self._answer(fault, b"server trouble\n", {})
            return
        try:
            data = target.read_bytes() if target.is_file() else None
        except OSError:
            data = None
        if data is None:
            self._log(path, sent, 404)
            self._answer(404, b"not found\n", {})
            return
        tag = etag_of(data)
        if sent is not None and sent == tag:
            self._log(path, sent, 304)
            self.send_response(304)
            self.send_header("ETag", tag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault == "cut":
            self._log(path, sent, 200)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self._log(path, sent, 200)
        content_type = "application/json" if path.endswith(".json") else "application/gzip"
        self._answer(200, data, {"ETag": tag, "Content-Type": content_type})

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _log(self, path: str, sent: str | None, status: int) -> None:
        state = self.server.state
        with state.lock:
            state.log.append(Logged(path, sent, status, self.client_address[1]))

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests' output stays clean


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: IndexServer


@contextmanager
def serve(root: Path) -> Iterator[IndexServer]:
    """Serve ``root`` on 127.0.0.1 (a free port) until the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    httpd = _Server(("127.0.0.1", 0), _Handler)
    host, port = httpd.server_address[:2]
    state = IndexServer(root, f"http://{host!s}:{port}")
    httpd.state = state
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="index-server"
    )
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def publish(
    www: Path, plugin_id: str, version: str = "1.0.0", deps: Mapping[str, str] | None = None
) -> Path:
    """Build ``plugin_id`` ``version`` (needing ``deps``) into a bundle in ``www``."""
    from conftest import write_plugin
    from plugbay.store import build_bundle

    src = www.parent / "src" / f"{plugin_id}-{version}"
    return build_bundle(write_plugin(src, plugin_id, version, dependencies=deps), www)


def publish_set(www: Path) -> None:
    """acme.shared 1.0.0 and 2.0.0; acme.left 1.0.0 needs acme.shared <2; acme.right 1.0.0
    needs acme.shared >=1."""
    publish(www, "acme.shared", "1.0.0")
    publish(www, "acme.shared", "2.0.0")
    publish(www, "acme.left", "1.0.0", {"acme.shared": ">=1.0.0,<2.0.0"})
    publish(www, "acme.right", "1.0.0", {"acme.shared": ">=1.0.0"})
