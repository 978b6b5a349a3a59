"""Reply templates: Jinja2 in a sandbox, so a rules author cannot reach Python internals."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, DictLoader, FileSystemLoader, Template, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["Template", "TemplateError", "make_environment", "render"]


def make_environment(templates: Path | Mapping[str, str]) -> ImmutableSandboxedEnvironment:
    """A sandboxed environment reading templates from a folder, or from a stored rules
    version's texts by name (plain text, no HTML escaping: replies are SMS)."""
    loader: BaseLoader = (
        FileSystemLoader(str(templates))
        if isinstance(templates, Path)
        else DictLoader(dict(templates))
    )
    return ImmutableSandboxedEnvironment(
        loader=loader,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: Template, context: dict[str, Any]) -> str:
    """Renders and trims a reply; raises TemplateError for any failure, sandbox violations too,
    named by the kind of failure (Jinja's and Python's own words follow only as the detail)."""
    try:
        return template.render(context).strip()
    except SecurityError as err:
        raise TemplateError(f"refused by the sandbox: {err}") from err
    except Exception as err:  # a rules author's `{{ 1 / 0 }}` must not crash the service
        raise TemplateError(f"{type(err).__name__}: {err}") from err
