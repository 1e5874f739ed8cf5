"""A stand-in for the part of the Nutanix Prism Central v3 REST API that acme.nutanix uses.

It keeps VMs, images and asynchronous tasks in memory for as long as it runs, so a play
run twice against it changes things the first time and nothing the second. Every request
needs HTTP basic auth. It listens on the loopback interface only::

    PRISM_STANDIN_PASSWORD=s3cret python examples/prism/standin.py --port 9440

prints ``prism stand-in listening on http://127.0.0.1:9440`` on stdout once it accepts
connections (``--port 0`` picks a free port) and logs one line per request on stderr.

The API, under ``/api/nutanix/v3``:

- ``POST /vms/list``, ``POST /images/list``, ``POST /tasks/list``: ``{"filter": "name==web"}``
  (also ``vm_name==``) → ``{"entities": [...], "metadata": {"total_matches": n}}``
- ``POST /vms``, ``POST /images``: ``{"spec": ..., "metadata": {"kind": ...}}`` → 202 with
  ``metadata.uuid`` and ``status.execution_context.task_uuid``
- ``GET``, ``PUT`` (with ``metadata.spec_version``; 409 when stale), ``DELETE``
  ``/vms/{uuid}`` and ``/images/{uuid}``
- ``GET /tasks/{uuid}`` → ``{"status": "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED", ...}``

A task finishes ``--task-seconds`` after it was made (0.3 s by default); until then the
entity's ``status.state`` is ``PENDING`` (or ``DELETE_PENDING``).
"""

from __future__ import annotations

import argparse
import base64
import hmac
import ipaddress
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API = "/api/nutanix/v3"
POWER_STATES = ("ON", "OFF")


