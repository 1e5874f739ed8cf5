"""Hooks: order, wrappers, results, history, async, errors and signatures, alone and in a host."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import write_plugin
from plugbay import LoadError, PluginState
from plugbay.hooks import HookCallError, HookImpl, HookResults, Hooks, HookSpec, HookSpecError
from plugbay.reload import ReloadError

# ---------------------------------------------------------------- helpers


def _hooks(*specs: HookSpec) -> Hooks:
    """Hooks holding only ``specs`` (no lifecycle hooks), so each test sees its own."""
    return Hooks(specs)


def _add(hooks: Hooks, hook: str, plugin_id: str, function: Any, **options: Any) -> HookImpl:
    impl = HookImpl(hook, plugin_id, function, **options)
    assert hooks.add(impl) is None
    return impl


def _appender(name: str, value: Any = None) -> Callable[[list[Any]], Any]:
    """An implementation of ``run(log)`` that logs ``name`` and returns ``value``."""

    def impl(log: list[Any]) -> Any:
        log.append(name)
        return value

    return impl


def _raiser(error: BaseException) -> Callable[[list[Any]], Any]:
    def impl(log: list[Any]) -> Any:
        log.append(f"raise {error!r}")
        raise error

    return impl


def _ids(hooks: Hooks, hook: str) -> list[str]:
    return [i.plugin_id for i in hooks.get(hook).implementations()]


def _problems(hooks: Hooks, code: str) -> list[str]:
    return [p.message for p in hooks.problems if p.code == code]


RUN = HookSpec("run", ("log",))


def _collector(plugin_id: str) -> str:
    """Code of a module whose ``collect(log)`` logs the plugin id and returns it."""
    return f"def collect(log):\n    log.append({plugin_id!r})\n    return {plugin_id!r}\n"


def _hook_plugin(
    root: Path,
    plugin_id: str,
    code: str,
    *hooks: Mapping[str, Any],
    activation: str | None = None,
    entry: str | None = None,
    contributes: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> Path:
    """A plugin whose module ``impl.py`` holds ``code`` and whose manifest lists ``hooks``."""
    return write_plugin(
        root,
        plugin_id,
        entry=entry,
        activation=activation,
        contributes={"hook": list(hooks), **(contributes or {})},
        code={"impl.py": code},
    )


def _modules_under(folder: Path) -> list[str]:
    out = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).is_relative_to(folder):
            out.append(name)
    return out


@pytest.fixture
def no_unawaited() -> Iterator[list[warnings.WarningMessage]]:
    """Record warnings, and fail if a coroutine was left un-awaited."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
        gc.collect()
    never = [str(w.message) for w in caught if "never awaited" in str(w.message)]
    assert never == []


# ---------------------------------------------------------------- ordering


@pytest.mark.parametrize(
    "added",
    [
        ["c.low", "b.high", "a.mid", "z.tie", "a.tie"],
        ["a.tie", "z.tie", "a.mid", "b.high", "c.low"],
        ["z.tie", "a.mid", "c.low", "a.tie", "b.high"],
    ],
)
def test_order_is_priority_then_plugin_id(added: list[str]) -> None:
    priority = {"b.high": 10, "a.mid": 5, "c.low": 0, "a.tie": 0, "z.tie": 0}
    hooks = _hooks(RUN)
    for pid in added:
        _add(hooks, "run", pid, _appender(pid, pid), priority=priority[pid])

    log: list[str] = []
    result = hooks.run(log=log)

    expected = ["b.high", "a.mid", "a.tie", "c.low", "z.tie"]
    assert log == expected
    assert result == expected
    assert _ids(hooks, "run") == expected


def test_after_and_before_override_priority() -> None:
    hooks = _hooks(RUN)
    # a.ten has the highest priority but must follow z.zero.
    _add(hooks, "run", "a.ten", _appender("a.ten"), priority=10, after=("z.zero",))
    _add(hooks, "run", "m.five", _appender("m.five"), priority=5)
    _add(hooks, "run", "z.zero", _appender("z.zero"))
    log: list[str] = []
    hooks.run(log=log)
    assert log == ["m.five", "z.zero", "a.ten"]

    hooks = _hooks(RUN)
    # y.low has the lowest priority but must come before b.high.
    _add(hooks, "run", "b.high", _appender("b.high"), priority=10)
    _add(hooks, "run", "y.low", _appender("y.low"), priority=-5, before=("b.high",))
    _add(hooks, "run", "c.mid", _appender("c.mid"))
    log = []
    hooks.run(log=log)
    assert log.index("y.low") < log.index("b.high")
    assert log == ["c.mid", "y.low", "b.high"]
    assert hooks.problems == []


def test_order_names_of_absent_or_own_plugins_are_ignored() -> None:
    hooks = _hooks(RUN)
    _add(hooks, "run", "a.one", _appender("a.one"), after=("not.here",), before=("a.one",))
    _add(hooks, "run", "b.two", _appender("b.two"), priority=1, after=("b.two",))
    log: list[str] = []
    hooks.run(log=log)
    assert log == ["b.two", "a.one"]
    assert hooks.problems == []


def test_order_cycle_is_reported_and_falls_back_to_priority_and_id() -> None:
    hooks = _hooks(RUN)
    _add(hooks, "run", "b.two", _appender("b.two"), after=("a.one",))
    _add(hooks, "run", "a.one", _appender("a.one"), after=("b.two",))
    _add(hooks, "run", "c.top", _appender("c.top"), priority=1)

    log: list[str] = []
    hooks.run(log=log)  # returns: a cycle must not hang the hook

    assert log == ["c.top", "a.one", "b.two"]
    (message,) = _problems(hooks, "hook.order-cycle")
    assert "hook run" in message
    assert "a.one" in message
    assert "b.two" in message
    assert "c.top" not in message
    # Working the order out again (tracing changes the dispatch) does not repeat the problem.
    hooks.trace(lambda *event: None)
    hooks.run(log=[])
    assert len(_problems(hooks, "hook.order-cycle")) == 1


def test_host_runs_implementations_from_several_plugins_in_order(
    make_host: Any, plugins_dir: Path
) -> None:
    for pid, options in {
        "acme.low": {"priority": -1},
        "acme.first": {"priority": 100, "after": ["zeta.last"]},
        "zeta.last": {"priority": 50},
        "beta.mid": {"priority": 10},
        "alpha.mid": {"priority": 10},
        "omega.early": {"before": ["beta.mid"]},
    }.items():
        _hook_plugin(
            plugins_dir,
            pid,
            _collector(pid),
            {"name": "collect", "entry": "impl:collect", **options},
        )
    host = make_host(plugins_dir)
    host.hooks.declare("collect", ("log",))
    host.start()

    log: list[str] = []
    assert host.hooks.collect(log=log) == log
    assert log == ["zeta.last", "acme.first", "alpha.mid", "omega.early", "beta.mid", "acme.low"]
    assert [i.plugin_id for i in host.hooks.collect.implementations()] == log


def test_host_reports_an_order_cycle_before_and_after_start(
    make_host: Any, plugins_dir: Path
) -> None:
    for pid, other in (("acme.one", "acme.two"), ("acme.two", "acme.one")):
        _hook_plugin(
            plugins_dir,
            pid,
            _collector(pid),
            {"name": "collect", "entry": "impl:collect", "after": [other]},
        )
    host = make_host(plugins_dir)
    host.hooks.declare("collect", ("log",))

    def cycles() -> list[str]:
        return [p.message for p in host.problems() if p.code == "hook.order-cycle"]

    (before,) = cycles()  # no plugin code was imported to find it
    assert "acme.one, acme.two form a cycle" in before
    assert host.state("acme.one") is PluginState.RESOLVED
    host.start()
    assert cycles() == [before]
    assert host.hooks.collect(log=[]) == ["acme.one", "acme.two"]
    assert cycles() == [before]


# ---------------------------------------------------------------- wrappers


def _wrapper(name: str, trail: list[str], extra: str | None = None) -> Callable[..., Any]:
    """A wrapper of ``run(log)`` that notes what it sees in ``trail``, and adds ``extra``."""

    def wrap(log: list[str]) -> Generator[None, Any, Any]:
        trail.append(f"{name}>")
        result = yield
        trail.append(f"<{name} saw {result}")
        return [*result, extra] if extra else result

    return wrap


def test_wrappers_run_around_the_others_outermost_first() -> None:
    hooks = _hooks(RUN)
    trail: list[str] = []
    _add(hooks, "run", "p.one", _appender("p.one", "one"), priority=100)
    _add(hooks, "run", "w.inner", _wrapper("inner", trail, "inner"), wrapper=True)
    _add(hooks, "run", "w.outer", _wrapper("outer", trail, "outer"), wrapper=True, priority=5)
    _add(hooks, "run", "p.two", _appender("p.two", "two"))

    log: list[str] = []
    result = hooks.run(log=log)

    assert trail == [
        "outer>",
        "inner>",
        "<inner saw ['one', 'two']",
        "<outer saw ['one', 'two', 'inner']",
    ]
    assert log == ["p.one", "p.two"]
    assert result == ["one", "two", "inner", "outer"]
    assert _ids(hooks, "run") == ["w.outer", "w.inner", "p.one", "p.two"]


