"""Virtual environments of isolated Python plugins (``isolation = "process"``).

Each installed version of such a plugin gets ``<home>/venvs/<id>/<version>/``:

- made with ``uv venv`` when ``uv`` is on ``PATH``, else ``python -m venv --without-pip``,
  from the interpreter running the store;
- its ``python-dependencies`` installed there by the store's own pip
  (``pip --python <venv>/bin/python install …``), so they resolve inside the venv only —
  no check against the host or other plugins: that is what isolation is for;
- plugbay's standard-library-only SDK (``plugbay/__init__.py``, ``plugbay/protocol.py``
  and ``plugbay/sdk/``) copied to ``<venv>/plugbay-sdk/<plugbay version>-<digest>/``, and
  found through ``site-packages/_plugbay_sdk.pth`` (see :func:`ensure_sdk`). None of
  plugbay's other dependencies are there.

The venv is built in the install's staging folder and moved into place at commit with
the version folder (see :mod:`.transaction`); the few files that name the venv's own path
(``pyvenv.cfg``, scripts' ``#!`` lines, ``activate``) are rewritten for the final path
first, and bytecode is compiled with the final path in it. The host runs the plugin with
:func:`isolated_command`. The reasons are in docs/decisions/0007.

POSIX layout only (``bin/``, ``lib/pythonX.Y/site-packages``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from ..errors import LoadError, StoreError

if TYPE_CHECKING:
    from ..manifest import Manifest
    from .layout import Layout
    from .pydeps import Pip
    from .sources import Candidate
    from .transaction import Transaction

__all__ = [
    "IsolatedEnvironments",
    "ensure_sdk",
    "is_isolated",
    "isolated_command",
    "plan_isolated",
    "reinstall_command",
    "venv_dir",
    "venv_problem",
]

_log = logging.getLogger("plugbay.store.venvs")

VENVS = "venvs"
SDK_FOLDER = "plugbay-sdk"
SDK_PTH = "_plugbay_sdk.pth"
SDK_STAMP = "plugbay-sdk.json"
SERVER_MODULE = "plugbay.sdk.isolated"

Progress = Callable[[str, int, int], None]


def venv_dir(home: Path, plugin_id: str, version: str | None = None) -> Path:
    """``<home>/venvs/<id>/<version>/``, or the folder of every version of ``plugin_id``."""
    base = home / VENVS / plugin_id
    return base if version is None else base / version


def is_isolated(manifest: Manifest) -> bool:
    """Whether the plugin runs out of process in a virtual environment of its own."""
    plugin = manifest.plugin
    return plugin.runtime == "python" and plugin.isolation == "process"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _site_packages(venv: Path) -> Path | None:
    """``<venv>/lib/pythonX.Y/site-packages`` (X.Y: the venv's Python), or None if absent."""
    found = sorted((venv / "lib").glob("python*/site-packages"))
    return found[0] if len(found) == 1 else None


def venv_problem(home: Path, plugin_id: str, version: str) -> str | None:
    """What is wrong with the venv of an installed isolated version; None when it is usable.

    Cheap (a few ``stat`` calls): the host calls it before every spawn, ``verify`` for
    every isolated version.
    """
    venv = venv_dir(home, plugin_id, version)
    if not (venv / "pyvenv.cfg").is_file():
        return f"its virtual environment {venv} is missing"
    python = _python(venv)
    if not python.exists():  # follows the link: a base interpreter removed or upgraded
        target = os.path.realpath(python) if python.is_symlink() else str(python)
        return f"its virtual environment {venv} is broken: its interpreter {target} is gone"
    if _site_packages(venv) is None:
        return (
            f"its virtual environment {venv} is broken: it has no single lib/python*/site-packages"
        )
    return None


# ---------------------------------------------------------------- running


def isolated_command(
    home: Path, plugin_id: str, version: str, plugin_dir: Path
) -> tuple[list[str], dict[str, str]]:
    """The argv that serves an isolated plugin out of process, and the environment it adds.

    The argv is ``[<venv>/bin/python, "-m", "plugbay.sdk.isolated"]``; the environment
    activates the venv for what the plugin runs itself (``VIRTUAL_ENV``, and ``PATH``
    with the venv's ``bin`` first). The SDK copy is refreshed when it is not the running
    plugbay's (one small read when it is). Raises LoadError (step ``spawn``) when the
    venv is missing or broken, saying how to reinstall the plugin.
    """
    venv = venv_dir(home, plugin_id, version)
    problem = venv_problem(home, plugin_id, version)
    if problem is None:
        try:
            ensure_sdk(venv)
        except OSError as exc:
            problem = (
                f"cannot refresh the plugbay SDK in its virtual environment {venv}: "
                f"{exc.strerror or exc}"
            )
    if problem is not None:
        command = reinstall_command(home, plugin_id, version, plugin_dir)
        raise LoadError(plugin_id, "spawn", f"{problem}; reinstall it with `{command}`")
    path = os.environ.get("PATH", os.defpath)
    env = {"VIRTUAL_ENV": str(venv), "PATH": os.pathsep.join([str(venv / "bin"), path])}
    return [str(_python(venv)), "-m", SERVER_MODULE], env


def reinstall_command(home: Path, plugin_id: str, version: str, plugin_dir: Path) -> str:
    """The command that installs this version again: from its receipt's source, else its folder."""
    from .layout import Layout

    receipt = Layout(home).read_receipt(plugin_id, version)
    if receipt is None:
        return f"plugbay install {shlex.quote(str(plugin_dir))}"
    return f"plugbay install --force {shlex.quote(receipt.source)}"


# ---------------------------------------------------------------- the SDK copy


class _Sdk(msgspec.Struct, frozen=True, gc=False):
    """The running plugbay's SDK files: what goes into a venv, and the tag naming them."""

    version: str
    sha256: str
    files: tuple[tuple[str, bytes], ...]  # ("plugbay/sdk/server.py", its bytes)

    @property
    def tag(self) -> str:
        return f"{self.version}-{self.sha256[:12]}"


@functools.cache
def _sdk() -> _Sdk:
    """Read the SDK's files once per process (they do not change under a running host).

    The digest covers their contents, so a development tree whose version did not move
    still refreshes the copies.
    """
    from .. import __version__

    root = Path(__file__).resolve().parent.parent
    paths = [root / "__init__.py", root / "protocol.py"]
    paths += sorted(p for p in (root / "sdk").rglob("*.py") if "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    files = []
    for path in paths:
        rel = "plugbay/" + path.relative_to(root).as_posix()
        data = path.read_bytes()
        files.append((rel, data))
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return _Sdk(__version__, digest.hexdigest(), tuple(files))


def ensure_sdk(venv: Path) -> bool:
    """Make the venv import the running plugbay's SDK; True when it had to be refreshed.

    The SDK lives in ``<venv>/plugbay-sdk/<tag>/`` and ``site-packages/_plugbay_sdk.pth``
    names that folder (relative to site-packages, so the venv can move). A refresh writes
    the new folder beside the old ones and then replaces the ``.pth`` file with one
    rename, so hosts of two plugbay versions sharing a home never see half a copy.
    Raises OSError when the venv cannot be written.
    """
    sdk = _sdk()
    site = _site_packages(venv)
    if site is None:
        raise FileNotFoundError(2, "no site-packages", str(venv / "lib"))
    folder = venv / SDK_FOLDER / sdk.tag
    line = os.path.relpath(folder, site)
    pth = site / SDK_PTH
    try:
        current = pth.read_text("utf-8").strip()
    except OSError:
        current = None
    if current == line and (folder / SDK_STAMP).is_file():
        return False
    _write_sdk(folder, sdk)
    tmp = site / f".{SDK_PTH}.{uuid.uuid4().hex}"
    tmp.write_text(line + "\n", "utf-8")
    os.replace(tmp, pth)
    _log.info("%s: plugbay SDK %s", venv, "refreshed" if current else "installed")
    return True


def _write_sdk(folder: Path, sdk: _Sdk) -> None:
    """Write the SDK into ``folder`` whole (written beside it, then renamed), unless there."""
    if (folder / SDK_STAMP).is_file():
        return  # written last, inside the renamed folder: its presence means a whole copy
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex}"
    try:
        for rel, data in sdk.files:
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        stamp = {"plugbay": sdk.version, "sha256": sdk.sha256, "files": [r for r, _ in sdk.files]}
        (tmp / SDK_STAMP).write_text(json.dumps(stamp, indent=2) + "\n", "utf-8")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / SDK_STAMP).is_file():
                raise
            # Another host wrote the same copy first: theirs is as good as ours.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- installing


