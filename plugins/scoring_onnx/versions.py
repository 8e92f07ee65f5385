"""Which model file a step loads: one file, or a version from a folder of versions.

``model:`` may name a folder in Triton's layout, ``<folder>/<N>/model.onnx`` (folders whose
names are not numbers are ignored), with a labels file beside the versions
(:data:`scoring_core.models.LABELS_FILE`). ``version:`` picks what is served:

* ``latest`` (the default): the newest version that passes every check and self-test;
  the failures of newer ones are reported (diagnostics, logs), never served;
* a number: that version, or nothing;
* a label: the version the label names (the step's ``labels:`` first, then the labels
  file), or nothing.

Pins: ``sha256: {N: <hex>}`` in the step's options and ``versions: {N: {sha256: <hex>}}``
in the labels file; a version pinned in both must be pinned to the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scoring_core import ConfigError
from scoring_core.models import LABELS_FILE, LATEST, read_labels, version_folders
from scoring_onnx.errors import OnnxConfigError, OnnxLoadError
from scoring_onnx.options import OnnxOptions

__all__ = ["MODEL_FILE_NAME", "Candidate", "VersionPlan", "plan_versions"]

MODEL_FILE_NAME = "model.onnx"


@dataclass(frozen=True)
class Candidate:
    """One version to try: its number, its model file and its pin (None: not pinned)."""

    version: int
    path: Path
    sha256: str | None


@dataclass(frozen=True)
class VersionPlan:
    """The versions to try, in order (newest first for ``latest``), and what chose them."""

    model_dir: Path
    policy: int | str
    label: str | None
    candidates: tuple[Candidate, ...]
    available: tuple[int, ...]
    labels: dict[str, int]
    labels_file: Path

    def describe(self) -> dict[str, object]:
        return {
            "model_dir": str(self.model_dir),
            "version_policy": self.policy,
            "label": self.label,
            "versions_available": list(self.available),
            "labels": dict(self.labels),
            "labels_file": str(self.labels_file),
        }


def single_file_options(options: OnnxOptions, path: Path) -> None:
    """Refuse the versions-only options for a model that is one file."""
    if options.version != LATEST or options.labels or isinstance(options.sha256, dict):
        given = [
            key
            for key, used in (
                ("version", options.version != LATEST),
                ("labels", bool(options.labels)),
                ("sha256 per version", isinstance(options.sha256, dict)),
            )
            if used
        ]
        raise OnnxConfigError(
            f"{', '.join(given)} need(s) `model:` to name a folder of versions "
            f"(<folder>/1/{MODEL_FILE_NAME}, ...), but {path} is a file. Point `model:` at the "
            "folder, or remove them.",
            path=path,
        )


def plan_versions(model_dir: Path, options: OnnxOptions) -> VersionPlan:
    """The versions of ``model_dir`` to try for ``options``; :class:`OnnxLoadError` when
    none can be (no version folders, an unknown label or version, a bad labels file)."""
    if isinstance(options.sha256, str):
        raise OnnxConfigError(
            f"model {model_dir} is a folder of versions: pin each version, "
            "`sha256: {1: <hex>, 2: <hex>}`, or pin them in its labels file",
            path=model_dir,
        )
    try:
        file = read_labels(model_dir)
    except ConfigError as exc:
        raise OnnxLoadError(
            f"the labels file of model folder {model_dir} cannot be used: {exc}",
            path=file_of(model_dir),
        ) from None
    pins = dict(file.pins)
    for version, digest in (options.sha256 or {}).items():
        if version in pins and pins[version] != digest:
            raise OnnxLoadError(
                f"version {version} of {model_dir} is pinned twice, to different bytes: sha256 "
                f"{digest} in the step's options and {pins[version]} in {file.path}; keep one",
                path=model_dir,
            )
        pins[version] = digest
    labels = {**file.labels, **options.labels}
    folders = version_folders(model_dir)
    if not folders:
        raise OnnxLoadError(
            f"model path {model_dir} is not a regular file, nor a folder of versions: it has "
            f"no numbered version folder ({model_dir}/1/{MODEL_FILE_NAME}; names that are not "
            "numbers are ignored). Point `model:` at the .onnx file itself, or put each "
            "version in a numbered folder (docs/models.md).",
            path=model_dir,
        )
    available = tuple(folders)
    policy = options.version
    label: str | None = None
    if policy == LATEST:
        chosen = sorted(available, reverse=True)
    else:
        if isinstance(policy, str):
            label = policy
            if label not in labels:
                known = ", ".join(f"{k}: {v}" for k, v in sorted(labels.items())) or "none"
                raise OnnxLoadError(
                    f"label {label!r} names no version of {model_dir} (labels: {known}); add it "
                    f"to {file.path.name} with `scoring models promote CONFIG STEP {label} "
                    "VERSION`, or to the step's `labels:`",
                    path=model_dir,
                )
            wanted = labels[label]
        else:
            wanted = policy
        if wanted not in folders:
            via = f"label {label!r} names version {wanted}" if label else f"version {wanted}"
            raise OnnxLoadError(
                f"{via}, but {model_dir} has no folder {wanted}/ (versions: "
                f"{', '.join(map(str, available))})",
                path=model_dir,
            )
        chosen = [wanted]
    candidates = tuple(Candidate(v, folders[v] / MODEL_FILE_NAME, pins.get(v)) for v in chosen)
    return VersionPlan(model_dir, policy, label, candidates, available, labels, file.path)


def file_of(model_dir: Path) -> Path:
    return model_dir / LABELS_FILE
