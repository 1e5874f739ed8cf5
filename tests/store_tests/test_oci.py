"""OCI registries: ``plugbay push``, ``oci://`` installs and registries as index sources.

Every test talks to a real registry (Debian's docker-registry) started on 127.0.0.1 by
tests/oci_registry.py; each test pushes under a repository prefix of its own.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import socket
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from test_signing import make_key, policy, trust

from conftest import home_snapshot, one_error, run_plugbay, write_plugin
from oci_registry import Registry, Tokens, serve_registry, serve_tokens
from plugbay.config import config_from_mapping
from plugbay.errors import BundleError, ConfigError, ResolutionError, SourceError, TrustError
from plugbay.store import Limits, Store, build_bundle
from plugbay.store.index import index_sources, open_source
from plugbay.store.oci import (
    ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
    LAYER_MEDIA_TYPE,
    OciSource,
    parse_reference,
    push_bundle,
    tag_of,
    version_of,
)
from plugbay.store.signing import SigningKey

USER, PASSWORD = "alice", "s3cret-pass"

# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with serve_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with serve_registry(tmp_path_factory.mktemp("auth-registry"), users={USER: PASSWORD}) as r:
        yield r


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Tokens]]:
    folder = tmp_path_factory.mktemp("token-registry")
    with (
        serve_tokens(folder / "tokens", {USER: PASSWORD}) as tokens,
        serve_registry(folder / "registry", tokens=tokens) as running,
    ):
        yield running, tokens


_prefixes = itertools.count(1)


@pytest.fixture
def prefix() -> str:
    """A repository prefix no other test pushes under."""
    return f"t{next(_prefixes)}/plugins"


@pytest.fixture(autouse=True)
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No credentials but what a test gives: an empty docker config folder, no env vars."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    monkeypatch.delenv("PLUGBAY_OCI_USERNAME", raising=False)
    monkeypatch.delenv("PLUGBAY_OCI_PASSWORD", raising=False)
    return folder


def bundle(
    tmp_path: Path,
    plugin_id: str,
    version: str = "1.0.0",
    deps: Mapping[str, str] | None = None,
    *,
    key: SigningKey | None = None,
    text: str = "X = 1\n",
) -> Path:
    """Build ``plugin_id`` ``version`` into a folder of its own; the bundle's path."""
    tag = hashlib.sha256(f"{plugin_id}{version}{text}{key.id if key else ''}".encode()).hexdigest()
    src = write_plugin(
        tmp_path / "src" / tag[:12], plugin_id, version, dependencies=deps, code={"p.py": text}
    )
    return build_bundle(src, tmp_path / "bundles" / tag[:12], sign=key.sign if key else None)


def push(tmp_path: Path, url: str, plugin_id: str, version: str = "1.0.0", **kw: Any) -> Path:
    """Build and push one bundle; the bundle's path."""
    path = bundle(tmp_path, plugin_id, version, **kw)
    push_bundle(path, url, home=tmp_path / "pusher")
    return path


def publish_set(tmp_path: Path, url: str) -> None:
    """acme.common 1.0.0; acme.hello 1.0.0 and 1.2.0, each needing acme.common >=1."""
    push(tmp_path, url, "acme.common", "1.0.0")
    push(tmp_path, url, "acme.hello", "1.0.0", deps={"acme.common": ">=1.0.0"})
    push(tmp_path, url, "acme.hello", "1.2.0", deps={"acme.common": ">=1.0.0"})


def get_json(registry: Registry, path: str, accept: str | None = None) -> Any:
    request = urllib.request.Request(f"http://{registry.host}/v2/{path}")
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def installed(home: Path) -> dict[str, str]:
    return {pid: vs[0].version for pid, vs in Store(home).installed().items() if vs[0].active}


def state(home: Path) -> dict[str, str | None]:
    return {k: v for k, v in home_snapshot(home).items() if not k.startswith("cache")}


plugbay = run_plugbay


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- push and install


