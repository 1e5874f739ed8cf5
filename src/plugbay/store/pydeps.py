"""Python dependencies of in-process plugins: shared with the host, or private copies.

A plugin's ``python-dependencies`` are matched against the environment of the
interpreter running the store (the host's, when the host mounts the command):

- a distribution the host has at a version the requirement accepts is the host's copy,
  shared with the plugin and never installed again;
- a distribution the host has at a version the requirement refuses is a conflict,
  refused before anything is written (the host's copy is the one shared with plugins);
- everything else, with what it needs, is resolved by pip against the host environment
  and installed into ``<home>/pydeps/<id>/<version>/`` (a ``pip install --target``
  folder) that only that plugin's code imports (see :mod:`plugbay.runtimes.python`).

Plugins that depend on each other, directly or not, exchange objects, so the private
copies one of them has must satisfy what the other declares; unrelated plugins keep
their own versions side by side. The reasons are in docs/decisions/0005.

Nothing here imports plugin code. pip runs as ``<sys.executable> -m pip``; its output
goes to the ``plugbay.store.pydeps`` logger (shown by ``-v``), never to stdout.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import StoreError
from .layout import Layout

if TYPE_CHECKING:
    from packaging.requirements import Requirement

    from .sources import Candidate
    from .transaction import Transaction

__all__ = ["Pip", "PythonDependencies", "dies_with_us", "plan_python_dependencies", "pydeps_dir"]

_log = logging.getLogger("plugbay.store.pydeps")

PYDEPS = "pydeps"

Progress = Callable[[str, int, int], None]


def pydeps_dir(layout: Layout, plugin_id: str, version: str | None = None) -> Path:
    """``<home>/pydeps/<id>/<version>/``, or the folder of every version of ``plugin_id``."""
    base = layout.home / PYDEPS / plugin_id
    return base if version is None else base / version


# ---------------------------------------------------------------- pip


class Pip(msgspec.Struct, frozen=True, gc=False):
    """How pip is run: the interpreter, and where distributions come from.

    ``find_links`` are folders (or URLs) of wheels and sdists, passed as
    ``--find-links``. ``offline`` passes ``--no-index``: then a find-links folder must
    be given here or in ``PIP_FIND_LINKS``.
    """

    offline: bool = False
    find_links: tuple[str, ...] = ()
    python: str = sys.executable

    def source_args(self, why: str) -> list[str]:
        """Index options for one pip run; refuses to run offline with nowhere to look."""
        args = [arg for link in self.find_links for arg in ("--find-links", link)]
        if self.offline:
            links = [*self.find_links, *os.environ.get("PIP_FIND_LINKS", "").split()]
            if not links:
                raise StoreError(
                    f"cannot {why} offline: no folder of wheels to install from; set "
                    "PIP_FIND_LINKS to one (or run without --offline); nothing was changed"
                )
            remote = next(
                (link for link in links if "://" in link and not link.startswith("file:")), None
            )
            if remote is not None:
                # pip reads find-links URLs even with --no-index.
                raise StoreError(
                    f"cannot {why} offline: the find-links {remote} needs the network, and "
                    "--offline forbids it; use a folder of wheels (or drop --offline); "
                    "nothing was changed"
                )
            args.insert(0, "--no-index")
        return args

    def run(self, args: Sequence[str], why: str) -> None:
        """Run pip, its output to the log; a failure raises StoreError with pip's reason."""
        # (Imported here: an install without Python dependencies never runs pip.)
        import shlex
        import subprocess

        command = [self.python, "-m", "pip", *args]
        _log.info("running %s", shlex.join(command))
        env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        tail: deque[str] = deque(maxlen=200)
        with subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
            preexec_fn=dies_with_us(),  # noqa: PLW1509 - only prctl and getppid: no locks
        ) as proc:
            try:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    line = raw.rstrip()
                    if line:
                        _log.info("pip: %s", line)
                        tail.append(line)
                code = proc.wait()
            finally:
                if proc.poll() is None:  # interrupted: pip must not outlive us
                    proc.kill()
        if code != 0:
            raise StoreError(
                f"cannot {why}: pip failed: {_reason(tail)}; nothing was changed "
                "(run with -v to see pip's output)"
            )


