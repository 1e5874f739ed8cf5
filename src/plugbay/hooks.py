"""Hooks: host-declared specs, plugin implementations, ordered dispatch.

A host declares each hook once (:meth:`Hooks.declare`); plugins implement hooks through
``[[contributes.hook]]`` entries, whatever their runtime: an implementation is any callable
taking the spec's arguments (or a subset of them, by name).

Order of implementations: higher ``priority`` first; then the ``before``/``after`` lists
of plugin ids are honoured; then ties are broken by plugin id. A cycle among
``before``/``after`` is reported as a problem and those constraints are dropped (the hook
still runs, in priority and id order). Wrappers (``wrapper = true``) are generator
functions that run around all other implementations: the code before their ``yield`` runs
first (the first wrapper in order is the outermost), the ``yield`` returns the result or
raises the error, and what the wrapper returns becomes the result.

Dispatch is compiled: each time the set of implementations changes, a small function
specialised for that hook's arguments and implementations is generated, so a call costs a
plain function call per implementation.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any, Literal

from .discovery import Problem
from .errors import PluginError

__all__ = [
    "HookCallError",
    "HookCaller",
    "HookImpl",
    "HookResults",
    "HookSpec",
    "HookSpecError",
    "Hooks",
    "LIFECYCLE_HOOKS",
]

OnError = Literal["raise", "collect"]


class HookSpecError(PluginError):
    """A hook declaration, or an implementation that does not fit its spec."""


class HookCallError(PluginError):
    """An implementation raised (or timed out); names the hook and the plugin.

    The original exception is ``__cause__`` and :attr:`error`.
    """

    def __init__(self, hook: str, plugin_id: str, error: BaseException) -> None:
        self.hook = hook
        self.plugin_id = plugin_id
        self.error = error
        text = str(error)
        what = f"{type(error).__name__}: {text}" if text else type(error).__name__
        super().__init__(f"hook {hook}: the implementation from {plugin_id} raised {what}")


@dataclass(frozen=True)
class HookSpec:
    """What a host promises to call: name, argument names, and how results combine.

    - ``firstresult``: stop at the first implementation that returns something other
      than None, and return that value (None if none did).
    - ``historic``: remember every call and replay it to implementations added later.
    - ``concurrent``: ``acall`` awaits async implementations together, not one by one.
    - ``on_error``: ``"raise"`` stops at the first failing implementation and raises
      :class:`HookCallError`; ``"collect"`` calls every implementation and returns
      :class:`HookResults` with the results and the errors.
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


@dataclass(frozen=True)
class HookResults:
    """What a hook with ``on_error = "collect"`` returns."""

    results: list[Any]
    errors: list[HookCallError]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(eq=False)
class HookImpl:
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
    resolve: Callable[[], Callable[..., Any]] | None = field(default=None, repr=False)
    argnames: tuple[str, ...] | None = None
    takes_kwargs: bool = False
    #: how many of ``argnames`` may be passed by position
    positional: int = 0
    #: False only when the function is known to be a plain, non-async function
    maybe_async: bool = True


# The host's own lifecycle events, declared on every host.
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


def signature_of(function: Callable[..., Any]) -> tuple[tuple[str, ...], int, bool, bool]:
    """What calling ``function`` needs: its required argument names (positional ones
    first), how many may go by position, whether it takes ``**kwargs``, and whether it
    may return an awaitable.

    Reads the code object directly for plain functions and methods (fast); anything else
    goes through :func:`inspect.signature`.
    """
    target = getattr(function, "__func__", function)
    code = getattr(target, "__code__", None)
    if code is not None and not isinstance(target, type):
        bound = 1 if hasattr(function, "__self__") else 0
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        defaults = len(getattr(target, "__defaults__", None) or ())
        positional = names[bound : code.co_argcount - defaults]
        kwonly_defaults = getattr(target, "__kwdefaults__", None) or {}
        kwonly = tuple(n for n in names[code.co_argcount :] if n not in kwonly_defaults)
        # CO_VARKEYWORDS; CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR
        takes_kwargs = bool(code.co_flags & 0x08)
        maybe_async = bool(code.co_flags & (0x80 | 0x100 | 0x200))
        return (*positional, *kwonly), len(positional), takes_kwargs, maybe_async
    import inspect

    params = inspect.signature(function).parameters.values()
    names = tuple(
        p.name
        for p in params
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )
    return names, 0, any(p.kind is p.VAR_KEYWORD for p in params), True