def test_push_makes_a_plugbay_artifact_tagged_with_the_version(
    registry: Registry, prefix: str, tmp_path: Path
) -> None:
    url = registry.url(prefix)
    path = bundle(tmp_path, "acme.hello", "1.2.0", deps={"acme.common": ">=1.0.0"})
    pushed = push_bundle(path, url, home=tmp_path / "home")
    assert pushed.reference == f"{url}/acme.hello:1.2.0"
    assert (pushed.id, pushed.version, pushed.unchanged) == ("acme.hello", "1.2.0", False)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert pushed.sha256 == sha256
    push(tmp_path, url, "acme.hello", "1.0.0")

    tags = get_json(registry, f"{prefix}/acme.hello/tags/list")["tags"]
    assert sorted(tags) == ["1.0.0", "1.2.0"]
    manifest = get_json(
        registry,
        f"{prefix}/acme.hello/manifests/1.2.0",
        "application/vnd.oci.image.manifest.v1+json",
    )
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    [layer] = manifest["layers"]
    assert layer["mediaType"] == LAYER_MEDIA_TYPE
    assert layer["digest"] == f"sha256:{sha256}"
    assert layer["size"] == path.stat().st_size
    assert layer["annotations"]["org.opencontainers.image.title"] == "acme-hello-1.2.0.tar.gz"
    notes = manifest["annotations"]
    assert notes["dev.plugbay.id"] == "acme.hello"
    assert notes["dev.plugbay.version"] == notes["org.opencontainers.image.version"] == "1.2.0"
    assert notes["dev.plugbay.sha256"] == sha256
    assert json.loads(notes["dev.plugbay.dependencies"]) == {"acme.common": ">=1.0.0"}
    assert "dev.plugbay.signer" not in notes
    config = get_json(registry, f"{prefix}/acme.hello/blobs/{manifest['config']['digest']}")
    assert (config["format"], config["id"], config["version"]) == (1, "acme.hello", "1.2.0")
    assert config["dependencies"] == {"acme.common": ">=1.0.0"}
    assert config["manifest"]["plugin"]["name"] == "hello"

    # The same bundle again: nothing to do. Another bundle of the same version: refused.
    assert push_bundle(path, url, home=tmp_path / "home").unchanged
    other = bundle(tmp_path, "acme.hello", "1.2.0", text="X = 2\n")
    with pytest.raises(SourceError, match="already holds another bundle of the same version"):
        push_bundle(other, url, home=tmp_path / "home")
    replaced = push_bundle(other, url, home=tmp_path / "home", force=True)
    assert replaced.sha256 == hashlib.sha256(other.read_bytes()).hexdigest()


def test_install_by_exact_tag_brings_its_dependency_from_the_same_registry(
    registry: Registry, prefix: str, tmp_path: Path, home: Path
) -> None:
    url = registry.url(prefix)
    publish_set(tmp_path, url)
    outcome = Store(home).install([f"{url}/acme.hello:1.0.0"])
    assert [str(c) for c in outcome.changes] == [
        f"install acme.common 1.0.0 from {url}/acme.common:1.0.0",
        f"install acme.hello 1.0.0 from {url}/acme.hello:1.0.0",
    ]
    assert installed(home) == {"acme.common": "1.0.0", "acme.hello": "1.0.0"}
    receipt = json.loads((home / "receipts" / "acme.hello-1.0.0.json").read_bytes())
    assert receipt["source"] == f"{url}/acme.hello:1.0.0"
    assert all(report.ok for report in Store(home).verify())


def test_a_lock_of_oci_installs_syncs_another_home_from_the_registry(
    registry: Registry, prefix: str, tmp_path: Path, home: Path
) -> None:
    url = registry.url(prefix)
    publish_set(tmp_path, url)
    ok = plugbay(home, "install", f"{url}/acme.hello:1.2.0")
    assert ok.returncode == 0, ok.stderr
    lock = tmp_path / "plugbay.lock"
    assert plugbay(home, "lock", "-o", str(lock)).returncode == 0
    assert f'source = "{url}/acme.hello:1.2.0"' in lock.read_text()
    other = tmp_path / "other-home"
    synced = plugbay(other, "sync", str(lock))
    assert synced.returncode == 0, synced.stderr
    assert installed(other) == {"acme.common": "1.0.0", "acme.hello": "1.2.0"}
    assert all(report.ok for report in Store(other).verify())