class ApiError(Exception):
    """An error answer: HTTP status and Prism's ``message_list``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def body(self) -> dict[str, Any]:
        return {
            "api_version": "3.1",
            "state": "ERROR",
            "code": self.status,
            "message_list": [{"reason": self.reason, "message": self.message}],
        }


class Cluster:
    """The stand-in's state: entities by kind and uuid, and tasks. Thread-safe."""

    def __init__(self, task_seconds: float) -> None:
        self.task_seconds = task_seconds
        self.lock = threading.Lock()
        self.entities: dict[str, dict[str, dict[str, Any]]] = {"vm": {}, "image": {}}
        self.tasks: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------ tasks

    def _task(self, operation: str, kind: str, entity_id: str, finish: Callable[[], None]) -> str:
        """A task that runs ``finish`` (under the lock) once ``task_seconds`` have passed."""
        task_id = str(uuid.uuid4())
        self.tasks[task_id] = {
            "uuid": task_id,
            "status": "QUEUED",
            "percentage_complete": 0,
            "operation_type": operation,
            "entity_reference_list": [{"kind": kind, "uuid": entity_id}],
            "creation_time_usecs": int(time.time() * 1_000_000),
            "error_detail": "",
        }

        def run() -> None:
            with self.lock:
                self.tasks[task_id].update(status="RUNNING", percentage_complete=50)
            time.sleep(self.task_seconds)
            with self.lock:
                finish()
                self.tasks[task_id].update(status="SUCCEEDED", percentage_complete=100)

        threading.Thread(target=run, name=f"task-{task_id[:8]}", daemon=True).start()
        return task_id

    def task(self, task_id: str) -> dict[str, Any]:
        with self.lock:
            found = self.tasks.get(task_id)
            if found is None:
                raise ApiError(404, "ENTITY_NOT_FOUND", f"task {task_id} does not exist")
            return json.loads(json.dumps(found))

    # ------------------------------------------------------------ entities

    def list(self, kind: str, filter_: str | None) -> list[dict[str, Any]]:
        name = None
        if filter_:
            match = re.fullmatch(r"(?:vm_name|name)==(.*)", filter_.strip())
            if match is None:
                raise ApiError(400, "INVALID_FILTER", f"unsupported filter {filter_!r}")
            name = match.group(1)
        with self.lock:
            found = [
                e for e in self.entities[kind].values() if name is None or e["spec"]["name"] == name
            ]
            return json.loads(json.dumps(found))

    def get(self, kind: str, entity_id: str) -> dict[str, Any]:
        with self.lock:
            return json.loads(json.dumps(self._entity(kind, entity_id)))

    def _entity(self, kind: str, entity_id: str) -> dict[str, Any]:
        found = self.entities[kind].get(entity_id)
        if found is None:
            raise ApiError(404, "ENTITY_NOT_FOUND", f"{kind} {entity_id} does not exist")
        return found

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        spec = _spec(kind, body)
        with self.lock:
            if kind == "vm":
                self._check_disks(spec)
            entity_id = str(uuid.uuid4())
            entity = {
                "api_version": "3.1",
                "metadata": {"kind": kind, "uuid": entity_id, "spec_version": 0},
                "spec": spec,
                "status": {"state": "PENDING", "name": spec["name"], "resources": {}},
            }
            self.entities[kind][entity_id] = entity

            def finish() -> None:
                entity["status"] = {
                    "state": "COMPLETE",
                    "name": spec["name"],
                    "resources": json.loads(json.dumps(spec["resources"])),
                }

            task_id = self._task(f"k{kind.title()}Create", kind, entity_id, finish)
            return _accepted(entity, task_id)

    def update(self, kind: str, entity_id: str, body: dict[str, Any]) -> dict[str, Any]:
        spec = _spec(kind, body)
        version = body.get("metadata", {}).get("spec_version")
        with self.lock:
            entity = self._entity(kind, entity_id)
            if entity["status"]["state"] != "COMPLETE":
                raise ApiError(409, "CONCURRENT_REQUESTS_NOT_ALLOWED", "a task is still running")
            if version != entity["metadata"]["spec_version"]:
                raise ApiError(
                    409,
                    "CONCURRENT_REQUESTS_NOT_ALLOWED",
                    f"spec_version {version} is stale; the current one is "
                    f"{entity['metadata']['spec_version']}",
                )
            if kind == "vm":
                self._check_disks(spec)
            entity["spec"] = spec
            entity["metadata"]["spec_version"] += 1
            entity["status"]["state"] = "PENDING"

            def finish() -> None:
                entity["status"] = {
                    "state": "COMPLETE",
                    "name": spec["name"],
                    "resources": json.loads(json.dumps(spec["resources"])),
                }

            task_id = self._task(f"k{kind.title()}Update", kind, entity_id, finish)
            return _accepted(entity, task_id)

    def delete(self, kind: str, entity_id: str) -> dict[str, Any]:
        with self.lock:
            entity = self._entity(kind, entity_id)
            entity["status"]["state"] = "DELETE_PENDING"

            def finish() -> None:
                self.entities[kind].pop(entity_id, None)

            task_id = self._task(f"k{kind.title()}Delete", kind, entity_id, finish)
            return _accepted(entity, task_id)

    def _check_disks(self, spec: dict[str, Any]) -> None:
        for disk in spec["resources"].get("disk_list", []):
            ref = disk.get("data_source_reference") or {}
            if ref.get("kind") == "image" and ref.get("uuid") not in self.entities["image"]:
                raise ApiError(422, "INVALID_REFERENCE", f"image {ref.get('uuid')} does not exist")


