"""Hot reload: host.reload(id) as a transaction, and host.watch() on real files."""

from __future__ import annotations

import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import write_plugin
from plugbay import Host, LifecycleEvent, PluginState
from plugbay.errors import CommandError, LoadError
from plugbay.reload import ReloadError, ReloadResult

TOOL = {"tool": [{"name": "greet", "entry": "greet_mod:greet"}]}


def greeter(root: Path, answer: str, **kwargs: Any) -> Path:
    """acme.greet, whose tool ``greet`` returns ``answer``."""
    code = {"greet_mod.py": f"def greet():\n    return {answer!r}\n", **kwargs.pop("code", {})}
    return write_plugin(root, "acme.greet", contributes=TOOL, code=code, **kwargs)


def save(path: Path, text: str) -> None:
    """Rewrite a file as an editor would (one write)."""
    path.write_text(text)


def greet(host: Host) -> str:
    return str(host.get("tool", "greet")())


def wait_for(what: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``what`` until true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def plugin_namespaces(host: Host) -> set[str]:
    """The runtime namespaces (one per loaded plugin copy) present in sys.modules."""
    root = host._runtime._root
    return {n.split(".")[1] for n in list(sys.modules) if n.startswith(root + ".")}


# ---------------------------------------------------------------- host.reload


def test_reload_runs_the_new_code_and_fires_events(make_host: Any, plugins_dir: Path) -> None:
    folder = greeter(plugins_dir, "one")
    host = make_host(plugins_dir)
    events: list[LifecycleEvent] = []
    host.on(events.append)
    assert greet(host) == "one"
    save(folder / "greet_mod.py", "def greet():\n    return 'two'\n")
    result = host.reload("acme.greet")
    assert result.ok
    assert result.plugins == ("acme.greet",)
    assert greet(host) == "two"
    assert host.state("acme.greet") is PluginState.STARTED
    names = [e.name for e in events if e.plugin_id == "acme.greet"]
    assert names.index("before_reload") < names.index("plugin_unloaded")
    assert names.index("plugin_loaded", names.index("before_reload")) < names.index("after_reload")
    assert [e.reason for e in events if e.name == "after_reload"] == [None]
    assert len(plugin_namespaces(host)) == 1  # the old copy's modules are gone


def test_syntax_error_keeps_the_old_code_serving_then_a_good_save_recovers(
    make_host: Any, plugins_dir: Path
) -> None:
    folder = greeter(plugins_dir, "one")
    host = make_host(plugins_dir)
    events: list[LifecycleEvent] = []
    host.on(events.append)
    assert greet(host) == "one"
    save(folder / "greet_mod.py", "def greet(:\n    return 'broken'\n")
    with pytest.raises(ReloadError) as caught:
        host.reload("acme.greet")
    assert "SyntaxError" in str(caught.value)
    assert "previous version keeps serving" in str(caught.value)
    assert caught.value.restored
    assert caught.value.result.error is not None
    assert greet(host) == "one"  # the modules set aside, not the broken file
    assert host.state("acme.greet") is PluginState.STARTED
    after = [e for e in events if e.name == "after_reload"]
    assert after
    assert after[-1].reason is not None
    assert "SyntaxError" in after[-1].reason
    save(folder / "greet_mod.py", "def greet():\n    return 'three'\n")
    assert host.reload("acme.greet").ok
    assert greet(host) == "three"
    assert len(plugin_namespaces(host)) == 1


@pytest.mark.parametrize("cache", ["beside the sources", "PYTHONPYCACHEPREFIX"])
def test_quick_same_size_edits_are_never_served_from_stale_bytecode(
    make_host: Any, plugins_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: str
) -> None:
    # Python trusts a .pyc whose source has the same size and mtime second; the tests may
    # run with PYTHONDONTWRITEBYTECODE, which would hide that.
    import importlib.util

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    prefix = str(tmp_path / "pycache") if cache == "PYTHONPYCACHEPREFIX" else None
    monkeypatch.setattr(sys, "pycache_prefix", prefix)
    folder = greeter(plugins_dir, "v00")
    host = make_host(plugins_dir)
    assert greet(host) == "v00"
    pyc = Path(importlib.util.cache_from_source(str(folder / "greet_mod.py")))
    assert pyc.is_file()
    assert (pyc.parent == folder / "__pycache__") is (prefix is None)
    for n in range(1, 6):
        save(folder / "greet_mod.py", f"def greet():\n    return 'v{n:02d}'\n")
        host.reload("acme.greet")
        assert greet(host) == f"v{n:02d}"


def test_failing_start_restores_the_previous_version(make_host: Any, plugins_dir: Path) -> None:
    plug = "class Plugin:\n    def start(self):\n        self.ok = True\n"
    folder = greeter(plugins_dir, "one", entry="plug:Plugin", code={"plug.py": plug})
    host = make_host(plugins_dir)
    assert greet(host) == "one"
    save(folder / "greet_mod.py", "def greet():\n    return 'two'\n")
    save(folder / "plug.py", "class Plugin:\n    def start(self):\n        raise OSError('no')\n")
    with pytest.raises(ReloadError, match=r"acme.greet: reload \(start\) failed: OSError: no"):
        host.reload("acme.greet")
    assert greet(host) == "one"
    assert host.state("acme.greet") is PluginState.STARTED


def test_unsatisfiable_dependency_changes_nothing(make_host: Any, plugins_dir: Path) -> None:
    greeter(plugins_dir, "one")
    host = make_host(plugins_dir)
    assert greet(host) == "one"
    unloaded: list[LifecycleEvent] = []
    host.on(lambda e: unloaded.append(e) if e.name == "plugin_unloaded" else None)
    greeter(plugins_dir, "two", dependencies={"acme.missing": ">=1.0.0"})
    with pytest.raises(ReloadError, match=r"acme\.missing") as caught:
        host.reload("acme.greet")
    assert caught.value.step == "reload (plan)"
    assert unloaded == []  # refused before anything stopped
    assert greet(host) == "one"
    assert host.state("acme.greet") is PluginState.STARTED
    assert host.load_plan.get("acme.greet") is not None


def test_a_hanging_stop_is_abandoned_and_the_new_version_loads(
    make_host: Any, plugins_dir: Path
) -> None:
    plug = """
        class Plugin:
            def init(self, ctx):
                self.release = ctx.shared["release"]
            def stop(self):
                self.release.wait(30)
    """
    folder = greeter(plugins_dir, "one", entry="plug:Plugin", code={"plug.py": plug})
    host = make_host(plugins_dir, stop_timeout=0.3)
    release = host.shared["release"] = threading.Event()
    try:
        assert greet(host) == "one"
        save(folder / "greet_mod.py", "def greet():\n    return 'two'\n")
        result = host.reload("acme.greet")
        assert result.ok
        assert greet(host) == "two"
    finally:
        release.set()


def test_dependents_are_stopped_and_started_again(make_host: Any, plugins_dir: Path) -> None:
    folder = greeter(plugins_dir, "one")
    user = """
        STARTS = []
        class Plugin:
            def init(self, ctx):
                self.ctx = ctx
            def start(self):
                self.ctx.shared.setdefault("starts", []).append(1)
    """
    write_plugin(
        plugins_dir,
        "acme.user",
        entry="user:Plugin",
        activation="eager",
        dependencies={"acme.greet": ">=1.0.0"},
        code={"user.py": user},
    )
    host = make_host(plugins_dir)
    host.start()
    assert host.state("acme.user") is PluginState.STARTED
    assert len(host.shared["starts"]) == 1
    save(folder / "greet_mod.py", "def greet():\n    return 'two'\n")
    result = host.reload("acme.greet")
    assert result.plugins == ("acme.greet", "acme.user")
    assert len(host.shared["starts"]) == 2
    assert host.state("acme.user") is PluginState.STARTED
    assert greet(host) == "two"


def test_a_running_command_finishes_on_the_old_code_first(
    make_host: Any, plugins_dir: Path
) -> None:
    command = """
        def run(args):
            from greet_mod import greet
            import builtins
            shared = SHARED["box"]
            shared["entered"].set()
            shared["go"].wait(10)
            shared["answer"] = greet()
            return 0
        SHARED = {}
    """
    plug = """
        from cmd_mod import SHARED
        class Plugin:
            def init(self, ctx):
                SHARED["box"] = ctx.shared
    """
    folder = greeter(
        plugins_dir,
        "one",
        entry="plug:Plugin",
        code={"cmd_mod.py": command, "plug.py": plug},
        extra="",
    )
    text = (folder / "plugin.toml").read_text()
    text += '[[contributes.command]]\nname = "hold"\nentry = "cmd_mod:run"\n'
    (folder / "plugin.toml").write_text(text)
    host = make_host(plugins_dir)
    host.load("acme.greet")
    box = host.shared
    box.update(entered=threading.Event(), go=threading.Event())
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(host.run_command("hold", [])))
    runner.start()
    assert box["entered"].wait(10)
    save(folder / "greet_mod.py", "def greet():\n    return 'two'\n")
    results: list[ReloadResult] = []
    reloader = threading.Thread(target=lambda: results.append(host.reload("acme.greet")))
    reloader.start()
    # The reload waits for the command: the plugin stays started and nothing is reloaded.
    reloader.join(0.3)
    assert results == []
    assert host.state("acme.greet") is PluginState.STARTED
    box["go"].set()
    runner.join(10)
    reloader.join(10)
    assert codes == [0]
    assert box["answer"] == "one"
    assert results
    assert results[0].ok
    assert greet(host) == "two"


