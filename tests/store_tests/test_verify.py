"""``plugbay verify``: installed files against FILES.json, and FILES.json against the receipt."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import write_plugin
from plugbay.store import Layout, Store, build_bundle


def plugbay(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real command in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "plugbay", "--home", str(home), *args],
        capture_output=True,
        text=True,
        cwd=home,
        check=False,
    )


def verify_json(home: Path, *ids: str) -> tuple[int, dict[str, Any]]:
    result = plugbay(home, "verify", "--json", *ids)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def install(home: Path, tmp_path: Path, plugin_id: str) -> Path:
    """Build ``plugin_id`` 1.0.0 and install it with the store; its version folder."""
    folder = write_plugin(
        tmp_path / "src",
        plugin_id,
        code={
            "tool/__init__.py": "from .core import run\n",
            "tool/core.py": "def run():\n    return 42\n",
            "help/tool.md": "# tool\n",
        },
    )
    bundle = build_bundle(folder, tmp_path / "out")
    Store(home).install([str(bundle)])
    namespace, _, name = plugin_id.rpartition(".")
    return home / "plugins" / namespace / name / "1.0.0"


@pytest.fixture
def installed(home: Path, tmp_path: Path) -> Path:
    """acme.tool 1.0.0, installed from its bundle; its version folder."""
    return install(home, tmp_path, "acme.tool")


def test_a_clean_install_verifies(home: Path, installed: Path) -> None:
    plain = plugbay(home, "verify")
    code, doc = verify_json(home)

    assert plain.returncode == 0, plain.stderr
    assert "1 installed version(s) checked: 0 with problems" in plain.stdout
    assert code == 0
    assert doc == {
        "ok": True,
        "plugins": [
            {
                "id": "acme.tool",
                "version": "1.0.0",
                "path": str(installed),
                "ok": True,
                "modified": [],
                "missing": [],
                "extra": [],
                "errors": [],
            }
        ],
    }


def test_a_modified_file_is_reported(home: Path, installed: Path) -> None:
    with open(installed / "tool" / "core.py", "a") as f:
        f.write("import os  # injected\n")

    plain = plugbay(home, "verify")
    code, doc = verify_json(home)

    assert plain.returncode == 1
    assert "modified  acme.tool 1.0.0: tool/core.py" in plain.stdout
    assert code == 1
    assert doc["ok"] is False
    (report,) = doc["plugins"]
    assert (report["ok"], report["modified"], report["missing"], report["extra"]) == (
        False,
        ["tool/core.py"],
        [],
        [],
    )


def test_a_same_size_modification_is_reported(home: Path, installed: Path) -> None:
    path = installed / "tool" / "core.py"
    path.write_bytes(path.read_bytes().replace(b"42", b"43"))

    code, doc = verify_json(home)

    assert code == 1
    assert doc["plugins"][0]["modified"] == ["tool/core.py"]


def test_a_missing_file_is_reported(home: Path, installed: Path) -> None:
    (installed / "help" / "tool.md").unlink()

    plain = plugbay(home, "verify")
    code, doc = verify_json(home)

    assert plain.returncode == 1
    assert "missing   acme.tool 1.0.0: help/tool.md" in plain.stdout
    assert code == 1
    (report,) = doc["plugins"]
    assert (report["modified"], report["missing"], report["extra"]) == ([], ["help/tool.md"], [])


def test_an_extra_file_is_reported(home: Path, installed: Path) -> None:
    (installed / "tool" / "backdoor.py").write_text("import os\n")

    plain = plugbay(home, "verify")
    code, doc = verify_json(home)

    assert plain.returncode == 1
    assert "extra     acme.tool 1.0.0: tool/backdoor.py" in plain.stdout
    assert code == 1
    (report,) = doc["plugins"]
    assert (report["modified"], report["missing"], report["extra"]) == (
        [],
        [],
        ["tool/backdoor.py"],
    )


def test_bytecode_python_writes_on_import_is_not_extra(home: Path, installed: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.pop("PYTHONPYCACHEPREFIX", None)
    subprocess.run(
        [sys.executable, "-c", "import tool; assert tool.run() == 42"],
        cwd=installed,
        env=env,
        check=True,
    )
    assert list((installed / "tool" / "__pycache__").glob("*.pyc")), "Python wrote bytecode"

    code, doc = verify_json(home)

    assert code == 0, doc
    assert doc["plugins"][0]["extra"] == []


def test_anything_else_in_pycache_is_extra(home: Path, installed: Path) -> None:
    pycache = installed / "tool" / "__pycache__"
    pycache.mkdir()
    (pycache / "core.cpython-311.pyc").write_bytes(b"\0" * 16)
    (pycache / "payload.py").write_text("import os\n")

    code, doc = verify_json(home)

    assert code == 1
    assert doc["plugins"][0]["extra"] == ["tool/__pycache__/payload.py"]


def test_a_link_in_place_of_a_listed_file_is_modified(home: Path, installed: Path) -> None:
    target = installed.parent / "core-copy.py"
    path = installed / "tool" / "core.py"
    target.write_bytes(path.read_bytes())  # the same bytes, somewhere else
    path.unlink()
    path.symlink_to(target)

    code, doc = verify_json(home)

    assert code == 1
    assert doc["plugins"][0]["modified"] == ["tool/core.py"]


def test_a_fifo_or_folder_in_place_of_a_listed_file_is_modified_without_hanging(
    home: Path, installed: Path
) -> None:
    fifo = installed / "tool" / "core.py"
    fifo.unlink()
    os.mkfifo(fifo)  # opening it for reading would wait for a writer without O_NONBLOCK
    folder = installed / "tool" / "__init__.py"
    folder.unlink()
    folder.mkdir()

    code, doc = verify_json(home)

    assert code == 1
    assert doc["plugins"][0]["modified"] == ["tool/__init__.py", "tool/core.py"]


def test_a_large_file_is_hashed_in_chunks(home: Path, tmp_path: Path) -> None:
    folder = write_plugin(tmp_path / "src", "acme.big", code={"data.bin": "x"})
    (folder / "data.bin").write_bytes(os.urandom(3 << 20))  # three chunks of one MiB
    Store(home).install([str(build_bundle(folder, tmp_path / "out"))])
    data = home / "plugins" / "acme" / "big" / "1.0.0" / "data.bin"

    assert verify_json(home)[0] == 0
    with data.open("r+b") as f:  # one byte in the last chunk
        f.seek((3 << 20) - 1)
        f.write(b"\0" if f.read(1) != b"\0" else b"\1")

    code, doc = verify_json(home)
    assert code == 1
    assert doc["plugins"][0]["modified"] == ["data.bin"]


def test_a_linked_folder_is_extra_and_not_followed(
    home: Path, installed: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "lib.py").write_text("x = 1\n")
    (installed / "vendor").symlink_to(outside, target_is_directory=True)

    code, doc = verify_json(home)

    assert code == 1
    assert doc["plugins"][0]["extra"] == ["vendor"]


def test_a_consistently_rewritten_files_json_is_caught_by_the_receipt(
    home: Path, installed: Path
) -> None:
    """File changed, FILES.json updated to match, MANIFEST.json's files_sha256 updated too."""
    path = installed / "tool" / "core.py"
    new = b"import os\ndef run():\n    return os.getpid()\n"
    path.write_bytes(new)
    files_doc = json.loads((installed / "FILES.json").read_bytes())
    for entry in files_doc["files"]:
        if entry["path"] == "tool/core.py":
            entry["size"] = len(new)
            entry["sha256"] = hashlib.sha256(new).hexdigest()
    files_json = json.dumps(files_doc).encode()
    (installed / "FILES.json").write_bytes(files_json)
    manifest_doc = json.loads((installed / "MANIFEST.json").read_bytes())
    manifest_doc["files_sha256"] = hashlib.sha256(files_json).hexdigest()
    (installed / "MANIFEST.json").write_bytes(json.dumps(manifest_doc).encode())

    plain = plugbay(home, "verify")
    code, doc = verify_json(home)

    assert plain.returncode == 1
    assert "modified  acme.tool 1.0.0: MANIFEST.json" in plain.stdout
    assert code == 1
    (report,) = doc["plugins"]
    assert report["modified"] == ["MANIFEST.json"]
    assert (report["missing"], report["extra"], report["errors"]) == ([], [], [])


