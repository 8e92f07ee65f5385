"""Resolving the names in :class:`~scoring_rules.RulesOptions` to feature columns.

:func:`resolve` turns every group into a tuple of column indices and every term into the
columns it reads, and collects a :class:`Problem` for each name that does not resolve,
with the ``loc`` of the key that holds it. It never raises for a bad name, so one
validation reports every problem at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scoring_rules.options import GroupSpec, RulesOptions, Term

__all__ = ["FormulaError", "Loc", "Problem", "Resolution", "ResolvedTerm", "resolve"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """A name in the options that does not resolve: where it is, and what to do."""

    loc: Loc
    message: str
    input: object = None

    def render(self) -> str:
        path = ""
        for part in self.loc:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
        return f"{path}: {self.message}" if path else self.message


class FormulaError(ValueError):
    """The options do not resolve against the engine's features; ``problems`` says where."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problem.render() for problem in self.problems))


@dataclass(frozen=True)
class ResolvedTerm:
    """One term with its names replaced by column indices.

    ``columns`` holds the columns of a ``feature`` or ``mean`` term; ``pairs`` the
    ``(a_i, b_i)`` columns of a ``similarity`` term.
    """

    kind: str
    weight: float
    columns: tuple[int, ...] = ()
    pairs: tuple[tuple[int, int], ...] = ()
    constant: float = 0.0


@dataclass
class Resolution:
    """What :func:`resolve` found: the groups' and terms' columns, and the problems."""

    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    terms: list[ResolvedTerm] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def resolve(options: RulesOptions, feature_names: Sequence[str]) -> Resolution:
    """Resolve every group and term of ``options`` against ``feature_names``."""
    resolver = _Resolver(options, tuple(feature_names))
    return resolver.run()


