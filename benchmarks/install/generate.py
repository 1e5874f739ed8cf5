"""Generate equivalent plugin sources for plugbay and Ansible collections for ansible-galaxy.

Importable (``generate``) and runnable::

    python benchmarks/install/generate.py DIR --count 50 --modules 2 --edges 95

writes, for the same N plugins with the same ids, versions and dependency graph:

- ``DIR/plugbay/<ns>-<name>/``: a plugin folder for ``plugbay build``::

      plugin.toml                    [plugin], [dependencies], one [[contributes.module]]
                                     (name, entry, summary, help) per module
      README.md
      <ns>_<name>/__init__.py        the plugin's entry (class Plugin)
      <ns>_<name>/modules/<m>.py     one small Python file per module, doc in its docstring
      help/<m>.md                    one help page per module

- ``DIR/ansible/<ns>/<name>/``: a collection for ``ansible-galaxy collection build``::

      galaxy.yml                     namespace, name, version, …, dependencies
      meta/runtime.yml               requires_ansible
      README.md
      plugins/module_utils/common.py the collection's shared code (same text as __init__.py)
      plugins/modules/<m>.py         one module per module, its doc in DOCUMENTATION
      docs/<m>.md                    the same help page per module

Both sides hold the same number of files per plugin (the manifest, a README, one shared
Python file, and per module one Python file and one Markdown page); each module's Python
file carries the same YAML documentation block and a few lines of code, and its help page
is byte-for-byte the same on both sides. Versions are ``1.MINOR.PATCH``; a dependency on
a plugin at ``1.m.p`` is the range ``>=1.m.0,<2.0.0``, a syntax both tools read the same
way. The dependency graph is acyclic: ``edges`` distinct pairs, each from a plugin to an
earlier one, drawn with a seeded random generator. Output is deterministic for a seed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Generated", "PluginSpec", "generate", "plan"]

_WORDS = (
    "inventory",
    "network",
    "storage",
    "compute",
    "identity",
    "monitor",
    "backup",
    "dns",
    "firewall",
    "images",
)
PLUGINS_PER_NAMESPACE = 25


@dataclass(frozen=True)
class PluginSpec:
    """One generated plugin, the same on both sides."""

    namespace: str
    name: str
    version: str
    modules: int
    dependencies: tuple[tuple[str, str], ...]  # (id, range)

    @property
    def id(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def word(self) -> str:
        return _WORDS[int(self.name.lstrip("p")) % len(_WORDS)]

    def module_names(self) -> list[str]:
        return [f"{self.name}_{self.word}_{i:02d}" for i in range(1, self.modules + 1)]


@dataclass(frozen=True)
class Generated:
    """What :func:`generate` wrote."""

    plugins: int
    modules_per_plugin: int
    dependency_edges: int
    namespaces: int
    plugbay_files: int
    plugbay_bytes: int
    ansible_files: int
    ansible_bytes: int
    seconds: float


def plan(count: int, modules: int, edges: int, *, seed: int = 1) -> list[PluginSpec]:
    """The plugins to generate: ids, versions and an acyclic graph of ``edges`` dependencies."""
    rng = random.Random(seed)
    n_namespaces = max(1, round(count / PLUGINS_PER_NAMESPACE))
    ids = [(f"bench{i % n_namespaces:02d}", f"p{i:03d}") for i in range(count)]
    versions = [f"1.{rng.randrange(10)}.{rng.randrange(20)}" for _ in range(count)]
    pairs = [(i, j) for i in range(1, count) for j in range(i)]
    if edges > len(pairs):
        raise SystemExit(f"{count} plugins can have at most {len(pairs)} dependency edges")
    chosen = sorted(rng.sample(pairs, edges))
    deps: list[list[tuple[str, str]]] = [[] for _ in range(count)]
    for i, j in chosen:
        minor = versions[j].split(".")[1]
        deps[i].append((f"{ids[j][0]}.{ids[j][1]}", f">=1.{minor}.0,<2.0.0"))
    return [
        PluginSpec(ns, name, versions[i], modules, tuple(sorted(deps[i])))
        for i, (ns, name) in enumerate(ids)
    ]


# ---------------------------------------------------------------- shared text


def _doc(spec: PluginSpec, module: str, i: int) -> str:
    """The YAML documentation block of one module (Ansible's DOCUMENTATION format)."""
    return f"""module: {module}
short_description: Configure {spec.word} objects ({i})
description:
  - Create, update and delete {spec.word} objects managed by {spec.id}.
  - Generated for the plugbay install benchmark; the code does nothing useful.
version_added: "{spec.version}"
options:
  name:
    description: Name of the {spec.word} object.
    type: str
    required: true
  state:
    description: Whether the object should exist.
    type: str
    choices: [present, absent]
    default: present
author:
  - Bench (@bench)
"""


def _help(spec: PluginSpec, module: str, i: int) -> str:
    return f"""# {module}

Configure {spec.word} objects ({i}) with `{spec.id}`.

## Parameters

| name | type | default | meaning |
| --- | --- | --- | --- |
| `name` | string | required | name of the {spec.word} object |
| `state` | `present`, `absent` | `present` | whether the object should exist |

## Example

```yaml
- {module}:
    name: example-{i}
    state: present
```
"""


def _readme(spec: PluginSpec) -> str:
    deps = ", ".join(d for d, _ in spec.dependencies) or "nothing"
    return (
        f"# {spec.id}\n\nBenchmark plugin {spec.id} {spec.version}: manages {spec.word} "
        f"resources with {spec.modules} modules.\n\nDepends on {deps}.\n"
    )


def _common(spec: PluginSpec) -> str:
    return f'''"""Shared code of {spec.id}."""

from __future__ import annotations

VERSION = "{spec.version}"


class Plugin:
    """Entry of {spec.id}; does nothing."""

    def register(self, host: object) -> None:
        self.host = host
'''


# ---------------------------------------------------------------- plugbay


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string here (ASCII)


def _plugbay_manifest(spec: PluginSpec) -> str:
    package = f"{spec.namespace}_{spec.name}"
    lines = [
        "schema = 1",
        "",
        "[plugin]",
        f"namespace = {_toml_string(spec.namespace)}",
        f"name = {_toml_string(spec.name)}",
        f"version = {_toml_string(spec.version)}",
        f"description = {_toml_string(f'Benchmark plugin {spec.id}: manage {spec.word}')}",
        'authors = ["Bench <bench@example.test>"]',
        'license = "Apache-2.0"',
        'requires = ">=1.0.0,<2.0.0"',
        'runtime = "python"',
        f'entry = "{package}:Plugin"',
    ]
    if spec.dependencies:
        lines += ["", "[dependencies]"]
        lines += [f"{_toml_string(dep)} = {_toml_string(rng)}" for dep, rng in spec.dependencies]
    for i, module in enumerate(spec.module_names(), start=1):
        lines += [
            "",
            "[[contributes.module]]",
            f'name = "{module}"',
            f'entry = "{package}.modules.{module}:Module"',
            f'summary = "Configure {spec.word} objects ({i})"',
            f'help = "help/{module}.md"',
        ]
    return "\n".join(lines) + "\n"


def _plugbay_module(spec: PluginSpec, module: str, i: int) -> str:
    return f'''"""Configure {spec.word} objects ({i}).

{_doc(spec, module, i)}"""

from __future__ import annotations


class Module:
    name = "{module}"

    def run(self, params: dict[str, str]) -> dict[str, object]:
        state = params.get("state", "present")
        return {{"changed": state == "present", "name": params["name"]}}
'''


def write_plugbay(spec: PluginSpec, root: Path) -> Path:
    """Write the plugin folder of ``spec`` under ``root``; returns it."""
    folder = root / f"{spec.namespace}-{spec.name}"
    package = folder / f"{spec.namespace}_{spec.name}"
    (package / "modules").mkdir(parents=True)
    (folder / "help").mkdir()
    (folder / "plugin.toml").write_text(_plugbay_manifest(spec), "utf-8")
    (folder / "README.md").write_text(_readme(spec), "utf-8")
    (package / "__init__.py").write_text(_common(spec), "utf-8")
    for i, module in enumerate(spec.module_names(), start=1):
        (package / "modules" / f"{module}.py").write_text(_plugbay_module(spec, module, i), "utf-8")
        (folder / "help" / f"{module}.md").write_text(_help(spec, module, i), "utf-8")
    return folder


# ---------------------------------------------------------------- ansible


def _galaxy_yml(spec: PluginSpec) -> str:
    lines = [
        f"namespace: {spec.namespace}",
        f"name: {spec.name}",
        f'version: "{spec.version}"',
        "readme: README.md",
        "authors:",
        "  - Bench <bench@example.test>",
        f"description: {json.dumps(f'Benchmark plugin {spec.id}: manage {spec.word}')}",
        "license:",
        "  - Apache-2.0",
    ]
    if spec.dependencies:
        lines.append("dependencies:")
        lines += [f'  "{dep}": "{rng}"' for dep, rng in spec.dependencies]
    else:
        lines.append("dependencies: {}")
    lines.append("build_ignore: []")
    return "\n".join(lines) + "\n"


def _ansible_module(spec: PluginSpec, module: str, i: int) -> str:
    return f'''#!/usr/bin/python
"""Configure {spec.word} objects ({i})."""

from __future__ import annotations

DOCUMENTATION = r"""
{_doc(spec, module, i)}"""

from ansible.module_utils.basic import AnsibleModule


def main():
    spec = dict(name=dict(type="str", required=True), state=dict(default="present"))
    module = AnsibleModule(argument_spec=spec)
    state = module.params["state"]
    module.exit_json(changed=state == "present", name=module.params["name"])


if __name__ == "__main__":
    main()
'''


def write_ansible(spec: PluginSpec, root: Path) -> Path:
    """Write the collection of ``spec`` under ``root``; returns its folder."""
    folder = root / spec.namespace / spec.name
    (folder / "meta").mkdir(parents=True)
    (folder / "plugins" / "modules").mkdir(parents=True)
    (folder / "plugins" / "module_utils").mkdir()
    (folder / "docs").mkdir()
    (folder / "galaxy.yml").write_text(_galaxy_yml(spec), "utf-8")
    (folder / "meta" / "runtime.yml").write_text('requires_ansible: ">=2.15.0"\n', "utf-8")
    (folder / "README.md").write_text(_readme(spec), "utf-8")
    (folder / "plugins" / "module_utils" / "common.py").write_text(_common(spec), "utf-8")
    for i, module in enumerate(spec.module_names(), start=1):
        (folder / "plugins" / "modules" / f"{module}.py").write_text(
            _ansible_module(spec, module, i), "utf-8"
        )
        (folder / "docs" / f"{module}.md").write_text(_help(spec, module, i), "utf-8")
    return folder


# ---------------------------------------------------------------- both


def _size(folder: Path, skip: str = "") -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != skip]
    return len(files), sum(p.stat().st_size for p in files)


