"""Each test registers the plugin itself; installed plugins (this one too) stay out."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _only_first_party_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    # The example YAML's fallback step uses `rules`, which ships with scoring-core.
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "rules")
