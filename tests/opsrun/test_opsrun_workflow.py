"""opsrun end to end, as a user runs it: plugins installed from a local git repository and
from a tarball, modules listed and helped, plays with ``register`` run against the Prism
stand-in twice (the second run changes nothing), check mode, secrets, and errors.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opsrun_support import (
    PLUGINS,
    Opsrun,
    Prism,
    make_opsrun,
    running_prism,
)

from conftest import build_greeter_wasm
from index_server import serve

PROVISION = PLUGINS / "nutanix" / "examples" / "provision.yml"


@pytest.fixture
def opsrun(tmp_path: Path) -> Opsrun:
    return make_opsrun(tmp_path)


@pytest.fixture
def prism() -> Iterator[Prism]:
    with running_prism() as server:
        yield server


@pytest.fixture(scope="module")
def greeter_wasm() -> Path:
    return build_greeter_wasm()


def git_repo(source: Path, dest: Path) -> Path:
    """A git repository at ``dest`` holding a copy of the plugin folder ``source``."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.test", *args],
            cwd=dest,
            check=True,
            capture_output=True,
        )

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "acme.nutanix 0.1.0")
    git("tag", "v0.1.0")
    return dest


def modules(opsrun: Opsrun) -> dict[str, str]:
    """``opsrun module list --json``: module name -> the plugin that provides it."""
    doc = json.loads(opsrun("module", "list", "--json").stdout)
    assert doc["kind"] == "module"
    return {c["name"]: c["plugin"] for c in doc["contributions"]}


def test_install_from_git_and_tarball_list_help_remove(opsrun: Opsrun, tmp_path: Path) -> None:
    assert modules(opsrun) == {"copy": "opsrun.builtin", "debug": "opsrun.builtin"}

    repo = git_repo(PLUGINS / "nutanix", tmp_path / "acme-nutanix.git")
    done = opsrun("module", "install", f"git+file://{repo}@v0.1.0")
    assert "install acme.nutanix 0.1.0" in done.stdout
    assert (opsrun.home / "plugins" / "acme" / "nutanix" / "0.1.0" / "acme_nutanix").is_dir()

    dist = tmp_path / "dist"
    opsrun("module", "build", PLUGINS / "hello", "-o", dist)
    bundle = dist / "acme-hello-0.1.0.tar.gz"
    assert bundle.is_file()
    assert "install acme.hello 0.1.0" in opsrun("module", "install", bundle).stdout

    assert modules(opsrun) == {
        "copy": "opsrun.builtin",
        "debug": "opsrun.builtin",
        "hello_world": "acme.hello",
        "nutanix_image": "acme.nutanix",
        "nutanix_vm": "acme.nutanix",
    }
    table = opsrun("module", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "PLUGIN", "SUMMARY"]
    rows = {line.split()[0]: line.split()[1] for line in table[1:]}
    assert rows["nutanix_vm"] == "acme.nutanix"
    assert rows["debug"] == "opsrun.builtin"

    plugins = json.loads(opsrun("module", "list", "--plugins", "--json").stdout)["plugins"]
    origins = {p["id"]: (p["version"], p["origin"]) for p in plugins}
    assert origins["opsrun.builtin"] == ("1.0.0", "builtin")
    assert origins["acme.nutanix"] == ("0.1.0", "user")
    assert plugins[0]["id"] in origins

    shown = opsrun("module", "nutanix_vm", "help").stdout
    assert shown == opsrun("module", "help", "nutanix_vm").stdout
    for words in ("nutanix_vm", "memory_mib", "vm_id", "task_id", "PRISM_PASSWORD"):
        assert words in shown
    assert "Writes a file" in opsrun("module", "copy", "help").stdout

    opsrun("module", "remove", "acme.hello")
    assert "hello_world" not in modules(opsrun)
    failed = opsrun("module", "help", "hello_world", code=1)
    assert len(failed.stderr.strip().splitlines()) == 1


def test_install_by_name_from_an_index(opsrun: Opsrun, tmp_path: Path) -> None:
    """Bundles published as a static index on a real HTTP server, installed by name."""
    site = tmp_path / "site"
    for name in ("hello", "nutanix"):
        opsrun("module", "build", PLUGINS / name, "-o", site)
    opsrun("module", "index", "build", site)
    with serve(site) as server:
        index = f"{server.url}/index.json"
        done = opsrun("module", "install", "acme.nutanix", "acme.hello@0.1.0", "--index", index)
        assert f"install acme.nutanix 0.1.0 from {server.url}/acme-nutanix-0.1.0.tar.gz" in (
            done.stdout
        )
        # One request for the index, one per bundle.
        assert sorted(server.paths()) == [
            "/acme-hello-0.1.0.tar.gz",
            "/acme-nutanix-0.1.0.tar.gz",
            "/index.json",
        ]
        unknown = opsrun("module", "install", "acme.nutanx", "--index", index, code=1)
        assert "closest names: acme.nutanix" in unknown.stderr
    assert {"hello_world", "nutanix_vm", "nutanix_image"} <= set(modules(opsrun))
    opsrun("module", "verify")
    receipt = json.loads((opsrun.home / "receipts" / "acme.hello-0.1.0.json").read_text())
    assert receipt["source"] == f"{server.url}/acme-hello-0.1.0.tar.gz"


