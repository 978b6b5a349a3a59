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
from responder.rules import publish
from responder.rules.model import Problem
from responder.rules.publish import RulesCheck, RulesRefused
from responder.rules.schema import RuleSet, compile_rules, load_rules
from responder.store import Store
from responder.store.models import RuleSource, RuleVersion

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
        # The errors that kept the last edit of the files out (the version in force stays).
        self.file_errors: tuple[Problem, ...] = ()
        self.interval = 1.0  # seconds between looks at the files
        self._signature = _signature(rules, templates)
        self.current = self._load_or_raise()
        self.store: Store | None = None
        self.version_id: int | None = None  # the stored version in force
        self.in_force: RuleVersion | None = None  # its text and templates
        self._wake = asyncio.Event()
        # Writing a version back and looking for edits to import never overlap: an import
        # never sees the files half written.
        self._files = asyncio.Lock()
        self._loading = asyncio.Lock()
        self._read_only_said = False

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
        self.file_errors = ruleset.errors
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
        self.file_errors = ruleset.errors
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
        """Puts the newest stored version in force; True when it changed. One at a time (the
        watcher and a publish may both ask): an older version never replaces a newer one."""
        async with self._loading:
            return await self._load_newest()

    async def _load_newest(self) -> bool:
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
        self.in_force = version
        self.current = ruleset  # one reference swap: a message sees old or new rules, never a mix
        log.info("rules version %d in force: %d rules", version.id, len(ruleset.rules))
        # This machine's files follow: an edit made to them later starts from what is in force,
        # never from an older text that would undo what was published meanwhile.
        await self._write_back(version)
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
                async with self._files:
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

    # -- drafts and publishing (DESIGN §10) -------------------------------------------------

    def source(self) -> tuple[str, dict[str, str], int | None]:
        """The text and templates of the version in force, and its id: what a draft starts
        from."""
        if self.in_force is None:
            text, templates = read_files(self.path, self.templates)
            return text, templates, None
        return self.in_force.rules, dict(self.in_force.templates), self.in_force.id

    def compile_draft(self, rules: str, templates: dict[str, str] | None) -> RuleSet | RulesCheck:
        """The draft compiled as it would be published (templates None: those in force), or
        why it cannot even be read."""
        texts = self.source()[1] if templates is None else templates
        refused = publish.limits(rules, texts)
        if refused is not None:
            return RulesCheck((refused,), ())
        return compile_rules(rules.encode("utf-8"), texts, self.clock(), "draft")

    async def check(self, rules: str, templates: dict[str, str] | None) -> RulesCheck:
        """What publishing the draft would find; changes nothing."""
        compiled = await asyncio.to_thread(self.compile_draft, rules, templates)
        return compiled if isinstance(compiled, RulesCheck) else RulesCheck.of(compiled.problems)

    async def publish(
        self,
        rules: str,
        templates: dict[str, str] | None,
        *,
        base: int | None,
        note: str,
        author: str | None,
        source: RuleSource,
        check_base: bool = True,
    ) -> tuple[RuleVersion, RulesCheck]:
        """Checks the draft and publishes it as the newest version, in force here at once and
        on every instance within 2 s; written back to the files when they are writable.
        RulesRefused when it has errors, StaleRuleVersion when `base` is no longer the newest
        version (nothing changes in either case)."""
        assert self.store is not None
        texts = self.source()[1] if templates is None else templates
        check = await self.check(rules, texts)
        if not check.ok:
            raise RulesRefused(check.problems)
        version = await self.store.add_rule_version(
            rules,
            texts,
            sha256=version_sha(rules, texts),
            source=source,
            author=author,
            note=note,
            base=base,
            check_base=check_base,
        )
        log.info("rules version %d published (%s, %s)", version.id, source, author or "-")
        await self.load_newest()  # in force here at once, and written back to the files
        return version, check

    async def restore(self, version_id: int, *, note: str, author: str | None) -> RuleVersion:
        """Publishes an older version's content as a new version. KeyError when unknown."""
        assert self.store is not None
        old = await self.store.rule_version(version_id)
        if old is None:
            raise KeyError(version_id)
        version, _ = await self.publish(
            old.rules,
            old.templates,
            base=None,
            note=note or f"restaurada la versión {version_id}",
            author=author,
            source="restore",
            check_base=False,
        )
        return version

    def writable(self) -> bool:
        return publish.files_writable(self.path, self.templates)

    async def _write_back(self, version: RuleVersion) -> None:
        """The files follow the version published, when they can (a read-only deploy keeps
        its files; the store is what every instance answers from)."""
        if not self.writable():
            if not self._read_only_said:
                log.info("%s is read-only: the rules are edited in the browser", self.path)
                self._read_only_said = True
            return
        async with self._files:
            await self._write_files(version)

    async def _write_files(self, version: RuleVersion) -> None:
        try:
            _, present = await asyncio.to_thread(read_files, self.path, self.templates)
            if (self.path.exists() and self.path.read_text(encoding="utf-8-sig") == version.rules
                    and present == version.templates):  # fmt: skip
                return
            await asyncio.to_thread(
                publish.write_files,
                self.path,
                self.templates,
                version.rules,
                version.templates,
                present,
            )
        except OSError as err:
            log.warning("rules version %d not written to %s: %s", version.id, self.path, err)
            return
        # The files now hold the version in force: not a change to import again.
        self._signature = await asyncio.to_thread(_signature, self.path, self.templates)


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