def dies_with_us() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child killed when this process dies (Linux), else None.

    A plugbay killed with kill -9 must not leave pip writing into a staging folder that
    the next command discards. pip's own children (``pip --python`` runs a second pip
    under the venv's interpreter) end at their next write to the closed output pipe.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        # Runs in the child between fork and exec: no imports, no allocations to speak of.
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # we died before the line above took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _reason(lines: Iterable[str]) -> str:
    """pip's first ``ERROR:`` line (the cause; later ones are pointers), else its last line."""
    lines = list(lines)
    for line in lines:
        if line.startswith("ERROR:"):
            return line.removeprefix("ERROR:").strip().rstrip(".")
    return lines[-1] if lines else "no output"


# ---------------------------------------------------------------- planning


class _Copy(msgspec.Struct, frozen=True, gc=False):
    """One private copy to install: ``name==version`` and the pip argument that gets it."""

    name: str
    version: str
    argument: str


class _Plugin(msgspec.Struct, frozen=True):
    """One plugin version of the state after the change, as far as Python goes."""

    id: str
    version: str
    declared: tuple[Requirement, ...]
    depends_on: frozenset[str]
    copies: Mapping[str, str]  # canonical distribution name -> version, private copies
    new: bool

    @property
    def label(self) -> str:
        return f"{self.id} {self.version}"


class PythonDependencies(msgspec.Struct):
    """What an install does about Python dependencies; made by :func:`plan_python_dependencies`.

    ``warnings`` are the conflicts ``force`` let through. :meth:`stage` puts a version's
    private copies into a transaction.
    """

    pip: Pip
    copies: dict[str, tuple[_Copy, ...]] = msgspec.field(default_factory=dict)  # by id@version
    warnings: list[str] = msgspec.field(default_factory=list)
    progress: Progress | None = None
    _staged: int = 0

    def stage(
        self, txn: Transaction, layout: Layout, plugin_id: str, version: str
    ) -> tuple[str, ...]:
        """Install the private copies of one version into ``txn``; returns their pins.

        The pins (``name==version``, sorted) are what the receipt records. A version with
        no private copies gets no folder (and loses the one a previous install left).
        """
        final = pydeps_dir(layout, plugin_id, version)
        copies = self.copies.get(f"{plugin_id}@{version}", ())
        if not copies:
            txn.delete(final)
            return ()
        todo = sum(1 for c in self.copies.values() if c)
        self._staged += 1
        if self.progress:
            self.progress("installing python dependencies", self._staged - 1, todo)
        staged = txn.stage_dir()
        why = f"install the python dependencies of {plugin_id} {version}"
        self.pip.run(
            [
                "install",
                "--target",
                str(staged),
                "--no-deps",
                "--no-warn-script-location",
                "--disable-pip-version-check",
                "--progress-bar",
                "off",
                *self.pip.source_args(why),
                *(c.argument for c in copies),
            ],
            why,
        )
        if self.progress:
            self.progress("installing python dependencies", self._staged, todo)
        txn.move(staged, final)
        return tuple(sorted(f"{c.name}=={c.version}" for c in copies))


