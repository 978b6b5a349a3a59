"""The dashboard's small charts: pure geometry, drawn as inline SVG by the admin templates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    title: str  # the tooltip, also read by screen readers
    series: str  # CSS class that colours it


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"  # SVG text-anchor


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    labels: tuple[Label, ...] = ()
    grid: tuple[Label, ...] = ()  # horizontal lines at `y`, with their value at the left
    summary: str = ""


def nice_ceiling(value: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def daily_bars(days: Sequence[tuple[str, int, int]], width: int = 640, height: int = 200) -> Chart:
    """Messages in and out per day, side by side: `days` is (label, in, out), oldest first."""
    left, right, bottom, top = 34, 14, 22, 12
    plot_w, plot_h = width - left - right, height - bottom - top
    peak = nice_ceiling(max((max(i, o) for _, i, o in days), default=0))
    slot = plot_w / max(len(days), 1)
    bar_w = slot * 0.36
    bars: list[Bar] = []
    labels: list[Label] = []
    every = 1 if len(days) <= 7 else 2
    for n, (label, inbound, outbound) in enumerate(days):
        x0 = left + n * slot + slot * 0.12
        for k, (value, series, word) in enumerate(
            ((inbound, "in", "recibidos"), (outbound, "out", "enviados"))
        ):
            h = plot_h * value / peak
            bars.append(
                Bar(
                    round(x0 + k * bar_w, 1),
                    round(top + plot_h - h, 1),
                    round(bar_w, 1),
                    round(h, 1),
                    value,
                    f"{label}: {value} {word}",
                    series,
                )
            )
        if (len(days) - 1 - n) % every == 0:  # always label the last day (today)
            labels.append(Label(round(left + (n + 0.5) * slot, 1), height - 6, label))
    grid = tuple(
        Label(left, round(top + plot_h - plot_h * f, 1), str(round(peak * f)), "end")
        for f in (0, 0.5, 1)
    )
    total_in = sum(i for _, i, _ in days)
    total_out = sum(o for _, _, o in days)
    summary = f"{total_in} mensajes recibidos y {total_out} enviados en {len(days)} días"
    return Chart(width, height, tuple(bars), tuple(labels), grid, summary)


def horizontal_bars(
    items: Sequence[tuple[str, int]], width: int = 640, row: int = 26, label_width: int = 180
) -> Chart:
    """One bar per item (label, count), longest first as given."""
    peak = max((count for _, count in items), default=0) or 1
    room = width - label_width - 48  # leaves space for the count after the bar
    bars, labels = [], []
    for n, (name, count) in enumerate(items):
        y = n * row + 4
        w = room * count / peak
        bars.append(Bar(label_width, y, round(w, 1), row - 8, count, f"{name}: {count}", "rule"))
        labels.append(Label(label_width - 8, y + row / 2, name, "end"))
        labels.append(Label(round(label_width + w + 6, 1), y + row / 2, str(count), "start"))
    summary = ", ".join(f"{name}: {count}" for name, count in items)
    return Chart(width, max(len(items), 1) * row + 4, tuple(bars), tuple(labels), (), summary)


def stacked_bar(parts: Sequence[tuple[str, int, str]], width: int = 640, height: int = 24) -> Chart:
    """One bar split into parts (label, count, series) in proportion to their counts."""
    total = sum(count for _, count, _ in parts)
    bars, x = [], 0.0
    for label, count, series in parts:
        if not count:
            continue
        w = width * count / total
        share = round(100 * count / total)
        bars.append(
            Bar(round(x, 1), 0, round(w, 1), height, count, f"{label}: {count} ({share} %)", series)
        )
        x += w
    summary = ", ".join(f"{label}: {count}" for label, count, _ in parts)
    return Chart(width, height, tuple(bars), (), (), summary)
