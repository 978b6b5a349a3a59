"""One clock: nothing in responder reads the time or draws jitter except through `Clock`."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# What reads the machine's time or global random state directly.
FORBIDDEN = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("time", "time_ns"),
    ("random", "random"),
    ("random", "uniform"),
    ("random", "randint"),
    ("random", "choice"),
}


def _direct_time_reads(path: Path, base: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in FORBIDDEN
        ):
            found.append(f"{path.relative_to(base)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_only_the_clock_module_reads_the_time() -> None:
    sources = sorted((ROOT / "responder").rglob("*.py"))
    assert len(sources) > 20
    found = [hit for path in sources if path.name != "clock.py" for hit in _direct_time_reads(path)]
    assert found == []


def test_the_check_sees_a_direct_read(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import time\n\nSTARTED = time.monotonic()\n", encoding="utf-8")
    assert _direct_time_reads(sample, tmp_path) == ["sample.py:3: time.monotonic"]
