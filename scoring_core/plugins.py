"""Finding plugins, loading them one by one, and collecting the scorers they register.

Each engine gets its own :class:`PluginHost` (and pluggy ``PluginManager``), built
when the engine is built; nothing is loaded at import time.

Where plugins come from, in this order:

1. the ``scoring_core`` entry-point group (first-party plugins come this way too),
   filtered by ``SCORING_LOAD_PLUGINS`` and the YAML's ``disable_plugins``;
2. modules named in the YAML's ``plugins:`` list (a dotted module name, or a
   ``.py`` file inside the YAML file's folder: ``../x.py`` and absolute paths are a
   :class:`ConfigError`), each loaded once however often it is listed;
3. plugin objects passed in code (``Engine.from_config(..., plugins=[...])``).

A plugin that fails to import is recorded and skipped, unless
``SCORING_STRICT_PLUGINS=1``. An entry point left out by ``SCORING_LOAD_PLUGINS`` or
``disable_plugins`` is recorded as filtered, with why, so a step naming one of its
scorers says so rather than "unknown scorer".
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from scoring_core import hookspecs
from scoring_core.errors import ConfigError, PluginError, did_you_mean, exception_text
from scoring_core.hook_calls import call_guarded, guard_implementations
from scoring_core.scorer import RegisterScorer

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginHost",
    "PluginInfo",
    "RegisterScorer",  # defined in scoring_core.scorer, public as scoring_core.RegisterScorer
    "ScorerRegistration",
]

ENTRY_POINT_GROUP = "scoring_core"
LOAD_PLUGINS_ENV = "SCORING_LOAD_PLUGINS"
STRICT_PLUGINS_ENV = "SCORING_STRICT_PLUGINS"
TRACE_PLUGINS_ENV = "SCORING_TRACE_PLUGINS"

logger = logging.getLogger("scoring_core")


@dataclass(frozen=True)
class ScorerRegistration:
    """A scorer name, how to build it, what options it takes, and who supplied it."""

    name: str
    factory: Callable[..., Any]
    options: type[Any] | None
    plugin: str
    distribution: str | None
    version: str | None


@dataclass
class PluginInfo:
    """One plugin as the host saw it; ``error`` is set when it failed to load."""

    name: str
    source: str  # "entry point", "config", "code"
    distribution: str | None = None
    version: str | None = None
    scorers: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "distribution": self.distribution,
            "version": self.version,
            "scorers": list(self.scorers),
            "hooks": list(self.hooks),
            "error": self.error,
        }


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class FilteredPlugin:
    """An installed entry point the host did not load, and why."""

    name: str
    distribution: str | None
    version: str | None
    reason: str
    entry_point: Any = field(repr=False, compare=False)

    def scorers(self) -> list[str]:
        """The scorers it would register (it is imported to find out; [] if it fails)."""
        names: list[str] = []

        class _Probe:
            @staticmethod
            @pluggy.HookimplMarker(hookspecs.PROJECT_NAME)
            def scoring_register_scorers(register: RegisterScorer) -> None: ...

        try:
            module = self.entry_point.load()
            probe = pluggy.PluginManager(hookspecs.PROJECT_NAME)
            probe.add_hookspecs(hookspecs)
            probe.register(module)
            probe.hook.scoring_register_scorers(register=lambda name, *a, **k: names.append(name))
        except (Exception, SystemExit):  # a plugin broken on import says nothing here
            return []
        return names


def _allowed_entry_points() -> set[str] | None:
    """None means all; otherwise the set of entry-point names to load."""
    raw = os.environ.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginHost:
    """Loads plugins for one engine and keeps the scorer registry."""

    def __init__(
        self,
        *,
        config_plugins: Sequence[str] = (),
        disabled: Iterable[str] = (),
        code_plugins: Sequence[Any] = (),
        base_dir: Path | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.scorers: dict[str, ScorerRegistration] = {}
        self._strict = _env_flag(STRICT_PLUGINS_ENV)
        self._disabled = set(disabled)
        self._base_dir = base_dir or Path.cwd()
        self._by_plugin_name: dict[str, PluginInfo] = {}
        self._trace = _env_flag(TRACE_PLUGINS_ENV)
        self.filtered: list[FilteredPlugin] = []
        self.filter_notes: list[str] = []  # e.g. SCORING_LOAD_PLUGINS naming nothing installed
        self._loaded_refs: set[str] = set()
        self._load_entry_points()
        for ref in config_plugins:
            self._load_config_plugin(ref)
        for index, obj in enumerate(code_plugins):
            name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{index}"
            self._register(obj, PluginInfo(name=str(name), source="code"))
        self._check_hooks()
        self._collect_scorers()

    # -- loading ----------------------------------------------------------------------------

    def _load_entry_points(self) -> None:
        allowed = _allowed_entry_points()
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        seen: dict[str, str | None] = {}
        raw = os.environ.get(LOAD_PLUGINS_ENV, "")
        for ep in sorted(eps, key=lambda e: e.name):
            reason = None
            if allowed is not None and ep.name not in allowed:
                reason = f"{LOAD_PLUGINS_ENV}={raw!r} does not list it"
            elif ep.name in self._disabled:
                reason = "the config's `disable_plugins` lists it"
            if reason is not None:
                dist = ep.dist
                self.filtered.append(
                    FilteredPlugin(
                        ep.name,
                        dist.name if dist is not None else None,
                        dist.version if dist is not None else None,
                        reason,
                        ep,
                    )
                )
                continue
            dist = ep.dist
            info = PluginInfo(
                name=ep.name,
                source="entry point",
                distribution=dist.name if dist is not None else None,
                version=dist.version if dist is not None else None,
            )
            if ep.name in seen:
                if seen[ep.name] == info.distribution:
                    continue  # the same distribution visible twice on sys.path
                clash = PluginError(
                    f"entry point {ep.name!r} is provided by two distributions: "
                    f"{seen[ep.name]} and {info.distribution}; the second is skipped. "
                    "Uninstall one, or keep one with SCORING_LOAD_PLUGINS"
                )
                self._failed(info, clash, "name clash")
                continue
            seen[ep.name] = info.distribution
            try:
                obj = ep.load()
            except (Exception, SystemExit) as exc:  # a broken plugin must not take the host down
                self._failed(info, exc, f"cannot import {ep.value!r}")
                continue
            self._register(obj, info)
        installed = {ep.name for ep in eps}
        for name in sorted((allowed or set()) - installed):
            hint = did_you_mean(name, installed)
            self.filter_notes.append(
                f"{LOAD_PLUGINS_ENV}={raw!r} names {name!r}, which no installed plugin is "
                f"called{hint}"
            )
        for note in self.filter_notes:
            logger.warning("%s", note)

    def _load_config_plugin(self, ref: str) -> None:
        info = PluginInfo(name=ref, source="config")
        is_file = ref.endswith(".py") or "/" in ref or os.sep in ref
        path = local_plugin_path(ref, self._base_dir) if is_file else None
        key = str(path) if path is not None else ref
        if key in self._loaded_refs:
            return  # listed twice (or as x.py and ./x.py): loaded once
        self._loaded_refs.add(key)
        try:
            obj = _import_file(path) if path is not None else importlib.import_module(ref)
        except (Exception, SystemExit) as exc:
            self._failed(info, exc, f"cannot import plugin {ref!r} named in `plugins:`")
            return
        self._register(obj, info)

    def _failed(self, info: PluginInfo, exc: BaseException, what: str) -> None:
        info.error = f"{what}: {exception_text(exc)}"
        self.plugins.append(info)
        if self._strict:
            raise PluginError(
                f"plugin {info.name!r} failed to load ({info.error}); "
                f"unset {STRICT_PLUGINS_ENV} to start without it"
            ) from exc
        logger.warning(
            "plugin %r failed to load and is skipped: %s (set %s=1 to make this fatal)",
            info.name,
            info.error,
            STRICT_PLUGINS_ENV,
        )

    def _register(self, obj: Any, info: PluginInfo) -> None:
        if info.name in self._disabled:
            return
        name = info.name
        if self.pm.has_plugin(name) or self.pm.is_registered(obj):
            existing = self._by_plugin_name.get(name)
            if existing is not None and self.pm.is_registered(obj):
                return  # the same module named twice: once is enough
            name = f"{name}#{len(self.plugins)}"
            info.name = name
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:
            self._failed(info, exc, "cannot register")
            return
        guard_implementations(
            self.pm,
            obj,
            replace={"scoring_register_scorers": {"register": self._register_callback(info)}},
            trace=self._trace,
        )
        info.hooks = sorted(
            caller.name for caller in self.pm.get_hookcallers(obj) or [] if caller.name
        )
        self.plugins.append(info)
        self._by_plugin_name[name] = info

    def _check_hooks(self) -> None:
        """Refuse hook names no spec knows (a misspelt hook would be silently ignored).

        The plugin at fault is unregistered and its error recorded, like an import
        failure; with SCORING_STRICT_PLUGINS=1 it is fatal.
        """
        known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("scoring_")))
        for _ in range(len(self.plugins) + 1):
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                error = PluginError(
                    f"{exc}; hook names start with `scoring_` and must match one of: {known}"
                )
                name = self.pm.get_name(exc.plugin)
                self.pm.unregister(exc.plugin)
                info = self._by_plugin_name.pop(name or "", None)
                if info is None or self._strict or info.source == "code":
                    raise error from None
                self.plugins.remove(info)
                self._failed(info, error, "unknown hook")

    def _collect_scorers(self) -> None:
        """Call ``scoring_register_scorers``: each plugin gets a ``register`` of its own."""
        failures = call_guarded(
            self.pm, "scoring_register_scorers", {"register": _register_outside_a_plugin}
        )
        for _, exc in failures:
            if isinstance(exc, PluginError):  # a clash or a bad factory: no engine
                raise exc
        for plugin, exc in failures:
            info = self._by_plugin_name[plugin]
            info.error = f"scoring_register_scorers raised {exception_text(exc)}"
            if self._strict:
                raise PluginError(f"plugin {info.name!r}: {info.error}") from exc
            logger.warning("plugin %r: %s", info.name, info.error)

    def _register_callback(self, info: PluginInfo) -> RegisterScorer:
        def register(
            name: str, factory: Callable[..., Any], *, options: type[Any] | None = None
        ) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {info.name!r} registered a scorer with no name")
            if not callable(factory):
                raise PluginError(
                    f"plugin {info.name!r} registered scorer {name!r} with a factory that is "
                    "not callable; pass a class or function that takes the ScorerContext"
                )
            existing = self.scorers.get(name)
            if existing is not None:
                raise PluginError(
                    f"scorer {name!r} is registered twice: by plugin {existing.plugin!r}"
                    f"{_dist_label(existing.distribution, existing.version)} and by plugin "
                    f"{info.name!r}{_dist_label(info.distribution, info.version)}; uninstall "
                    "one, or disable one with SCORING_LOAD_PLUGINS or `disable_plugins:`"
                )
            self.scorers[name] = ScorerRegistration(
                name=name,
                factory=factory,
                options=options,
                plugin=info.name,
                distribution=info.distribution,
                version=info.version,
            )
            info.scorers.append(name)

        return register

    # -- use --------------------------------------------------------------------------------

    def call_each(self, hook_name: str, **kwargs: Any) -> list[Exception]:
        """Call ``hook_name`` through pluggy, wrappers included; return the errors, not raise.

        One plugin's implementation that raises does not stop the others'
        (:mod:`scoring_core.hook_calls`); each error gets a note naming its plugin and hook.
        """
        errors: list[Exception] = []
        for plugin, exc in call_guarded(self.pm, hook_name, kwargs):
            exc.add_note(f"in plugin {plugin!r}, hook {hook_name}")
            errors.append(exc)
        return errors

    def load_errors(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error]


def _register_outside_a_plugin(
    name: str, factory: Callable[..., Any], *, options: type[Any] | None = None
) -> None:
    """The ``register`` a hook call passes; every plugin the host loaded gets its own instead."""
    raise PluginError(
        f"scorer {name!r} was registered by a plugin the engine did not load; load plugins "
        "through entry points, the YAML's `plugins:` or Engine.from_config(plugins=[...])"
    )


def _dist_label(distribution: str | None, version: str | None) -> str:
    if distribution is None:
        return ""
    return f" ({distribution} {version})" if version else f" ({distribution})"


def local_plugin_path(ref: str, base_dir: Path) -> Path:
    """The file a ``plugins:`` entry names, which must sit inside the config's folder.

    An absolute path, or one that leaves the folder (``../x.py``, or a symlink out of it),
    is a :class:`ConfigError`: a config names its own plugins, not code elsewhere.
    """
    base = base_dir.resolve()
    if Path(ref).is_absolute():
        raise ConfigError(
            f"local plugin {ref!r} is an absolute path; `plugins:` takes module names or .py "
            f"files inside the config's folder ({base}): copy the file there, or install it "
            "as a package and name its module"
        )
    path = (base / ref).resolve()
    if not path.is_relative_to(base):
        raise ConfigError(
            f"local plugin {ref!r} is outside the config's folder ({base}); `plugins:` takes "
            "module names or .py files inside that folder: move the file there, or install it "
            "as a package and name its module"
        )
    return path


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    # One module per file: two folders' `plugin.py` must not share a module name.
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    module_name = f"scoring_local_plugin_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def unknown_scorer_error(
    scorer: str, host: PluginHost, *, key_path: str, file: str | None, line: int | None
) -> ConfigError:
    """The ConfigError for a chain step naming a scorer nobody registered.

    It lists the known scorers (with a did-you-mean) and the plugins that failed to
    load, since the scorer may be missing because its plugin did.
    """
    names = sorted(host.scorers)
    listing = ", ".join(names) if names else "none (no plugin is loaded; see `scoring plugins`)"
    hint = did_you_mean(scorer, names, list_known=False)
    for plugin in host.filtered:
        if scorer in plugin.scorers():
            dist = _dist_label(plugin.distribution, plugin.version)
            return ConfigError(
                f"scorer {scorer!r} is installed (entry point {plugin.name!r}{dist}) but "
                f"filtered out: {plugin.reason}; add {plugin.name!r} to {LOAD_PLUGINS_ENV} "
                "(or unset it), or take it out of `disable_plugins`"
                + "".join(f"; {note}" for note in host.filter_notes),
                key_path=key_path,
                file=file,
                line=line,
            )
    broken = [p for p in host.plugins if p.error]
    failures = (
        "; plugins that failed to load: " + "; ".join(f"{p.name} ({p.error})" for p in broken)
        if broken
        else ""
    )
    notes = "".join(f"; {note}" for note in host.filter_notes)
    filtered = (
        "; installed but filtered out: "
        + "; ".join(f"{p.name} ({p.reason})" for p in host.filtered)
        if host.filtered
        else ""
    )
    return ConfigError(
        f"unknown scorer {scorer!r}{hint} (known scorers: {listing}){failures}{notes}{filtered}",
        key_path=key_path,
        file=file,
        line=line,
    )
