"""scoring-logistic: a logistic-regression scorer for scoring-core, weights in a JSON file.

Registered as scorer ``logistic`` through the ``scoring_core`` entry-point group::

    chain:
      - name: churn
        scorer: logistic
        options: {weights: churn_weights.json}   # relative to the YAML file's folder
"""

from scoring_logistic.plugin import scoring_register_scorers
from scoring_logistic.scorer import LogisticOptions, LogisticScorer
from scoring_logistic.weights import LogisticWeights, WeightsError, read_weights

__all__ = [
    "LogisticOptions",
    "LogisticScorer",
    "LogisticWeights",
    "WeightsError",
    "read_weights",
    "scoring_register_scorers",
]
__version__ = "0.1.0"
