"""A small client of the Prism v3 REST API, shared by the nutanix_vm and nutanix_image modules.

Credentials come from the task's arguments (``endpoint``, ``username``, ``password``),
else from the environment (``PRISM_ENDPOINT``, ``PRISM_USERNAME``, ``PRISM_PASSWORD``).
The password is sent as HTTP basic auth and never written into a message or a log line.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

API = "/api/nutanix/v3"

#: The plugin's logger; plugin.init() replaces it with the one the host gives.
log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logging.getLogger(
    "plugbay.acme.nutanix"
)


class ModuleError(Exception):
    """What went wrong, said so that the user knows what to change (no secret in it)."""


@dataclass(frozen=True)
class Credentials:
    endpoint: str
    username: str
    password: str = field(repr=False)
    verify: bool = True
    timeout: float = 60.0


def credentials(module: str, args: dict[str, Any]) -> Credentials:
    """The endpoint and credentials of a task; ModuleError naming what is missing or wrong."""
    endpoint = args.get("endpoint") or os.environ.get("PRISM_ENDPOINT")
    username = args.get("username") or os.environ.get("PRISM_USERNAME")
    password = args.get("password") or os.environ.get("PRISM_PASSWORD")
    if not endpoint:
        raise ModuleError(
            f"{module}: no endpoint: set `endpoint: https://prism.example:9440` or PRISM_ENDPOINT"
        )
    if not isinstance(endpoint, str):
        raise ModuleError(f"{module}: endpoint must be text, like https://prism.example:9440")
    try:
        url = httpx.URL(endpoint)
    except httpx.InvalidURL as exc:
        raise ModuleError(f"{module}: endpoint {endpoint!r} is not a URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ModuleError(
            f"{module}: endpoint {endpoint!r} is not an http(s) URL; use https://prism.example:9440"
        )
    if not username or not isinstance(username, str):
        raise ModuleError(f"{module}: no username: set `username` or PRISM_USERNAME")
    if not password or not isinstance(password, str):
        raise ModuleError(
            f"{module}: no password: set `password` (from a play variable) or PRISM_PASSWORD"
        )
    verify = args.get("validate_certs", True)
    if not isinstance(verify, bool):
        raise ModuleError(f"{module}: validate_certs must be true or false")
    timeout = args.get("timeout", 60)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ModuleError(f"{module}: timeout must be a number of seconds > 0")
    return Credentials(endpoint.rstrip("/"), username, password, verify, float(timeout))


class Prism:
    """One connection to Prism for one task. Use as a context manager."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        self._client = httpx.Client(
            base_url=creds.endpoint + API,
            auth=(creds.username, creds.password),
            verify=creds.verify,
            timeout=min(creds.timeout, 30.0),
        )

    def __enter__(self) -> Prism:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request; its JSON answer, or a ModuleError saying what Prism said."""
        log.debug("%s %s%s", method, API, path)
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ModuleError(
                f"cannot reach Prism at {self.creds.endpoint}: {type(exc).__name__}: {exc}"
            ) from None
        if response.status_code == 401:
            raise ModuleError(
                f"Prism at {self.creds.endpoint} refused the credentials of user "
                f"{self.creds.username!r} (HTTP 401); check username and password"
            )
        if response.status_code >= 400:
            raise ModuleError(
                f"Prism answered {method} {path} with HTTP {response.status_code}: "
                f"{_messages(response)}"
            )
        try:
            return response.json()
        except ValueError:
            raise ModuleError(
                f"Prism answered {method} {path} with something that is not JSON"
            ) from None

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        """The entity of ``kind`` named ``name``, or None; an error when several are."""
        plural = {"vm": "vms", "image": "images"}[kind]
        key = "vm_name" if kind == "vm" else "name"
        found = self.call("POST", f"/{plural}/list", {"kind": kind, "filter": f"{key}=={name}"})
        entities = [e for e in found.get("entities", []) if e["spec"]["name"] == name]
        if len(entities) > 1:
            ids = ", ".join(e["metadata"]["uuid"] for e in entities)
            raise ModuleError(f"{len(entities)} {kind}s are named {name!r} ({ids}); rename one")
        return entities[0] if entities else None

    def wait(self, task_id: str) -> str:
        """Wait for a task to end; its final status. An error if it fails or times out."""
        deadline = time.monotonic() + self.creds.timeout
        while True:
            task = self.call("GET", f"/tasks/{task_id}")
            status = str(task.get("status"))
            if status == "SUCCEEDED":
                return status
            if status in ("FAILED", "ABORTED"):
                raise ModuleError(f"Prism task {task_id} {status}: {task.get('error_detail')}")
            if time.monotonic() > deadline:
                raise ModuleError(
                    f"Prism task {task_id} is still {status} after {self.creds.timeout:g} s; "
                    "raise `timeout` or look at the task in Prism"
                )
            time.sleep(0.1)  # Prism's tasks are polled; there is nothing to wait on


def _messages(response: httpx.Response) -> str:
    try:
        doc = response.json()
        return "; ".join(m.get("message", "") for m in doc.get("message_list", [])) or str(doc)
    except (ValueError, AttributeError):
        return response.text[:200]


def choice(module: str, args: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    """``args[key]`` (default: the first allowed value), checked against ``allowed``."""
    value = args.get(key, allowed[0])
    if value not in allowed:
        raise ModuleError(f"{module}: {key} must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def text(module: str, args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value:
        raise ModuleError(f"{module}: `{key}` is required (text)")
    return value


def number(module: str, args: dict[str, Any], key: str, default: int) -> int:
    value = args.get(key, default)
    if isinstance(value, str) and value.isdigit():  # templated values arrive as text
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ModuleError(f"{module}: {key} must be a whole number >= 1, not {value!r}")
    return value


#: Arguments every Prism module takes.
CONNECTION_ARGS = ("endpoint", "username", "password", "validate_certs", "timeout")


def known(module: str, args: dict[str, Any], own: tuple[str, ...]) -> None:
    """A ModuleError naming the first argument the module does not take."""
    allowed = (*own, *CONNECTION_ARGS)
    for key in args:
        if key not in allowed:
            raise ModuleError(
                f"{module}: unknown argument {key!r}; it takes {', '.join(sorted(allowed))}"
            )