def test_install_by_name_from_a_registry_index_resolves_dependencies(
    registry: Registry, prefix: str, tmp_path: Path, home: Path
) -> None:
    url = registry.url(prefix)
    publish_set(tmp_path, url)
    result = plugbay(home, "install", "acme.hello", "--index", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"install acme.common 1.0.0 from {url}/acme.common:1.0.0",
        f"install acme.hello 1.2.0 from {url}/acme.hello:1.2.0",
    ]
    assert installed(home) == {"acme.common": "1.0.0", "acme.hello": "1.2.0"}
    assert plugbay(home, "verify").returncode == 0

    # The registry as a configured index, with a range.
    other = tmp_path / "other-home"
    other.mkdir()
    (other / "config.toml").write_text(f'[[index]]\nname = "registry"\nurl = "{url}"\n')
    sources = index_sources(other, offline=False)
    assert [type(s).__name__ for s in sources] == ["OciSource"]
    outcome = Store(other, sources=sources).install(["acme.hello>=1.0,<1.2"])
    assert [c.version for c in outcome.changes] == ["1.0.0", "1.0.0"]
    assert installed(other) == {"acme.common": "1.0.0", "acme.hello": "1.0.0"}


def test_the_highest_release_a_range_a_version_and_a_digest(
    registry: Registry, prefix: str, tmp_path: Path, home: Path
) -> None:
    url = registry.url(prefix)
    publish_set(tmp_path, url)
    push(tmp_path, url, "acme.hello", "2.0.0-rc.1", deps={"acme.common": ">=1.0.0"})
    push(tmp_path, url, "acme.hello", "1.3.0+build.7", deps={"acme.common": ">=1.0.0"})
    assert "1.3.0_build.7" in get_json(registry, f"{prefix}/acme.hello/tags/list")["tags"]
    store = Store(home)

    def chosen(spec: str) -> str | None:
        changes = store.install([spec], dry_run=True).changes
        return next(c.version for c in changes if c.id == "acme.hello")

    assert chosen(f"{url}/acme.hello") == "1.3.0+build.7"  # not the pre-release
    assert chosen(f"{url}/acme.hello<1.2") == "1.0.0"
    assert chosen(f"{url}/acme.hello^1.0.0") == "1.3.0+build.7"
    assert chosen(f"{url}/acme.hello@2.0.0-rc.1") == "2.0.0-rc.1"
    assert chosen(f"{url}/acme.hello:1.3.0+build.7") == "1.3.0+build.7"
    digest = get_json(
        registry,
        f"{prefix}/acme.hello/manifests/1.0.0",
        "application/vnd.oci.image.manifest.v1+json",
    )
    manifest_digest = (
        "sha256:"
        + hashlib.sha256(
            urllib.request.urlopen(
                urllib.request.Request(
                    f"http://{registry.host}/v2/{prefix}/acme.hello/manifests/1.0.0",
                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                ),
                timeout=10,
            ).read()
        ).hexdigest()
    )
    assert digest["annotations"]["dev.plugbay.version"] == "1.0.0"
    assert chosen(f"{url}/acme.hello@{manifest_digest}") == "1.0.0"
    with pytest.raises(SourceError, match=r"has no version in >=3 \(it has 2.0.0-rc.1, 1.3.0"):
        store.install([f"{url}/acme.hello>=3"], dry_run=True)


# ---------------------------------------------------------------- signatures


