"""Hooks: host-declared specs, plugin implementations, ordered dispatch.

A host declares each hook once (:meth:`Hooks.declare`); plugins implement hooks through
``[[contributes.hook]]`` entries, whatever their runtime: an implementation is any callable
taking the spec's arguments (or a subset of them, by name; ``**kwargs`` takes them all, and
an argument with a default gets the call's value when the spec has one by that name).

Order of implementations: higher ``priority`` first; then the ``before``/``after`` lists
of plugin ids are honoured; then ties are broken by plugin id. A cycle among
``before``/``after`` is reported as a problem and those constraints are dropped (the hook
still runs, in priority and id order). Wrappers (``wrapper = true``) are generator
functions that run around all other implementations: the code before their ``yield`` runs
first (the first wrapper in order is the outermost), the ``yield`` returns the result or
raises the error, and what the wrapper returns becomes the result.

Dispatch is compiled: at the first call after the set of implementations changes, a small
function specialised for that hook's arguments and implementations is generated, so a call
costs a plain function call per implementation. A few implementations are each called on
lines of their own; more of them are called in a loop, so that compiling stays cheap (for
thousands of plugins too). The generated source names no implementation, so hooks of the
same shape are compiled once.
"""

from __future__ import annotations

import heapq
import keyword
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from difflib import get_close_matches
from operator import attrgetter
from types import CodeType, FunctionType, MethodType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import msgspec

from .discovery import Problem
from .errors import HookCallError, HookSpecError, PluginError

if TYPE_CHECKING:
    from .metrics import ContributionStats, Metrics

__all__ = [
    "LIFECYCLE_HOOKS",
    "HookCallError",
    "HookCaller",
    "HookImpl",
    "HookResults",
    "HookSpec",
    "HookSpecError",
    "Hooks",
]

OnError = Literal["raise", "collect"]


class HookSpec(msgspec.Struct, frozen=True, gc=False):
    """What a host promises to call: name, argument names, and how results combine.

    - ``args``: the keyword arguments every call passes; Python identifiers that are not
      keywords and do not start with ``_`` (those names are the dispatcher's own).
    - ``firstresult``: stop at the first implementation that returns something other
      than None, and return that value (None if none did).
    - ``historic``: remember every call and replay it to implementations added later.
    - ``concurrent``: ``acall`` awaits async implementations together, not one by one.
    - ``on_error``: ``"raise"`` stops at the first failing implementation and raises
      :class:`HookCallError`; ``"collect"`` calls every implementation and returns
      :class:`HookResults` with the results and the errors (a wrapper's own failure
      still ends the call: wrappers decide what the outcome is).
    - ``timeout``: seconds each async implementation may take in ``acall``.
    """

    name: str
    args: tuple[str, ...] = ()
    firstresult: bool = False
    historic: bool = False
    concurrent: bool = False
    on_error: OnError = "raise"
    timeout: float | None = None
    doc: str = ""


class HookResults(msgspec.Struct, frozen=True):
    """What a hook with ``on_error = "collect"`` returns."""

    results: list[Any]
    errors: list[HookCallError]

    @property
    def ok(self) -> bool:
        return not self.errors


class HookImpl(msgspec.Struct, eq=False):
    """One implementation of one hook, by one plugin.

    ``function`` is the callable, or None until ``resolve`` (called on the first call of
    the hook) returns it: that is how lazy plugins are loaded on first use.
    """

    hook: str
    plugin_id: str
    function: Callable[..., Any] | None = None
    priority: int = 0
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    wrapper: bool = False
    #: loads the plugin and returns the function; None means "not now" (the host is
    #: stopping, say): the implementation is skipped this time, silently.
    resolve: Callable[[], Callable[..., Any] | None] | None = None
    #: the spec arguments it is called with (None: not checked yet, pass them all)
    argnames: tuple[str, ...] | None = None
    takes_kwargs: bool = False
    #: how many of ``argnames`` may be passed by position
    positional: int = 0
    #: False only when the function is known to be a plain, non-async function
    maybe_async: bool = True
    #: where a host finds ``function``: the manifest's ``module:attr``, or None for the
    #: plugin object's method named like the hook
    entry: str | None = None

    def __repr__(self) -> str:
        # ``resolve`` (a closure over the host) is left out.
        shown = (f"{n}={getattr(self, n)!r}" for n in self.__struct_fields__ if n != "resolve")
        return f"{type(self).__qualname__}({', '.join(shown)})"


# The host's own lifecycle events, declared on every host. A subscriber that raises is
# logged by the host and never stops the lifecycle, hence "collect".
LIFECYCLE_HOOKS = tuple(
    HookSpec(name, args, on_error="collect", doc=doc)
    for name, args, doc in (
        ("host_start", ("host",), "The host has started (eager plugins are loaded)."),
        ("host_stop", ("host",), "The host is about to stop its plugins."),
        ("plugin_loaded", ("plugin_id", "version"), "A plugin has started."),
        ("plugin_failed", ("plugin_id", "reason"), "A plugin failed to load or run."),
        ("plugin_unloaded", ("plugin_id",), "A plugin was stopped and unloaded."),
        ("before_reload", ("plugin_id",), "A plugin is about to be reloaded."),
        ("after_reload", ("plugin_id", "ok", "error"), "A reload has finished."),
    )
)

Tracer = Callable[[str, str, str | None, dict[str, Any], Any, float], None]

# Code object flags (see the inspect module).
_CO_GENERATOR = 0x20
_CO_ASYNC = 0x80 | 0x100 | 0x200  # coroutine, iterable coroutine, async generator
_CO_VARKEYWORDS = 0x08


class Signature(NamedTuple):
    """What calling an implementation needs (see :func:`signature_of`)."""

    required: tuple[str, ...]  # positional ones first, then keyword-only ones
    positional: int  # how many of ``required`` may go by position
    takes_kwargs: bool
    maybe_async: bool
    optional: tuple[str, ...]  # names with a default: passed when the spec provides them


def signature_of(function: Callable[..., Any]) -> Signature:
    """What calling ``function`` needs: argument names, by position or not, ``**kwargs``,
    and whether it may return an awaitable.

    Reads the code object directly for plain functions and methods (fast); anything else
    goes through :func:`inspect.signature`.
    """
    return Signature(*_signature(function))