class IsolatedEnvironments(msgspec.Struct):
    """What an install does about isolated plugins; made by :func:`plan_isolated`.

    :meth:`stage` builds one version's venv into a transaction.
    """

    pip: Pip
    todo: int = 0
    progress: Progress | None = None
    uv: str | None = None
    _done: int = 0

    def stage(self, txn: Transaction, layout: Layout, cand: Candidate) -> tuple[str, ...]:
        """Build the venv of ``cand`` in ``txn``, moved into place at commit; returns its pins.

        The pins (``name==version`` of every distribution in the venv, sorted) are what
        the receipt records. A version that is not isolated gets no venv (and loses the one
        a previous install of that version left). A failure raises StoreError saying that
        nothing was changed; the caller aborts the transaction, which deletes the staging.
        """
        final = venv_dir(layout.home, cand.id, cand.version)
        if not is_isolated(cand.manifest):
            txn.delete(final)
            return ()
        self._done += 1
        what = "creating virtual environments"
        if self.progress:
            self.progress(what, self._done - 1, self.todo)
        staged = txn.stage_dir()
        label = f"{cand.id} {cand.version}"
        self._create(staged, label)
        requirements = list(cand.manifest.plugin.python_dependencies)
        if requirements:
            why = f"install the python dependencies of {label} in its virtual environment"
            self.pip.run(
                [
                    "--python",
                    str(_python(staged)),
                    "install",
                    # Compiled below, with the final path in the bytecode.
                    "--no-compile",
                    "--no-warn-script-location",
                    "--disable-pip-version-check",
                    "--progress-bar",
                    "off",
                    *self.pip.source_args(why),
                    *requirements,
                ],
                why,
            )
        site = _site_packages(staged)
        if site is None:
            raise StoreError(
                f"cannot create the virtual environment of {label}: it has no single "
                "lib/python*/site-packages; nothing was changed"
            )
        pins = _pins(site)
        sdk = _sdk()
        try:
            _write_sdk(staged / SDK_FOLDER / sdk.tag, sdk)
            (site / SDK_PTH).write_text(
                os.path.relpath(staged / SDK_FOLDER / sdk.tag, site) + "\n", "utf-8"
            )
            _relocate(staged, final)
        except OSError as exc:
            raise StoreError(
                f"cannot stage the virtual environment of {label} in {txn.folder}: "
                f"{exc.strerror or exc}; nothing was changed (free some space and try again)"
            ) from None
        if self.progress:
            self.progress(what, self._done, self.todo)
        txn.move(staged, final)
        return pins

    def _create(self, staged: Path, label: str) -> None:
        """An empty venv at ``staged``: uv's when it is on PATH and works, else the stdlib's."""
        if self.uv:
            command = [self.uv, "venv", "--quiet", "--no-config", "--python", self.pip.python]
            # uv must never fetch an interpreter: the venv uses the store's own.
            env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
            if _run([*command, str(staged)], env) is None:
                return
            _log.warning("uv could not create the venv of %s; using python -m venv", label)
            shutil.rmtree(staged, ignore_errors=True)
        command = [self.pip.python, "-m", "venv", "--without-pip", str(staged)]
        failure = _run(command, None)
        if failure is not None:
            raise StoreError(
                f"cannot create the virtual environment of {label}: {failure}; "
                "nothing was changed (run with -v to see the details)"
            )