def test_files_json_rewritten_alone_is_reported(home: Path, installed: Path) -> None:
    path = installed / "tool" / "core.py"
    new = b"def run():\n    return 0\n"
    path.write_bytes(new)
    files_doc = json.loads((installed / "FILES.json").read_bytes())
    for entry in files_doc["files"]:
        if entry["path"] == "tool/core.py":
            entry["size"] = len(new)
            entry["sha256"] = hashlib.sha256(new).hexdigest()
    (installed / "FILES.json").write_bytes(json.dumps(files_doc).encode())

    code, doc = verify_json(home)

    assert code == 1
    assert doc["plugins"][0]["modified"] == ["FILES.json"]


def test_a_files_json_path_outside_the_folder_is_reported_not_read(
    home: Path, installed: Path
) -> None:
    files_doc = json.loads((installed / "FILES.json").read_bytes())
    files_doc["files"].append(
        {"path": "../../../../receipts/x.json", "size": 1, "mode": 420, "sha256": "0" * 64}
    )
    (installed / "FILES.json").write_bytes(json.dumps(files_doc).encode())

    code, doc = verify_json(home)

    assert code == 1
    (report,) = doc["plugins"]
    assert report["modified"] == ["FILES.json"]
    assert report["errors"] == [
        "FILES.json lists '../../../../receipts/x.json', a path outside the folder"
    ]
    assert report["missing"] == []


