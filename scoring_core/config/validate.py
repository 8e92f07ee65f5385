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
    KeyPathGroupError,
    check_unique_features,
    duplicate_name_errors,
)
from scoring_core.config.yaml import KeyPath, LoadedYaml, format_path, load_yaml_file
from scoring_core.errors import ConfigError, did_you_mean

__all__ = [
    "MAX_REPORTED",
    "load_feature_file",
    "parse_config",
    "validate_options",
    "validation_to_config_error",
]

# -- pydantic errors -> ConfigError ---------------------------------------------------------

#: The errors one ConfigError lists; past it they are counted ("12 more not listed").
MAX_REPORTED = 20


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
    if len(loc) == 2 and loc[0] == "features" and isinstance(loc[1], int):
        return "a feature name, or a mapping such as {name: age, min: 0, max: 1}"
    if len(loc) == 2 and loc[0] == "chain" and isinstance(loc[1], int):
        return "a step: a mapping such as {name: formula, scorer: rules, options: {...}}"
    if tuple(loc) == ("features",):
        return "a list of features, or the path of a feature file"
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
    words = _TYPE_WORDS.get(kind)
    if words is None and kind in ("model_type", "model_attributes_type", "dataclass_type"):
        words = "a mapping of keys"
    if words is not None:
        return f"is {_shown(given)}; expected {expected or words}"
    msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    # pydantic's constraint messages ("Input should be greater than 0"), in the user's words
    return msg.replace("Input should be", "should be")


