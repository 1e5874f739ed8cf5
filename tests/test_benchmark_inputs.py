"""The discovery benchmark's generated homes are what the store would leave.

The benchmarks are not run by the suite, but their inputs must stay valid as plugbay
changes: a generated home lists every plugin as enabled and installed unsigned, and
passes ``plugbay verify``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ok, run_plugbay

GENERATE = Path(__file__).resolve().parents[1] / "benchmarks" / "discovery" / "generate.py"


def test_a_generated_home_lists_and_verifies(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, str(GENERATE), "plugins", str(home / "plugins"), "--count", "40"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["plugins"] == 40

    listed = json.loads("\n".join(ok(run_plugbay(home, "list", "--json"))))["plugins"]
    assert len(listed) == 40
    assert {(p["state"], p["signature"]) for p in listed} == {("enabled", "unsigned")}
    assert ok(run_plugbay(home, "verify"))[-1] == (
        f"{summary['versions']} installed version(s) checked: 0 with problems"
    )
