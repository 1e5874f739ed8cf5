"""Where bundles come from: install specs, bundle files, HTTP, git, requirements files.

Real sources only: bundles built on disk, an HTTP server on 127.0.0.1 started here, git
repositories made with the real ``git`` command, and the real ``plugbay`` command in a
subprocess. Every failure must be one ``error: …`` line, exit 1, and leave the home as it
was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import home_snapshot as snapshot
from conftest import run_plugbay, write_plugin
from plugbay.errors import SourceError
from plugbay.store import Receipt, Store, build_bundle
from plugbay.store.requirements import read_requirements
from plugbay.store.sources import Artifact, Requested, parse_spec

CODE = {"acme_code/__init__.py": "class Plugin:\n    pass\n"}


# ---------------------------------------------------------------- helpers


plugbay = run_plugbay


def assert_one_error_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit 1, nothing on stdout, one ``error: …`` line naming ``expected``, no traceback."""
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0]
    for noise in ("Traceback", "object at 0x", "Candidate(", "Requirement(", "Artifact("):
        assert noise not in result.stderr
    return lines[0]


def active(home: Path, plugin_id: str) -> str:
    namespace, _, name = plugin_id.rpartition(".")
    return (home / "plugins" / namespace / name / "active").read_text()


def receipt(home: Path, plugin_id: str, version: str) -> Receipt:
    data = (home / "receipts" / f"{plugin_id}-{version}.json").read_bytes()
    return msgspec.json.decode(data, type=Receipt)


def listed(home: Path) -> dict[str, dict[str, Any]]:
    result = plugbay(home, "list", "--json")
    assert result.returncode == 0, result.stderr
    return {p["id"]: p for p in json.loads(result.stdout)["plugins"]}


@pytest.fixture
def seeded(home: Path, tmp_path: Path) -> Path:
    """A home with acme.base 1.0.0 installed, so "unchanged" has something to compare."""
    base = write_plugin(tmp_path / "seed", "acme.base", "1.0.0")
    Store(home).install([str(base)])
    return home


# ---------------------------------------------------------------- install specs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("acme.tools", Requested("acme.tools", None, "acme.tools")),
        ("tools", Requested("tools", None, "tools")),
        ("acme.tools@1.2.0", Requested("acme.tools", "=1.2.0", "acme.tools@1.2.0")),
        ("acme.tools:1.2.0", Requested("acme.tools", "=1.2.0", "acme.tools:1.2.0")),
        ("acme.tools>=1.0,<2", Requested("acme.tools", ">=1.0,<2", "acme.tools>=1.0,<2")),
        ("acme.tools^1.2", Requested("acme.tools", "^1.2", "acme.tools^1.2")),
        ("acme.tools 1.2.*", Requested("acme.tools", "1.2.*", "acme.tools 1.2.*")),
        (
            "https://example.test/acme-tools-1.0.0.tar.gz",
            Artifact("url", "https://example.test/acme-tools-1.0.0.tar.gz", None),
        ),
        (
            "git+https://example.test/acme/tools.git",
            Artifact("git", "https://example.test/acme/tools.git", None),
        ),
        (
            "git+https://user@example.test/acme/tools.git@v1.2.0",
            Artifact("git", "https://user@example.test/acme/tools.git", "v1.2.0"),
        ),
        (
            "git+git@example.test:acme/tools.git@main",
            Artifact("git", "git@example.test:acme/tools.git", "main"),
        ),
        (
            "git+file:///srv/repos/tools",
            Artifact("git", "file:///srv/repos/tools", None),
        ),
    ],
)
def test_specs_are_classified(spec: str, expected: Requested | Artifact) -> None:
    parsed = parse_spec(spec)
    if isinstance(expected, Artifact):
        assert isinstance(parsed, Artifact)
        assert (parsed.kind, parsed.location, parsed.ref) == (
            expected.kind,
            expected.location,
            expected.ref,
        )
        assert str(parsed) == spec
    else:
        assert parsed == expected