def test_wrapper_replaces_the_result_with_what_it_returns() -> None:
    hooks = _hooks(HookSpec("pick", ("x",), firstresult=True))

    def double(x: int) -> Generator[None, int, int]:
        result = yield
        return result * 2

    _add(hooks, "pick", "w.double", double, wrapper=True)
    _add(hooks, "pick", "p.plain", lambda x: x + 1)
    assert hooks.pick(x=1) == 4
    assert hooks.pick(x=10) == 22


def test_wrapper_sees_an_implementation_error_and_may_swallow_it() -> None:
    hooks = _hooks(RUN)
    seen: list[HookCallError] = []

    def rescue(log: list[str]) -> Generator[None, Any, Any]:
        try:
            yield
        except HookCallError as exc:
            seen.append(exc)
            return ["recovered"]
        return None

    _add(hooks, "run", "w.rescue", rescue, wrapper=True)
    _add(hooks, "run", "p.bad", _raiser(ValueError("boom")))

    assert hooks.run(log=[]) == ["recovered"]
    (error,) = seen
    assert error.plugin_id == "p.bad"
    assert error.hook == "run"
    assert isinstance(error.error, ValueError)


def test_wrapper_lets_an_error_through() -> None:
    hooks = _hooks(RUN)
    trail: list[str] = []

    def observe(log: list[str]) -> Generator[None, Any, Any]:
        try:
            return (yield)
        finally:
            trail.append("cleaned up")

    _add(hooks, "run", "w.observe", observe, wrapper=True)
    _add(hooks, "run", "p.bad", _raiser(KeyError("k")))
    with pytest.raises(HookCallError, match=r"hook run: .*p\.bad raised KeyError") as info:
        hooks.run(log=[])
    assert info.value.plugin_id == "p.bad"
    assert trail == ["cleaned up"]


def test_wrapper_own_error_names_the_wrapper() -> None:
    hooks = _hooks(RUN)

    def broken(log: list[str]) -> Generator[None, Any, Any]:
        yield
        raise RuntimeError("wrapper broke")

    _add(hooks, "run", "w.broken", broken, wrapper=True)
    _add(hooks, "run", "p.fine", _appender("p.fine", 1))
    with pytest.raises(HookCallError, match="wrapper broke") as info:
        hooks.run(log=[])
    assert info.value.plugin_id == "w.broken"


def test_wrapper_that_does_not_yield_is_an_error_and_outer_wrappers_see_it() -> None:
    hooks = _hooks(RUN)
    trail: list[Any] = []

    def outer(log: list[str]) -> Generator[None, Any, Any]:
        try:
            return (yield)
        except HookCallError as exc:
            trail.append(exc.plugin_id)
            raise

    def lazy(log: list[str]) -> Generator[None, Any, Any]:
        if log is not None:  # always: this generator returns before its first yield
            return None
        yield

    _add(hooks, "run", "w.outer", outer, wrapper=True, priority=1)
    _add(hooks, "run", "w.noyield", lazy, wrapper=True)
    _add(hooks, "run", "p.plain", _appender("p.plain"))
    log: list[str] = []
    with pytest.raises(HookCallError, match=r"w\.noyield.*did not yield") as info:
        hooks.run(log=log)
    assert info.value.plugin_id == "w.noyield"
    assert trail == ["w.noyield"]  # the outer wrapper was not left suspended
    assert log == []


def test_wrapper_that_yields_twice_is_an_error() -> None:
    hooks = _hooks(RUN)

    def twice(log: list[str]) -> Generator[None, Any, Any]:
        yield
        yield

    _add(hooks, "run", "w.twice", twice, wrapper=True)
    _add(hooks, "run", "p.plain", _appender("p.plain"))
    with pytest.raises(HookCallError, match=r"w\.twice.*yielded twice") as info:
        hooks.run(log=[])
    assert info.value.plugin_id == "w.twice"


def test_wrapper_must_be_a_generator_function() -> None:
    hooks = _hooks(RUN)
    with pytest.raises(HookSpecError, match=r"a\.plain: hook run .*wrapper.*generator"):
        hooks.add(HookImpl("run", "a.plain", _appender("a.plain"), wrapper=True))
    assert hooks.run(log=[]) == []


def test_wrappers_through_a_host(make_host: Any, plugins_dir: Path) -> None:
    code = """\
        def collect(log):
            log.append("plain")
            return "plain"

        def around(log):
            log.append("before")
            result = yield
            log.append("after")
            return [r.upper() for r in result]

        def not_a_generator(log):
            return None
    """
    _hook_plugin(plugins_dir, "acme.plain", code, {"name": "collect", "entry": "impl:collect"})
    _hook_plugin(
        plugins_dir,
        "acme.wrapper",
        code,
        {"name": "collect", "entry": "impl:around", "wrapper": True},
    )
    _hook_plugin(
        plugins_dir,
        "acme.badwrap",
        code,
        {"name": "collect", "entry": "impl:not_a_generator", "wrapper": True},
    )
    host = make_host(plugins_dir)
    host.hooks.declare("collect", ("log",))
    host.start()

    log: list[str] = []
    assert host.hooks.collect(log=log) == ["PLAIN"]
    assert log == ["before", "plain", "after"]
    assert host.state("acme.badwrap") is PluginState.FAILED
    reason = host.status()[0].reason
    assert "wrapper = true" in reason
    assert "generator" in reason


# ---------------------------------------------------------------- firstresult


def test_firstresult_stops_at_the_first_value_that_is_not_none() -> None:
    hooks = _hooks(HookSpec("run", ("log",), firstresult=True))
    _add(hooks, "run", "a.none", _appender("a.none"), priority=3)
    _add(hooks, "run", "b.zero", _appender("b.zero", 0), priority=2)  # falsy, but a result
    _add(hooks, "run", "c.late", _appender("c.late", "late"), priority=1)

    log: list[str] = []
    assert hooks.run(log=log) == 0
    assert log == ["a.none", "b.zero"]


def test_firstresult_is_none_when_every_implementation_returns_none() -> None:
    hooks = _hooks(HookSpec("run", ("log",), firstresult=True))
    for pid in ("a.one", "b.two"):
        _add(hooks, "run", pid, _appender(pid))
    log: list[str] = []
    assert hooks.run(log=log) is None
    assert log == ["a.one", "b.two"]
    assert _hooks(HookSpec("run", ("log",), firstresult=True)).run(log=[]) is None


# ---------------------------------------------------------------- historic


def test_historic_calls_are_replayed_to_implementations_added_later() -> None:
    hooks = _hooks(HookSpec("configure", ("config",), historic=True))
    hooks.configure(config={"n": 1})
    hooks.configure(config={"n": 2})

    seen: list[int] = []
    _add(hooks, "configure", "a.late", lambda config: seen.append(config["n"]))
    assert seen == [1, 2]

    hooks.configure(config={"n": 3})
    assert seen == [1, 2, 3]  # a new call reaches it once, and the history is not replayed
    other: list[int] = []
    _add(hooks, "configure", "b.later", lambda config: other.append(config["n"]))
    assert other == [1, 2, 3]
    assert seen == [1, 2, 3]


def test_historic_replay_failure_is_reported_not_raised() -> None:
    hooks = _hooks(HookSpec("configure", ("config",), historic=True))
    hooks.configure(config={})
    _add(hooks, "configure", "a.bad", lambda config: config["missing"])
    (message,) = _problems(hooks, "hook.replay")
    assert "a.bad" in message
    assert "KeyError" in message


def test_historic_hook_cannot_be_firstresult() -> None:
    with pytest.raises(HookSpecError, match="historic hook cannot be firstresult"):
        _hooks(HookSpec("h", ("x",), historic=True, firstresult=True))


def test_historic_hook_through_a_host(make_host: Any, plugins_dir: Path) -> None:
    _hook_plugin(
        plugins_dir,
        "acme.conf",
        "SEEN = []\ndef configure(settings):\n    settings['seen_by'].append('acme.conf')\n",
        {"name": "configure", "entry": "impl:configure"},
    )
    host = make_host(plugins_dir)
    host.hooks.declare("configure", ("settings",), historic=True)
    settings: dict[str, list[str]] = {"seen_by": []}
    host.hooks.configure(settings=settings)  # before the host starts: nobody listens yet

    host.start()
    assert settings["seen_by"] == ["acme.conf"]
    assert host.state("acme.conf") is PluginState.STARTED


# ---------------------------------------------------------------- async


