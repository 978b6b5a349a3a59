"""rules.yaml syntax errors in our own words.

PyYAML words its errors differently from one release to the next and between its C and Python
parsers, so a problem is told apart by the exception's class and by the characters at the
positions it marks, never by its text.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# A rules file nests a handful of levels; after a RecursionError, the first place deeper than
# this is where the file is said to nest too deeply.
MAX_DEPTH = 100

QUOTE_HINT = "a text containing ': ' must be quoted, e.g. reply: \"Horario: 8 a 5\""
# Characters that mean something to YAML at the start of a value (anchor, alias, tag, block
# text, directive, reserved, key, list item).
_SPECIAL_START = frozenset("&*!|>%@`?-")
_QUOTES = frozenset("'\"")
_OPENS_A_LEVEL = frozenset("[{-:?")
TOO_DEEP = "lists and mappings nest too deeply here"
NOT_YAML = "the file cannot be read as YAML"
UNREADABLE = "the YAML cannot be read here"
# The line breaks YAML counts; str.splitlines also splits at \v, \f and \x1c-\x1e.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# What YAML allows in a file; the reader stops at anything else.
_NOT_ALLOWED = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class YAMLSyntaxError(ValueError):
    """Where the text stops being YAML (a 1-based line) and why, in our words; `code` and
    `params` name the problem for translation (responder.rules.messages_es)."""

    def __init__(self, line: int, message: str, *, code: str, **params: Any) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.code = code
        self.params = params


def explain(err: Exception, text: str, loader: type[Any]) -> YAMLSyntaxError:
    """Our error for what PyYAML raised (`loader` read `text`): its class and marks decide."""
    if isinstance(err, yaml.reader.ReaderError):
        return _not_allowed(text)
    if isinstance(err, RecursionError):
        # Older PyYAML, and its Python parser, recurse once per level until Python stops them.
        return YAMLSyntaxError(_too_deep(text, loader) or 1, TOO_DEEP, code="too_deep")
    if not isinstance(err, yaml.MarkedYAMLError):
        return YAMLSyntaxError(1, NOT_YAML, code="not_yaml")
    problem, context = err.problem_mark or err.context_mark, err.context_mark
    if problem is None:
        return YAMLSyntaxError(1, NOT_YAML, code="not_yaml")
    source = _Source(text)
    if isinstance(err, yaml.scanner.ScannerError) and _libyaml_too_deep(source, problem, context):
        return YAMLSyntaxError(
            _too_deep(text, loader) or problem.line + 1, TOO_DEEP, code="too_deep"
        )
    if isinstance(err, yaml.scanner.ScannerError):
        return _scanner(source, problem, context)
    if isinstance(err, yaml.parser.ParserError):
        return _parser(source, problem, context)
    if isinstance(err, yaml.composer.ComposerError):
        return _composer(source, problem, context)
    if isinstance(err, yaml.constructor.ConstructorError):
        return _constructor(source, problem)
    return YAMLSyntaxError(problem.line + 1, UNREADABLE, code="unreadable")


class _Source:
    """The text cut into lines the way YAML counts them, to look at what a mark points to."""

    def __init__(self, text: str) -> None:
        self.lines = _LINE_BREAK.split(text)

    def at(self, mark: yaml.Mark | None) -> str:
        """The character at `mark`: "" past the end of the file, "\\n" at the end of a line."""
        if mark is None or mark.line >= len(self.lines):
            return ""
        line = self.lines[mark.line]
        if mark.column < len(line):
            return line[mark.column]
        return "\n" if mark.line + 1 < len(self.lines) else ""

    def before(self, mark: yaml.Mark) -> str:
        """The part of the mark's line before it."""
        return self.lines[mark.line][: mark.column] if mark.line < len(self.lines) else ""

    def between(self, start: yaml.Mark, end: yaml.Mark) -> str:
        if start.line == end.line:
            return self.before(end)[start.column :]
        middle = self.lines[start.line + 1 : end.line]
        return "\n".join([self.lines[start.line][start.column :], *middle, self.before(end)])

    def ended(self, mark: yaml.Mark) -> bool:
        """Whether nothing but blanks follows `mark`: the parser ran into the end of the file."""
        if mark.line >= len(self.lines):
            return True
        rest = [self.lines[mark.line][mark.column :], *self.lines[mark.line + 1 :]]
        return not "".join(rest).strip()


def _libyaml_too_deep(source: _Source, problem: yaml.Mark, context: yaml.Mark | None) -> bool:
    """libyaml stops at 1,000 levels, marking the `[`, `{`, `- `, `? ` or `:` that opens one
    too many as both problem and context; no other scanner error marks such a character twice."""
    return (
        context is not None
        and (context.line, context.column) == (problem.line, problem.column)
        and source.at(problem) in _OPENS_A_LEVEL
    )


def _quote_it(line: int, start: str) -> YAMLSyntaxError:
    return YAMLSyntaxError(
        line, f"a value starting with '{start}' must be put in quotes", code="quote_it", char=start
    )


