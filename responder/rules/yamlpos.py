"""YAML loading that remembers the line of every mapping key, so errors can name it."""

from __future__ import annotations

import re
from typing import Any

import yaml


class PosDict(dict[str, Any]):
    """A mapping from YAML that knows its own line and the line of each key (1-based)."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class PosList(list[Any]):
    """A sequence from YAML that knows the line of each item (1-based)."""

    line: int
    item_lines: list[int]


# libyaml parses a 100,000-rule file several times faster than the pure-Python parser.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    pass


# YAML 1.1 reads `no`, `yes`, `on`, `off` as booleans, `0412` as octal and
# `8:30` as 510. Rule authors write `keywords: [si, no]`, so only YAML 1.2 forms are typed.
_TYPED = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _TYPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)


def _mapping(loader: _Loader, node: yaml.MappingNode) -> PosDict:
    result = PosDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key = str(key) if not isinstance(key, str) else key
        if key in result:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> PosList:
    result = PosList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


class YAMLSyntaxError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load(text: str) -> Any:
    """Parses YAML text safely; raises YAMLSyntaxError with the 1-based line of the problem."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        message = err.problem or "invalid YAML"
        if err.context and err.context_mark and "end of stream" in message:
            # An unclosed quote is only noticed at the end of the file: name where it opened.
            line = err.context_mark.line + 1
            message = f"the file ended {err.context}; is a quote or bracket left open?"
        elif err.context and err.context_mark and err.context_mark.line + 1 != line:
            message += f" ({err.context} started at line {err.context_mark.line + 1})"
        if "mapping values are not allowed" in message:
            message += "; a text containing ': ' must be quoted, e.g. reply: \"Horario: 8 a 5\""
        raise YAMLSyntaxError(line, message) from err
    except yaml.YAMLError as err:
        raise YAMLSyntaxError(1, str(err)) from err
    except RecursionError:
        raise YAMLSyntaxError(1, "the file nests lists or mappings too deeply") from None