def test_folder_and_bundle_specs_become_absolute(tmp_path: Path, monkeypatch: Any) -> None:
    folder = write_plugin(tmp_path, "acme.tools")
    bundle = build_bundle(folder, tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    as_dir = parse_spec("acme.tools")  # a folder of that name wins over the plugin id
    as_file = parse_spec(f"out/{bundle.name}")
    assert isinstance(as_dir, Artifact)
    assert (as_dir.kind, as_dir.origin) == ("dir", str(folder))
    assert isinstance(as_file, Artifact)
    assert (as_file.kind, as_file.origin) == ("file", str(bundle))
    assert str(as_file) == f"out/{bundle.name}"  # messages show what was typed


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("acme.tools@1.2", "is not a valid version"),
        ("acme.tools>=banana", "is not a valid version range"),
        ("./missing-folder", "no such folder or bundle file"),
        ("missing-1.0.0.tar.gz", "no such bundle file"),
        ("Acme Tools!", "is not a plugin id"),
        ("git+ext::sh -c touch% /tmp/pwned", "is not a git URL"),
        ("git+/srv/repos/tools", "is not a git URL"),
        ("git+https://example.test/tools.git@--upload-pack=touch", "is not a branch, tag"),
    ],
)
def test_bad_specs_say_what_is_accepted(spec: str, problem: str) -> None:
    with pytest.raises(SourceError) as info:
        parse_spec(spec)
    assert problem in str(info.value)
    assert str(info.value).startswith(f"{spec}: ")


# ---------------------------------------------------------------- bundle files


def test_install_from_a_bundle_file_through_the_api(home: Path, tmp_path: Path) -> None:
    folder = write_plugin(
        tmp_path / "src", "acme.code", "1.0.0", entry="acme_code:Plugin", code=CODE
    )
    bundle = build_bundle(folder, tmp_path / "dist")
    outcome = Store(home).install([str(bundle)])
    assert [str(c) for c in outcome.changes] == [f"install acme.code 1.0.0 from {bundle}"]
    installed = home / "plugins" / "acme" / "code" / "1.0.0"
    assert (installed / "acme_code" / "__init__.py").read_text() == CODE["acme_code/__init__.py"]
    assert active(home, "acme.code") == "1.0.0"
    got = receipt(home, "acme.code", "1.0.0")
    assert got.source == str(bundle)
    assert got.bundle_sha256 == hashlib.sha256(bundle.read_bytes()).hexdigest()


def test_install_from_a_bundle_file_through_the_cli(home: Path, tmp_path: Path) -> None:
    folder = write_plugin(
        tmp_path / "src", "acme.code", "1.0.0", entry="acme_code:Plugin", code=CODE
    )
    bundle = build_bundle(folder, tmp_path / "dist")
    result = plugbay(home, "install", str(bundle))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"install acme.code 1.0.0 from {bundle}\n"
    assert listed(home)["acme.code"]["version"] == "1.0.0"
    loaded = plugbay(home, "load", "acme.code")
    assert loaded.returncode == 0, loaded.stderr
    assert "started" in loaded.stdout


def test_a_corrupt_bundle_file_is_refused(seeded: Path, tmp_path: Path) -> None:
    bad = tmp_path / "acme-bad-1.0.0.tar.gz"
    bad.write_bytes(b"this is not gzip")
    before = snapshot(seeded)
    assert_one_error_line(plugbay(seeded, "install", str(bad)), str(bad), "not a valid .tar.gz")
    assert snapshot(seeded) == before


