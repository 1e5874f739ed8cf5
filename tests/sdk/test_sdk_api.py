"""The public surface of plugbay.sdk and the mistakes it refuses, in this process."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import plugbay.sdk
from plugbay.sdk import Plugin, SdkError


def test_the_public_api_is_pinned() -> None:
    assert plugbay.sdk.__all__ == [
        "Call",
        "Cancelled",
        "HostInfo",
        "HostLogger",
        "LogHandler",
        "Plugin",
        "SdkError",
        "cancelled",
        "check_cancelled",
        "current_call",
    ]
    for name in plugbay.sdk.__all__:
        assert getattr(plugbay.sdk, name) is not None
    assert issubclass(plugbay.sdk.LogHandler, logging.Handler)


def test_names_default_to_the_objects_own() -> None:
    plugin = Plugin("t.p", "1.0.0")

    @plugin.command()
    def sync_all(args: list[str]) -> int:
        return 0

    @plugin.hook()
    def on_task(task: Any = None) -> None:
        return None

    @plugin.module()
    class Vm:
        def power(self) -> str:
            return "on"

    ready = plugin.ready()

    assert ready["plugin"] == {"id": "t.p", "version": "1.0.0"}
    assert ready["contributions"] == {
        "command": [{"name": "sync-all"}],
        "hook": [{"name": "on_task"}],
        "module": [{"name": "Vm", "methods": ["power"]}],
    }


def _fn(args: list[str]) -> int:
    return 0


class _Obj:
    def go(self) -> None:
        return None


@pytest.mark.parametrize(
    ("kind", "obj", "options", "words"),
    [
        ("hook", _Obj, {}, "must be a function, not the class _Obj"),
        ("module", _Obj, {"check": ["fly"]}, "check names methods it does not have: fly"),
        ("module", _Obj, {"check_slow": True}, "check_slow must name one of its methods (go)"),
        ("command", _fn, {"check_slow": "go"}, "is a function: its check and check_slow"),
        ("mod:ule", _Obj, {}, "must be a non-empty name without ':'"),
    ],
)
def test_contributions_that_do_not_fit_are_refused(
    kind: str, obj: Any, options: dict[str, Any], words: str
) -> None:
    plugin = Plugin("t.p", "1.0.0")

    with pytest.raises(SdkError) as info:
        plugin.add(kind, "x", obj, **options)

    assert words in str(info.value)


def test_a_name_is_contributed_once_and_only_until_initialize_is_answered() -> None:
    plugin = Plugin("t.p", "1.0.0")
    plugin.add("tool", "x", _fn)

    with pytest.raises(SdkError, match="already contributes tool 'x'"):
        plugin.add("tool", "x", _fn)
    plugin.ready()
    plugin.initialize({"config": {}, "host": {"app": "a"}})
    with pytest.raises(SdkError, match="until initialize is answered"):
        plugin.add("tool", "y", _fn)


@pytest.mark.parametrize(
    ("value", "answer"),
    [
        (None, {"status": "ok"}),
        (True, {"status": "ok"}),
        (False, {"status": "failing", "detail": "health() returned False"}),
        ("slow disk", {"status": "degraded", "detail": "slow disk"}),
        ({"status": "failing", "detail": "x"}, {"status": "failing", "detail": "x"}),
        (
            {"status": "meh"},
            {"status": "degraded", "detail": "health() returned unknown status 'meh'"},
        ),
    ],
)
def test_health_handlers_may_answer_in_the_in_process_style(value: Any, answer: Any) -> None:
    plugin = Plugin("t.p", "1.0.0")
    plugin.on_health(lambda: value)

    assert plugin.health() == answer