# pydantic's type errors, as what the key takes.
_TYPE_WORDS = {
    "dict_type": "a mapping of keys",
    "list_type": "a list",
    "tuple_type": "a list",
    "string_type": "text",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def _shown(given: Any) -> str:
    if given is None:
        return "nothing"
    text = repr(given)
    text = text if len(text) <= 60 else text[:60] + "..."
    kind = {dict: "a mapping", list: "a list", str: "text", bool: "a boolean"}.get(
        type(given), "a number" if isinstance(given, int | float) else type(given).__name__
    )
    return f"{text} ({kind})"


def validation_to_config_error(
    exc: ValidationError | None,
    *,
    root_type: Any,
    data: Any,
    source: LoadedYaml | None,
    prefix: KeyPath = (),
    source_data: Any = None,
    also: Sequence[KeyPathError] = (),
    omitted: int = 0,
) -> ConfigError:
    """Turn a pydantic ValidationError into one ConfigError naming key paths and lines.

    Every error of the document is in it (up to :data:`MAX_REPORTED`, then a count), each
    with its key path and line. ``prefix`` is where ``data`` sits inside the YAML document
    (``chain[0].options``); ``also`` are checks across keys that failed besides;
    ``omitted`` counts unknown keys left out before validation (beyond the cap).
    """
    entries: list[tuple[tuple[str | int, ...], bool, Mapping[str, Any]]] = []
    # An unknown key first: its did-you-mean explains the missing key beside it.
    errors = sorted(exc.errors(), key=lambda e: e.get("type") != "extra_forbidden") if exc else []
    for error in errors:
        raw_loc = tuple(error.get("loc", ()))
        loc = _clean_loc(raw_loc, data)
        at = (error.get("ctx") or {}).get("error")
        checks = at.errors if isinstance(at, KeyPathGroupError) else (at,)
        for check in checks:
            if isinstance(check, KeyPathError):  # a check across keys: the key at fault
                entries.append(
                    (
                        (*loc, *check.path),
                        False,
                        {**error, "msg": _with_first_line(str(check), check, source, prefix)},
                    )
                )
            else:
                entries.append((loc, len(loc) != len(raw_loc), error))
    for check in also:
        entries.append((check.path, False, {"msg": _with_first_line(str(check), check, source)}))
    # A union member failing at a key whose value failed deeper adds only noise
    # ("features: Input should be a valid string" beside the bad item features[1]).
    deeper = {loc[:k] for loc, _, _ in entries for k in range(len(loc))}
    rendered: list[tuple[str, int | None, str]] = []
    seen: set[str] = set()
    listed_known: set[tuple[str | int, ...]] = set()  # mappings whose keys were listed
    for loc, from_union, detail in entries:
        if from_union and loc in deeper:
            continue
        key = loc[-1] if loc else None
        parent = loc[:-1] if detail.get("type") == "extra_forbidden" else loc
        known = _known_keys(root_type, parent) if detail.get("type") == "extra_forbidden" else None
        if (
            known is not None
            and parent in listed_known
            and not did_you_mean(str(key), known, list_known=False)
        ):
            known = []  # the known keys are listed once, at the first unknown key beside them
        elif known is not None:
            listed_known.add(parent)
        full = (*prefix, *loc)
        path_text = format_path(full)
        if path_text in seen:
            continue  # the other members of a union failing on the same key add only noise
        seen.add(path_text)
        if len(rendered) == MAX_REPORTED:
            omitted += 1
            continue
        line = source.line_of(full) if source is not None else None
        expected = _expected(root_type, loc) if not prefix else None
        rendered.append((path_text, line, _message(detail, known, key, expected)))
    first_path, first_line, first_msg = rendered[0]
    message = first_msg
    if len(rendered) > 1 or omitted:
        more = "; ".join(
            f"{path or '(top level)'}{f' (line {line})' if line else ''}: {msg}"
            for path, line, msg in rendered[1:]
        )
        listed = f": {more}" if more else ""
        unlisted = f"; {omitted} more not listed" if omitted else ""
        message = f"{first_msg} (and {len(rendered) - 1 + omitted} more{listed}{unlisted})"
    return ConfigError(
        message,
        key_path=first_path or None,
        file=source.file if source is not None else None,
        line=first_line,
    )


def parse_config(source: LoadedYaml) -> EngineConfig:
    """Validate a loaded document against :class:`EngineConfig`.

    Unknown keys beyond :data:`MAX_REPORTED` are counted and left out before pydantic
    sees the document, so a file of 60k unknown keys is refused as fast as one of ten.
    """
    if not isinstance(source.data, Mapping):
        raise ConfigError(
            "the configuration must be a mapping with at least `features` and `chain`",
            file=source.file,
            line=source.line_of(()),
        )
    data, omitted = _without_surplus_unknown_keys(source.data, EngineConfig)
    try:
        config = EngineConfig.model_validate(data)
    except ValidationError as exc:
        raise validation_to_config_error(
            exc,
            root_type=EngineConfig,
            data=data,
            source=source,
            also=duplicate_name_errors(data),
            omitted=omitted,
        ) from None
    if omitted:  # cannot happen: an unknown key is an error (kept for safety)
        raise validation_to_config_error(
            None, root_type=EngineConfig, data=data, source=source, omitted=omitted
        )
    return config


def _without_surplus_unknown_keys(data: Any, tp: Any, budget: list[int] | None = None) -> Any:
    """``data`` with the unknown keys of its models past the first :data:`MAX_REPORTED`
    left out, and how many were left out. Free-form mappings (``options``) are kept."""
    budget = [MAX_REPORTED] if budget is None else budget
    omitted = 0
    if isinstance(data, Mapping):
        known = _fields_of(tp) or next(
            (f for f in map(_fields_of, typing.get_args(tp)) if f is not None), None
        )
        if known is None:
            return data, 0
        kept: dict[Any, Any] = {}
        for key, value in data.items():
            if key in known:
                kept[key], more = _without_surplus_unknown_keys(value, _field_type(tp, key), budget)
                omitted += more
            elif budget[0] > 0:
                budget[0] -= 1
                kept[key] = value
            else:
                omitted += 1
        return kept, omitted
    if isinstance(data, list) and tp is not None:
        items = []
        for index, item in enumerate(data):
            pruned, more = _without_surplus_unknown_keys(item, _field_type(tp, index), budget)
            items.append(pruned)
            omitted += more
        return items, omitted
    return data, 0


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