def _scanner(source: _Source, problem: yaml.Mark, context: yaml.Mark | None) -> YAMLSyntaxError:
    opened = source.at(context)
    if context is not None and opened in _QUOTES:
        if source.ended(problem):
            return YAMLSyntaxError(
                context.line + 1,
                f"the quoted text that starts here never ends; close it with {opened}",
                code="quote_never_ends",
                quote=opened,
            )
        if opened == '"' and "\\" in source.between(context, problem) + source.at(problem):
            return YAMLSyntaxError(
                problem.line + 1,
                "in double quotes a backslash starts an escape such as \\n; "
                "write \\\\ for a backslash, or use single quotes",
                code="backslash",
            )
        return YAMLSyntaxError(
            problem.line + 1,
            f"the quoted text that starts at line {context.line + 1} cannot be read here",
            code="quoted_unreadable",
            start_line=context.line + 1,
        )
    found = source.at(problem)
    if found == ":":
        return YAMLSyntaxError(
            problem.line + 1, f"a ': ' is not allowed here; {QUOTE_HINT}", code="colon"
        )
    if found == "\t":
        return YAMLSyntaxError(
            problem.line + 1, "a tab here: YAML indents with spaces only", code="tab"
        )
    start, line = (opened, context.line + 1) if context is not None else (found, problem.line + 1)
    if start in _SPECIAL_START:
        return _quote_it(line, start)
    if context is not None and context.line < problem.line:
        # A word at the start of a line that was waiting for its ':' when the next line came.
        return YAMLSyntaxError(
            context.line + 1,
            "a key without ':' after it, or a line indented too far",
            code="key_without_colon",
        )
    return YAMLSyntaxError(problem.line + 1, UNREADABLE, code="unreadable")


def _parser(source: _Source, problem: yaml.Mark, context: yaml.Mark | None) -> YAMLSyntaxError:
    opened = source.at(context)
    if context is not None and opened in ("[", "{"):
        close, what = ("]", "list") if opened == "[" else ("}", "mapping")
        if source.ended(problem):
            return YAMLSyntaxError(
                context.line + 1,
                f"the {what} opened with '{opened}' here is never closed",
                code="never_closed",
                opened=opened,
                close=close,
            )
        where = "" if context.line == problem.line else f" at line {context.line + 1}"
        return YAMLSyntaxError(
            problem.line + 1,
            f"expected ',' or '{close}' here, in the {what} opened with '{opened}'{where}; "
            "quote an item that contains ': ' or ','",
            code="expected_comma",
            opened=opened,
            close=close,
            start_line=context.line + 1,
        )
    found = source.at(problem)
    if found in ("]", "}"):
        return YAMLSyntaxError(
            problem.line + 1, f"a '{found}' here closes nothing", code="closes_nothing", char=found
        )
    if found == "-":
        return YAMLSyntaxError(
            problem.line + 1,
            "a list item where a key was expected; check its indentation",
            code="list_item",
        )
    if source.before(problem).rstrip().endswith(("'", '"')):
        return YAMLSyntaxError(
            problem.line + 1,
            "text after the closing quote; put the whole value inside the quotes "
            "(inside single quotes, write '' for one ')",
            code="after_quote",
        )
    if context is not None and context.line < problem.line:
        return YAMLSyntaxError(
            problem.line + 1,
            f"this line does not line up with the block that starts at line {context.line + 1}; "
            "check its indentation",
            code="misaligned",
            start_line=context.line + 1,
        )
    return YAMLSyntaxError(
        problem.line + 1,
        "the YAML cannot be read here; check the indentation",
        code="check_indentation",
    )


def _composer(source: _Source, problem: yaml.Mark, context: yaml.Mark | None) -> YAMLSyntaxError:
    found = source.at(problem)
    if found == "*":
        return _quote_it(problem.line + 1, "*")
    if found == "&" and context is not None:
        return YAMLSyntaxError(
            problem.line + 1,
            f"this anchor repeats the one at line {context.line + 1}; "
            "a value starting with '&' must be put in quotes",
            code="anchor_repeated",
            first_line=context.line + 1,
        )
    return YAMLSyntaxError(
        problem.line + 1,
        "a second YAML document starts here; the file must hold one",
        code="second_document",
    )


def _constructor(source: _Source, problem: yaml.Mark) -> YAMLSyntaxError:
    found = source.at(problem)
    if found == "!":
        return _quote_it(problem.line + 1, "!")
    if found == "<" and source.lines[problem.line][problem.column :].startswith("<<"):
        return YAMLSyntaxError(
            problem.line + 1,
            "merge keys (<<) are not supported; write the keys out",
            code="merge_key",
        )
    return YAMLSyntaxError(
        problem.line + 1,
        "this value cannot be read; rules.yaml holds text, numbers, true/false, lists and mappings",
        code="unknown_value",
    )


def _not_allowed(text: str) -> YAMLSyntaxError:
    found = _NOT_ALLOWED.search(text)
    if found is None:
        return YAMLSyntaxError(
            1, "the file holds a character that YAML does not allow", code="bad_character"
        )
    line = len(_LINE_BREAK.findall(text, 0, found.start())) + 1
    code = f"U+{ord(found.group()):04X}"
    return YAMLSyntaxError(
        line,
        f"the character {code} is not allowed in YAML; delete it",
        code="character_not_allowed",
        char=code,
    )


def _too_deep(text: str, loader: type[Any]) -> int | None:
    """The line where lists and mappings first nest deeper than MAX_DEPTH, if they do before
    the first syntax error. Reading events only: PyYAML's event parser does not recurse."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    return mark.line + 1 if mark is not None else 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass
    return None