def test_a_signed_bundle_keeps_its_signature_through_the_registry(
    registry: Registry, prefix: str, tmp_path: Path, home: Path
) -> None:
    url = registry.url(prefix)
    key, public = make_key(tmp_path, "acme")
    _, stranger_public = make_key(tmp_path / "other", "stranger")
    pushed = push_bundle(bundle(tmp_path, "acme.signed", key=key), url, home=home)
    assert pushed.signer == key.id
    manifest = get_json(
        registry,
        f"{prefix}/acme.signed/manifests/1.0.0",
        "application/vnd.oci.image.manifest.v1+json",
    )
    assert manifest["annotations"]["dev.plugbay.signer"] == key.id

    policy(home, "require-signatures = true")
    trust(home, stranger_public, "acme")
    with pytest.raises(TrustError, match=rf"signed by key {key.id}, which is not trusted"):
        Store(home).install([f"{url}/acme.signed:1.0.0"])
    assert installed(home) == {}
    trust(home, public, "acme")
    Store(home).install([f"{url}/acme.signed:1.0.0"])
    receipt = json.loads((home / "receipts" / "acme.signed-1.0.0.json").read_bytes())
    assert receipt["signer"] == key.id
    [report] = Store(home).verify()
    assert report.ok

    # Unsigned, where signatures are required: refused through an index source too.
    push(tmp_path, url, "acme.plain")
    source = open_source(url, cache=home / "cache", limits=Limits(), offline=False)
    with pytest.raises(TrustError, match=r"acme\.plain 1\.0\.0 is not signed"):
        Store(home, sources=[source]).install(["acme.plain"])


# ---------------------------------------------------------------- refusals


def push_foreign(registry: Registry, repository: str, tmp_path: Path, config_type: str) -> None:
    """Push an artifact of another type (a Helm chart, a container image) with oras itself."""
    import oras.provider

    folder = tmp_path / "foreign"
    folder.mkdir(exist_ok=True)
    (folder / "chart.tgz").write_bytes(b"not a plugbay bundle")
    (folder / "config.json").write_text('{"name": "chart"}')
    oras.provider.Registry(hostname=registry.host, insecure=True).push(
        target=f"{registry.host}/{repository}:1.0.0",
        files=[f"{folder / 'chart.tgz'}:application/vnd.cncf.helm.chart.content.v1.tar+gzip"],
        manifest_config=f"{folder / 'config.json'}:{config_type}",
        disable_path_validation=True,
        quiet=True,
    )


@pytest.mark.parametrize(
    ("config_type", "kind"),
    [
        ("application/vnd.cncf.helm.config.v1+json", "a Helm chart"),
        ("application/vnd.oci.image.config.v1+json", "a container image"),
        (
            "application/vnd.acme.thing.v1+json",
            "an artifact of type application/vnd.acme.thing.v1+json",
        ),
    ],
)
def test_a_manifest_of_another_artifact_type_is_refused(
    registry: Registry, prefix: str, tmp_path: Path, home: Path, *, config_type: str, kind: str
) -> None:
    url = registry.url(prefix)
    push_foreign(registry, f"{prefix}/acme.chart", tmp_path, config_type)
    with pytest.raises(SourceError) as exact:
        Store(home).install([f"{url}/acme.chart:1.0.0"])
    assert str(exact.value) == (
        f"{url}/acme.chart:1.0.0: is {kind}, not a plugbay bundle (artifact type "
        f"{ARTIFACT_TYPE}); it is refused: plugins are pushed with plugbay push"
    )
    source = OciSource(url, cache=home / "cache", limits=Limits())
    with pytest.raises(SourceError, match=rf"{url}/acme.chart: holds no usable plugbay bundle"):
        Store(home, sources=[source]).install(["acme.chart"])
    # push will not overwrite it either, unless told to.
    with pytest.raises(SourceError, match=rf"already holds {re.escape(kind)}, not a plugbay"):
        push(tmp_path, url, "acme.chart")
    assert installed(home) == {}


