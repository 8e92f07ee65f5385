"""Closing the engine at the end of a command: a step's ``close()`` or a plugin's
``scoring_engine_closed`` hook that raises is one line naming it, after the command's
normal report, and exit code :data:`~scoring_core.cli.exit_codes.EXIT_CLOSE_FAILED`."""

from __future__ import annotations

import re
from types import TracebackType
from typing import TYPE_CHECKING

import click

from scoring_core.cli.exit_codes import EXIT_CLOSE_FAILED, EXIT_OK

if TYPE_CHECKING:
    from scoring_core.engine import Engine

__all__ = ["Closing", "closing_reported", "failed_to_close"]

# The notes the engine adds to each close error (scoring_core.chain.step, scoring_core.plugins).
_STEP_NOTE = re.compile(r"while closing the scorer of step (?P<name>'.*')")
_PLUGIN_NOTE = re.compile(r"in plugin (?P<name>'.*'), hook (?P<hook>\w+)")


def failed_to_close(error: BaseException) -> str:
    """One line for one close error: the step or plugin, and what it raised."""
    what = "the engine"
    for note in getattr(error, "__notes__", ()):
        if found := _STEP_NOTE.search(note):
            what = f"step {found['name']}"
        elif found := _PLUGIN_NOTE.search(note):
            what = f"plugin {found['name']} (its {found['hook']} hook)"
    text = str(error).strip()
    return f"warning: {what} failed to close: {type(error).__name__}" + (
        f": {text}" if text else ""
    )


class Closing:
    """The engine a command uses, closed at the end of its ``with``; the close errors kept as
    lines for the command to print after its report (:meth:`exit_code`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lines: list[str] = []
        self.failed = False

    def __enter__(self) -> Closing:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.engine.close()
        except ExceptionGroup as group:
            self.lines = [failed_to_close(e) for e in group.exceptions]
        except Exception as exc:  # not the engine's own close: still one line
            self.lines = [failed_to_close(exc)]
        if error is not None:  # the command is failing already: say it now, it has no report
            self.report()

    def report(self) -> None:
        """Print the close errors on stderr, once."""
        for line in self.lines:
            click.echo(line, err=True)
        if self.lines:
            click.echo(
                f"{len(self.lines)} close error(s): the work above is complete, but what "
                "failed to close may not have released its resources "
                f"(exit {EXIT_CLOSE_FAILED}; rerun with -v for the details)",
                err=True,
            )
        self.failed = bool(self.lines)
        self.lines = []

    def exit_code(self, code: int) -> int:
        """Print the close errors; the command's exit ``code``, or EXIT_CLOSE_FAILED when the
        command succeeded but something failed to close."""
        self.report()
        return EXIT_CLOSE_FAILED if code == EXIT_OK and self.failed else code


def closing_reported(engine: Engine) -> Closing:
    """``with closing_reported(Engine.from_yaml(path)) as closing:``; see :class:`Closing`."""
    return Closing(engine)
