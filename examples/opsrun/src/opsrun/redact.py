"""Keeping secrets out of opsrun's output and logs, at every verbosity.

A value is a secret when it sits under a secret-looking name (``password``,
``prism_password``, ``api_token``, ``PRISM_PASSWORD`` in the environment…). Every secret
seen is remembered, and every line opsrun prints or logs is scrubbed of all of them, so a
module that puts one in a message or an exception does not leak it either.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "********"
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api_?key|credential|private_?key", re.IGNORECASE
)


class Redactor:
    """The secrets seen so far, and how to scrub them out of text and values."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._secrets: set[str] = set()
        env = os.environ if environ is None else environ
        for name, value in env.items():
            if SECRET_NAME.search(name):
                self.add(value)

    def add(self, value: Any) -> None:
        """Remember a secret value (text, or anything printed as text)."""
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value)
            if text:
                self._secrets.add(text)

    def collect(self, value: Any, secret: bool = False) -> None:
        """Remember the secrets in a structure: the values under secret-looking names."""
        if isinstance(value, Mapping):
            for key, item in value.items():
                self.collect(item, secret or bool(SECRET_NAME.search(str(key))))
        elif isinstance(value, list | tuple):
            for item in value:
                self.collect(item, secret)
        elif secret:
            self.add(value)

    def text(self, text: str) -> str:
        """``text`` with every known secret masked (longest first: no half-masked secret)."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def value(self, value: Any, secret: bool = False) -> Any:
        """A copy of ``value`` fit to show: secret-named entries masked, text scrubbed."""
        if isinstance(value, Mapping):
            return {
                str(k): self.value(v, secret or bool(SECRET_NAME.search(str(k))))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v, secret) for v in value]
        if secret and value is not None:
            return MASK
        if isinstance(value, str):
            return self.text(value)
        return value


class RedactingFormatter(logging.Formatter):
    """``level [plugin.id] message`` (or the logger's name), scrubbed of every secret."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        plugin = getattr(record, "plugin_id", None)
        where = f"[{plugin}]" if plugin else record.name
        line = f"{record.levelname.lower()} {where}: {super().format(record)}"
        return self.redactor.text(line)
