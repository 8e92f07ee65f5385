"""The configuration schema: what each key of the YAML takes.

The YAML (or a mapping passed to ``Engine.from_config``) is validated with pydantic;
unknown keys are refused, and every error names the key path and the file:line.
"""

from __future__ import annotations

import ntpath
import posixpath
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from scoring_core.config.yaml import KeyPath
from scoring_core.errors import did_you_mean

__all__ = [
    "EngineConfig",
    "ExhaustedDefault",
    "FeatureSpec",
    "KeyPathError",
    "KeyPathGroupError",
    "StepConfig",
    "check_unique_features",
    "duplicate_name_errors",
]

_STRICT = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class KeyPathError(ValueError):
    """A check across keys that failed at ``path`` (``("chain", 1, "name")``), so the
    error names that key and its line rather than the mapping the check runs on.
    ``first`` is where the clashing value first appeared, when there is one."""

    def __init__(self, message: str, *path: str | int, first: KeyPath | None = None) -> None:
        super().__init__(message)
        self.path: KeyPath = path
        self.first = first


class KeyPathGroupError(ValueError):
    """Several checks across keys that failed together (each a :class:`KeyPathError`),
    so a file's errors are all reported at once."""

    def __init__(self, errors: Sequence[KeyPathError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = tuple(errors)


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# Features travel as 32-bit floats: a bound or golden value beyond that range is a mistake.
Float32 = Annotated[float, Field(allow_inf_nan=False, ge=-3.4e38, le=3.4e38)]


class FeatureSpec(BaseModel):
    """One input feature: its name, allowed range, and what to do when it is missing.

    A plain string is a feature of that name with no range (``- age`` is
    ``- {name: age}``).
    """

    model_config = _STRICT

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    name: Annotated[str, Field(min_length=1)]
    min: Float32 | None = None
    max: Float32 | None = None
    default: Float32 | None = None
    clip: bool = False

    @model_validator(mode="after")
    def _check_range(self) -> FeatureSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.default is not None and (
            (self.min is not None and self.default < self.min)
            or (self.max is not None and self.default > self.max)
        ):
            raise ValueError(f"default {self.default} is outside [min, max]")
        if self.clip and self.min is None and self.max is None:
            raise ValueError("clip: true needs a min or a max to clip to")
        return self


Milliseconds = Annotated[float, Field(gt=0, le=3_600_000, allow_inf_nan=False)]


class BreakerConfig(BaseModel):
    """``circuit_breaker:`` of a step (resilience4j semantics)."""

    model_config = _STRICT

    failure_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    minimum_calls: Annotated[int, Field(ge=1)] = 20
    window: Annotated[int, Field(ge=1)] = 100
    open_seconds: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 30.0
    half_open_calls: Annotated[int, Field(ge=1)] = 3

    @model_validator(mode="after")
    def _check_window(self) -> BreakerConfig:
        if self.minimum_calls > self.window:
            raise ValueError(
                f"minimum_calls ({self.minimum_calls}) is larger than window ({self.window}); "
                "the breaker could never open"
            )
        return self


class SelfTestConfig(BaseModel):
    """``self_test:`` of a step: golden rows and the scores the step must give them."""

    model_config = _STRICT

    rows: Annotated[list[list[Float32]], Field(min_length=1)]
    expected: Annotated[list[FiniteFloat], Field(min_length=1)]
    tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1e-4

    @model_validator(mode="after")
    def _check_lengths(self) -> SelfTestConfig:
        if len(self.rows) != len(self.expected):
            raise ValueError(
                f"self_test has {len(self.rows)} rows but {len(self.expected)} expected scores"
            )
        return self


class WatchConfig(BaseModel):
    """``watch:``: reload a step when its scorer's files change on disk."""

    model_config = _STRICT

    interval_s: Annotated[float, Field(ge=0.05, le=86_400, allow_inf_nan=False)] = 2.0


# A step's or a chain's name: it shows in provenance, metric labels and HTTP paths.
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]


def _inside_the_folder(ref: str) -> str:
    """A ``plugins:`` entry: a module name, or a .py file inside the config's folder."""
    if posixpath.isabs(ref) or ntpath.isabs(ref):
        raise ValueError(
            f"{ref!r} is an absolute path; `plugins:` takes module names or .py files inside "
            "the config's folder: copy the file there, or install it and name its module"
        )
    if posixpath.normpath(ref.replace("\\", "/")).startswith(".."):
        raise ValueError(
            f"{ref!r} is outside the config's folder; `plugins:` takes module names or .py "
            "files inside it: move the file there, or install it and name its module"
        )
    return ref


LocalPlugin = Annotated[str, Field(min_length=1), AfterValidator(_inside_the_folder)]


class StepConfig(BaseModel):
    """One step of the chain: a name, the scorer it uses, and that scorer's options."""

    model_config = _STRICT

    name: Name
    scorer: Annotated[str, Field(min_length=1)]
    options: dict[str, Any] = Field(default_factory=dict)
    timeout_ms: Milliseconds | None = None
    # cooperative: a cancellable scorer (onnx) is stopped between two of its operations;
    # strict: the call runs on a worker thread the caller stops waiting for at the deadline.
    timeout_mode: Literal["cooperative", "strict"] = "cooperative"
    # How long loading the scorer (and its self-tests) may take before the step is
    # reported unavailable; the load's thread is abandoned then.
    load_timeout_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 30.0
    circuit_breaker: BreakerConfig | None = None
    self_test: SelfTestConfig | None = None
    # A step allowed to be missing: `scoring score` does not fail a run it never served.
    optional: bool = False


class ExhaustedDefault(BaseModel):
    """``on_exhausted: {score: x}``: serve ``x``, marked as a default, when every step fails."""

    model_config = _STRICT

    score: FiniteFloat


class EngineConfig(BaseModel):
    """The whole configuration file."""

    model_config = _STRICT

    # The chain's name (provenance, metrics, the served model); None: the file's stem
    # (scoring.yaml -> scoring), or "default" for a mapping.
    name: Name | None = None
    # None: the features come from the first step whose model names its inputs.
    features: Annotated[list[FeatureSpec], Field(min_length=1)] | str | None = None
    output_range: tuple[FiniteFloat, FiniteFloat] | None = None
    chain: Annotated[list[StepConfig], Field(min_length=1)]
    on_exhausted: Literal["raise"] | ExhaustedDefault = "raise"
    deadline_ms: Milliseconds | None = None
    watch: WatchConfig | None = None
    require: list[str] = Field(default_factory=list)
    plugins: list[LocalPlugin] = Field(default_factory=list)
    disable_plugins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_cross_references(self) -> EngineConfig:
        problems: list[KeyPathError] = []
        if self.output_range is not None and self.output_range[0] > self.output_range[1]:
            problems.append(
                KeyPathError(
                    f"output_range {list(self.output_range)} has low > high", "output_range"
                )
            )
        names = [step.name for step in self.chain]
        if "on_exhausted" in names:
            problems.append(
                KeyPathError(
                    "`on_exhausted` cannot name a step: it marks the scores served by the "
                    "on_exhausted default",
                    *("chain", names.index("on_exhausted"), "name"),
                )
            )
        if self.chain[-1].circuit_breaker is not None:
            problems.append(
                KeyPathError(
                    f"the last step ({self.chain[-1].name!r}) cannot have a circuit_breaker: "
                    "when it is open nothing is left to score; put breakers on the steps "
                    "before it",
                    *("chain", len(names) - 1, "circuit_breaker"),
                )
            )
        first_at: dict[str, int] = {}
        for index, name in enumerate(names):
            if name in first_at:
                problems.append(
                    KeyPathError(
                        f"step names must be unique; {name!r} is repeated",
                        *("chain", index, "name"),
                        first=("chain", first_at[name], "name"),
                    )
                )
            else:
                first_at[name] = index
        for index, step in enumerate(self.chain):
            if step.timeout_mode == "strict" and step.timeout_ms is None:
                problems.append(
                    KeyPathError(
                        f"step {step.name!r} sets `timeout_mode: strict` without `timeout_ms`; "
                        "strict mode bounds each call by timeout_ms: add it, or remove "
                        "timeout_mode",
                        *("chain", index, "timeout_mode"),
                    )
                )
        for index, required in enumerate(self.require):
            if required not in names:
                hint = did_you_mean(required, names)
                problems.append(
                    KeyPathError(
                        f"require names step {required!r}, which is not in the chain{hint}",
                        *("require", index),
                    )
                )
            elif self.chain[names.index(required)].optional:
                problems.append(
                    KeyPathError(
                        f"step {required!r} is marked `optional: true` and listed in `require`; "
                        "a step cannot be both: remove one of them",
                        *("require", index),
                    )
                )
        if isinstance(self.on_exhausted, ExhaustedDefault) and self.output_range is not None:
            low, high = self.output_range
            if not low <= self.on_exhausted.score <= high:
                problems.append(
                    KeyPathError(
                        f"on_exhausted score {self.on_exhausted.score} is outside output_range "
                        f"[{low:g}, {high:g}]",
                        *("on_exhausted", "score"),
                    )
                )
        if isinstance(self.features, list):
            try:
                check_unique_features(self.features, ("features",))
            except KeyPathError as exc:
                problems.append(exc)
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise KeyPathGroupError(problems)
        return self


def check_unique_features(features: Sequence[FeatureSpec], at: KeyPath = ()) -> None:
    """Raise :class:`KeyPathError` when two features share a name (``at``: the list's path)."""
    first: dict[str, int] = {}
    for index, feature in enumerate(features):
        if feature.name in first:
            raise KeyPathError(
                f"feature {feature.name!r} is listed twice",
                *(*at, index, "name"),
                first=(*at, first[feature.name], "name"),
            )
        first[feature.name] = index


def duplicate_name_errors(data: Any) -> list[KeyPathError]:
    """Repeated feature and step names in a raw document that failed validation elsewhere,
    so they are reported with its other errors rather than after those are fixed."""
    problems: list[KeyPathError] = []
    if not isinstance(data, dict):
        return problems
    for key, what in (
        ("features", "feature {!r} is listed twice"),
        ("chain", "step names must be unique; {!r} is repeated"),
    ):
        items = data.get(key)
        if not isinstance(items, list):
            continue
        first: dict[str, int] = {}
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or (key == "chain" and not isinstance(item, dict)):
                continue
            if name in first:
                problems.append(
                    KeyPathError(
                        what.format(name),
                        *(key, index, "name"),
                        first=(key, first[name], "name"),
                    )
                )
            else:
                first[name] = index
    return problems
