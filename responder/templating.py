"""Reply templates: Jinja2 in a sandbox, so a rules author cannot reach Python internals, and
on a budget, so no template can stall the service (see responder.budget).

Every loop pass and every call is a step, checked against a step limit and the message's
time allowance; strings and lists a template builds, and what it writes, have a size limit;
the operators and methods that multiply sizes (`*`, `**`, `~`, `'%99999s' % x`, `ljust`,
`|center`, `|batch`...) are checked before they run. A template over budget raises
`TemplateOverrun`, a TemplateError: the reply is handled as any render error.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    DictLoader,
    FileSystemLoader,
    Template,
    TemplateError,
    nodes,
    pass_context,
)
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from responder import budget
from responder.budget import Overrun, Owner

__all__ = [
    "BudgetTemplate",
    "Template",
    "TemplateError",
    "TemplateOverrun",
    "make_environment",
    "render",
]

MAX_STEPS = 10_000  # loop passes and calls in one render
MAX_SIZE = 100_000  # characters (or items) of any string or list a template builds or writes
MAX_RANGE = 10_000  # items of range()
MAX_INT_BITS = 10_000  # a number `*` or `**` may make (3,000 digits)
MAX_DEPTH = 50  # calls within calls: a macro calling itself ends here, not at RecursionError
_LOOP_FILTER = "responder_counted"
_CONCAT_FILTER = "responder_concat"


class TemplateOverrun(TemplateRuntimeError):
    """A template went over its budget: too many steps, too big a text, out of time."""

    def __init__(self, why: str) -> None:
        super().__init__(f"template over budget: {why}")
        self.why = why


class BudgetTemplate(Template):
    """A template that knows whose it is, so an overrun names the rule."""

    owner: Owner | None = None


def _new_context(template: Template, variables: dict[str, Any]) -> Context:
    """What `template.new_context(variables)` makes, from the globals read once per template:
    Jinja reads them through a ChainMap, twice per render (a fifth of rendering a short
    reply)."""
    flat: dict[str, Any] | None = getattr(template, "_flat_globals", None)
    if flat is None:
        flat = dict(template.globals)
        template._flat_globals = flat  # type: ignore[attr-defined]
    return template.environment.context_class(
        template.environment, {**flat, **variables}, template.name, template.blocks, globals=flat
    )


@dataclass
class _Render:
    allowance: budget.Allowance | None
    deadline: float
    steps: int = 0
    depth: int = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateOverrun(f"more than {MAX_STEPS} loop passes and calls")
        # Reading the CPU clock costs a system call: every few steps is often enough.
        allowance = self.allowance
        if allowance is not None and self.steps % 16 == 0 and allowance.past(self.deadline):
            raise TemplateOverrun("out of time")


_render_state: ContextVar[_Render | None] = ContextVar("responder_render", default=None)


def _step() -> None:
    state = _render_state.get()
    if state is not None:
        state.step()


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0


def _check_size(value: Any) -> Any:
    if _size(value) > MAX_SIZE:
        raise TemplateOverrun(f"a text or list longer than {MAX_SIZE}")
    return value


def _refuse_over(size: int) -> None:
    if size > MAX_SIZE:
        raise TemplateOverrun(f"a text or list longer than {MAX_SIZE}")


_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")


def _printf_width(fmt: str) -> int:
    """The characters `fmt % args` may add: the widths and precisions it asks for."""
    total = 0
    for width, precision in _PRINTF_FIELD.findall(fmt):
        if "*" in (width, precision):
            raise TemplateOverrun("a width given by an argument")
        total += int(width or 0) + int(precision or 0)
    return total


def _format_width(fmt: str) -> int:
    """The characters `fmt.format(...)` may add through its fields' widths."""
    total = 0
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return 0  # format() itself will refuse it
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise TemplateOverrun("a width given by an argument")
        total += sum(int(n) for n in re.findall(r"\d+", spec or ""))
    return total


