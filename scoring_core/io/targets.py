"""Where an output goes: a regular file (written under a temporary name, then renamed into
place), or a stream that is written directly (standard output, a device such as
``/dev/null`` or a terminal, a FIFO, ``/proc/self/fd/1``).

A temporary file is named after its target and the process writing it
(``.out.csv.scoring-HOST-PID-N.tmp``). SIGINT, SIGTERM and SIGHUP make the command remove
the temporary files it was writing; a process killed outright (SIGKILL, a power cut)
cannot, so each run removes the ones beside its own target whose process (on this host)
is gone.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import stat
import sys
from pathlib import Path
from typing import IO

from scoring_core.errors import OutputError
from scoring_core.io.formats import STDIO

__all__ = [
    "STDOUT_NAME",
    "is_stream",
    "open_stream",
    "remove_stale_temps",
    "temp_path",
]

STDOUT_NAME = "standard output"
_HOST = re.sub(r"[^A-Za-z0-9]+", "_", socket.gethostname())[:40] or "host"
_counter = itertools.count(1)


def is_stream(path: str) -> bool:
    """True for standard output and for an existing path that is not a regular file (a
    device, a FIFO, a socket, or a symlink to one): written directly, never replaced."""
    if path == STDIO:
        return True
    try:
        mode = os.stat(path).st_mode  # follows symlinks: /proc/self/fd/1 is what fd 1 is
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def open_stream(path: str) -> IO[bytes]:
    """The binary stream behind ``path``: standard output for ``-``, else the path opened
    for writing without truncating or replacing it (a device or a FIFO)."""
    if path == STDIO:
        stdout = sys.stdout
        if stdout is None:  # started with standard output closed (`>&-`)
            raise OutputError(
                "cannot write the output to standard output: it is closed; pass -o FILE, "
                "or give the command a standard output",
                file=STDOUT_NAME,
            )
        return stdout.buffer
    try:
        return open(path, "wb", buffering=0)
    except OSError as exc:
        raise OutputError.of(exc, path) from None


def temp_path(target: Path) -> Path:
    """A temporary name beside ``target``, unique to this process and call."""
    return target.with_name(f".{target.name}.scoring-{_HOST}-{os.getpid()}-{next(_counter)}.tmp")


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temporary files of ``target`` left by processes of this host that are gone;
    return them. Files of live processes, of other hosts, and other names are left alone."""
    pattern = re.compile(
        rf"\.{re.escape(target.name)}\.scoring-{re.escape(_HOST)}-(?P<pid>\d+)-\d+\.tmp"
    )
    folder = target.parent
    removed: list[Path] = []
    prefix = f".{target.name}.scoring-"
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        found = pattern.fullmatch(entry.name)
        if found is None or _alive(int(found["pid"])):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(folder / entry.name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid() or sys.platform == "win32":  # Windows' os.kill would end it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or no way to tell: leave its files
        return True
    return True