def plan_isolated(
    chosen: Mapping[str, Candidate],
    pip: Pip,
    *,
    progress: Progress | None = None,
    uv: str | None = None,
) -> IsolatedEnvironments:
    """Check, before anything is written, what the isolated plugins of an install need.

    Raises StoreError for a requirement pip could not read, or when requirements must
    be installed offline with no folder of wheels. ``uv`` is the ``uv`` executable to
    create venvs with (default: the one on ``PATH``, if any).
    """
    new = [c for _, c in sorted(chosen.items()) if not c.installed and is_isolated(c.manifest)]
    plan = IsolatedEnvironments(
        pip, todo=len(new), progress=progress, uv=uv if uv is not None else shutil.which("uv")
    )
    for cand in new:
        requirements = cand.manifest.plugin.python_dependencies
        _check_requirements(cand, requirements)
        if requirements:
            pip.source_args(f"install the python dependencies of {cand.id} {cand.version}")
    return plan


def _check_requirements(cand: Candidate, requirements: Sequence[str]) -> None:
    if not requirements:
        return
    from packaging.requirements import InvalidRequirement, Requirement

    for text in requirements:
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            raise StoreError(
                f"{cand.id} {cand.version}: python-dependencies: {text!r} is not a pip "
                f'requirement ({exc}); write it as pip does, e.g. "requests>=2.31"'
            ) from None


