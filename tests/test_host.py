"""Host lifecycle: states, activation, ordering, config, health, events and bad plugins."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from conftest import modules_under, write_plugin
from plugbay import (
    ContributionNotFound,
    Host,
    LifecycleEvent,
    LoadError,
    PlanError,
    PluginState,
    RegistryError,
)

# A plugin that records its lifecycle steps in host.shared["log"].
RECORDER = """\
class Plugin:
    def init(self, ctx):
        self.log = ctx.shared["log"]
        self.id = ctx.plugin_id
        self.log.append(("init", ctx.plugin_id))

    def start(self):
        self.log.append(("start", self.id))

    def stop(self):
        self.log.append(("stop", self.id))
"""

TOOLS = {"tool": [{"name": "thing", "entry": "tools:thing"}]}


def _recorder(
    root: Path,
    plugin_id: str,
    *,
    tool: str | None = None,
    activation: str | None = None,
    dependencies: dict[str, str] | None = None,
) -> Path:
    contributes = {"tool": [{"name": tool, "entry": "tools:thing"}]} if tool else None
    return write_plugin(
        root,
        plugin_id,
        entry="life:Plugin",
        activation=activation,
        dependencies=dependencies,
        contributes=contributes,
        code={"life.py": RECORDER, "tools.py": f"thing = {plugin_id!r}\n"},
    )


def _raising(step: str, error: str) -> dict[str, str]:
    """Code of a plugin whose lifecycle ``step`` raises ``error`` (a Python expression)."""
    arg = {"register": ", api", "init": ", ctx"}.get(step, "")
    return {"life.py": f"class Plugin:\n    def {step}(self{arg}):\n        raise {error}\n"}


def _healthy(root: Path, plugin_id: str = "ok.fine", tool: str = "fine") -> None:
    """A plugin that always loads, to show that a bad neighbour does not stop it."""
    write_plugin(
        root,
        plugin_id,
        contributes={"tool": [{"name": tool, "entry": "tools:thing"}]},
        code={"tools.py": "thing = 'fine'\n"},
    )


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown, so that a plugin step made to hang never leaves a thread blocked."""
    event = threading.Event()
    yield event
    event.set()


def _join_step(thread_name: str) -> None:
    """Wait for an abandoned lifecycle step's worker thread to finish."""
    for thread in threading.enumerate():
        if thread.name == thread_name:
            thread.join(10)
            assert not thread.is_alive()


# ---------------------------------------------------------------- states and activation


def test_states_from_resolved_to_stopped(make_host: Any, plugins_dir: Path) -> None:
    write_plugin(
        plugins_dir,
        "a.states",
        entry="life:Plugin",
        contributes=TOOLS,
        code={
            "life.py": """\
                class Plugin:
                    def init(self, ctx):
                        self.ctx = ctx
                        self.seen = ctx.shared["seen"]
                        self.seen.append(("init", ctx.shared["host"].state(ctx.plugin_id)))

                    def start(self):
                        host = self.ctx.shared["host"]
                        self.seen.append(("start", host.state(self.ctx.plugin_id)))
                """,
            "tools.py": "thing = 'thing'\n",
        },
    )
    host = make_host(plugins_dir)
    host.shared["seen"] = seen = []
    host.shared["host"] = host

    host.start()
    assert host.state("a.states") is PluginState.RESOLVED
    assert host.get("tool", "thing") == "thing"
    assert seen == [("init", PluginState.LOADED), ("start", PluginState.INITIALIZED)]
    assert host.state("a.states") is PluginState.STARTED
    host.stop()
    assert host.state("a.states") is PluginState.STOPPED
    assert seen == [("init", PluginState.LOADED), ("start", PluginState.INITIALIZED)]
    (status,) = host.status()
    assert status.state is PluginState.STOPPED
    assert {"import", "init", "start"} <= set(status.timings_ms)


