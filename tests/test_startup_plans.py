"""Start-up and the workers' rounds read no table of messages or contacts whole: every statement
they run (caught with the store's trace, then planned with EXPLAIN QUERY PLAN) finds its rows
through an index, or walks only a partial one (a few rows: queued, in flight, in a flow)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.startup import run_jobs, sqlite_plans
from responder.clock import SystemClock
from responder.store.sqlite import SQLiteStore

BIG_TABLES = ("messages", "contacts")


def partial_indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {
            row[1]
            for table in BIG_TABLES
            for row in db.execute(f"PRAGMA index_list({table})")
            if row[4]  # partial
        }


def full_scans(plan: list[str], partial: set[str]) -> list[str]:
    scans = []
    for line in plan:
        words = line.split()
        if words[:1] != ["SCAN"] or words[1] not in BIG_TABLES:
            continue
        if "INDEX" in words and words[words.index("INDEX") + 1] in partial:
            continue
        scans.append(line)
    return scans


async def test_no_statement_of_start_up_or_workers_scans_messages(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    migrated = SQLiteStore(path, SystemClock())
    await migrated.open()
    await migrated.close()
    seen: list[str] = []  # what a start on a migrated database runs (the migrations check too)
    store = SQLiteStore(path, SystemClock())
    store.trace = seen.append
    await store.open()
    try:
        await run_jobs(store)
    finally:
        await store.close()
    statements = [s for s in dict.fromkeys(seen) if not s.startswith("PRAGMA")]
    plans = sqlite_plans(path, statements)
    assert any("FROM messages" in sql for sql, _ in plans)  # the trace did catch them
    partial = partial_indexes(path)
    scans = {sql: full_scans(plan, partial) for sql, plan in plans}
    assert {sql: lines for sql, lines in scans.items() if lines} == {}


def test_a_plain_status_filter_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, status TEXT)")
    ((_, plan),) = sqlite_plans(path, ["SELECT COUNT(*) FROM messages WHERE status = 'queued'"])
    assert full_scans(plan, set()) == ["SCAN messages"]