def _signature(
    function: Callable[..., Any],
) -> tuple[tuple[str, ...], int, bool, bool, tuple[str, ...]]:
    """:func:`signature_of` as a plain tuple (cheaper: registering runs this a lot)."""
    if type(function) is FunctionType:  # the common case first
        return _code_signature(function, function.__code__, 0)
    if type(function) is MethodType and type(function.__func__) is FunctionType:
        return _code_signature(function.__func__, function.__func__.__code__, 1)
    target = getattr(function, "__func__", function)
    code = getattr(target, "__code__", None)
    if code is not None and not isinstance(target, type):
        return _code_signature(target, code, 1 if hasattr(function, "__self__") else 0)
    import inspect

    every = inspect.signature(function).parameters.values()
    params = [p for p in every if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return (
        tuple(p.name for p in params if p.default is p.empty),
        0,
        any(p.kind is p.VAR_KEYWORD for p in every),
        True,
        tuple(p.name for p in params if p.default is not p.empty),
    )


def _code_signature(
    target: Any, code: CodeType, bound: int
) -> tuple[tuple[str, ...], int, bool, bool, tuple[str, ...]]:
    """:func:`_signature` read from a code object; ``bound``: 1 for a bound method."""
    argcount = code.co_argcount
    names = code.co_varnames[: argcount + code.co_kwonlyargcount]
    defaults = getattr(target, "__defaults__", None)
    first_default = argcount - len(defaults) if defaults else argcount
    first_default = max(first_default, bound)
    positional = names[bound:first_default]
    flags = code.co_flags
    if len(names) == argcount:  # no keyword-only arguments
        required, optional = positional, names[first_default:]
    else:
        kwonly_defaults = getattr(target, "__kwdefaults__", None) or {}
        kwonly = names[argcount:]
        required = (*positional, *(n for n in kwonly if n not in kwonly_defaults))
        optional = (*names[first_default:argcount], *(n for n in kwonly if n in kwonly_defaults))
    return (
        required,
        len(positional),
        bool(flags & _CO_VARKEYWORDS),
        bool(flags & _CO_ASYNC),
        optional,
    )


def _is_generator_function(function: Callable[..., Any]) -> bool | None:
    """True or False when the code object tells; None for callables that do not show it."""
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    return None if code is None else bool(code.co_flags & _CO_GENERATOR)


class HookCaller:
    """Calls every implementation of one hook: ``hooks.name(**kwargs)``."""

    def __init__(self, spec: HookSpec, hooks: Hooks) -> None:
        self.spec = spec
        self.name = spec.name
        self._hooks = hooks
        self._impls: list[HookImpl] = []
        # The dispatcher: ``_compiled`` is what __call__ uses directly; historic hooks keep
        # theirs in ``_ready`` only, as each of their calls must also be recorded.
        self._compiled: Callable[..., Any] | None = None
        self._ready: Callable[..., Any] | None = None
        self._ordered: tuple[HookImpl, ...] | None = None
        # Bumped by every change, so that a dispatcher built from an older set of
        # implementations (one that changed while a lazy plugin loaded) is never kept.
        self._version = 0
        self._history: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        # Metrics on: the globals of the dispatchers that count calls (see _flush_metrics).
        # Each: [globals, dispatcher, the count (its ``_n``) already flushed, timed twin].
        self._measured: list[list[Any]] = []

    # ------------------------------------------------------------ registration

    def _add(self, impl: HookImpl) -> None:
        with self._lock:
            self._impls.append(impl)
            self._compiled = self._ready = None  # as _invalidate() does, inline: it is hot
            self._ordered = None
            self._version += 1
        if self.spec.historic and self._history:
            self._replay(impl)

    def _remove(self, plugin_id: str) -> int:
        with self._lock:
            before = len(self._impls)
            self._impls = [i for i in self._impls if i.plugin_id != plugin_id]
            removed = before - len(self._impls)
            if removed:
                self._invalidate()
            return removed

    def _invalidate(self) -> None:
        with self._lock:
            self._compiled = self._ready = None
            self._ordered = None
            self._version += 1

    def implementations(self) -> list[HookImpl]:
        """The implementations in call order (wrappers first, outermost first)."""
        return list(self._order())

    def _order(self) -> tuple[HookImpl, ...]:
        ordered = self._ordered
        if ordered is None:
            with self._lock:
                wrappers = _ordered_impls(
                    [i for i in self._impls if i.wrapper], self._hooks, self.name
                )
                plain = _ordered_impls(
                    [i for i in self._impls if not i.wrapper], self._hooks, self.name
                )
                ordered = self._ordered = (*wrappers, *plain)
        return ordered

    # ------------------------------------------------------------ calling

    def __call__(self, /, **kwargs: Any) -> Any:
        """Call the implementations in order; see :class:`HookSpec` for the result."""
        fn = self._compiled
        if fn is None:
            return self._call_slowly(kwargs)
        try:
            return fn(**kwargs)
        except TypeError:
            # Implementations' errors arrive as HookCallError, so a TypeError here is the
            # generated function refusing the arguments: say how to call the hook instead.
            problem = _arg_problem(self.spec, kwargs)
            if problem is None:
                raise
            raise HookSpecError(problem) from None

    def _call_slowly(self, kwargs: dict[str, Any]) -> Any:
        """First call after a change, traced calls and historic hooks come through here."""
        fn = self._ready
        if fn is None:
            fn = self._prepare(kwargs)
        else:
            problem = _arg_problem(self.spec, kwargs)
            if problem is not None:
                raise HookSpecError(problem)
        if self.spec.historic:
            with self._lock:
                self._history.append(dict(kwargs))
        return fn(**kwargs)

    def _prepare(self, kwargs: dict[str, Any]) -> Callable[..., Any]:
        problem = _arg_problem(self.spec, kwargs)
        if problem is not None:
            raise HookSpecError(problem)
        impls, version, complete = self._bound()
        tracer = self._hooks._tracer
        if tracer is not None:
            return lambda **kw: self._traced(impls, kw, tracer)
        metrics = self._hooks._metrics
        if metrics is None:
            fn = _compile(self.spec, impls, None, self._hooks._code)
        else:
            fn = self._compile_measured(impls, metrics)
        with self._lock:
            # Kept only if nothing changed meanwhile and no implementation was skipped (a
            # plugin still loading, or one that failed to, is tried again on the next call).
            if complete and version == self._version:
                self._ready = fn
                if not self.spec.historic:
                    self._compiled = fn
                    if metrics is not None:
                        self._arm()  # the first calls are timed
        return fn

    def _compile_measured(self, impls: list[HookImpl], metrics: Metrics) -> Callable[..., Any]:
        """A dispatcher that counts its calls, and a twin whose implementations are timed
        (see :meth:`_arm`)."""
        self._flush_metrics()  # the dispatchers it replaces count no more
        plain = [i for i in impls if not i.wrapper]
        stats = tuple(metrics.contribution(i.plugin_id, "hook", self.name) for i in plain)
        wrapper_stats = tuple(
            metrics.contribution(i.plugin_id, "hook", self.name) for i in impls if i.wrapper
        )
        stops = [0] * len(plain)
        failed = _failure_recorder(stats, stops, self.spec.on_error == "raise")
        timed = [
            i if i.wrapper else msgspec.structs.replace(i, function=_timed(i.function, stats[n]))
            for n, i in enumerate(i for i in impls if not i.wrapper)
        ]
        timed = [*(i for i in impls if i.wrapper), *timed]
        code = self._hooks._code
        twin = _compile(self.spec, timed, None, code, _Measure(stats, stops, failed, False))
        fn = _compile(self.spec, impls, None, code, _Measure(stats, stops, failed, True))
        env = fn.__globals__
        env["_wst"] = wrapper_stats
        with self._lock:
            self._measured.append([env, fn, env["_n"], twin])
        return fn

    def _flush_metrics(self) -> None:
        """Add the calls the dispatchers counted to each implementation's stats.

        A call that stopped early (an error with on_error "raise", or firstresult) did not
        reach the implementations after the one it stopped at: ``_stops`` says where.
        """
        with self._lock:  # two snapshots at once must not both take the same counts
            measured = self._measured
            self._measured = [m for m in measured if m[1] is self._ready]
            for m in measured:
                env = m[0]
                now = env["_n"]  # only read: the dispatcher may be counting meanwhile
                n, m[2] = now - m[2], now
                # Subtracted rather than reset, for the same reason.
                stops = env["_stops"]
                taken = list(stops)
                for i, count in enumerate(taken):
                    stops[i] -= count
                reached = n
                for stats, stopped in zip(env["_st"], taken, strict=True):
                    stats.calls += reached
                    reached -= stopped
                for stats in env["_wst"]:
                    stats.calls += n
        self._arm()  # the next calls are timed: a sample after each snapshot

    def _arm(self) -> None:
        """Let the next SAMPLE_BURST calls go through the timed twin of the dispatcher.

        The twin is swapped in for those calls, so that the dispatcher itself never has to
        ask whether to time a call (that test would cost more than the counting).
        """
        from .metrics import SAMPLE_BURST

        with self._lock:
            main = self._compiled
            current = next((m for m in self._measured if m[1] is main), None)
            if main is None or current is None:
                return  # not compiled now, or a burst is under way
            env, twin = current[0], current[3]
            left = [SAMPLE_BURST]

            def sampled(**kwargs: Any) -> Any:
                env["_n"] += 1  # counted like the dispatcher's own calls
                left[0] -= 1
                if left[0] <= 0:  # <=: two threads may both have passed 0
                    with self._lock:
                        # Only if nothing changed meanwhile: never bring back a stale one.
                        if self._compiled is sampled:
                            self._compiled = main
                return twin(**kwargs)

            self._compiled = sampled

    def _bound(self) -> tuple[list[HookImpl], int, bool]:
        """The implementations in order with lazy ones loaded, the version they are from,
        and whether none was skipped.

        No lock is held while a plugin loads: its ``register()`` or ``init()`` runs in
        another thread and may add to, or call, this very hook.
        """
        for _ in range(3):
            with self._lock:
                version, ordered = self._version, self._order()
            impls, complete = self._resolved(ordered)
            if version == self._version:
                break
            # Loading a plugin changed the implementations (it added some, or it failed
            # and was removed): order them again.
        return impls, version, complete

    def _bind_or_report(self, impl: HookImpl) -> bool:
        """Load a lazy implementation; a plugin that fails is reported and skipped."""
        try:
            return self._hooks._bind(impl)
        except PluginError as exc:
            # The plugin failed to load: its state says why; the hook goes on.
            self._hooks._report(
                Problem("error", "hook.unavailable", str(exc), plugin_id=impl.plugin_id)
            )
            return False

    def _resolved(self, ordered: Sequence[HookImpl]) -> tuple[list[HookImpl], bool]:
        out, complete = [], True
        for impl in ordered:
            if impl.function is None and not self._bind_or_report(impl):
                complete = False
                continue
            out.append(impl)
        return out, complete

    def _traced(self, impls: list[HookImpl], kwargs: dict[str, Any], tracer: Tracer) -> Any:
        tracer("call", self.name, None, kwargs, None, 0.0)
        t0 = time.perf_counter()
        try:
            result = _compile(self.spec, impls, tracer, self._hooks._code)(**kwargs)
        except BaseException as exc:
            tracer("error", self.name, None, kwargs, exc, time.perf_counter() - t0)
            raise
        tracer("result", self.name, None, kwargs, result, time.perf_counter() - t0)
        return result

    async def acall(self, /, **kwargs: Any) -> Any:
        """Call the implementations, awaiting those that are coroutines.

        Sequential by default; concurrent when the spec says so. Each async
        implementation gets the spec's ``timeout``.
        """
        import asyncio

        problem = _arg_problem(self.spec, kwargs)
        if problem is not None:
            raise HookSpecError(problem)
        impls = self._bound()[0]
        if self.spec.historic:
            with self._lock:
                self._history.append(dict(kwargs))
        tracer = self._hooks._tracer
        if tracer is None:
            return await self._acall(impls, kwargs, None, asyncio)
        tracer("call", self.name, None, kwargs, None, 0.0)
        t0 = time.perf_counter()
        try:
            result = await self._acall(impls, kwargs, tracer, asyncio)
        except BaseException as exc:
            tracer("error", self.name, None, kwargs, exc, time.perf_counter() - t0)
            raise
        tracer("result", self.name, None, kwargs, result, time.perf_counter() - t0)
        return result

    async def _acall(
        self, impls: list[HookImpl], kwargs: dict[str, Any], tracer: Tracer | None, asyncio: Any
    ) -> Any:
        teardowns: list[Any] = []
        try:
            for w in impls:
                if w.wrapper:
                    if tracer is not None:
                        tracer("impl", self.name, w.plugin_id, kwargs, None, 0.0)
                    teardowns.append(_start_wrapper(w, self.name, kwargs))
            plain = [i for i in impls if not i.wrapper]
            if self.spec.concurrent:
                outcome = await self._gather(plain, kwargs, tracer, asyncio)
            else:
                outcome = await self._sequential(plain, kwargs, tracer, asyncio)
        except BaseException as exc:  # noqa: BLE001 - the wrappers see it, then it is raised again
            return _finish_wrappers(teardowns, None, exc)
        return _finish_wrappers(teardowns, outcome, None)

    async def _one(
        self, impl: HookImpl, kwargs: dict[str, Any], tracer: Tracer | None, asyncio: Any
    ) -> Any:
        if tracer is not None:
            tracer("impl", self.name, impl.plugin_id, kwargs, None, 0.0)
        metrics = self._hooks._metrics
        if metrics is not None:
            t0 = time.perf_counter()
            failed = True
            try:
                value = await self._one_unmeasured(impl, kwargs, asyncio)
                failed = False
            finally:
                elapsed = time.perf_counter() - t0
                metrics.record_call(impl.plugin_id, "hook", self.name, elapsed, error=failed)
            return value
        return await self._one_unmeasured(impl, kwargs, asyncio)

    async def _one_unmeasured(self, impl: HookImpl, kwargs: dict[str, Any], asyncio: Any) -> Any:
        timer: Any = None
        try:
            value = impl.function(**_pick(impl, kwargs))  # type: ignore[misc]
            if hasattr(value, "__await__"):
                if self.spec.timeout is None:
                    value = await value
                else:
                    async with asyncio.timeout(self.spec.timeout) as timer:
                        value = await value
        except TimeoutError as exc:
            # Only the hook's own deadline is reported as a timeout: a TimeoutError the
            # implementation raised itself is its error like any other.
            expired = timer is not None and timer.expired()
            raise HookCallError(
                self.name, impl.plugin_id, _timed_out(self.spec) if expired else exc
            ) from exc
        except Exception as exc:
            raise HookCallError(self.name, impl.plugin_id, exc) from exc
        return value

    async def _sequential(
        self, impls: list[HookImpl], kwargs: dict[str, Any], tracer: Tracer | None, asyncio: Any
    ) -> Any:
        results: list[Any] = []
        errors: list[HookCallError] = []
        for impl in impls:
            try:
                value = await self._one(impl, kwargs, tracer, asyncio)
            except HookCallError as exc:
                if self.spec.on_error == "raise":
                    raise
                errors.append(exc)
                continue
            if value is not None:
                results.append(value)
                if self.spec.firstresult:
                    break
        return _combine(self.spec, results, errors)

    async def _gather(
        self, impls: list[HookImpl], kwargs: dict[str, Any], tracer: Tracer | None, asyncio: Any
    ) -> Any:
        collect = self.spec.on_error == "collect"
        outcomes = await asyncio.gather(
            *(self._one(i, kwargs, tracer, asyncio) for i in impls), return_exceptions=True
        )
        results: list[Any] = []
        errors: list[HookCallError] = []
        for value in outcomes:
            if isinstance(value, HookCallError):
                if not collect:
                    raise value
                errors.append(value)
            elif isinstance(value, BaseException):
                raise value
            elif value is not None:
                results.append(value)
        if self.spec.firstresult:
            results = results[:1]
        return _combine(self.spec, results, errors)

    def _replay(self, impl: HookImpl) -> None:
        with self._lock:
            history = list(self._history)
        if impl.function is None and not self._bind_or_report(impl):
            return
        for kwargs in history:
            try:
                value = impl.function(**_pick(impl, kwargs))  # type: ignore[misc]
                if hasattr(value, "close") and hasattr(value, "__await__"):
                    value.close()  # an async historic implementation is replayed by acall only
            except Exception as exc:  # noqa: BLE001 - a replay failure is reported, not raised into add()
                self._hooks._report(
                    Problem(
                        "error",
                        "hook.replay",
                        str(HookCallError(self.name, impl.plugin_id, exc)),
                        plugin_id=impl.plugin_id,
                    )
                )


def _pick(impl: HookImpl, kwargs: dict[str, Any]) -> dict[str, Any]:
    if impl.takes_kwargs or impl.argnames is None:
        return kwargs
    return {a: kwargs[a] for a in impl.argnames}


def _timed_out(spec: HookSpec) -> TimeoutError:
    return TimeoutError(f"timed out: did not finish within {spec.timeout:g} s (the hook's timeout)")


def _combine(spec: HookSpec, results: list[Any], errors: list[HookCallError]) -> Any:
    if spec.on_error == "collect":
        return HookResults(results[:1] if spec.firstresult else results, errors)
    if spec.firstresult:
        return results[0] if results else None
    return results


def _arg_problem(spec: HookSpec, kwargs: dict[str, Any]) -> str | None:
    """What is wrong with the arguments of a call, and how to call the hook; None if fine."""
    missing = [a for a in spec.args if a not in kwargs]
    extra = [k for k in kwargs if k not in spec.args]
    if not missing and not extra:
        return None
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if extra:
        parts.append(f"unexpected {', '.join(extra)}")
    wanted = ", ".join(f"{a}=…" for a in spec.args) or "no arguments"
    return f"hook {spec.name} called with {'; '.join(parts)}; call it as {spec.name}({wanted})"


def _check_spec(spec: HookSpec) -> None:
    """Refuse what the generated dispatcher could not take (see :func:`_compile`)."""
    if not spec.name.isidentifier():
        raise HookSpecError(f"hook name {spec.name!r} is not a Python identifier")
    seen: set[str] = set()
    for a in spec.args:
        if not a.isidentifier() or keyword.iskeyword(a) or a.startswith("_"):
            raise HookSpecError(
                f"hook {spec.name}: argument {a!r} cannot be a keyword argument; use a "
                "Python identifier that is not a keyword and does not start with '_'"
            )
        if a in seen:
            raise HookSpecError(f"hook {spec.name}: argument {a!r} is listed twice")
        seen.add(a)
    if spec.firstresult and spec.historic:
        raise HookSpecError(f"hook {spec.name}: a historic hook cannot be firstresult")
    if spec.on_error not in ("raise", "collect"):
        raise HookSpecError(
            f'hook {spec.name}: on_error is {spec.on_error!r}; use "raise" or "collect"'
        )
    if spec.timeout is not None and not spec.timeout > 0:
        raise HookSpecError(f"hook {spec.name}: timeout must be a number of seconds above 0")


# ---------------------------------------------------------------- ordering


_plugin_id = attrgetter("plugin_id")
_priority = attrgetter("priority")


def _ordered_impls(impls: list[HookImpl], hooks: Hooks, hook: str) -> list[HookImpl]:
    """Priority, then before/after, then plugin id; a cycle drops the constraints."""
    if len(impls) < 2:
        return impls
    # Two stable sorts, by id then by priority: implementations that tie keep the order they
    # were added in, and no key tuple is made per implementation (fewer objects to collect).
    plain = sorted(impls, key=_plugin_id)
    plain.sort(key=_priority, reverse=True)  # reverse=True keeps ties in order too
    if not any(i.before or i.after for i in impls):
        return plain
    key = {id(i): (-i.priority, i.plugin_id, n) for n, i in enumerate(impls)}
    by_plugin: dict[str, list[HookImpl]] = {}
    for i in impls:
        by_plugin.setdefault(i.plugin_id, []).append(i)
    edges: dict[int, set[int]] = {id(i): set() for i in impls}
    constrained = False
    for i in impls:
        # A plugin naming itself says nothing about order (and is no cycle).
        for other in (o for o in i.after if o != i.plugin_id):
            for j in by_plugin.get(other, ()):
                edges[id(j)].add(id(i))
                constrained = True
        for other in (o for o in i.before if o != i.plugin_id):
            for j in by_plugin.get(other, ()):
                edges[id(i)].add(id(j))
                constrained = True
    if not constrained:
        return plain
    waiting = {id(i): 0 for i in impls}
    for targets in edges.values():
        for t in targets:
            waiting[t] += 1
    by_id = {id(i): i for i in impls}
    ready = [key[n] + (n,) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    out: list[HookImpl] = []
    while ready:
        *_, n = heapq.heappop(ready)
        out.append(by_id[n])
        for t in edges[n]:
            waiting[t] -= 1
            if waiting[t] == 0:
                heapq.heappush(ready, key[t] + (t,))
    if len(out) == len(impls):
        return out
    placed = {id(i) for i in out}
    stuck = sorted({i.plugin_id for i in impls if id(i) not in placed})
    hooks._report(
        Problem(
            "warning",
            "hook.order-cycle",
            f"hook {hook}: the before/after lists of {', '.join(stuck)} form a cycle; "
            "they are ignored and these implementations run in priority and id order",
        )
    )
    return plain


# ---------------------------------------------------------------- compiled dispatch

#: Up to this many implementations the generated code calls each one on lines of its own
#: (the fastest call there is); beyond, it loops over them, so that compiling stays cheap and
#: linear: one ``try`` block per implementation costs ~50 µs to compile and ~25 KB of memory.
_UNROLL = 8
#: Up to this many wrappers (and when not traced) their start and finish are generated
#: inline; beyond, a loop calls helpers.
_INLINE_WRAPPERS = 4
#: At most this many compiled sources are kept per :class:`Hooks` (then they are dropped).
_CODE_CACHE_SIZE = 128


def _compile(
    spec: HookSpec,
    impls: Sequence[HookImpl],
    tracer: Tracer | None = None,
    cache: dict[str, CodeType] | None = None,
    measure: _Measure | None = None,
) -> Callable[..., Any]:
    """Generate a function that calls ``impls`` in order with the hook's arguments.

    Every name of the generated code starts with ``_``, and no hook argument does
    (:func:`_check_spec`), so an argument never hides one of them. The source names no
    implementation (they are in the function's globals), so hooks with the same arguments,
    options and kinds of implementations are compiled once, through ``cache``; each gets
    a copy of the code naming it, for tracebacks.

    With ``measure``, failures and early stops are recorded, and (``measure.counting``)
    the entry function counts its calls.
    """
    env: dict[str, Any] = {
        "_Error": HookCallError,
        "_call_error": _call_error,
        "_never_awaited": _never_awaited,
        "_start_wrapper": _start_wrapper,
        "_start_error": _start_error,
        "_wrapper_error": _wrapper_error,
        "_yielded_twice": _yielded_twice,
        "_finish_wrappers": _finish_wrappers,
        "_combine": _combine,
        "_SPEC": spec,
        "_HOOK": spec.name,
        "_tracer": tracer,
    }
    traced = tracer is not None
    wrappers = [i for i in impls if i.wrapper]
    plain = [i for i in impls if not i.wrapper]
    marked = measure is not None
    if measure is not None:
        env.update(_st=measure.stats, _stops=measure.stops, _failed=measure.failed)
        env.update(_n=0, _wst=())
    lines = _plain_source(spec, plain, env, traced, marked)
    if wrappers and (traced or len(wrappers) > _INLINE_WRAPPERS):
        lines += _wrapping_loop_source(spec, wrappers, env, traced)
    elif wrappers:
        lines += _wrapping_source(spec, wrappers, env)
    if measure is not None and measure.counting:
        lines = _counting(lines, "_dispatch" if wrappers else "_plain")
    source = "\n".join(lines)
    code = None if cache is None else cache.get(source)
    if code is None:
        # Generated only from identifiers checked by _check_spec and signature_of.
        code = compile(source, "<plugbay hook>", "exec")
        if cache is not None:
            if len(cache) >= _CODE_CACHE_SIZE:
                cache.clear()  # shapes are few; one clear() is safe among threads
            cache[source] = code
    exec(code, env)
    # Tracebacks through the dispatcher name the hook (the shared compiled code cannot).
    filename = f"<plugbay hook {spec.name}>"
    for name in ("_plain", "_dispatch") if wrappers else ("_plain",):
        function: FunctionType = env[name]
        function.__code__ = function.__code__.replace(co_filename=filename)
    fn: Callable[..., Any] = env["_dispatch" if wrappers else "_plain"]
    return fn


def _counting(lines: list[str], entry: str) -> list[str]:
    """Make the ``entry`` function count its calls in the global ``_n``.

    Read, never written, by the flush (HookCaller._flush_metrics), but for the timed twin's
    calls, which run one at a time in a burst. A global, not a closure cell: the dispatcher
    is called with ``**kwargs``, and that call costs more for a closure.
    """
    start = lines.index(next(line for line in lines if line.startswith(f"def {entry}(")))
    return [*lines[: start + 1], "    global _n", "    _n += 1", *lines[start + 1 :]]


def _plain_source(
    spec: HookSpec,
    plain: Sequence[HookImpl],
    env: dict[str, Any],
    traced: bool,
    marked: bool = False,
) -> list[str]:
    """``_plain(*args)``: each implementation in turn, a plain call each."""
    collect = spec.on_error == "collect"
    lines = [f"def _plain({', '.join(spec.args)}):", "    _results = []"]
    if collect:
        lines.append("    _errors = []")
    if traced:
        lines.append(f"    _kwargs = {_kwargs_literal(spec)}")
    if len(plain) <= _UNROLL:
        for n, impl in enumerate(plain):
            env[f"_f{n}"] = impl.function
            env[f"_p{n}"] = impl.plugin_id
            call = [f"_r = _f{n}({_call_args(impl, spec)})"]
            await_test = "hasattr(_r, '__await__')" if impl.maybe_async else ""
            lines += _call_source(
                spec,
                call,
                f"_p{n}",
                await_test=await_test,
                traced=traced,
                at=str(n) if marked else "",
            )
    else:
        lines += _loop_source(spec, plain, env, traced, marked)
    if collect:
        lines.append("    return _combine(_SPEC, _results, _errors)")
    else:
        lines.append("    return None" if spec.firstresult else "    return _results")
    return lines


def _loop_source(
    spec: HookSpec, plain: Sequence[HookImpl], env: dict[str, Any], traced: bool, marked: bool
) -> list[str]:
    """A loop over the implementations' plugin ids and functions (and styles, when they are
    called in more than one way: the style picks the call)."""
    found: dict[_Style, int] = {}  # style -> the order in which it was first seen
    counts: list[int] = []
    seen = []  # of each implementation (ints: none of them is a container to collect)
    for impl in plain:
        key = _style(impl)
        n = found.get(key)
        if n is None:
            n = found[key] = len(counts)
            counts.append(0)
        counts[n] += 1
        seen.append(n)
    # The most common style is tested first; those that may return awaitables come last,
    # so that ``_s >= first_async`` tells whether to look for one.
    styles = sorted(found, key=lambda s: (s[0], -counts[found[s]]))
    first_async = next((n for n, s in enumerate(styles) if s[0]), None)
    if first_async is None:
        await_test = ""
    elif first_async == 0:
        await_test = "hasattr(_r, '__await__')"
    else:
        await_test = f"_s >= {first_async} and hasattr(_r, '__await__')"
    calls = [f"_r = _f({_args_source(spec, names, positional)})" for _, names, positional in styles]
    # Parallel tuples, zipped: no tuple per implementation is kept (nor allocated: zip
    # reuses its own), which keeps registering many plugins light on the collector.
    env["_pids"] = tuple([i.plugin_id for i in plain])
    env["_fns"] = tuple([i.function for i in plain])
    if len(styles) == 1:
        lines, call = ["    for _p, _f in zip(_pids, _fns):"], calls
    else:
        renumber = [0] * len(styles)
        for n, style in enumerate(styles):
            renumber[found[style]] = n
        env["_styles"] = tuple([renumber[n] for n in seen])
        lines, call = ["    for _p, _f, _s in zip(_pids, _fns, _styles):"], []
        for n, line in enumerate(calls):
            if n < len(calls) - 1:
                call.append(f"{'if' if n == 0 else 'elif'} _s == {n}:")
            else:
                call.append("else:")
            call.append(f"    {line}")
    at = "_fns.index(_f)" if marked else ""
    return lines + _call_source(
        spec, call, "_p", await_test=await_test, traced=traced, looped=True, at=at
    )


#: How an implementation is called: may it return an awaitable, the names it takes (None:
#: every argument, by keyword) and how many of them go by position.
_Style = tuple[bool, tuple[str, ...] | None, int]


def _style(impl: HookImpl) -> _Style:
    if impl.takes_kwargs or impl.argnames is None:
        return impl.maybe_async, None, 0
    return impl.maybe_async, impl.argnames, impl.positional


def _call_source(
    spec: HookSpec,
    call: list[str],
    pid: str,
    *,
    await_test: str,
    traced: bool,
    looped: bool = False,
    at: str = "",
) -> list[str]:
    """The lines of one call (``call`` sets ``_r``) and what is done with its result: in the
    body of ``_plain``, or of its loop over the implementations (``looped``).

    ``at`` (metrics on) is the implementation's index: failures and early returns are
    recorded with it, on those paths only.
    """
    collect = spec.on_error == "collect"
    lines = []
    if traced:  # outside the try: a failing tracer is not the plugin's error
        lines.append(f"_tracer('impl', _HOOK, {pid}, _kwargs, None, 0.0)")
    lines += ["try:", *(f"    {line}" for line in call), "except Exception as _exc:"]
    if at:
        lines.append(f"    _failed({at})")
    if collect:
        lines += [
            f"    _errors.append(_call_error(_HOOK, {pid}, _exc))",
            "    continue" if looped else "    _r = None",
        ]
    else:
        lines.append(f"    raise _Error(_HOOK, {pid}, _exc) from _exc")
    stop = [f"_stops[{at}] += 1"] if at and spec.firstresult else []
    if spec.firstresult and not collect:
        keep = [*stop, "return _r"]
    else:
        keep = ["_results.append(_r)"]
        if spec.firstresult:
            keep += [*stop, "return _combine(_SPEC, _results, _errors)"]
    lines.append("if _r is not None:")
    if await_test:
        lines.append(f"    if {await_test}:")
        if collect:
            lines.append(f"        _errors.append(_call_error(_HOOK, {pid}, _never_awaited(_r)))")
        else:
            lines.append(f"        raise _call_error(_HOOK, {pid}, _never_awaited(_r))")
        lines.append("    else:")
        lines += [f"        {line}" for line in keep]
    else:
        lines += [f"    {line}" for line in keep]
    indent = " " * (8 if looped else 4)
    return [f"{indent}{line}" for line in lines]


def _wrapping_source(
    spec: HookSpec, wrappers: Sequence[HookImpl], env: dict[str, Any]
) -> list[str]:
    """``_dispatch(*args)``: start the wrappers, call ``_plain``, finish the wrappers.

    Each step is written out, so a wrapper costs about one generator round trip; the errors
    (and a wrapper that does not yield, or yields twice) go to the helpers, which hand the
    outcome to the wrappers still waiting. A wrapper that fails to start is an outcome like
    any other: the wrappers already started see it at their ``yield``.
    """
    args = ", ".join(spec.args)
    lines = [f"def _dispatch({args}):"]

    def started(upto: int) -> str:
        return "[" + ", ".join(f"(_g{n}, _wp{n}, _HOOK)" for n in range(upto)) + "]"

    for n, w in enumerate(wrappers):
        env[f"_w{n}"] = w.function
        env[f"_wp{n}"] = w.plugin_id
        lines += [
            "    try:",
            f"        _g{n} = _w{n}({_call_args(w, spec)})",
            f"        next(_g{n})",
            "    except BaseException as _exc:",
            f"        return _finish_wrappers({started(n)}, None, "
            f"_start_error(_HOOK, _wp{n}, _exc))",
        ]
    lines += [
        "    try:",
        f"        _r = _plain({args})",
        "    except BaseException as _exc:",
        f"        return _finish_wrappers({started(len(wrappers))}, None, _exc)",
    ]
    for n in reversed(range(len(wrappers))):
        lines += [
            "    try:",
            f"        _g{n}.send(_r)",
            "    except StopIteration as _stop:",
            "        _r = _stop.value",
            "    except BaseException as _exc:",
            f"        return _finish_wrappers({started(n)}, None, "
            f"_wrapper_error(_HOOK, _wp{n}, _exc))",
            "    else:",
            f"        return _finish_wrappers({started(n)}, None, "
            f"_yielded_twice(_g{n}, _HOOK, _wp{n}))",
        ]
    lines.append("    return _r")
    return lines


def _wrapping_loop_source(
    spec: HookSpec, wrappers: Sequence[HookImpl], env: dict[str, Any], traced: bool
) -> list[str]:
    """``_dispatch(*args)`` for many wrappers, or traced ones: the same, through helpers."""
    env["_wrappers"] = tuple(wrappers)
    args = ", ".join(spec.args)
    lines = [
        f"def _dispatch({args}):",
        f"    _kwargs = {_kwargs_literal(spec)}",
        "    _teardowns = []",
        "    try:",
        "        for _w in _wrappers:",
    ]
    if traced:
        lines.append("            _tracer('impl', _HOOK, _w.plugin_id, _kwargs, None, 0.0)")
    lines += [
        "            _teardowns.append(_start_wrapper(_w, _HOOK, _kwargs))",
        f"        _outcome = _plain({args})",
        "    except BaseException as _exc:",
        "        return _finish_wrappers(_teardowns, None, _exc)",
        "    return _finish_wrappers(_teardowns, _outcome, None)",
    ]
    return lines


def _kwargs_literal(spec: HookSpec) -> str:
    return "{" + ", ".join(f"{a!r}: {a}" for a in spec.args) + "}"


def _call_args(impl: HookImpl, spec: HookSpec) -> str:
    _, names, positional = _style(impl)
    return _args_source(spec, names, positional)


def _args_source(spec: HookSpec, names: tuple[str, ...] | None, positional: int) -> str:
    """The arguments of a call: ``names`` (or all of the spec's, by keyword when None)."""
    if names is None:
        return ", ".join(f"{a}={a}" for a in spec.args)
    # Positional arguments are the cheapest call there is; keyword-only ones go by name.
    return ", ".join([*names[:positional], *(f"{a}={a}" for a in names[positional:])])


class _Measure(NamedTuple):
    """What a measured dispatcher records into (see HookCaller._compile_measured)."""

    stats: tuple[ContributionStats, ...]  # of the plain implementations, in order
    stops: list[int]  # calls that stopped at each of them (error or first result)
    failed: Callable[[int], None]
    counting: bool  # count the calls (the dispatcher), or not (its timed twin)


def _failure_recorder(
    stats: tuple[ContributionStats, ...], stops: list[int], stopping: bool
) -> Callable[[int], None]:
    """Record the failure of implementation ``i`` (a stop too, when errors end the call)."""

    def failed(i: int) -> None:
        stats[i].errors += 1
        if stopping:
            stops[i] += 1

    return failed


def _timed(function: Any, stats: ContributionStats) -> Callable[..., Any]:
    """``function`` timed into ``stats`` (the sampled dispatcher calls these)."""
    clock = time.perf_counter

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = clock()
        try:
            return function(*args, **kwargs)
        finally:
            stats.observe(clock() - t0)

    return timed


def _call_error(hook: str, plugin_id: str, error: BaseException) -> HookCallError:
    """A HookCallError whose ``__cause__`` is ``error``, as if raised ``from`` it."""
    exc = HookCallError(hook, plugin_id, error)
    exc.__cause__ = error
    return exc


def _never_awaited(value: Any) -> TypeError:
    """The error for a coroutine returned to a plain call; closes it first."""
    if hasattr(value, "close"):
        value.close()  # never awaited: closed, so no "never awaited" warning is left behind
    return TypeError(
        "returned a coroutine: this hook has async implementations; use await hooks.NAME.acall(...)"
    )


def _start_wrapper(impl: HookImpl, hook: str, kwargs: dict[str, Any]) -> Any:
    try:
        gen = impl.function(**_pick(impl, kwargs))  # type: ignore[misc]
        next(gen)
    except Exception as exc:  # noqa: BLE001 - it becomes a HookCallError naming the wrapper
        raise _start_error(hook, impl.plugin_id, exc)  # noqa: B904 - _start_error sets __cause__
    return (gen, impl.plugin_id, hook)


def _start_error(hook: str, plugin_id: str, exc: BaseException) -> BaseException:
    """What a wrapper's failure to start (or to yield) becomes: a HookCallError naming it."""
    if isinstance(exc, StopIteration):
        exc = HookSpecError(
            "the wrapper did not yield (a wrapper yields once, where the other implementations run)"
        )
    elif not isinstance(exc, Exception):
        return exc  # KeyboardInterrupt and the like pass as they are
    return _call_error(hook, plugin_id, exc)


def _wrapper_error(hook: str, plugin_id: str, exc: BaseException) -> BaseException:
    """What a wrapper's own error at its ``yield`` becomes (a HookCallError passes through)."""
    if isinstance(exc, HookCallError) or not isinstance(exc, Exception):
        return exc
    return _call_error(hook, plugin_id, exc)


def _yielded_twice(gen: Any, hook: str, plugin_id: str) -> HookCallError:
    gen.close()
    return _call_error(
        hook, plugin_id, HookSpecError("the wrapper yielded twice (a wrapper yields once)")
    )


def _finish_wrappers(teardowns: list[Any], result: Any, error: BaseException | None) -> Any:
    """Send the outcome into each started wrapper, innermost first; what it returns or
    raises becomes the outcome the next one sees."""
    for gen, plugin_id, hook in reversed(teardowns):
        try:
            if error is not None:
                gen.throw(error)
            else:
                gen.send(result)
        except StopIteration as stop:
            result, error = stop.value, None
            continue
        except BaseException as exc:  # noqa: BLE001 - the wrapper's own error replaces the outcome
            error = exc if exc is error else _wrapper_error(hook, plugin_id, exc)
            continue
        error = _yielded_twice(gen, hook, plugin_id)
    if error is not None:
        raise error
    return result


# ---------------------------------------------------------------- the relay


class Hooks:
    """A host's hooks: ``hooks.declare(...)``, then ``hooks.NAME(**kwargs)``."""

    def __init__(self, specs: Iterable[HookSpec] = LIFECYCLE_HOOKS) -> None:
        self._callers: dict[str, HookCaller] = {}
        self._pending: dict[str, list[HookImpl]] = {}
        self._unknown: dict[str, list[Problem]] = {}  # the problems of the pending ones
        self._tracer: Tracer | None = None
        self._code: dict[str, CodeType] = {}  # compiled dispatchers, by source (_compile)
        self._metrics: Metrics | None = None
        self.problems: list[Problem] = []
        self._lock = threading.RLock()
        for spec in specs:
            self.declare(spec)

    def declare(
        self,
        spec: HookSpec | str,
        args: Sequence[str] = (),
        **options: Any,
    ) -> HookCaller:
        """Declare a hook (a :class:`HookSpec`, or its name, args and options).

        Implementations added before, while the hook was unknown, take part from now on;
        one whose arguments do not fit is left out and reported (``hook.signature``).
        """
        if isinstance(spec, str):
            spec = HookSpec(spec, tuple(args), **options)
        _check_spec(spec)
        with self._lock:
            if spec.name in self._callers:
                raise HookSpecError(f"hook {spec.name} is declared twice")
            caller = HookCaller(spec, self)
            self._callers[spec.name] = caller
            if not (
                spec.name.startswith("_")
                or hasattr(type(self), spec.name)
                or spec.name in self.__dict__
            ):
                # ``hooks.NAME`` is then a plain attribute, not a __getattr__ call each time;
                # a hook named like a method or attribute of Hooks stays reachable by get().
                self.__dict__[spec.name] = caller
            pending = self._pending.pop(spec.name, [])
            settled = self._unknown.pop(spec.name, [])
            self.problems = [p for p in self.problems if p not in settled]
        for impl in pending:
            try:
                self.add(impl)
            except HookSpecError as exc:
                # Written for another version of this hook: the host is not at fault.
                self._report(Problem("error", "hook.signature", str(exc), plugin_id=impl.plugin_id))
        return caller

    def add(self, impl: HookImpl) -> Problem | None:
        """Add an implementation; a signature that does not fit the spec is refused.

        An implementation of a hook nobody declared is kept aside (and reported) until the
        host declares it.
        """
        # A declared hook stays declared, so finding it needs no lock (adding many
        # plugins runs this a lot); a hook not found is looked up again under the lock.
        caller = self._callers.get(impl.hook)
        if caller is None:
            with self._lock:
                caller = self._callers.get(impl.hook)
                if caller is None:
                    return self._keep_pending(impl)
        if impl.function is not None:
            self._fit(impl, impl.function)
        caller._add(impl)
        return None

    def _keep_pending(self, impl: HookImpl) -> Problem:
        self._pending.setdefault(impl.hook, []).append(impl)
        known = get_close_matches(impl.hook, list(self._callers), n=1)
        hint = f'; did you mean "{known[0]}"?' if known else ""
        problem = Problem(
            "warning",
            "hook.unknown",
            f"{impl.plugin_id} implements hook {impl.hook}, which this host does not "
            f"declare{hint}; it is not called",
            plugin_id=impl.plugin_id,
        )
        self._unknown.setdefault(impl.hook, []).append(problem)
        self._report(problem)
        return problem

    def check(self, impl: HookImpl) -> None:
        """Check an implementation's arguments against its spec; raises HookSpecError."""
        assert impl.function is not None
        self._fit(impl, impl.function)

    def _fit(self, impl: HookImpl, function: Callable[..., Any]) -> None:
        """Check ``function`` as ``impl``'s and record how to call it (only if it fits)."""
        required, positional, takes_kwargs, maybe_async, optional = _signature(function)
        if impl.wrapper and _is_generator_function(function) is False:
            raise HookSpecError(
                f"{impl.plugin_id}: hook {impl.hook} implementation is a wrapper, but "
                f"{getattr(function, '__qualname__', function)!s} is not a generator function "
                "(a wrapper yields once, where the other implementations run)"
            )
        caller = self._callers.get(impl.hook)
        if caller is None:  # the spec is not known yet: checked again when it is declared
            argnames = required
        else:
            provided = caller.spec.args
            unknown = [n for n in required if n not in provided]
            if unknown:
                offered = ", ".join(provided) or "no arguments"
                raise HookSpecError(
                    f"{impl.plugin_id}: hook {impl.hook} implementation takes "
                    f"{', '.join(repr(n) for n in unknown)}, which the hook does not provide "
                    f"(it provides: {offered})"
                )
            if optional:
                argnames = (*required, *(n for n in optional if n in provided))
            else:
                argnames = required
            if argnames == provided:
                argnames = provided  # one tuple for them all: fewer objects to collect
        impl.argnames, impl.positional = argnames, positional
        impl.takes_kwargs, impl.maybe_async = takes_kwargs, maybe_async

    def implementations_of(self, plugin_id: str) -> list[HookImpl]:
        """Every implementation one plugin has added, declared hooks or not."""
        with self._lock:
            callers = list(self._callers.values())
            pending = [i for impls in self._pending.values() for i in impls]
        found = [i for c in callers for i in list(c._impls) if i.plugin_id == plugin_id]
        return found + [i for i in pending if i.plugin_id == plugin_id]

    def remove_plugin(self, plugin_id: str) -> int:
        """Remove every implementation of one plugin; returns how many."""
        with self._lock:
            callers = list(self._callers.values())
            for name in list(self._pending):
                self._pending[name] = [i for i in self._pending[name] if i.plugin_id != plugin_id]
        return sum(c._remove(plugin_id) for c in callers)

    def trace(self, tracer: Tracer | None) -> None:
        """Call ``tracer(event, hook, plugin_id, kwargs, value, seconds)`` around calls.

        Events: ``call``, ``impl`` (before each implementation, wrappers included),
        ``result``, ``error``; ``plugin_id`` is None but for ``impl``, ``value`` is the
        result or the error, ``seconds`` the time the call took. Pass None to stop
        tracing. Tracing takes the slower, uncompiled path.
        """
        self._tracer = tracer
        for caller in list(self._callers.values()):
            caller._invalidate()

    def measure(self, metrics: Metrics | None) -> None:
        """Record calls, errors and (sampled) latency of every implementation in ``metrics``.

        Pass None to stop. Counting costs one integer addition per hook call; the
        ``metrics.SAMPLE_BURST`` calls after each compile and after each snapshot have
        their implementations timed. Calls made while a tracer is set (:meth:`trace`) are
        not recorded.
        """
        previous, self._metrics = self._metrics, metrics
        if previous is not None:
            self._flush_metrics()
        if metrics is not None and metrics is not previous:
            metrics.add_flusher(self._flush_metrics)
        for caller in list(self._callers.values()):
            caller._invalidate()

    def _flush_metrics(self) -> None:
        for caller in list(self._callers.values()):
            caller._flush_metrics()

    def specs(self) -> list[HookSpec]:
        return [c.spec for c in self._callers.values()]

    def get(self, name: str) -> HookCaller:
        caller = self._callers.get(name)
        if caller is None:
            close = get_close_matches(name, list(self._callers), n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            raise HookSpecError(f"no hook named {name!r} is declared{hint}")
        return caller

    def __getattr__(self, name: str) -> HookCaller:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.get(name)
        except HookSpecError as exc:
            raise AttributeError(str(exc)) from None

    def __contains__(self, name: str) -> bool:
        return name in self._callers

    def _bind(self, impl: HookImpl) -> bool:
        """Resolve a lazy implementation; False when its resolver says "not now"."""
        if impl.resolve is None:
            raise HookSpecError(f"{impl.plugin_id}: hook {impl.hook} has no function")
        function = impl.resolve()
        if function is None:
            return False
        self._fit(impl, function)  # checked before it is set: other threads may be calling
        impl.function = function
        return True

    def _report(self, problem: Problem) -> None:
        with self._lock:
            if problem not in self.problems:  # the same problem found again is not news
                self.problems.append(problem)