def test_a_bundle_altered_in_the_registry_is_refused_and_nothing_changes(
    registry: Registry, prefix: str, tmp_path: Path, home: Path
) -> None:
    url = registry.url(prefix)
    path = push(tmp_path, url, "acme.tampered")
    Store(home).install([bundle(tmp_path, "acme.other").as_posix()])
    before = state(home)
    blob = registry.blob_file("sha256:" + hashlib.sha256(path.read_bytes()).hexdigest())
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    blob.write_bytes(bytes(data))
    with pytest.raises(
        BundleError, match="the registry sent a bundle that differs from its digest"
    ):
        Store(home).install([f"{url}/acme.tampered:1.0.0"])
    assert state(home) == before
    assert not list((home / "cache" / "oci" / "blobs" / "sha256").glob(blob.parent.name))

    # A manifest altered in the registry's storage: its bytes no longer match its digest.
    push(tmp_path, url, "acme.tampered", "2.0.0")
    manifest = urllib.request.urlopen(
        urllib.request.Request(
            f"http://{registry.host}/v2/{prefix}/acme.tampered/manifests/2.0.0",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        ),
        timeout=10,
    )
    stored = registry.blob_file(manifest.headers["Docker-Content-Digest"])
    manifest.close()
    stored.write_bytes(stored.read_bytes().replace(b'"2.0.0"', b'"2.0.1"', 1))
    with pytest.raises(BundleError, match="the registry sent a manifest whose digest is sha256:"):
        Store(home).install([f"{url}/acme.tampered:2.0.0"])
    assert state(home) == before


def test_a_missing_tag_or_repository_names_what_there_is(
    registry: Registry, prefix: str, tmp_path: Path, home: Path
) -> None:
    url = registry.url(prefix)
    publish_set(tmp_path, url)
    store = Store(home)
    with pytest.raises(SourceError) as tag:
        store.install([f"{url}/acme.hello:9.9.9"])
    assert str(tag.value) == (
        f"{url}/acme.hello:9.9.9: the registry has no tag 9.9.9 in {prefix}/acme.hello "
        "(its versions: 1.2.0, 1.0.0)"
    )
    with pytest.raises(SourceError) as repo:
        store.install([f"{url}/acme.helo:1.0.0"])
    assert str(repo.value) == (
        f"{url}/acme.helo:1.0.0: no such repository in the registry (nothing was pushed for "
        f"acme.helo under {url}); closest names: acme.hello, acme.common"
    )
    source = OciSource(url, cache=home / "cache", limits=Limits())
    with pytest.raises(ResolutionError, match=rf"acme.helo is in no index \({url}\); closest"):
        Store(home, sources=[source]).install(["acme.helo"])
    assert installed(home) == {}


