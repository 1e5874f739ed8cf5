"""``plugbay verify``: installed files against FILES.json, FILES.json against the receipt.

The chain: the receipt (kept outside the plugin folder) pins MANIFEST.json by hash,
MANIFEST.json pins FILES.json, FILES.json pins every file. A consistently rewritten
FILES.json is therefore caught by the receipt.

Python's own ``__pycache__/*.pyc`` files, written when the plugin is imported, are not
reported as extra; anything else found beside the listed files is.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from .bundle import FILES_JSON, MANIFEST_JSON, SIGNATURE, FilesList, ManifestFile
from .layout import Layout, Receipt

__all__ = ["VerifyReport", "verify"]

# Written by Python when it imports plugin code; not part of what was installed.
_PYCACHE = "__pycache__"
_PYCACHE_FILES = ("*.pyc", "*.pyo")


@dataclass
class VerifyReport:
    """One installed version: what is wrong with it (nothing, when ``ok``)."""

    id: str
    version: str
    path: str
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.modified or self.missing or self.extra or self.errors)


def verify(layout: Layout, ids: list[str] | None = None) -> list[VerifyReport]:
    """Check every installed version (of ``ids``, if given).

    A receipt whose version folder is gone (or lost its MANIFEST.json) is reported too.
    """
    wanted = set(ids or ())
    reports = []
    seen: set[str] = set()
    checked: set[tuple[str, str]] = set()
    for v in layout.installed():
        if wanted and v.id not in wanted:
            continue
        seen.add(v.id)
        checked.add((v.id, v.version))
        reports.append(_verify_one(layout, v.id, v.version, v.path))
    for receipt in _receipts(layout):
        if (wanted and receipt.id not in wanted) or (receipt.id, receipt.version) in checked:
            continue
        seen.add(receipt.id)
        folder = layout.version_dir(receipt.id, receipt.version)
        report = VerifyReport(receipt.id, receipt.version, str(folder))
        if folder.is_dir():
            report.missing.append(MANIFEST_JSON)
        else:
            report.errors.append(
                f"its receipt {layout.receipt_path(receipt.id, receipt.version)} remains, "
                f"but its folder {folder} is gone (reinstall it, or remove it)"
            )
        reports.append(report)
    for missing in sorted(wanted - seen):
        report = VerifyReport(missing, "", "")
        report.errors.append(f"{missing} is not installed by plugbay (run: plugbay list)")
        reports.append(report)
    return reports


def _receipts(layout: Layout) -> list[Receipt]:
    try:
        names = sorted(os.listdir(layout.receipts))
    except OSError:
        return []
    out = []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            receipt = msgspec.json.decode((layout.receipts / name).read_bytes(), type=Receipt)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue  # not one of ours; a receipt an installed version misses is reported there
        if name == layout.receipt_path(receipt.id, receipt.version).name:
            out.append(receipt)
    return out


def _verify_one(layout: Layout, plugin_id: str, version: str, folder: Path) -> VerifyReport:
    report = VerifyReport(plugin_id, version, str(folder))
    receipt = layout.read_receipt(plugin_id, version)
    try:
        manifest_bytes = (folder / MANIFEST_JSON).read_bytes()
        files_bytes = (folder / FILES_JSON).read_bytes()
    except OSError as exc:
        report.errors.append(f"cannot read its metadata: {exc.strerror or exc}")
        return report
    if receipt is None:
        report.errors.append(
            f"its receipt {layout.receipt_path(plugin_id, version)} is missing or unreadable"
        )
    elif hashlib.sha256(manifest_bytes).hexdigest() != receipt.manifest_sha256:
        report.modified.append(MANIFEST_JSON)
    try:
        mfile = msgspec.json.decode(manifest_bytes, type=ManifestFile)
        files = msgspec.json.decode(files_bytes, type=FilesList).files
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        report.errors.append(f"its metadata is corrupt: {exc}")
        return report
    if hashlib.sha256(files_bytes).hexdigest() != mfile.files_sha256:
        report.modified.append(FILES_JSON)
    listed = set()
    for entry in files:
        listed.add(entry.path)
        parts = entry.path.split("/")
        if entry.path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            report.errors.append(f"{FILES_JSON} lists {entry.path!r}, a path outside the folder")
            continue
        path = os.path.join(folder, *parts)
        try:
            # O_NOFOLLOW: a link where a file was installed is a change, whatever it points to.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            report.missing.append(entry.path)
            continue
        except OSError:
            report.modified.append(entry.path)  # a link (ELOOP), a folder, unreadable
            continue
        with open(fd, "rb", buffering=0) as f:
            st = os.fstat(fd)
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_size != entry.size
                or hashlib.file_digest(f, "sha256").hexdigest() != entry.sha256
            ):
                report.modified.append(entry.path)
    for rel in _files_under(folder):
        if rel not in listed and rel not in (MANIFEST_JSON, FILES_JSON, SIGNATURE):
            report.extra.append(rel)
    return report


def _files_under(folder: Path) -> list[str]:
    """Every file (and link to a folder, which is not followed) below ``folder``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        rel_dir = os.path.relpath(dirpath, folder)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        in_pycache = os.path.basename(dirpath) == _PYCACHE
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                out.append(prefix + name)
        for name in filenames:
            if in_pycache and any(fnmatch.fnmatch(name, g) for g in _PYCACHE_FILES):
                continue
            out.append(prefix + name)
    return sorted(out)
