"""``python -m plugbay`` runs the plugbay command."""

from __future__ import annotations

from .cli import main

main()
