"""A job's partitioned output and rejects folders, committed only when the whole job succeeded.

Tasks write their part files into a staging folder beside the output (each part under a
temporary name first, renamed into place when complete, so a retried task overwrites and
a killed one leaves only a temporary file). When every task succeeded, the staged folders
replace the output and rejects folders; when any failed, the staging folder is removed
and the output is as it was. ``_scoring.json`` in the output folder holds the job's counts
and marks the folder as one a later run may replace.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring_core.errors import DataFileError

__all__ = ["MARKER", "JobFolders", "default_rejects_folder", "part_names"]

MARKER = "_scoring.json"  # pyarrow and Dask skip files whose names start with "_"


def default_rejects_folder(output: str | Path) -> Path:
    """``out/`` -> ``out.rejects/``, beside the output folder."""
    path = Path(output)
    return path.with_name(f"{path.name}.rejects")


def part_names(inputs: list[str]) -> list[str]:
    """One output part name per input file: its stem, numbered when two stems clash."""
    stems = [Path(name).stem for name in inputs]
    clash = {stem for stem in stems if stems.count(stem) > 1}
    return [
        f"{stem}-{index:05d}.parquet" if stem in clash else f"{stem}.parquet"
        for index, stem in enumerate(stems)
    ]


def _check_replaceable(folder: Path, what: str) -> None:
    if not folder.exists():
        return
    if not folder.is_dir():
        raise DataFileError(f"the {what} {folder} exists and is not a folder", file=str(folder))
    entries = list(folder.iterdir())
    if entries and not (folder / MARKER).exists() and what == "output folder":
        raise DataFileError(
            f"the output folder {folder} is not empty and was not written by `scoring score` "
            f"(no {MARKER}); choose a new or empty folder",
            file=str(folder),
        )
    if entries and what == "rejects folder" and any(e.suffix != ".parquet" for e in entries):
        raise DataFileError(
            f"the rejects folder {folder} holds files other than rejects; choose another "
            "with --rejects",
            file=str(folder),
        )


@dataclass
class JobFolders:
    """The output and rejects folders of one job, and where its tasks stage their parts."""

    output: Path
    rejects: Path
    staging: Path

    @classmethod
    def create(cls, output: str | Path, rejects: str | Path | None = None) -> JobFolders:
        out = Path(output).absolute()
        rej = Path(rejects).absolute() if rejects is not None else default_rejects_folder(out)
        if out == rej:
            raise DataFileError("the rejects folder must be another folder than the output")
        _check_replaceable(out, "output folder")
        _check_replaceable(rej, "rejects folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.scoring-{uuid.uuid4().hex[:12]}"
        (staging / "output").mkdir(parents=True)
        (staging / "rejects").mkdir()
        return cls(out, rej, staging)

    def staged_output(self, part: str) -> str:
        return str(self.staging / "output" / part)

    def staged_rejects(self, part: str) -> str:
        return str(self.staging / "rejects" / part)

    def commit(self, parts: list[str], summary: dict[str, Any]) -> None:
        """Replace the output and rejects folders by the staged ones (only ``parts``: a
        killed task's temporary file stays behind and goes with the staging folder)."""
        for name, folder in (("output", self.output), ("rejects", self.rejects)):
            staged = self.staging / name
            for entry in staged.iterdir():
                if entry.name not in parts:
                    entry.unlink()
            if name == "output":
                (staged / MARKER).write_text(json.dumps(summary, indent=2) + "\n")
            old = None
            if folder.exists():
                old = self.staging / f"old-{name}"
                os.replace(folder, old)
            os.replace(staged, folder)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
