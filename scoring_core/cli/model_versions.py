"""The work behind ``scoring models list``, ``promote`` and ``rollback`` (no click here).

A step's versions are checked the way the engine loads them: an engine is built from the
config with that step alone and ``version:`` set to the version, so every check of the
step's scorer (sha256 pins, the model's features, its outputs, its self-test and the
step's ``self_test:``) runs exactly as it would when serving. A label is moved only to a
version that passes; each move is appended to the history file beside the labels.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scoring_core.config import load_yaml_file, parse_config
from scoring_core.config.yaml import LoadedYaml
from scoring_core.errors import ConfigError, ScoringError, exception_text
from scoring_core.models import (
    HISTORY_FILE,
    LABELS_FILE,
    LATEST,
    LabelMove,
    append_move,
    check_label_name,
    read_history,
    read_labels,
    rollback_target,
    version_folders,
    with_step_version,
    write_labels,
)

__all__ = [
    "LabelMoveError",
    "VersionCheck",
    "VersionedStep",
    "check_version",
    "list_versions",
    "move_label",
    "versioned_steps",
]

MODEL_FILE_NAME = "model.onnx"


class LabelMoveError(ScoringError):
    """A promote or rollback that would point a label at a version that cannot serve,
    or that has nothing to move to; the message says why and what to do."""


@dataclass
class VersionCheck:
    version: int
    path: Path
    sha256: str | None
    pinned: str | None
    ok: bool
    reason: str | None
    self_test: str | None = None
    labels: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": str(self.path),
            "sha256": self.sha256,
            "pinned_sha256": self.pinned,
            "checks_passed": self.ok,
            "reason": self.reason,
            "self_test": self.self_test,
            "labels": self.labels,
        }


@dataclass(frozen=True)
class VersionedStep:
    """A chain step whose ``model:`` names a folder of versions."""

    index: int
    name: str
    model_dir: Path
    options: dict[str, Any]
    policy: int | str

    @property
    def yaml_labels(self) -> dict[str, int]:
        labels = self.options.get("labels") or {}
        return {str(k): v for k, v in labels.items()}

    @property
    def yaml_pins(self) -> dict[int, str]:
        pins = self.options.get("sha256")
        return {int(k): str(v).lower() for k, v in pins.items()} if isinstance(pins, dict) else {}


def _load(config: Path) -> tuple[LoadedYaml, Path]:
    source = load_yaml_file(config)
    parse_config(source)  # a bad config is refused here, with its line
    return source, config.resolve().parent


def versioned_steps(config: Path) -> list[VersionedStep]:
    """The steps of ``config`` whose ``model:`` option names a folder."""
    source, base_dir = _load(config)
    found = []
    for index, step in enumerate(source.data.get("chain") or []):
        options = step.get("options") or {}
        model = options.get("model")
        if not isinstance(model, str):
            continue
        path = Path(model).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if path.is_dir():
            found.append(
                VersionedStep(
                    index, str(step["name"]), path, options, options.get("version", LATEST)
                )
            )
    return found


def find_step(config: Path, name: str) -> VersionedStep:
    steps = versioned_steps(config)
    for step in steps:
        if step.name == name:
            return step
    names = ", ".join(s.name for s in steps) or "none"
    raise ConfigError(
        f"step {name!r} has no folder of model versions (steps with one: {names}); its "
        "`model:` must name a folder of numbered versions (docs/models.md)",
        file=str(config),
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """The check engine's warnings are its answer, not news: keep them off stderr."""
    logger = logging.getLogger("scoring_core")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def check_version(config: Path, step: VersionedStep, version: int) -> VersionCheck:
    """Load ``version`` of ``step`` as the engine would serve it; say whether it passed."""
    from scoring_core.engine import Engine

    source, base_dir = _load(config)
    folder = version_folders(step.model_dir).get(version)
    path = (folder or step.model_dir / str(version)) / MODEL_FILE_NAME
    pins = {**read_labels(step.model_dir).pins, **step.yaml_pins}
    check = VersionCheck(version, path, _sha256(path), pins.get(version), False, None)
    if folder is None:
        check.reason = f"{step.model_dir} has no version folder {version}/"
        return check
    data = with_step_version(source.data, step.name, version)
    config_step = data["chain"][step.index]
    for key in ("circuit_breaker", "optional"):
        config_step.pop(key, None)
    data["chain"] = [config_step]
    for key in ("require", "watch", "deadline_ms"):
        data.pop(key, None)
    data["on_exhausted"] = "raise"
    data.setdefault("name", config.stem)
    try:
        with _quiet(), Engine.from_config(data, base_dir) as engine:
            described = engine.diagnostics()["steps"][0]
    except ScoringError as exc:
        check.reason = exception_text(exc)
        return check
    if described["status"] != "ready":
        check.reason = described["reason"]
        return check
    details = described.get("details") or {}
    check.ok = True
    check.self_test = details.get("self_test")
    return check