class _Resolver:
    def __init__(self, options: RulesOptions, feature_names: tuple[str, ...]) -> None:
        self.options = options
        self.names = feature_names
        self.column = {name: index for index, name in enumerate(feature_names)}
        self.out = Resolution()
        self.broken_groups: set[str] = set()

    def run(self) -> Resolution:
        for name, spec in self.options.groups.items():
            self._group(name, spec)
        for index, term in enumerate(self.options.terms):
            resolved = self._term(("terms", index), term)
            if resolved is not None:
                self.out.terms.append(resolved)
        return self.out

    def problem(self, loc: Loc, message: str, value: object = None) -> None:
        self.out.problems.append(Problem(loc, message, value))

    # -- groups ------------------------------------------------------------------------

    def _group(self, name: str, spec: GroupSpec) -> None:
        loc: Loc = ("groups", name)
        before = len(self.out.problems)
        if name in self.column:
            self.problem(
                loc,
                f"group {name!r} has the name of a feature, so a term naming it would be "
                "ambiguous; rename the group",
                name,
            )
        if isinstance(spec, tuple):
            columns = self._listed_group(loc, name, spec)
        else:
            columns = self._pattern_group(loc, name, spec.pattern, spec.exclude)
        if len(self.out.problems) > before:
            self.broken_groups.add(name)
        else:
            self.out.groups[name] = columns

    def _listed_group(self, loc: Loc, name: str, listed: tuple[str, ...]) -> tuple[int, ...]:
        if not listed:
            self.problem(loc, f"group {name!r} is empty; list at least one feature", [])
        columns: list[int] = []
        for position, feature in enumerate(listed):
            where = (*loc, position)
            if feature not in self.column:
                self.problem(where, self._unknown_feature(feature, in_group=True), feature)
            elif self.column[feature] in columns:
                self.problem(
                    where,
                    f"feature {feature!r} is listed twice in group {name!r}; list it once",
                    feature,
                )
            else:
                columns.append(self.column[feature])
        return tuple(columns)

    def _pattern_group(
        self, loc: Loc, name: str, pattern: str, exclude: tuple[str, ...]
    ) -> tuple[int, ...]:
        matched = [feature for feature in self.names if fnmatchcase(feature, pattern)]
        if not matched:
            self.problem(
                (*loc, "pattern"),
                f"pattern {pattern!r} matches no feature; patterns use fnmatch syntax "
                f"(*, ?, [abc]) over the feature names: {_listing(self.names)}",
                pattern,
            )
        for position, feature in enumerate(exclude):
            where = (*loc, "exclude", position)
            if feature not in self.column:
                self.problem(where, self._unknown_feature(feature, in_group=True), feature)
            elif matched and feature not in matched:
                self.problem(
                    where,
                    f"{feature!r} is not matched by pattern {pattern!r}, so excluding it "
                    f"does nothing; the pattern matches: {_listing(matched)}",
                    feature,
                )
        kept = [feature for feature in matched if feature not in exclude]
        if matched and not kept:
            self.problem(
                loc,
                f"group {name!r} is empty: `exclude` removes every feature pattern "
                f"{pattern!r} matches",
                pattern,
            )
        return tuple(self.column[feature] for feature in kept)

    # -- terms -------------------------------------------------------------------------

    def _term(self, loc: Loc, term: Term) -> ResolvedTerm | None:
        if term.feature is not None:
            column = self._feature((*loc, "feature"), term.feature)
            if column is None:
                return None
            return ResolvedTerm("feature", term.weight, columns=(column,))
        if term.mean is not None:
            columns = self._reference((*loc, "mean"), term.mean)
            if columns is None:
                return None
            return ResolvedTerm("mean", term.weight, columns=columns)
        if term.similarity is not None:
            pairs = self._similarity((*loc, "similarity"), term.similarity)
            if pairs is None:
                return None
            return ResolvedTerm("similarity", term.weight, pairs=pairs)
        assert term.constant is not None  # Term checks that exactly one kind is set
        return ResolvedTerm("constant", term.weight, constant=term.constant)

    def _feature(self, loc: Loc, name: str) -> int | None:
        if name in self.column:
            return self.column[name]
        if name in self.options.groups:
            self.problem(
                loc,
                f"{name!r} is a group, and `feature` takes one feature; "
                f"write `mean: {name}` for the mean of the group",
                name,
            )
        else:
            self.problem(loc, self._unknown_feature(name, in_group=False), name)
        return None

    def _reference(self, loc: Loc, name: str) -> tuple[int, ...] | None:
        """A group's columns, or a feature's column; None (with a problem) otherwise."""
        if name in self.out.groups:
            return self.out.groups[name]
        if name in self.broken_groups:
            return None  # the group's own problem is already reported
        if name in self.column:
            return (self.column[name],)
        self.problem(loc, self._unknown_reference(name), name)
        return None

    def _similarity(self, loc: Loc, refs: tuple[str, str]) -> tuple[tuple[int, int], ...] | None:
        first = self._reference((*loc, 0), refs[0])
        second = self._reference((*loc, 1), refs[1])
        if first is None or second is None:
            return None
        a, b = refs
        if len(first) != len(second):
            self.problem(
                loc,
                f"similarity pairs the features of {a!r} and {b!r} in order, so both need "
                f"the same number of features, but {a!r} has {len(first)} and {b!r} has "
                f"{len(second)}{self._pattern_hint(refs, (first, second))}",
                list(refs),
            )
            return None
        pairs = tuple(zip(first, second, strict=True))
        same = next(((x, y) for x, y in pairs if x == y), None)
        if same is not None:
            self.problem(
                loc,
                f"similarity of {a!r} and {b!r} pairs feature {self.names[same[0]]!r} with "
                "itself, which always gives 1; pair two different groups",
                list(refs),
            )
            return None
        crossed = _crossed_pair([self.names[x] for x in first], [self.names[y] for y in second])
        if crossed is not None:
            self.problem(
                loc,
                f"{a!r} and {b!r} list the same dimensions in different orders, so "
                f"similarity would pair {crossed[0]!r} with {crossed[1]!r}; features are "
                "paired by position: list both groups in the same order",
                list(refs),
            )
            return None
        return pairs

    # -- messages ----------------------------------------------------------------------

    def _unknown_feature(self, name: str, *, in_group: bool) -> str:
        hint = _did_you_mean(name, self.names)
        nested = in_group and name in self.options.groups
        where = "; a group lists features, not other groups" if nested else ""
        known = "" if hint else f"; the features are: {_listing(self.names)}"
        return f"unknown feature {name!r}{hint}{where}{known}"

    def _unknown_reference(self, name: str) -> str:
        groups = list(self.options.groups)
        hint = _did_you_mean(name, [*groups, *self.names])
        listed = f"groups: {_listing(groups)}" if groups else "no groups are defined"
        known = f"; {listed}"
        if not hint:
            known += f"; features: {_listing(self.names)}"
        return f"unknown group or feature {name!r}{hint}{known}"

    def _pattern_hint(
        self, refs: tuple[str, str], columns: tuple[tuple[int, ...], tuple[int, ...]]
    ) -> str:
        """Why a pattern group has another length than meant, when one side is a pattern."""
        groups = [[self.names[c] for c in cols] for cols in columns]
        longer = 0 if len(groups[0]) > len(groups[1]) else 1
        for side in (longer, 1 - longer):  # the longer side is the likelier culprit
            spec = self.options.groups.get(refs[side])
            if spec is None or isinstance(spec, tuple):
                continue
            own, other = groups[side], groups[1 - side]
            counterparts = set(_dimensions(other))
            extra = [n for n, d in zip(own, _dimensions(own), strict=True) if d not in counterparts]
            if side == longer and 0 < len(extra) < len(own):
                return (
                    f"; pattern {spec.pattern!r} of {refs[side]!r} also matches "
                    f"{_listing(extra)}, which have no counterpart in {refs[1 - side]!r}: "
                    f"name the features explicitly, or add `exclude: [{', '.join(extra)}]`"
                )
            return (
                f"; pattern {spec.pattern!r} of {refs[side]!r} matches {_listing(own)}: "
                "a pattern can match more or fewer features than you mean, so name them "
                "explicitly"
            )
        return ""


def _crossed_pair(first: list[str], second: list[str]) -> tuple[str, str] | None:
    """The first mismatched pair when both groups hold the same dimensions in other orders.

    A dimension is a name without its group's common prefix: ``user_novelty_seeking``
    and ``spot_novelty_seeking`` are both ``novelty_seeking``.
    """
    if len(first) < 2:
        return None
    dims_a = _dimensions(first)
    dims_b = _dimensions(second)
    if dims_a == dims_b or sorted(dims_a) != sorted(dims_b):
        return None
    for x, y, dim_x, dim_y in zip(first, second, dims_a, dims_b, strict=True):
        if dim_x != dim_y:
            return x, y
    return None  # unreachable: equal sorted lists that differ in order differ somewhere


def _dimensions(names: list[str]) -> list[str]:
    if len(names) < 2:
        return list(names)
    first, last = min(names), max(names)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return [name[size:] for name in names]


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _listing(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "(none)"
