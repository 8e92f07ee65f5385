"""The version folders, the labels file and the history file of a versioned model.

``labels.yaml`` (in the model folder, beside the version folders)::

    labels:             # label -> version; `version: stable` in a step serves labels[stable]
      stable: 1
      canary: 2
    versions:           # optional sha256 pins, per version
      1: {sha256: 0df725ea...}

``labels.history.jsonl`` (beside it): one JSON object per label move, appended by
``scoring models promote`` and ``rollback``: ``ts`` (ISO 8601 UTC), ``step``, ``label``,
``from`` (None for a new label), ``to``, ``by``, ``action`` (``promote`` | ``rollback``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from scoring_core.config.yaml import load_yaml_file
from scoring_core.errors import ConfigError

__all__ = [
    "HISTORY_FILE",
    "LABELS_FILE",
    "LABEL_PATTERN",
    "LATEST",
    "LabelMove",
    "Labels",
    "append_move",
    "read_history",
    "read_labels",
    "rollback_target",
    "version_folders",
    "write_labels",
]

LABELS_FILE = "labels.yaml"
HISTORY_FILE = "labels.history.jsonl"
LATEST = "latest"
LABEL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Labels:
    """What a labels file says: label -> version, and version -> pinned sha256."""

    path: Path
    labels: dict[str, int] = field(default_factory=dict)
    pins: dict[int, str] = field(default_factory=dict)
    exists: bool = False


@dataclass(frozen=True)
class LabelMove:
    """One line of the history file."""

    ts: str
    step: str
    label: str
    from_version: int | None
    to_version: int
    by: str
    action: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "step": self.step,
            "label": self.label,
            "from": self.from_version,
            "to": self.to_version,
            "by": self.by,
            "action": self.action,
        }


def version_folders(model_dir: Path) -> dict[int, Path]:
    """The numbered version folders of ``model_dir``, oldest first (other names ignored)."""
    found: dict[int, Path] = {}
    try:
        entries = list(os.scandir(model_dir))
    except OSError:
        return {}
    for entry in entries:
        if entry.name.isascii() and entry.name.isdigit() and entry.is_dir():
            found[int(entry.name)] = Path(entry.path)
    return dict(sorted(found.items()))


def check_label_name(label: str) -> str | None:
    """Why ``label`` cannot be a label name, or None when it can."""
    if label == LATEST:
        return f"{LATEST!r} is not a label: it means the newest version that loads"
    if not LABEL_PATTERN.match(label):
        return (
            f"label {label!r} is not a name: start with a letter, then letters, digits, "
            "'_', '.' or '-' (a number picks a version itself)"
        )
    return None


def read_labels(model_dir: Path) -> Labels:
    """The labels file of ``model_dir``; an empty :class:`Labels` when there is none.

    Raises :class:`~scoring_core.ConfigError` (with the file and the line) for a file that
    is not a mapping of ``labels:`` and ``versions:`` as shown in the module's doc.
    """
    path = model_dir / LABELS_FILE
    if not path.exists():
        return Labels(path)
    loaded = load_yaml_file(path)
    data = loaded.data if loaded.data is not None else {}

    def error(message: str, *key: str | int) -> ConfigError:
        return ConfigError(
            f"{message}; see docs/models.md for the labels file's shape",
            key_path=".".join(str(k) for k in key) or None,
            file=str(path),
            line=loaded.line_of(key),
        )

    if not isinstance(data, dict):
        raise error("the labels file must be a mapping with `labels:` and `versions:`")
    unknown = sorted(str(k) for k in data if k not in ("labels", "versions"))
    if unknown:
        raise error(f"unknown key(s) {', '.join(unknown)}; the file takes labels and versions")
    labels: dict[str, int] = {}
    for label, version in (data.get("labels") or {}).items():
        problem = check_label_name(str(label))
        if problem is not None:
            raise error(problem, "labels", label)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise error(f"label {label!r} must name a version number, not {version!r}", "labels")
        labels[str(label)] = version
    pins: dict[int, str] = {}
    for version, entry in (data.get("versions") or {}).items():
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise error(f"versions: {version!r} is not a version number", "versions")
        sha256 = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise error(
                f"versions: {version} needs {{sha256: <64 hex digits>}}", "versions", version
            )
        pins[version] = sha256.lower()
    return Labels(path, labels, pins, exists=True)


def write_labels(model_dir: Path, labels: Mapping[str, int], pins: Mapping[int, str]) -> Path:
    """Write the labels file atomically (a reader sees the old file or the new one)."""
    path = model_dir / LABELS_FILE
    data: dict[str, Any] = {"labels": dict(sorted(labels.items()))}
    if pins:
        data["versions"] = {v: {"sha256": pins[v]} for v in sorted(pins)}
    text = (
        "# Written by `scoring models promote/rollback`; the moves are in "
        f"{HISTORY_FILE}.\n" + yaml.safe_dump(data, sort_keys=False)
    )
    descriptor, staged = tempfile.mkstemp(prefix=".labels-", suffix=".yaml", dir=model_dir)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(staged, path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise
    return path


def append_move(
    model_dir: Path,
    *,
    step: str,
    label: str,
    from_version: int | None,
    to_version: int,
    by: str,
    action: str,
) -> LabelMove:
    """Append one move to the history file (created when missing) and return it."""
    move = LabelMove(
        ts=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        step=step,
        label=label,
        from_version=from_version,
        to_version=to_version,
        by=by,
        action=action,
    )
    with (model_dir / HISTORY_FILE).open("a", encoding="utf-8") as file:
        file.write(json.dumps(move.as_dict()) + "\n")
    return move


def read_history(model_dir: Path) -> list[LabelMove]:
    """Every move recorded in the history file, oldest first (none when it is missing)."""
    path = model_dir / HISTORY_FILE
    if not path.exists():
        return []
    moves = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            moves.append(
                LabelMove(
                    ts=str(data["ts"]),
                    step=str(data.get("step", "")),
                    label=str(data["label"]),
                    from_version=None if data.get("from") is None else int(data["from"]),
                    to_version=int(data["to"]),
                    by=str(data.get("by", "")),
                    action=str(data.get("action", "promote")),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"line {number} is not a label move ({type(exc).__name__}: {exc}); each line "
                'is {"ts", "label", "from", "to", "by", "action"} JSON',
                file=str(path),
                line=number,
            ) from None
    return moves


def rollback_target(history: list[LabelMove], label: str) -> int | None:
    """The version ``label`` pointed at before its latest promotion still in force.

    Promotions stack up and each rollback undoes the latest one left, so two rollbacks
    after two promotions go back two steps (never forth again). None when nothing is left
    to undo, or the label had no version before.
    """
    stack: list[int | None] = []
    for move in history:
        if move.label != label:
            continue
        if move.action == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(move.from_version)
    return stack[-1] if stack else None
