"""Who signed each installed version, kept in <home>/cache/signers.msgpack for listings.

Real installs through the store; what is read from the receipts folder is recorded by
wrapping the one function that reads a receipt file.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from test_signing import bundle_of, make_key, trust

from plugbay.store import Layout, Store
from plugbay.store.layout import GENERATION_FILE, read_receipt_file
from plugbay.store.signers import signers


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The receipt files signers() reads, by name, in order."""
    seen: list[str] = []

    def recording(path: str | Path) -> object:
        seen.append(Path(path).name)
        return read_receipt_file(path)

    monkeypatch.setattr("plugbay.store.signers.read_receipt_file", recording)
    return seen


def test_listings_read_receipts_again_only_when_the_store_changed_them(
    home: Path, tmp_path: Path, reads: list[str]
) -> None:
    key, public = make_key(tmp_path, "acme")
    trust(home, public, "acme", "tools")
    store = Store(home)
    store.install(
        [str(bundle_of(tmp_path, key=key)), str(bundle_of(tmp_path, "tools.fmt", "1.0.0"))]
    )
    layout = Layout(home)
    both = {"acme.nutanix-0.1.0.json": key.id, "tools.fmt-1.0.0.json": None}

    assert signers(layout) == both
    assert sorted(reads) == sorted(both)
    reads.clear()
    assert signers(layout) == both
    assert reads == []  # all from the cache file: the stamp and the names are the same

    # A receipt removed by hand is gone at once; nothing else is read again.
    (home / "receipts" / "tools.fmt-1.0.0.json").unlink()
    assert signers(layout) == {"acme.nutanix-0.1.0.json": key.id}
    assert reads == []

    # A change by the store: only the receipts it wrote are read.
    store.install([str(bundle_of(tmp_path, "tools.lint", "2.0.0"))])
    assert signers(layout) == {"acme.nutanix-0.1.0.json": key.id, "tools.lint-2.0.0.json": None}
    assert reads == ["tools.lint-2.0.0.json"]

    # The same version again, now signed: its receipt is replaced, and read again.
    reads.clear()
    signed = bundle_of(tmp_path, "tools.lint", "2.0.0", key=key)
    outcome = store.install([str(signed)], force=True)
    assert [c.action for c in outcome.changes] == ["reinstall"]
    assert signers(layout)["tools.lint-2.0.0.json"] == key.id
    assert reads == ["tools.lint-2.0.0.json"]


def test_without_a_generation_stamp_every_receipt_is_checked(
    home: Path, tmp_path: Path, reads: list[str]
) -> None:
    """Receipts the store did not stamp (a home copied or put together by hand) are each
    compared with what was kept: one rewritten in place is noticed."""
    key, _ = make_key(tmp_path, "acme")
    Store(home).install([str(bundle_of(tmp_path, "tools.fmt", "1.0.0"))])
    (home / "plugins" / GENERATION_FILE).unlink()
    layout = Layout(home)
    assert signers(layout) == {"tools.fmt-1.0.0.json": None}

    receipt = home / "receipts" / "tools.fmt-1.0.0.json"
    doc = msgspec.json.decode(receipt.read_bytes())
    receipt.write_bytes(msgspec.json.encode({**doc, "signer": key.id}))
    reads.clear()
    assert signers(layout) == {"tools.fmt-1.0.0.json": key.id}
    assert reads == ["tools.fmt-1.0.0.json"]


def test_a_damaged_or_unwritable_cache_file_costs_only_speed(
    home: Path, tmp_path: Path, reads: list[str]
) -> None:
    key, public = make_key(tmp_path, "acme")
    trust(home, public, "acme")
    Store(home).install([str(bundle_of(tmp_path, key=key))])
    layout = Layout(home)
    expected = {"acme.nutanix-0.1.0.json": key.id}

    layout.signers_cache.parent.mkdir(exist_ok=True)
    layout.signers_cache.write_bytes(b"\x93not a cache")
    assert signers(layout) == expected
    reads.clear()
    assert signers(layout) == expected
    assert reads == []  # written anew

    layout.signers_cache.unlink()
    layout.signers_cache.mkdir()  # cannot be read nor replaced
    for _ in range(2):
        reads.clear()
        assert signers(layout) == expected
        assert reads == ["acme.nutanix-0.1.0.json"]


def test_a_home_without_receipts_has_no_signers(home: Path) -> None:
    assert signers(Layout(home)) == {}
    assert not Layout(home).signers_cache.exists()


def test_the_generation_stamp_is_the_last_step_of_a_change(home: Path, tmp_path: Path) -> None:
    """What the fast path relies on: once the new stamp can be read, so can every receipt
    of the change (a journal's steps are applied in order)."""
    from plugbay.store import transaction

    applied: list[str] = []
    real = transaction._apply

    def recording(op: str, src: Path, dst: Path) -> None:
        applied.append((src if op == "discard" else dst).name)  # a discard moves src away
        real(op, src, dst)

    store = Store(home)
    store.install([str(bundle_of(tmp_path, "tools.fmt", "1.0.0"))])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transaction, "_apply", recording)
        store.install([str(bundle_of(tmp_path, "tools.lint", "2.0.0"))])
        assert applied[-1] == GENERATION_FILE
        assert "tools.lint-2.0.0.json" in applied[:-1]
        applied.clear()
        store.remove(["tools.fmt"])
        assert applied[-1] == GENERATION_FILE
        assert "tools.fmt-1.0.0.json" in applied[:-1]
