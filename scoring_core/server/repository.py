"""Every served model by name (MLServer's model repository idea): a :class:`Repository`
builds one model per config file, a chain or an experiment, in the background after the
server has started, so ``/v2/health/live`` answers at once and readiness tells the truth:
a model is ready once it is built and while it can score.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import scoring_core
from scoring_core.engine import Engine
from scoring_core.errors import did_you_mean, exception_text
from scoring_core.experiments.config import is_experiment_file
from scoring_core.server.dataplane import ServedModel
from scoring_core.server.errors import NotReadyError, ProtocolError, UnknownModelError
from scoring_core.server.experiment_model import ServedExperiment

__all__ = ["Repository"]

logger = logging.getLogger("scoring_core.server")


class Repository:
    """Every served chain by name, built from config files in a background thread."""

    def __init__(self, configs: Sequence[str | Path]) -> None:
        self.configs = [Path(c) for c in configs]
        self.models: dict[str, ServedModel] = {}
        self.built = threading.Event()
        self.error: str | None = None
        self._closed = False
        self._lock = threading.Lock()

    def build(self) -> None:
        """Build each chain; on a failure, close the ones built and keep the error."""
        try:
            for path in self.configs:
                model = _served(path)
                with self._lock:
                    if model.name in self.models:
                        model.close()
                        raise ProtocolError(
                            f"two configs serve a model named {model.name!r} "
                            f"({path}); give one a name of its own"
                        )
                    if self._closed:  # shut down while building: it was never served
                        model.close()
                        break
                    self.models[model.name] = model
        except Exception as exc:
            self.error = (
                str(exc)
                if isinstance(exc, scoring_core.ScoringError | ProtocolError)
                else exception_text(exc)
            )
            logger.error("the served chains could not be built: %s", self.error)
            self.close()
        finally:
            self.built.set()

    @property
    def ready(self) -> bool:
        return (
            self.built.is_set()
            and self.error is None
            and not self._closed
            and all(m.ready for m in self.models.values())
        )

    def not_ready_reason(self) -> str:
        if self.error is not None:
            return f"the served chains could not be built: {self.error}"
        if not self.built.is_set():
            return "the served chains are still loading"
        if self._closed:
            return "the server is shutting down"
        waiting = [m.name for m in self.models.values() if not m.ready]
        return f"no step can score for chain(s): {', '.join(waiting)}"

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The served model ``name`` (at ``version`` when given); 404 or 503 otherwise."""
        if not self.built.is_set():
            raise NotReadyError("the served chains are still loading")
        model = self.models.get(name)
        if model is None:
            raise UnknownModelError(
                f"no model {name!r}{did_you_mean(name, self.models, list_known=False)}; "
                f"served: {', '.join(self.models) or 'none'}"
            )
        if version is not None and not model.serves_version(version):
            raise UnknownModelError(
                f"model {name!r} has no version {version!r}; it serves {model.version!r}"
                if model.version
                else f"model {name!r} has no version {version!r}; it serves no versioned model"
            )
        return model

    def first(self) -> ServedModel:
        """The model ``/invocations`` scores with (the first config's chain)."""
        if not self.built.is_set():
            raise NotReadyError("the served chains are still loading")
        if not self.models:
            raise NotReadyError(self.not_ready_reason())
        return next(iter(self.models.values()))

    def reload(self, name: str) -> dict[str, str]:
        """Reload the chain's steps; per step, the engine's outcome."""
        model = self.get(name)
        try:
            return model.reload()
        finally:
            model.forget_version()

    def close(self) -> list[str]:
        """Close every engine once (their cleanup hooks run); the errors, as text."""
        with self._lock:
            self._closed = True
            models = list(self.models.values())
        errors = []
        for model in models:
            try:
                model.close()
            except Exception as exc:
                errors.append(f"{model.name}: {exception_text(exc)}")
                logger.error("closing chain %r: %s", model.name, exception_text(exc))
        return errors


def _served(path: Path) -> ServedModel:
    """The model a config file serves: a chain, or an experiment (a top-level
    ``experiment:`` key) served as one model."""
    if is_experiment_file(path):
        return ServedExperiment.from_yaml(path)
    return ServedModel(Engine.from_yaml(path))