def test_reload_from_inside_a_command_is_refused(make_host: Any, plugins_dir: Path) -> None:
    command = "def run(args):\n    HOST[0].reload('acme.greet')\nHOST = []\n"
    folder = greeter(plugins_dir, "one", code={"cmd_mod.py": command})
    text = (folder / "plugin.toml").read_text()
    (folder / "plugin.toml").write_text(
        text + '[[contributes.command]]\nname = "again"\nentry = "cmd_mod:run"\n'
    )
    host = make_host(plugins_dir)
    host.get("command", "again")  # loads the plugin, so its module can be handed the host
    module = sys.modules[next(n for n in sys.modules if n.endswith(".cmd_mod"))]
    module.HOST.append(host)
    with pytest.raises(CommandError, match="reload cannot be called from inside"):
        host.run_command("again", [])


# ---------------------------------------------------------------- host.watch


def watching(host: Host, step_ms: int = 50) -> tuple[Any, list[ReloadResult]]:
    results: list[ReloadResult] = []
    return host.watch(results.append, step_ms=step_ms), results


def test_watch_reloads_on_save(make_host: Any, plugins_dir: Path) -> None:
    folder = greeter(plugins_dir, "one")
    host = make_host(plugins_dir)
    assert greet(host) == "one"
    watcher, results = watching(host)
    with watcher:
        save(folder / "greet_mod.py", "def greet():\n    return 'two'\n")
        wait_for(lambda: len(results) == 1)
        assert results[0].ok
        assert "reloaded acme.greet in" in results[0].message
        assert greet(host) == "two"


