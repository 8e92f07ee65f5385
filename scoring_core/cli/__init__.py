"""The ``scoring`` command line (click and rich live here, and nowhere below).

Exit codes are in :mod:`scoring_core.cli.exit_codes`.
"""

from scoring_core.cli.main import cli, main

__all__ = ["cli", "main"]
