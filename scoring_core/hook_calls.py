"""Calling hook implementations through pluggy, so that one plugin's failure stays its own.

pluggy runs a hook's implementations, and the wrappers around them, in one loop that the
first exception stops. The engine's hooks need the opposite (one broken plugin must not
take the host down), so :class:`~scoring_core.plugins.PluginHost` puts a guard around
each implementation it registers (:func:`guard_implementations`) and calls the hook
through pluggy (:func:`call_guarded`):

- a plain implementation's guard runs it; an exception is recorded, with the plugin's
  name, for the current call, and pluggy goes on as if it had returned ``None``;
- a wrapper stays a wrapper (``wrapper=True``, or the old-style ``hookwrapper=True``): its
  guard is a wrapper of the same kind that drives the plugin's generator, so the code
  before and after its ``yield`` runs once per call, around the plain implementations.
  An exception on either side of the ``yield`` is recorded the same way, and the result
  passes through as if the wrapper were not there.

Since plain implementations do not raise into pluggy, a wrapper sees their results, never
their exceptions; those go to the engine, as each hook's documentation says.
Outside :func:`call_guarded` (a hook called straight through ``pm.hook``) a guard lets
exceptions propagate, as pluggy would. Every guard logs its call when asked to
(``SCORING_TRACE_PLUGINS=1``).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import pluggy

__all__ = ["Failure", "call_guarded", "guard_implementations"]

logger = logging.getLogger("scoring_core")

Failure = tuple[str, Exception]
"""(the plugin's name, what its implementation raised)"""

_failures: ContextVar[list[Failure] | None] = ContextVar("scoring_hook_failures", default=None)


def call_guarded(pm: pluggy.PluginManager, hook: str, kwargs: Mapping[str, Any]) -> list[Failure]:
    """Call ``hook`` through pluggy; return what the guarded implementations raised, in order."""
    failures: list[Failure] = []
    token = _failures.set(failures)
    try:
        getattr(pm.hook, hook)(**kwargs)
    finally:
        _failures.reset(token)
    return failures


def guard_implementations(
    pm: pluggy.PluginManager,
    plugin: object,
    *,
    replace: Mapping[str, Mapping[str, Any]],
    trace: bool,
) -> None:
    """Put a guard around each hook implementation of ``plugin``, registered in ``pm``.

    :param replace: hook name -> the arguments this plugin gets instead of the call's
        (each plugin's own ``register`` callback, so the host knows who registered what).
    :param trace: log each call of each implementation at INFO on ``scoring_core``.
    """
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin:
                guard = _guarded(impl, caller.name, replace.get(caller.name, {}), trace)
                impl.function = guard  # type: ignore[misc]  # Final to pluggy's users; ours


class _Run:
    """One implementation's part in one hook call: its time, its outcome, its failure."""

    def __init__(self, plugin: str, hook: str, trace: bool) -> None:
        self.plugin = plugin
        self.hook = hook
        self.trace = trace
        self.seconds = 0.0
        self.outcome = "returned"

    def attempt(self, step: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """``(True, step(*args))``, or ``(False, None)`` once the exception is recorded."""
        started = time.perf_counter()
        try:
            return True, step(*args)
        except BaseException as exc:
            self.outcome = f"raised {type(exc).__name__}"
            failures = _failures.get()
            if failures is None or not isinstance(exc, Exception):
                raise
            failures.append((self.plugin, exc))
            return False, None
        finally:
            self.seconds += time.perf_counter() - started

    def log(self) -> None:
        if self.trace:
            logger.info(
                "hook %s in plugin %r %s after %.3f ms",
                self.hook,
                self.plugin,
                self.outcome,
                self.seconds * 1e3,
            )


def _guarded(
    impl: pluggy.HookImpl, hook: str, replace: Mapping[str, Any], trace: bool
) -> Callable[..., Any]:
    """The guard for one implementation: plain, new-style wrapper or old-style wrapper."""
    function = impl.function

    def start(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Call the plugin's function with its own arguments (pluggy passes them by position)."""
        args = [replace.get(name, value) for name, value in zip(impl.argnames, args, strict=True)]
        kwargs = {name: replace.get(name, value) for name, value in kwargs.items()}
        return function(*args, **kwargs)

    if impl.wrapper:

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
            run = _Run(impl.plugin_name, hook, trace)
            try:
                started, teardown = run.attempt(_until_yield, start, args, kwargs)
                if not started:
                    return (yield)
                try:
                    result = yield
                except BaseException as exc:  # not from a guarded implementation: pass it on
                    return _throw(teardown, exc)
                finished, value = run.attempt(_finish, teardown, result)
                return value if finished else result
            finally:
                run.log()

        return wrapper

    if impl.hookwrapper:

        @functools.wraps(function)
        def old_style(*args: Any, **kwargs: Any) -> Generator[None, Any, None]:
            run = _Run(impl.plugin_name, hook, trace)
            try:
                started, teardown = run.attempt(_until_yield, start, args, kwargs)
                outcome = yield  # a pluggy.Result, which the plugin's teardown may change
                if started:
                    run.attempt(_finish, teardown, outcome)
            finally:
                run.log()

        return old_style

    @functools.wraps(function)
    def plain(*args: Any, **kwargs: Any) -> Any:
        run = _Run(impl.plugin_name, hook, trace)
        try:
            return run.attempt(start, args, kwargs)[1]
        finally:
            run.log()

    return plain


def _until_yield(
    start: Callable[[Sequence[Any], Mapping[str, Any]], Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> Generator[None, Any, Any]:
    """Start a wrapper and run it up to its ``yield``."""
    generator: Generator[None, Any, Any] = start(args, kwargs)
    try:
        next(generator)
    except StopIteration:
        raise RuntimeError("the wrapper returned without yielding; yield exactly once") from None
    return generator


def _finish(generator: Generator[None, Any, Any], sent: Any) -> Any:
    """Run a wrapper from its ``yield`` to its end; return what it returned."""
    try:
        generator.send(sent)
    except StopIteration as stop:
        return stop.value
    generator.close()
    raise RuntimeError("the wrapper yielded a second time; yield exactly once")


def _throw(generator: Generator[None, Any, Any], exc: BaseException) -> Any:
    """Raise ``exc`` at a wrapper's ``yield``, as pluggy does; return what it returned."""
    try:
        generator.throw(exc)
    except StopIteration as stop:
        return stop.value
    generator.close()
    raise RuntimeError("the wrapper yielded a second time; yield exactly once") from exc