def test_an_unreachable_registry_is_one_clear_error(tmp_path: Path, home: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    url = f"oci://{host}/plugins"
    result = plugbay(home, "install", f"{url}/acme.hello:1.0.0")
    assert one_error(result) == (
        f"{url}/acme.hello:1.0.0: cannot be reached: cannot connect to {host}: "
        "Connection refused (3 attempts)"
    )
    result = plugbay(home, "push", str(bundle(tmp_path, "acme.hello")), url)
    assert "cannot be pushed: cannot connect to 127.0.0.1" in one_error(result)


# ---------------------------------------------------------------- credentials


def test_a_registry_asking_for_credentials_says_how_to_log_in(
    auth_registry: Registry, prefix: str, tmp_path: Path, home: Path, no_credentials: Path
) -> None:
    url = auth_registry.url(prefix)
    host = auth_registry.host
    path = bundle(tmp_path, "acme.secret")
    message = one_error(plugbay(home, "push", str(path), url))
    assert message == (
        f"{url}/acme.secret:1.0.0: the registry {host} asks for credentials (401 Unauthorized): "
        f"log in with `docker login {host}` (or `oras login {host}`; plugbay reads the docker "
        "config, ~/.docker/config.json or $DOCKER_CONFIG), or set PLUGBAY_OCI_USERNAME and "
        "PLUGBAY_OCI_PASSWORD"
    )
    wrong = {"PLUGBAY_OCI_USERNAME": USER, "PLUGBAY_OCI_PASSWORD": "wrong"}
    message = one_error(plugbay(home, "push", str(path), url, env=wrong))
    assert message.startswith(
        f"{url}/acme.secret:1.0.0: the registry {host} refused the credentials from "
        "PLUGBAY_OCI_USERNAME and PLUGBAY_OCI_PASSWORD (401 Unauthorized): check them"
    )
    assert "wrong" not in message

    right = {"PLUGBAY_OCI_USERNAME": USER, "PLUGBAY_OCI_PASSWORD": PASSWORD}
    result = plugbay(home, "push", str(path), url, env=right)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"pushed acme.secret 1.0.0 to {url}/acme.secret:1.0.0 (")
    message = one_error(plugbay(home, "install", f"{url}/acme.secret:1.0.0"))
    assert f"the registry {host} asks for credentials (401 Unauthorized)" in message
    assert installed(home) == {}

    # docker login writes this; plugbay reads it (here through $DOCKER_CONFIG).
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (no_credentials / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    result = plugbay(home, "install", f"{url}/acme.secret:1.0.0")
    assert result.returncode == 0, result.stderr
    assert installed(home) == {"acme.secret": "1.0.0"}


def test_a_token_registry_gets_a_token_per_repository_anonymously_or_as_the_user(
    token_registry: tuple[Registry, Tokens],
    prefix: str,
    tmp_path: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, tokens = token_registry
    url = registry.url(prefix)
    path = bundle(tmp_path, "acme.common")
    # Anonymous clients may pull but not push.
    with pytest.raises(SourceError) as anonymous:
        push_bundle(path, url, home=home)
    assert str(anonymous.value) == (
        f"{url}/acme.common:1.0.0: the registry {registry.host} does not let anonymous users "
        f"push (401 Unauthorized): log in with `docker login {registry.host}` (or `oras login "
        f"{registry.host}`; plugbay reads the docker config, ~/.docker/config.json or "
        "$DOCKER_CONFIG), or set PLUGBAY_OCI_USERNAME and PLUGBAY_OCI_PASSWORD"
    )
    monkeypatch.setenv("PLUGBAY_OCI_USERNAME", USER)
    monkeypatch.setenv("PLUGBAY_OCI_PASSWORD", "wrong")
    with pytest.raises(SourceError, match=r"refused the credentials from PLUGBAY_OCI_USERNAME"):
        push_bundle(path, url, home=home)
    monkeypatch.setenv("PLUGBAY_OCI_PASSWORD", PASSWORD)
    push_bundle(path, url, home=home)
    push(tmp_path, url, "acme.hello", "1.0.0", deps={"acme.common": ">=1.0.0"})
    pushes = {scope for user, scope in tokens.scopes if user == USER and "push" in scope}
    assert {s.rpartition(":")[0] for s in pushes} == {
        f"repository:{prefix}/acme.common",
        f"repository:{prefix}/acme.hello",
    }

    push(tmp_path, url, "acme.private")
    tokens.private.add(f"{prefix}/acme.private")

    monkeypatch.delenv("PLUGBAY_OCI_USERNAME")
    monkeypatch.delenv("PLUGBAY_OCI_PASSWORD")
    # Installed, and private in the registry: looking it up there finds nothing, no error.
    Store(home).install([bundle(tmp_path, "acme.private").as_posix()])
    tokens.scopes.clear()
    with OciSource(url, cache=home / "cache", limits=Limits()) as source:
        Store(home, sources=[source]).install(["acme.hello"])
    assert installed(home) == {
        "acme.common": "1.0.0",
        "acme.hello": "1.0.0",
        "acme.private": "1.0.0",
    }
    # One token per repository looked at, each asked for anonymously.
    asked = {scope for user, scope in tokens.scopes if user is None}
    assert {
        f"repository:{prefix}/acme.hello:pull",
        f"repository:{prefix}/acme.common:pull",
    } <= asked
    assert all(user is None for user, _ in tokens.scopes)
    assert f"repository:{prefix}/acme.private:pull" in asked  # looked up, and denied
    with pytest.raises(SourceError) as private:
        Store(home).install([f"{url}/acme.private:1.0.0"], force=True)
    assert str(private.value).startswith(
        f"{url}/acme.private:1.0.0: the registry {registry.host} denied anonymous access "
        "(401 Unauthorized): the repository does not exist there, or it is private: log in with"
    )


# ---------------------------------------------------------------- offline and the cache


def test_offline_installs_what_was_seen_online_and_refuses_the_rest(
    registry: Registry, prefix: str, tmp_path: Path, home: Path
) -> None:
    url = registry.url(prefix)
    publish_set(tmp_path, url)
    source = OciSource(url, cache=home / "cache", limits=Limits())
    Store(home, sources=[source]).install(["acme.hello"], dry_run=True)  # lists, no bundles
    Store(home).install([f"{url}/acme.hello:1.2.0"])
    Store(home).remove(["acme.hello", "acme.common"])
    assert installed(home) == {}
    offline = OciSource(url, cache=home / "cache", limits=Limits(), offline=True)
    Store(home, offline=True, sources=[offline]).install(["acme.hello"])
    assert installed(home) == {"acme.common": "1.0.0", "acme.hello": "1.2.0"}
    with pytest.raises(SourceError, match="is not in the download cache, and --offline forbids"):
        Store(home, offline=True).install([f"{url}/acme.hello:1.0.0"])
    with pytest.raises(SourceError, match="was never listed from the registry here"):
        Store(home, offline=True).install([f"{url}/acme.other"])


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("oci://ghcr.io/acme/plugins/acme.hello:1.2.0", ("ghcr.io", "acme/plugins", "1.2.0", None)),
        ("oci://127.0.0.1:5000/p/acme.hello@1.2.0+b.1", ("127.0.0.1:5000", "p", "1.2.0_b.1", None)),
        ("oci://reg.test/acme.hello", ("reg.test", "", None, None)),
        ("oci://reg.test/p/hello>=1.0,<2", ("reg.test", "p", None, ">=1.0,<2")),
        ("oci://reg.test/p/acme.hello:latest", ("reg.test", "p", "latest", None)),
        ("oci://REG.test/p/acme.hello@sha256:" + "a" * 64, ("reg.test", "p", None, None)),
    ],
)
def test_oci_references(spec: str, expected: tuple[str, str, str | None, str | None]) -> None:
    ref = parse_reference(spec)
    assert (ref.location.registry, ref.location.prefix, ref.tag, ref.range) == expected
    if "@sha256:" in spec:
        assert ref.digest == "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("oci://", "is not a registry host"),
        ("oci://reg.test", "does not name a plugin"),
        ("oci://reg.test/p/Acme.Hello:1.0.0", "does not name a plugin"),
        ("oci://reg.test/P/acme.hello", "is not a repository path"),
        ("oci://reg.test/p/acme.hello@1.x", "not a valid version"),
        ("oci://reg.test/p/acme.hello@sha256:abc", "is not a digest"),
        ("oci://reg.test/p/acme.hello>=banana", "not a valid version range"),
        ("oci://reg.test/p/acme.hello_:1.0.0", "cannot be an OCI repository name"),
    ],
)
def test_bad_oci_references_say_what_is_wrong(spec: str, problem: str) -> None:
    with pytest.raises(SourceError, match=problem):
        parse_reference(spec)


def test_tags_write_build_metadata_with_an_underscore() -> None:
    assert tag_of("1.0.0+build.5") == "1.0.0_build.5"
    assert version_of("1.0.0_build.5") == "1.0.0+build.5"
    assert version_of("2.0.0-rc.1") == "2.0.0-rc.1"
    assert version_of("latest") is None
    assert version_of("v1.0.0") is None


def test_plain_http_only_for_loopback_and_listed_registries(tmp_path: Path) -> None:
    from plugbay.store.oci import _plain_http

    assert _plain_http("127.0.0.1:5000", ())
    assert _plain_http("localhost:5000", ())
    assert _plain_http("[::1]:5000", ())
    assert not _plain_http("registry.lan:5000", ())
    assert _plain_http("registry.lan:5000", ("registry.lan:5000",))
    assert _plain_http("registry.lan:5001", ("registry.lan",))
    assert not _plain_http("registry.lan:5001", ("registry.lan:5000",))
    config = config_from_mapping({"oci": {"insecure-registries": ["registry.lan:5000"]}})
    assert config.oci.insecure_registries == ("registry.lan:5000",)
    with pytest.raises(ConfigError, match="oci"):
        config_from_mapping({"oci": {"insecure": ["x"]}})
