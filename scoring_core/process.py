"""How the ``scoring`` command sets up the process it runs in (the library never does).

* :func:`start`, first thing: Arrow's jemalloc memory pool when the installed pyarrow
  has it and the user chose no pool, one OpenBLAS thread when the user set no thread
  count, and no garbage collection while imports and the chain load.
* :func:`startup_done`, once a command has loaded its chain: the collector runs again,
  and the thread count is not handed down to child processes.
* :func:`arrow_imported`, once pyarrow is in: the pool choice is not handed down to
  child processes (their pyarrow may lack jemalloc).
* :func:`finish`, at the end: the interpreter's exit skips its collections.

Measured on ``scoring score`` with a 2M-row Parquet file (2 cores): mimalloc, Arrow's
default, hands memory back to the system and takes it again, zeroing huge pages each
time (10% more CPU and 45-60 MB higher peak than jemalloc); collections during startup
took 26 ms a run and those of the exit 70 ms. numpy's OpenBLAS starts a thread per core
at import, and each spins for about 0.1 s before it sleeps: 0.12 CPU-s of a 0.6 s run,
taken from the cores the work needs. The command parallelises by chunk, so a BLAS call
(the rules formula's matrix product) has nothing to gain from more threads.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import re
import sys
from pathlib import Path

__all__ = [
    "arrow_imported",
    "finish",
    "peak_memory_mb",
    "pyarrow_has_jemalloc",
    "start",
    "startup_done",
]

_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
# OpenBLAS reads the first of these that is set, when numpy loads it.
_BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
_state = {"gc_paused": False, "pool_set": False, "blas_set": False}


def start() -> None:
    """Choose Arrow's memory pool and BLAS threads, pause garbage collection (see the module)."""
    chosen = _POOL_VARIABLE in os.environ or "pyarrow" in sys.modules
    if not chosen and pyarrow_has_jemalloc():  # Arrow reads the variable once, at import
        os.environ[_POOL_VARIABLE] = "jemalloc"
        _state["pool_set"] = True
    if "numpy" not in sys.modules and not any(v in os.environ for v in _BLAS_VARIABLES):
        os.environ[_BLAS_VARIABLES[0]] = "1"
        _state["blas_set"] = True
    if gc.isenabled():
        gc.disable()
        _state["gc_paused"] = True


def startup_done() -> None:
    """The chain is loaded: the collector runs again, over what the work creates only.

    What startup built is frozen (never collected): it lives to the end anyway, and the
    few cycles it dropped (about 800 objects, 235 KB, measured) are not worth the 20 ms
    a full collection takes.
    """
    if _state["blas_set"] and "numpy" in sys.modules:  # numpy has read it by now
        _state["blas_set"] = False
        os.environ.pop(_BLAS_VARIABLES[0], None)
    if _state["gc_paused"]:
        _state["gc_paused"] = False
        gc.freeze()
        gc.enable()


def arrow_imported() -> None:
    """pyarrow has read its pool choice: child processes get the user's environment."""
    if _state["pool_set"]:
        _state["pool_set"] = False
        os.environ.pop(_POOL_VARIABLE, None)


def finish() -> None:
    """The process ends: the interpreter's exit skips collecting what is still alive.

    The files are closed and the engine's cleanup hooks have run by now; what is left
    is released with the process.
    """
    gc.freeze()


def peak_memory_mb() -> float | None:
    """The process's peak resident memory so far, in MB; None where the OS does not say."""
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
