"""Turning a loaded document into an :class:`EngineConfig`, and validation errors into
:class:`ConfigError` naming the key path and the file:line."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from scoring_core.config.schema import (
    EngineConfig,
    FeatureSpec,
    KeyPathError,
    check_unique_features,
)
from scoring_core.config.yaml import KeyPath, LoadedYaml, format_path, load_yaml_file
from scoring_core.errors import ConfigError, did_you_mean

__all__ = ["load_feature_file", "parse_config", "validate_options", "validation_to_config_error"]

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
