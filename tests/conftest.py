"""Shared fixtures: every test gets only the first-party plugins from entry points."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _only_first_party_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed third-party plugins never leak into the suite."""
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "onnx,rules")
    monkeypatch.delenv("SCORING_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("SCORING_TRACE_PLUGINS", raising=False)


@pytest.fixture(autouse=True)
def _quiet_scoring_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scoring_core")
