"""YAML files as the config and its profiles are read: the safe loader, refusing duplicate keys.

`read_yaml(path)` returns the document, or raises `ValueError("not readable as YAML at line L, column C:
<why>")` for a missing or unreadable file, bad YAML, a duplicate key (YAML would silently keep the last),
an integer too long to convert or nesting too deep. Pure but for reading the file; thread-safe.
"""
from pathlib import Path
from typing import Any

import yaml


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when present
    """The safe loader, refusing duplicate keys."""
    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if (key := self.construct_object(key_node)) in seen:
                    raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                            f"found duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """The YAML document in the file at `path`; ValueError saying where and why it is not readable."""
    try:
        return yaml.load(path.read_bytes(), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError, ValueError, RecursionError) as exc:  # missing, bad YAML, 5000 digits, deep
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or getattr(exc, "strerror", None) or " ".join(str(exc).split())
        raise ValueError(f"not readable as YAML{where}: {reason or exc!r}") from None