def list_versions(config: Path, step: VersionedStep) -> dict[str, Any]:
    """Every version of ``step`` with its checks, the labels, and what the step serves."""
    labels_file = read_labels(step.model_dir)
    labels = {**labels_file.labels, **step.yaml_labels}
    checks = [check_version(config, step, v) for v in version_folders(step.model_dir)]
    for check in checks:
        check.labels = sorted(k for k, v in labels.items() if v == check.version)
    policy = step.policy
    if policy == LATEST:
        passing = [c.version for c in checks if c.ok]
        served = max(passing) if passing else None
    else:
        wanted = labels.get(policy) if isinstance(policy, str) else policy
        served = next((c.version for c in checks if c.version == wanted and c.ok), None)
    return {
        "step": step.name,
        "model_dir": str(step.model_dir),
        "version_policy": policy,
        "serves": served,
        "labels": labels,
        "labels_in_config": sorted(step.yaml_labels),
        "labels_file": str(labels_file.path),
        "versions": [c.as_dict() for c in checks],
    }


def move_label(
    config: Path,
    step_name: str,
    label: str,
    version: int | None,
    *,
    by: str,
) -> tuple[LabelMove | None, VersionCheck]:
    """Point ``label`` at ``version`` (a promote) or, with None, back at its previous
    version from the history (a rollback); only a version that passes its checks.

    Returns the move appended to the history (None when the label already pointed there)
    and the check of the version it now points at.
    """
    step = find_step(config, step_name)
    problem = check_label_name(label)
    if problem is not None:
        raise LabelMoveError(problem)
    if label in step.yaml_labels:
        raise LabelMoveError(
            f"label {label!r} of step {step.name!r} is set in {config} (the step's `labels:`), "
            f"which wins over {LABELS_FILE}; edit it there, or remove it from {config.name} to "
            "move it with promote and rollback"
        )
    current = read_labels(step.model_dir)
    before = current.labels.get(label)
    action = "promote"
    if version is None:
        action = "rollback"
        history = [m for m in read_history(step.model_dir) if m.label == label]
        version = rollback_target(history, label)
        if version is None:
            raise LabelMoveError(
                f"label {label!r} of step {step.name!r} has no earlier version to go back to "
                f"in {step.model_dir / HISTORY_FILE} (moves recorded: {len(history)}); point "
                f"it at a version with `scoring models promote {config} {step.name} {label} "
                "VERSION`"
            )
    check = check_version(config, step, version)
    if not check.ok:
        raise LabelMoveError(
            f"version {version} of step {step.name!r} ({check.path}) cannot serve, so label "
            f"{label!r} stays at {before if before is not None else 'no version'}: "
            f"{check.reason}"
        )
    if before == version:
        return None, check
    write_labels(step.model_dir, {**current.labels, label: version}, current.pins)
    move = append_move(
        step.model_dir,
        step=step.name,
        label=label,
        from_version=before,
        to_version=version,
        by=by,
        action=action,
    )
    return move, check


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
