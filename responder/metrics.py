"""What `GET /metrics` shows (DESIGN §13), in Prometheus text format.

Counters and histograms belong to one `Metrics` (one per service, with its own registry: never
prometheus-client's global one), so each instance counts what it did itself and Prometheus
sums the instances. The outbox gauges are read from the database at scrape time: every
instance shows the whole queue.

Cheap on the webhook path: the labelled children are made once and kept, so counting an event
is one dictionary lookup and one `inc()`.
"""

from __future__ import annotations

import gc
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from responder.clock import pause_seconds, thread_cpu_time

# Seconds: a webhook answers in milliseconds, a provider in tenths, a delivery report in
# seconds to hours.
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SEND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DELIVERY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
# A garbage collection stops everything the process does: a webhook waits for it. Pauses of
# the youngest generation take tens of microseconds, a full collection milliseconds or more.
GC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
NO_RULE = "(none)"  # the label of an inbound message that no rule answered


class _Children:
    """A labelled counter's children, made once per label values and kept."""

    def __init__(self, metric: Counter) -> None:
        self.metric = metric
        self.children: dict[str | tuple[str, ...], Counter] = {}

    def get(self, *values: str) -> Counter:
        key = values[0] if len(values) == 1 else values
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = self.metric.labels(*values)
        return child


class Metrics:
    """The counters, histograms and gauges of one service."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=False)
        self._inbound = _Children(
            Counter("responder_inbound", "Inbound messages taken", ["provider"], registry=registry)
        )
        self._outbound = _Children(
            Counter(
                "responder_outbound",
                "Outcomes of send attempts (sent, delivered, failed, queued again, ...)",
                ["provider", "outcome"],
                registry=registry,
            )
        )
        self._segments = _Children(
            Counter(
                "responder_segments",
                "SMS segments a provider accepted",
                ["provider"],
                registry=registry,
            )
        )
        self._rule_matches = _Children(
            Counter(
                "responder_rule_matches",
                f"Inbound messages answered by each rule ({NO_RULE}: by none)",
                ["rule"],
                registry=registry,
            )
        )
        self.webhook_seconds = Histogram(
            "responder_webhook_seconds",
            "Time to answer a provider's webhook",
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.send_seconds = Histogram(
            "responder_send_seconds",
            "Time a provider took to answer one send request",
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "responder_delivery_seconds",
            "From a message accepted by its provider to its delivery report",
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.outbox_queued = Gauge(
            "responder_outbox_queued",
            "Messages queued or being sent (all instances: read from the database)",
            registry=registry,
        )
        self.outbox_oldest_seconds = Gauge(
            "responder_outbox_oldest_seconds",
            "Age of the oldest message queued or being sent (0 when none)",
            registry=registry,
        )

        self.gc_pause_seconds = Histogram(
            "responder_gc_pause_seconds",
            "Pauses of Python's garbage collector, by generation (2: a full collection)",
            ["generation"],
            buckets=GC_BUCKETS,
            registry=registry,
        )
        self.gc_pause_max_seconds = Gauge(
            "responder_gc_pause_max_seconds",
            "The longest garbage collector pause since start, by generation",
            ["generation"],
            registry=registry,
        )
        self.gc_cpu_seconds = Counter(
            "responder_gc_cpu_seconds",
            "CPU time the garbage collector's pauses took, by generation (on a busy machine a "
            "pause also waits for the CPU: this is the collector's own work)",
            ["generation"],
            registry=registry,
        )
        self._gc = GcPauses(self.gc_pause_seconds, self.gc_pause_max_seconds, self.gc_cpu_seconds)

    def watch_gc(self) -> None:
        """Times every garbage collection from now on (until `unwatch_gc`)."""
        if self._gc.callback not in gc.callbacks:
            gc.callbacks.append(self._gc.callback)

    def unwatch_gc(self) -> None:
        if self._gc.callback in gc.callbacks:
            gc.callbacks.remove(self._gc.callback)

    def inbound(self, provider: str) -> None:
        self._inbound.get(provider).inc()

    def outcome(self, provider: str, outcome: str) -> None:
        self._outbound.get(provider, outcome).inc()

    def segments(self, provider: str, count: int) -> None:
        self._segments.get(provider).inc(count)

    def rule_matched(self, rule: str | None) -> None:
        self._rule_matches.get(rule or NO_RULE).inc()

    def delivered(self, sent_at: datetime, delivered_at: datetime) -> None:
        self.delivery_seconds.observe(max(0.0, (delivered_at - sent_at).total_seconds()))

    def exposition(self, queued: int, oldest: datetime | None, now: datetime) -> bytes:
        """The text Prometheus reads, with the outbox gauges as the database has them now."""
        self.outbox_queued.set(queued)
        age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        self.outbox_oldest_seconds.set(age)
        return generate_latest(self.registry)


class GcPauses:
    """A `gc.callbacks` hook: the time between a collection's start and its stop, by
    generation. Runs on every collection (young ones: thousands a second under load), so it
    only reads a clock and, at the stop, observes into children made once."""

    def __init__(self, pauses: Histogram, longest: Gauge, cpu: Counter) -> None:
        self._pauses = [pauses.labels(str(g)) for g in range(3)]
        self._longest_gauges = [longest.labels(str(g)) for g in range(3)]
        self._cpu = [cpu.labels(str(g)) for g in range(3)]
        self.longest = [0.0, 0.0, 0.0]
        self._started = self._started_cpu = 0.0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = pause_seconds()
            self._started_cpu = thread_cpu_time()
            return
        pause = pause_seconds() - self._started
        generation = info["generation"]
        self._cpu[generation].inc(thread_cpu_time() - self._started_cpu)
        self._pauses[generation].observe(pause)
        if pause > self.longest[generation]:
            self.longest[generation] = pause
            self._longest_gauges[generation].set(pause)
