"""Holds the rules in force and swaps in a new version when the files change on disk."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from responder.clock import Clock
from responder.config import StartupError
from responder.rules.schema import RuleSet, load_rules

log = logging.getLogger("responder.rules")

Signature = tuple[tuple[str, int, int], ...]


def _signature(rules: Path, templates: Path) -> Signature:
    """Name, mtime and size of the rules file and every template: cheap to take each second."""
    paths = [rules, *(sorted(templates.rglob("*")) if templates.is_dir() else [])]
    found = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


class RulesHolder:
    """The last good RuleSet; a broken edit is logged and the previous rules keep answering."""

    def __init__(
        self,
        rules: Path,
        templates: Path,
        clock: Clock,
    ) -> None:
        self.path = rules
        self.templates = templates
        self.clock = clock
        self.last_problems: tuple[str, ...] = ()
        self.interval = 1.0  # seconds between looks at the files
        self._signature = _signature(rules, templates)
        self.current = self._load_or_raise()

    def _load(self) -> RuleSet:
        return load_rules(self.path, self.templates, self.clock())

    def _load_or_raise(self) -> RuleSet:
        try:
            ruleset = self._load()
        except OSError as err:
            raise StartupError(
                f"RESPONDER_RULES: cannot read {self.path}: {err.strerror}"
            ) from None
        if ruleset.errors:
            first = ruleset.errors[0].format(self.path.name)
            more = len(ruleset.errors) - 1
            extra = f" (and {more} more: run `responder check`)" if more else ""
            raise StartupError(first + extra)
        for problem in ruleset.problems:
            log.warning("%s", problem.format(self.path.name))
        return ruleset

    def reload(self) -> bool:
        """Loads the files again; True when the new rules are now in force."""
        try:
            ruleset = self._load()
        except OSError as err:
            log.error("rules not reloaded: cannot read %s: %s", self.path, err.strerror)
            return False
        except Exception:  # whatever a strange file does, the last good rules keep answering
            log.exception("rules not reloaded: %s could not be read", self.path)
            return False
        self.last_problems = tuple(p.format(self.path.name) for p in ruleset.problems)
        if ruleset.errors:
            for problem in ruleset.errors:
                log.error(
                    "rules not reloaded, the previous ones stay: %s", problem.format(self.path.name)
                )
            return False
        self.current = ruleset  # one reference swap: a message sees old or new rules, never a mix
        log.info(
            "rules reloaded: %d rules, sha256 %s", len(ruleset.rules), ruleset.version.sha256[:12]
        )
        return True

    async def watch(self) -> None:
        """Polls the files' signatures: works on every filesystem, costs a few stat calls."""
        while True:
            await asyncio.sleep(self.interval)
            signature = await asyncio.to_thread(_signature, self.path, self.templates)
            if signature != self._signature:
                self._signature = signature
                await asyncio.to_thread(self.reload)