def plan_python_dependencies(
    layout: Layout,
    chosen: Mapping[str, Candidate],
    installed: Mapping[str, Sequence[Candidate]],
    pip: Pip,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> PythonDependencies:
    """Decide, before anything is written, what the Python dependencies of an install need.

    ``chosen`` are the versions the install ends with (those not ``installed`` are new,
    and are treated as active); ``installed`` the versions already in the home. pip runs
    only to resolve (``--dry-run``) what the host does not provide. Raises StoreError
    naming every conflict with the host or between plugins that depend on each other,
    unless ``force``: then they become warnings and the plugin gets its own copies.
    """
    plan = PythonDependencies(pip, progress=progress)
    new = [c for _, c in sorted(chosen.items()) if not c.installed]
    if not any(_declared(c) for c in new):
        return plan  # nothing new declares any: no copy to install, no pair to disagree
    conflicts: list[str] = []
    after: dict[str, _Plugin] = {}
    for pid, versions in installed.items():
        active = next((c for c in versions if c.active), None)
        if active is not None and pid not in chosen:
            after[pid] = _installed(layout, active)
    for pid, cand in chosen.items():
        if cand.installed:
            after[pid] = _installed(layout, cand)
    wanted: dict[str, list[Requirement]] = {}
    for cand in new:
        wanted[cand.key] = []
        for req in _declared(cand):
            have = _host_version(req.name)
            if have is None:
                wanted[cand.key].append(req)
            elif not req.specifier.contains(have, prereleases=True):
                conflicts.append(
                    f"{cand.id} {cand.version} needs {req}, but the host has {req.name} {have}"
                )
                wanted[cand.key].append(req)  # with force, the plugin gets its own copy
    if conflicts and not force:
        raise _refusal(conflicts)  # before pip runs: no download for a refused install
    to_resolve = [c for c in new if wanted[c.key]]
    for n, cand in enumerate(to_resolve):
        if progress:
            progress("resolving python dependencies", n, len(to_resolve))
        copies = _resolve(pip, cand, wanted[cand.key])
        plan.copies[cand.key] = copies
        conflicts += _unshared(cand, wanted[cand.key], copies)
    if to_resolve and progress:
        progress("resolving python dependencies", len(to_resolve), len(to_resolve))
    for cand in new:
        copies = plan.copies.get(cand.key, ())
        after[cand.id] = _Plugin(
            cand.id,
            cand.version,
            _declared(cand),
            frozenset(cand.manifest.dependencies),
            {c.name: c.version for c in copies},
            new=True,
        )
    conflicts += _between_plugins(after)
    if conflicts and not force:
        raise _refusal(conflicts)
    plan.warnings += conflicts
    return plan


def _refusal(conflicts: Sequence[str]) -> StoreError:
    return StoreError(
        "python dependencies conflict: "
        + "; ".join(conflicts)
        + " (the host's copies are shared with its plugins, and plugins that depend on"
        " each other share objects); nothing was changed (use --force to install anyway)"
    )


def _canonical(name: str) -> str:
    # packaging and importlib.metadata are imported only when a plugin has requirements:
    # every store command imports this module.
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def _host_version(name: str) -> str | None:
    """The version of distribution ``name`` in the running interpreter's environment."""
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _unshared(cand: Candidate, wanted: Sequence[Requirement], copies: Iterable[_Copy]) -> list[str]:
    """Private copies of distributions the plugin declares and takes from the host."""
    own = {_canonical(r.name) for r in wanted}
    shared: dict[str, Requirement] = {_canonical(r.name): r for r in _declared(cand)}
    return [
        f"{cand.id} {cand.version} needs {shared[c.name]}, which the host's {c.name} "
        f"{_host_version(c.name)} provides, but its other python dependencies need "
        f"{c.name} {c.version}"
        for c in copies
        if c.name in shared and c.name not in own
    ]


def _in_process(cand: Candidate) -> bool:
    plugin = cand.manifest.plugin
    return plugin.runtime == "python" and plugin.isolation == "none"


def _declared(cand: Candidate) -> tuple[Requirement, ...]:
    """The version's requirements that apply to this interpreter (markers evaluated)."""
    if not _in_process(cand) or not cand.manifest.plugin.python_dependencies:
        return ()
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for text in cand.manifest.plugin.python_dependencies:
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise StoreError(
                f"{cand.id} {cand.version}: python-dependencies: {text!r} is not a pip "
                f'requirement ({exc}); write it as pip does, e.g. "requests>=2.31"'
            ) from None
        if req.marker is None or req.marker.evaluate():
            out.append(req)
    return tuple(out)


def _installed(layout: Layout, cand: Candidate) -> _Plugin:
    # An isolated plugin's receipt pins what its own venv holds: nothing it shares with
    # the host or with in-process plugins (it exchanges JSON with them, not objects).
    receipt = layout.read_receipt(cand.id, cand.version) if _in_process(cand) else None
    copies: dict[str, str] = {}
    for pin in receipt.python_dependencies if receipt else ():
        name, _, version = pin.partition("==")
        copies[_canonical(name)] = version
    return _Plugin(
        cand.id,
        cand.version,
        _declared(cand),
        frozenset(cand.manifest.dependencies),
        copies,
        new=False,
    )


def _resolve(pip: Pip, cand: Candidate, wanted: Sequence[Requirement]) -> tuple[_Copy, ...]:
    """What pip would install for ``wanted`` into the host environment (nothing is)."""
    import json
    import tempfile

    why = f"resolve the python dependencies of {cand.id} {cand.version}"
    with tempfile.TemporaryDirectory(prefix="plugbay-pip-") as tmp:
        report = Path(tmp) / "report.json"
        pip.run(
            [
                "install",
                "--dry-run",
                "--report",
                str(report),
                "--disable-pip-version-check",
                "--progress-bar",
                "off",
                *pip.source_args(why),
                *(str(r) for r in wanted),
            ],
            why,
        )
        try:
            items = json.loads(report.read_text("utf-8")).get("install", [])
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot {why}: pip wrote no readable report ({exc})") from None
    return tuple(sorted((_copy(item) for item in items), key=lambda c: c.name))


def _copy(item: Mapping[str, Any]) -> _Copy:
    """One entry of pip's installation report, as the argument that installs exactly it."""
    name = _canonical(item["metadata"]["name"])
    version = str(item["metadata"]["version"])
    argument = f"{name}=={version}"
    info = item.get("download_info") or {}
    if item.get("is_direct") and info.get("url"):
        vcs = info.get("vcs_info")
        url = f"{vcs['vcs']}+{info['url']}@{vcs['commit_id']}" if vcs else info["url"]
        argument = f"{name} @ {url}"
    return _Copy(name, version, argument)


def _between_plugins(after: Mapping[str, _Plugin]) -> list[str]:
    """Disagreements between a new plugin and the plugins it depends on or that depend on it.

    Each side's declared requirements must accept the other side's private copies.
    """
    conflicts: list[str] = []
    for plugin in after.values():
        if not plugin.new:
            continue
        below = _closure(plugin.id, after, lambda p: p.depends_on)
        above = _closure(plugin.id, after, lambda p: _dependents(p.id, after))
        for other_id in sorted(below | above):
            other = after[other_id]
            conflicts += _disagreements(plugin, other, other_id in below)
            conflicts += _disagreements(other, plugin, other_id not in below)
    return list(dict.fromkeys(conflicts))  # a pair of new plugins is seen from both sides


def _disagreements(a: _Plugin, b: _Plugin, a_depends_on_b: bool) -> list[str]:
    how = "which it depends on" if a_depends_on_b else "which depends on it"
    out = []
    for req in a.declared:
        have = b.copies.get(_canonical(req.name))
        if have is not None and not req.specifier.contains(have, prereleases=True):
            out.append(
                f"{a.label} needs {req}, but {b.label}, {how}, has its own {req.name} {have}"
            )
    return out


def _dependents(plugin_id: str, after: Mapping[str, _Plugin]) -> frozenset[str]:
    return frozenset(p.id for p in after.values() if plugin_id in p.depends_on)


def _closure(
    start: str, after: Mapping[str, _Plugin], step: Callable[[_Plugin], Iterable[str]]
) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        current = after.get(todo.pop())
        if current is None:
            continue
        for nxt in step(current):
            if nxt not in seen and nxt != start and nxt in after:
                seen.add(nxt)
                todo.append(nxt)
    return seen