def test_lazy_plugin_loads_on_first_get(make_host: Any, plugins_dir: Path) -> None:
    folder = _recorder(plugins_dir, "a.lazy", tool="lazy_thing")
    host = make_host(plugins_dir)
    host.shared["log"] = log = []

    host.start()
    assert host.state("a.lazy") is PluginState.RESOLVED
    assert log == []
    assert not modules_under(folder)

    assert host.get("tool", "lazy_thing") == "a.lazy"
    assert log == [("init", "a.lazy"), ("start", "a.lazy")]
    assert host.state("a.lazy") is PluginState.STARTED


def test_eager_plugin_loads_at_start(make_host: Any, plugins_dir: Path) -> None:
    _recorder(plugins_dir, "a.eager", activation="eager")
    _recorder(plugins_dir, "b.lazy")
    host = make_host(plugins_dir)
    host.shared["log"] = log = []

    host.start()

    assert log == [("init", "a.eager"), ("start", "a.eager")]
    assert host.state("a.eager") is PluginState.STARTED
    assert host.state("b.lazy") is PluginState.RESOLVED


def test_dependencies_load_first_and_stop_last(make_host: Any, plugins_dir: Path) -> None:
    # Ids sort against the dependency order, so that sorting alone cannot pass this test.
    _recorder(plugins_dir, "z.base")
    _recorder(plugins_dir, "m.middle", dependencies={"z.base": ">=1.0.0"})
    _recorder(plugins_dir, "a.top", tool="top", dependencies={"m.middle": "^1.0"})
    _recorder(plugins_dir, "b.unrelated", activation="eager")
    host = make_host(plugins_dir)
    host.shared["log"] = log = []

    host.start()
    assert host.get("tool", "top") == "a.top"
    inits = [pid for step, pid in log if step == "init"]
    assert inits == ["b.unrelated", "z.base", "m.middle", "a.top"]

    log.clear()
    host.stop()
    stops = [pid for step, pid in log if step == "stop"]
    assert stops.index("a.top") < stops.index("m.middle") < stops.index("z.base")
    assert sorted(stops) == ["a.top", "b.unrelated", "m.middle", "z.base"]


def test_context_manager_starts_and_stops(make_host: Any, plugins_dir: Path) -> None:
    _recorder(plugins_dir, "a.eager", activation="eager")
    host = make_host(plugins_dir)
    host.shared["log"] = log = []

    with host as entered:
        assert entered is host
        assert host.state("a.eager") is PluginState.STARTED

    assert log == [("init", "a.eager"), ("start", "a.eager"), ("stop", "a.eager")]
    assert host.state("a.eager") is PluginState.STOPPED
    assert log[-1] == ("stop", "a.eager"), "asking for the state does not start it again"


def test_register_adds_run_time_contributions(make_host: Any, plugins_dir: Path) -> None:
    write_plugin(
        plugins_dir,
        "a.reg",
        entry="life:Plugin",
        contributes={"tool": [{"name": "declared", "summary": "given by register"}]},
        code={
            "life.py": """\
                class Plugin:
                    def register(self, api):
                        api.add("tool", "declared", "declared object")
                        api.add("tool", "dynamic", "dynamic object", summary="made at run time")
                """
        },
    )
    host = make_host(plugins_dir)

    assert host.get("tool", "declared") == "declared object"  # lazily loads the plugin
    assert host.get("tool", "dynamic") == "dynamic object"
    assert host.get("tool", "a.reg:dynamic") == "dynamic object"
    handle = host.registry.handle("tool", "dynamic")
    assert handle.summary == "made at run time"
    assert handle.plugin_id == "a.reg"


def test_register_of_an_unknown_kind_fails_the_plugin(make_host: Any, plugins_dir: Path) -> None:
    write_plugin(
        plugins_dir,
        "a.reg",
        entry="life:Plugin",
        code={
            "life.py": """\
                class Plugin:
                    def register(self, api):
                        api.add("widget", "w", object())
                """
        },
    )
    _healthy(plugins_dir)
    host = make_host(plugins_dir, kinds={"tool": None})

    with pytest.raises(LoadError, match=r"register failed: RegistryError: .*no kind 'widget'"):
        host.load("a.reg")
    assert host.get("tool", "fine") == "fine"


