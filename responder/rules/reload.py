"""Holds the rules in force. The versions live in the store (DESIGN §10): files that change on
disk are imported as a new version, and every instance swaps in the newest version within a
second or two of its publication, whoever published it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from pathlib import Path

from responder.clock import Clock
from responder.config import StartupError
from responder.outage import Outage
from responder.rules.schema import RuleSet, compile_rules, load_rules
from responder.store import Store

log = logging.getLogger("responder.rules")

Signature = tuple[tuple[str, int, int], ...]
MAX_TEMPLATE_BYTES = 256 * 1024
OUTAGE_CAP = 10.0  # seconds between looks at most while the database is away


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
        self.store: Store | None = None
        self.version_id: int | None = None  # the stored version in force
        self._wake = asyncio.Event()

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

    # -- versions in the store ------------------------------------------------------------

    async def attach(self, store: Store) -> None:
        """From now on the store holds the versions: the files are imported when the store
        does not know them yet, then the newest version is put in force."""
        self.store = store
        store.on_rules_changed = self._wake.set
        await self.import_files(only_if_unknown=True)
        await self.load_newest()

    async def import_files(self, only_if_unknown: bool = False) -> int | None:
        """Imports `rules.yaml` and the templates as a new version when they differ from the
        version in force (at start: when no version has this content). A broken edit is not
        imported: it is logged and the version in force keeps answering."""
        assert self.store is not None
        try:
            rules, templates = await asyncio.to_thread(read_files, self.path, self.templates)
        except OSError as err:
            log.error("rules not imported: cannot read %s: %s", self.path, err.strerror)
            return None
        sha = version_sha(rules, templates)
        newest_id = await self.store.latest_rule_version_id()
        newest = await self.store.rule_version(newest_id) if newest_id is not None else None
        if newest is not None and newest.sha256 == sha:
            return None  # in force already (or about to be: another instance imported it)
        if only_if_unknown and await self.store.rule_version_with_sha(sha) is not None:
            return None
        ruleset = await asyncio.to_thread(
            compile_rules, rules.encode("utf-8"), templates, self.clock(), str(self.path)
        )
        self.last_problems = tuple(p.format(self.path.name) for p in ruleset.problems)
        if ruleset.errors:
            for problem in ruleset.errors:
                log.error(
                    "rules not imported, the version in force stays: %s",
                    problem.format(self.path.name),
                )
            return None
        version = await self.store.add_rule_version(
            rules, templates, sha256=sha, source="file", note=f"imported from {self.path.name}"
        )
        log.info("rules imported from %s as version %d", self.path.name, version.id)
        return version.id

    async def load_newest(self) -> bool:
        """Puts the newest stored version in force; True when it changed."""
        assert self.store is not None
        newest = await self.store.latest_rule_version_id()
        if newest is None or newest == self.version_id:
            return False
        version = await self.store.rule_version(newest)
        if version is None:
            return False
        ruleset = await asyncio.to_thread(
            compile_rules,
            version.rules.encode("utf-8"),
            version.templates,
            self.clock(),
            str(self.path),
            version.id,
        )
        self.version_id = newest  # a version this code cannot load is not tried again and again
        if ruleset.errors:
            for problem in ruleset.errors:
                log.error("version %d not loaded: %s", version.id, problem.format(self.path.name))
            return False
        self.current = ruleset  # one reference swap: a message sees old or new rules, never a mix
        log.info("rules version %d in force: %d rules", version.id, len(ruleset.rules))
        return True

    async def watch(self) -> None:
        """Each second (or at once when the store says so): files that changed are imported,
        and a newer stored version is put in force. Polling works on every filesystem and
        costs a few stat calls and one indexed read."""
        outage = Outage(log, "looking for new rules", self.interval, OUTAGE_CAP)
        wait = self.interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            try:
                signature = await asyncio.to_thread(_signature, self.path, self.templates)
                changed = signature != self._signature
                if self.store is None:
                    self._signature = signature
                    if changed:
                        await asyncio.to_thread(self.reload)
                    continue
                if changed:
                    await self.import_files()
                self._signature = signature  # imported: a failed import is tried again
                await self.load_newest()
            except Exception as err:  # a bad moment (the database away) must not stop watching
                wait = outage.failed(err)
            else:
                outage.succeeded()
                wait = self.interval


def read_files(rules: Path, templates: Path) -> tuple[str, dict[str, str]]:
    """The rules text and every template (by its name under the folder) as stored versions
    keep them."""
    text = rules.read_bytes().decode("utf-8-sig", errors="replace")
    found: dict[str, str] = {}
    if templates.is_dir():
        for path in sorted(templates.rglob("*")):
            name = path.relative_to(templates).as_posix()
            if not path.is_file() or any(part.startswith(".") for part in name.split("/")):
                continue
            if path.stat().st_size > MAX_TEMPLATE_BYTES:
                log.warning(
                    "template %s is larger than %d bytes: not kept", name, MAX_TEMPLATE_BYTES
                )
                continue
            try:
                found[name] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                log.warning("template %s is not UTF-8 text: not kept", name)
    return text, found


def version_sha(rules: str, templates: dict[str, str]) -> str:
    """What identifies a version's content: the rules text and each template, by name."""
    digest = hashlib.sha256(rules.encode("utf-8"))
    for name in sorted(templates):
        digest.update(b"\0" + name.encode("utf-8") + b"\0" + templates[name].encode("utf-8"))
    return digest.hexdigest()