def test_watch_reports_a_syntax_error_and_recovers(make_host: Any, plugins_dir: Path) -> None:
    folder = greeter(plugins_dir, "one")
    host = make_host(plugins_dir)
    assert greet(host) == "one"
    watcher, results = watching(host)
    with watcher:
        save(folder / "greet_mod.py", "def greet(:\n")
        wait_for(lambda: len(results) == 1)
        assert not results[0].ok
        assert "SyntaxError" in results[0].message
        assert greet(host) == "one"
        save(folder / "greet_mod.py", "def greet():\n    return 'fixed'\n")
        wait_for(lambda: len(results) == 2)
        assert results[1].ok
        assert greet(host) == "fixed"


def test_a_burst_of_50_saves_is_one_reload(make_host: Any, plugins_dir: Path) -> None:
    folder = greeter(plugins_dir, "one")
    host = make_host(plugins_dir)
    assert greet(host) == "one"
    # The watcher waits for 200 ms without changes before it reloads.
    watcher, results = watching(host, step_ms=200)
    with watcher:
        for n in range(50):  # as fast as the disk takes them: well within a second
            save(folder / "greet_mod.py", f"def greet():\n    return 'v{n}'\n")
        wait_for(lambda: len(results) >= 1)
        assert greet(host) == "v49"
        # One more save: had the burst made more than one reload, this would be the third.
        save(folder / "greet_mod.py", "def greet():\n    return 'last'\n")
        wait_for(lambda: greet(host) == "last")
        assert len(results) == 2
        assert all(r.ok for r in results)