def test_init_receives_config_from_code_and_from_the_home(
    make_host: Any, plugins_dir: Path, home: Path
) -> None:
    (home / "config.toml").write_text(
        '[plugins."a.conf"]\ngreeting = "hi"\npunctuation = "?"\n'
        '[plugins."b.other"]\ngreeting = "not for a.conf"\n'
    )
    write_plugin(
        plugins_dir,
        "a.conf",
        "1.2.3",
        entry="life:Plugin",
        code={
            "life.py": """\
                class Plugin:
                    def init(self, ctx):
                        ctx.shared["ctx"] = ctx
                        ctx.logger.info("configured")
                """
        },
    )
    host = make_host(plugins_dir, config={"a.conf": {"punctuation": "!", "name": "Ada"}})

    host.load("a.conf")

    ctx = host.shared["ctx"]
    assert dict(ctx.config) == {"greeting": "hi", "punctuation": "!", "name": "Ada"}
    assert ctx.plugin_id == "a.conf"
    assert ctx.version == "1.2.3"
    assert ctx.path == plugins_dir / "a.conf"
    assert ctx.host.app == "testapp"
    assert ctx.host.api_version == "1.0.0"
    assert ctx.shared is host.shared
    with pytest.raises(TypeError):
        ctx.config["greeting"] = "changed"  # read-only for the plugin


def test_async_lifecycle_methods_are_awaited(make_host: Any, plugins_dir: Path) -> None:
    write_plugin(
        plugins_dir,
        "a.async",
        entry="life:Plugin",
        activation="eager",
        code={
            "life.py": """\
                import asyncio

                class Plugin:
                    async def init(self, ctx):
                        await asyncio.sleep(0)
                        self.log = ctx.shared["log"]
                        self.log.append("init")

                    async def start(self):
                        await asyncio.sleep(0)
                        self.log.append("start")

                    async def health(self):
                        return "degraded" if not self.log else "ok"

                    async def stop(self):
                        self.log.append("stop")
                """
        },
    )
    host = make_host(plugins_dir)
    host.shared["log"] = log = []

    host.start()
    assert host.state("a.async") is PluginState.STARTED
    assert host.health()["a.async"].status == "ok"
    host.stop()
    assert log == ["init", "start", "stop"]


# ---------------------------------------------------------------- restart


def test_restart_restarts_the_plugin_and_its_started_dependents(
    make_host: Any, plugins_dir: Path
) -> None:
    _recorder(plugins_dir, "a.base", tool="base_tool")
    _recorder(plugins_dir, "b.user", tool="user_tool", dependencies={"a.base": "*"})
    _recorder(plugins_dir, "c.other", tool="other_tool")
    _recorder(plugins_dir, "d.idle", dependencies={"a.base": "*"})  # lazy, never started
    host = make_host(plugins_dir)
    host.shared["log"] = log = []
    host.get("tool", "user_tool")
    host.get("tool", "other_tool")
    log.clear()

    assert host.restart("a.base") is PluginState.STARTED

    assert log == [
        ("stop", "b.user"),
        ("stop", "a.base"),
        ("init", "a.base"),
        ("start", "a.base"),
        ("init", "b.user"),
        ("start", "b.user"),
    ]
    assert host.state("b.user") is PluginState.STARTED
    assert host.state("c.other") is PluginState.STARTED
    assert host.state("d.idle") is PluginState.RESOLVED
    assert host.get("tool", "user_tool") == "b.user"
    assert host.get("tool", "base_tool") == "a.base"


