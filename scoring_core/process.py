"""How the ``scoring`` command sets up the process it runs in (the library never does).

* :func:`start`, first thing: Arrow's jemalloc memory pool when the installed pyarrow
  has it and the user chose no pool, one OpenBLAS thread when the user chose no thread
  count, and no garbage collection while imports and the chain load.
* :func:`give_back_variables`, once pyarrow (and with it numpy) is in, and
  :func:`startup_done`, once a command has loaded its chain: each variable set here is
  given back as the user had it once its library has read it, so child processes get
  the user's environment (their pyarrow may lack jemalloc). After ``startup_done`` the
  collector runs again.
* :func:`finish`, at the end: the interpreter's exit skips its collections.

Measured on ``scoring score`` with a 2M-row Parquet file (2 cores): mimalloc, Arrow's
default, hands memory back to the system and takes it again, zeroing huge pages each
time (10% more CPU and 45-60 MB higher peak than jemalloc); collections during startup
took 26 ms a run and those of the exit 70 ms. numpy's OpenBLAS starts a thread for each
core but the caller's when numpy loads, and each spins for about 0.1 s before it sleeps:
0.12 CPU-s a run on 2 cores, taken from the cores the work needs. The command
parallelises by chunk, so a BLAS call (the rules formula's matrix product) has nothing
to gain from more threads.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import re
import sys
from pathlib import Path

__all__ = [
    "finish",
    "give_back_variables",
    "peak_memory_mb",
    "pyarrow_has_jemalloc",
    "start",
    "startup_done",
]

_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
# A threaded OpenBLAS (numpy's wheels) takes the first of these set to a positive number
# when numpy loads it; an OpenMP build reads OMP_NUM_THREADS only (left to the user then).
_BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
_state = {"gc_paused": False}
# variable -> (the module that reads it, the user's value or None, the value set here)
_lent: dict[str, tuple[str, str | None, str]] = {}


def start() -> None:
    """Choose Arrow's memory pool and BLAS threads, pause garbage collection (see the module)."""
    chosen = _POOL_VARIABLE in os.environ or "pyarrow" in sys.modules
    if not chosen and pyarrow_has_jemalloc():  # Arrow reads the variable once, at import
        _lend(_POOL_VARIABLE, "jemalloc", reader="pyarrow")
    counts = [os.environ.get(name, "").strip() for name in _BLAS_VARIABLES]
    if "numpy" not in sys.modules and not any(c.isdigit() and int(c) > 0 for c in counts):
        _lend(_BLAS_VARIABLES[0], "1", reader="numpy")
    if gc.isenabled():
        gc.disable()
        _state["gc_paused"] = True


def startup_done() -> None:
    """The chain is loaded: the collector runs again, over what the work creates only.

    What startup built is frozen (never collected): it lives to the end anyway, and the
    few cycles it dropped (about 800 objects, 235 KB, measured) are not worth the 20 ms
    a full collection takes.
    """
    give_back_variables()
    if _state["gc_paused"]:
        _state["gc_paused"] = False
        gc.freeze()
        gc.enable()


def give_back_variables() -> None:
    """Give back each variable whose library has read it (see the module)."""
    for name, (reader, theirs, ours) in list(_lent.items()):
        if reader not in sys.modules:
            continue
        del _lent[name]
        if os.environ.get(name) != ours:
            continue  # changed since (by a plugin, say): that value stays
        if theirs is None:
            del os.environ[name]
        else:
            os.environ[name] = theirs


def _lend(name: str, value: str, *, reader: str) -> None:
    _lent[name] = (reader, os.environ.get(name), value)
    os.environ[name] = value


def finish() -> None:
    """The process ends: the interpreter's exit skips collecting what is still alive.

    The files are closed and the engine's cleanup hooks have run by now; what is left
    is released with the process.
    """
    gc.freeze()


def peak_memory_mb() -> float | None:
    """This process's peak resident memory so far, in MB; None where the OS does not say.

    Linux's ``VmHWM`` counts this program only: ``ru_maxrss`` would start from the peak of
    the process that started it (a notebook holding gigabytes, say).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes there, KiB here


def pyarrow_has_jemalloc() -> bool:
    """True when the installed pyarrow was built with jemalloc (without importing it).

    A build without it would print a warning for the pool variable, so the build's
    ``arrow/util/config.h`` is read instead; a pyarrow without its headers counts as
    without jemalloc.
    """
    try:
        spec = importlib.util.find_spec("pyarrow")
    except (ImportError, ValueError):
        return False
    if spec is None or spec.origin is None:
        return False
    header = Path(spec.origin).parent / "include" / "arrow" / "util" / "config.h"
    try:
        built_with = header.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"^#define ARROW_JEMALLOC\b", built_with, re.MULTILINE) is not None