def test_acall_is_sequential_and_keeps_order() -> None:
    hooks = _hooks(RUN)
    running: list[int] = []

    def slow(n: int) -> Callable[[list[str]], Any]:
        async def impl(log: list[str]) -> str:
            running.append(1)
            assert len(running) == 1  # sequential: never two at a time
            await asyncio.sleep(0.01 * (3 - n))  # the first sleeps longest
            log.append(f"async{n}")
            running.pop()
            return f"async{n}"

        return impl

    for n in range(3):
        _add(hooks, "run", f"p.async{n}", slow(n), priority=10 - n)
    _add(hooks, "run", "p.sync", _appender("sync", "sync"))

    log: list[str] = []
    result = asyncio.run(hooks.run.acall(log=log))
    assert log == ["async0", "async1", "async2", "sync"]
    assert result == log


def test_acall_firstresult_and_collect() -> None:
    hooks = _hooks(HookSpec("run", ("log",), firstresult=True))

    async def nothing(log: list[str]) -> None:
        log.append("nothing")

    async def value(log: list[str]) -> str:
        log.append("value")
        return "v"

    _add(hooks, "run", "a.nothing", nothing, priority=2)
    _add(hooks, "run", "b.value", value, priority=1)
    _add(hooks, "run", "c.never", _appender("never", "never"))
    log: list[str] = []
    assert asyncio.run(hooks.run.acall(log=log)) == "v"
    assert log == ["nothing", "value"]

    hooks = _hooks(HookSpec("run", ("log",), on_error="collect"))

    async def bad(log: list[str]) -> None:
        raise ValueError("async boom")

    _add(hooks, "run", "a.bad", bad, priority=1)
    _add(hooks, "run", "b.value", value)
    outcome = asyncio.run(hooks.run.acall(log=[]))
    assert isinstance(outcome, HookResults)
    assert outcome.results == ["v"]
    (error,) = outcome.errors
    assert error.plugin_id == "a.bad"
    assert isinstance(error.__cause__, ValueError)


def test_acall_concurrent_runs_implementations_together() -> None:
    hooks = _hooks(HookSpec("run", ("log",), concurrent=True))
    state = {"running": 0, "most": 0}

    def sleeper(n: int) -> Callable[[list[str]], Any]:
        async def impl(log: list[str]) -> int:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
            await asyncio.sleep(0.05)
            state["running"] -= 1
            return n

        return impl

    for n in range(100):
        _add(hooks, "run", f"p.n{n:03d}", sleeper(n))

    t0 = time.perf_counter()
    result = asyncio.run(hooks.run.acall(log=[]))
    elapsed = time.perf_counter() - t0

    assert result == list(range(100))  # results in implementation order
    assert state["most"] == 100
    assert elapsed < 2.5  # 100 x 0.05 s one after the other would be 5 s


def test_acall_timeout_names_the_plugin_and_says_it_timed_out() -> None:
    hooks = _hooks(HookSpec("run", ("log",), timeout=0.1))

    async def hang(log: list[str]) -> None:
        await asyncio.Event().wait()  # never set

    _add(hooks, "run", "p.fine", _appender("p.fine", "fine"), priority=1)
    _add(hooks, "run", "p.hang", hang)
    with pytest.raises(HookCallError, match=r"p\.hang.*timed out") as info:
        asyncio.run(hooks.run.acall(log=[]))
    assert info.value.plugin_id == "p.hang"
    assert isinstance(info.value.error, TimeoutError)


def test_acall_timeout_error_raised_by_an_implementation_is_its_own() -> None:
    hooks = _hooks(RUN)  # no timeout in the spec
    _add(hooks, "run", "p.sync", _raiser(TimeoutError("upstream slow")))
    with pytest.raises(HookCallError, match="upstream slow") as info:
        asyncio.run(hooks.run.acall(log=[]))
    assert info.value.plugin_id == "p.sync"

    hooks = _hooks(HookSpec("run", ("log",), timeout=5))

    async def own(log: list[str]) -> None:
        raise TimeoutError("upstream slow")

    _add(hooks, "run", "p.async", own)
    with pytest.raises(HookCallError, match="upstream slow") as info:
        asyncio.run(hooks.run.acall(log=[]))
    assert "timed out" not in str(info.value)


def test_acall_with_wrappers() -> None:
    hooks = _hooks(RUN)
    trail: list[str] = []
    _add(hooks, "run", "w.wrap", _wrapper("wrap", trail, "wrapped"), wrapper=True)

    async def value(log: list[str]) -> str:
        await asyncio.sleep(0)
        return "v"

    _add(hooks, "run", "p.value", value)
    assert asyncio.run(hooks.run.acall(log=[])) == ["v", "wrapped"]
    assert trail == ["wrap>", "<wrap saw ['v']"]


def test_sync_call_of_an_async_implementation_is_a_clear_error(
    no_unawaited: list[warnings.WarningMessage],
) -> None:
    hooks = _hooks(RUN)

    async def later(log: list[str]) -> str:
        log.append("ran")
        return "later"

    _add(hooks, "run", "p.async", later)
    log: list[str] = []
    for _ in range(2):  # the first call and the compiled path
        with pytest.raises(HookCallError, match=r"p\.async.*acall") as info:
            hooks.run(log=log)
        assert info.value.plugin_id == "p.async"
    assert log == []


def test_async_implementation_in_a_collecting_hook_is_collected(
    no_unawaited: list[warnings.WarningMessage],
) -> None:
    hooks = _hooks(HookSpec("run", ("log",), on_error="collect"))

    async def later(log: list[str]) -> None:
        log.append("ran")

    _add(hooks, "run", "a.async", later, priority=1)
    _add(hooks, "run", "b.sync", _appender("b.sync", "sync"))
    outcome = hooks.run(log=[])
    assert outcome.results == ["sync"]
    (error,) = outcome.errors
    assert error.plugin_id == "a.async"
    assert "acall" in str(error)


# ---------------------------------------------------------------- errors


def test_error_raises_hook_call_error_naming_hook_and_plugin() -> None:
    hooks = _hooks(RUN)
    original = ValueError("bad value")
    _add(hooks, "run", "a.good", _appender("a.good"), priority=1)
    _add(hooks, "run", "b.bad", _raiser(original))
    _add(hooks, "run", "c.after", _appender("c.after"), priority=-1)

    for _ in range(2):  # the first call and the compiled path
        log: list[str] = []
        with pytest.raises(HookCallError) as info:
            hooks.run(log=log)
        error = info.value
        assert error.hook == "run"
        assert error.plugin_id == "b.bad"
        assert error.__cause__ is original
        assert error.error is original
        assert str(error) == "hook run: the implementation from b.bad raised ValueError: bad value"
        assert log == ["a.good", f"raise {original!r}"]  # c.after was not called


def test_collect_calls_every_implementation_and_returns_results_and_errors() -> None:
    hooks = _hooks(HookSpec("run", ("log",), on_error="collect"))
    _add(hooks, "run", "a.one", _appender("a.one", 1), priority=3)
    _add(hooks, "run", "b.bad", _raiser(KeyError("x")), priority=2)
    _add(hooks, "run", "c.none", _appender("c.none"), priority=1)
    _add(hooks, "run", "d.two", _appender("d.two", 2))

    log: list[Any] = []
    outcome = hooks.run(log=log)
    assert outcome == HookResults([1, 2], outcome.errors)
    assert not outcome.ok
    (error,) = outcome.errors
    assert error.plugin_id == "b.bad"
    assert isinstance(error.__cause__, KeyError)
    assert log == ["a.one", "raise KeyError('x')", "c.none", "d.two"]
    assert _hooks(HookSpec("run", ("log",), on_error="collect")).run(log=[]).ok


def test_implementation_may_call_its_own_hook_again() -> None:
    hooks = _hooks(HookSpec("countdown", ("n", "log")))

    def step(n: int, log: list[int]) -> int:
        log.append(n)
        return n if n == 0 else sum(hooks.countdown(n=n - 1, log=log)) + n

    _add(hooks, "countdown", "a.rec", step)
    for _ in range(2):  # the first call compiles while a call is running
        log: list[int] = []
        assert hooks.countdown(n=5, log=log) == [15]
        assert log == [5, 4, 3, 2, 1, 0]

    traced: list[str] = []
    hooks.trace(lambda event, *rest: traced.append(event))
    assert hooks.countdown(n=2, log=[]) == [3]
    assert traced.count("call") == 3


def test_reentrant_acall() -> None:
    hooks = _hooks(HookSpec("countdown", ("n",)))

    async def step(n: int) -> int:
        if n == 0:
            return 0
        (below,) = await hooks.countdown.acall(n=n - 1)
        return below + n

    _add(hooks, "countdown", "a.rec", step)
    assert asyncio.run(hooks.countdown.acall(n=4)) == [10]


# ---------------------------------------------------------------- signatures