def test_restart_of_a_failed_plugin_retries_it_and_unblocks_dependents(
    make_host: Any, plugins_dir: Path
) -> None:
    write_plugin(
        plugins_dir,
        "a.flaky",
        entry="life:Plugin",
        code={
            "life.py": """\
                class Plugin:
                    def init(self, ctx):
                        if ctx.shared["broken"]:
                            raise RuntimeError("not yet")
                """
        },
    )
    _recorder(plugins_dir, "b.user", tool="user_tool", dependencies={"a.flaky": "*"})
    _recorder(plugins_dir, "c.eager_user", activation="eager", dependencies={"b.user": "*"})
    host = make_host(plugins_dir)
    host.shared.update(broken=True, log=[])
    host.start()
    assert host.state("a.flaky") is PluginState.FAILED
    assert host.state("b.user") is PluginState.BLOCKED
    assert host.state("c.eager_user") is PluginState.BLOCKED
    with pytest.raises(LoadError, match=r"b\.user: .*needs a\.flaky, which failed"):
        host.get("tool", "user_tool")

    host.shared["broken"] = False
    assert host.restart("a.flaky") is PluginState.STARTED

    assert host.state("c.eager_user") is PluginState.STARTED, "eager: started again"
    assert host.state("b.user") is PluginState.STARTED, "as c.eager_user's dependency"
    assert host.get("tool", "user_tool") == "b.user"
    assert host.status()[0].reason is None


def test_restart_of_a_disabled_plugin_is_refused(
    make_host: Any, plugins_dir: Path, home: Path
) -> None:
    (home / "config.toml").write_text('disabled = ["a.off"]\n')
    _recorder(plugins_dir, "a.off")
    host = make_host(plugins_dir)

    with pytest.raises(PlanError, match=r"a\.off: is disabled and cannot be restarted"):
        host.restart("a.off")


# ---------------------------------------------------------------- health


def test_health_reports_ok_degraded_and_failed(
    make_host: Any, plugins_dir: Path, release: threading.Event
) -> None:
    answers = {
        "h.true": "True",
        "h.none": "None",
        "h.ok_text": "'ok'",
        "h.degraded": "'disk is slow'",
        "h.degraded_map": "{'status': 'degraded', 'message': 'half the replicas'}",
        "h.false": "False",
        "h.failed_map": "{'status': 'failed', 'message': 'database down'}",
        "h.raises": "1 / 0",
        "h.hangs": "self.release.wait()",
    }
    for plugin_id, expression in answers.items():
        write_plugin(
            plugins_dir,
            plugin_id,
            entry="life:Plugin",
            activation="eager",
            code={
                "life.py": f"""\
                    class Plugin:
                        def init(self, ctx):
                            self.release = ctx.shared["release"]

                        def health(self):
                            return {expression}
                    """
            },
        )
    _healthy(plugins_dir, "h.no_method")
    write_plugin(
        plugins_dir,
        "h.broken",
        entry="life:Plugin",
        activation="eager",
        code=_raising("init", "OSError('no')"),
    )
    host = make_host(plugins_dir, health_timeout=0.3)
    host.shared["release"] = release
    host.start()

    health = host.health()

    status = {pid: h.status for pid, h in health.items()}
    assert status == {
        "h.true": "ok",
        "h.none": "ok",
        "h.ok_text": "ok",
        "h.no_method": "ok",  # lazy and not loaded: nothing wrong with it
        "h.degraded": "degraded",
        "h.degraded_map": "degraded",
        "h.false": "failed",
        "h.failed_map": "failed",
        "h.raises": "failed",
        "h.hangs": "failed",
        "h.broken": "failed",
    }
    assert health["h.degraded"].message == "disk is slow"
    assert health["h.degraded_map"].message == "half the replicas"
    assert health["h.failed_map"].message == "database down"
    assert "ZeroDivisionError" in health["h.raises"].message
    assert "did not finish within 0.3 s" in health["h.hangs"].message
    assert "OSError: no" in health["h.broken"].message
    assert all(h.checked_at > 0 for h in health.values())


# ---------------------------------------------------------------- events


