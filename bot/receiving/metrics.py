"""What /metrics shows, in Prometheus' text format (prometheus_client).

One registry per application (not the library's global one), so that several bots in one
process, as in the tests, keep their own counts. Counters live in this process; the inbox and
outbox depths are read from the database at each scrape, so every process reports the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.sending.ratelimit import SendStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Handlers answer in milliseconds, but a rate-limited send can hold one for seconds.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _SendingCollector(Collector):
    """Messages sent and 429s seen, read from the rate limiter's counters at scrape time."""

    def __init__(self, stats: Callable[[], SendStats | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats() or SendStats()
        yield CounterMetricFamily(
            "greengrid_messages_sent",
            "Messages Telegram accepted (an album counts each item)",
            value=stats.sent,
        )
        yield CounterMetricFamily(
            "greengrid_telegram_429",
            "Answers 429 Too Many Requests from Telegram (each was waited out or given up)",
            value=stats.seen_429,
        )


class Metrics:
    def __init__(self, send_stats: Callable[[], SendStats | None] = lambda: None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "greengrid_updates_received",
            "Updates written to the inbox (first delivery only)",
            ["via"],
            registry=r,
        )
        self.redelivered = Counter(
            "greengrid_updates_redelivered",
            "Deliveries of an update the inbox already had (no second effect)",
            ["via"],
            registry=r,
        )
        self.processed = Counter(
            "greengrid_updates_processed", "Updates whose handlers finished", registry=r
        )
        self.failed = Counter(
            "greengrid_update_failures",
            "Handler runs that failed (the update is retried, or parked after the last try)",
            registry=r,
        )
        self.parked = Counter(
            "greengrid_updates_parked", "Updates parked after failing every try", registry=r
        )
        self.latency = Histogram(
            "greengrid_handler_seconds",
            "Time to run one update's handlers",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.last_processed = Gauge(
            "greengrid_last_update_processed_timestamp_seconds",
            "When this process last finished an update (Unix time)",
            registry=r,
        )
        self.inbox_pending = Gauge(
            "greengrid_inbox_pending", "Updates in the inbox not yet done", registry=r
        )
        self.inbox_parked = Gauge(
            "greengrid_inbox_parked", "Updates parked, waiting for an admin", registry=r
        )
        self.outbox_depth = Gauge(
            "greengrid_outbox_depth", "Scheduled messages not yet sent", registry=r
        )
        self.database_up = Gauge(
            "greengrid_database_up", "1 if the last scrape reached the database", registry=r
        )
        r.register(_SendingCollector(send_stats))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
