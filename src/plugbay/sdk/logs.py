"""Forwarding the standard library's ``logging`` to the host (imported only when used)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .plugin import Plugin

__all__ = ["LogHandler"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class LogHandler(logging.Handler):
    """Sends each record to the host as a ``log`` notification of ``plugin``.

    The message is the formatted record (with its traceback, if any); ``extra=`` values
    and the logger's name become the notification's ``fields``.
    """

    def __init__(self, plugin: Plugin, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self._plugin = plugin

    def emit(self, record: logging.LogRecord) -> None:
        """Forward one record."""
        try:
            message = self.format(record)
            fields: dict[str, Any] = {
                k: v for k, v in record.__dict__.items() if k not in _STANDARD
            }
            fields["logger"] = record.name
            self._plugin.log.log(_level_name(record.levelno), message, **fields)
        except Exception:  # noqa: BLE001 - logging must never break the plugin
            self.handleError(record)


def _level_name(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"