def _spec(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request's spec, checked as Prism checks it; an ApiError when it is not right."""
    spec = body.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ApiError(422, "INVALID_REQUEST", "spec.name is required")
    resources = spec.get("resources")
    if not isinstance(resources, dict):
        raise ApiError(422, "INVALID_REQUEST", "spec.resources is required")
    if kind == "vm":
        for field in ("num_sockets", "num_vcpus_per_socket", "memory_size_mib"):
            value = resources.get(field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ApiError(422, "INVALID_REQUEST", f"spec.resources.{field} must be >= 1")
        if resources.get("power_state") not in POWER_STATES:
            raise ApiError(422, "INVALID_REQUEST", "spec.resources.power_state must be ON or OFF")
    else:
        if resources.get("image_type") not in ("DISK_IMAGE", "ISO_IMAGE"):
            raise ApiError(422, "INVALID_REQUEST", "spec.resources.image_type is required")
        if not isinstance(resources.get("source_uri"), str):
            raise ApiError(422, "INVALID_REQUEST", "spec.resources.source_uri is required")
    return json.loads(json.dumps(spec))


def _accepted(entity: dict[str, Any], task_id: str) -> dict[str, Any]:
    answer = json.loads(json.dumps(entity))
    answer["status"]["execution_context"] = {"task_uuid": task_id}
    return answer


_ROUTES = re.compile(rf"{API}/(vms|images|tasks)(?:/(list|[0-9a-f-]{{36}}))?")
_KINDS = {"vms": "vm", "images": "image", "tasks": "task"}


def make_handler(
    cluster: Cluster, username: str, password: str, log: Callable[[str], None]
) -> type[BaseHTTPRequestHandler]:
    """The request handler class for one stand-in: its state and its credentials."""
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "PrismStandin/1.0"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def do_PUT(self) -> None:
            self._answer("PUT")

        def do_DELETE(self) -> None:
            self._answer("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request is written by _answer, without the headers

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                if not hmac.compare_digest(self.headers.get("Authorization", ""), expected):
                    raise ApiError(401, "AUTHENTICATION_REQUIRED", "Authentication required.")
                body = json.loads(raw) if raw else {}
                if not isinstance(body, dict):
                    raise ApiError(400, "INVALID_REQUEST", "the body must be a JSON object")
                status, answer = self._route(method, body)
            except ApiError as exc:
                status, answer = exc.status, exc.body()
            except json.JSONDecodeError as exc:
                status, answer = 400, ApiError(400, "INVALID_REQUEST", str(exc)).body()
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            log(f"{method} {self.path} {status}")

        def _route(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            match = _ROUTES.fullmatch(self.path.split("?", 1)[0])
            if match is None:
                raise ApiError(404, "NOT_FOUND", f"no such endpoint {self.path}")
            kind, item = _KINDS[match.group(1)], match.group(2)
            if item == "list" and method == "POST":
                if kind == "task":
                    with cluster.lock:
                        found = json.loads(json.dumps(list(cluster.tasks.values())))
                else:
                    found = cluster.list(kind, body.get("filter"))
                return 200, {
                    "api_version": "3.1",
                    "metadata": {"kind": kind, "total_matches": len(found)},
                    "entities": found,
                }
            if kind == "task":
                if item and item != "list" and method == "GET":
                    return 200, cluster.task(item)
            elif item is None and method == "POST":
                return 202, cluster.create(kind, body)
            elif item and item != "list":
                if method == "GET":
                    return 200, cluster.get(kind, item)
                if method == "PUT":
                    return 202, cluster.update(kind, item, body)
                if method == "DELETE":
                    return 202, cluster.delete(kind, item)
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed on {self.path}")

    return Handler


def serve(
    host: str, port: int, *, username: str, password: str, task_seconds: float, quiet: bool
) -> None:
    """Serve until interrupted (SIGINT or SIGTERM)."""
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"standin: {host} is not a loopback address; use 127.0.0.1 or ::1")

    def log(line: str) -> None:
        if not quiet:
            print(f"prism: {line}", file=sys.stderr, flush=True)

    cluster = Cluster(task_seconds)
    server = ThreadingHTTPServer((host, port), make_handler(cluster, username, password, log))
    server.daemon_threads = True
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    print(f"prism stand-in listening on http://{shown}:{bound_port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, default=9440, help="0 picks a free port")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--task-seconds", type=float, default=0.3)
    parser.add_argument("-q", "--quiet", action="store_true", help="no request log")
    args = parser.parse_args(argv)
    password = os.environ.get("PRISM_STANDIN_PASSWORD")
    if not password:
        sys.exit("standin: set PRISM_STANDIN_PASSWORD to the password clients must send")
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # serve() closes the socket on its way out

    signal.signal(signal.SIGTERM, stop)
    serve(
        args.host,
        args.port,
        username=args.username,
        password=password,
        task_seconds=args.task_seconds,
        quiet=args.quiet,
    )


if __name__ == "__main__":
    main()
