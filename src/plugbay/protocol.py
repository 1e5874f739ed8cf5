"""Constants of the out-of-process protocol (docs/protocol.md), shared by both sides.

The host's exec runtime, the SDK (which runs in a plugin's own interpreter, possibly a
virtual environment without plugbay's dependencies) and the conformance kit import this
module: it must stay standard-library only and cheap to import.
"""

from __future__ import annotations

import signal

__all__ = [
    "COOKIE_ENV",
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_CANCEL_GRACE",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_RESTARTS",
    "DEFAULT_RESTART_WINDOW",
    "DEFAULT_SHUTDOWN_GRACE",
    "ERR_CANCELLED",
    "ERR_INTERNAL",
    "ERR_INVALID_PARAMS",
    "ERR_INVALID_REQUEST",
    "ERR_METHOD_NOT_FOUND",
    "ERR_NOT_INITIALIZED",
    "ERR_NO_CONTRIBUTION",
    "ERR_PARSE",
    "ERR_PLUGIN",
    "LOG_LEVEL_ENV",
    "PARENT_PID_ENV",
    "PLUGIN_DIR_ENV",
    "PLUGIN_ID_ENV",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "VERSIONS_ENV",
    "describe_exit",
]

#: The version this plugbay speaks best, and every version it speaks.
PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

# Environment set by the host for the child.
VERSIONS_ENV = "PLUGBAY_PROTOCOL_VERSIONS"
COOKIE_ENV = "PLUGBAY_COOKIE"
PLUGIN_ID_ENV = "PLUGBAY_PLUGIN_ID"
PLUGIN_DIR_ENV = "PLUGBAY_PLUGIN_DIR"
PARENT_PID_ENV = "PLUGBAY_PARENT_PID"
LOG_LEVEL_ENV = "PLUGBAY_LOG_LEVEL"

# JSON-RPC 2.0 error codes, then plugbay's own.
ERR_PARSE = -32700
ERR_INVALID_REQUEST = -32600
ERR_METHOD_NOT_FOUND = -32601
ERR_INVALID_PARAMS = -32602
ERR_INTERNAL = -32603
ERR_CANCELLED = -32800
ERR_NO_CONTRIBUTION = -32001
ERR_PLUGIN = -32002
ERR_NOT_INITIALIZED = -32003

# Defaults of the host side (seconds, bytes); a plugin's [runtime] table in config.toml
# overrides them.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_CALL_TIMEOUT = 30.0
DEFAULT_CANCEL_GRACE = 1.0
DEFAULT_SHUTDOWN_GRACE = 2.0
DEFAULT_MAX_RESTARTS = 3
DEFAULT_RESTART_WINDOW = 300.0
DEFAULT_MAX_LINE = 16 * 1024 * 1024


def describe_exit(returncode: int) -> str:
    """``exited with code 3`` or ``was killed by signal SIGSEGV`` (a negative return code)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"number {-returncode}"
        return f"was killed by signal {name}"
    return f"exited with code {returncode}"
