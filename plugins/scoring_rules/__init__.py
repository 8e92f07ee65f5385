"""scoring_rules: the first-party declarative formula scorer for scoring-core.

Registered as scorer ``rules``. A step's ``options`` name groups of features and a
weighted sum of terms over them; no user text is ever evaluated as code::

    score = clamp(bias + sum(weight * term))

- ``groups``: named sets of features, each a list of feature names, or
  ``{pattern: "spot_*", exclude: [...]}`` (fnmatch over the feature names, matches kept
  in feature order).
- ``terms``: each has exactly one of ``feature: name`` (one feature), ``mean: ref``
  (the mean of a group, or one feature), ``similarity: [ref_a, ref_b]`` (the mean over
  ``i`` of ``1 - |a_i - b_i|``, features paired by position) or ``constant: c``, and an
  optional ``weight`` (default 1).
- ``bias`` (default 0) and ``clamp: [low, high]`` (optional).

Every name is checked when the engine is built: a misspelt feature or group is a
``ConfigError`` at its YAML line, with a did-you-mean.

The calling-score formula (``0.5 * vibe + 0.3 * context + 0.2 * timing``, clamped to
``[0, 1]``) over the 39 calling-score features, ready to paste under ``chain:``::

    - name: formula
      scorer: rules
      options:
        groups:
          user_vibe: [user_exploration_eagerness, user_community_orientation,
                      user_location_adventurousness, user_authenticity_preference,
                      user_trust_network_reliance, user_temporal_flexibility,
                      user_energy_preference, user_novelty_seeking, user_value_orientation,
                      user_crowd_tolerance, user_social_preference, user_overall_energy]
          spot_vibe: [spot_exploration_eagerness, spot_community_orientation,
                      spot_location_adventurousness, spot_authenticity_preference,
                      spot_trust_network_reliance, spot_temporal_flexibility,
                      spot_energy_preference, spot_novelty_seeking, spot_value_orientation,
                      spot_crowd_tolerance, spot_social_preference, spot_overall_energy]
          context: [location_proximity, journey_alignment, user_receptivity,
                    opportunity_availability, network_effects, community_patterns,
                    vibe_compatibility, energy_match, community_match, novelty_match]
          timing: [optimal_time_of_day, optimal_day_of_week, user_patterns,
                   opportunity_timing, timing_alignment]
        terms:
          - {similarity: [user_vibe, spot_vibe], weight: 0.5}
          - {mean: context, weight: 0.3}
          - {mean: timing, weight: 0.2}
        clamp: [0, 1]

The pattern trap: a pattern matches every feature whose name fits, not the ones you have
in mind. Over the calling-score features ``user_*`` matches the 12 user vibe dimensions
*and* ``user_receptivity`` (a context feature) and ``user_patterns`` (a timing feature),
so ``{pattern: "user_*"}`` is a 14-feature group. Groups may overlap, so nothing stops a
``mean`` over it; a ``similarity`` against the 12 ``spot_*`` features is refused for its
length, with the matched names in the message. Name the vibe groups explicitly, as above,
or leave the extras out with ``exclude: [user_receptivity, user_patterns]``.
"""

from scoring_rules.formula import LinearFormula, build_formula
from scoring_rules.options import PatternGroup, RulesOptions, Term
from scoring_rules.plugin import scoring_register_scorers
from scoring_rules.resolve import FormulaError, Problem
from scoring_rules.scorer import RulesScorer

__all__ = [
    "FormulaError",
    "LinearFormula",
    "PatternGroup",
    "Problem",
    "RulesOptions",
    "RulesScorer",
    "Term",
    "build_formula",
    "scoring_register_scorers",
]