def test_lifecycle_events(make_host: Any, plugins_dir: Path) -> None:
    _recorder(plugins_dir, "a.eager", activation="eager")
    _recorder(plugins_dir, "c.lazy", tool="lazy_tool")
    write_plugin(
        plugins_dir,
        "b.bad",
        entry="life:Plugin",
        activation="eager",
        code=_raising("start", "ValueError('x')"),
    )
    host = make_host(plugins_dir)
    host.shared["log"] = []
    events: list[LifecycleEvent] = []

    def faulty(event: LifecycleEvent) -> None:
        raise RuntimeError("a listener's own bug")

    host.on(faulty)  # logged, and the listeners after it still hear every event
    host.on(events.append)

    host.start()
    host.get("tool", "lazy_tool")
    host.stop()

    seen = [(e.name, e.plugin_id) for e in events]
    assert seen == [
        ("plugin_loaded", "a.eager"),
        ("plugin_failed", "b.bad"),
        ("host_start", None),
        ("plugin_loaded", "c.lazy"),
        ("host_stop", None),  # sent before the plugins stop, so they can still act on it
        ("plugin_unloaded", "c.lazy"),
        ("plugin_unloaded", "a.eager"),
    ]
    failed = events[1]
    assert failed.state is PluginState.FAILED
    assert failed.reason == "start failed: ValueError: x"
    assert events[0].state is PluginState.STARTED
    assert events[-1].state is PluginState.STOPPED


# ---------------------------------------------------------------- kinds


class Module(Protocol):
    """What a host of this test asks of a ``module`` contribution."""

    name: str

    def check(self, args: dict[str, Any]) -> bool: ...

    def apply(self, args: dict[str, Any]) -> dict[str, Any]: ...


MODULES = """\
class Good:
    name = "good"

    def check(self, args):
        return True

    def apply(self, args):
        return {"changed": False}

class NoCheck:
    name = "no_check"

    def apply(self, args):
        return {}
"""


def test_a_kind_with_a_protocol_refuses_an_object_missing_members(
    make_host: Any, plugins_dir: Path
) -> None:
    write_plugin(
        plugins_dir,
        "a.mods",
        contributes={
            "module": [
                {"name": "good", "entry": "mods:Good"},
                {"name": "no_check", "entry": "mods:NoCheck"},
            ]
        },
        code={"mods.py": MODULES},
    )
    host = make_host(plugins_dir, kinds={"module": Module})

    assert host.get("module", "good")().apply({}) == {"changed": False}
    with pytest.raises(RegistryError, match=r"module 'no_check'.*missing check") as excinfo:
        host.get("module", "no_check")
    assert "apply" not in str(excinfo.value).rpartition("missing")[2]
    assert "name" not in str(excinfo.value).rpartition("missing")[2]


def test_register_of_an_object_missing_members_is_refused(
    make_host: Any, plugins_dir: Path
) -> None:
    write_plugin(
        plugins_dir,
        "a.mods",
        entry="life:Plugin",
        code={
            "mods.py": MODULES,
            "life.py": """\
                from mods import NoCheck

                class Plugin:
                    def register(self, api):
                        api.add("module", "no_check", NoCheck())
                """,
        },
    )
    host = make_host(plugins_dir, kinds={"module": Module})

    with pytest.raises(LoadError, match=r"register failed: RegistryError: .*missing check"):
        host.load("a.mods")


def test_a_contribution_of_an_undeclared_kind_is_a_problem_and_the_plugin_loads(
    make_host: Any, plugins_dir: Path
) -> None:
    write_plugin(
        plugins_dir,
        "a.mixed",
        contributes={
            "module": [{"name": "good", "entry": "mods:Good"}],
            "widget": [{"name": "knob", "entry": "mods:Good"}],
        },
        code={"mods.py": MODULES},
    )
    host = make_host(plugins_dir, kinds={"module": Module})

    host.start()
    (problem,) = [p for p in host.problems() if p.code == "contribution.unknown-kind"]
    assert problem.plugin_id == "a.mixed"
    assert "'widget'" in problem.message
    assert host.get("module", "good")().check({}) is True
    assert host.state("a.mixed") is PluginState.STARTED
    with pytest.raises(ContributionNotFound):
        host.get("widget", "knob")

    host.restart("a.mixed")  # registers its contributions again: still one problem
    assert [p.code for p in host.problems()].count("contribution.unknown-kind") == 1


