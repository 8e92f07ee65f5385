"""The config and every file it names, packed to travel with a job.

Workers need not see the driver's disk: the YAML, the feature file, the models (with their
external data), custom-op libraries and local plugin files are read on the driver into one
zip archive, shipped once per worker process, and unpacked there into a folder of the
same layout, so the config's relative paths resolve as they did on the driver. Absolute
paths in the config are rewritten to relative ones inside the archive.

What is shipped: every string in the config that names an existing file or folder
(relative to the config's folder, or absolute), and the files each loaded step reads
(``Engine.loaded_files()``: an ONNX model's external data). A plugin named by module
(``plugins: [my_plugin]``) is not a file: it must be installed on the workers.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoring_core.errors import ConfigError

if TYPE_CHECKING:
    from scoring_core.engine import Engine

__all__ = ["JobBundle", "bundle_for", "cached_engine", "close_cached_engines"]

_COMPLETE = ".scoring-bundle-complete"
_LONGEST_PATH = 4096


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list | tuple):
        for value in data:
            yield from _strings(value)


def _named_path(text: str, base: Path) -> Path | None:
    """The existing file or folder a config string names, or None."""
    if not text or len(text) > _LONGEST_PATH or "\n" in text or "\0" in text:
        return None
    path = Path(text).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        return path.resolve() if path.exists() else None
    except OSError:
        return None


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def _rewritten(data: Any, absolute: dict[str, str]) -> Any:
    if isinstance(data, str):
        return absolute.get(data, data)
    if isinstance(data, dict):
        return {key: _rewritten(value, absolute) for key, value in data.items()}
    if isinstance(data, list):
        return [_rewritten(value, absolute) for value in data]
    return data


@dataclass(frozen=True)
class JobBundle:
    """A config and its files as one zip archive (``archive``), named by its sha256."""

    config_name: str  # the config's path inside the archive (POSIX)
    archive: bytes
    digest: str
    files: tuple[str, ...]  # the archive's members, for messages and docs

    @classmethod
    def from_config(cls, config: str | Path, engine: Engine | None = None) -> JobBundle:
        """Pack ``config`` and what it names; ``engine`` (built from it) adds its steps'
        files. Raises :class:`ConfigError` for a config that cannot be read."""
        import yaml

        path = Path(config).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"config file {config} does not exist", file=str(config))
        base = path.parent
        raw = path.read_bytes()
        data = yaml.safe_load(raw) if raw.strip() else None
        named: dict[Path, list[Path]] = {path: [path]}
        absolute: dict[str, Path] = {}
        for text in _strings(data):
            found = _named_path(text, base)
            if found is None or found == path:
                continue
            named.setdefault(found, _files_under(found))
            if Path(text).expanduser().is_absolute() or text.startswith("~"):
                absolute[text] = found
        for file in engine.loaded_files() if engine is not None else ():
            if file.is_file():
                resolved = file.resolve()
                named.setdefault(resolved, [resolved])
        members = sorted({f for files in named.values() for f in files})
        root = Path(os.path.commonpath([base, *(f.parent for f in members)]))
        config_name = path.relative_to(root).as_posix()
        if absolute:  # the archive holds them elsewhere: name them relative to the config
            text_of = {
                text: os.path.relpath(found, base).replace(os.sep, "/")
                for text, found in absolute.items()
            }
            raw = yaml.safe_dump(_rewritten(data, text_of), sort_keys=False).encode()
        buffer = io.BytesIO()
        digest = hashlib.sha256()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for member in members:
                name = member.relative_to(root).as_posix()
                content = raw if member == path else member.read_bytes()
                digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
                archive.writestr(name, content)
        names = tuple(m.relative_to(root).as_posix() for m in members)
        return cls(config_name, buffer.getvalue(), digest.hexdigest(), names)

    @classmethod
    def from_archive(cls, path: str | Path, config_name: str, digest: str) -> JobBundle:
        """The bundle whose archive was shipped as the file ``path`` (Spark's ``addFile``)."""
        with zipfile.ZipFile(path) as archive:
            names = tuple(archive.namelist())
        return cls(config_name, Path(path).read_bytes(), digest, names)

    def write_archive(self, folder: str | Path) -> Path:
        """The archive as a file in ``folder``, named by the bundle's key."""
        path = Path(folder) / f"scoring-job-{self.key}.zip"
        if not path.exists():
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_bytes(self.archive)
            os.replace(temporary, path)
        return path

    @property
    def key(self) -> str:
        """A short name for this bundle: its digest's first 16 hex digits."""
        return self.digest[:16]

    def unpack(self, folder: str | Path) -> Path:
        """Unpack into ``folder/<key>/`` (once: a complete copy is reused, and two processes
        unpacking at once each finish before either uses it); returns the config's path."""
        target = Path(folder) / f"scoring-job-{self.key}"
        if not (target / _COMPLETE).exists():
            Path(folder).mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=folder))
            with zipfile.ZipFile(io.BytesIO(self.archive)) as archive:
                archive.extractall(staging)
            (staging / _COMPLETE).touch()
            try:
                staging.rename(target)
            except OSError:  # another process got there first, or a stale incomplete copy
                if not (target / _COMPLETE).exists():
                    shutil.rmtree(target, ignore_errors=True)
                    staging.rename(target)
                else:
                    shutil.rmtree(staging, ignore_errors=True)
        return target / self.config_name


def bundle_for(config: str | Path) -> tuple[JobBundle, Engine]:
    """The job's files, and the driver's engine built from them first, so a bad config
    fails on the driver with its usual message; the caller closes the engine."""
    from scoring_core.engine import Engine

    engine = Engine.from_yaml(config)
    try:
        return JobBundle.from_config(config, engine), engine
    except BaseException:
        engine.close()
        raise


# -- one engine per process and bundle ------------------------------------------------------

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def cached_engine(bundle_key: str, config_path: Path) -> Engine:
    """This process's engine for a bundle, built at the first call (as MLflow's
    ``spark_udf`` caches its model per Python worker)."""
    with _engines_lock:
        engine = _engines.get(bundle_key)
        if engine is None or engine.closed:
            from scoring_core.engine import Engine

            engine = Engine.from_yaml(config_path)
            _engines[bundle_key] = engine
        return engine


def close_cached_engines(bundle_key: str | None = None) -> None:
    """Close this process's engine for ``bundle_key`` (every one when None)."""
    with _engines_lock:
        keys = list(_engines) if bundle_key is None else [bundle_key]
        engines = [_engines.pop(key) for key in keys if key in _engines]
    for engine in engines:
        engine.close()
