"""PostgreSQL state shared by every instance besides messages: singleton leases, send budgets,
staff sessions, sign-in failures, provider balances and the rules versions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from responder.budget import Overrun, OverrunRecord
from responder.store import pg_schema
from responder.store.models import RuleSource, RuleVersion, SessionRecord, StaleRuleVersion
from responder.store.overruns import OVERRUNS_KEY, merged, records
from responder.store.pg_base import PING_TIMEOUT, RULES_CHANNEL, PgBase
from responder.store.pg_rows import clean_text, maybe_clean, to_json

_RULE_VERSION_COLUMNS = "id, created_at, author, source, note, sha256, rules, templates::text"
_RULE_VERSION = f"SELECT {_RULE_VERSION_COLUMNS} FROM rule_versions"


def _rule_version(row: Any) -> RuleVersion:
    templates: dict[str, str] = json.loads(row[7])
    return RuleVersion(row[0], row[1], row[2], row[3], row[4], row[5], row[6], templates)


class PgShared(PgBase):
    """Leases, budgets, sessions, sign-in failures, balances, rules versions."""

    async def try_lease(self, name: str, seconds: float) -> bool:
        """Takes (or keeps) the lease on singleton work `name` for `seconds`: True when this
        instance holds it now. A holder that stops renewing loses it when it expires."""
        now = self.clock()
        row = await self._transaction(
            lambda conn: conn.fetchrow(
                "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "until = excluded.until "
                "WHERE leases.holder = excluded.holder OR leases.until < $4 RETURNING holder",
                name,
                self.instance,
                now + timedelta(seconds=seconds),
                now,
            )
        )
        return row is not None

    async def take_send_budget(self, provider: str, rate: float, count: int) -> float:
        """A token bucket shared by every instance (its row locked while it is read and
        written): at most `rate` messages per second on average, bursts of one second. Takes
        `count` and answers 0, or answers the seconds to wait before asking again."""
        now = self.clock()

        async def work(conn: Any) -> float:
            await conn.execute(
                "INSERT INTO send_budgets (provider, tokens, stamp) VALUES ($1, $2, $3) "
                "ON CONFLICT (provider) DO NOTHING",
                provider,
                rate,
                now,
            )
            row = await conn.fetchrow(
                "SELECT tokens, stamp FROM send_budgets WHERE provider = $1 FOR UPDATE", provider
            )
            elapsed = max(0.0, (now - row["stamp"]).total_seconds())
            tokens = min(rate, row["tokens"] + elapsed * rate)
            needed = min(count, rate)
            wait = 0.0 if tokens >= needed else (needed - tokens) / rate
            await conn.execute(
                "UPDATE send_budgets SET tokens = $2, stamp = $3 WHERE provider = $1",
                provider,
                tokens - count if wait == 0.0 else tokens,
                now,
            )
            return wait

        wait: float = await self._transaction(work)
        return wait

    async def session(self, key: str) -> SessionRecord | None:
        """The session stored under `key` (the SHA-256 of a cookie's id), expired or not."""
        row = await self._fetchrow(
            'SELECT key, "user", csrf, credential, created_at, last_seen_at, expires_at '
            "FROM sessions WHERE key = $1",
            key,
        )
        return None if row is None else SessionRecord(*row)

    async def create_session(self, record: SessionRecord, keep: int) -> None:
        """Stores a new session; the user's sessions beyond the `keep` most recent end."""

        async def work(conn: Any) -> None:
            await conn.execute(
                'INSERT INTO sessions (key, "user", csrf, credential, created_at, last_seen_at, '
                "expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                record.key,
                record.user,
                record.csrf,
                record.credential,
                record.created_at,
                record.last_seen_at,
                record.expires_at,
            )
            await conn.execute(
                'DELETE FROM sessions WHERE key IN (SELECT key FROM sessions WHERE "user" = $1 '
                "ORDER BY last_seen_at DESC, created_at DESC OFFSET $2)",
                record.user,
                keep,
            )

        await self._transaction(work)

    async def touch_session(self, key: str, at: datetime) -> None:
        await self._transaction(
            lambda conn: conn.execute(
                "UPDATE sessions SET last_seen_at = $1 WHERE key = $2", at, key
            )
        )

    async def delete_session(self, key: str) -> None:
        await self._transaction(
            lambda conn: conn.execute("DELETE FROM sessions WHERE key = $1", key)
        )

    async def end_sessions(self, user: str, *, unless_credential: str | None = None) -> int:
        """Ends every session of `user` (but those opened with `unless_credential`)."""
        status: str = await self._transaction(
            lambda conn: conn.execute(
                'DELETE FROM sessions WHERE "user" = $1 AND credential IS DISTINCT FROM $2',
                user,
                unless_credential,
            )
        )
        return int(status.split()[-1])

    async def purge_sessions(self, now: datetime, idle_since: datetime) -> int:
        """Deletes sessions past their end, or not used since `idle_since`."""
        status: str = await self._transaction(
            lambda conn: conn.execute(
                "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2",
                now,
                idle_since,
            )
        )
        return int(status.split()[-1])

    async def record_sign_in_failure(self, keys: Sequence[str]) -> None:
        """One failed sign-in, counted under each key (the account, the client address)."""
        now = self.clock()

        async def work(conn: Any) -> None:
            await conn.executemany(
                "INSERT INTO sign_in_failures (key, at) VALUES ($1, $2)",
                [(clean_text(key), now) for key in keys],
            )
            # Nothing older than a day decides anything: keep the table small.
            await conn.execute(
                "DELETE FROM sign_in_failures WHERE at < $1", now - timedelta(days=1)
            )

        await self._transaction(work)

    async def sign_in_failures(self, key: str, since: datetime) -> list[datetime]:
        rows = await self._fetch(
            "SELECT at FROM sign_in_failures WHERE key = $1 AND at > $2 ORDER BY at",
            clean_text(key),
            since,
        )
        return [row[0] for row in rows]

    async def clear_sign_in_failures(self, key: str) -> None:
        await self._transaction(
            lambda conn: conn.execute(
                "DELETE FROM sign_in_failures WHERE key = $1", clean_text(key)
            )
        )

    async def save_balance(self, provider: str, credits: float | None, error: str | None) -> None:
        at = self.clock()
        await self._transaction(
            lambda conn: conn.execute(
                "INSERT INTO balances (provider, credits, error, checked_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (provider) DO UPDATE SET "
                "credits = excluded.credits, error = excluded.error, "
                "checked_at = excluded.checked_at",
                provider,
                credits,
                maybe_clean(error),
                at,
            )
        )

    async def record_overruns(self, overruns: Sequence[Overrun]) -> None:
        """Counts patterns and templates that went over their budget (store/overruns.py); the
        row is locked, so instances counting at once add up."""
        now = self.clock()

        async def work(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ($1, '{}') ON CONFLICT (key) DO NOTHING",
                OVERRUNS_KEY,
            )
            value = await conn.fetchval(
                "SELECT value FROM meta WHERE key = $1 FOR UPDATE", OVERRUNS_KEY
            )
            await conn.execute(
                "UPDATE meta SET value = $2 WHERE key = $1",
                OVERRUNS_KEY,
                merged(value, overruns, now),
            )

        await self._transaction(work)

    async def overruns(self) -> list[OverrunRecord]:
        row = await self._fetchrow("SELECT value FROM meta WHERE key = $1", OVERRUNS_KEY)
        return records(None if row is None else row[0])

    async def balances(self) -> dict[str, tuple[float | None, str | None, datetime]]:
        # /healthz reads them: on its own connection, like ping.
        try:
            rows = await asyncio.wait_for(
                self._health_fetch(
                    "SELECT provider, credits, error, checked_at FROM balances ORDER BY provider"
                ),
                PING_TIMEOUT,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            raise self._unavailable(err) from err
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    async def latest_rule_version_id(self) -> int | None:
        row = await self._fetchrow("SELECT MAX(id) FROM rule_versions")
        return None if row is None or row[0] is None else int(row[0])

    async def rule_version(self, version_id: int) -> RuleVersion | None:
        row = await self._fetchrow(f"{_RULE_VERSION} WHERE id = $1", version_id)
        return None if row is None else _rule_version(row)

    async def rule_versions(self, limit: int = 100) -> list[RuleVersion]:
        rows = await self._fetch(f"{_RULE_VERSION} ORDER BY id DESC LIMIT $1", limit)
        return [_rule_version(row) for row in rows]

    async def rule_version_with_sha(self, sha256: str) -> RuleVersion | None:
        row = await self._fetchrow(
            f"{_RULE_VERSION} WHERE sha256 = $1 ORDER BY id DESC LIMIT 1", sha256
        )
        return None if row is None else _rule_version(row)

    async def add_rule_version(
        self,
        rules: str,
        templates: dict[str, str],
        *,
        sha256: str,
        source: RuleSource,
        author: str | None = None,
        note: str = "",
        base: int | None = None,
        check_base: bool = False,
    ) -> RuleVersion:
        """Publishes a version; with `check_base`, refuses (StaleRuleVersion) unless `base` is
        still the newest version. Publishing is serialised by a lock, so two instances
        publishing from the same base cannot both succeed. The other instances hear of it."""
        at = self.clock()

        async def work(conn: Any) -> RuleVersion:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", pg_schema.RULES_LOCK)
            latest = await conn.fetchval("SELECT MAX(id) FROM rule_versions")
            if check_base and latest != base:
                raise StaleRuleVersion(latest)
            row = await conn.fetchrow(
                "INSERT INTO rule_versions (created_at, author, source, note, sha256, rules, "
                "templates) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) "
                f"RETURNING {_RULE_VERSION_COLUMNS}",
                at,
                maybe_clean(author),
                source,
                clean_text(note),
                sha256,
                clean_text(rules),
                to_json(templates),
            )
            await self._notify(conn, RULES_CHANNEL)
            return _rule_version(row)

        version: RuleVersion = await self._transaction(work)
        return version