# ---------------------------------------------------------------- bad plugins


def _assert_host_still_works(host: Host) -> None:
    assert host.get("tool", "fine") == "fine"
    assert host.state("ok.fine") is PluginState.STARTED


@pytest.mark.parametrize(
    ("entry", "code", "reason"),
    [
        pytest.param(
            "nowhere:Plugin",
            {"life.py": ""},
            "import failed: ModuleNotFoundError: No module named 'nowhere' in the plugin folder",
            id="missing-module",
        ),
        pytest.param(
            "life:Plugin",
            {"life.py": "raise ImportError('cannot import name frobnicate')\n"},
            "import failed: ImportError: cannot import name frobnicate",
            id="raises-at-import",
        ),
        pytest.param(
            "life:Plugin",
            {"life.py": "class Plugn:\n    pass\n"},
            "import failed: AttributeError: 'life' has no attribute 'Plugin'",
            id="missing-attribute",
        ),
    ],
)
def test_a_bad_entry_fails_only_its_plugin(
    make_host: Any, plugins_dir: Path, entry: str, code: dict[str, str], reason: str
) -> None:
    write_plugin(plugins_dir, "a.bad", entry=entry, activation="eager", code=code)
    _healthy(plugins_dir)
    host = make_host(plugins_dir)

    host.start()

    assert host.state("a.bad") is PluginState.FAILED
    (status,) = [s for s in host.status() if s.id == "a.bad"]
    assert status.reason is not None
    assert status.reason.startswith(reason)
    _assert_host_still_works(host)


@pytest.mark.parametrize("step", ["register", "init", "start"])
def test_a_step_that_raises_fails_only_its_plugin(
    make_host: Any, plugins_dir: Path, step: str
) -> None:
    arg = {"register": "api", "init": "ctx", "start": ""}[step]
    folder = write_plugin(
        plugins_dir,
        "a.bad",
        entry="life:Plugin",
        contributes={"tool": [{"name": "bad_tool", "entry": "life:Plugin"}]},
        code={
            "life.py": f"""\
                class Plugin:
                    def {step}(self{", " + arg if arg else ""}):
                        raise RuntimeError("boom in {step}")
                """
        },
    )
    _healthy(plugins_dir)
    host = make_host(plugins_dir)

    with pytest.raises(LoadError) as excinfo:
        host.get("tool", "bad_tool")

    assert excinfo.value.plugin_id == "a.bad"
    assert host.state("a.bad") is PluginState.FAILED
    (status,) = [s for s in host.status() if s.id == "a.bad"]
    assert status.reason == f"{step} failed: RuntimeError: boom in {step}"
    assert status.detail is not None
    assert f'File "{folder / "life.py"}", line 3, in {step}' in status.detail
    assert "RuntimeError: boom in" in status.detail
    assert not modules_under(folder), "a failed plugin's modules are unloaded"
    _assert_host_still_works(host)


