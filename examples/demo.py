"""The plugbay demo: opsrun, an example host application, with plugins from an index.

Run with ``make demo``. Everything happens in a temporary folder that is removed at the
end (a throwaway opsrun home, keys, an index served on 127.0.0.1, a stand-in Prism API);
nothing in your own home is read or written.

1. build and sign the example plugins, publish them as a static index, serve it;
2. trust the signing key, require signatures, install the plugins by name;
3. list the modules, read a module's help;
4. run a play that uses every plugin, with ``register`` and artifacts; run it again:
   nothing changes;
5. a broken plugin is isolated while the rest works;
6. a hot reload: a save fixes the broken plugin while the host runs.

The JavaScript plugin needs Node.js (``node``) and building the WebAssembly plugin needs
npm; without them the demo says so and goes on with the Python plugins.
"""

from __future__ import annotations

import functools
import http.server
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "examples" / "plugins"
STANDIN = ROOT / "examples" / "prism" / "standin.py"
OPSRUN = Path(sys.executable).with_name("opsrun")


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def say(text: str) -> None:
    print(textwrap.fill(text, 88), flush=True)


class Demo:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "opsrun-home"
        self.work = tmp / "work"
        self.work.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSRUN_", "PRISM_"))}
        self.env["OPSRUN_HOME"] = str(self.home)

    def opsrun(self, *args: str, check: bool = True, **env: str) -> int:
        """Runs ``opsrun ARGS`` in the work folder, as a user would type it."""
        print(f"$ opsrun {' '.join(args)}", flush=True)
        done = subprocess.run(
            [str(OPSRUN), *args], cwd=self.work, env={**self.env, **env}, check=False
        )
        if check and done.returncode != 0:
            sys.exit(f"demo: `opsrun {' '.join(args)}` exited with {done.returncode}")
        return done.returncode

    def python(self, code: str) -> None:
        """Runs a snippet of host code (shown first) in a fresh interpreter."""
        print(textwrap.indent(code, "    "), flush=True)
        subprocess.run([sys.executable, "-c", code], cwd=self.work, env=self.env, check=True)


