"""Broken YAML → our own message and the line to fix, the same from libyaml and Python parsers."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from responder.rules.yamlerrors import YAMLSyntaxError
from responder.rules.yamlpos import LOADER, PYTHON_LOADER, PosDict, load

MARK = "# <--"  # the line the error must name, marked in the YAML itself
RULE = "rules:\n  - name: a\n    keywords: [a]\n"  # lines 1-3; the broken line comes after
QUOTE_IT = "a value starting with '{}' must be put in quotes"
PARSERS = {"libyaml": LOADER, "python": PYTHON_LOADER}

# (id, YAML with `# <--` on the line to fix, our message)
BROKEN = [
    (
        "unquoted-colon",
        RULE + "    reply: Horario: 8 a 5  # <--\n",
        "a ': ' is not allowed here; a text containing ': ' must be quoted, "
        'e.g. reply: "Horario: 8 a 5"',
    ),
    (
        "double-quote-never-closed",
        RULE + '    reply: "Abrimos a las 8  # <--\n    via: massiva\n',
        'the quoted text that starts here never ends; close it with "',
    ),
    (
        "single-quote-never-closed",
        RULE + "    reply: 'Abrimos a las 8  # <--\n\n",
        "the quoted text that starts here never ends; close it with '",
    ),
    (
        "backslash-in-double-quotes",
        RULE + '    reply: "C:\\carpeta"  # <--\n',
        "in double quotes a backslash starts an escape such as \\n; write \\\\ for a backslash, "
        "or use single quotes",
    ),
    (
        "apostrophe-in-single-quotes",
        RULE + "    reply: 'It's ok'  # <--\n",
        "text after the closing quote; put the whole value inside the quotes "
        "(inside single quotes, write '' for one ')",
    ),
    (
        "text-after-closing-quote",
        RULE + '    reply: "Hola" amigo  # <--\n',
        "text after the closing quote; put the whole value inside the quotes "
        "(inside single quotes, write '' for one ')",
    ),
    ("tab-indent", RULE + "\treply: x  # <--\n", "a tab here: YAML indents with spaces only"),
    ("starts-with-star", RULE + "    reply: *Oferta* hoy  # <--\n", QUOTE_IT.format("*")),
    ("starts-with-at", RULE + "    reply: @tienda en IG  # <--\n", QUOTE_IT.format("@")),
    ("starts-with-bang", RULE + "    reply: !Hola! bienvenido  # <--\n", QUOTE_IT.format("!")),
    ("starts-with-dash", RULE + "    reply: - hola  # <--\n", QUOTE_IT.format("-")),
    ("starts-with-percent", RULE + "    reply: %50 menos  # <--\n", QUOTE_IT.format("%")),
    ("starts-with-pipe", RULE + "    reply: | hola  # <--\n", QUOTE_IT.format("|")),
    (
        "key-without-colon",
        RULE + "    reply [x]  # <--\n    via: massiva\n",
        "a key without ':' after it, or a line indented too far",
    ),
    (
        "key-indented-too-far",
        RULE + "     reply: x  # <--\n",
        "this line does not line up with the block that starts at line 2; check its indentation",
    ),
    (
        "list-item-where-a-key-goes",
        "settings: {}\n- name: a  # <--\n",
        "a list item where a key was expected; check its indentation",
    ),
    (
        "bracket-not-closed-before-the-next-key",
        "rules:\n  - name: a\n    keywords: [a, b\n    reply: x  # <--\n",
        "expected ',' or ']' here, in the list opened with '[' at line 3; "
        "quote an item that contains ': ' or ','",
    ),
    (
        "colon-inside-brackets",
        "rules:\n  - name: a\n    keywords: [hola, hora: 8: 30]  # <--\n",
        "expected ',' or ']' here, in the list opened with '['; "
        "quote an item that contains ': ' or ','",
    ),
    (
        "brace-never-closed",
        "rules:\n  - {name: a, keywords: [a]  # <--\n",
        "the mapping opened with '{' here is never closed",
    ),
    ("brace-closing-nothing", RULE + "    reply: }  # <--\n", "a '}' here closes nothing"),
    (
        "duplicate-key",
        RULE + "    reply: a\n    reply: b  # <--\n",
        "duplicate key 'reply' (first at line 4)",
    ),
    (
        "second-document",
        "rules: []\n---  # <--\nrules: []\n",
        "a second YAML document starts here; the file must hold one",
    ),
    (
        "anchor-repeated",
        "settings: {a: &x 1}\nrules: [&x 2]  # <--\n",
        "this anchor repeats the one at line 1; a value starting with '&' must be put in quotes",
    ),
    (
        "merge-key",
        "base: &b {via: massiva}\nrules:\n  - <<: *b  # <--\n    name: a\n",
        "merge keys (<<) are not supported; write the keys out",
    ),
    (
        "control-character",
        RULE + "    reply: a\x07b  # <--\n",
        "the character U+0007 is not allowed in YAML; delete it",
    ),
    (
        "int-tag-on-a-word",
        RULE + "    fuzzy: !!int x  # <--\n",
        "the tag !!int does not fit this value",
    ),
    (
        "bool-tag-on-a-word",
        RULE + "    fuzzy: !!bool si  # <--\n",
        "the tag !!bool does not fit this value",
    ),
    (
        "timestamp-tag-on-a-word",
        RULE + "    fuzzy: !!timestamp hoy  # <--\n",
        "the tag !!timestamp does not fit this value",
    ),
    (
        "map-tag-on-a-word",
        RULE + "    when: !!map x  # <--\n",
        "the tag !!map does not fit this value",
    ),
    (
        "seq-tag-on-a-word",
        RULE + "    reply: !!seq x  # <--\n",
        "the tag !!seq does not fit this value",
    ),
]


def marked_line(text: str) -> int:
    lines = [i for i, line in enumerate(text.split("\n"), 1) if MARK in line]
    assert len(lines) == 1, "mark exactly one line"
    return lines[0]


def error_of(text: str, loader: type[Any]) -> YAMLSyntaxError:
    with pytest.raises(YAMLSyntaxError) as caught:
        load(text, loader)
    return caught.value


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize(
    ("text", "message"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN]
)
def test_broken_yaml_gets_our_message_and_line(text: str, message: str, parser: str) -> None:
    error = error_of(text, PARSERS[parser])
    assert (error.line, error.message) == (marked_line(text), message)


def nested_flow(levels: int) -> str:
    return "rules:\n  - " + "[" * levels + "]" * levels + "\n"


def nested_blocks(levels: int) -> str:
    """Mappings nested `levels` deep, level N opening on line N."""
    return "".join("  " * level + "k:\n" for level in range(levels)) + "  " * levels + "v\n"


@pytest.mark.parametrize(
    ("parser", "text", "line"),
    [
        ("libyaml", nested_flow(1200), 2),  # past libyaml's own limit of 1,000 levels
        ("libyaml", nested_flow(400), 2),  # within it, but past Python's recursion limit
        ("python", nested_flow(400), 2),
        ("libyaml", nested_blocks(1200), 101),
        ("python", nested_blocks(1200), 101),
    ],
    ids=[
        "1200-brackets-libyaml",
        "400-brackets-libyaml",
        "400-brackets-python",
        "1200-indented-mappings-libyaml",
        "1200-indented-mappings-python",
    ],
)
def test_deep_nesting_is_one_clear_error(parser: str, text: str, line: int) -> None:
    """libyaml stops at 1,000 levels, Python at its recursion limit: either way, our words; a
    block nested past 100 levels is named where it passes them."""
    error = error_of(text, PARSERS[parser])
    assert (error.line, error.message) == (line, "lists and mappings nest too deeply here")


@pytest.mark.parametrize("parser", PARSERS)
def test_tags_that_fit_their_value_still_load(parser: str) -> None:
    text = "a: !!int 2\nb: !!str 5\nc: !!bool true\nd: !!float 1.5\ne: !!null ''\nf: !!map {x: 1}\n"
    doc = load(text, PARSERS[parser])
    assert isinstance(doc, PosDict)
    assert doc == {"a": 2, "b": "5", "c": True, "d": 1.5, "e": None, "f": {"x": 1}}


def test_the_errors_do_not_carry_pyyaml_words() -> None:
    """What PyYAML said stays the cause, for a traceback; the message is ours alone."""
    text = RULE + "    reply: Horario: 8 a 5\n"
    error = error_of(text, LOADER)
    assert isinstance(error.__cause__, yaml.scanner.ScannerError)
    assert error.__cause__.problem is not None
    assert error.__cause__.problem not in error.message
