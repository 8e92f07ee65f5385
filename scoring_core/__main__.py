"""``python -m scoring_core``: the same as the ``scoring`` command."""

from scoring_core.cli import main

main()
