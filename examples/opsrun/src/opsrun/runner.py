"""Running plays: templating each task's arguments, calling its module, registering results.

For each task: ``when`` is evaluated, the arguments are rendered with Jinja2 (sandboxed;
an undefined variable is an error), the module is looked up through the host (built-in or
from a plugin, loaded on first use), then ``validate`` and ``apply`` (``check`` in check
mode) are called. ``register: name`` makes ``{{ name.changed }}``, ``{{ name.msg }}``
and ``{{ name_artifacts.key }}`` available to the tasks after it. The first failed task
stops the run.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .modules import Result
from .play import Play, Task
from .redact import SECRET_NAME, Redactor

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

    from plugbay import Host

_log = logging.getLogger("opsrun")

#: A whole-string ``{{ expression }}`` keeps the expression's type (a number, a list…).
_SINGLE_EXPRESSION = re.compile(r" *\{\{((?:(?!\}\}).)*)\}\} *", re.DOTALL)


@dataclass
class Outcome:
    """What happened to one task; ``status`` is ok, changed, failed or skipped."""

    play: str
    task: str
    module: str
    status: str
    msg: str = ""
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    args: Mapping[str, Any] = field(default_factory=dict)  # rendered, shown redacted
    detail: str = ""  # a traceback, for -vvv

    def to_json(self) -> dict[str, Any]:
        return {
            "play": self.play,
            "task": self.task,
            "module": self.module,
            "status": self.status,
            "changed": self.status == "changed",
            "msg": self.msg,
            "artifacts": dict(self.artifacts),
        }


class TaskFailed(Exception):
    """A task that cannot go on; the message says why (secrets are scrubbed later)."""


@dataclass
class Runner:
    """Runs plays against one started host; reports each task's outcome as it ends."""

    host: Host
    redactor: Redactor
    check: bool = False
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    report: Callable[[Outcome], None] = lambda outcome: None
    on_play: Callable[[Play], None] = lambda play: None
    _modules: dict[str, Any] = field(default_factory=dict)
    _env: SandboxedEnvironment | None = None

    def run(self, plays: list[Play]) -> list[Outcome]:
        """Run every play in order; stops after the first failed task."""
        outcomes: list[Outcome] = []
        self.redactor.collect(self.extra_vars)
        self.host.start()  # plans and registers every plugin's modules and hooks (lazily)
        for play in plays:
            self.on_play(play)
            try:
                variables = self._play_vars(play)
            except TaskFailed as exc:
                failed = Outcome(play.name, "vars", "-", "failed", str(exc))
                outcomes.append(failed)
                self.report(failed)
                return outcomes
            for task in play.tasks:
                outcome = self._run_task(play, task, variables)
                outcomes.append(outcome)
                self.report(outcome)
                if outcome.status == "failed":
                    return outcomes
        return outcomes

    # ------------------------------------------------------------ variables and templates

    def _environment(self) -> SandboxedEnvironment:
        if self._env is None:
            import os

            from jinja2 import StrictUndefined
            from jinja2.sandbox import SandboxedEnvironment

            env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
            redactor = self.redactor

            def from_env(name: str, default: str | None = None) -> str | None:
                value = os.environ.get(name, default)
                if value is not None and SECRET_NAME.search(name):
                    redactor.add(value)
                return value

            env.globals["env"] = from_env
            self._env = env
        return self._env

    def _play_vars(self, play: Play) -> dict[str, Any]:
        """The play's ``vars`` rendered in order (each may use the ones before), then ``-e``."""
        variables: dict[str, Any] = dict(self.extra_vars)
        for name, value in play.vars.items():
            if name in self.extra_vars:
                continue  # -e wins, as on the command line of ansible-playbook
            try:
                variables[name] = self._render(value, variables)
            except TaskFailed as exc:
                raise TaskFailed(f"variable {name}: {exc}") from None
        self.redactor.collect(variables)
        return variables

    def _render(self, value: Any, variables: Mapping[str, Any]) -> Any:
        """``value`` with every string rendered as a template (recursively)."""
        from jinja2 import TemplateError, Undefined, UndefinedError

        if isinstance(value, Mapping):
            return {k: self._render(v, variables) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render(v, variables) for v in value]
        if not isinstance(value, str) or "{" not in value:
            return value
        env = self._environment()
        try:
            single = _SINGLE_EXPRESSION.fullmatch(value)
            if single is not None:
                expression = env.compile_expression(single.group(1), undefined_to_none=False)
                result = expression(**variables)
                if isinstance(result, Undefined):
                    str(result)  # a StrictUndefined raises UndefinedError, naming what is missing
                return result
            return env.from_string(value).render(**variables)
        except UndefinedError as exc:
            raise _Undefined(f"{exc.message} in {value!r}") from None
        except TemplateError as exc:
            raise TaskFailed(f"template {value!r}: {exc}") from None

    # ------------------------------------------------------------ one task

    def _run_task(self, play: Play, task: Task, variables: dict[str, Any]) -> Outcome:
        outcome = Outcome(play.name, task.name, task.module, "failed")
        try:
            if task.when is not None and not self._when(task.when, variables):
                outcome.status, outcome.msg = "skipped", f"`when: {task.when}` is false"
                self._register(task, variables, Result(False, outcome.msg), "skipped")
                return outcome
            try:
                args = self._render(task.args, variables)
            except _Undefined as exc:
                if not self.check:
                    raise
                outcome.status = "skipped"
                outcome.msg = f"{exc} (a task before it would have made it; --check made nothing)"
                return outcome
            self.redactor.collect(args)
            outcome.args = args
            self._before_task_run(task)
            module = self._module(task.module)
            _call(module, "validate", task.module, args)
            method = "check" if self.check else "apply"
            result = Result.of(_call(module, method, task.module, args), task.module, method)
        except TaskFailed as exc:
            outcome.msg = str(exc)
            if exc.__cause__ is not None:
                outcome.detail = _traceback(exc.__cause__)
            return outcome
        outcome.status = "changed" if result.changed else "ok"
        outcome.msg, outcome.artifacts = result.msg, result.artifacts
        self._register(task, variables, result, outcome.status)
        return outcome

    def _before_task_run(self, task: Task) -> None:
        """The plugins' ``before_task_run`` hooks: what they say is logged (-vv)."""
        called = self.host.hooks.before_task_run(task=task.name)
        for result in called.results:
            if result is not None:
                _log.info("before_task_run(%r): %s", task.name, result)
        for error in called.errors:
            _log.warning("before_task_run(%r): %s", task.name, error)

    def _when(self, expression: str, variables: Mapping[str, Any]) -> bool:
        from jinja2 import TemplateError, UndefinedError

        try:
            test = self._environment().compile_expression(expression, undefined_to_none=False)
            return bool(test(**variables))
        except UndefinedError as exc:
            raise TaskFailed(f"when: {exc.message} in {expression!r}") from None
        except TemplateError as exc:
            raise TaskFailed(f"when: {expression!r} is not an expression: {exc}") from None

    def _register(self, task: Task, variables: dict[str, Any], result: Result, status: str) -> None:
        if task.register is None:
            return
        artifacts = dict(result.artifacts)
        if self.check and result.changed:
            # What a change would produce is not known before it is made: an id that is
            # None now stays undefined, so a task using it is skipped rather than misled.
            artifacts = {k: v for k, v in artifacts.items() if v is not None}
        variables[task.register] = {
            "changed": result.changed,
            "msg": result.msg,
            "status": status,
            "artifacts": artifacts,
        }
        variables[f"{task.register}_artifacts"] = artifacts

    def _module(self, name: str) -> Any:
        """The module named ``name``: built in or from a plugin; classes are instantiated."""
        from plugbay import ContributionNotFound, PluginError

        if name not in self._modules:
            try:
                found = self.host.get("module", name)
            except ContributionNotFound as exc:
                raise TaskFailed(
                    f"{exc}; `opsrun module list` shows the modules, "
                    "`opsrun module install` adds a plugin's"
                ) from exc
            except PluginError as exc:
                raise TaskFailed(str(exc)) from exc
            if isinstance(found, type):
                try:
                    found = found()
                except Exception as exc:  # plugin code: any error fails the task
                    raise TaskFailed(f"{name}: cannot create the module: {exc}") from exc
            self._modules[name] = found
        return self._modules[name]


class _Undefined(TaskFailed):
    """A template used a variable that is not defined."""


def _call(module: Any, method: str, name: str, args: dict[str, Any]) -> Any:
    try:
        return getattr(module, method)(args)
    except Exception as exc:  # plugin code: any error fails the task, not opsrun
        # The module's name is shown beside the message already.
        text = (str(exc) or type(exc).__name__).removeprefix(f"{name}: ")
        raise TaskFailed(text) from exc


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def run_plays(
    host: Host,
    plays: list[Play],
    *,
    check: bool = False,
    extra_vars: Mapping[str, Any] | None = None,
    redactor: Redactor | None = None,
    report: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run ``plays`` on a started ``host``: the outcome of each task that ran or was skipped."""
    runner = Runner(host, redactor or Redactor(), check, dict(extra_vars or {}))
    if report is not None:
        runner.report = report
    return runner.run(plays)
