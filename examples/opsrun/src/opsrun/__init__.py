"""opsrun: an example host application for plugbay.

It runs YAML plays: lists of tasks, each naming a module and its arguments. Modules are
built in or come from plugins (``opsrun module install …``). See README.md.
"""

from __future__ import annotations

from .host import API_VERSION, make_host
from .modules import Module, Result
from .play import Play, PlayError, Task, load_plays
from .runner import Outcome, run_plays

__all__ = [
    "API_VERSION",
    "Module",
    "Outcome",
    "Play",
    "PlayError",
    "Result",
    "Task",
    "load_plays",
    "make_host",
    "run_plays",
]
