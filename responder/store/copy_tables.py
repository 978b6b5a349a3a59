"""What `responder migrate-to` copies: every table of the schema, the key it is copied by, and
each column's kind, which says how a SQLite value becomes a PostgreSQL one (ISO text to
timestamptz, 0/1 to boolean, JSON text to jsonb, BLOB to bytea)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from responder.store.pg_rows import clean_text, to_json

Kind = Literal["int", "text", "bool", "moment", "float", "json", "bytes"]


class BadValue(ValueError):
    """A source value that cannot become its PostgreSQL column's type."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, Kind], ...]
    # The primary key, one column; None: no key, the table is small and compared whole.
    key: str | None
    batch: int = 5000  # rows per read and per transaction
    # The service never deletes from it: target rows past the source's highest id were
    # written by an instance running on the target.
    append_only: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def key_kind(self) -> Kind:
        return dict(self.columns)[self.key] if self.key else "text"


COUNT_KEY_COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("hour", "text"),
    ("direction", "text"),
    ("provider", "text"),
    ("status", "text"),
    ("rule", "text"),
    ("n", "int"),
)
COUNTED: tuple[tuple[str, Kind], ...] = tuple(
    (name, "int")
    for name in (
        "total",
        "human",
        "needs_attention",
        "opted_out",
        "unread",
        "unassigned",
        "resolved",
    )
)
TABLES: tuple[Table, ...] = (
    # meta first: it carries the source's database id, which marks the target as its copy.
    Table("meta", (("key", "text"), ("value", "text")), key="key"),
    Table(
        "contacts",
        (
            ("phone", "text"),
            ("mode", "text"),
            ("opted_out", "bool"),
            ("opted_out_at", "moment"),
            ("opt_out_message_id", "int"),
            ("fields", "json"),
            ("unread", "int"),
            ("needs_attention", "bool"),
            ("first_seen_at", "moment"),
            ("last_message_at", "moment"),
            ("last_text", "text"),
            ("flagged", "bool"),
            ("flow", "json"),
            ("last_activity_at", "moment"),
            ("assigned_to", "text"),
            ("status", "text"),
            ("folded", "text"),
        ),
        key="phone",
    ),
    Table(
        "notes",
        (
            ("id", "int"),
            ("phone", "text"),
            ("author", "text"),
            ("text", "text"),
            ("created_at", "moment"),
        ),
        key="id",
        append_only=True,
    ),
    Table(
        "typing",
        (("phone", "text"), ("user", "text"), ("until", "moment")),
        key=None,
    ),
    Table(
        "messages",
        (
            ("id", "int"),
            ("phone", "text"),
            ("direction", "text"),
            ("text", "text"),
            ("status", "text"),
            ("origin", "text"),
            ("rule", "text"),
            ("provider", "text"),
            ("provider_id", "text"),
            ("line", "text"),
            ("error", "text"),
            ("attempts", "int"),
            ("next_attempt_at", "moment"),
            ("created_at", "moment"),
            ("updated_at", "moment"),
            ("polls", "int"),
            ("next_poll_at", "moment"),
            ("send_at", "moment"),
            ("failover_from", "text"),
            ("claimed_by", "text"),
            ("lease_until", "moment"),
            ("author", "text"),
            ("folded", "text"),
            ("broadcast_id", "int"),
        ),
        key="id",
        append_only=True,
    ),
    Table(
        "attempts",
        (
            ("id", "int"),
            ("message_id", "int"),
            ("at", "moment"),
            ("provider", "text"),
            ("outcome", "text"),
            ("error", "text"),
        ),
        key="id",
        append_only=True,
    ),
    Table(
        "rejected_webhooks",
        (
            ("id", "int"),
            ("received_at", "moment"),
            ("method", "text"),
            ("path", "text"),
            ("query", "text"),
            ("body", "bytes"),
            ("content_type", "text"),
            ("reason", "text"),
        ),
        key="id",
        batch=200,  # bodies may be large
        append_only=True,
    ),
    Table(
        "sessions",
        (
            ("key", "text"),
            ("user", "text"),
            ("csrf", "text"),
            ("credential", "text"),
            ("created_at", "moment"),
            ("last_seen_at", "moment"),
            ("expires_at", "moment"),
        ),
        key="key",
    ),
    Table(
        "early_reports",
        (
            ("id", "int"),
            ("provider", "text"),
            ("provider_id", "text"),
            ("status", "text"),
            ("detail", "text"),
            ("received_at", "moment"),
        ),
        key="id",
    ),
    Table("leases", (("name", "text"), ("holder", "text"), ("until", "moment")), key="name"),
    Table(
        "send_budgets",
        (("provider", "text"), ("tokens", "float"), ("stamp", "moment")),
        key="provider",
    ),
    Table("sign_in_failures", (("key", "text"), ("at", "moment")), key=None),
    Table(
        "balances",
        (("provider", "text"), ("credits", "float"), ("error", "text"), ("checked_at", "moment")),
        key="provider",
    ),
    Table(
        "rule_versions",
        (
            ("id", "int"),
            ("created_at", "moment"),
            ("author", "text"),
            ("source", "text"),
            ("note", "text"),
            ("sha256", "text"),
            ("rules", "text"),
            ("templates", "json"),
        ),
        key="id",
        batch=500,  # each holds a whole rules file and its templates
        append_only=True,
    ),
    Table(
        "users",
        (
            ("name", "text"),
            ("role", "text"),
            ("password_hash", "text"),
            ("disabled", "bool"),
            ("created_at", "moment"),
        ),
        key="name",
    ),
    Table(
        "api_tokens",
        (
            ("id", "int"),
            ("user", "text"),
            ("hash", "text"),
            ("created_at", "moment"),
            ("last_used_at", "moment"),
            ("revoked", "bool"),
        ),
        key="id",
    ),
    Table(
        "audit_events",
        (
            ("id", "int"),
            ("at", "moment"),
            ("actor", "text"),
            ("action", "text"),
            ("subject", "text"),
            ("detail", "json"),
        ),
        key="id",
        append_only=True,
    ),
    Table(
        "saved_replies",
        (
            ("id", "int"),
            ("name", "text"),
            ("text", "text"),
            ("author", "text"),
            ("created_at", "moment"),
        ),
        key="id",
    ),
    Table("kept_opt_outs", (("phone", "text"), ("opted_out_at", "moment")), key="phone"),
    Table("contact_labels", (("phone", "text"), ("label", "text")), key=None),
    Table(
        "broadcasts",
        (
            ("id", "int"),
            ("name", "text"),
            ("text", "text"),
            ("segment", "json"),
            ("via", "text"),
            ("send_at", "moment"),
            ("status", "text"),
            ("recipients", "int"),
            ("created_by", "text"),
            ("created_at", "moment"),
            ("started_at", "moment"),
            ("finished_at", "moment"),
            ("updated_at", "moment"),
        ),
        key="id",
    ),
    Table(
        "broadcast_recipients",
        (
            ("broadcast_id", "int"),
            ("phone", "text"),
            ("status", "text"),
            ("error", "text"),
            ("updated_at", "moment"),
        ),
        key=None,
        batch=5000,
    ),
    # The counts the writer keeps (SQLite 0022, PostgreSQL 0010), copied as they are (the
    # counts of erased messages included) after the messages and contacts whose copies moved
    # the target's triggers; then the changes those left are emptied (the source has none).
    Table(
        "message_counts",
        COUNT_KEY_COLUMNS,
        key=None,
    ),
    Table("message_days", (("day", "text"), *COUNT_KEY_COLUMNS[1:]), key=None),
    Table("message_hours", (("hour", "text"), ("direction", "text"), ("n", "int")), key=None),
    Table("conversation_counts", (("id", "int"), *COUNTED), key="id"),
    Table(
        "message_count_changes",
        COUNT_KEY_COLUMNS,
        key=None,
    ),
    Table("conversation_count_changes", COUNTED, key=None),
)
# Tables whose ids come from an identity sequence on PostgreSQL.
WITH_SEQUENCES = tuple(t.name for t in TABLES if t.key == "id" and t.name != "conversation_counts")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return clean_text(value if isinstance(value, str) else str(value))