def play_json(opsrun: Opsrun, *args: str | Path, code: int = 0, **env: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(opsrun(*args, "--json", code=code, **env).stdout)
    return doc


def by_task(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["task"]: t for t in doc["tasks"]}


def test_play_with_register_against_prism_run_twice(opsrun: Opsrun, prism: Prism) -> None:
    opsrun("module", "install", PLUGINS / "nutanix")
    args = (PROVISION, "-e", f"prism_endpoint={prism.url}")

    # --check first: it says what would change and changes nothing.
    checked = play_json(opsrun, "run", *args, "--check", PRISM_PASSWORD=prism.password)
    assert checked["check"] is True
    tasks = by_task(checked)
    assert tasks["base image"]["status"] == "changed"
    assert tasks["base image"]["msg"].startswith("would create image centos-9")
    # The image's id is not known before it exists: the task using it is skipped.
    assert tasks["web server"]["status"] == "skipped"
    assert "'dict object' has no attribute 'image_id'" in tasks["web server"]["msg"]
    assert tasks["report"]["status"] == "skipped"
    assert prism.entities("vm") == []
    assert prism.entities("image") == []

    first = play_json(opsrun, *args, PRISM_PASSWORD=prism.password)
    assert first["ok"] is True
    assert first["stats"] == {"ok": 1, "changed": 2, "failed": 0, "skipped": 0}
    tasks = by_task(first)
    image_id = tasks["base image"]["artifacts"]["image_id"]
    vm = tasks["web server"]["artifacts"]
    assert vm["status"] == "SUCCEEDED"
    assert vm["power_state"] == "ON"
    assert vm["task_id"]
    assert vm["vm_id"]
    # register: the debug task rendered the VM's artifacts
    assert tasks["report"]["msg"] == f"web-1 is {vm['vm_id']} (ON)"

    # What Prism holds: one image, one VM whose disk is that image (image_artifacts used).
    [image] = prism.entities("image")
    [server_vm] = prism.entities("vm")
    assert image["metadata"]["uuid"] == image_id
    assert server_vm["metadata"]["uuid"] == vm["vm_id"]
    resources = server_vm["spec"]["resources"]
    assert (resources["num_sockets"], resources["memory_size_mib"]) == (2, 2048)
    assert resources["disk_list"][0]["data_source_reference"]["uuid"] == image_id
    assert len(prism.entities("task")) == 2

    # The second run changes nothing: no new task, the same ids.
    second = play_json(opsrun, *args, PRISM_PASSWORD=prism.password)
    assert second["stats"] == {"ok": 3, "changed": 0, "failed": 0, "skipped": 0}
    tasks = by_task(second)
    assert tasks["web server"]["artifacts"]["vm_id"] == vm["vm_id"]
    assert tasks["web server"]["artifacts"]["status"] == "UNCHANGED"
    assert tasks["web server"]["artifacts"]["task_id"] is None
    assert tasks["base image"]["artifacts"]["image_id"] == image_id
    assert len(prism.entities("task")) == 2

    # In text, the way a person reads it.
    text = opsrun(*args, PRISM_PASSWORD=prism.password).stdout.splitlines()
    assert text[0] == "PLAY [provision a web server]"
    assert text[1] == "ok: [base image] nutanix_image: image centos-9 is as wanted"
    assert text[2] == "ok: [web server] nutanix_vm: VM web-1 is as wanted"
    assert text[-1] == "RECAP ok=3 changed=0 failed=0 skipped=0"


def test_a_change_then_a_delete(opsrun: Opsrun, prism: Prism, tmp_path: Path) -> None:
    """A resize and power-off are one update; absent deletes; each reported by artifacts."""
    opsrun("module", "install", PLUGINS / "nutanix")
    play = tmp_path / "vm.yml"

    def write(**vm_args: object) -> None:
        play.write_text(
            "- name: vm\n"
            "  vars:\n"
            f"    endpoint: {prism.url}\n"
            "  tasks:\n"
            "    - name: the vm\n"
            "      nutanix_vm:\n"
            '        endpoint: "{{ endpoint }}"\n'
            "        username: admin\n"
            + "".join(f"        {key}: {value}\n" for key, value in vm_args.items())
            + "      register: vm\n"
            "    - name: after\n"
            "      debug:\n"
            '        msg: "{{ vm_artifacts.vm_id }} {{ vm_artifacts.power_state }}"\n',
            "utf-8",
        )

    write(name="db-1")
    created = by_task(play_json(opsrun, play, PRISM_PASSWORD=prism.password))
    vm_id = created["the vm"]["artifacts"]["vm_id"]
    write(name="db-1", vcpus=4, state="powered_off")
    changed = by_task(play_json(opsrun, play, PRISM_PASSWORD=prism.password))
    assert changed["the vm"]["status"] == "changed"
    assert changed["the vm"]["msg"].startswith("update VM db-1: vCPU 1 -> 4, power ON -> OFF")
    assert changed["after"]["msg"] == f"{vm_id} OFF"
    [server_vm] = prism.entities("vm")
    assert server_vm["spec"]["resources"]["num_sockets"] == 4
    assert server_vm["metadata"]["spec_version"] == 1

    write(name="db-1", state="absent")
    deleted = by_task(play_json(opsrun, play, PRISM_PASSWORD=prism.password))
    assert deleted["the vm"]["status"] == "changed"
    assert deleted["the vm"]["artifacts"]["status"] == "SUCCEEDED"
    assert prism.entities("vm") == []
    again = by_task(play_json(opsrun, play, PRISM_PASSWORD=prism.password))
    assert again["the vm"]["status"] == "ok"


@pytest.mark.parametrize("verbosity", ["", "-v", "-vv", "-vvv", "--json"])
def test_the_password_never_appears(
    opsrun: Opsrun, prism: Prism, tmp_path: Path, verbosity: str
) -> None:
    """Not in results, arguments, logs, tracebacks, errors; from play vars or environment."""
    opsrun("module", "install", PLUGINS / "nutanix")
    play = tmp_path / "secret.yml"
    play.write_text(
        "- name: secrets\n"
        "  vars:\n"
        f"    prism_password: {prism.password}\n"
        "  tasks:\n"
        "    - name: image\n"
        "      nutanix_image:\n"
        f"        endpoint: {prism.url}\n"
        "        username: admin\n"
        '        password: "{{ prism_password }}"\n'
        "        name: alpine\n"
        "        source_uri: https://images.example/alpine.qcow2\n"
        "      register: image\n"
        "    - name: leak it on purpose\n"
        "      debug:\n"
        '        msg: "the password is {{ prism_password }}"\n'
        "    - name: from the environment, wrong on purpose\n"
        "      nutanix_vm:\n"
        f"        endpoint: {prism.url}\n"
        "        name: web-9\n",
        "utf-8",
    )
    wrong = "wrong-" + prism.password[::-1]
    flags = [verbosity] if verbosity else []
    done = opsrun(play, *flags, code=1, PRISM_USERNAME="admin", PRISM_PASSWORD=wrong)
    out = done.output
    for secret in (prism.password, wrong):
        assert secret not in out
        token = base64.b64encode(f"admin:{secret}".encode()).decode()
        assert token not in out
    assert "********" in out
    assert "refused the credentials of user 'admin' (HTTP 401)" in out
    if verbosity == "-vvv":
        assert "debug [acme.nutanix]: POST /api/nutanix/v3/images/list" in done.stderr
        assert "Traceback" in done.stderr  # the failed task's, scrubbed like the rest
    if verbosity == "--json":
        doc = json.loads(done.stdout)
        assert by_task(doc)["leak it on purpose"]["msg"] == "the password is ********"


def test_js_and_wasm_modules_in_one_play(
    opsrun: Opsrun, tmp_path: Path, greeter_wasm: Path
) -> None:
    opsrun("module", "install", PLUGINS / "js-greeter", PLUGINS / "as-greeter")
    assert {"js_greet", "as_greet"} <= set(modules(opsrun))
    assert "artifacts.runtime" in opsrun("module", "js_greet", "help").stdout
    play = tmp_path / "greet.yml"
    play.write_text(
        "- name: from JavaScript\n"
        "  js_greet: {name: Ada}\n"
        "  register: js\n"
        "- name: from WebAssembly\n"
        '  as_greet: {name: "pid {{ js_artifacts.pid }}"}\n'
        "  register: wasm\n"
        "- name: both\n"
        '  debug: {msg: "{{ js.msg }} / {{ wasm_artifacts.greeting }}"}\n',
        "utf-8",
    )
    doc = play_json(opsrun, play)
    tasks = by_task(doc)
    js = tasks["from JavaScript"]
    assert js["msg"] == "Hello, Ada!"
    assert js["artifacts"]["runtime"].startswith("Node.js v")
    pid = js["artifacts"]["pid"]
    assert isinstance(pid, int)
    assert tasks["from WebAssembly"]["artifacts"] == {
        "greeting": f"Hello, pid {pid}!",
        "name": f"pid {pid}",
    }
    assert tasks["both"]["msg"] == f"Hello, Ada! / Hello, pid {pid}!"
    assert doc["stats"]["ok"] == 3

    # Both plugins implement opsrun's hook before_task_run(task); -vv logs what they say.
    logged = opsrun(play, "-vv").stderr
    assert "before_task_run('both'): Hello from JavaScript, before both" in logged
    assert "before_task_run('both'): Hello from WebAssembly, both!" in logged

    # The JavaScript plugin's command, mounted as an opsrun subcommand, prints its greeting.
    assert opsrun("js-greet", "Ada").stdout == "Hello, Ada!\n"

    # The examples shipped with the plugins run as they are.
    opsrun(PLUGINS / "js-greeter" / "examples" / "greet.yml")
    opsrun(PLUGINS / "as-greeter" / "examples" / "greet.yml")

    bad = tmp_path / "bad.yml"
    bad.write_text("- as_greet: {nmae: Ada}\n- js_greet: {}\n", "utf-8")
    failed = play_json(opsrun, bad, code=1)
    assert [t["status"] for t in failed["tasks"]] == ["failed"]
    assert "unknown argument 'nmae'; it takes name" in failed["tasks"][0]["msg"]


def test_check_mode_and_copy_idempotence(opsrun: Opsrun, tmp_path: Path) -> None:
    target = tmp_path / "out" / "motd"
    play = tmp_path / "motd.yml"
    play.write_text(
        "- name: motd\n"
        "  vars: {who: ops}\n"
        "  tasks:\n"
        "    - name: write it\n"
        f'      copy: {{dest: {target}, content: "hello {{{{ who }}}}\\n", mode: "0640"}}\n'
        "      register: motd\n"
        "    - name: only when written\n"
        "      when: motd.changed\n"
        '      debug: {msg: "wrote {{ motd_artifacts.dest }}"}\n',
        "utf-8",
    )
    check = opsrun(play, "--check").stdout.splitlines()
    assert check[0] == "PLAY [motd] (check mode: nothing is changed)"
    assert check[1] == f"changed: [write it] copy: would write {target} (new file)"
    assert not target.exists()

    first = opsrun(play).stdout.splitlines()
    assert first[1] == f"changed: [write it] copy: wrote {target} (new file)"
    assert first[2] == f"ok: [only when written] debug: wrote {target}"
    assert target.read_text("utf-8") == "hello ops\n"
    assert target.stat().st_mode & 0o777 == 0o640

    second = opsrun(play, "-e", "who=ops").stdout.splitlines()
    assert second[1] == f"ok: [write it] copy: {target} is up to date"
    assert second[2] == "skipped: [only when written] debug: `when: motd.changed` is false"
    assert second[-1] == "RECAP ok=1 changed=0 failed=0 skipped=1"

    changed = opsrun(play, "-v", "-e", "who=devs").stdout
    assert f"changed: [write it] copy: wrote {target} (content differs)" in changed
    assert "    sha256: " in changed  # -v shows the artifacts
    assert target.read_text("utf-8") == "hello devs\n"


def test_errors_are_one_clear_line(opsrun: Opsrun, tmp_path: Path) -> None:
    play = tmp_path / "typo.yml"
    play.write_text("- name: typo\n  debgu: {msg: hi}\n- debug: {msg: never}\n", "utf-8")
    done = opsrun(play, code=1)
    lines = done.stdout.splitlines()
    assert lines[1].startswith("failed: [typo] debgu: no module named 'debgu' is registered")
    assert 'did you mean "debug"' in lines[1]
    assert lines[-1] == "RECAP ok=0 changed=0 failed=1 skipped=0"  # it stopped there

    broken = tmp_path / "broken.yml"
    broken.write_text("- name: two\n  debug: {}\n  copy: {}\n", "utf-8")
    done = opsrun(broken, code=1)
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"opsrun: {broken}: play 'broken', task 1 'two': names more than one module "
        "(debug, copy); one module per task"
    ]
    assert json.loads(opsrun(broken, "--json", code=1).stdout)["ok"] is False

    undefined = tmp_path / "undefined.yml"
    undefined.write_text('- debug: {msg: "{{ nope_artifacts.id }}"}\n', "utf-8")
    done = opsrun(undefined, code=1)
    assert "'nope_artifacts' is undefined" in done.stdout

    missing = opsrun(tmp_path / "missing.yml", code=1)
    assert "missing.yml: cannot read it" in missing.stderr

    usage = opsrun("run", play, "-e", "no-equals-sign", code=2)
    assert "expected NAME=VALUE" in usage.stderr
