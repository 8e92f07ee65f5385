"""Read YAML safely and remember where every key came from.

The loader refuses what a configuration file never needs and an attacker might
send: files over a size cap, duplicate keys, aliases beyond a small budget (the
"billion laughs" alias bomb), and any tag the safe constructor does not know
(``!!python/object`` and friends). It returns plain Python data plus a map from
key paths to line numbers, so schema errors can point at the line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scoring_core.errors import ConfigError

__all__ = [
    "MAX_ALIASES",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "LoadedYaml",
    "format_path",
    "load_yaml_file",
    "load_yaml_text",
]

MAX_CONFIG_BYTES = 1024 * 1024
MAX_ALIASES = 100
MAX_NODES = 200_000
MAX_DEPTH = 64

KeyPath = tuple[str | int, ...]


@dataclass
class LoadedYaml:
    """YAML data with the line (1-based) of every mapping key and sequence item."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    file: str | None = None
    # The sha256 of the file's bytes, for every score's provenance (None: not from a file).
    sha256: str | None = None

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


class _GuardedLoader(yaml.SafeLoader):
    """A SafeLoader that counts aliases while composing the node graph."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_count = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                peek: Callable[[], Any] = self.peek_event
                raise ConfigError(
                    f"the document nests deeper than {MAX_DEPTH} levels; refusing it",
                    line=peek().start_mark.line + 1,
                )
            return self._compose_counted(parent, index)
        finally:
            self.depth -= 1

    def _compose_counted(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                peek: Callable[[], Any] = self.peek_event
                event = peek()
                raise ConfigError(
                    f"more than {MAX_ALIASES} YAML aliases; a configuration never needs that many "
                    "(this looks like an alias bomb)",
                    line=event.start_mark.line + 1,
                )
        return super().compose_node(parent, index)


# YAML 1.1 (PyYAML's default) reads ``1e-3`` as text, because its floats need a dot;
# YAML 1.2 and every person writing a tolerance read it as a number.
_GuardedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _describe_key(key: Any) -> str:
    return repr(key) if not isinstance(key, str) else key


class _Builder:
    """Turns a composed node graph into Python data, recording lines, bounded in size."""

    def __init__(self, loader: _GuardedLoader, file: str | None) -> None:
        self.loader = loader
        self.file = file
        self.lines: dict[KeyPath, int] = {}
        self.nodes = 0

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        if len(path) > MAX_DEPTH:
            raise ConfigError(
                f"the document nests deeper than {MAX_DEPTH} levels (a recursive alias?); "
                "refusing it",
                file=self.file,
                line=node.start_mark.line + 1,
            )
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ConfigError(
                f"the document expands to more than {MAX_NODES} values through its aliases; "
                "refusing it (an alias bomb?)",
                file=self.file,
                line=node.start_mark.line + 1,
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise ConfigError(
                    f"the tag {node.tag!r} is not allowed",
                    file=self.file,
                    line=node.start_mark.line + 1,
                )
            items = []
            for index, child in enumerate(node.value):
                self.lines[(*path, index)] = child.start_mark.line + 1
                items.append(self.build(child, (*path, index)))
            return items
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"cannot read this value ({_short(exc)}); only plain YAML values are allowed",
                file=self.file,
                line=node.start_mark.line + 1,
                key_path=format_path(path) or None,
            ) from None

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[Any, Any]:
        if node.tag != "tag:yaml.org,2002:map":
            raise ConfigError(
                f"the tag {node.tag!r} is not allowed",
                file=self.file,
                line=node.start_mark.line + 1,
            )
        explicit = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
        self.loader.flatten_mapping(node)
        merged = len(node.value) - explicit  # flatten puts the merged entries first
        result: dict[Any, Any] = {}
        first_line: dict[Hashable, int] = {}
        from_merge: set[Hashable] = set()
        for position, (key_node, value_node) in enumerate(node.value):
            key = self.build(key_node, path)
            line = key_node.start_mark.line + 1
            if not isinstance(key, Hashable):
                raise ConfigError("a mapping key must be a plain value", file=self.file, line=line)
            if position < merged:
                from_merge.add(key)
            elif key in from_merge:
                from_merge.discard(key)  # an explicit key overrides a merged one (`<<: *base`)
            elif key in result:
                raise ConfigError(
                    f"duplicate key {_describe_key(key)!s} (first defined on line "
                    f"{first_line[key]}); remove one of them",
                    key_path=format_path((*path, str(key))),
                    file=self.file,
                    line=line,
                )
            first_line[key] = line
            child_path = (*path, key if isinstance(key, int | str) else str(key))
            self.lines[child_path] = line
            result[key] = self.build(value_node, child_path)
        return result


def _short(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    return str(problem) if problem else str(exc).splitlines()[0]


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_yaml_text(text: str, *, file: str | None = None) -> LoadedYaml:
    """Parse one YAML document from ``text``; raise :class:`ConfigError` on anything unsafe."""
    if len(text.encode("utf-8", errors="replace")) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB; a configuration never is",
            file=file,
        )
    try:
        loader = _GuardedLoader(text)
    except yaml.YAMLError as exc:  # e.g. a control character the YAML reader refuses
        raise ConfigError(f"invalid YAML: {_short(exc)}", file=file) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return LoadedYaml(data=None, file=file)
        builder = _Builder(loader, file)
        data = builder.build(node, ())
        builder.lines[()] = node.start_mark.line + 1
        return LoadedYaml(data=data, lines=builder.lines, file=file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(
            f"invalid YAML: {_short(exc)}",
            file=file,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {_short(exc)}", file=file) from None
    except RecursionError:
        raise ConfigError(
            "the document nests too deeply to read; a configuration never does", file=file
        ) from None
    except ConfigError as exc:
        if exc.file is not None or file is None:
            raise
        raise ConfigError(exc.message, key_path=exc.key_path, file=file, line=exc.line) from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path) -> LoadedYaml:
    """Read and parse ``path``, refusing files over :data:`MAX_CONFIG_BYTES`."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise ConfigError("the file does not exist; check the path", file=str(p)) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the file ({exc})", file=str(p)) from None
    if not p.is_file():
        raise ConfigError("not a regular file; give the path of a YAML file", file=str(p))
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"the file is {size} bytes, over the {MAX_CONFIG_BYTES // 1024} KiB limit for a "
            "configuration",
            file=str(p),
        )
    try:
        data = p.read_bytes()
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("the file is not UTF-8 text", file=str(p)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file ({exc.strerror})", file=str(p)) from None
    # What was parsed is what was hashed: the same bytes, read once.
    loaded = load_yaml_text(text.replace("\r\n", "\n"), file=str(p))
    loaded.sha256 = hashlib.sha256(data).hexdigest()
    return loaded