def generate(
    root: Path, count: int, modules: int, edges: int, *, seed: int = 1
) -> tuple[list[PluginSpec], Generated]:
    """Write both sides under ``root`` (emptied first): ``root/plugbay``, ``root/ansible``.

    The file counts and bytes in the summary are those that go into the bundles:
    ansible-galaxy turns ``galaxy.yml`` into MANIFEST.json instead of shipping it, so it
    is not counted; plugbay ships ``plugin.toml`` and adds MANIFEST.json, so it is.
    """
    t0 = time.perf_counter()
    if root.exists():
        shutil.rmtree(root)
    specs = plan(count, modules, edges, seed=seed)
    for spec in specs:
        write_plugbay(spec, root / "plugbay")
        write_ansible(spec, root / "ansible")
    pb_files, pb_bytes = _size(root / "plugbay")
    an_files, an_bytes = _size(root / "ansible", skip="galaxy.yml")
    return specs, Generated(
        plugins=count,
        modules_per_plugin=modules,
        dependency_edges=sum(len(s.dependencies) for s in specs),
        namespaces=len({s.namespace for s in specs}),
        plugbay_files=pb_files,
        plugbay_bytes=pb_bytes,
        ansible_files=an_files,
        ansible_bytes=an_bytes,
        seconds=round(time.perf_counter() - t0, 3),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="folder to (re)create")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--modules", type=int, default=2, help="modules per plugin")
    parser.add_argument("--edges", type=int, default=95, help="dependency edges in all")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    _, summary = generate(args.dir, args.count, args.modules, args.edges, seed=args.seed)
    json.dump(asdict(summary), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
