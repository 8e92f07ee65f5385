"""The configuration schema, and turning validation errors into :class:`ConfigError`.

The YAML (or a mapping passed to ``Engine.from_config``) is validated with pydantic;
unknown keys are refused, and every error names the key path and the file:line.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from scoring_core.errors import ConfigError
from scoring_core.yaml_loader import KeyPath, LoadedYaml, format_path, load_yaml_file

__all__ = [
    "EngineConfig",
    "ExhaustedDefault",
    "FeatureSpec",
    "StepConfig",
    "did_you_mean",
    "parse_config",
    "validate_options",
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


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# Features travel as 32-bit floats: a bound or golden value beyond that range is a mistake.
Float32 = Annotated[float, Field(allow_inf_nan=False, ge=-3.4e38, le=3.4e38)]


class FeatureSpec(BaseModel):
    """One input feature: its name, allowed range, and what to do when it is missing."""

    model_config = _STRICT

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


class StepConfig(BaseModel):
    """One step of the chain: a name, the scorer it uses, and that scorer's options."""

    model_config = _STRICT

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
    scorer: Annotated[str, Field(min_length=1)]
    options: dict[str, Any] = Field(default_factory=dict)
    timeout_ms: Milliseconds | None = None
    circuit_breaker: BreakerConfig | None = None
    self_test: SelfTestConfig | None = None


class ExhaustedDefault(BaseModel):
    """``on_exhausted: {score: x}``: serve ``x``, marked as a default, when every step fails."""

    model_config = _STRICT

    score: FiniteFloat


class EngineConfig(BaseModel):
    """The whole configuration file."""

    model_config = _STRICT

    features: Annotated[list[FeatureSpec], Field(min_length=1)] | str
    output_range: tuple[FiniteFloat, FiniteFloat] | None = None
    chain: Annotated[list[StepConfig], Field(min_length=1)]
    on_exhausted: Literal["raise"] | ExhaustedDefault = "raise"
    deadline_ms: Milliseconds | None = None
    watch: WatchConfig | None = None
    require: list[str] = Field(default_factory=list)
    plugins: list[str] = Field(default_factory=list)
    disable_plugins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_cross_references(self) -> EngineConfig:
        if self.output_range is not None and self.output_range[0] > self.output_range[1]:
            raise KeyPathError(
                f"output_range {list(self.output_range)} has low > high", "output_range"
            )
        names = [step.name for step in self.chain]
        if "on_exhausted" in names:
            raise KeyPathError(
                "`on_exhausted` cannot name a step: it marks the scores served by the "
                "on_exhausted default",
                *("chain", names.index("on_exhausted"), "name"),
            )
        if self.chain[-1].circuit_breaker is not None:
            raise KeyPathError(
                f"the last step ({self.chain[-1].name!r}) cannot have a circuit_breaker: when it "
                "is open nothing is left to score; put breakers on the steps before it",
                *("chain", len(names) - 1, "circuit_breaker"),
            )
        for index, name in enumerate(names):
            if name in names[:index]:
                raise KeyPathError(
                    f"step names must be unique; {name!r} is repeated",
                    *("chain", index, "name"),
                    first=("chain", names.index(name), "name"),
                )
        for index, required in enumerate(self.require):
            if required not in names:
                hint = did_you_mean(required, names)
                raise KeyPathError(
                    f"require names step {required!r}, which is not in the chain{hint}",
                    *("require", index),
                )
        if isinstance(self.on_exhausted, ExhaustedDefault) and self.output_range is not None:
            low, high = self.output_range
            if not low <= self.on_exhausted.score <= high:
                raise KeyPathError(
                    f"on_exhausted score {self.on_exhausted.score} is outside output_range "
                    f"[{low:g}, {high:g}]",
                    *("on_exhausted", "score"),
                )
        if isinstance(self.features, list):
            check_unique_features(self.features, ("features",))
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


def did_you_mean(word: str, candidates: Iterable[str], *, list_known: bool = True) -> str:
    """A ``"; did you mean 'x'?"`` suffix, or (``list_known``) a list of the known names."""
    known = sorted(set(candidates))
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    if list_known and known and len(known) <= 12:
        return f"; known: {', '.join(known)}"
    return ""