def test_a_folder_without_a_manifest_is_refused(seeded: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    before = snapshot(seeded)
    assert_one_error_line(plugbay(seeded, "install", str(empty)), "cannot be built", "no manifest")
    assert snapshot(seeded) == before


# ---------------------------------------------------------------- HTTP


class _Handler(SimpleHTTPRequestHandler):
    """Serves files, records each GET path, and logs nothing (the output stays clean)."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Served:
    """A folder served over HTTP on 127.0.0.1, and the paths it was asked for."""

    root: Path
    url: str
    requests: list[str]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="bundle-server")
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield Served(root, f"http://{host!s}:{port}", server.requests)  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port on 127.0.0.1 that is bound (so nobody else takes it) but never listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def publish(served: Served, folder: Path) -> str:
    """Build the plugin in ``folder`` into the served folder; its URL."""
    return f"{served.url}/{build_bundle(folder, served.root).name}"


def test_install_from_a_url_and_load_it(home: Path, tmp_path: Path, served: Served) -> None:
    folder = write_plugin(
        tmp_path / "src", "acme.code", "1.0.0", entry="acme_code:Plugin", code=CODE
    )
    url = publish(served, folder)
    result = plugbay(home, "install", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"install acme.code 1.0.0 from {url}\n"
    assert receipt(home, "acme.code", "1.0.0").source == url
    assert listed(home)["acme.code"]["version"] == "1.0.0"
    loaded = plugbay(home, "load", "acme.code")
    assert loaded.returncode == 0, loaded.stderr


def test_a_url_install_is_cached_for_offline_use(
    home: Path, tmp_path: Path, served: Served
) -> None:
    url = publish(served, write_plugin(tmp_path / "src", "acme.tools", "1.0.0"))
    Store(home).install([url])
    assert served.requests == [url.removeprefix(served.url)]
    Store(home).remove(["acme.tools"])
    (served.root / url.rsplit("/", 1)[1]).unlink()  # the server no longer has it
    outcome = Store(home, offline=True).install([url])
    assert [c.action for c in outcome.changes] == ["install"]
    assert active(home, "acme.tools") == "1.0.0"
    assert len(served.requests) == 1  # --offline opened no connection


def test_offline_refuses_a_url_it_has_not_cached(seeded: Path, served: Served) -> None:
    before = snapshot(seeded)
    result = plugbay(seeded, "--offline", "install", f"{served.url}/acme-x-1.0.0.tar.gz")
    assert_one_error_line(result, "--offline forbids fetching it")
    assert served.requests == []
    assert snapshot(seeded) == before


def test_http_404_is_one_clear_line(seeded: Path, served: Served) -> None:
    url = f"{served.url}/acme-missing-1.0.0.tar.gz"
    before = snapshot(seeded)
    line = assert_one_error_line(plugbay(seeded, "install", url), url, "404 Not Found")
    assert line == f"error: {url}: the server answered 404 Not Found"
    assert snapshot(seeded) == before


def test_an_unreachable_url_is_one_clear_line(seeded: Path, dead_port: int) -> None:
    url = f"http://127.0.0.1:{dead_port}/acme-tools-1.0.0.tar.gz"
    before = snapshot(seeded)
    line = assert_one_error_line(plugbay(seeded, "install", url), url)
    assert (
        line
        == f"error: {url}: cannot be downloaded: cannot connect to 127.0.0.1: Connection refused"
    )
    assert snapshot(seeded) == before


def test_a_url_that_serves_no_bundle_is_refused(seeded: Path, served: Served) -> None:
    (served.root / "page.tar.gz").write_text("<html>not found, but 200</html>")
    url = f"{served.url}/page.tar.gz"
    before = snapshot(seeded)
    assert_one_error_line(plugbay(seeded, "install", url), url, "not a valid .tar.gz")
    assert snapshot(seeded) == before
    assert not (seeded / "cache" / "downloads").exists()  # nothing unchecked is cached


def test_a_dry_run_from_a_url_writes_nothing(tmp_path: Path, served: Served) -> None:
    url = publish(served, write_plugin(tmp_path / "src", "acme.tools", "1.0.0"))
    home = tmp_path / "new-home"
    result = plugbay(home, "install", "--dry-run", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"would install acme.tools 1.0.0 from {url}\n"
    assert not home.exists()  # not even the home, nor the download cache


# ---------------------------------------------------------------- git


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Plugbay Tests",
    "GIT_AUTHOR_EMAIL": "tests@plugbay.test",
    "GIT_COMMITTER_NAME": "Plugbay Tests",
    "GIT_COMMITTER_EMAIL": "tests@plugbay.test",
}


@pytest.fixture
def git() -> str:
    """The real git; these tests fail (never skip) without it."""
    found = shutil.which("git")
    if found is None:
        pytest.fail("git is not installed: the git+URL install tests need the real git command")
    return found


def run_git(git: str, repo: Path, *args: str) -> str:
    result = subprocess.run(
        [git, "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@dataclass
class Repo:
    path: Path
    url: str  # file:// URL
    first: str  # the commit of 1.0.0


@pytest.fixture
def repo(git: str, tmp_path: Path) -> Repo:
    """acme.code in a git repository: tag v1.0.0, then 2.0.0 on main, 3.0.0 on branch dev."""
    path = write_plugin(
        tmp_path / "repos", "acme.code", "1.0.0", entry="acme_code:Plugin", code=CODE
    )
    run_git(git, path, "init", "--quiet")
    run_git(git, path, "add", "-A")
    run_git(git, path, "commit", "--quiet", "-m", "1.0.0")
    run_git(git, path, "tag", "v1.0.0")
    first = run_git(git, path, "rev-parse", "HEAD")
    write_plugin(tmp_path / "repos", "acme.code", "2.0.0", entry="acme_code:Plugin", code=CODE)
    run_git(git, path, "commit", "--quiet", "-am", "2.0.0")
    run_git(git, path, "checkout", "--quiet", "-b", "dev")
    write_plugin(tmp_path / "repos", "acme.code", "3.0.0", entry="acme_code:Plugin", code=CODE)
    run_git(git, path, "commit", "--quiet", "-am", "3.0.0")
    run_git(git, path, "checkout", "--quiet", "main")
    return Repo(path, path.as_uri(), first)


@pytest.mark.parametrize(
    ("ref", "version"),
    [(None, "2.0.0"), ("v1.0.0", "1.0.0"), ("dev", "3.0.0"), ("main", "2.0.0"), ("first", "1.0.0")],
)
def test_install_from_git_at_a_ref(home: Path, repo: Repo, ref: str | None, version: str) -> None:
    at = {"first": repo.first}.get(ref or "", ref)
    spec = f"git+{repo.url}" + (f"@{at}" if at else "")
    outcome = Store(home).install([spec])
    assert [(c.action, c.id, c.version) for c in outcome.changes] == [
        ("install", "acme.code", version)
    ]
    assert active(home, "acme.code") == version
    assert receipt(home, "acme.code", version).source == spec
    installed = home / "plugins" / "acme" / "code" / version
    assert not (installed / ".git").exists()


def test_install_from_git_through_the_cli_then_load(home: Path, repo: Repo) -> None:
    result = plugbay(home, "install", f"git+{repo.url}@v1.0.0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"install acme.code 1.0.0 from git+{repo.url}@v1.0.0\n"
    result = plugbay(home, "install", f"git+{repo.url}")
    assert result.stdout == (
        f"install acme.code 2.0.0 from git+{repo.url} (active instead of 1.0.0)\n"
    )
    plugin = listed(home)["acme.code"]
    assert (plugin["version"], plugin["other_versions"]) == ("2.0.0", ["1.0.0"])
    loaded = plugbay(home, "load", "acme.code")
    assert loaded.returncode == 0, loaded.stderr
    assert "2.0.0" in loaded.stdout


def test_a_git_repository_that_does_not_exist(seeded: Path, tmp_path: Path, git: str) -> None:
    url = (tmp_path / "no-such-repo").as_uri()
    before = snapshot(seeded)
    line = assert_one_error_line(plugbay(seeded, "install", f"git+{url}"), f"git+{url}")
    assert "git clone failed" in line
    assert "does not appear to be a git repository" in line
    assert snapshot(seeded) == before


def test_a_git_ref_that_does_not_exist(seeded: Path, repo: Repo) -> None:
    spec = f"git+{repo.url}@v9.9.9"
    before = snapshot(seeded)
    line = assert_one_error_line(plugbay(seeded, "install", spec))
    assert line == f"error: {spec}: has no branch, tag or commit named 'v9.9.9'"
    assert snapshot(seeded) == before


def test_a_git_repository_without_a_plugin(seeded: Path, tmp_path: Path, git: str) -> None:
    path = tmp_path / "not-a-plugin"
    path.mkdir()
    (path / "README").write_text("hello\n")
    run_git(git, path, "init", "--quiet")
    run_git(git, path, "add", "-A")
    run_git(git, path, "commit", "--quiet", "-m", "readme")
    before = snapshot(seeded)
    assert_one_error_line(plugbay(seeded, "install", f"git+{path.as_uri()}"), "no manifest")
    assert snapshot(seeded) == before


def test_an_invalid_manifest_in_git_is_named_by_its_file(
    seeded: Path, tmp_path: Path, git: str
) -> None:
    path = write_plugin(tmp_path / "repos", "acme.broken", "1.0.0", extra='colour = "blue"')
    run_git(git, path, "init", "--quiet")
    run_git(git, path, "add", "-A")
    run_git(git, path, "commit", "--quiet", "-m", "broken")
    before = snapshot(seeded)
    line = assert_one_error_line(plugbay(seeded, "install", f"git+{path.as_uri()}"))
    assert "has an invalid manifest: plugin.toml" in line
    assert "colour" in line
    assert str(tmp_path) not in line.removeprefix(f"error: git+{path.as_uri()}")  # no clone path
    assert snapshot(seeded) == before


def test_offline_forbids_a_remote_clone(seeded: Path) -> None:
    before = snapshot(seeded)
    result = plugbay(seeded, "--offline", "install", "git+https://example.test/acme/tools.git")
    assert_one_error_line(result, "--offline forbids cloning")
    assert snapshot(seeded) == before


# ---------------------------------------------------------------- requirements files


def test_yaml_requirements(tmp_path: Path, repo: Repo, served: Served) -> None:
    bundle = build_bundle(write_plugin(tmp_path / "src", "acme.common", "1.2.0"), tmp_path / "b")
    url = publish(served, write_plugin(tmp_path / "src2", "acme.web", "1.0.0"))
    req = tmp_path / "reqs" / "plugins.yml"
    req.parent.mkdir()
    req.write_text(
        f"""
        plugins:
          - name: acme.nutanix
            version: ">=1.0.0,<2.0.0"
          - name: acme.exact
            version: 1.2.0
          - name: acme.star
            version: "1.2.*"
          - source: ../b/{bundle.name}
          - source: {url}
          - source: {repo.url}
            type: git
            version: v1.0.0
          - acme.bare@2.0.0
        """.replace("\n        ", "\n")
    )
    assert read_requirements(req) == [
        "acme.nutanix>=1.0.0,<2.0.0",
        "acme.exact@1.2.0",
        "acme.star 1.2.*",
        str(req.parent / ".." / "b" / bundle.name),
        url,
        f"git+{repo.url}@v1.0.0",
        "acme.bare@2.0.0",
    ]
    for spec in read_requirements(req):
        parse_spec(spec)  # every one is a valid install spec


def test_toml_requirements_with_collections_and_galaxy_names(tmp_path: Path) -> None:
    req = tmp_path / "requirements.toml"
    req.write_text(
        """
        [[collections]]
        name = "acme.tools"
        version = "^1.2"

        [[collections]]
        name = "git+https://example.test/acme/more.git"
        version = "v2"

        [[collections]]
        name = "./bundles/acme-local-1.0.0.tar.gz"

        [[collections]]
        name = "acme.pinned"
        source = "bundles/acme-pinned-1.0.0.tar.gz"
        version = "1.0.0"
        """.replace("\n        ", "\n")
    )
    assert read_requirements(req) == [
        "acme.tools^1.2",
        "git+https://example.test/acme/more.git@v2",
        str(tmp_path / "bundles" / "acme-local-1.0.0.tar.gz"),
        str(tmp_path / "bundles" / "acme-pinned-1.0.0.tar.gz"),
        "acme.pinned@1.0.0",
    ]


def test_a_local_git_source_is_relative_to_the_requirements_file(tmp_path: Path) -> None:
    req = tmp_path / "conf" / "reqs.yaml"
    req.parent.mkdir()
    req.write_text("plugins:\n  - source: ../repos/tools\n    type: git\n    version: main\n")
    assert read_requirements(req) == [f"git+{(tmp_path / 'repos' / 'tools').as_uri()}@main"]


@pytest.mark.parametrize(
    ("text", "name", "problem"),
    [
        (
            "plugins:\n  - name: acme.tools\n    verison: 1.0.0\n",
            "reqs.yml",
            "entry 1: unknown key 'verison' in this entry; did you mean \"version\"?",
        ),
        ("plugin:\n  - name: acme.tools\n", "reqs.yml", 'did you mean "plugins"?'),
        (
            "[[plugins]]\nname = 'acme.tools'\nsorce = 'x.tar.gz'\n",
            "reqs.toml",
            "entry 1: unknown key 'sorce' in this entry; did you mean \"source\"?",
        ),
        ("plugins:\n  - source: x\n    type: zip\n", "reqs.yml", "type is one of file, dir"),
        ("plugins: acme.tools\n", "reqs.yml", 'expected a list under "plugins:"'),
        ("plugins:\n  - version: 1.0.0\n", "reqs.yml", "needs a name"),
        ("plugins:\n  - source: x.tar.gz\n    version: 1.0.0\n", "reqs.yml", "no name"),
        ("plugins: [unclosed\n", "reqs.yml", "is not valid YAML"),
        ("[[plugins]\n", "reqs.toml", "is not valid TOML"),
    ],
)
def test_requirement_file_mistakes(tmp_path: Path, text: str, name: str, problem: str) -> None:
    req = tmp_path / name
    req.write_text(text)
    with pytest.raises(SourceError) as info:
        read_requirements(req)
    assert str(info.value).startswith(str(req))
    assert problem in str(info.value)
    assert "\n" not in str(info.value)


def test_install_from_a_requirements_file(home: Path, tmp_path: Path, repo: Repo) -> None:
    common = write_plugin(tmp_path / "src", "acme.common", "1.2.0")
    write_plugin(tmp_path / "src", "acme.app", "1.0.0", dependencies={"acme.common": "^1.0"})
    req = tmp_path / "plugins.yml"
    req.write_text(
        "plugins:\n"
        "  - source: src/acme.app\n"
        f"  - name: acme.common\n    source: {common}\n    version: '>=1.2.0'\n"
        f"  - source: {repo.url}\n    type: git\n    version: v1.0.0\n"
    )
    result = plugbay(home, "install", "-r", str(req))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"install acme.app 1.0.0 from {tmp_path / 'src' / 'acme.app'}",
        f"install acme.code 1.0.0 from git+{repo.url}@v1.0.0",
        f"install acme.common 1.2.0 from {common}",
    ]
    versions = {pid: p["version"] for pid, p in listed(home).items()}
    assert versions == {"acme.app": "1.0.0", "acme.code": "1.0.0", "acme.common": "1.2.0"}


def test_a_requirements_name_must_match_its_bundle(seeded: Path, tmp_path: Path) -> None:
    common = write_plugin(tmp_path / "src", "acme.common", "1.2.0")
    req = tmp_path / "plugins.toml"
    req.write_text(f'[[plugins]]\nname = "acme.common"\nsource = "{common}"\nversion = "^2.0"\n')
    before = snapshot(seeded)
    line = assert_one_error_line(plugbay(seeded, "install", "-r", str(req)))
    assert "you asked for acme.common ^2.0" in line
    assert "acme.common 1.2.0" in line
    assert snapshot(seeded) == before


def test_a_requirements_typo_through_the_cli(seeded: Path, tmp_path: Path) -> None:
    req = tmp_path / "plugins.yml"
    req.write_text("plugins:\n  - nmae: acme.tools\n")
    before = snapshot(seeded)
    line = assert_one_error_line(plugbay(seeded, "install", "-r", str(req)))
    assert line == (
        f"error: {req}: entry 1: unknown key 'nmae' in this entry; did you mean \"name\"? "
        "(allowed: name, version, source, type)"
    )
    assert snapshot(seeded) == before


def test_a_missing_requirements_file(seeded: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    before = snapshot(seeded)
    assert_one_error_line(plugbay(seeded, "install", "-r", str(missing)), "cannot be read")
    assert snapshot(seeded) == before


def test_tracebacks_only_with_vvv(seeded: Path, served: Served) -> None:
    url = f"{served.url}/acme-missing-1.0.0.tar.gz"
    result = plugbay(seeded, "install", url, "-vvv")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert f"error: {url}: the server answered 404 Not Found" in result.stderr


def test_a_download_does_not_import_httpxs_command_line_client(
    served: Served, home: Path, tmp_path: Path
) -> None:
    """httpx imports its own CLI (rich, pygments) when they are installed; a download
    never needs it, and importing it on purpose afterwards still works."""
    url = publish(served, write_plugin(tmp_path / "src", "acme.solo", "1.0.0"))
    script = f"""
import sys
from pathlib import Path
from plugbay.store import Store
Store(Path({str(home)!r})).install([{url!r}])
assert "httpx" in sys.modules, "the download did not go through httpx"
print(sorted(m for m in ("httpx._main", "rich", "pygments") if m in sys.modules))
import httpx._main
print(callable(httpx._main.main))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "True"]
