"""``plugbay verify``: installed files against FILES.json, FILES.json against the receipt.

The chain: the receipt (kept outside the plugin folder) pins MANIFEST.json by hash,
MANIFEST.json pins FILES.json, FILES.json pins every file. A consistently rewritten
FILES.json is therefore caught by the receipt.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from .bundle import FILES_JSON, MANIFEST_JSON, SIGNATURE, FilesList, ManifestFile, hash_file
from .layout import Layout

__all__ = ["VerifyReport", "verify"]

# Written by Python when it imports plugin code; not part of what was installed.
_IGNORED_DIRS = frozenset({"__pycache__"})


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
    """Check every installed version (of ``ids``, if given)."""
    wanted = set(ids or ())
    reports = []
    seen: set[str] = set()
    for v in layout.installed():
        if wanted and v.id not in wanted:
            continue
        seen.add(v.id)
        reports.append(_verify_one(layout, v.id, v.version, v.path))
    for missing in sorted(wanted - seen):
        report = VerifyReport(missing, "", "")
        report.errors.append(f"{missing} is not installed by plugbay (run: plugbay list)")
        reports.append(report)
    return reports


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
        path = folder.joinpath(*entry.path.split("/"))
        try:
            st = path.stat()
        except OSError:
            report.missing.append(entry.path)
            continue
        if st.st_size != entry.size or hash_file(path) != entry.sha256:
            report.modified.append(entry.path)
    for rel in _files_under(folder):
        if rel not in listed and rel not in (MANIFEST_JSON, FILES_JSON, SIGNATURE):
            report.extra.append(rel)
    return report


def _files_under(folder: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in _IGNORED_DIRS]
        rel_dir = os.path.relpath(dirpath, folder)
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
            out.append(rel)
    return sorted(out)
