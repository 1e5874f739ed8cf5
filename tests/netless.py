"""Run the real ``plugbay`` command where no network connection can be made.

Two fences, so that a test proves more than "it worked without a network":

- the command runs in a new user and network namespace (``unshare --user
  --map-root-user --net``): only a loopback interface exists there, and it is down, so
  every ``connect()`` fails with "Network is unreachable", even to 127.0.0.1, for plugbay
  and for every program it starts (git, pip);
- plugbay's own Python process carries an audit hook that writes a ``netless: …`` line to
  stderr for every attempt to connect an internet socket or resolve a host name. A
  command that tried and then carried on (a fallback to a cache, a retry) is caught by
  :func:`assert_no_network_use`, not only one that failed.

Without ``unshare`` (util-linux), or where user namespaces are not allowed, the tests
that use this fail saying so: they never skip.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

__all__ = ["NETLESS_MARK", "assert_no_network_use", "netless", "netless_plugbay"]

#: The start of the line the audit hook writes when plugbay tries to use the network.
NETLESS_MARK = "netless: "

# The plugbay command, with the audit hook installed before plugbay is imported.
_GUARDED_PLUGBAY = """
import socket, sys

def _guard(event, args):
    if event == "socket.connect" and args[0].family in (socket.AF_INET, socket.AF_INET6):
        sys.stderr.write(f"netless: connect to {args[1]!r}\\n")
    elif event == "socket.getaddrinfo":
        sys.stderr.write(f"netless: look up {args[0]!r}\\n")

sys.addaudithook(_guard)
sys.argv[0] = "plugbay"
from plugbay.cli.app import main
main()
"""


@functools.cache
def _unshare() -> list[str]:
    """The command prefix that enters a new network namespace; fails the test if none."""
    found = shutil.which("unshare")
    if found is None:
        pytest.fail(
            "these tests need `unshare` (util-linux) to run plugbay without a network; "
            "install util-linux"
        )
    prefix = [found, "--user", "--map-root-user", "--net", "--"]
    probe = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-c",
            "import socket\n"
            "try:\n"
            "    socket.create_connection(('127.0.0.1', 9), timeout=5)\n"
            "except OSError as exc:\n"
            "    print(exc.errno)\n",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.fail(
            f"`unshare --user --map-root-user --net` does not work here ({probe.stderr.strip()}); "
            "these tests need unprivileged user namespaces (sysctl "
            "kernel.unprivileged_userns_clone=1, or user.max_user_namespaces > 0)"
        )
    import errno

    if probe.stdout.strip() != str(errno.ENETUNREACH):
        pytest.fail(
            "inside `unshare --net` a connection to 127.0.0.1 did not fail with 'Network is "
            f"unreachable' (got {probe.stdout.strip() or 'a connection'}): not a netless place"
        )
    return prefix


def netless(
    argv: list[str], *, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a network namespace of its own (no usable interface)."""
    return subprocess.run(
        [*_unshare(), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=timeout,
    )


def netless_plugbay(
    home: Path, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``plugbay`` command on ``home``, netless, its network use reported.

    ``cwd`` defaults to an empty folder beside the home (as ``conftest.run_plugbay``).
    """
    if cwd is None:
        cwd = home.parent / "cwd"
        cwd.mkdir(exist_ok=True)
    return netless([sys.executable, "-c", _GUARDED_PLUGBAY, "--home", str(home), *args], cwd=cwd)


def assert_no_network_use(result: subprocess.CompletedProcess[str]) -> None:
    """The command did not even try to connect or to look a host name up."""
    tried = [line for line in result.stderr.splitlines() if line.startswith(NETLESS_MARK)]
    assert not tried, "\n".join(tried)
