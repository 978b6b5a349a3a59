"""Budget overruns (responder.budget) as both backends keep them: one JSON value in `meta`,
counted per rule and source, the newest MAX_OVERRUNS only (a handful of entries, read rarely)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from responder.budget import Overrun, OverrunRecord
from responder.store.models import to_iso

OVERRUNS_KEY = "budget_overruns"
MAX_OVERRUNS = 100


def merged(value: str | None, overruns: Sequence[Overrun], now: datetime) -> str:
    """The stored `value` with `overruns` counted in, as of `now`."""
    known: dict[str, dict[str, Any]] = json.loads(value) if value else {}
    at = to_iso(now)
    for o in overruns:
        key = f"{o.kind}\t{o.owner.rule}\t{o.owner.source}"
        entry = known.pop(key, None) or {
            "kind": o.kind,
            "rule": o.owner.rule,
            "line": o.owner.line,
            "source": o.owner.source,
            "count": 0,
            "first_at": at,
        }
        known[key] = {**entry, "why": o.why, "count": entry["count"] + 1, "last_at": at}
    return json.dumps(dict(list(known.items())[-MAX_OVERRUNS:]))  # dicts keep insertion order


def records(value: str | None) -> list[OverrunRecord]:
    """What a stored value holds, the most recent last."""
    known: dict[str, dict[str, Any]] = json.loads(value) if value else {}
    return [
        OverrunRecord(
            **{
                **e,
                "first_at": datetime.fromisoformat(e["first_at"]),
                "last_at": datetime.fromisoformat(e["last_at"]),
            }
        )
        for e in known.values()
    ]