def test_implementation_taking_an_argument_the_spec_lacks_is_refused_when_added() -> None:
    hooks = _hooks(HookSpec("before_tool_execute", ("tool", "args")))

    def wrong(tool: str, user: str) -> None:
        raise AssertionError("never called")

    with pytest.raises(HookSpecError) as info:
        hooks.add(HookImpl("before_tool_execute", "a.wrong", wrong))
    message = str(info.value)
    assert "a.wrong" in message
    assert "before_tool_execute" in message
    assert "'user'" in message
    assert "tool, args" in message  # what it could take instead
    assert hooks.before_tool_execute.implementations() == []


class _Impl:
    """A plugin object with a hook method."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def before_tool_execute(self, args: Any) -> str:
        self.seen.append(args)
        return "method"


def test_implementations_may_take_a_subset_kwargs_or_be_methods() -> None:
    hooks = _hooks(HookSpec("before_tool_execute", ("tool", "args")))
    got: dict[str, Any] = {}

    def only_tool(tool: str) -> str:
        got["only_tool"] = tool
        return "subset"

    def reversed_order(args: Any, tool: str) -> str:
        got["reversed"] = (tool, args)
        return "reversed"

    def keyword_only(*, tool: str, args: Any) -> str:
        got["kwonly"] = (tool, args)
        return "kwonly"

    def everything(**kwargs: Any) -> str:
        got["kwargs"] = kwargs
        return "kwargs"

    def optional(tool: str, args: Any = None, verbose: bool = False) -> str:
        got["optional"] = (tool, args, verbose)
        return "optional"

    def nothing() -> str:
        return "nothing"

    obj = _Impl()
    functions = [only_tool, reversed_order, keyword_only, everything, optional, nothing]
    for n, fn in enumerate(functions):
        _add(hooks, "before_tool_execute", f"p.f{n}", fn)
    _add(hooks, "before_tool_execute", "p.method", obj.before_tool_execute)
    _add(hooks, "before_tool_execute", "p.lambda", lambda tool, args: f"{tool}{args}")

    for _ in range(2):  # the first call and the compiled path
        result = hooks.before_tool_execute(tool="ls", args=["-l"])
        assert result == [
            "subset",
            "reversed",
            "kwonly",
            "kwargs",
            "optional",
            "nothing",
            "ls['-l']",
            "method",
        ]
        assert got == {
            "only_tool": "ls",
            "reversed": ("ls", ["-l"]),
            "kwonly": ("ls", ["-l"]),
            "kwargs": {"tool": "ls", "args": ["-l"]},
            "optional": ("ls", ["-l"], False),  # a default the spec provides is passed
        }
        assert obj.seen[-1] == ["-l"]
    assert asyncio.run(hooks.before_tool_execute.acall(tool="ls", args=["-l"]))[:5] == [
        "subset",
        "reversed",
        "kwonly",
        "kwargs",
        "optional",
    ]


def test_spec_arguments_may_use_any_identifier() -> None:
    names = ("results", "errors", "kwargs", "r", "exc", "tracer", "outcome", "teardowns", "self")
    hooks = _hooks(HookSpec("odd", names))

    def wrap(**kwargs: Any) -> Generator[None, Any, Any]:
        return (yield)

    _add(hooks, "odd", "p.all", lambda **kwargs: kwargs)
    _add(hooks, "odd", "p.wrap", wrap, wrapper=True)
    call = {name: name.upper() for name in names}
    assert hooks.odd(**call) == [call]
    assert hooks.odd(**call) == [call]
    assert asyncio.run(hooks.odd.acall(**call)) == [call]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("class",), "'class' is not .*identifier|keyword"),
        (("a", "a"), "'a' is listed twice"),
        (("_private",), "'_private'"),
    ],
)
def test_declare_refuses_arguments_that_cannot_be_keyword_names(
    args: tuple[str, ...], match: str
) -> None:
    with pytest.raises(HookSpecError, match=match):
        _hooks(HookSpec("h", args))


def test_signature_is_checked_when_the_plugin_loads(make_host: Any, plugins_dir: Path) -> None:
    code = "CALLED = []\ndef before(tool, bogus):\n    CALLED.append(tool)\n"
    _hook_plugin(
        plugins_dir,
        "acme.sig",
        code,
        {"name": "before_tool_execute", "entry": "impl:before"},
        activation="eager",
    )
    host = make_host(plugins_dir)
    host.hooks.declare("before_tool_execute", ("tool", "args"))
    host.start()  # nobody calls the hook

    assert host.state("acme.sig") is PluginState.FAILED
    reason = host.status()[0].reason
    assert "before_tool_execute" in reason
    assert "'bogus'" in reason
    assert host.hooks.before_tool_execute.implementations() == []
    assert host.hooks.before_tool_execute(tool="ls", args=[]) == []


def test_method_of_the_plugin_object_is_used_without_an_entry(
    make_host: Any, plugins_dir: Path
) -> None:
    code = """\
        class Plugin:
            def collect(self, log):
                log.append(type(self).__name__)
                return "method"
    """
    _hook_plugin(plugins_dir, "acme.method", code, {"name": "collect"}, entry="impl:Plugin")
    _hook_plugin(plugins_dir, "acme.nomethod", code, {"name": "missing"}, entry="impl:Plugin")
    host = make_host(plugins_dir)
    host.hooks.declare("collect", ("log",))
    host.hooks.declare("missing", ())
    host.start()

    log: list[str] = []
    assert host.hooks.collect(log=log) == ["method"]
    assert log == ["Plugin"]
    assert host.hooks.missing() == []
    assert host.state("acme.nomethod") is PluginState.FAILED
    assert "has no method missing" in (host.status()[1].reason or "")


def test_register_may_add_hook_implementations(make_host: Any, plugins_dir: Path) -> None:
    code = """\
        def collect(log):
            log.append("added")
            return "added"

        def wrong(log, other):
            return None

        class Plugin:
            def register(self, api):
                api.add("hook", "collect", collect)

        class Bad:
            def register(self, api):
                api.add("hook", "collect", wrong)
    """
    _hook_plugin(plugins_dir, "acme.reg", code, entry="impl:Plugin", activation="eager")
    _hook_plugin(plugins_dir, "acme.badreg", code, entry="impl:Bad", activation="eager")
    host = make_host(plugins_dir)
    host.hooks.declare("collect", ("log",))
    host.start()
    assert host.hooks.collect(log=[]) == ["added"]
    assert host.state("acme.badreg") is PluginState.FAILED
    assert "'other'" in (host.status()[0].reason or "")


# ---------------------------------------------------------------- undeclared hooks


def test_undeclared_hook_is_reported_and_activated_when_declared_later(
    make_host: Any, plugins_dir: Path
) -> None:
    _hook_plugin(
        plugins_dir,
        "acme.early",
        "THING = 'thing'\ndef colect(log):\n    log.append('early')\n    return 'early'\n",
        {"name": "colect", "entry": "impl:colect"},
        contributes={"tool": [{"name": "thing", "entry": "impl:THING"}]},
        activation="eager",
    )
    host = make_host(plugins_dir, kinds={"tool": None})
    host.hooks.declare("collect", ("log",))

    (problem,) = [p for p in host.problems() if p.code == "hook.unknown"]
    assert problem.plugin_id == "acme.early"
    assert "colect" in problem.message
    assert 'did you mean "collect"' in problem.message

    host.start()
    assert host.state("acme.early") is PluginState.STARTED
    assert host.get("tool", "thing") == "thing"
    assert [p.code for p in host.problems()].count("hook.unknown") == 1

    host.hooks.declare("colect", ("log",))
    log: list[str] = []
    assert host.hooks.colect(log=log) == ["early"]
    assert _problems(host.hooks, "hook.unknown") == []
    assert "hook.unknown" not in [p.code for p in host.problems()]


def test_undeclared_hook_is_not_reported_by_a_host_without_kinds(
    make_host: Any, plugins_dir: Path
) -> None:
    _hook_plugin(
        plugins_dir, "acme.free", _collector("acme.free"), {"name": "free", "entry": "impl:x"}
    )
    host = make_host(plugins_dir)
    assert "hook.unknown" not in [p.code for p in host.problems()]
    host.start()
    assert "hook.unknown" not in [p.code for p in host.problems()]


def test_declaring_one_hook_keeps_the_problems_of_others() -> None:
    hooks = _hooks()
    hooks.add(HookImpl("on_thing", "a.one", _appender("a.one")))
    hooks.declare("on", ("log",))  # a prefix of on_thing
    (message,) = _problems(hooks, "hook.unknown")
    assert "on_thing" in message


def test_pending_implementation_that_does_not_fit_is_reported_when_declared() -> None:
    hooks = _hooks()
    hooks.add(HookImpl("later", "a.wrong", lambda log, extra: None))
    hooks.add(HookImpl("later", "b.right", _appender("b.right", "ok")))
    hooks.declare("later", ("log",))  # does not raise: the host is not at fault
    assert hooks.later(log=[]) == ["ok"]
    (message,) = _problems(hooks, "hook.signature")
    assert "a.wrong" in message
    assert "'extra'" in message


# ---------------------------------------------------------------- lazy plugins


def test_lazy_plugin_is_loaded_on_the_first_call_of_its_hook(
    make_host: Any, plugins_dir: Path
) -> None:
    folder = _hook_plugin(
        plugins_dir,
        "acme.lazy",
        _collector("acme.lazy"),
        {"name": "collect", "entry": "impl:collect"},
    )
    host = make_host(plugins_dir)
    host.hooks.declare("collect", ("log",))
    host.start()
    assert host.state("acme.lazy") is PluginState.RESOLVED
    assert _modules_under(folder) == []

    log: list[str] = []
    assert host.hooks.collect(log=log) == ["acme.lazy"]
    assert host.state("acme.lazy") is PluginState.STARTED
    assert _modules_under(folder) != []
    assert log == ["acme.lazy"]


def test_plugin_that_fails_to_load_is_skipped_and_reported(
    make_host: Any, plugins_dir: Path
) -> None:
    _hook_plugin(
        plugins_dir,
        "acme.broken",
        "raise ImportError('missing dependency')\n",
        {"name": "collect", "entry": "impl:collect", "priority": 10},
    )
    for pid in ("acme.one", "acme.two"):
        _hook_plugin(
            plugins_dir, pid, _collector(pid), {"name": "collect", "entry": "impl:collect"}
        )
    host = make_host(plugins_dir)
    host.hooks.declare("collect", ("log",))
    host.start()

    log: list[str] = []
    assert host.hooks.collect(log=log) == ["acme.one", "acme.two"]
    assert host.state("acme.broken") is PluginState.FAILED
    assert "missing dependency" in (host.status()[0].reason or "")
    (problem,) = [p for p in host.hooks.problems if p.code == "hook.unavailable"]
    assert problem.plugin_id == "acme.broken"
    assert "missing dependency" in problem.message

    assert host.hooks.collect(log=[]) == ["acme.one", "acme.two"]
    assert len([p for p in host.hooks.problems if p.code == "hook.unavailable"]) == 1


def test_lazy_plugin_may_use_the_hook_that_loads_it(make_host: Any, plugins_dir: Path) -> None:
    # Loading happens in a worker thread while the first call is under way: the call must
    # not hold a lock that the plugin's register() or init() needs.
    code = """\
        def collect(log):
            log.append("manifest")
            return "manifest"

        def added(log):
            log.append("added")
            return "added"

        class Plugin:
            def register(self, api):
                api.add("hook", "collect", added)

            def init(self, ctx):
                ctx.shared["during init"] = ctx.shared["host"].hooks.collect(log=[])
    """
    _hook_plugin(
        plugins_dir,
        "acme.self",
        code,
        {"name": "collect", "entry": "impl:collect"},
        entry="impl:Plugin",
    )
    host = make_host(plugins_dir, load_timeout=5)
    host.shared["host"] = host
    host.hooks.declare("collect", ("log",))
    host.start()

    log: list[str] = []
    result = host.hooks.collect(log=log)
    assert host.state("acme.self") is PluginState.STARTED
    assert sorted(result) == ["added", "manifest"]
    assert sorted(host.shared["during init"]) == ["added", "manifest"]
    assert sorted(host.hooks.collect(log=[])) == ["added", "manifest"]


def test_restart_does_not_duplicate_implementations(make_host: Any, plugins_dir: Path) -> None:
    _hook_plugin(
        plugins_dir,
        "acme.again",
        _collector("acme.again"),
        {"name": "collect", "entry": "impl:collect"},
    )
    host = make_host(plugins_dir)
    host.hooks.declare("collect", ("log",))
    host.start()
    assert host.hooks.collect(log=[]) == ["acme.again"]
    host.restart("acme.again")
    assert host.hooks.collect(log=[]) == ["acme.again"]
    host.stop()
    assert host.hooks.collect(log=[]) == []


# ---------------------------------------------------------------- lifecycle hooks

WATCHER = """\
class Plugin:
    def init(self, ctx):
        self.events = ctx.shared["events"]

    def host_start(self, host):
        self.events.append(("host_start", host.app))

    def host_stop(self, host):
        self.events.append(("host_stop", host.app))

    def plugin_loaded(self, plugin_id, version):
        self.events.append(("plugin_loaded", plugin_id, version))

    def plugin_failed(self, plugin_id, reason):
        self.events.append(("plugin_failed", plugin_id, reason))

    def plugin_unloaded(self, plugin_id):
        self.events.append(("plugin_unloaded", plugin_id))

    def before_reload(self, plugin_id):
        self.events.append(("before_reload", plugin_id))

    def after_reload(self, plugin_id, ok, error):
        self.events.append(("after_reload", plugin_id, ok, error))
