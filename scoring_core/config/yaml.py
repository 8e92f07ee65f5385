"""Read YAML safely and remember where every key came from.

The loader refuses what a configuration file never needs and an attacker might
send: files over a size cap, duplicate keys, aliases beyond a small budget (the
"billion laughs" alias bomb), and any tag the safe constructor does not know
(``!!python/object`` and friends). It returns plain Python data plus a map from
key paths to line numbers, so schema errors can point at the line.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from scoring_core.errors import ConfigError

try:  # libyaml's parser: the pure-Python one took 4.5 s to read a 1 MiB file of 60k keys
    from yaml._yaml import CParser as _Parser

    _FAST_PARSER = True
except ImportError:  # PyYAML built without libyaml
    _FAST_PARSER = False

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


class _GuardedComposer(Composer):
    """A composer that counts aliases and nesting while composing the node graph.

    It runs in Python over the events of libyaml's parser when PyYAML has it (0.6 s for
    the largest file allowed, 60k keys, against 4.5 s for the pure-Python scanner), so the
    checks here still see every node before anything nests too deep for C to survive.
    """

    alias_count: int
    depth: int
    # Supplied by the parser and resolver classes beside this one in a loader.
    peek_event: Callable[[], Any]
    check_event: Callable[..., bool]
    get_event: Callable[[], Any]
    resolve: Callable[..., str]

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.peek_event()
        kind = type(event)
        if kind is yaml.ScalarEvent and event.anchor is None:
            # A plain value, as Composer.compose_scalar_node builds it, without its layers
            # of calls: a tenth of the time to compose a file of many keys.
            self.get_event()
            tag = event.tag
            if tag is None or tag == "!":
                tag = self.resolve(yaml.ScalarNode, event.value, event.implicit)
            return yaml.ScalarNode(
                tag, event.value, event.start_mark, event.end_mark, style=event.style
            )
        if self.depth >= MAX_DEPTH:
            raise ConfigError(
                f"the document nests deeper than {MAX_DEPTH} levels; refusing it",
                line=event.start_mark.line + 1,
            )
        if kind is yaml.AliasEvent:
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                raise ConfigError(
                    f"more than {MAX_ALIASES} YAML aliases; a configuration never needs that many "
                    "(this looks like an alias bomb)",
                    line=event.start_mark.line + 1,
                )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


if _FAST_PARSER:

    class _GuardedLoader(_GuardedComposer, _Parser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            _Parser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self.alias_count = 0
            self.depth = 0

else:

    class _GuardedLoader(_GuardedComposer, yaml.SafeLoader):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.SafeLoader.__init__(self, stream)
            self.alias_count = 0
            self.depth = 0


# YAML 1.1 (PyYAML's default) reads ``1e-3`` as text, because its floats need a dot;
# YAML 1.2 and every person writing a tolerance read it as a number.
_GuardedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"


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
        if node.tag == _STR_TAG:
            return node.value  # what construct_object returns for text, at a tenth the cost
        value = node.value
        if node.tag == _INT_TAG and value.isascii() and value.isdigit() and value[:1] != "0":
            return int(value)  # likewise for a plain whole number (YAML 1.1 reads 010 as 8)
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
            if key_node.tag == _STR_TAG and type(key_node) is yaml.ScalarNode:
                key = key_node.value  # the usual key, without a call (60k keys: 0.1 s)
                self.nodes += 1
            else:
                key = self.build(key_node, path)
            line = key_node.start_mark.line + 1
            if type(key) is not str and not isinstance(key, Hashable):
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


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` becomes once its aliases are expanded, counted once per
    node of the graph (an alias is the same node object), so in time linear in the file."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            size += _expanded_size(key, sizes) + _expanded_size(value, sizes)
    sizes[id(node)] = size
    return size


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
    """Parse one YAML document from ``text``; raise :class:`ConfigError` on anything unsafe.

    The cyclic garbage collector is paused while it runs: the nodes of a large file (none
    of them in a cycle) set off collections that walk every object of the process, which
    in a big process tripled the time to read 60k keys (0.6 s of CPU to 1.6 s, measured).
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return _load_yaml_text(text, file)
    finally:
        if paused:
            gc.enable()


def _load_yaml_text(text: str, file: str | None) -> LoadedYaml:
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
        if (
            loader.alias_count and _expanded_size(node, {}) > MAX_NODES
        ):  # an alias bomb, refused before it expands
            raise ConfigError(
                f"the document expands to more than {MAX_NODES} values through its aliases; "
                "refusing it (an alias bomb?)",
                file=file,
                line=node.start_mark.line + 1,
            )
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