def wasm_example() -> str | None:
    """Builds the WebAssembly example with ``make wasm-example``; why not, if it cannot."""
    missing = [tool for tool in ("make", "npm", "node") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found (building it needs Node.js 20+ with npm)"
    print("$ make wasm-example", flush=True)
    done = subprocess.run(
        ["make", "--no-print-directory", "wasm-example"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"make wasm-example failed:\n{done.stdout}{done.stderr}"
    return None


@contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """Serves ``folder`` over HTTP on 127.0.0.1, like any static web server would."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def prism_standin(password: str) -> Iterator[str]:
    """The stand-in Prism API (examples/prism/standin.py) on a free loopback port."""
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--port", "0", "--task-seconds", "0.1", "--quiet"],
        env={**os.environ, "PRISM_STANDIN_PASSWORD": password},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on " not in line:
            sys.exit(f"demo: the Prism stand-in did not start (it printed {line!r})")
        url = line.rsplit(" ", 1)[1].strip()
        print(line.strip(), flush=True)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


PLAY_HEAD = """\
- name: provision and greet
  vars:
    prism_username: admin
  tasks:
    - name: hello                        # acme.hello: Python, in process
      hello_world: {name: ops}
      register: hello

    - name: base image                   # acme.nutanix: Python, Prism REST API
      nutanix_image:
        endpoint: "{{ prism_endpoint }}"
        username: "{{ prism_username }}"
        password: "{{ env('PRISM_PASSWORD') }}"
        name: centos-9
        source_uri: https://images.example/centos-9.qcow2
      register: image

    - name: web server
      nutanix_vm:
        endpoint: "{{ prism_endpoint }}"
        username: "{{ prism_username }}"
        password: "{{ env('PRISM_PASSWORD') }}"
        name: web-1
        vcpus: 2
        memory_mib: 2048
        image_id: "{{ image_artifacts.image_id }}"
      register: vm
"""

PLAY_JS = """
    - name: from JavaScript              # acme.js_greeter: Node.js, out of process
      js_greet: {name: "{{ hello_artifacts.greeted }}"}
      register: js
"""

PLAY_WASM = """
    - name: from WebAssembly             # acme.as_greeter: WebAssembly, sandboxed
      as_greet: {name: "web-1"}
      register: wasm
"""

PLAY_TAIL = """
    - name: report
      debug:
        msg: "web-1 is {{ vm_artifacts.vm_id }} ({{ vm_artifacts.power_state }}){MORE}"
"""

BROKEN_MANIFEST = """\
schema = 1
[plugin]
namespace = "demo"
name = "motd"
version = "0.1.0"
description = "Message of the day, being written: its first save has a bug"
requires = ">=1.0.0,<2.0.0"
runtime = "python"

[contributes]
module = [{ name = "motd", entry = "demo_motd:Motd", summary = "Say the message of the day" }]
"""

BROKEN_CODE = """\
import yamll  # the bug: a typo (there is no library yamll)


class Motd:
    def validate(self, args): ...
    def check(self, args): return self.apply(args)
    def apply(self, args):
        return {"changed": False, "msg": "hello from motd", "artifacts": {}}
"""

RELOAD = """\
import threading
from pathlib import Path
from opsrun.host import make_host
from plugbay import PluginError

host = make_host()          # opsrun's own host, on its home
host.start()
try:
    host.get("module", "motd")
except PluginError as exc:
    print("before:", exc)

code = Path(HOME, "plugins", "motd", "demo_motd.py")
reloaded = threading.Event()

def report(result):
    print("watch:", result.message)
    reloaded.set()

with host.watch(report):    # reloads a plugin whenever its files change
    code.write_text(code.read_text().replace("yamll", "yaml"))  # the author saves a fix
    reloaded.wait(30)
print("after:", host.get("module", "motd")().apply({})["msg"])
host.stop()
"""


def main() -> None:
    if not OPSRUN.is_file():
        sys.exit(f"demo: opsrun is not installed beside {sys.executable}; run `make demo`")
    with tempfile.TemporaryDirectory(prefix="plugbay-demo-") as tmp_name:
        demo = Demo(Path(tmp_name))
        run(demo)
        print("\ndemo finished; the throwaway home, index and Prism stand-in are gone")


IDS = {
    "hello": "acme.hello",
    "nutanix": "acme.nutanix",
    "js-greeter": "acme.js_greeter",
    "as-greeter": "acme.as_greeter",
}


def run(demo: Demo) -> None:
    step(f"opsrun, an example host application, with a throwaway home: {demo.home}")
    say(
        "opsrun runs YAML plays whose tasks name modules; its users add modules by "
        "installing plugins. `opsrun module …` is plugbay's command line mounted inside it."
    )
    demo.opsrun("module", "list")
    plugins = publish(demo)
    with static_server(demo.tmp / "site") as base:
        install(demo, plugins, f"{base}/index.json")

    step("3. What is installed: modules, plugins (signed), and a module's help")
    demo.opsrun("module", "list")
    demo.opsrun("module", "list", "--plugins")
    demo.opsrun("module", "help", "nutanix_vm")

    password = "pw-" + secrets.token_hex(8)
    with prism_standin(password) as prism:
        plays(demo, plugins, prism, password)

    step("6. Hot reload: the author saves a fix while a host is running")
    demo.python(RELOAD.replace("HOME", repr(str(demo.home))))
    demo.opsrun("motd.yml")


def publish(demo: Demo) -> list[str]:
    """Builds and signs the example plugins into site/ with its index; their folders."""
    step("1. Build the example plugins as signed bundles and publish them as an index")
    plugins = ["hello", "nutanix"]
    if shutil.which("node"):
        plugins.append("js-greeter")
    else:
        say("node not found: the JavaScript plugin is left out of this run (needs Node.js).")
    why_not_wasm = wasm_example()
    if why_not_wasm is None:
        plugins.append("as-greeter")
    else:
        say(f"The WebAssembly plugin is left out of this run: {why_not_wasm}")
    keys, site = demo.tmp / "keys", demo.tmp / "site"
    demo.opsrun("module", "key", "generate", "acme", "-o", str(keys))
    for name in plugins:
        key = str(keys / "acme.key")
        demo.opsrun("module", "build", str(PLUGINS / name), "-o", str(site), "--sign", key)
    demo.opsrun("module", "index", "build", str(site))
    return plugins


def install(demo: Demo, plugins: list[str], index: str) -> None:
    step(f"2. Trust the key, require signatures, and install by name from {index}")
    demo.opsrun(
        "module", "key", "trust", str(demo.tmp / "keys" / "acme.pub"), "--namespace", "acme"
    )
    config = f'[policy]\nrequire-signatures = true\n\n[[index]]\nname = "acme"\nurl = "{index}"\n'
    with (demo.home / "config.toml").open("a", encoding="utf-8") as file:
        file.write(config)
    print(f"{demo.home / 'config.toml'}:\n{textwrap.indent(config, '    ')}")
    demo.opsrun("module", "install", *(IDS[name] for name in plugins))


def plays(demo: Demo, plugins: list[str], prism: str, password: str) -> None:
    step("4. A play that uses every plugin, passing artifacts along with `register`")
    play = PLAY_HEAD
    more = ""
    if "js-greeter" in plugins:
        play += PLAY_JS
        more += "; {{ js.msg }}"
    if "as-greeter" in plugins:
        play += PLAY_WASM
        more += "; {{ wasm_artifacts.greeting }}"
    play += PLAY_TAIL.replace("{MORE}", more)
    (demo.work / "site.yml").write_text(play, "utf-8")
    print(f"site.yml:\n{textwrap.indent(play, '    ')}")
    args = ("site.yml", "-e", f"prism_endpoint={prism}")
    demo.opsrun(*args, "-v", PRISM_PASSWORD=password)

    step("Run it again: nothing changes (every module checks before it acts)")
    demo.opsrun(*args, PRISM_PASSWORD=password)

    step("5. A broken plugin is isolated: the rest keeps working")
    motd = demo.home / "plugins" / "motd"
    motd.mkdir(parents=True)
    (motd / "plugin.toml").write_text(BROKEN_MANIFEST, "utf-8")
    (motd / "demo_motd.py").write_text(BROKEN_CODE, "utf-8")
    say(
        "A plugin author drops a work-in-progress plugin, demo.motd, into the home: its "
        "code imports a library that does not exist. Listing reads manifests only; "
        "loading every plugin shows the broken one failed, with the reason."
    )
    demo.opsrun("module", "status", check=False)
    (demo.work / "motd.yml").write_text("- name: message\n  motd: {}\n", "utf-8")
    demo.opsrun("motd.yml", check=False)
    say("The play that does not use it runs as before:")
    demo.opsrun(*args, PRISM_PASSWORD=password)


if __name__ == "__main__":
    main()