"""

LIFECYCLE = (
    "host_start",
    "host_stop",
    "plugin_loaded",
    "plugin_failed",
    "plugin_unloaded",
    "before_reload",
    "after_reload",
)


def test_plugins_receive_lifecycle_events_as_hooks(make_host: Any, plugins_dir: Path) -> None:
    _hook_plugin(
        plugins_dir,
        "acme.watch",
        WATCHER,
        *({"name": name} for name in LIFECYCLE),
        entry="impl:Plugin",
        activation="eager",
    )
    after_watch = {"acme.watch": "*"}
    write_plugin(plugins_dir, "acme.good", "2.0.0", activation="eager", dependencies=after_watch)
    write_plugin(
        plugins_dir,
        "acme.bad",
        activation="eager",
        entry="life:Plugin",
        dependencies=after_watch,
        code={"life.py": "class Plugin:\n    def start(self):\n        raise OSError('no disk')\n"},
    )
    write_plugin(plugins_dir, "acme.later", dependencies=after_watch)
    host = make_host(plugins_dir)
    host.shared["events"] = events = []

    host.start()
    assert ("plugin_loaded", "acme.watch", "1.0.0") in events
    assert ("plugin_loaded", "acme.good", "2.0.0") in events
    (failed,) = [e for e in events if e[0] == "plugin_failed"]
    assert failed[1] == "acme.bad"
    assert "no disk" in failed[2]
    assert events[-1] == ("host_start", "testapp")

    host.load("acme.later")
    assert events[-1] == ("plugin_loaded", "acme.later", "1.0.0")

    del events[:]
    assert host.reload("acme.later").ok
    assert events[0] == ("before_reload", "acme.later")
    assert events[-1] == ("after_reload", "acme.later", True, None)
    (plugins_dir / "acme.later" / "plugin.toml").write_text("broken = [")
    with pytest.raises(ReloadError):
        host.reload("acme.later")
    (refused,) = [e for e in events if e[0] == "after_reload" and not e[2]]
    assert refused[1] == "acme.later"
    assert "plugin.toml" in refused[3]

    host.stop()
    stopping = events[events.index(("host_stop", "testapp")) :]
    assert ("plugin_unloaded", "acme.good") in stopping
    assert ("plugin_unloaded", "acme.later") in stopping
    assert host.state("acme.good") is PluginState.STOPPED


NOISY = """\
def explode(**kwargs):
    raise RuntimeError("subscriber exploded")

async def coroutine(**kwargs):
    return None

def no_yield(**kwargs):
    if kwargs:
        return None
    yield