def _run(command: Sequence[str], env: Mapping[str, str] | None) -> str | None:
    """Run a tool, its output to the log; None on success, else the reason it failed."""
    from .pydeps import dies_with_us

    _log.info("running %s", shlex.join(command))
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=None if env is None else dict(env),
            check=False,
            preexec_fn=dies_with_us(),
        )
    except OSError as exc:
        return f"{command[0]}: {exc.strerror or exc}"
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    for line in lines:
        _log.info("%s: %s", Path(command[0]).name, line)
    if done.returncode == 0:
        return None
    return lines[-1] if lines else f"{Path(command[0]).name} exited with {done.returncode}"


def _pins(site: Path) -> tuple[str, ...]:
    """``name==version`` of every distribution installed in ``site``, sorted."""
    import importlib.metadata

    from packaging.utils import canonicalize_name

    pins = {
        f"{canonicalize_name(dist.metadata['Name'])}=={dist.version}"
        for dist in importlib.metadata.distributions(path=[str(site)])
        if dist.metadata["Name"]
    }
    return tuple(sorted(pins))


def _relocate(staged: Path, final: Path) -> None:
    """Make a venv built at ``staged`` right at ``final``, where the commit will move it.

    A venv names its own path in ``pyvenv.cfg``, in the ``activate`` scripts and in the
    ``#!`` line of every script pip installed; bytecode names its source files. Python
    itself finds its prefix from where ``bin/python`` is, so nothing else needs it.
    """
    old, new = os.fsencode(staged), os.fsencode(final)
    files = [staged / "pyvenv.cfg"]
    files += [p for p in (staged / "bin").iterdir() if p.is_file() and not p.is_symlink()]
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if old in data:
            path.write_bytes(data.replace(old, new))  # the file keeps its mode
    # Bytecode now, with the final paths in it (tracebacks name real files), rather than
    # at the first start, which would spend the plugin's handshake time compiling.
    command = [str(_python(staged)), "-m", "compileall", "-q", "-j", "0"]
    failure = _run([*command, "-d", str(final), str(staged)], None)
    if failure is not None:
        # Like pip: a file that does not compile (tests of a dependency written for
        # another Python) is not a broken install; it is compiled, or fails, when imported.
        _log.info("compileall: %s", failure)