def test_a_hanging_init_fails_after_the_timeout_and_does_not_hold_back_others(
    make_host: Any, plugins_dir: Path, release: threading.Event
) -> None:
    write_plugin(
        plugins_dir,
        "a.hang",
        entry="life:Plugin",
        activation="eager",
        code={
            "life.py": """\
                class Plugin:
                    def init(self, ctx):
                        ctx.shared["release"].wait()
                """
        },
    )
    write_plugin(
        plugins_dir,
        "b.quick",
        entry="life:Plugin",
        activation="eager",
        code={
            "life.py": """\
                class Plugin:
                    def start(self):
                        # Started while a.hang's init is still blocked.
                        self.hang_released = CTX["release"].is_set()

                    def init(self, ctx):
                        global CTX
                        CTX = ctx.shared
                """
        },
    )
    host = make_host(plugins_dir, load_timeout=0.3)
    host.shared["release"] = release

    host.start()

    assert host.state("a.hang") is PluginState.FAILED
    (status,) = [s for s in host.status() if s.id == "a.hang"]
    assert status.reason is not None
    assert status.reason.startswith("init failed: did not finish within 0.3 s")
    assert status.detail is not None
    assert "in init" in status.detail, "the detail shows where the step hung"
    assert host.state("b.quick") is PluginState.STARTED
    assert not release.is_set()

    release.set()
    _join_step("plugbay a.hang init")
    assert host.state("a.hang") is PluginState.FAILED


def test_a_step_that_finishes_after_its_timeout_changes_nothing(
    make_host: Any, plugins_dir: Path, release: threading.Event
) -> None:
    write_plugin(
        plugins_dir,
        "a.late",
        entry="life:Plugin",
        code={
            "life.py": """\
                class Plugin:
                    def register(self, api):
                        self.api = api

                    def init(self, ctx):
                        ctx.shared["release"].wait()
                        try:
                            self.api.add("tool", "late_tool", "too late")
                        except Exception as exc:
                            ctx.shared["late"] = exc
                """
        },
    )
    host = make_host(plugins_dir, load_timeout=0.3)
    host.shared["release"] = release

    with pytest.raises(LoadError, match=r"init failed: did not finish within 0\.3 s"):
        host.load("a.late")
    release.set()
    _join_step("plugbay a.late init")

    assert host.state("a.late") is PluginState.FAILED
    assert isinstance(host.shared["late"], RegistryError)
    assert "a.late" in str(host.shared["late"])
    with pytest.raises(ContributionNotFound):
        host.get("tool", "late_tool")


def test_init_calling_sys_exit_fails_only_its_plugin(make_host: Any, plugins_dir: Path) -> None:
    write_plugin(
        plugins_dir,
        "a.quitter",
        entry="life:Plugin",
        activation="eager",
        code={
            "life.py": """\
                import sys

                class Plugin:
                    def init(self, ctx):
                        sys.exit(3)
                """
        },
    )
    _healthy(plugins_dir)
    host = make_host(plugins_dir)

    host.start()

    assert host.state("a.quitter") is PluginState.FAILED
    (status,) = [s for s in host.status() if s.id == "a.quitter"]
    assert status.reason == "init failed: called sys.exit(3)"
    _assert_host_still_works(host)


def test_a_plugin_whose_dependency_failed_is_blocked(make_host: Any, plugins_dir: Path) -> None:
    write_plugin(
        plugins_dir,
        "a.base",
        entry="life:Plugin",
        code=_raising("init", "OSError('gone')"),
    )
    _recorder(plugins_dir, "b.user", tool="user_tool", dependencies={"a.base": "*"})
    _recorder(plugins_dir, "c.user_of_user", tool="top_tool", dependencies={"b.user": "*"})
    _healthy(plugins_dir)
    host = make_host(plugins_dir)
    host.shared["log"] = log = []

    with pytest.raises(LoadError) as excinfo:
        host.get("tool", "top_tool")

    assert "a.base" in str(excinfo.value)
    assert host.state("a.base") is PluginState.FAILED
    assert host.state("b.user") is PluginState.BLOCKED
    assert host.state("c.user_of_user") is PluginState.BLOCKED
    reasons = {s.id: s.reason for s in host.status()}
    assert reasons["b.user"] == "needs a.base, which failed: init failed: OSError: gone"
    assert reasons["c.user_of_user"] is not None
    assert reasons["c.user_of_user"].startswith("needs b.user, which is blocked: needs a.base")
    assert log == [], "a blocked plugin's code never runs"
    _assert_host_still_works(host)