def test_a_missing_receipt_is_reported(home: Path, installed: Path) -> None:
    receipt = Layout(home).receipt_path("acme.tool", "1.0.0")
    receipt.unlink()

    plain = plugbay(home, "verify")
    code, doc = verify_json(home)

    assert plain.returncode == 1
    assert f"error     acme.tool 1.0.0: its receipt {receipt} is missing or unreadable" in (
        plain.stdout
    )
    assert code == 1
    (report,) = doc["plugins"]
    assert report["errors"] == [f"its receipt {receipt} is missing or unreadable"]
    assert (report["modified"], report["missing"], report["extra"]) == ([], [], [])


def test_a_receipt_whose_folder_is_gone_is_reported(
    home: Path, installed: Path, tmp_path: Path
) -> None:
    installed.rename(tmp_path / "moved-away")

    code, doc = verify_json(home)

    assert code == 1
    (report,) = doc["plugins"]
    assert (report["id"], report["version"]) == ("acme.tool", "1.0.0")
    assert report["errors"] == [
        f"its receipt {Layout(home).receipt_path('acme.tool', '1.0.0')} remains, "
        f"but its folder {installed} is gone (reinstall it, or remove it)"
    ]


def test_a_version_folder_that_lost_its_manifest_json_is_reported(
    home: Path, installed: Path
) -> None:
    (installed / "MANIFEST.json").unlink()

    code, doc = verify_json(home, "acme.tool")

    assert code == 1
    (report,) = doc["plugins"]
    assert report["missing"] == ["MANIFEST.json"]


def test_verify_id_checks_only_that_plugin(home: Path, tmp_path: Path) -> None:
    install(home, tmp_path / "a", "acme.tool")
    other = install(home, tmp_path / "b", "acme.other")
    (other / "tool" / "core.py").write_text("broken = True\n")

    code_all, doc_all = verify_json(home)
    code_tool, doc_tool = verify_json(home, "acme.tool")
    code_other, doc_other = verify_json(home, "acme.other")

    assert code_all == 1
    assert [(p["id"], p["ok"]) for p in doc_all["plugins"]] == [
        ("acme.other", False),
        ("acme.tool", True),
    ]
    assert code_tool == 0
    assert [p["id"] for p in doc_tool["plugins"]] == ["acme.tool"]
    assert code_other == 1
    assert [p["id"] for p in doc_other["plugins"]] == ["acme.other"]
    assert doc_other["plugins"][0]["modified"] == ["tool/core.py"]