def _replaced_size(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(text, str) or not isinstance(old, str) or not isinstance(new, str):
        return 0
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(text) + times * max(0, len(new) - len(old))


def _joined_size(items: list[Any], separator: Any) -> int:
    sep = len(separator) if isinstance(separator, str) else 0
    return sum(len(str(i)) if isinstance(i, str) else 20 for i in items) + sep * len(items)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _bits(value: int) -> int:
    return abs(value).bit_length()


# Before a str method runs: the size it may build, from its object and arguments.
_STR_METHODS: dict[str, Callable[..., int]] = {
    "ljust": lambda s, width=0, *_: max(len(s), _int(width)),
    "rjust": lambda s, width=0, *_: max(len(s), _int(width)),
    "center": lambda s, width=0, *_: max(len(s), _int(width)),
    "zfill": lambda s, width=0, *_: max(len(s), _int(width)),
    "expandtabs": lambda s, tabsize=8, *_: len(s) + s.count("\t") * _int(tabsize),
    "replace": _replaced_size,
}

# Before a filter runs: the size it may build, from its arguments.
_FILTERS: dict[str, Callable[..., int]] = {
    "center": lambda value, width=80, *_, **__: _int(width),
    "indent": lambda value, width=4, *_, **__: (
        len(str(value)) * (1 + _int(width)) if isinstance(width, int) else len(str(width))
    ),
    "batch": lambda value, linecount, fill_with=None, *_: _int(linecount),
    "slice": lambda value, slices, fill_with=None, *_: _int(slices),
    "tojson": lambda value, indent=None, *_: _int(indent) * 1000,
    "replace": lambda value, old, new, count=None, *_: _replaced_size(
        str(value), old, new, -1 if count is None else count
    ),
    "format": lambda value, *_, **__: _printf_width(str(value)),
}


def _budgeted_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    estimate = _FILTERS.get(name)
    pass_arg = getattr(func, "jinja_pass_arg", None)

    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        _step()
        if estimate is not None:
            value_and_args = args[1:] if pass_arg is not None else args
            _refuse_over(estimate(*value_and_args, **kwargs))
        if name == "join":
            # join consumes its iterable: measure it first, then hand over the list.
            at = 1 if pass_arg is not None else 0
            items = list(args[at])
            separator = args[at + 1] if len(args) > at + 1 else kwargs.get("d", "")
            _refuse_over(_joined_size(items, separator))
            args = (*args[:at], items, *args[at + 1 :])
        return _check_size(func(*args, **kwargs))

    return run


@pass_context
def _counted(context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    """Every `{% for %}` iterates through this: each pass is a step."""
    for item in iterable:
        _step()
        yield item


@pass_context
def _concat(context: Context, parts: list[Any]) -> str:
    """`a ~ b`, with its size checked first."""
    texts = [str(p) for p in parts]
    _refuse_over(sum(len(t) for t in texts))
    return "".join(texts)


def _range(*args: int) -> range:
    found = range(*args)
    if len(found) > MAX_RANGE:
        raise TemplateOverrun(f"range() of more than {MAX_RANGE} numbers")
    return found


class BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every loop, call and size-multiplying operation checked.
    Intercepted operators are also never folded when a template is compiled, so a
    `{{ 'x' * 10**9 }}` cannot stall loading the rules either."""

    template_class = BudgetTemplate
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _range
        self.globals.pop("lipsum", None)  # lipsum(n=10**6) writes a million paragraphs
        self.filters = {name: _budgeted_filter(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP_FILTER] = _counted
        self.filters[_CONCAT_FILTER] = _concat

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(
                loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno
            )
        for concat in list(tree.find_all(nodes.Concat)):
            parts = nodes.List(concat.nodes, lineno=concat.lineno)
            concat.nodes = [
                nodes.Filter(parts, _CONCAT_FILTER, [], [], None, None, lineno=concat.lineno)
            ]
        tree.set_environment(self)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple):
                    _refuse_over(len(seq) * max(_int(times), 0))
            if _int(left) and _int(right) and _bits(left) + _bits(right) > MAX_INT_BITS:
                raise TemplateOverrun(f"a number of more than {MAX_INT_BITS} bits")
        elif operator == "**" and _int(left) and _bits(left) * abs(_int(right)) > MAX_INT_BITS:
            raise TemplateOverrun(f"a number of more than {MAX_INT_BITS} bits")
        elif operator == "+":
            _refuse_over(_size(left) + _size(right))
        elif operator == "%" and isinstance(left, str):
            given = right if isinstance(right, tuple) else (right,)
            if isinstance(right, dict):
                given = tuple(right.values())
            _refuse_over(len(left) + _printf_width(left) + sum(len(str(v)) for v in given))
        return _check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        owner = getattr(__obj, "__self__", None)
        estimate = _STR_METHODS.get(getattr(__obj, "__name__", ""))
        if isinstance(owner, str) and estimate is not None:
            _refuse_over(estimate(owner, *args, **kwargs))
        if isinstance(owner, str) and getattr(__obj, "__name__", "") == "join" and args:
            items = list(args[0])
            _refuse_over(_joined_size(items, owner))
            args = (items, *args[1:])
        state = _render_state.get()
        if state is None:
            return _check_size(super().call(__context, __obj, *args, **kwargs))
        if state.depth >= MAX_DEPTH:
            raise TemplateOverrun(f"calls nested more than {MAX_DEPTH} deep")
        state.depth += 1
        try:
            return _check_size(super().call(__context, __obj, *args, **kwargs))
        finally:
            state.depth -= 1

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt: str = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _refuse_over(len(fmt) + _format_width(fmt))
            result: str = _check_size(wrapper(*args, **kwargs))
            return result

        return checked


def make_environment(templates: Path | Mapping[str, str]) -> BudgetedEnvironment:
    """A sandboxed environment reading templates from a folder, or from a stored rules
    version's texts by name (plain text, no HTML escaping: replies are SMS)."""
    loader: BaseLoader = (
        FileSystemLoader(str(templates))
        if isinstance(templates, Path)
        else DictLoader(dict(templates))
    )
    return BudgetedEnvironment(
        loader=loader,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: Template, context: dict[str, Any]) -> str:
    """Renders and trims a reply; raises TemplateError for any failure, sandbox violations and
    overruns too, named by the kind of failure (Jinja's and Python's own words follow only as
    the detail). Within a message's allowance (responder.budget), time counts as well."""
    allowance = budget.current()
    deadline = 0.0
    if allowance is not None:
        deadline = allowance.deadline
        if allowance.limit() < budget.FLOOR_SECONDS * 2:  # about spent: at least the floor
            deadline = max(deadline, allowance.cpu() + budget.FLOOR_SECONDS)
    token = _render_state.set(_Render(allowance, deadline))
    try:
        written = 0
        parts = []
        try:
            # What Template.render does, with the output counted as it is written.
            for part in template.root_render_func(_new_context(template, context)):
                written += len(part)
                if written > MAX_SIZE:
                    raise TemplateOverrun(f"a reply longer than {MAX_SIZE} characters")
                parts.append(part)
        except Exception:
            template.environment.handle_exception()  # raises it again, with template lines
        return "".join(parts).strip()
    except TemplateOverrun as err:
        owner = getattr(template, "owner", None)
        if allowance is not None and owner is not None:
            allowance.overran(Overrun("template", owner, err.why))
        raise
    except SecurityError as err:
        raise TemplateError(f"refused by the sandbox: {err}") from err
    except Exception as err:  # a rules author's `{{ 1 / 0 }}` must not crash the service
        raise TemplateError(f"{type(err).__name__}: {err}") from err
    finally:
        _render_state.reset(token)
