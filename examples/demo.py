"""The plugbay demo: a throwaway home, one example plugin, the first commands.

Run with ``make demo``. Everything happens in a temporary folder that is removed at the
end; nothing in your own home is read or written.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGBAY = Path(sys.executable).with_name("plugbay")
SDK_GREETER = ROOT / "examples" / "plugins" / "sdk-greeter"


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run(*args: str, home: Path, check: bool = True, cwd: Path | None = None) -> None:
    shown = " ".join(["plugbay", "--app", "demo", *args])
    print(f"$ {shown}", flush=True)
    result = subprocess.run(
        [str(PLUGBAY), "--app", "demo", "--home", str(home), "--api-version", "1.4.0", *args],
        check=False,
        cwd=cwd,
    )
    if check and result.returncode != 0:
        sys.exit(f"demo: `{shown}` exited with {result.returncode}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="plugbay-demo-") as tmp:
        home = Path(tmp) / "home"
        step(f"A throwaway home for the app 'demo': {home}")
        dist = Path(tmp) / "dist"
        run("build", str(ROOT / "examples" / "plugins" / "hello"), "-o", str(dist), home=home)
        run("install", str(dist / "acme-hello-0.1.0.tar.gz"), home=home)
        (home / "config.toml").write_text(
            textwrap.dedent(
                """\
                [plugins."acme.hello"]
                greeting = "Howdy"
                """
            )
        )
        print("configured its greeting in config.toml")

        step("Discover: manifests only, no plugin code imported")
        run("list", home=home)

        step("Everything the manifest says")
        run("info", "acme.hello", home=home)

        step("Help of the hello_world module, rendered from the plugin's help/hello_world.md")
        run("help", "hello_world", home=home)

        step("Load every plugin in a throwaway host: state, timings, health")
        run("status", "-v", home=home)

        step("Use it from a host application (Python)")
        code = textwrap.dedent(
            """\
            from plugbay import Host

            with Host("demo", api_version="1.4.0", home=HOME) as host:
                HelloWorld = host.get("module", "hello_world")  # imports acme.hello now
                result = HelloWorld().apply({"name": "Ada"})
                print(result["msg"], result["artifacts"])
            """
        )
        print(textwrap.indent(code, "    "))
        subprocess.run([sys.executable, "-c", code.replace("HOME", repr(str(home)))], check=True)

        step("An out-of-process plugin: Python in its own process, written with plugbay.sdk")
        run("install", str(ROOT / "examples" / "plugins" / "sdk-greeter"), home=home)
        run("protocol-check", "-q", "python", "greeter.py", home=home, cwd=SDK_GREETER)
        print("the conformance kit passed every case")
        code = textwrap.dedent(
            """\
            import os
            from plugbay import Host

            with Host("demo", api_version="1.4.0", home=HOME) as host:
                greet = host.get("module", "greet")  # starts its process now
                print(greet.run(name="Ada"), "- from pid", greet.describe()["pid"])
                print("the host is pid", os.getpid())
            """
        )
        print(textwrap.indent(code, "    "))
        subprocess.run([sys.executable, "-c", code.replace("HOME", repr(str(home)))], check=True)

        step("Verify: every installed file against FILES.json and the receipt")
        run("verify", "-v", home=home)

        step("Doctor: problems that would stop a plugin from loading")
        run("doctor", home=home)
        print("\ndemo finished; the throwaway home is removed")


if __name__ == "__main__":
    main()
