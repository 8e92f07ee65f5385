"""Shared fixtures: every test gets only the first-party plugins from entry points."""

from __future__ import annotations

import logging
import os

import pytest
from hypothesis import HealthCheck, settings

# Property tests: reproducible by default (the same examples on every run and machine,
# nothing written to .hypothesis/); HYPOTHESIS_PROFILE=dev explores new examples.
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _only_first_party_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed third-party plugins never leak into the suite."""
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "onnx,rules")
    monkeypatch.delenv("SCORING_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("SCORING_TRACE_PLUGINS", raising=False)


@pytest.fixture(autouse=True)
def _quiet_scoring_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scoring_core")
