"""The ``onnx`` scorer's options: :class:`OnnxOptions`.

Everything that can be checked without opening the model file is checked here, so the
engine reports a bad option with its YAML line when it is built, not when the step loads.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scoring_core.models import LATEST, check_label_name

__all__ = ["DEFAULT_MAX_BATCH_ROWS", "DEFAULT_MAX_MODEL_BYTES", "CustomOpLibrary", "OnnxOptions"]

DEFAULT_MAX_BATCH_ROWS = 2_048
DEFAULT_MAX_MODEL_BYTES = 512 * 1024 * 1024

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
GraphOptimizationLevel = Literal["disable", "basic", "extended", "all"]


class CustomOpLibrary(BaseModel):
    """A custom-operator library the model may load, allowed only by its SHA-256."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    path: str = Field(min_length=1, description="Path of the shared library (.so/.dll).")
    sha256: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Required SHA-256 of the library; any other file is refused.",
    )


class OnnxOptions(BaseModel):
    """A chain step's ``options`` when its ``scorer`` is ``onnx``.

    The engine validates them with
    ``OnnxOptions.model_validate(options, context={"feature_names": names})``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    model: str = Field(
        min_length=1,
        description=(
            "Path of the .onnx file, or of a folder of numbered versions (N/model.onnx, "
            "Triton's layout), relative to the YAML file's folder."
        ),
    )
    sha256: str | dict[int, str] | None = Field(
        default=None,
        description=(
            "Pinned SHA-256 of the model file (64 hex digits), checked before parsing; for a "
            "folder of versions, a mapping version -> SHA-256."
        ),
    )
    version: int | str = Field(
        default="latest",
        description=(
            "For a folder of versions: latest (the newest that passes every check), a "
            "version number, or a label."
        ),
    )
    labels: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "For a folder of versions: label -> version (beside those of the folder's "
            "labels.yaml; these win)."
        ),
    )
    intra_op_threads: int = Field(
        default=0, ge=0, description="Threads inside one operator; 0 = onnxruntime's default."
    )
    inter_op_threads: int = Field(
        default=0, ge=0, description="Threads across operators; 0 = onnxruntime's default."
    )
    graph_optimization_level: GraphOptimizationLevel = Field(
        default="all", description="onnxruntime graph optimisations: disable|basic|extended|all."
    )
    providers: tuple[str, ...] = Field(
        default=("CPUExecutionProvider",),
        min_length=1,
        description="Execution providers, in order of preference.",
    )
    strict_providers: bool = Field(
        default=False,
        description="Fail the load when onnxruntime drops a requested provider.",
    )
    max_batch_rows: int = Field(
        default=DEFAULT_MAX_BATCH_ROWS,
        gt=0,
        description="Rows per onnxruntime call; bigger batches are split.",
    )
    max_model_bytes: int = Field(
        default=DEFAULT_MAX_MODEL_BYTES,
        gt=0,
        description="Largest model (file plus external data) the step will load.",
    )

    output: str | None = Field(
        default=None,
        min_length=1,
        description="The output to serve; required when the model has several.",
    )
    class_: int | str | None = Field(
        default=None,
        alias="class",
        description=(
            "For a matrix or ZipMap output: the class label whose column is served, matched "
            "against the labels the model carries."
        ),
    )
    column: int | None = Field(
        default=None,
        ge=0,
        description="For a matrix output: the column served, counted from 0.",
    )
    require_feature_names: bool = Field(
        default=False,
        description="Refuse a model that does not name its features (metadata or inputs).",
    )

    custom_op_libraries: tuple[CustomOpLibrary, ...] = Field(
        default=(),
        description="Custom-op libraries to register, each pinned by sha256; none by default.",
    )

    @model_validator(mode="after")
    def _one_way_to_pick_a_column(self) -> OnnxOptions:
        if self.class_ is not None and self.column is not None:
            raise ValueError(
                "`class:` and `column:` both pick a column of the output; keep one "
                "(`class:` when the model carries class labels)"
            )
        return self

    @field_validator("class_", mode="before")
    @classmethod
    def _class_is_a_label(cls, value: object) -> object:
        if isinstance(value, bool | float):
            raise ValueError(f"class must be a class label (an integer or a text), not {value!r}")
        return value

    @field_validator("custom_op_libraries", mode="before")
    @classmethod
    def _libraries_from_list(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("model", mode="before")
    @classmethod
    def _model_from_path(cls, value: object) -> object:
        # Engine.from_config callers may pass a pathlib.Path.
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("sha256")
    @classmethod
    def _lowercase_sha256(cls, value: str | dict[int, str] | None) -> str | dict[int, str] | None:
        if value is None:
            return None
        pins = {None: value} if isinstance(value, str) else value
        for version, digest in pins.items():
            if not _SHA256.match(digest):
                where = "" if version is None else f" of version {version}"
                raise ValueError(f"sha256{where} must be 64 hex digits, not {digest!r}")
            if version is not None and version < 0:
                raise ValueError(f"sha256: {version} is not a version number")
        if isinstance(value, str):
            return value.lower()
        return {version: digest.lower() for version, digest in value.items()}

    @field_validator("version")
    @classmethod
    def _version_is_latest_a_number_or_a_label(cls, value: int | str) -> int | str:
        if isinstance(value, bool):
            raise ValueError("version must be latest, a version number or a label")
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"version {value} is not a version number (0 or more)")
            return value
        if value == LATEST:
            return value
        problem = check_label_name(value)
        if problem is not None:
            raise ValueError(f"version must be latest, a version number or a label: {problem}")
        return value

    @field_validator("labels")
    @classmethod
    def _labels_name_versions(cls, value: dict[str, int]) -> dict[str, int]:
        for label, version in value.items():
            problem = check_label_name(label)
            if problem is not None:
                raise ValueError(problem)
            if isinstance(version, bool) or version < 0:
                raise ValueError(f"label {label!r} must name a version number, not {version!r}")
        return value

    @field_validator("providers", mode="before")
    @classmethod
    def _providers_from_list(cls, value: object) -> object:
        # YAML gives a list; strict mode would only take a tuple.
        if isinstance(value, str):
            raise ValueError(f"providers must be a list of names, e.g. [{value}]")
        return tuple(value) if isinstance(value, list) else value

    @field_validator("providers")
    @classmethod
    def _providers_are_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name.strip():
                raise ValueError("provider names must not be empty")
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"provider listed more than once: {', '.join(duplicates)}")
        return value
