"""docs/getting-started.md, run as a reader would: its files written out, its commands run,
their output compared with what the page shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "getting-started.md"


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_the_getting_started_page_works_as_written(tmp_path: Path) -> None:
    text = DOC.read_text("utf-8")
    app, modules = blocks(text, "python")
    (manifest,) = blocks(text, "toml")
    (console,) = blocks(text, "console")
    project = tmp_path / "tasker"
    plugin = project / "greeter"
    (plugin / "acme_greeter").mkdir(parents=True)
    (plugin / "help").mkdir()
    (project / "app.py").write_text(app)
    (plugin / "plugin.toml").write_text(manifest)
    (plugin / "acme_greeter" / "__init__.py").write_text("")
    (plugin / "acme_greeter" / "modules.py").write_text(modules)
    (plugin / "help" / "greet.md").write_text(
        "# greet\n\nSays hello. Arguments: `name` (default: world).\n"
    )
    env = {**os.environ, "TASKER_HOME": str(tmp_path / "home"), "COLUMNS": "80"}
    # The console block: "$ command" lines, each followed by the output it shows.
    steps: list[tuple[str, list[str]]] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    ran = 0
    for command, shown in steps:
        if command.startswith("export "):
            continue
        args = command.split()
        assert args[:2] == ["python", "app.py"], command
        result = subprocess.run(
            [sys.executable, *args[1:]],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{command}: {result.stderr}"
        out = result.stdout.replace(str(project), "/tmp/tasker")  # the page's folder
        got = [line.strip() for line in out.splitlines() if line.strip()]
        want = [line.strip() for line in shown if line.strip()]
        assert got == want, f"{command}: the page shows {want}, the command printed {got}"
        ran += 1
    assert ran == 4
