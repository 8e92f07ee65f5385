"""A config with one step serving another model version: :func:`with_step_version`.

What ``scoring models`` uses to check a version as the step would serve it, and what an
experiment's variant will use to name a version of a step (``neural@canary``) without a
second copy of the config.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from scoring_core.errors import ConfigError

__all__ = ["with_step_version"]


def with_step_version(config: Mapping[str, Any], step: str, version: int | str) -> dict[str, Any]:
    """A deep copy of the config mapping ``config`` whose step ``step`` has ``version:``
    set to ``version`` (latest, a number or a label); the rest is unchanged.

    Raises :class:`~scoring_core.ConfigError` when the chain has no such step.
    """
    data = copy.deepcopy(dict(config))
    chain = data.get("chain")
    steps = chain if isinstance(chain, list) else []
    for entry in steps:
        if isinstance(entry, dict) and entry.get("name") == step:
            options = entry.get("options")
            entry["options"] = {
                **(options if isinstance(options, dict) else {}),
                "version": version,
            }
            return data
    names = ", ".join(str(e.get("name")) for e in steps if isinstance(e, dict)) or "none"
    raise ConfigError(f"no step {step!r} in the chain (steps: {names})", key_path="chain")