# -- pydantic errors -> ConfigError ---------------------------------------------------------


def _fields_of(tp: Any) -> list[str] | None:
    """The field names a class accepts (pydantic model or dataclass), else None."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        names = []
        for name, info in tp.model_fields.items():
            names.append(info.alias or name)
        return names
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return [f.name for f in dataclasses.fields(tp)]
    return None


def _field_type(tp: Any, part: str | int) -> Any:
    """Follow one step of a pydantic ``loc`` through a type; None when lost."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _field_type(typing.get_args(tp)[0], part)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(tp):
            found = _field_type(member, part)
            if found is not None:
                return found
        return None
    if isinstance(part, int) and origin in (list, tuple, Sequence):
        args = typing.get_args(tp)
        return args[0] if args else None
    if isinstance(part, str):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            for name, info in tp.model_fields.items():
                if part in (name, info.alias):
                    return info.annotation
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            return hints.get(part)
        if origin in (dict, Mapping):
            args = typing.get_args(tp)
            return args[1] if len(args) == 2 else None
    return None


def _known_keys(root: Any, loc: Sequence[str | int]) -> list[str] | None:
    tp = root
    for part in loc:
        nxt = _field_type(tp, part)
        if nxt is None and isinstance(part, str):
            continue  # a union member tag in the loc, not a key
        tp = nxt
        if tp is None:
            return None
    # unwrap Optional / unions down to the first class with fields
    for candidate in [tp, *typing.get_args(tp)]:
        fields = _fields_of(candidate)
        if fields is not None:
            return fields
    return None


def _clean_loc(loc: Sequence[str | int], data: Any) -> tuple[str | int, ...]:
    """Drop pydantic's union-member tags from ``loc``, keeping only real keys of ``data``.

    A text part that is not a key of the mapping at hand is a union tag
    (``list[FeatureSpec]``) unless it is the last part: then it is a missing key.
    """
    out: list[str | int] = []
    node = data
    last = len(loc) - 1
    for position, part in enumerate(loc):
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            out.append(part)
            node = node[part]
        elif isinstance(part, str) and position == last and isinstance(node, Mapping):
            out.append(part)  # a missing key
        elif isinstance(part, str):
            continue  # a union tag: the node stays where it is
        else:
            node = None
    return tuple(out)


def _expected(root_type: Any, loc: Sequence[str | int]) -> str | None:
    """Plain words for what a key of the configuration itself takes, where pydantic's
    would quote a pattern or a type (a plugin's options keep pydantic's words)."""
    if root_type is not EngineConfig:
        return None
    if tuple(loc) == ("on_exhausted",):
        return "`raise`, or `{score: X}` to serve X when every step fails"
    if tuple(loc) == ("chain",):
        return "a list of steps, at least one"
    if len(loc) == 3 and loc[0] == "chain" and isinstance(loc[1], int) and loc[2] == "name":
        return "letters, digits, `_`, `.` and `-` only"
    return None


