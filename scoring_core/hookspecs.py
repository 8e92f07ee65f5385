"""Hook specifications: the contract between the engine and its plugins.

A plugin is a module or object with functions decorated by ``scoring_core.hookimpl``
whose names match the hooks below. Plugins reach the engine through the
``scoring_core`` entry-point group, or through the YAML's ``plugins:`` list.

An implementation may be a pluggy wrapper (``@hookimpl(wrapper=True)``, or the old-style
``hookwrapper=True``) around the plain ones. One plugin's implementation that raises
does not stop the others'; what happens to its error is said under each hook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from scoring_core.engine import Engine
    from scoring_core.scorer import RegisterScorer

PROJECT_NAME = "scoring_core"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def scoring_register_scorers(register: RegisterScorer) -> None:
    """Register the scorers this plugin provides.

    Called once per engine, while the engine is being built and before any step
    is loaded.

    :param register: call ``register(name, factory, options=None)`` once per scorer
        (:class:`scoring_core.RegisterScorer`). ``name`` is what a chain step names under
        ``scorer:``; ``factory`` is any callable that takes a
        :class:`scoring_core.ScorerContext` and returns a :class:`scoring_core.Scorer`
        (which may also have ``close()``, ``describe()``, ``watched_files()`` or
        cancellation: ``scoring_core.SupportsClose`` and its siblings); ``options`` is a
        pydantic model class or dataclass describing the step's ``options`` mapping.

    :return: nothing; register through the callback.

    For plugin authors: registering a name another plugin already registered is
    an error that names both plugins. Declare ``options`` so that a misspelt option
    is reported when the engine is built, with the YAML line, instead of at the
    first score.
    """


@hookspec
def scoring_engine_started(engine: Engine) -> None:
    """The engine has loaded every step and is ready to score.

    Called once per engine, at the end of ``Engine.from_yaml`` / ``Engine.from_config``.

    :param engine: the engine that started; ``engine.diagnostics()`` tells which steps
        are ready.

    :return: nothing.

    For plugin authors: use it to start what your plugin needs beside the scorers
    (metrics exporters, watchers). Do not score from this hook.
    """


@hookspec
def scoring_engine_closed(engine: Engine) -> None:
    """The engine has closed every scorer; release what the plugin still holds.

    Called exactly once per engine, from ``engine.close()``, after every scorer's
    ``close()`` has run (even when some of them raised).

    :param engine: the engine that closed; it can no longer score.

    :return: nothing.

    For plugin authors: this is the cleanup hook for resources your plugin opened
    in ``scoring_engine_started``. An exception here is reported with the scorers'
    close errors, and does not stop other plugins' cleanup.
    """


@hookspec
def scoring_exposures(experiment: str, records: Sequence[Mapping[str, Any]]) -> None:
    """New exposure records of an experiment: send them where they belong.

    Called on the experiment's exposure writer thread, never on the scoring path: at
    least once a second while new units are exposed, and once more when the experiment
    closes, with the records written since the last call (the same records, in the same
    order, as the JSON Lines file, when the experiment has one).

    :param experiment: the experiment's key (``experiment:`` of its file).
    :param records: one mapping per first exposure of a unit, with the keys ``ts``,
        ``experiment``, ``unit``, ``variant``, ``hash_version``, ``bucket``, ``weights``,
        ``scorer``, ``chain`` and ``provenance`` (docs/experiments.md).

    :return: nothing.

    For plugin authors: a database, a queue or an analytics pipeline. The plugin comes
    from the entry points, the experiment file's ``plugins:`` list, or
    ``Experiment.from_yaml(path, plugins=[...])``. Do not keep the mappings (copy what you
    need); an exception is logged and does not stop the other plugins or the scoring. A
    slow implementation delays the next write of the JSON Lines file, never a score.
    """
