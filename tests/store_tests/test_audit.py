"""The audit trail: every store change appended to ``<home>/audit.log`` as a JSON line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from pathlib import Path

import pytest

from conftest import run_plugbay, write_plugin
from plugbay.errors import StoreError
from plugbay.store import Store
from plugbay.store.audit import AUDIT_LOG, read_audit, record
from plugbay.store.install import Change
from plugbay.store.layout import Layout

CODE = {"acme_code/__init__.py": "class Plugin:\n    pass\n"}


def _source(tmp_path: Path, version: str) -> Path:
    return write_plugin(tmp_path / f"src-{version}", "acme.hello", version, code=CODE)


def test_every_store_operation_is_recorded(home: Path, tmp_path: Path) -> None:
    store = Store(home)
    store.install([str(_source(tmp_path, "1.0.0"))])
    store.install([str(_source(tmp_path, "1.1.0"))])
    store.use("acme.hello", "1.0.0")
    store.set_enabled("acme.hello", False)
    store.set_enabled("acme.hello", False)  # already disabled: nothing changes, no line
    store.set_enabled("acme.hello", True)
    store.grant("acme.hello", [("env", "HELLO_TOKEN")])
    store.revoke("acme.hello")
    receipt = Layout(home).read_receipt("acme.hello", "1.1.0")
    assert receipt is not None
    store.remove(["acme.hello@1.1.0"])

    log = read_audit(home)
    assert [r["operation"] for r in log] == [
        "install",
        "install",
        "use",
        "disable",
        "enable",
        "grant",
        "revoke",
        "remove",
    ]
    for r in log:
        when = dt.datetime.fromisoformat(r["when"])
        assert when.utcoffset() == dt.timedelta(0)
        assert r["who"]["uid"] == os.getuid()
        assert r["pid"] == os.getpid()
    second = log[1]["changes"]
    assert second == [
        {
            "action": "install",
            "id": "acme.hello",
            "version": "1.1.0",
            "previous": "1.0.0",
            "source": receipt.source,
            "bundle_sha256": receipt.bundle_sha256,
            "manifest_sha256": receipt.manifest_sha256,
            "signer": None,
        }
    ]
    assert str(tmp_path / "src-1.1.0") in receipt.source
    (switch,) = log[2]["changes"]
    assert (switch["action"], switch["version"], switch["previous"]) == ("switch", "1.0.0", "1.1.0")
    first = Layout(home).read_receipt("acme.hello", "1.0.0")
    assert first is not None
    assert switch["bundle_sha256"] == first.bundle_sha256
    assert log[3]["changes"] == [
        {"action": "disable", "id": "acme.hello", "version": None, "previous": None}
    ]
    (granted,) = log[5]["changes"]
    assert (granted["action"], granted["kind"], granted["value"]) == ("grant", "env", "HELLO_TOKEN")
    assert log[6]["changes"][0]["action"] == "revoke"
    # The removed version's receipt is gone, but its hashes were taken before.
    (removed,) = log[7]["changes"]
    assert removed["bundle_sha256"] == receipt.bundle_sha256
    assert (removed["action"], removed["version"]) == ("remove", "1.1.0")


def test_refused_and_dry_run_operations_write_nothing(home: Path, tmp_path: Path) -> None:
    store = Store(home)
    store.install([str(_source(tmp_path, "1.0.0"))], dry_run=True)
    assert not (home / AUDIT_LOG).exists()
    store.install([str(_source(tmp_path, "1.0.0"))])
    with pytest.raises(StoreError):
        store.use("acme.hello", "9.9.9")
    store.remove(["acme.hello"], dry_run=True)
    store.install([str(_source(tmp_path, "1.0.0"))])  # already installed: a keep
    assert [r["operation"] for r in read_audit(home)] == ["install"]


def test_the_command_line_records_too(home: Path, tmp_path: Path) -> None:
    done = run_plugbay(home, "install", str(_source(tmp_path, "2.0.0")))
    assert done.returncode == 0, done.stderr
    (entry,) = read_audit(home)
    assert entry["operation"] == "install"
    assert entry["changes"][0]["version"] == "2.0.0"
    assert entry["pid"] != os.getpid()
    assert oct((home / AUDIT_LOG).stat().st_mode & 0o777) == oct(0o600)


def test_concurrent_appends_stay_whole_lines(home: Path) -> None:
    layout = Layout(home)
    big = "x" * 20_000  # far beyond one write of a pipe: whole lines come from the flock

    def write(n: int) -> None:
        for i in range(25):
            record(layout, "install", [Change("install", f"acme.p{n}", f"1.0.{i}", source=big)])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = (home / AUDIT_LOG).read_text("utf-8").splitlines()
    assert len(lines) == 100
    assert all(json.loads(line)["changes"][0]["source"] == big for line in lines)


def test_store_changes_are_logged_with_the_plugin_id(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="plugbay"):
        Store(home).install([str(_source(tmp_path, "1.0.0"))])
        Store(home).set_enabled("acme.hello", False)
    tagged = [
        (r.getMessage(), r.plugin_id)  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "plugin_id", None) is not None
    ]
    assert tagged[0][0].startswith("install: install acme.hello 1.0.0 from ")
    assert tagged[1:] == [("disable: disable acme.hello", "acme.hello")]
    assert tagged[0][1] == "acme.hello"
