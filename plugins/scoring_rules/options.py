"""The ``rules`` scorer's options: :class:`RulesOptions` and the pieces it is made of.

The models check the shape of the options (types, one kind per term, finite numbers,
``clamp`` in order). When the engine validates them it passes the feature names in the
validation context, ``RulesOptions.model_validate(options, context={"feature_names": names})``,
and then every group and term is also resolved against those names: an unknown or
misspelt name, an empty group, a pattern matching nothing or a similarity of groups of
different lengths is a ``ValidationError`` whose ``loc`` is the offending key
(``("groups", "user_vibe", 3)``, ``("terms", 1, "mean")``). Without feature names in the
context those checks wait until the scorer loads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictFloat,
    StrictStr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from scoring_rules.resolve import resolve

__all__ = ["GroupSpec", "PatternGroup", "RulesOptions", "Term"]

_MODEL_CONFIG = ConfigDict(
    extra="forbid", frozen=True, strict=True, allow_inf_nan=False, defer_build=True
)

TERM_KINDS = ("feature", "mean", "similarity", "constant")


def _yaml_list(what: str, example: str, *, length: int | None = None) -> BeforeValidator:
    """Take a YAML list as a tuple (so options cannot change), or say what was expected."""

    def check(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{what}, e.g. {example}; got {type(value).__name__} {value!r}")
        if length is not None and len(value) != length:
            items = "item" if len(value) == 1 else "items"
            raise ValueError(f"{what}, e.g. {example}; got {len(value)} {items}")
        return tuple(value)

    return BeforeValidator(check)


def _number_not_text(value: Any) -> Any:
    """Say why a number written in quotes, or as ``1e-3``, is refused."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value  # not numeric text: the usual "valid number" error follows
        if not math.isfinite(number):
            return value
        hint = (
            ": YAML reads an exponent without a dot, like 1e-3, as text; write 1.0e-3 or 0.001"
            if "e" in value.lower() and "." not in value
            else "; write it without quotes"
        )
        raise ValueError(f"{value!r} is text, not a number{hint}")
    return value


Number = Annotated[StrictFloat, BeforeValidator(_number_not_text)]
Name = Annotated[StrictStr, Field(min_length=1)]
NameList = Annotated[
    tuple[Name, ...],
    _yaml_list("expected a list of feature names", "[user_receptivity, user_patterns]"),
]


class PatternGroup(BaseModel):
    """A group written as ``{pattern: "spot_*", exclude: [...]}``.

    ``pattern`` is matched with :func:`fnmatch.fnmatchcase` against every feature name;
    the group holds the matches in feature order, minus ``exclude``.
    """

    model_config = _MODEL_CONFIG

    pattern: Name = Field(description="fnmatch pattern over the feature names: *, ?, [abc].")
    exclude: NameList = Field(
        default=(), description="Feature names the pattern matches but the group leaves out."
    )


def _group_kind(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        return "names"
    if isinstance(value, dict | PatternGroup):
        return "pattern_group"
    return None


GroupSpec = Annotated[
    Annotated[NameList, Tag("names")] | Annotated[PatternGroup, Tag("pattern_group")],
    Discriminator(
        _group_kind,
        custom_error_type="rules_group",
        custom_error_message=(
            "a group is a list of feature names, or a mapping such as "
            '{pattern: "spot_*", exclude: [spot_overall_energy]}'
        ),
    ),
]
"""One entry of ``groups``: a list of feature names, or a :class:`PatternGroup`."""


class Term(BaseModel):
    """One weighted term of the sum; exactly one of its kinds is set.

    - ``feature: name``: the value of one feature.
    - ``mean: ref``: the mean of a group, or the value of a feature.
    - ``similarity: [ref_a, ref_b]``: the mean over ``i`` of ``1 - |a_i - b_i|``, the
      features of ``a`` and ``b`` paired in order.
    - ``constant: c``: the number ``c``.
    """

    model_config = _MODEL_CONFIG

    feature: Name | None = Field(default=None, description="A feature name.")
    mean: Name | None = Field(default=None, description="A group or feature name.")
    similarity: (
        Annotated[
            tuple[Name, Name],
            _yaml_list(
                "similarity takes two groups or features", "[user_vibe, spot_vibe]", length=2
            ),
        ]
        | None
    ) = Field(default=None, description="Two group or feature names of the same length.")
    constant: Number | None = Field(default=None, description="A fixed number.")
    weight: Number = Field(default=1.0, description="What the term is multiplied by.")

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Term:
        present = [kind for kind in TERM_KINDS if getattr(self, kind) is not None]
        if len(present) == 1:
            return self
        kinds = ", ".join(f"`{kind}`" for kind in TERM_KINDS)
        if not present:
            raise ValueError(
                f"a term needs exactly one of {kinds} (and an optional `weight`); this one has none"
            )
        both = " and ".join(f"`{kind}`" for kind in present)
        raise ValueError(
            f"a term has exactly one of {kinds}; this one has {both}: "
            "write them as separate terms, each with its own weight"
        )


class RulesOptions(BaseModel):
    """A chain step's ``options`` when its ``scorer`` is ``rules``.

    ``score = clamp(bias + sum(weight * term))``, where ``groups`` name sets of features
    that the ``terms`` refer to. See the ``scoring_rules`` package docstring for the
    language, an example and the pattern trap.
    """

    model_config = _MODEL_CONFIG

    groups: dict[Name, GroupSpec] = Field(
        default_factory=dict,
        description="Named feature groups: a list of names, or {pattern, exclude}.",
    )
    terms: Annotated[
        tuple[Term, ...],
        _yaml_list("terms is a list of terms", "[{mean: context, weight: 0.3}]"),
    ] = Field(description="The weighted terms whose sum is the score.")
    bias: Number = Field(default=0.0, description="A number added to the sum.")
    clamp: (
        Annotated[
            tuple[Number, Number],
            _yaml_list("clamp is [low, high]", "[0, 1]", length=2),
        ]
        | None
    ) = Field(default=None, description="[low, high]: the score is limited to this range.")

    @field_validator("terms")
    @classmethod
    def _some_terms(cls, value: tuple[Term, ...]) -> tuple[Term, ...]:
        if not value:
            raise ValueError("terms is empty; add at least one, e.g. {mean: context, weight: 0.3}")
        return value

    @field_validator("clamp")
    @classmethod
    def _clamp_in_order(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] > value[1]:
            low, high = value
            raise ValueError(f"clamp is [low, high]; {low} > {high}: write [{high}, {low}]")
        return value

    @model_validator(mode="after")
    def _names_resolve(self, info: ValidationInfo) -> RulesOptions:
        context = info.context
        names = context.get("feature_names") if isinstance(context, Mapping) else None
        if names is None:
            return self
        problems = resolve(self, tuple(names)).problems
        if problems:
            errors = [
                InitErrorDetails(
                    # the message goes in as a value, so braces in it are not placeholders
                    type=PydanticCustomError("rules_formula", "{message}", {"message": p.message}),
                    loc=p.loc,
                    input=p.input,
                )
                for p in problems
            ]
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self