def _moment(value: Any) -> datetime | None:
    if value == "":  # SQLite's 0009 marked leases left from before leases as expired with ''
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise BadValue(f"{value!r} is not a moment") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json(value: Any) -> str:
    """JSON as the PostgreSQL backend writes it: a NaN or Infinity an older version let in
    becomes null (as the SQLite backend reads it back), NUL becomes U+FFFD."""
    try:
        return to_json(json.loads(value, parse_constant=lambda _: None))
    except (TypeError, ValueError):
        raise BadValue(f"{str(value)[:40]!r} is not JSON") from None


def _bytes(value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _number(cast: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        try:
            return cast(value)
        except (TypeError, ValueError):
            raise BadValue(f"{value!r} is not a {cast.__name__}") from None

    return convert


CONVERT: dict[Kind, Callable[[Any], Any]] = {
    "int": _number(int),
    "text": _text,
    "bool": lambda value: bool(_number(int)(value)),
    "moment": _moment,
    "float": _number(float),
    "json": _json,
    "bytes": _bytes,
}


def converted(table: Table, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A source row as PostgreSQL takes it (NULL stays NULL)."""
    values = []
    for (name, kind), value in zip(table.columns, row):
        try:
            values.append(None if value is None else CONVERT[kind](value))
        except BadValue as err:
            where = f"{table.key} {row[table.names.index(table.key)]!r}" if table.key else "a row"
            raise BadValue(f"{table.name}, {where}, column {name}: {err}") from None
    return tuple(values)
