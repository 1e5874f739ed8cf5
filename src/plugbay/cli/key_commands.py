"""The ``key`` commands and ``sign``: Ed25519 keys, the keyring, and signed bundles.

``plugbay key generate [NAME] [-o DIR]``, ``plugbay key trust FILE|ID --namespace NS…``,
``plugbay key untrust ID [--namespace NS…]``, ``plugbay key list`` and
``plugbay sign BUNDLE… --key KEY [-o DIR]``. What keys, signatures and the keyring are is
:mod:`plugbay.store.signing`; what the policy does with them, :mod:`plugbay.store.trust`.
Nothing here imports ``cryptography`` until a command that needs it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import render

if TYPE_CHECKING:
    from ..store.layout import Layout
    from ..store.signing import TrustedKey
    from .app import Settings

__all__ = ["add_key_commands"]

Run = Callable[[click.Context, Callable[["Settings"], "int | None"]], None]

_NAMESPACE_HELP = "A namespace the key may sign for (repeat for several; '*' for any)."


def add_key_commands(group: click.Group, options: Callable[[Any], Any], run: Run) -> None:
    """Add ``key`` (generate, trust, untrust, list) and ``sign`` to ``group``; ``run`` runs
    a command body (app._run)."""

    @group.group("key")
    @options
    def key() -> None:
        """Ed25519 signing keys, and the keys this home trusts."""

    @key.command("generate")
    @click.argument("name", default="signing")
    @click.option(
        "-o",
        "--out",
        type=click.Path(file_okay=False),
        help="Folder to write NAME.key and NAME.pub into (default: the current folder).",
    )
    @options
    @click.pass_context
    def generate_(ctx: click.Context, name: str, out: str | None) -> None:
        """Make a key pair: NAME.key (private, mode 0600) and NAME.pub (public)."""
        run(ctx, lambda s: generate(s, name, Path(out) if out else Path.cwd()))

    @key.command("trust")
    @click.argument("key_ref", metavar="FILE|ID")
    @click.option("-n", "--namespace", "namespaces", multiple=True, help=_NAMESPACE_HELP)
    @options
    @click.pass_context
    def trust_(ctx: click.Context, key_ref: str, namespaces: tuple[str, ...]) -> None:
        """Trust a public key (a NAME.pub file, or the id of a key in the keyring) to sign
        plugins of the given namespaces."""
        if not namespaces:
            raise click.UsageError(
                "say which namespaces the key may sign for: --namespace NS (repeat it for "
                "several), or --namespace '*' for any",
                ctx,
            )
        run(ctx, lambda s: trust(s, key_ref, list(namespaces)))

    @key.command("untrust")
    @click.argument("key_ref", metavar="ID")
    @click.option(
        "-n",
        "--namespace",
        "namespaces",
        multiple=True,
        help="Only stop trusting it for this namespace (repeat for several).",
    )
    @options
    @click.pass_context
    def untrust_(ctx: click.Context, key_ref: str, namespaces: tuple[str, ...]) -> None:
        """Stop trusting a key (id, id prefix or name), or only for some namespaces."""
        run(ctx, lambda s: untrust(s, key_ref, list(namespaces)))

    @key.command("list")
    @options
    @click.pass_context
    def list_(ctx: click.Context) -> None:
        """The trusted keys: id, name, namespaces each may sign for."""
        run(ctx, list_keys)

    @group.command("sign")
    @click.argument("bundles", nargs=-1, required=True, type=click.Path(dir_okay=False))
    @click.option(
        "-k",
        "--key",
        "key_file",
        required=True,
        type=click.Path(dir_okay=False),
        help="The private key file (NAME.key from plugbay key generate).",
    )
    @click.option(
        "-o",
        "--out",
        type=click.Path(file_okay=False),
        help="Write the signed bundles into this folder instead of replacing them.",
    )
    @options
    @click.pass_context
    def sign_(ctx: click.Context, bundles: tuple[str, ...], key_file: str, out: str | None) -> None:
        """Sign bundles: add (or replace) their MANIFEST.json.sig."""
        run(ctx, lambda s: sign(s, [Path(b) for b in bundles], Path(key_file), out))


# ---------------------------------------------------------------- bodies


def _layout(settings: Settings) -> Layout:
    from ..config import home_for
    from ..store.layout import Layout

    return Layout(home_for(settings.app, settings.home))


def generate(settings: Settings, name: str, folder: Path) -> int:
    from ..store.signing import generate_key

    key, public = generate_key(folder, name)
    if settings.json:
        render.emit_json({"id": key.id, "private": key.path, "public": str(public)})
    elif not settings.quiet:
        render.line(f"key {key.id}")
        render.line(f"  private: {key.path} (mode 0600: sign with it; never ship or share it)")
        render.line(f"  public:  {public} (give it to users, who trust it with:")
        render.line(f"           plugbay key trust {public.name} --namespace NAMESPACE)")
    return 0


def trust(settings: Settings, ref: str, namespaces: list[str]) -> int:
    import os

    from ..errors import KeyringError
    from ..store.signing import Keyring, PublicKey, find_key, load_public_key

    layout = _layout(settings)
    keyring = Keyring.load(layout.home)
    path = Path(ref)
    if path.is_file():
        public, name = load_public_key(path), path.stem
    else:
        # Not a file: a key in the keyring already, to trust for more namespaces.
        try:
            known = find_key(keyring, ref)
        except KeyringError:
            if ref.endswith(".pub") or os.sep in ref:
                raise KeyringError(
                    ref, "no such file (give the NAME.pub file, or the id of a trusted key)"
                ) from None
            raise
        public, name = keyring.public_key(known.id), known.name
    assert isinstance(public, PublicKey)
    entry, added = keyring.trust(layout, public, name, namespaces)
    if settings.json:
        render.emit_json({"key": _key_doc(entry, keyring.folder), "added": added})
        return 0
    label = _label(entry)
    if added:
        if not settings.quiet:
            render.line(f"trust key {label} for namespace {', '.join(added)}")
    elif not settings.quiet:
        render.line(f"nothing to trust: key {label} is already trusted for {', '.join(namespaces)}")
    if settings.verbose:
        render.line(f"  {label} may sign for: {', '.join(entry.namespaces)}")
    return 0


def untrust(settings: Settings, ref: str, namespaces: list[str]) -> int:
    from ..store.signing import Keyring

    layout = _layout(settings)
    keyring = Keyring.load(layout.home)
    before, after = keyring.untrust(layout, ref, namespaces)
    if settings.json:
        render.emit_json(
            {
                "removed": after is None,
                "key": _key_doc(after or before, keyring.folder),
            }
        )
        return 0
    if settings.quiet:
        return 0
    label = _label(before)
    if after is None:
        render.line(f"untrust key {label}: it is no longer in the keyring")
    elif after == before:
        render.line(f"nothing to untrust: key {label} is not trusted for {', '.join(namespaces)}")
    else:
        gone = [ns for ns in before.namespaces if ns not in after.namespaces]
        render.line(f"untrust key {label} for namespace {', '.join(gone)}")
    return 0


def list_keys(settings: Settings) -> int:
    from ..store.signing import Keyring

    keyring = Keyring.load(_layout(settings).home)
    keys = [keyring.keys[k] for k in sorted(keyring.keys)]
    if settings.json:
        render.emit_json(
            {"folder": str(keyring.folder), "keys": [_key_doc(k, keyring.folder) for k in keys]}
        )
        return 0
    if not keys:
        if not settings.quiet:
            render.line(
                f"no trusted keys in {keyring.folder} "
                "(trust one with: plugbay key trust FILE --namespace NS)"
            )
        return 0
    render.table(
        ["ID", "NAME", "NAMESPACES", "ADDED"],
        [[k.id, k.name or "-", ", ".join(k.namespaces), k.added or "-"] for k in keys],
    )
    return 0


def sign(settings: Settings, bundles: list[Path], key_file: Path, out: str | None) -> int:
    from ..store.signing import load_signing_key, sign_bundle

    key = load_signing_key(key_file)
    signed = [sign_bundle(b, key, Path(out) if out else None) for b in bundles]
    if settings.json:
        render.emit_json({"key": key.id, "bundles": [str(p) for p in signed]})
    elif not settings.quiet:
        for path in signed:
            render.line(f"signed {path} with key {key.id}")
    return 0


def _label(key: TrustedKey) -> str:
    return f"{key.id} ({key.name})" if key.name else key.id


def _key_doc(key: TrustedKey, folder: Path) -> dict[str, Any]:
    from ..store.signing import as_document

    return as_document(key, folder)