def test_an_eager_dependency_that_fails_blocks_its_dependents(
    make_host: Any, plugins_dir: Path
) -> None:
    write_plugin(
        plugins_dir,
        "z.base",
        entry="life:Plugin",
        activation="eager",
        code=_raising("start", "OSError('gone')"),
    )
    _recorder(plugins_dir, "a.user", tool="user_tool", dependencies={"z.base": "*"})
    host = make_host(plugins_dir)
    host.shared["log"] = []

    host.start()

    assert host.state("a.user") is PluginState.BLOCKED
    (status,) = [s for s in host.status() if s.id == "a.user"]
    assert status.reason == "needs z.base, which failed: start failed: OSError: gone"
    with pytest.raises(LoadError, match=r"a\.user: .*needs z\.base, which failed"):
        host.get("tool", "user_tool")


def test_get_of_a_failed_plugins_contribution_names_the_plugin_and_reason(
    make_host: Any, plugins_dir: Path
) -> None:
    write_plugin(
        plugins_dir,
        "a.bad",
        entry="life:Plugin",
        contributes={"tool": [{"name": "bad_tool", "entry": "tools:thing"}]},
        code={**_raising("init", "OSError('disk full')"), "tools.py": "thing = 1\n"},
    )
    _healthy(plugins_dir)
    host = make_host(plugins_dir)

    with pytest.raises(LoadError, match="disk full"):
        host.get("tool", "bad_tool")
    for name in ("bad_tool", "a.bad:bad_tool"):
        with pytest.raises(LoadError) as excinfo:
            host.get("tool", name)
        assert excinfo.value.plugin_id == "a.bad"
        assert "init failed: OSError: disk full" in str(excinfo.value)
    _assert_host_still_works(host)


def test_get_of_a_disabled_plugins_contribution_says_why(
    make_host: Any, plugins_dir: Path, home: Path
) -> None:
    (home / "config.toml").write_text('disabled = ["a.off"]\n')
    write_plugin(plugins_dir, "a.off", contributes=TOOLS, code={"tools.py": "thing = 1\n"})
    host = make_host(plugins_dir)

    with pytest.raises(LoadError, match=r"a\.off: .*disabled in config"):
        host.get("tool", "thing")


def test_a_warm_start_reads_its_plan_back_until_anything_changes(tmp_path: Path) -> None:
    """The store's plugins, discovered from the cache, are planned once and read back."""
    import os
    import time

    from plugbay.store import Store, build_bundle

    home = tmp_path / "home"
    bundles = [
        str(build_bundle(write_plugin(tmp_path / "src", pid, dependencies=deps), tmp_path / "b"))
        for pid, deps in [("acme.base", None), ("acme.app", {"acme.base": ">=1.0.0"})]
    ]
    Store(home).install(bundles)
    past = time.time() - 60  # the store's stamp and folders, old enough to be trusted
    for dirpath, dirnames, filenames in os.walk(home / "plugins"):
        for name in [*dirnames, *filenames]:
            os.utime(os.path.join(dirpath, name), (past, past), follow_symlinks=False)
    os.utime(home / "plugins", (past, past))

    def planned() -> tuple[list[str], list[str]]:
        host = Host("testapp", "1.0.0", home=home)
        result = host.plan()
        return [p.id for p in result.order], sorted(result.rejected)

    assert planned() == (["acme.base", "acme.app"], [])  # discovered from disk
    assert planned() == (["acme.base", "acme.app"], [])  # from the cache: planned, kept
    kept = home / "cache" / "plan.msgpack"
    assert kept.exists()
    stamp = kept.stat().st_mtime_ns
    assert planned() == (["acme.base", "acme.app"], [])  # read back: not written again
    assert kept.stat().st_mtime_ns == stamp
    (home / "config.toml").write_text('disabled = ["acme.base"]\n')
    assert planned() == ([], ["acme.app", "acme.base"])  # the config changed: planned again
    (home / "config.toml").write_text("")
    Store(home).remove(["acme.app"])  # a store change
    assert planned() == (["acme.base"], [])