"""


@pytest.mark.parametrize(
    ("fn", "logged"),
    [
        ("explode", "RuntimeError: subscriber exploded"),
        ("coroutine", "returned a coroutine"),
        ("no_yield", "did not yield"),
    ],
)
def test_lifecycle_subscriber_that_fails_does_not_break_the_lifecycle(
    make_host: Any, plugins_dir: Path, caplog: pytest.LogCaptureFixture, fn: str, logged: str
) -> None:
    wrapper = {"wrapper": True} if fn == "no_yield" else {}
    hooks = [{"name": name, "entry": f"impl:{fn}", **wrapper} for name in LIFECYCLE]
    _hook_plugin(plugins_dir, "acme.noisy", NOISY, *hooks, activation="eager")
    _hook_plugin(
        plugins_dir,
        "acme.watch",
        WATCHER,
        *({"name": name} for name in LIFECYCLE),
        entry="impl:Plugin",
        activation="eager",
    )
    write_plugin(plugins_dir, "acme.good", activation="eager", dependencies={"acme.noisy": "*"})
    host = make_host(plugins_dir)
    host.shared["events"] = events = []

    with caplog.at_level(logging.WARNING, logger="plugbay"):
        host.start()
        assert host.state("acme.good") is PluginState.STARTED
        host.stop()

    for pid in ("acme.noisy", "acme.good", "acme.watch"):
        assert host.state(pid) is PluginState.STOPPED
    messages = [r.getMessage() for r in caplog.records if "acme.noisy" in r.getMessage()]
    assert messages
    assert all(logged in m for m in messages)
    if fn != "no_yield":  # a wrapper's failure ends that call; a plain one's does not
        assert ("host_start", "testapp") in events
        assert ("host_stop", "testapp") in events
        assert ("plugin_loaded", "acme.good", "1.0.0") in events


# ---------------------------------------------------------------- tracing


def test_trace_reports_calls_implementations_results_and_errors() -> None:
    hooks = _hooks(RUN)
    _add(hooks, "run", "a.one", _appender("a.one", 1), priority=1)
    _add(hooks, "run", "b.two", _appender("b.two", 2))
    assert hooks.run(log=[]) == [1, 2]  # compiled before tracing starts

    events: list[tuple[Any, ...]] = []
    hooks.trace(lambda event, hook, pid, kwargs, value, s: events.append((event, hook, pid, value)))
    log: list[str] = []
    assert hooks.run(log=log) == [1, 2]
    assert events == [
        ("call", "run", None, None),
        ("impl", "run", "a.one", None),
        ("impl", "run", "b.two", None),
        ("result", "run", None, [1, 2]),
    ]

    events.clear()
    _add(hooks, "run", "c.bad", _raiser(ValueError("x")), priority=-1)
    with pytest.raises(HookCallError):
        hooks.run(log=[])
    assert [e[:3] for e in events] == [
        ("call", "run", None),
        ("impl", "run", "a.one"),
        ("impl", "run", "b.two"),
        ("impl", "run", "c.bad"),
        ("error", "run", None),
    ]
    assert isinstance(events[-1][3], HookCallError)

    events.clear()
    hooks.trace(None)
    hooks.remove_plugin("c.bad")
    assert hooks.run(log=[]) == [1, 2]
    assert hooks.run(log=[]) == [1, 2]
    assert events == []


def test_trace_passes_the_call_arguments_and_timings() -> None:
    hooks = _hooks(RUN)
    _add(hooks, "run", "a.one", _appender("a.one", 1))
    seen: list[tuple[str, dict[str, Any], float]] = []
    hooks.trace(lambda event, hook, pid, kwargs, value, s: seen.append((event, kwargs, s)))
    log: list[str] = []
    hooks.run(log=log)
    assert [(e, kw) for e, kw, _ in seen] == [
        ("call", {"log": log}),
        ("impl", {"log": log}),
        ("result", {"log": log}),
    ]
    assert all(s >= 0 for *_, s in seen)


def test_tracer_that_raises_is_not_blamed_on_a_plugin() -> None:
    hooks = _hooks(RUN)
    _add(hooks, "run", "a.one", _appender("a.one", 1))

    def tracer(event: str, *rest: Any) -> None:
        if event == "impl":
            raise RuntimeError("tracer bug")

    hooks.trace(tracer)
    with pytest.raises(RuntimeError, match="tracer bug"):
        hooks.run(log=[])


# ---------------------------------------------------------------- calling wrongly


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({}, "missing log"),
        ({"log": [], "extra": 1}, "unexpected extra"),
        ({"extra": 1}, "missing log; unexpected extra"),
    ],
)
def test_calling_with_wrong_arguments_says_how_to_call(
    kwargs: dict[str, Any], problem: str
) -> None:
    hooks = _hooks(RUN)
    _add(hooks, "run", "a.one", _appender("a.one"))
    hooks.run(log=[])  # compiled now: later calls take the fast path
    for _ in range(2):
        with pytest.raises(HookSpecError) as info:
            hooks.run(**kwargs)
        assert str(info.value) == f"hook run called with {problem}; call it as run(log=…)"
    with pytest.raises(HookSpecError, match=problem):
        asyncio.run(hooks.run.acall(**kwargs))
    empty = _hooks(HookSpec("none"))
    with pytest.raises(HookSpecError, match=r"call it as none\(no arguments\)"):
        empty.none(x=1)


def test_unknown_hook_name() -> None:
    hooks = _hooks(RUN)
    with pytest.raises(HookSpecError, match="no hook named 'rn' is declared; did you mean \"run\""):
        hooks.get("rn")
    with pytest.raises(AttributeError, match="did you mean"):
        hooks.rn  # noqa: B018 - the attribute access is what is tested
    assert "run" in hooks
    assert "rn" not in hooks


# ---------------------------------------------------------------- domain hooks


def test_domain_hooks_end_to_end(make_host: Any, plugins_dir: Path) -> None:
    """A host that runs tools asks plugins before and after each one."""
    _hook_plugin(
        plugins_dir,
        "acme.guard",
        """\
        def before(tool, args):
            if tool == "rm" and "-rf" in args:
                return {"deny": "acme.guard refuses rm -rf"}
            return None
        """,
        {"name": "before_tool_execute", "entry": "impl:before", "priority": 10},
    )
    _hook_plugin(
        plugins_dir,
        "acme.audit",
        """\
        AUDIT = []

        def before(tool):
            AUDIT.append(tool)

        def after(tool, result):
            return {"audited": tool, "result": result}
        """,
        {"name": "before_tool_execute", "entry": "impl:before", "after": ["acme.guard"]},
        {"name": "after_tool_execute", "entry": "impl:after"},
    )
    _hook_plugin(
        plugins_dir,
        "acme.timing",
        """\
        import time

        def timing(tool, args):
            t0 = time.perf_counter()
            decision = yield
            args.append(f"timed {time.perf_counter() - t0 >= 0}")
            return decision
        """,
        {"name": "before_tool_execute", "entry": "impl:timing", "wrapper": True},
    )
    _hook_plugin(
        plugins_dir,
        "acme.rewrite",
        "def before(args):\n    return {'args': [a for a in args if a != '--dangerous']}\n",
        {"name": "before_tool_execute", "entry": "impl:before"},
    )
    host = make_host(plugins_dir, kinds={"tool": None})
    host.hooks.declare("before_tool_execute", ("tool", "args"), firstresult=True)
    host.hooks.declare("after_tool_execute", ("tool", "result"), firstresult=True)
    host.start()
    assert [p for p in host.problems() if p.code.startswith("hook.")] == []

    def execute(tool: str, args: list[str]) -> Any:
        decision = host.hooks.before_tool_execute(tool=tool, args=args) or {}
        if "deny" in decision:
            return decision["deny"]
        args = decision.get("args", args)
        result = f"ran {tool} {' '.join(args)}"
        return host.hooks.after_tool_execute(tool=tool, result=result)

    args = ["-rf", "/"]
    assert execute("rm", args) == "acme.guard refuses rm -rf"
    assert args == ["-rf", "/", "timed True"]
    assert execute("ls", ["-l", "--dangerous"]) == {"audited": "ls", "result": "ran ls -l"}
    assert [i.plugin_id for i in host.hooks.before_tool_execute.implementations()] == [
        "acme.timing",  # the wrapper
        "acme.guard",
        "acme.audit",
        "acme.rewrite",
    ]
    audit = next(m for n, m in sys.modules.items() if n.endswith(".impl") and hasattr(m, "AUDIT"))
    assert audit.AUDIT == ["ls"]  # the guard's answer stopped the rm call before the audit
    for pid in ("acme.guard", "acme.audit", "acme.rewrite", "acme.timing"):
        assert host.state(pid) is PluginState.STARTED


def test_async_domain_hook_end_to_end(make_host: Any, plugins_dir: Path) -> None:
    _hook_plugin(
        plugins_dir,
        "acme.fetch",
        """\
        import asyncio

        async def fetch(url):
            await asyncio.sleep(0)
            return f"fetched {url}"
        """,
        {"name": "fetch", "entry": "impl:fetch"},
    )
    host = make_host(plugins_dir)
    host.hooks.declare("fetch", ("url",), timeout=5)
    host.start()
    assert asyncio.run(host.hooks.fetch.acall(url="u")) == ["fetched u"]
    with pytest.raises(HookCallError, match="acall"):
        host.hooks.fetch(url="u")


def test_load_error_of_a_hook_plugin_is_a_load_error(make_host: Any, plugins_dir: Path) -> None:
    _hook_plugin(
        plugins_dir,
        "acme.sig",
        "def before(tool, bogus):\n    pass\n",
        {"name": "before_tool_execute", "entry": "impl:before"},
    )
    host = make_host(plugins_dir)
    host.hooks.declare("before_tool_execute", ("tool", "args"))
    with pytest.raises(LoadError, match="'bogus'"):
        host.load("acme.sig")


# ---------------------------------------------------------------- one plugin, one hook, twice


@pytest.mark.parametrize("activation", [None, "eager"])
def test_one_plugin_may_implement_a_hook_plainly_and_as_a_wrapper(
    make_host: Any, plugins_dir: Path, activation: str | None
) -> None:
    code = """\
        def collect(log):
            log.append("audit")
            return "audit"

        def timing(log):
            log.append("timing>")
            result = yield
            log.append("<timing")
            return [*result, "timed"]
    """
    _hook_plugin(
        plugins_dir,
        "acme.audit",
        code,
        {"name": "collect", "entry": "impl:collect", "priority": 1},
        {"name": "collect", "entry": "impl:timing", "wrapper": True},
        activation=activation,
    )
    _hook_plugin(
        plugins_dir,
        "acme.plain",
        _collector("acme.plain"),
        {"name": "collect", "entry": "impl:collect"},
    )
    host = make_host(plugins_dir)
    host.hooks.declare("collect", ("log",))
    host.start()
    assert host.problems() == []

    for _ in range(2):  # the first call (which loads lazy plugins) and the compiled path
        log: list[str] = []
        assert host.hooks.collect(log=log) == ["audit", "acme.plain", "timed"]
        assert log == ["timing>", "audit", "acme.plain", "<timing"]
    assert host.state("acme.audit") is PluginState.STARTED
    impls = host.hooks.collect.implementations()
    assert [(i.plugin_id, i.entry, i.wrapper) for i in impls] == [
        ("acme.audit", "impl:timing", True),
        ("acme.audit", "impl:collect", False),
        ("acme.plain", "impl:collect", False),
    ]
    host.restart("acme.audit")
    assert host.hooks.collect(log=[]) == ["audit", "acme.plain", "timed"]
    assert len(host.hooks.implementations_of("acme.audit")) == 2  # a restart adds none
    host.stop()
    assert host.hooks.collect(log=[]) == []


# ---------------------------------------------------------------- many implementations and wrappers

# The generated dispatcher calls a few implementations on lines of their own and loops over
# more of them; it writes a few wrappers out and loops over more. Both ways must behave alike.
SIZES = [3, 20]


def _varied(n: int, got: list[tuple[int, Any]]) -> list[Callable[..., Any]]:
    """``n`` implementations of ``before_tool_execute(tool, args)`` taking their arguments in
    every way there is, in turn; each notes what it got and returns ``"<kind>:<index>"``."""

    class Plugin:
        def __init__(self, i: int) -> None:
            self.i = i

        def before_tool_execute(self, args: Any) -> str:
            got.append((self.i, args))
            return f"method:{self.i}"

    def make(i: int) -> Callable[..., Any]:
        kind = i % 7

        def only_tool(tool: str) -> str:
            got.append((i, tool))
            return f"only_tool:{i}"

        def reversed_order(args: Any, tool: str) -> str:
            got.append((i, (tool, args)))
            return f"reversed:{i}"

        def keyword_only(*, tool: str, args: Any) -> str:
            got.append((i, (tool, args)))
            return f"kwonly:{i}"

        def everything(**kwargs: Any) -> str:
            got.append((i, kwargs))
            return f"kwargs:{i}"

        def optional(tool: str, args: Any = None, verbose: bool = False) -> str:
            got.append((i, (tool, args, verbose)))
            return f"optional:{i}"

        def nothing() -> None:
            got.append((i, None))

        return [
            only_tool,
            reversed_order,
            keyword_only,
            everything,
            optional,
            nothing,
            Plugin(i).before_tool_execute,
        ][kind]

    return [make(i) for i in range(n)]


@pytest.mark.parametrize("size", [7, 8, 9, 30])
def test_any_number_of_implementations_get_their_arguments_their_way(size: int) -> None:
    hooks = _hooks(HookSpec("before_tool_execute", ("tool", "args")))
    got: list[tuple[int, Any]] = []
    for i, fn in enumerate(_varied(size, got)):
        _add(hooks, "before_tool_execute", f"p.{i:03d}", fn)
    kinds = ["only_tool", "reversed", "kwonly", "kwargs", "optional", None, "method"]
    seen = [
        "ls",
        ("ls", ["-l"]),
        ("ls", ["-l"]),
        {"tool": "ls", "args": ["-l"]},
        ("ls", ["-l"], False),
        None,
        ["-l"],
    ]
    for _ in range(2):  # the first call and the compiled path
        got.clear()
        result = hooks.before_tool_execute(tool="ls", args=["-l"])
        assert result == [f"{kinds[i % 7]}:{i}" for i in range(size) if kinds[i % 7]]
        assert got == [(i, seen[i % 7]) for i in range(size)]


@pytest.mark.parametrize("size", SIZES)
def test_errors_and_firstresult_whatever_the_number_of_implementations(size: int) -> None:
    bad = size // 2
    error = ValueError("bad value")

    def build(spec: HookSpec, value: Callable[[int], Any]) -> Hooks:
        hooks = _hooks(spec)
        for i in range(size):
            fn = _raiser(error) if i == bad else _appender(f"p.{i:02d}", value(i))
            _add(hooks, "run", f"p.{i:02d}", fn)
        return hooks

    hooks = build(RUN, lambda i: i)
    for _ in range(2):
        log: list[str] = []
        with pytest.raises(HookCallError) as info:
            hooks.run(log=log)
        assert (info.value.hook, info.value.plugin_id) == ("run", f"p.{bad:02d}")
        assert info.value.__cause__ is error
        assert len(log) == bad + 1  # the ones after it were not called

    hooks = build(HookSpec("run", ("log",), on_error="collect"), lambda i: i)
    for _ in range(2):
        log = []
        outcome = hooks.run(log=log)
        assert outcome.results == [i for i in range(size) if i != bad]
        assert [(e.plugin_id, e.__cause__) for e in outcome.errors] == [(f"p.{bad:02d}", error)]
        assert len(log) == size

    firsts = {bad + 1: "first", bad + 2: "second"}
    hooks = build(HookSpec("run", ("log",), firstresult=True), firsts.get)
    with pytest.raises(HookCallError):
        hooks.run(log=[])
    hooks.remove_plugin(f"p.{bad:02d}")
    for _ in range(2):
        log = []
        assert hooks.run(log=log) == "first"
        assert len(log) == bad + 1

    hooks = build(HookSpec("run", ("log",), firstresult=True, on_error="collect"), firsts.get)
    for _ in range(2):
        log = []
        outcome = hooks.run(log=log)
        assert outcome.results == ["first"]
        assert [e.plugin_id for e in outcome.errors] == [f"p.{bad:02d}"]
        assert len(log) == bad + 2


@pytest.mark.parametrize("size", SIZES)
def test_coroutines_are_refused_and_closed_whatever_the_number_of_implementations(
    no_unawaited: list[warnings.WarningMessage], size: int
) -> None:
    late = size // 2

    async def later(log: list[str]) -> str:
        log.append("ran")
        return "later"

    for spec in (RUN, HookSpec("run", ("log",), on_error="collect")):
        hooks = _hooks(spec)
        for i in range(size):
            _add(hooks, "run", f"p.{i:02d}", later if i == late else _appender(f"p.{i:02d}", i))
        for _ in range(2):
            log: list[str] = []
            if spec.on_error == "raise":
                with pytest.raises(HookCallError, match="acall") as info:
                    hooks.run(log=log)
                assert info.value.plugin_id == f"p.{late:02d}"
                assert len(log) == late
            else:
                outcome = hooks.run(log=log)
                assert outcome.results == [i for i in range(size) if i != late]
                assert [e.plugin_id for e in outcome.errors] == [f"p.{late:02d}"]
                assert "acall" in str(outcome.errors[0])
                assert len(log) == size - 1
            assert "ran" not in log


@pytest.mark.parametrize("count", [1, 4, 5, 7])
def test_any_number_of_wrappers_nest_outermost_first(count: int) -> None:
    hooks = _hooks(RUN)
    trail: list[str] = []
    for n in range(count):
        wrap = _wrapper(f"w{n}", trail, f"w{n}")
        _add(hooks, "run", f"w.{n}", wrap, wrapper=True, priority=count - n)
    _add(hooks, "run", "p.plain", _appender("p.plain", "plain"))
    for _ in range(2):
        trail.clear()
        assert hooks.run(log=[]) == ["plain", *(f"w{n}" for n in reversed(range(count)))]
        inner = [f"w{m}" for m in reversed(range(count))]
        assert trail == [
            *(f"w{n}>" for n in range(count)),
            *(f"<w{n} saw {['plain', *inner[: count - 1 - n]]}" for n in reversed(range(count))),
        ]


def _observer(name: str, seen: list[tuple[str, Any]]) -> Callable[..., Any]:
    """A wrapper of ``run(log)`` that notes the outcome it sees, and lets it through."""

    def observe(log: list[str]) -> Generator[None, Any, Any]:
        try:
            result = yield
        except HookCallError as exc:
            seen.append((name, exc.plugin_id))
            raise
        seen.append((name, result))
        return result

    return observe


def _misbehaving(how: str) -> Callable[..., Any]:
    def start(log: list[str]) -> Generator[None, Any, Any]:
        raise RuntimeError("cannot start")
        yield  # a generator function all the same

    def broken(log: list[str]) -> Generator[None, Any, Any]:
        yield
        raise RuntimeError("wrapper broke")

    def no_yield(log: list[str]) -> Generator[None, Any, Any]:
        if log is not None:  # always: this generator returns before its first yield
            return None
        yield

    def twice(log: list[str]) -> Generator[None, Any, Any]:
        yield
        yield

    return {"start": start, "broken": broken, "no_yield": no_yield, "twice": twice}[how]


@pytest.mark.parametrize("count", [2, 4, 6])
@pytest.mark.parametrize(
    ("how", "message", "plain_called"),
    [
        ("start", "cannot start", False),
        ("broken", "wrapper broke", True),
        ("no_yield", "did not yield", False),
        ("twice", "yielded twice", True),
    ],
)
def test_a_misbehaving_inner_wrapper_is_named_and_the_outer_ones_see_it(
    count: int, how: str, message: str, plain_called: bool
) -> None:
    hooks = _hooks(RUN)
    seen: list[tuple[str, Any]] = []
    for n in range(count - 1):
        _add(hooks, "run", f"w.{n}", _observer(f"w{n}", seen), wrapper=True, priority=count - n)
    _add(hooks, "run", "w.bad", _misbehaving(how), wrapper=True)
    _add(hooks, "run", "p.plain", _appender("p.plain", "plain"))
    for _ in range(2):
        seen.clear()
        log: list[str] = []
        with pytest.raises(HookCallError, match=message) as info:
            hooks.run(log=log)
        assert info.value.plugin_id == "w.bad"
        assert isinstance(info.value.__cause__, RuntimeError | HookSpecError)
        assert seen == [(f"w{n}", "w.bad") for n in reversed(range(count - 1))]
        assert log == (["p.plain"] if plain_called else [])


@pytest.mark.parametrize("count", [2, 6])
def test_a_wrapper_may_rescue_an_error_for_the_wrappers_around_it(count: int) -> None:
    hooks = _hooks(RUN)
    seen: list[tuple[str, Any]] = []

    def rescue(log: list[str]) -> Generator[None, Any, Any]:
        try:
            yield
        except HookCallError as exc:
            return [f"rescued from {exc.plugin_id}"]
        return None

    for n in range(count - 1):
        _add(hooks, "run", f"w.{n}", _observer(f"w{n}", seen), wrapper=True, priority=count - n)
    _add(hooks, "run", "w.rescue", rescue, wrapper=True)
    _add(hooks, "run", "p.bad", _raiser(KeyError("k")))
    for _ in range(2):
        seen.clear()
        assert hooks.run(log=[]) == ["rescued from p.bad"]
        assert seen == [(f"w{n}", ["rescued from p.bad"]) for n in reversed(range(count - 1))]


class _Abort(BaseException):
    """Like KeyboardInterrupt: not an error of a plugin, and never wrapped as one."""


@pytest.mark.parametrize("count", [0, 1, 6])
@pytest.mark.parametrize("where", ["plain", "wrapper start"])
def test_base_exceptions_pass_through_wrappers_unwrapped(count: int, where: str) -> None:
    hooks = _hooks(RUN)
    cleaned: list[str] = []

    def cleanup(name: str) -> Callable[..., Any]:
        def wrap(log: list[str]) -> Generator[None, Any, Any]:
            try:
                return (yield)
            finally:
                cleaned.append(name)

        return wrap

    def abort_on_start(log: list[str]) -> Generator[None, Any, Any]:
        raise _Abort
        yield

    def abort(log: list[str]) -> None:
        raise _Abort

    for n in range(count):
        _add(hooks, "run", f"w.{n}", cleanup(f"w{n}"), wrapper=True, priority=count - n)
    if where == "plain":
        _add(hooks, "run", "p.abort", abort)
    else:
        _add(hooks, "run", "w.abort", abort_on_start, wrapper=True, priority=-1)
    for _ in range(2):
        cleaned.clear()
        with pytest.raises(_Abort):
            hooks.run(log=[])
        assert cleaned == [f"w{n}" for n in reversed(range(count))]


@pytest.mark.parametrize(("size", "wrappers"), [(2, 1), (12, 6)])
def test_trace_reports_every_implementation_whatever_their_number(size: int, wrappers: int) -> None:
    hooks = _hooks(RUN)
    for n in range(wrappers):
        _add(hooks, "run", f"w.{n}", _wrapper(f"w{n}", []), wrapper=True, priority=-n)
    for i in range(size):
        _add(hooks, "run", f"p.{i:02d}", _appender(f"p.{i:02d}", i))
    events: list[tuple[str, str | None]] = []
    hooks.trace(lambda event, hook, pid, kwargs, value, s: events.append((event, pid)))
    assert hooks.run(log=[]) == list(range(size))
    assert events == [
        ("call", None),
        *(("impl", f"w.{n}") for n in range(wrappers)),
        *(("impl", f"p.{i:02d}") for i in range(size)),
        ("result", None),
    ]


def test_tracebacks_name_the_hook_even_when_hooks_share_their_dispatch_code() -> None:
    hooks = _hooks(HookSpec("first", ("log",)), HookSpec("second", ("log",)))
    _add(hooks, "first", "p.fine", _appender("p.fine", 1))
    _add(hooks, "second", "p.bad", _raiser(ValueError("x")))
    assert hooks.first(log=[]) == [1]
    with pytest.raises(HookCallError) as info:
        hooks.second(log=[])
    files = [frame.filename for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "<plugbay hook second>" in files
    assert "<plugbay hook first>" not in files


# ---------------------------------------------------------------- hooks as attributes


def test_declared_hooks_are_attributes_unless_named_like_a_member_of_hooks() -> None:
    hooks = _hooks(RUN, HookSpec("add", ("x",)), HookSpec("problems"), HookSpec("_private"))
    assert hooks.run is hooks.get("run")
    assert vars(hooks)["run"] is hooks.get("run")  # a plain attribute: no __getattr__ call
    later = hooks.declare("later", ("log",))
    assert hooks.later is later
    _add(hooks, "run", "a.one", _appender("a.one", 1))
    assert hooks.run(log=[]) == [1]

    # Named like a method or an attribute of Hooks: reachable through get() only.
    assert hooks.add(HookImpl("add", "a.one", lambda x: x)) is None
    assert hooks.get("add")(x=2) == [2]
    assert isinstance(hooks.problems, list)
    assert hooks.get("problems")() == []
    assert hooks.get("_private")() == []
    with pytest.raises(AttributeError):
        hooks._private  # noqa: B018 - the attribute access is what is tested

    with pytest.raises(AttributeError, match="no hook named 'rnu' is declared; did you mean"):
        hooks.rnu  # noqa: B018 - the attribute access is what is tested
    with pytest.raises(HookSpecError, match="no hook named 'rnu'"):
        hooks.get("rnu")


def test_stop_does_not_load_a_lazy_subscriber_and_a_restart_adds_no_duplicates(
    make_host: Any, plugins_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    write_plugin(
        plugins_dir,
        "acme.watcher",
        contributes={
            "hook": [
                {"name": "plugin_unloaded", "entry": "watch:unloaded"},
                {"name": "host_stop", "entry": "watch:stopping"},
                {"name": "host_start", "entry": "watch:starting"},
            ]
        },
        code={
            "watch.py": f"""
                import pathlib
                LOG = pathlib.Path({str(log)!r})
                def _note(text):
                    with LOG.open("a") as f:
                        f.write(text + "\\n")
                def unloaded(plugin_id):
                    _note("unloaded " + plugin_id)
                def stopping(host):
                    _note("stopping")
                def starting(host):
                    _note("starting")
                """
        },
    )
    write_plugin(
        plugins_dir,
        "acme.worker",
        entry="work:Plugin",
        activation="eager",
        code={"work.py": "class Plugin:\n    pass\n"},
    )
    host = make_host(plugins_dir)
    host.start()  # host_start loads the lazy watcher: it asked for that event
    assert host.state("acme.watcher") is PluginState.STARTED
    host.stop()
    assert host.state("acme.watcher") is PluginState.STOPPED
    first = log.read_text().splitlines()
    assert first[0] == "starting"
    assert "stopping" in first

    # A second life: the watcher is lazy again, and it is not registered twice.
    log.unlink()
    host.start()
    assert log.read_text().splitlines() == ["starting"]
    assert len(host.hooks.host_start.implementations()) == 1
    host.stop()


def test_a_lazy_subscriber_to_unload_events_is_not_loaded_by_stop(
    make_host: Any, plugins_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "imported"
    write_plugin(
        plugins_dir,
        "acme.listener",
        contributes={"hook": [{"name": "plugin_unloaded", "entry": "listen:unloaded"}]},
        code={
            "listen.py": f"""
                import pathlib
                pathlib.Path({str(marker)!r}).write_text("imported")
                def unloaded(plugin_id):
                    pass
                """
        },
    )
    write_plugin(
        plugins_dir,
        "acme.worker",
        entry="work:Plugin",
        activation="eager",
        code={"work.py": "class Plugin:\n    pass\n"},
    )
    host = make_host(plugins_dir)
    host.start()
    host.stop()
    assert not marker.exists()
    assert host.state("acme.listener") is not PluginState.STARTED
    assert not [p for p in host.hooks.problems if p.code == "hook.unavailable"]