def _message(
    error: Mapping[str, Any], known: list[str] | None, key: str | int | None, expected: str | None
) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden" and isinstance(key, str):
        hint = did_you_mean(key, known or [])
        return f"unknown key{hint}"
    if kind == "missing":
        return "this key is required"
    given = error.get("input")
    if expected and kind in ("literal_error", "string_pattern_mismatch", "too_short", "list_type"):
        hint = ""
        if key == "on_exhausted" and isinstance(given, str) and given:
            hint = did_you_mean(given, ["raise"], list_known=False)  # `expected` lists them
        shown = "nothing" if given is None else f"{given!r}"
        return f"is {shown}; expected {expected}{hint}"
    msg = str(error.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


def validation_to_config_error(
    exc: ValidationError,
    *,
    root_type: Any,
    data: Any,
    source: LoadedYaml | None,
    prefix: KeyPath = (),
    source_data: Any = None,
) -> ConfigError:
    """Turn a pydantic ValidationError into one ConfigError naming key paths and lines.

    ``prefix`` is where ``data`` sits inside the YAML document (``chain[0].options``).
    """
    rendered: list[tuple[str, int | None, str]] = []
    # An unknown key first: its did-you-mean explains the missing key beside it.
    errors = sorted(exc.errors(), key=lambda e: e.get("type") != "extra_forbidden")
    for error in errors:
        raw_loc = tuple(error.get("loc", ()))
        loc = _clean_loc(raw_loc, data)
        at = (error.get("ctx") or {}).get("error")
        if isinstance(at, KeyPathError):  # a check across keys: the key at fault
            loc = (*loc, *at.path)
            error = {**error, "msg": _with_first_line(str(at), at, source, prefix)}
        key = loc[-1] if loc else None
        parent = loc[:-1] if error.get("type") == "extra_forbidden" else loc
        known = _known_keys(root_type, parent) if error.get("type") == "extra_forbidden" else None
        full = (*prefix, *loc)
        line = source.line_of(full) if source is not None else None
        path_text = format_path(full)
        if any(seen == path_text for seen, _, _ in rendered):
            continue  # the other members of a union failing on the same key add only noise
        expected = _expected(root_type, loc) if not prefix else None
        rendered.append((path_text, line, _message(error, known, key, expected)))
    first_path, first_line, first_msg = rendered[0]
    message = first_msg
    if len(rendered) > 1:
        more = "; ".join(
            f"{path or '(top level)'}{f' (line {line})' if line else ''}: {msg}"
            for path, line, msg in rendered[1:]
        )
        message = f"{first_msg} (and {len(rendered) - 1} more: {more})"
    return ConfigError(
        message,
        key_path=first_path or None,
        file=source.file if source is not None else None,
        line=first_line,
    )


def parse_config(source: LoadedYaml) -> EngineConfig:
    """Validate a loaded document against :class:`EngineConfig`."""
    if not isinstance(source.data, Mapping):
        raise ConfigError(
            "the configuration must be a mapping with at least `features` and `chain`",
            file=source.file,
            line=source.line_of(()),
        )
    try:
        return EngineConfig.model_validate(source.data)
    except ValidationError as exc:
        raise validation_to_config_error(
            exc, root_type=EngineConfig, data=source.data, source=source
        ) from None


def load_feature_file(path: Path) -> list[FeatureSpec]:
    """Read a feature file: a YAML list of ``{name, min, max, default, clip}``."""
    source = load_yaml_file(path)
    adapter = TypeAdapter(list[FeatureSpec])
    if not isinstance(source.data, list) or not source.data:
        raise ConfigError(
            "a feature file must be a non-empty YAML list of {name, min, max} entries",
            file=source.file,
            line=source.line_of(()),
        )
    try:
        features = adapter.validate_python(source.data)
        check_unique_features(features)
    except ValidationError as exc:
        raise validation_to_config_error(
            exc, root_type=list[FeatureSpec], data=source.data, source=source
        ) from None
    except KeyPathError as exc:
        raise ConfigError(
            _with_first_line(str(exc), exc, source),
            key_path=format_path(exc.path) or None,
            file=source.file,
            line=source.line_of(exc.path),
        ) from None
    return features


def _with_first_line(
    message: str, at: KeyPathError, source: LoadedYaml | None, prefix: KeyPath = ()
) -> str:
    """``message``, plus where the clashing value first appeared when known."""
    if at.first is None:
        return message
    first = (*prefix, *at.first)
    line = source.line_of(first) if source is not None else None
    where = f"line {line}" if line else format_path(first)
    return f"{message} (first at {where})"


def validate_options(
    options_type: Any,
    options: Mapping[str, Any],
    *,
    context: Mapping[str, Any],
    source: LoadedYaml | None,
    prefix: KeyPath,
) -> Any:
    """Validate a step's ``options`` against the scorer's declared options class."""
    if options_type is None:
        return types.MappingProxyType(dict(options))
    known = _fields_of(options_type)
    if known is not None:
        for key in options:
            if key not in known:
                hint = did_you_mean(str(key), known)
                path = (*prefix, str(key))
                raise ConfigError(
                    f"unknown option{hint}",
                    key_path=format_path(path),
                    file=source.file if source is not None else None,
                    line=source.line_of(path) if source is not None else None,
                )
    try:
        return TypeAdapter(options_type).validate_python(dict(options), context=dict(context))
    except ValidationError as exc:
        raise validation_to_config_error(
            exc, root_type=options_type, data=options, source=source, prefix=prefix
        ) from None
