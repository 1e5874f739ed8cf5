"""The registry: lazy handles, qualified names, conflicts and concurrent use."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import modules_under, write_plugin
from plugbay import ContributionNotFound, Handle, LoadError, Registry, RegistryError

# Every module of these plugins writes one line to a log file when its code runs, so that
# a test can count imports across threads without sharing anything else with the plugin.
LOGGED = """\
with open({log!r}, "a") as _f:
    _f.write({tag!r} + "\\n")
"""


def _logged_plugin(root: Path, plugin_id: str, log: Path, tools: list[str]) -> Path:
    """A plugin whose entry module and tools module each log their import."""
    body = "".join(
        f"class {name.title()}:\n    pass\n\n{name} = {name.title()}()\n" for name in tools
    )
    return write_plugin(
        root,
        plugin_id,
        entry="life:Plugin",
        contributes={"tool": [{"name": n, "entry": f"tools:{n}"} for n in tools]},
        code={
            "life.py": LOGGED.format(log=str(log), tag=f"{plugin_id} life")
            + "class Plugin:\n"
            + "    def init(self, ctx):\n"
            + "        ctx.shared.setdefault('inits', []).append(ctx.plugin_id)\n",
            "tools.py": LOGGED.format(log=str(log), tag=f"{plugin_id} tools") + body,
        },
    )


def _imports(log: Path) -> Counter[str]:
    return Counter(log.read_text().splitlines()) if log.exists() else Counter()


def _value_plugin(root: Path, plugin_id: str, name: str = "greet") -> Path:
    return write_plugin(
        root,
        plugin_id,
        contributes={"tool": [{"name": name, "entry": "tools:value"}]},
        code={"tools.py": f"value = {plugin_id!r}\n"},
    )


# ---------------------------------------------------------------- laziness and names


def test_handles_are_lazy_until_get(make_host: Any, plugins_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    folder = _logged_plugin(plugins_dir, "a.lazy", log, ["alpha", "beta"])
    host = make_host(plugins_dir)

    host.start()
    handles = host.registry.handles("tool")
    assert [(h.name, h.plugin_id, h.loaded) for h in handles] == [
        ("alpha", "a.lazy", False),
        ("beta", "a.lazy", False),
    ]
    assert host.registry.names("tool") == ["alpha", "beta"]
    assert "tool" in host.registry.kinds()
    assert _imports(log) == Counter()
    assert not modules_under(folder)

    alpha = host.registry.handle("tool", "alpha").get()
    assert type(alpha).__name__ == "Alpha"
    assert host.registry.handle("tool", "alpha").loaded
    assert not host.registry.handle("tool", "beta").loaded
    assert _imports(log) == Counter({"a.lazy life": 1, "a.lazy tools": 1})
    assert host.get("tool", "beta") is host.get("tool", "beta")
    assert _imports(log) == Counter({"a.lazy life": 1, "a.lazy tools": 1})


def test_get_imports_only_the_providing_plugin(make_host: Any, plugins_dir: Path) -> None:
    one = _value_plugin(plugins_dir, "a.one", "one")
    two = _value_plugin(plugins_dir, "a.two", "two")
    host = make_host(plugins_dir)
    host.start()

    assert host.get("tool", "one") == "a.one"

    assert modules_under(one)
    assert not modules_under(two)


def test_qualified_names(make_host: Any, plugins_dir: Path) -> None:
    _value_plugin(plugins_dir, "a.one")
    host = make_host(plugins_dir)

    assert host.get("tool", "a.one:greet") == "a.one"
    handle = host.registry.handle("tool", "a.one:greet")
    assert handle.qualified_name == "a.one:greet"
    assert handle is host.registry.handle("tool", "greet")
    with pytest.raises(ContributionNotFound):
        host.get("tool", "a.other:greet")


def test_not_found_suggests_a_close_name(make_host: Any, plugins_dir: Path) -> None:
    _value_plugin(plugins_dir, "a.one", "greet")
    _value_plugin(plugins_dir, "a.two", "farewell")
    host = make_host(plugins_dir)

    with pytest.raises(ContributionNotFound) as excinfo:
        host.get("tool", "gret")
    assert 'did you mean "greet"?' in str(excinfo.value)
    assert isinstance(excinfo.value, RegistryError)
    assert isinstance(excinfo.value, LookupError)
    assert excinfo.value.kind == "tool"
    assert excinfo.value.name == "gret"

    with pytest.raises(ContributionNotFound, match=r'did you mean "a\.one:greet"'):
        host.get("tool", "a.one:gret")
    with pytest.raises(ContributionNotFound, match="no widget named 'greet'"):
        host.get("widget", "greet")


# ---------------------------------------------------------------- conflicts


def test_higher_search_path_precedence_wins_a_name(make_host: Any, tmp_path: Path) -> None:
    low, high = tmp_path / "low", tmp_path / "high"
    _value_plugin(low, "a.alpha")  # sorts first, but its path has lower precedence
    _value_plugin(high, "z.zed")
    host = make_host(low, high)  # later paths have higher precedence

    host.start()

    assert host.get("tool", "greet") == "z.zed"
    assert host.get("tool", "a.alpha:greet") == "a.alpha"
    (problem,) = [p for p in host.problems() if p.code == "contribution.conflict"]
    assert "z.zed wins" in problem.message
    assert "a.alpha:greet" in problem.message
    providers = [h.plugin_id for h in host.registry.handles("tool", all_providers=True)]
    assert providers == ["z.zed", "a.alpha"]


def test_equal_precedence_is_decided_by_plugin_id(make_host: Any, plugins_dir: Path) -> None:
    _value_plugin(plugins_dir, "b.beta")
    _value_plugin(plugins_dir, "a.alpha")
    _value_plugin(plugins_dir, "c.gamma")
    host = make_host(plugins_dir)

    host.start()

    assert host.get("tool", "greet") == "a.alpha"
    assert host.get("tool", "b.beta:greet") == "b.beta"
    assert host.get("tool", "c.gamma:greet") == "c.gamma"
    conflicts = [p for p in host.problems() if p.code == "contribution.conflict"]
    assert conflicts
    assert all("a.alpha wins" in p.message for p in conflicts)


def test_conflicts_are_reported_before_start_without_importing(
    make_host: Any, plugins_dir: Path
) -> None:
    one = _value_plugin(plugins_dir, "a.alpha")
    two = _value_plugin(plugins_dir, "b.beta")
    host = make_host(plugins_dir)

    codes = [p.code for p in host.problems()]

    assert codes.count("contribution.conflict") == 1
    assert not modules_under(one)
    assert not modules_under(two)


def test_next_provider_takes_over_when_the_winner_fails(make_host: Any, plugins_dir: Path) -> None:
    write_plugin(
        plugins_dir,
        "a.winner",
        entry="life:Plugin",
        contributes={"tool": [{"name": "greet", "entry": "tools:value"}]},
        code={
            "life.py": "class Plugin:\n    def init(self, ctx):\n        raise OSError('no')\n",
            "tools.py": "value = 'winner'\n",
        },
    )
    _value_plugin(plugins_dir, "b.runner_up")
    host = make_host(plugins_dir)

    with pytest.raises(LoadError, match=r"a\.winner"):
        host.get("tool", "greet")

    assert host.get("tool", "greet") == "b.runner_up"
    with pytest.raises(LoadError, match=r"a\.winner"):
        host.get("tool", "a.winner:greet")


def test_next_provider_takes_over_when_the_winner_is_removed() -> None:
    registry = Registry()
    assert registry.add(Handle("tool", "greet", "b.beta", precedence=1)) is None
    problem = registry.add(Handle("tool", "greet", "a.alpha", precedence=1))
    assert problem is not None
    assert problem.code == "contribution.conflict"
    assert registry.add(Handle("tool", "greet", "z.zed", precedence=2)) is not None
    assert registry.handle("tool", "greet").plugin_id == "z.zed"

    removed = registry.remove_plugin("z.zed")

    assert [h.qualified_name for h in removed] == ["z.zed:greet"]
    assert registry.handle("tool", "greet").plugin_id == "a.alpha"
    registry.remove_plugin("a.alpha")
    assert registry.handle("tool", "greet").plugin_id == "b.beta"
    registry.remove_plugin("b.beta")
    assert registry.names("tool") == []
    with pytest.raises(ContributionNotFound):
        registry.handle("tool", "greet")


def test_a_plugin_adding_a_name_again_replaces_its_own_handle() -> None:
    registry = Registry()
    first = Handle("tool", "greet", "a.alpha")
    second = Handle("tool", "greet", "a.alpha")

    assert registry.add(first) is None
    assert registry.add(second) is None, "not a conflict with itself"

    assert registry.handles("tool", all_providers=True) == [second]


# ---------------------------------------------------------------- threads


def test_concurrent_gets_import_once_and_agree(
    make_host: Any, plugins_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "imports.log"
    _logged_plugin(plugins_dir, "p.one", log, ["alpha", "beta"])
    _logged_plugin(plugins_dir, "p.two", log, ["gamma"])
    _logged_plugin(plugins_dir, "p.three", log, ["delta", "epsilon"])
    _logged_plugin(plugins_dir, "p.four", log, ["zeta"])
    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    host = make_host(plugins_dir)
    host.start()

    getters, churners, loaders = 20, 4, 2
    barrier = threading.Barrier(getters + churners + loaders)
    results: list[tuple[str, Any]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def get(i: int) -> None:
        # Every getter starts on a different name, then asks for all of them.
        order = names[i % len(names) :] + names[: i % len(names)]
        barrier.wait()
        got = [(name, host.get("tool", name)) for name in order]
        with lock:
            results.extend(got)

    def churn(i: int) -> None:
        # Other plugins come and go: a lower-precedence rival for a name, and names of
        # their own. Neither may change what the getters receive.
        barrier.wait()
        for round_ in range(200):
            plugin_id = f"churn.n{i}_{round_}"
            host.registry.add(Handle("tool", "alpha", plugin_id, precedence=-1))
            host.registry.add(Handle("tool", f"extra_{i}", plugin_id))
            host.registry.handles("tool", all_providers=True)
            host.registry.remove_plugin(plugin_id)

    def load(i: int) -> None:
        barrier.wait()
        host.load("p.four")

    def run(target: Any, i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(get, i)) for i in range(getters)]
    threads += [threading.Thread(target=run, args=(churn, i)) for i in range(churners)]
    threads += [threading.Thread(target=run, args=(load, i)) for i in range(loaders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not [t for t in threads if t.is_alive()]

    assert errors == []
    assert len(results) == getters * len(names)
    for name in names:
        objects = {id(obj) for got, obj in results if got == name}
        assert len(objects) == 1, f"{name}: every thread receives the same object"
        assert host.get("tool", name) is next(obj for got, obj in results if got == name)
    # Each module ran once; p.four's tools were never asked for, so never imported.
    imported = _imports(log)
    assert set(imported.values()) == {1}
    assert sorted(imported) == [
        "p.four life",
        "p.one life",
        "p.one tools",
        "p.three life",
        "p.three tools",
        "p.two life",
        "p.two tools",
    ]
    assert sorted(host.shared["inits"]) == ["p.four", "p.one", "p.three", "p.two"]
    assert host.registry.names("tool") == [*sorted(names), "zeta"]


def test_concurrent_gets_of_a_failing_plugin_all_raise(make_host: Any, plugins_dir: Path) -> None:
    write_plugin(
        plugins_dir,
        "a.bad",
        entry="life:Plugin",
        contributes={
            "tool": [{"name": "one", "entry": "tools:x"}, {"name": "two", "entry": "tools:x"}]
        },
        code={
            "life.py": "class Plugin:\n    def init(self, ctx):\n        raise OSError('no')\n",
            "tools.py": "x = 1\n",
        },
    )
    _value_plugin(plugins_dir, "b.good")
    host = make_host(plugins_dir)
    host.start()
    count = 12
    barrier = threading.Barrier(count)
    outcomes: list[str] = []
    lock = threading.Lock()

    def get(i: int) -> None:
        barrier.wait()
        try:
            host.get("tool", "one" if i % 2 else "two")
            outcome = "ok"
        except LoadError as exc:
            outcome = f"{exc.plugin_id}: {exc.reason}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=get, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert outcomes == ["a.bad: OSError: no"] * count
    assert host.get("tool", "greet") == "b.good"
