"""Handing onnxruntime exactly what was checked: :func:`staged`.

The model file is read once, hashed and checked (:func:`~scoring_onnx.model_file.check_model_file`);
onnxruntime then gets those bytes, not the path, so a file swapped between the check and
the load (a race any writer to the model folder could try) cannot be served under the
pinned sha256. A model with external data needs its data files beside it: the model's
bytes and a copy of each data file, read through one open file and counted against
``max_model_bytes``, go into a private temporary folder that onnxruntime loads from and
that is removed once the session is built. A custom-op library is loaded from an
in-memory copy of the bytes that matched its pin (a temporary file where the system has
no ``memfd_create``).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from scoring_onnx.errors import OnnxLoadError
from scoring_onnx.model_file import ModelFile

__all__ = ["staged"]


@contextmanager
def staged(
    model: ModelFile, libraries: Sequence[tuple[Path, bytes]], max_bytes: int
) -> Iterator[tuple[bytes | str, list[str]]]:
    """``(model, library paths)`` to give onnxruntime while the block runs: the checked
    model bytes (or the path of a private copy with its external data), and a path per
    checked custom-op library."""
    with ExitStack() as stack:
        paths = [stack.enter_context(_library_copy(path, data)) for path, data in libraries]
        if not model.locations:
            yield model.data, paths
            return
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scoring-onnx-")))
        budget = max_bytes - len(model.data)
        for location, source in model.locations:
            target = folder / location
            target.parent.mkdir(parents=True, exist_ok=True)
            budget -= _copy(source, target, budget, model.path)
        copy = folder / model.path.name
        copy.write_bytes(model.data)
        yield str(copy), paths


def _copy(source: Path, target: Path, budget: int, model: Path) -> int:
    """Copy the regular file ``source`` through one open file; refuse more than ``budget``."""
    try:
        with source.open("rb") as reader:
            if not stat.S_ISREG(os.fstat(reader.fileno()).st_mode):
                raise OnnxLoadError(
                    f"model {model}: external data {source} is not a regular file", path=model
                )
            with target.open("wb") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
                copied = writer.tell()
    except OSError as exc:
        raise OnnxLoadError(
            f"model {model}: external data {source} cannot be read ({exc.strerror or exc})",
            path=model,
        ) from None
    if copied > budget:
        raise OnnxLoadError(
            f"model {model} with its external data is more than max_model_bytes; raise "
            "`max_model_bytes` in the step's options if the model is meant to be this big.",
            path=model,
        )
    return copied


@contextmanager
def _library_copy(path: Path, data: bytes) -> Iterator[str]:
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        try:
            fd = memfd_create(path.name)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                with os.fdopen(fd, "wb", closefd=False) as file:
                    file.write(data)
                yield f"/proc/self/fd/{fd}"
            finally:
                os.close(fd)
            return
    descriptor, name = tempfile.mkstemp(prefix="scoring-onnx-", suffix=path.suffix)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        yield name
    finally:
        os.unlink(name)