class HookCaller:
    """Calls every implementation of one hook: ``hooks.name(**kwargs)``."""

    def __init__(self, spec: HookSpec, hooks: Hooks) -> None:
        self.spec = spec
        self.name = spec.name
        self._hooks = hooks
        self._impls: list[HookImpl] = []
        self._compiled: Callable[..., Any] | None = None
        self._ordered: tuple[HookImpl, ...] | None = None
        self._history: list[dict[str, Any]] = []
        self._lock = threading.RLock()

    # ------------------------------------------------------------ registration

    def _add(self, impl: HookImpl) -> None:
        with self._lock:
            self._impls.append(impl)
            self._invalidate()
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
        self._compiled = None
        self._ordered = None

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

    def __call__(self, **kwargs: Any) -> Any:
        """Call the implementations in order; see :class:`HookSpec` for the result."""
        fn = self._compiled
        if fn is None:
            return self._call_slowly(kwargs)
        return fn(**kwargs)

    def _call_slowly(self, kwargs: dict[str, Any]) -> Any:
        """First call after a change, traced calls and historic hooks come through here."""
        fn = self._prepare(kwargs)
        if self.spec.historic:
            with self._lock:
                self._history.append(dict(kwargs))
        return fn(**kwargs)

    def _prepare(self, kwargs: dict[str, Any]) -> Callable[..., Any]:
        missing = [a for a in self.spec.args if a not in kwargs]
        extra = [k for k in kwargs if k not in self.spec.args]
        if missing or extra:
            raise HookSpecError(_arg_problem(self.spec, missing, extra))
        with self._lock:
            impls = self._resolved()
            tracer = self._hooks._tracer
            if tracer is not None:
                return lambda **kw: self._traced(impls, kw, tracer)
            fn = _compile(self.spec, impls)
            if not self.spec.historic:
                # Later calls go straight to fn; a wrong argument then fails as a TypeError
                # from the generated function, which names the argument.
                self._compiled = fn
            return fn

    def _resolved(self) -> list[HookImpl]:
        out = []
        for impl in self._order():
            if impl.function is None:
                try:
                    self._hooks._bind(impl)
                except PluginError as exc:
                    # The plugin failed to load: its state says why; the hook goes on.
                    self._hooks._report(
                        Problem("error", "hook.unavailable", str(exc), plugin_id=impl.plugin_id)
                    )
                    continue
            out.append(impl)
        return out

    def _traced(self, impls: list[HookImpl], kwargs: dict[str, Any], tracer: Tracer) -> Any:
        tracer("call", self.name, None, kwargs, None, 0.0)
        t0 = time.perf_counter()
        try:
            result = _compile(self.spec, impls, tracer)(**kwargs)
        except BaseException as exc:
            tracer("error", self.name, None, kwargs, exc, time.perf_counter() - t0)
            raise
        tracer("result", self.name, None, kwargs, result, time.perf_counter() - t0)
        return result

    async def acall(self, **kwargs: Any) -> Any:
        """Call the implementations, awaiting those that are coroutines.

        Sequential by default; concurrent when the spec says so. Each async
        implementation gets the spec's ``timeout``.
        """
        import asyncio

        self._prepare(kwargs)
        with self._lock:
            if self.spec.historic:
                self._history.append(dict(kwargs))
            impls = self._resolved()
        wrappers = [i for i in impls if i.wrapper]
        plain = [i for i in impls if not i.wrapper]
        teardowns = [_start_wrapper(w, self.name, kwargs) for w in wrappers]
        try:
            if self.spec.concurrent:
                outcome = await self._gather(plain, kwargs, asyncio)
            else:
                outcome = await self._sequential(plain, kwargs, asyncio)
        except BaseException as exc:
            return _finish_wrappers(teardowns, None, exc)
        return _finish_wrappers(teardowns, outcome, None)

    async def _one(self, impl: HookImpl, kwargs: dict[str, Any], asyncio: Any) -> Any:
        try:
            value = impl.function(**_pick(impl, kwargs))  # type: ignore[misc]
            if hasattr(value, "__await__"):
                if self.spec.timeout is not None:
                    value = await asyncio.wait_for(value, self.spec.timeout)
                else:
                    value = await value
        except TimeoutError as exc:
            raise HookCallError(self.name, impl.plugin_id, _timed_out(self.spec)) from exc
        except Exception as exc:
            raise HookCallError(self.name, impl.plugin_id, exc) from exc
        return value

    async def _sequential(self, impls: list[HookImpl], kwargs: dict[str, Any], asyncio: Any) -> Any:
        results: list[Any] = []
        errors: list[HookCallError] = []
        for impl in impls:
            try:
                value = await self._one(impl, kwargs, asyncio)
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

    async def _gather(self, impls: list[HookImpl], kwargs: dict[str, Any], asyncio: Any) -> Any:
        collect = self.spec.on_error == "collect"
        outcomes = await asyncio.gather(
            *(self._one(i, kwargs, asyncio) for i in impls), return_exceptions=True
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
        if impl.function is None:
            try:
                self._hooks._bind(impl)
            except PluginError as exc:
                self._hooks._report(
                    Problem("error", "hook.unavailable", str(exc), plugin_id=impl.plugin_id)
                )
                return
        for kwargs in history:
            try:
                value = impl.function(**_pick(impl, kwargs))  # type: ignore[misc]
                if hasattr(value, "close") and hasattr(value, "__await__"):
                    value.close()  # an async historic implementation is replayed by acall only
            except Exception as exc:  # a replay failure is reported, not raised into add()
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
    return TimeoutError(f"did not finish within {spec.timeout:g} s (the hook's timeout)")


def _combine(spec: HookSpec, results: list[Any], errors: list[HookCallError]) -> Any:
    if spec.on_error == "collect":
        return HookResults(results[:1] if spec.firstresult else results, errors)
    if spec.firstresult:
        return results[0] if results else None
    return results


def _arg_problem(spec: HookSpec, missing: list[str], extra: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if extra:
        parts.append(f"unexpected {', '.join(extra)}")
    wanted = ", ".join(f"{a}=…" for a in spec.args) or "no arguments"
    return f"hook {spec.name} called with {'; '.join(parts)}; call it as {spec.name}({wanted})"


# ---------------------------------------------------------------- ordering


def _ordered_impls(impls: list[HookImpl], hooks: Hooks, hook: str) -> list[HookImpl]:
    """Priority, then before/after, then plugin id; a cycle drops the constraints."""
    if len(impls) < 2:
        return impls
    key = {id(i): (-i.priority, i.plugin_id, n) for n, i in enumerate(impls)}
    by_plugin: dict[str, list[HookImpl]] = {}
    for i in impls:
        by_plugin.setdefault(i.plugin_id, []).append(i)
    edges: dict[int, set[int]] = {id(i): set() for i in impls}
    constrained = False
    for i in impls:
        for other in i.after:
            for j in by_plugin.get(other, ()):
                edges[id(j)].add(id(i))
                constrained = True
        for other in i.before:
            for j in by_plugin.get(other, ()):
                edges[id(i)].add(id(j))
                constrained = True
    plain = sorted(impls, key=lambda i: key[id(i)])
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
    stuck = sorted({i.plugin_id for i in impls if i not in out})
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


def _compile(
    spec: HookSpec, impls: Sequence[HookImpl], tracer: Tracer | None = None
) -> Callable[..., Any]:
    """Generate a function that calls ``impls`` in order with the hook's arguments."""
    env: dict[str, Any] = {
        "HookCallError": HookCallError,
        "_start_wrapper": _start_wrapper,
        "_finish_wrappers": _finish_wrappers,
        "_is_async": _is_async_result,
        "HOOK": spec.name,
        "tracer": tracer,
    }
    signature = f"*, {', '.join(spec.args)}" if spec.args else ""
    passing = ", ".join(f"{a}={a}" for a in spec.args)
    collect = spec.on_error == "collect"
    wrappers = [i for i in impls if i.wrapper]
    plain = [i for i in impls if not i.wrapper]
    lines = [f"def plain({signature}):", "    results = []"]
    if collect:
        lines.append("    errors = []")
    for n, impl in enumerate(plain):
        env[f"f{n}"] = impl.function
        env[f"p{n}"] = impl.plugin_id
        lines.append("    try:")
        if tracer is not None:
            lines.append(f"        tracer('impl', HOOK, p{n}, {{}}, None, 0.0)")
        lines.append(f"        r = f{n}({_call_args(impl, spec)})")
        lines.append("    except Exception as exc:")
        if collect:
            lines.append(f"        errors.append(HookCallError(HOOK, p{n}, exc))")
            lines.append("        r = None")
        else:
            lines.append(f"        raise HookCallError(HOOK, p{n}, exc) from exc")
        lines.append("    if r is not None:")
        if impl.maybe_async:
            lines.append("        if _is_async(r):")
            lines.append(f"            raise HookCallError(HOOK, p{n}, _is_async(r, close=True))")
        if spec.firstresult and not collect:
            lines.append("        return r")
        else:
            lines.append("        results.append(r)")
            if spec.firstresult:
                lines.append("        return _done(results, errors)")
    lines.append("    return _done(results, errors)" if collect else "    return _done(results)")
    if wrappers:
        lines.append(f"def dispatch({signature}):")
        kwargs = "{" + ", ".join(f"{a!r}: {a}" for a in spec.args) + "}"
        lines.append(f"    kwargs = {kwargs}")
        lines.append("    teardowns = []")
        for n, w in enumerate(wrappers):
            env[f"w{n}"] = w
            lines.append(f"    teardowns.append(_start_wrapper(w{n}, HOOK, kwargs))")
        lines.append("    try:")
        lines.append(f"        outcome = plain({passing})")
        lines.append("    except BaseException as exc:")
        lines.append("        return _finish_wrappers(teardowns, None, exc)")
        lines.append("    return _finish_wrappers(teardowns, outcome, None)")
    if collect:
        env["_done"] = lambda results, errors: _combine(spec, results, errors)
    elif spec.firstresult:
        env["_done"] = lambda results: None
    else:
        env["_done"] = lambda results: results
    source = "\n".join(lines)
    # Generated only from identifiers checked by Hooks.declare and signature_of.
    exec(compile(source, f"<plugbay hook {spec.name}>", "exec"), env)  # noqa: S102
    fn: Callable[..., Any] = env["dispatch" if wrappers else "plain"]
    return fn


def _call_args(impl: HookImpl, spec: HookSpec) -> str:
    if impl.takes_kwargs or impl.argnames is None:
        return ", ".join(f"{a}={a}" for a in spec.args)
    names = impl.argnames
    # Positional arguments are the cheapest call there is; keyword-only ones go by name.
    return ", ".join([*names[: impl.positional], *(f"{a}={a}" for a in names[impl.positional :])])


def _is_async_result(value: Any, close: bool = False) -> Any:
    if not hasattr(value, "__await__"):
        return False
    if close and hasattr(value, "close"):
        value.close()  # never awaited: close it so no warning is left behind
    return TypeError(
        "returned a coroutine: this hook has async implementations; use await hooks.NAME.acall(...)"
    )


def _start_wrapper(impl: HookImpl, hook: str, kwargs: dict[str, Any]) -> Any:
    try:
        gen = impl.function(**_pick(impl, kwargs))  # type: ignore[misc]
        next(gen)
    except StopIteration:
        raise HookCallError(
            hook, impl.plugin_id, HookSpecError("the wrapper did not yield")
        ) from None
    except Exception as exc:
        raise HookCallError(hook, impl.plugin_id, exc) from exc
    return (gen, impl.plugin_id, hook)


def _finish_wrappers(teardowns: list[Any], result: Any, error: BaseException | None) -> Any:
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
            error = (
                exc
                if isinstance(exc, HookCallError) or exc is error
                else HookCallError(hook, plugin_id, exc)
            )
            continue
        gen.close()
        error = HookCallError(hook, plugin_id, HookSpecError("the wrapper yielded twice"))
    if error is not None:
        raise error
    return result


# ---------------------------------------------------------------- the relay


class Hooks:
    """A host's hooks: ``hooks.declare(...)``, then ``hooks.NAME(**kwargs)``."""

    def __init__(self, specs: Iterable[HookSpec] = LIFECYCLE_HOOKS) -> None:
        self._callers: dict[str, HookCaller] = {}
        self._pending: dict[str, list[HookImpl]] = {}
        self._tracer: Tracer | None = None
        self._binder: Callable[[HookImpl], Callable[..., Any]] | None = None
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
        """Declare a hook (a :class:`HookSpec`, or its name, args and options)."""
        if isinstance(spec, str):
            spec = HookSpec(spec, tuple(args), **options)
        if not spec.name.isidentifier():
            raise HookSpecError(f"hook name {spec.name!r} is not a Python identifier")
        for a in spec.args:
            if not a.isidentifier():
                raise HookSpecError(f"hook {spec.name}: argument {a!r} is not a Python identifier")
        if spec.firstresult and spec.historic:
            raise HookSpecError(f"hook {spec.name}: a historic hook cannot be firstresult")
        with self._lock:
            if spec.name in self._callers:
                raise HookSpecError(f"hook {spec.name} is declared twice")
            caller = HookCaller(spec, self)
            self._callers[spec.name] = caller
            pending = self._pending.pop(spec.name, [])
        self.problems = [
            p
            for p in self.problems
            if not (p.code == "hook.unknown" and f" {spec.name}" in p.message)
        ]
        for impl in pending:
            self.add(impl)
        return caller

    def add(self, impl: HookImpl) -> Problem | None:
        """Add an implementation; a signature that does not fit the spec is refused.

        An implementation of a hook nobody declared is kept aside (and reported) until the
        host declares it.
        """
        with self._lock:
            caller = self._callers.get(impl.hook)
            if caller is None:
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
                self.problems.append(problem)
                return problem
        if impl.function is not None:
            self.check(impl)
        caller._add(impl)
        return None

    def check(self, impl: HookImpl) -> None:
        """Check an implementation's arguments against its spec; raises HookSpecError."""
        assert impl.function is not None
        caller = self._callers.get(impl.hook)
        names, positional, takes_kwargs, maybe_async = signature_of(impl.function)
        impl.argnames, impl.positional = names, positional
        impl.takes_kwargs, impl.maybe_async = takes_kwargs, maybe_async
        if caller is None:
            return
        unknown = [n for n in names if n not in caller.spec.args]
        if unknown:
            offered = ", ".join(caller.spec.args) or "no arguments"
            raise HookSpecError(
                f"{impl.plugin_id}: hook {impl.hook} implementation takes "
                f"{', '.join(repr(n) for n in unknown)}, which the hook does not provide "
                f"(it provides: {offered})"
            )

    def implementations_of(self, plugin_id: str) -> list[HookImpl]:
        """Every implementation one plugin has added, declared hooks or not."""
        with self._lock:
            callers = list(self._callers.values())
            pending = [i for impls in self._pending.values() for i in impls]
        found = [i for c in callers for i in c._impls if i.plugin_id == plugin_id]
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

        Events: ``call``, ``impl`` (before each implementation), ``result``, ``error``.
        Pass None to stop tracing. Tracing takes the slower, uncompiled path.
        """
        self._tracer = tracer
        for caller in list(self._callers.values()):
            caller._invalidate()

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

    def _bind(self, impl: HookImpl) -> None:
        if impl.resolve is None:
            raise HookSpecError(f"{impl.plugin_id}: hook {impl.hook} has no function")
        function = impl.resolve()
        impl.function = function
        self.check(impl)

    def _report(self, problem: Problem) -> None:
        self.problems.append(problem)
