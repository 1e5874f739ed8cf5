"""``plugbay push``: a bundle to an OCI registry (docs/oci.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import render

if TYPE_CHECKING:
    from .app import Settings

Run = Callable[[click.Context, Callable[["Settings"], "int | None"]], None]


def add_oci_commands(group: click.Group, options: Callable[[Any], Any], run: Run) -> None:
    """The ``push`` command."""

    @group.command("push")
    @click.argument("bundle", type=click.Path(dir_okay=False))
    @click.argument("url", metavar="oci://HOST[:PORT]/REPO")
    @click.option(
        "--force",
        is_flag=True,
        help="Replace the tag when it already holds another bundle (versions are meant to be "
        "published once).",
    )
    @click.option(
        "--plain-http",
        is_flag=True,
        help="Talk plain HTTP to the registry (loopback registries and those in [oci] "
        "insecure-registries always are).",
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=30.0,
        show_default=True,
        help="Seconds to wait for each answer of the registry.",
    )
    @options
    @click.pass_context
    def push(
        ctx: click.Context, bundle: str, url: str, *, force: bool, plain_http: bool, timeout: float
    ) -> None:
        """Push BUNDLE to an OCI registry, as REPO/<ns.name>:<version>."""
        run(
            ctx,
            lambda s: push_bundle(
                s, Path(bundle), url, force=force, plain_http=plain_http, timeout=timeout
            ),
        )


def push_bundle(
    settings: Settings,
    bundle: Path,
    url: str,
    *,
    force: bool,
    plain_http: bool,
    timeout: float,
) -> int:
    from ..config import home_for
    from ..errors import SourceError
    from ..store.oci import push_bundle as push

    if settings.offline:
        raise SourceError(url, "pushing needs the network, which --offline forbids: drop --offline")
    if not bundle.is_file():
        raise SourceError(str(bundle), "no such bundle file (build one with plugbay build DIR)")
    pushed = push(
        bundle,
        url,
        home=home_for(settings.app, settings.home),
        plain_http=plain_http,
        force=force,
        timeout=timeout,
    )
    if settings.json:
        render.emit_json(
            {
                "reference": pushed.reference,
                "digest": pushed.digest,
                "id": pushed.id,
                "version": pushed.version,
                "sha256": pushed.sha256,
                "signer": pushed.signer,
                "unchanged": pushed.unchanged,
            }
        )
    elif not settings.quiet:
        signed = f", signed by {pushed.signer}" if pushed.signer else ""
        if pushed.unchanged:
            render.line(
                f"{pushed.reference} already holds this bundle ({pushed.digest}): nothing to push"
            )
        else:
            render.line(
                f"pushed {pushed.id} {pushed.version} to {pushed.reference} "
                f"({pushed.digest}{signed})"
            )
    return 0
