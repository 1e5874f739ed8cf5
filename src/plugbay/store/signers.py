"""Who signed each installed version, as the receipts say, without reading every receipt.

``plugbay list`` shows a signature status per installed version. Reading a receipt costs
an open, a read and a decode, some 25 µs on a common disk: a thousand plugins would spend
more on that than on discovering them. So the answer is kept in
``<home>/cache/signers.msgpack``:

- while the store's generation stamp is the one it was written under and the receipts
  folder holds the same file names, it is taken as it is (the store rewrites the stamp in
  every change it commits, decision 0004, as the change's last step: the stamp is read
  first here, so answers gathered during a change are kept under the stamp before it and
  checked again once the new one is read);
- otherwise each receipt is checked with a ``stat`` and read again only if its inode,
  size or modification time differ from what was kept, and the file is written anew.

A receipt edited in place by hand, not through the store, is noticed by ``plugbay
verify`` (which reads every receipt), not here. A missing, damaged or foreign cache file
is ignored; a home that cannot be written only loses the speed-up.
"""

from __future__ import annotations

import os

import msgspec

from .layout import Layout, generation_stamp, read_receipt_file, write_cache_file

__all__ = ["signers"]


class _Entry(msgspec.Struct, array_like=True, frozen=True):
    #: the key id that signed the version; None when it was installed unsigned
    signer: str | None
    #: (inode, size, mtime_ns) of the receipt file when it was read
    key: tuple[int, int, int]


class _Index(msgspec.Struct, array_like=True, frozen=True):
    stamp: bytes
    entries: dict[str, _Entry]


def signers(layout: Layout) -> dict[str, str | None]:
    """The signer of every readable receipt in the home, by receipt file name (see
    :func:`plugbay.store.layout.receipt_name`); None for a version installed unsigned.
    A version without a readable receipt has no entry."""
    stamp = generation_stamp(str(layout.plugins))
    receipts = str(layout.receipts)
    try:
        names = [n for n in os.listdir(receipts) if n.endswith(".json")]
    except OSError:
        return {}
    kept = _read(layout)
    old = kept.entries if kept is not None else {}
    if kept is not None and stamp and kept.stamp == stamp and old.keys() == set(names):
        return {name: entry.signer for name, entry in old.items()}
    entries: dict[str, _Entry] = {}
    for name in names:
        path = os.path.join(receipts, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        entry = old.get(name)
        if entry is None or entry.key != key:
            receipt = read_receipt_file(path)
            if receipt is None:
                continue
            entry = _Entry(receipt.signer, key)
        entries[name] = entry
    if kept is None or kept.stamp != stamp or kept.entries != entries:
        write_cache_file(layout.signers_cache, msgspec.msgpack.encode(_Index(stamp, entries)))
    return {name: entry.signer for name, entry in entries.items()}


def _read(layout: Layout) -> _Index | None:
    try:
        with open(layout.signers_cache, "rb") as f:
            return msgspec.msgpack.decode(f.read(), type=_Index)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
