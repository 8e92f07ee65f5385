"""``scoring serve``: the chains over HTTP (extra ``serve``), speaking the Open Inference
Protocol (KServe V2 REST) with its binary tensor data extension, MLflow's ``/ping`` and
``/invocations``, and Prometheus ``/metrics``; docs/serving.md has the whole surface.

The only package that imports an ASGI framework. ``run(configs, ...)`` serves until
SIGTERM or SIGINT and returns the exit code. Importing this package imports nothing
heavy; :func:`run` raises :class:`~scoring_core.errors.MissingExtraError` naming
``pip install 'scoring-core[serve]'`` when the extra is not installed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from scoring_core.errors import MissingExtraError

__all__ = ["run"]


def run(
    configs: Sequence[str | Path],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    max_body_mb: float = 16,
    log_level: str = "info",
) -> int:
    """Serve each config's chain until SIGTERM or SIGINT; the exit code (0: a clean stop).

    Admin routes exist when the environment variable ``SCORING_ADMIN_TOKEN`` is set.
    """
    try:
        from scoring_core.server import launch
        from scoring_core.server.app import ADMIN_TOKEN_VARIABLE, Settings
    except ImportError as exc:
        missing = exc.name or "starlette"
        if missing.startswith("scoring_core"):
            raise
        raise MissingExtraError(
            "scoring serve", extra="serve", library=missing.partition(".")[0]
        ) from exc
    settings = Settings(
        configs=[str(Path(c).resolve()) for c in configs],
        max_body_bytes=int(max_body_mb * 2**20),
        admin_token=os.environ.get(ADMIN_TOKEN_VARIABLE) or None,
        extra={"log_level": log_level},
    )
    return launch.run(settings, host=host, port=port, workers=workers)