def test_an_unknown_id_is_reported(home: Path, installed: Path) -> None:
    plain = plugbay(home, "verify", "acme.nope")
    code, doc = verify_json(home, "acme.nope")

    assert plain.returncode == 1
    assert "acme.nope is not installed by plugbay (run: plugbay list)" in plain.stdout
    assert code == 1
    assert doc["ok"] is False
    assert doc["plugins"] == [
        {
            "id": "acme.nope",
            "version": "",
            "path": "",
            "ok": False,
            "modified": [],
            "missing": [],
            "extra": [],
            "errors": ["acme.nope is not installed by plugbay (run: plugbay list)"],
        }
    ]


def test_an_empty_home_verifies(home: Path) -> None:
    code, doc = verify_json(home)

    assert code == 0
    assert doc == {"ok": True, "plugins": []}


PARALLEL = """
import json, sys
from pathlib import Path
import msgspec
from plugbay.store.layout import Layout
from plugbay.store.verify import verify
layout = Layout(Path(sys.argv[1]))
out = {w: msgspec.to_builtins(verify(layout, workers=w)) for w in (1, 2, 3)}
# Children that fail: their shares are verified again by the parent.
import os
from plugbay.store import verify as module
parent, original = os.getpid(), module._verify_one
def failing_in_children(*args):
    if os.getpid() != parent:
        raise RuntimeError("a child fails")
    return original(*args)
module._verify_one = failing_in_children
out["failing children"] = msgspec.to_builtins(verify(layout, workers=3))
print(json.dumps(out))
"""


def test_forked_verifiers_report_what_one_process_reports(home: Path, tmp_path: Path) -> None:
    """Many versions are shared among forked children (in a fresh single-threaded process)."""
    bundles = []
    for n in range(40):
        folder = write_plugin(
            tmp_path / "src",
            f"acme.p{n:02d}",
            code={"tool/__init__.py": f"N = {n}\n", "help/tool.md": "# tool\n"},
        )
        bundles.append(str(build_bundle(folder, tmp_path / "out")))
    Store(home).install(bundles)
    plugins = home / "plugins" / "acme"
    (plugins / "p03" / "1.0.0" / "tool" / "__init__.py").write_text("N = -1\n")
    (plugins / "p17" / "1.0.0" / "help" / "tool.md").unlink()
    (plugins / "p38" / "1.0.0" / "stray.txt").write_text("?")
    (home / "receipts" / "acme.p21-1.0.0.json").unlink()

    result = subprocess.run(
        [sys.executable, "-c", PARALLEL, str(home)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    by_workers = json.loads(result.stdout)
    one = by_workers["1"]
    assert [r["id"] for r in one] == [f"acme.p{n:02d}" for n in range(40)]
    problems = {
        r["id"]: r for r in one if r["modified"] or r["missing"] or r["extra"] or r["errors"]
    }
    assert sorted(problems) == ["acme.p03", "acme.p17", "acme.p21", "acme.p38"]
    assert problems["acme.p03"]["modified"] == ["tool/__init__.py"]
    assert problems["acme.p17"]["missing"] == ["help/tool.md"]
    assert problems["acme.p38"]["extra"] == ["stray.txt"]
    assert by_workers["2"] == one
    assert by_workers["3"] == one
    assert by_workers["failing children"] == one

    # And the command itself (40 versions, one thread: it forks where it can).
    code, doc = verify_json(home)
    assert code == 1
    assert [p["id"] for p in doc["plugins"] if not p["ok"]] == sorted(problems)
