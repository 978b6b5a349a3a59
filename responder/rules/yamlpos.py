"""YAML loading that remembers the line of every mapping key, so errors can name it."""

from __future__ import annotations

import re
from typing import Any

import yaml

from responder.rules.yamlerrors import YAMLSyntaxError, explain


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


# YAML 1.1 reads `no`, `yes`, `on`, `off` as booleans, `0412` as octal and
# `8:30` as 510. Rule authors write `keywords: [si, no]`, so only YAML 1.2 forms are typed.
_TYPED = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_YAML_1_2 = (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9]*)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$",
        "-+.0123456789",
    ),
)
# Tags whose SafeLoader constructor fails with ValueError, KeyError or AttributeError when an
# explicit tag (`!!int x`) puts a value in front of it that does not look the part.
_SCALAR_TAGS = (*_TYPED, "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp")


def _mapping(loader: yaml.SafeLoader, node: yaml.Node) -> PosDict:
    if not isinstance(node, yaml.MappingNode):
        raise _misfit(node)
    result = PosDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key = str(key) if not isinstance(key, str) else key
        if key in result:
            raise YAMLSyntaxError(
                key_node.start_mark.line + 1,
                f"duplicate key {key!r} (first at line {result.key_lines[key]})",
                code="duplicate_key",
                key=key,
                first_line=result.key_lines[key],
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _sequence(loader: yaml.SafeLoader, node: yaml.Node) -> PosList:
    if not isinstance(node, yaml.SequenceNode):
        raise _misfit(node)
    result = PosList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _typed_scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """A tagged scalar only when it reads as that type untagged too."""
    if not isinstance(node, yaml.ScalarNode):
        raise _misfit(node)
    untagged = loader.resolve(yaml.ScalarNode, node.value, (True, False))  # type: ignore[no-untyped-call]
    if untagged != node.tag:
        raise _misfit(node)
    return yaml.SafeLoader.yaml_constructors[node.tag](loader, node)


def _misfit(node: yaml.Node) -> YAMLSyntaxError:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    return YAMLSyntaxError(
        node.start_mark.line + 1,
        f"the tag {tag} does not fit this value",
        code="tag_misfit",
        tag=tag,
    )


def _make_loader(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    loader: type[yaml.SafeLoader] = type(f"Rules{base.__name__}", (base,), {})
    loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in _TYPED]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for tag, pattern, first in _YAML_1_2:
        loader.add_implicit_resolver(tag, re.compile(pattern), list(first))
    loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
    loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)
    for tag in _SCALAR_TAGS:
        loader.add_constructor(tag, _typed_scalar)
    return loader


# libyaml parses a 100,000-rule file several times faster than the pure-Python parser, which
# reads the same YAML (and is what runs where PyYAML was built without libyaml).
PYTHON_LOADER = _make_loader(yaml.SafeLoader)
LOADER = _make_loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load(text: str, loader: type[yaml.SafeLoader] = LOADER) -> Any:
    """Parses YAML text safely; raises YAMLSyntaxError with the 1-based line of the problem."""
    try:
        return yaml.load(text, Loader=loader)
    except (yaml.YAMLError, RecursionError) as err:
        raise explain(err, text, loader) from err
