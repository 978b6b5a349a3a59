"""Drafts of the rules checked, published as versions, restored, compared, and written back to
the files (DESIGN §10). The versions live in the store; RulesHolder puts the newest in force."""

from __future__ import annotations

import difflib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from responder.rules.model import Problem
from responder.store.models import RuleVersion

log = logging.getLogger("responder.rules")

# A draft bigger than this is refused before it is compiled (a rules file is a few KiB).
MAX_RULES_BYTES = 1024 * 1024
MAX_TEMPLATES = 200


@dataclass(frozen=True)
class RulesCheck:
    """What checking a draft found: errors refuse it, warnings are shown and allowed."""

    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @classmethod
    def of(cls, found: tuple[Problem, ...]) -> RulesCheck:
        return cls(
            tuple(p for p in found if p.severity == "error"),
            tuple(p for p in found if p.severity != "error"),
        )


class RulesRefused(Exception):
    """A draft with errors: nothing was published."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        first = problems[0] if problems else None
        super().__init__(f"line {first.line}: {first.message}" if first else "refused")
        self.problems = problems


def draft_problem(message: str, code: str, **params: Any) -> Problem:
    """A draft refused before it is read at all (too big, templates not texts)."""
    return Problem(1, message, kind="schema", code=code, params=params)


def limits(rules: str, templates: dict[str, str]) -> Problem | None:
    if len(rules.encode("utf-8")) > MAX_RULES_BYTES:
        kib = MAX_RULES_BYTES // 1024
        return draft_problem(f"the rules are larger than {kib} KiB", "too_large", kib=kib)
    if len(templates) > MAX_TEMPLATES:
        return draft_problem(
            f"more than {MAX_TEMPLATES} templates", "too_many_templates", most=MAX_TEMPLATES
        )
    for name in templates:
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            return draft_problem(
                f"template name {name!r} is not a plain file name", "bad_template_name", name=name
            )
    return None


@dataclass(frozen=True)
class FileDiff:
    name: str  # rules.yaml or a template's name
    lines: tuple[str, ...]  # unified diff lines, without line ends


def diff(old: RuleVersion, new: RuleVersion, rules_name: str = "rules.yaml") -> list[FileDiff]:
    """What changed from `old` to `new`, file by file (the rules first), as unified diffs."""
    found = []
    pairs = [(rules_name, old.rules, new.rules)]
    for name in sorted(set(old.templates) | set(new.templates)):
        pairs.append(
            (f"templates/{name}", old.templates.get(name, ""), new.templates.get(name, ""))
        )
    for name, before, after in pairs:
        if before == after:
            continue
        lines = difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            f"{name} (versión {old.id})",
            f"{name} (versión {new.id})",
            lineterm="",
        )
        found.append(FileDiff(name, tuple(lines)))
    return found


def files_writable(rules: Path, templates: Path) -> bool:
    """Whether a published version can be written back to the files."""
    folder = rules.parent
    if not os.access(folder, os.W_OK) or (rules.exists() and not os.access(rules, os.W_OK)):
        return False
    return not templates.exists() or os.access(templates, os.W_OK)


def write_files(
    rules: Path, templates: Path, text: str, texts: dict[str, str], present: dict[str, str]
) -> None:
    """Writes a version back: `rules.yaml` and each template that differs from `present`
    (what the folder holds now), each replaced atomically; templates the version no longer has
    are removed, so the folder and the version in force agree."""
    _replace(rules, text)
    for name, body in texts.items():
        if present.get(name) != body:
            target = templates / name
            target.parent.mkdir(parents=True, exist_ok=True)
            _replace(target, body)
    for name in set(present) - set(texts):
        (templates / name).unlink(missing_ok=True)


def _replace(path: Path, text: str) -> None:
    """Writes `text` to a temporary file beside `path`, flushed, then renames it over `path`:
    a reader sees the old file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
