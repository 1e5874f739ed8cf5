"""Play files: parsed into values, checked before anything runs. No module is looked up here.

A play file is a YAML list. Either of plays::

    - name: provision
      vars: {prism_username: admin}
      tasks:
        - name: base image
          nutanix_image: {name: centos-9, source_uri: "https://…"}
          register: image

or, for short, of tasks (one play named after the file).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Keys of a task that are not its module.
TASK_KEYWORDS = ("name", "register", "when")
PLAY_KEYS = ("name", "vars", "tasks")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PlayError(Exception):
    """A play file that cannot run: says which file, which play or task, and what to fix."""


@dataclass(frozen=True)
class Task:
    name: str
    module: str
    args: Mapping[str, Any]
    register: str | None = None
    when: str | None = None


@dataclass(frozen=True)
class Play:
    name: str
    tasks: tuple[Task, ...]
    vars: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""


def load_plays(path: str | Path) -> list[Play]:
    """The plays of a YAML file; PlayError naming the file when it cannot be read or is wrong."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise PlayError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlayError(f"{path}:{where} is not valid YAML: {problem}") from None
    return parse_plays(doc, str(path))


def parse_plays(doc: Any, source: str) -> list[Play]:
    """Plays from a parsed YAML document (a list of plays, or of tasks)."""
    if not isinstance(doc, list) or not doc:
        raise PlayError(f"{source}: a play file is a non-empty list of plays or of tasks")
    if all(isinstance(item, Mapping) and "tasks" in item for item in doc):
        return [_play(item, i, source) for i, item in enumerate(doc, 1)]
    name = Path(source).stem or "play"
    return [_play({"name": name, "tasks": doc}, 1, source)]


def _play(item: Mapping[str, Any], number: int, source: str) -> Play:
    where = f"{source}: play {number}"
    unknown = sorted(set(item) - set(PLAY_KEYS))
    if unknown:
        raise PlayError(f"{where}: unknown key {unknown[0]!r}; a play has {', '.join(PLAY_KEYS)}")
    name = str(item.get("name") or f"play {number}")
    where = f"{source}: play {name!r}"
    variables = item.get("vars") or {}
    if not isinstance(variables, Mapping):
        raise PlayError(f"{where}: vars must be a mapping of names to values")
    for key in variables:
        if not isinstance(key, str) or not _IDENTIFIER.fullmatch(key):
            raise PlayError(f"{where}: variable name {key!r} is not an identifier")
    tasks = item.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise PlayError(f"{where}: tasks must be a non-empty list")
    parsed = tuple(_task(t, i, where) for i, t in enumerate(tasks, 1))
    return Play(name, parsed, dict(variables), source)


def _task(item: Any, number: int, where: str) -> Task:
    here = f"{where}, task {number}"
    if not isinstance(item, Mapping):
        raise PlayError(f"{here}: a task is a mapping (name, the module and its arguments)")
    if isinstance(item.get("name"), str):
        here = f"{where}, task {number} {item['name']!r}"
    modules = [k for k in item if k not in TASK_KEYWORDS]
    if not modules:
        raise PlayError(f"{here}: names no module; add e.g. `debug: {{msg: hi}}`")
    if len(modules) > 1:
        raise PlayError(
            f"{here}: names more than one module ({', '.join(map(str, modules))}); "
            "one module per task"
        )
    module = modules[0]
    if not isinstance(module, str) or not module:
        raise PlayError(f"{here}: {module!r} is not a module name")
    args = item[module]
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise PlayError(f"{here}: the arguments of {module} must be a mapping")
    register = item.get("register")
    if register is not None and (
        not isinstance(register, str) or not _IDENTIFIER.fullmatch(register)
    ):
        raise PlayError(f"{here}: register {register!r} is not an identifier")
    when = item.get("when")
    if when is not None and not isinstance(when, str | bool):
        raise PlayError(f"{here}: when must be an expression, e.g. `vm.changed`")
    name = str(item.get("name") or f"{module} {number}")
    return Task(name, module, dict(args), register, None if when is None else str(when))
