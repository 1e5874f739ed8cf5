"""The plugbay host of opsrun: its app name, API version, module kind and built-ins."""

from __future__ import annotations

import os
from pathlib import Path

from plugbay import Host

from .modules import Module

#: The API opsrun offers its plugins; a plugin's ``requires`` is checked against it.
API_VERSION = "1.0.0"

#: The built-in modules (debug, copy): a plugin folder shipped inside this package.
BUILTIN = Path(__file__).resolve().parent / "builtin"


def make_host(home: str | os.PathLike[str] | None = None) -> Host:
    """opsrun's Host: home ``~/.opsrun`` (or ``$OPSRUN_HOME``), kind ``module``, built-ins,
    and the hook ``before_task_run(task)``."""
    host = Host("opsrun", API_VERSION, kinds={"module": Module}, home=home)
    host.add_builtin(BUILTIN)
    # Called with the task's name before each task runs; a failing plugin is logged, and
    # the task goes on.
    host.hooks.declare("before_task_run", ["task"], on_error="collect")
    return host
