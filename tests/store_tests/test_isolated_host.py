"""Two isolated Python plugins needing conflicting versions of one library, both working.

End to end: the store installs each with its own venv (libx 1.0 in one, 2.0 in the other,
from a folder of tiny wheels, offline), then one ``Host`` loads both out of process and
calls them through the public API, as it would call in-process contributions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_isolated_install import libx
from test_pydeps import write_wheel

from conftest import write_plugin
from plugbay.store import Store

TOOL = {
    "libtool.py": """\
        import os
        import sys

        import libx


        class Tool:
            def version(self):
                return libx.__version__

            def where(self):
                return {"prefix": sys.prefix, "pid": os.getpid()}


        TOOL = Tool()
        """
}


@pytest.fixture
def store(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    links = tmp_path / "links"
    links.mkdir()
    write_wheel(links, "libx", "1.0", libx("1.0"))
    write_wheel(links, "libx", "2.0", libx("2.0"))
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    return Store(home, offline=True, find_links=[links])


def tool_plugin(root: Path, plugin_id: str, tool: str, requirement: str) -> Path:
    return write_plugin(
        root,
        plugin_id,
        extra=f'isolation = "process"\npython-dependencies = {json.dumps([requirement])}',
        contributes={"tool": [{"name": tool, "entry": "libtool:TOOL"}]},
        code=TOOL,
    )


def test_two_isolated_plugins_with_conflicting_libraries_both_work_in_one_host(
    store: Store, home: Path, tmp_path: Path, make_host: Any
) -> None:
    sources = tmp_path / "sources"
    store.install([str(tool_plugin(sources, "a.one", "one", "libx==1.0"))])
    store.install([str(tool_plugin(sources, "a.two", "two", "libx==2.0"))])

    host = make_host(kinds={"tool": None})
    one, two = host.get("tool", "one"), host.get("tool", "two")

    assert one.version() == "1.0"
    assert two.version() == "2.0"
    assert one.version() == "1.0"
    # Each in its own process, with its own venv's interpreter.
    where_one, where_two = one.where(), two.where()
    assert where_one["prefix"] == str(home / "venvs/a.one/1.0.0")
    assert where_two["prefix"] == str(home / "venvs/a.two/1.0.0")
    assert where_one["pid"] != where_two["pid"] != os.getpid()
