"""The in-process Python runtime: one namespace per plugin, no sys.path edits, clean unload."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import modules_under, write_plugin
from plugbay import LoadError, PluginRecord, load_manifest
from plugbay.runtimes.python import PythonRuntime

COMMON = {
    "common/__init__.py": "",
    "common/util.py": "VALUE = {value!r}\n",
    "mod.py": """\
        from common import util

        def value():
            return util.VALUE
        """,
}


def _record(folder: Path) -> PluginRecord:
    path = folder / "plugin.toml"
    return PluginRecord(load_manifest(path), str(folder), str(path), "user", 1)


def _code(template: Mapping[str, str], **values: str) -> dict[str, str]:
    return {rel: text.format(**values) if values else text for rel, text in template.items()}


def _plugin(root: Path, plugin_id: str, code: Mapping[str, str], version: str = "1.0.0") -> Path:
    return write_plugin(root, plugin_id, version, code=code)


@pytest.fixture
def runtime() -> Iterator[PythonRuntime]:
    rt = PythonRuntime()
    yield rt
    rt.close()


# ---------------------------------------------------------------- namespaces


def test_two_plugins_with_the_same_top_level_package_do_not_collide(
    runtime: PythonRuntime, plugins_dir: Path
) -> None:
    before = sys.modules.get("common")
    one = _record(_plugin(plugins_dir, "a.one", _code(COMMON, value="one")))
    two = _record(_plugin(plugins_dir, "a.two", _code(COMMON, value="two")))

    assert runtime.import_entry(one, "mod:value")() == "one"
    assert runtime.import_entry(two, "mod:value")() == "two"
    # Both are loaded at once, each with its own copy, and neither is a top-level module.
    assert runtime.import_entry(one, "common.util:VALUE") == "one"
    assert runtime.import_entry(two, "common.util:VALUE") == "two"
    assert sys.modules.get("common") is before
    assert modules_under(Path(one.path))
    assert set(modules_under(Path(one.path))).isdisjoint(modules_under(Path(two.path)))


def test_two_versions_of_one_plugin_in_two_runtimes_do_not_collide(tmp_path: Path) -> None:
    v1 = _record(write_plugin(tmp_path / "p1", "a.tool", "1.0.0", code=_code(COMMON, value="v1")))
    v2 = _record(write_plugin(tmp_path / "p2", "a.tool", "2.0.0", code=_code(COMMON, value="v2")))
    first, second = PythonRuntime(), PythonRuntime()
    try:
        assert first.import_entry(v1, "mod:value")() == "v1"
        assert second.import_entry(v2, "mod:value")() == "v2"
        assert first.import_entry(v1, "mod:value")() == "v1"
        assert set(first.modules(v1)).isdisjoint(second.modules(v2))
    finally:
        first.close()
        second.close()


def test_two_versions_of_one_plugin_in_two_hosts(make_host: Any, tmp_path: Path) -> None:
    contributes = {"tool": [{"name": "value", "entry": "mod:value"}]}
    for version, root in (("1.0.0", tmp_path / "p1"), ("2.0.0", tmp_path / "p2")):
        code = _code(COMMON, value=version)
        write_plugin(root, "a.tool", version, contributes=contributes, code=code)
    old = make_host(tmp_path / "p1", home=tmp_path / "home1")
    new = make_host(tmp_path / "p2", home=tmp_path / "home2")

    assert old.get("tool", "value")() == "1.0.0"
    assert new.get("tool", "value")() == "2.0.0"
    assert old.get("tool", "value")() == "1.0.0"


def test_plugin_ids_that_sanitise_alike_get_distinct_namespaces(
    runtime: PythonRuntime, plugins_dir: Path
) -> None:
    # "a_b.c" and "a.b_c" both become "a_b_c" once dots are replaced.
    left = _record(_plugin(plugins_dir, "a_b.c", _code(COMMON, value="left")))
    right = _record(_plugin(plugins_dir, "a.b_c", _code(COMMON, value="right")))

    assert runtime.import_entry(left, "mod:value")() == "left"
    assert runtime.import_entry(right, "mod:value")() == "right"


def test_absolute_imports_of_the_plugins_own_packages_resolve_to_its_copy(
    runtime: PythonRuntime, plugins_dir: Path
) -> None:
    code = {
        "common/__init__.py": "",
        "common/util.py": "VALUE = 'own'\n",
        "common/deep/__init__.py": "",
        "common/deep/leaf.py": "WHERE = __file__\n",
        "helper.py": "NAME = 'helper'\n",
        "nsp/inner/leaf.py": "KIND = 'namespace package'\n",
        "mod.py": """\
            import common.util
            import common.util as aliased
            import helper
            from common import util
            from common.deep.leaf import WHERE
            from common.util import VALUE
            from nsp.inner.leaf import KIND

            def lazily():
                from common.deep import leaf
                import helper as h
                return leaf, h

            FORMS = [common.util.VALUE, aliased.VALUE, util.VALUE, VALUE, helper.NAME]
            """,
    }
    folder = _plugin(plugins_dir, "a.own", code)
    record = _record(folder)

    mod = runtime.import_entry(record, "mod")
    assert mod.FORMS == ["own", "own", "own", "own", "helper"]
    assert mod.KIND == "namespace package"
    assert str(folder / "common" / "deep" / "leaf.py") == mod.WHERE
    leaf, helper = mod.lazily()
    assert leaf.__file__ == str(folder / "common" / "deep" / "leaf.py")
    assert helper.__file__ == str(folder / "helper.py")
    assert mod.util.__name__.endswith(".common.util")
    assert mod.util.__name__ != "common.util"


def test_relative_imports_work(runtime: PythonRuntime, plugins_dir: Path) -> None:
    code = {
        "pkg/__init__.py": "from .core import CORE\n",
        "pkg/core.py": "CORE = 'core'\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/thing.py": """\
            from .. import core
            from ..core import CORE
            from . import sibling

            RESULT = (core.CORE, CORE, sibling.SIB)
            """,
        "pkg/sub/sibling.py": "SIB = 'sib'\n",
    }
    record = _record(_plugin(plugins_dir, "a.rel", code))

    assert runtime.import_entry(record, "pkg.sub.thing:RESULT") == ("core", "core", "sib")
    assert runtime.import_entry(record, "pkg:CORE") == "core"


def test_stdlib_imports_are_not_redirected_by_data_folders(
    runtime: PythonRuntime, plugins_dir: Path
) -> None:
    # A folder of templates that happens to share a stdlib module's name is not code.
    code = {
        "email/welcome.txt": "Hello!\n",
        "json/schema.txt": "{}\n",
        "mod.py": """\
            import json
            import email.message

            DUMPED = json.dumps({"a": 1})
            MESSAGE = email.message.EmailMessage
            """,
    }
    record = _record(_plugin(plugins_dir, "a.data", code))

    assert runtime.import_entry(record, "mod:DUMPED") == '{"a": 1}'
    assert runtime.import_entry(record, "mod:MESSAGE") is sys.modules["email.message"].EmailMessage


def test_nothing_is_added_to_sys_path(runtime: PythonRuntime, plugins_dir: Path) -> None:
    path_before = list(sys.path)
    meta_before = list(sys.meta_path)
    record = _record(_plugin(plugins_dir, "a.one", _code(COMMON, value="one")))

    runtime.import_entry(record, "mod:value")
    assert sys.path == path_before
    runtime.unload(record)
    assert sys.path == path_before

    other = PythonRuntime()
    other.import_entry(record, "mod:value")
    other.close()
    assert sys.path == path_before
    assert len(sys.meta_path) == len(meta_before)


def test_import_entry_imports_only_that_plugins_modules(
    runtime: PythonRuntime, plugins_dir: Path
) -> None:
    one = _record(_plugin(plugins_dir, "a.one", _code(COMMON, value="one")))
    two = _record(_plugin(plugins_dir, "a.two", _code(COMMON, value="two")))
    before = set(sys.modules)

    runtime.import_entry(one, "mod:value")
    new = set(sys.modules) - before

    assert set(modules_under(Path(one.path))) <= new
    assert {n.rsplit(".", 1)[-1] for n in modules_under(Path(one.path))} == {
        "mod",
        "common",
        "util",
    }
    assert not modules_under(Path(two.path))
    assert runtime.modules(two) == []


# ---------------------------------------------------------------- unloading


def test_unload_removes_every_module_of_the_plugin(
    runtime: PythonRuntime, plugins_dir: Path
) -> None:
    one = _record(_plugin(plugins_dir, "a.one", _code(COMMON, value="one")))
    two = _record(_plugin(plugins_dir, "a.two", _code(COMMON, value="two")))
    first = runtime.import_entry(one, "mod")
    runtime.import_entry(two, "mod")
    names = runtime.modules(one)
    assert len(names) >= 4  # the mount package, mod, common, common.util

    runtime.unload(one)

    assert not any(n in sys.modules for n in names)
    assert not modules_under(Path(one.path))
    assert runtime.modules(one) == []
    assert modules_under(Path(two.path)), "the other plugin stays loaded"
    again = runtime.import_entry(one, "mod")
    assert again is not first, "after unload the plugin's code runs afresh"
    assert again.value() == "one"


def test_close_removes_every_plugin_and_the_import_hook(plugins_dir: Path) -> None:
    meta_before = list(sys.meta_path)
    record = _record(_plugin(plugins_dir, "a.one", _code(COMMON, value="one")))
    runtime = PythonRuntime()
    runtime.import_entry(record, "mod")

    runtime.close()

    assert not modules_under(Path(record.path))
    assert sys.meta_path == meta_before


def test_host_stop_unloads_plugin_modules(make_host: Any, plugins_dir: Path) -> None:
    contributes = {"tool": [{"name": "value", "entry": "mod:value"}]}
    folder = write_plugin(
        plugins_dir, "a.one", contributes=contributes, code=_code(COMMON, value="one")
    )
    host = make_host(plugins_dir)
    assert host.get("tool", "value")() == "one"
    assert modules_under(folder)

    host.stop()

    assert not modules_under(folder)
    assert not [n for n in sys.modules if n.endswith(".common.util") and "a_one" in n]


# ---------------------------------------------------------------- entries and errors


def test_entries_with_dotted_attributes(runtime: PythonRuntime, plugins_dir: Path) -> None:
    code = {
        "mod.py": """\
            class Outer:
                class Inner:
                    @staticmethod
                    def method():
                        return "inner"

            ANSWER = 42
            """,
    }
    record = _record(_plugin(plugins_dir, "a.dot", code))

    assert runtime.import_entry(record, "mod:Outer.Inner.method")() == "inner"
    assert runtime.import_entry(record, "mod:ANSWER") == 42
    module = runtime.import_entry(record, "mod")
    assert module.ANSWER == 42


def test_missing_module_error_names_the_module_and_the_folder(
    runtime: PythonRuntime, plugins_dir: Path
) -> None:
    folder = _plugin(plugins_dir, "a.miss", {"mod.py": "X = 1\n"})
    record = _record(folder)

    with pytest.raises(ModuleNotFoundError) as excinfo:
        runtime.import_entry(record, "nowhere.deep:X")

    message = str(excinfo.value)
    assert "'nowhere'" in message
    assert str(folder) in message
    assert "_plugbay_" not in message


def test_missing_attribute_error_names_the_attribute_and_the_entry(
    runtime: PythonRuntime, plugins_dir: Path
) -> None:
    record = _record(_plugin(plugins_dir, "a.miss", {"mod.py": "class X:\n    pass\n"}))

    with pytest.raises(AttributeError) as excinfo:
        runtime.import_entry(record, "mod:X.nope")

    message = str(excinfo.value)
    assert "'nope'" in message
    assert "mod:X.nope" in message
    assert "_plugbay_" not in message


def test_tracebacks_show_the_real_file_path(runtime: PythonRuntime, plugins_dir: Path) -> None:
    code = {
        "pkg/__init__.py": "",
        "pkg/fail.py": """\
            def explode():
                raise RuntimeError("kaboom from plugin")
            """,
        "broken.py": "raise ValueError('broken at import')\n",
    }
    folder = _plugin(plugins_dir, "a.tb", code)
    record = _record(folder)
    explode = runtime.import_entry(record, "pkg.fail:explode")

    with pytest.raises(RuntimeError) as excinfo:
        explode()
    last = traceback.extract_tb(excinfo.value.__traceback__)[-1]
    assert last.filename == str(folder / "pkg" / "fail.py")
    assert last.line == 'raise RuntimeError("kaboom from plugin")'

    with pytest.raises(ValueError, match="broken at import") as excinfo2:
        runtime.import_entry(record, "broken")
    files = [f.filename for f in traceback.extract_tb(excinfo2.value.__traceback__)]
    assert str(folder / "broken.py") in files


def test_host_keeps_the_plugins_traceback(make_host: Any, plugins_dir: Path) -> None:
    folder = write_plugin(
        plugins_dir,
        "a.tb",
        entry="life:Plugin",
        code={
            "life.py": """\
                class Plugin:
                    def init(self, ctx):
                        raise KeyError("no such setting")
                """
        },
    )
    host = make_host(plugins_dir)

    with pytest.raises(LoadError, match="no such setting"):
        host.load("a.tb")
    (status,) = host.status()
    assert status.detail is not None
    assert f'File "{folder / "life.py"}", line 3, in init' in status.detail