def test_a_deleted_plugin_folder_keeps_the_old_version(make_host: Any, plugins_dir: Path) -> None:
    folder = greeter(plugins_dir, "one")
    host = make_host(plugins_dir)
    assert greet(host) == "one"
    watcher, results = watching(host)
    with watcher:
        shutil.rmtree(folder)
        wait_for(lambda: len(results) >= 1)
        assert not results[-1].ok
        assert "was removed" in results[-1].message
        assert greet(host) == "one"
        assert host.state("acme.greet") is PluginState.STARTED


def test_a_config_change_reloads_the_plugin_it_configures(
    make_host: Any, plugins_dir: Path, home: Path
) -> None:
    plug = """
        class Plugin:
            def init(self, ctx):
                import greet_mod
                greet_mod.WORD = ctx.config.get("word", "none")
    """
    code = {"plug.py": plug, "greet_mod.py": "WORD = '?'\ndef greet():\n    return WORD\n"}
    write_plugin(plugins_dir, "acme.greet", contributes=TOOL, entry="plug:Plugin", code=code)
    (home / "config.toml").write_text('[plugins."acme.greet"]\nword = "hello"\n')
    host = make_host(plugins_dir)
    assert greet(host) == "hello"
    watcher, results = watching(host)
    with watcher:
        (home / "config.toml").write_text('[plugins."acme.greet"]\nword = "bonjour"\n')
        wait_for(lambda: len(results) == 1)
        assert results[0].ok
        assert greet(host) == "bonjour"


# ---------------------------------------------------------------- failed plugins, exec


def test_reload_brings_up_a_plugin_that_had_failed(make_host: Any, plugins_dir: Path) -> None:
    plug = "plug.py"
    folder = greeter(
        plugins_dir, "fixed", entry="plug:Plugin", code={plug: "raise ImportError('bad')\n"}
    )
    host = make_host(plugins_dir)
    with pytest.raises(LoadError, match="bad"):
        greet(host)
    assert host.state("acme.greet") is PluginState.FAILED
    save(folder / plug, "class Plugin(:\n")
    with pytest.raises(ReloadError, match="no previous version was running"):
        host.reload("acme.greet")
    assert host.state("acme.greet") is PluginState.FAILED
    save(folder / plug, "class Plugin:\n    pass\n")
    assert host.reload("acme.greet").ok
    assert host.state("acme.greet") is PluginState.STARTED
    assert greet(host) == "fixed"


def test_an_exec_plugin_whose_new_command_fails_is_restored(
    make_host: Any, plugins_dir: Path, home: Path
) -> None:
    child = Path(__file__).resolve().parent / "data" / "exec" / "child.py"
    folder = write_plugin(
        plugins_dir,
        "acme.vm",
        entry=shlex.join(["python", str(child)]),
        contributes={"module": [{"name": "vm"}]},
        extra='runtime = "exec"\n',
    )
    host = make_host(plugins_dir)
    assert host.get("module", "vm").echo(1) == {"args": [1], "kwargs": {}}
    first = (folder / "pids").read_text().split()
    manifest = folder / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('.py"', '.py --exit-before-ready"'))
    with pytest.raises(ReloadError, match="previous version keeps serving") as caught:
        host.reload("acme.vm")
    assert "dying early" in (caught.value.detail or "") + str(caught.value)
    assert host.get("module", "vm").echo(2) == {"args": [2], "kwargs": {}}
    pids = (folder / "pids").read_text().split()
    assert len(pids) == len(first) + 2  # the failed new child, then the restored one


def test_a_lookup_during_the_swap_waits_for_the_new_version(
    make_host: Any, plugins_dir: Path
) -> None:
    folder = greeter(plugins_dir, "one")
    host = make_host(plugins_dir)
    assert greet(host) == "one"
    gate, entered = threading.Event(), threading.Event()

    def hold(event: LifecycleEvent) -> None:
        # Sent between the old version's unload and the new one's registration: the moment
        # no tool named greet is registered.
        if event.name == "plugin_unloaded":
            entered.set()
            gate.wait(10)

    host.on(hold)
    save(folder / "greet_mod.py", "def greet():\n    return 'two'\n")
    reloader = threading.Thread(target=host.reload, args=("acme.greet",))
    reloader.start()
    assert entered.wait(10)
    answers: list[Any] = []
    asker = threading.Thread(target=lambda: answers.append(greet(host)))
    asker.start()
    asker.join(0.2)
    assert answers == []  # waiting for the reload, not failing with "no tool named greet"
    gate.set()
    asker.join(10)
    reloader.join(10)
    assert answers == ["two"]
