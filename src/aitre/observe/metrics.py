"""Prometheus metrics, cheap on the request path.

A request adds to plain tallies: one dict lookup for its label tuple, a few integer additions,
one `bisect` per histogram. Every second, and before each scrape, what was tallied is handed to
prometheus-client's metrics, in a thread. Counting through prometheus-client on every request
cost ~8 µs per request in its multiprocess mode (a lock and a memory-mapped write per value, 3
to 15 values per request); the tallies cost under 1 µs.

With several workers, prometheus-client keeps each process's values in memory-mapped files under
`PROMETHEUS_MULTIPROC_DIR` (`aitre.server` points it at `<data_dir>/prometheus` and empties that
folder at start) and a scrape, answered by whichever worker gets it, sums all of them: counters
of every process that ever ran since the start, gauges of the live ones. Another worker's
counts reach a scrape within `FLUSH_SECONDS`.

Label values are bounded: routes, channels, statuses and reasons come from the gateway's own
tables; a model name comes from the client, so a request for a model no channel knows is counted
under `_unknown`, and past `MAX_MODELS` distinct names (a wildcard channel takes any) new ones are
counted under `_other`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from aitre.observe.metrics_dir import MULTIPROC_ENV
from aitre.periodic import cancel, every

if TYPE_CHECKING:
    from aitre.relay.job import Attempt

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
MAX_MODELS = 1000
UNKNOWN_MODEL = "_unknown"
OTHER_MODEL = "_other"

# Seconds. Generations take from a fraction of a second to minutes.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TTFB_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# The gateway's own time per request: tens of microseconds to a few milliseconds.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# Failover reasons worth a label of their own (`relay.errors`); any other code is `other`.
REASONS = frozenset(
    {
        "upstream_error",
        "upstream_timeout",
        "upstream_unreachable",
        "upstream_busy",
        "upstream_bad_response",
        "upstream_stream_error",
        "rate_limit_exceeded",
        "upstream_auth_failed",
        "upstream_account_unusable",
    }
)
BREAKER = {"closed": 0, "half-open": 1, "open": 2}


def multiprocess_dir() -> str | None:
    """The folder shared by the workers, when prometheus-client runs in multiprocess mode (the
    variable must be set before it is imported: it chooses how values are stored then)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path and getattr(values.ValueClass, "_multiprocess", False):
        return path
    return None


class _Hist:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def add(self, value: float) -> None:
        # Bucket i holds values <= bounds[i] (Prometheus's `le`); the last one is +Inf.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def take(self) -> tuple[list[int], float] | None:
        if not any(self.counts):
            return None
        taken = self.counts, self.total
        self.counts, self.total = [0] * (len(self.bounds) + 1), 0.0
        return taken


class _Relay:
    """The tallies of one (route, model, channel, status)."""

    __slots__ = ("completion", "cost", "count", "duration", "prompt", "ttfb")

    def __init__(self) -> None:
        self.count = self.prompt = self.completion = self.cost = 0
        self.duration = _Hist(DURATION_BUCKETS)
        self.ttfb = _Hist(TTFB_BUCKETS)


# One change to hand to prometheus-client: (metric, label values, amount or (bucket counts, sum)).
_Change = tuple[Any, tuple[str, ...], Any]


class Metrics:
    """The gateway's metrics (`state.metrics`). Hot-path methods only add to tallies."""

    def __init__(
        self, sample: Callable[[], None] | None = None, flush_seconds: float = FLUSH_SECONDS
    ) -> None:
        """`sample()`: called before each flush, to set this process's gauges (`gauges`)."""
        self._dir = multiprocess_dir()
        self._sample = sample
        self._flush_seconds = flush_seconds
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        route_labels = ("route", "model", "channel")
        self.requests = Counter(
            "aitre_requests", "Relayed requests, by outcome.", (*route_labels, "status"), registry=r
        )
        self.duration = Histogram(
            "aitre_request_duration_seconds",
            "Whole relayed requests (a stream: to its end).",
            route_labels,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            "aitre_time_to_first_byte_seconds",
            "Streams: from the request's arrival to its first event sent.",
            route_labels,
            buckets=TTFB_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("aitre_tokens", "Tokens billed.", (*route_labels, "kind"), registry=r)
        self.cost = Counter(
            "aitre_cost_units",
            "Quota units charged (AITRE_QUOTA_PER_USD make one USD).",
            route_labels,
            registry=r,
        )
        self.http = Counter(
            "aitre_http_requests",
            "Requests answered by the front door, by path and status.",
            ("path", "status"),
            registry=r,
        )
        self.overhead = Histogram(
            "aitre_overhead_seconds",
            "The gateway's own time per request up to its answer's head, without the upstream's "
            "(the x-aitre-overhead-ms header).",
            ("path",),
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "aitre_upstream_attempts",
            "Calls to upstreams, by channel and HTTP status (0: no answer).",
            ("channel", "status"),
            registry=r,
        )
        self.failovers = Counter(
            "aitre_failovers",
            "Upstream failures after which the relay may try another channel, by reason.",
            ("channel", "reason"),
            registry=r,
        )
        self.tasks = Counter(
            "aitre_tasks_ended", "Tasks ended, by kind and status.", ("kind", "status"), registry=r
        )
        self.notify = Counter(
            "aitre_notify_deliveries",
            "notifyHook calls made: delivered, retry (will be tried again), failed (for good).",
            ("outcome",),
            registry=r,
        )
        self.breaker = Gauge(
            "aitre_channel_breaker_state",
            "Circuit breaker per channel: 0 closed, 1 half-open, 2 open (the worst of the workers).",
            ("channel",),
            multiprocess_mode="livemax",
            registry=r,
        )
        self.inflight = Gauge(
            "aitre_channel_inflight",
            "Requests in flight per channel.",
            ("channel",),
            multiprocess_mode="livesum",
            registry=r,
        )
        self.books_pending = Gauge(
            "aitre_books_pending",
            "Ledger operations and usage rows waiting to be written to the database.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self._relay: dict[tuple[str, str, str, int], _Relay] = {}
        self._models: set[str] = set()
        self._http: dict[tuple[str, int], int] = {}
        self._overhead: dict[str, _Hist] = {}
        self._attempts: dict[tuple[int, int], int] = {}
        self._failovers: dict[tuple[int, str], int] = {}
        self._tasks: dict[tuple[str, str], int] = {}
        self._task_cost: dict[tuple[str, str, str], int] = {}
        self._notify: dict[str, int] = {}
        self._gauges: list[_Change] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # --- the request path ---------------------------------------------------------------------
    def relay(
        self,
        route: str,
        model: str,
        channel: int | None,
        status: int,
        seconds: float,
        ttfb_seconds: float,
        prompt: int,
        completion: int,
        cost: int,
        attempts: list[Attempt],
    ) -> None:
        """A relayed request has ended (`relay.outcome.finish`)."""
        label = "" if channel is None else str(channel)
        key = (route, model, label, status)
        series = self._relay.get(key)
        if series is None:
            series = self._new_relay(route, model, label, status)
        series.count += 1
        series.duration.add(seconds)
        if ttfb_seconds > 0:
            series.ttfb.add(ttfb_seconds)
        series.prompt += prompt
        series.completion += completion
        series.cost += cost
        if attempts:
            tally = self._attempts
            for a in attempts:
                k = (a.channel_id, a.status)
                tally[k] = tally.get(k, 0) + 1

    def _new_relay(self, route: str, model: str, channel: str, status: int) -> _Relay:
        # No channel knew the model: any string a client made up.
        model = UNKNOWN_MODEL if channel == "" and status == 404 else self._model(model)
        key = (route, model, channel, status)
        series = self._relay.get(key)
        if series is None:
            series = self._relay[key] = _Relay()
        return series

    def _model(self, model: str) -> str:
        if model not in self._models:
            if len(self._models) >= MAX_MODELS:
                return OTHER_MODEL
            self._models.add(model)
        return model

    def answered(self, path: str, status: int, overhead_seconds: float) -> None:
        """The front door sent an answer's head (`api.fastpath`)."""
        key = (path, status)
        self._http[key] = self._http.get(key, 0) + 1
        hist = self._overhead.get(path)
        if hist is None:
            hist = self._overhead[path] = _Hist(OVERHEAD_BUCKETS)
        hist.add(overhead_seconds)

    def failover(self, channel: int, code: str | None) -> None:
        key = (channel, code if code in REASONS else "other")
        self._failovers[key] = self._failovers.get(key, 0) + 1

    def task_ended(
        self, kind: str, status: str, route: str, model: str, channel: int | None, cost: int
    ) -> None:
        key = (kind, status)
        self._tasks[key] = self._tasks.get(key, 0) + 1
        if cost:
            k = (route, self._model(model), "" if channel is None else str(channel))
            self._task_cost[k] = self._task_cost.get(k, 0) + cost

    def notified(self, outcome: str) -> None:
        self._notify[outcome] = self._notify.get(outcome, 0) + 1

    def gauges(self, breakers: Iterable[tuple[int, str, int]], books_pending: int) -> None:
        """This process's gauges, set at the next flush: (channel, breaker state, in flight)."""
        changes: list[_Change] = []
        for channel, state, inflight in breakers:
            changes.append((self.breaker, (str(channel),), BREAKER.get(state, 0)))
            changes.append((self.inflight, (str(channel),), inflight))
        changes.append((self.books_pending, (), books_pending))
        self._gauges = changes

    # --- handing the tallies over ----------------------------------------------------------------
    def _take(self) -> tuple[list[_Change], list[_Change], list[_Change]]:
        """What was tallied since the last flush (counters, histograms, gauges); tallies reset."""
        counters: list[_Change] = []
        hists: list[_Change] = []
        cost: dict[tuple[str, str, str], int] = {}
        for (route, model, channel, status), s in self._relay.items():
            if not s.count:
                continue
            labels = (route, model, channel)
            counters.append((self.requests, (*labels, str(status)), s.count))
            if s.prompt:
                counters.append((self.tokens, (*labels, "prompt"), s.prompt))
            if s.completion:
                counters.append((self.tokens, (*labels, "completion"), s.completion))
            if s.cost:
                cost[labels] = cost.get(labels, 0) + s.cost
            for metric, hist in ((self.duration, s.duration), (self.ttfb, s.ttfb)):
                taken = hist.take()
                if taken is not None:
                    hists.append((metric, labels, taken))
            s.count = s.prompt = s.completion = s.cost = 0
        for labels, units in self._task_cost.items():
            cost[labels] = cost.get(labels, 0) + units
        counters.extend((self.cost, labels, units) for labels, units in cost.items())
        for path, hist in self._overhead.items():
            taken = hist.take()
            if taken is not None:
                hists.append((self.overhead, (path,), taken))
        counters.extend((self.http, (p, str(st)), n) for (p, st), n in self._http.items())
        counters.extend((self.attempts, (str(c), str(st)), n) for (c, st), n in self._attempts.items())
        counters.extend((self.failovers, (str(c), why), n) for (c, why), n in self._failovers.items())
        counters.extend((self.tasks, kind_status, n) for kind_status, n in self._tasks.items())
        counters.extend((self.notify, (outcome,), n) for outcome, n in self._notify.items())
        self._http, self._attempts, self._failovers = {}, {}, {}
        self._tasks, self._notify, self._task_cost = {}, {}, {}
        gauges, self._gauges = self._gauges, []
        return counters, hists, gauges

    def _take_all(self) -> tuple[list[_Change], list[_Change], list[_Change]]:
        if self._sample is not None:
            try:
                self._sample()
            except Exception:
                log.exception("sampling the gauges failed")
        return self._take()

    @staticmethod
    def _apply(counters: list[_Change], hists: list[_Change], gauges: list[_Change]) -> None:
        for metric, labels, amount in counters:
            (metric.labels(*labels) if labels else metric).inc(amount)
        for metric, labels, (counts, total) in hists:
            child = metric.labels(*labels)
            # prometheus-client has no public call for "n observations in bucket i"; its
            # histogram child is a sum and one value per bucket, as in `Histogram.observe`.
            child._sum.inc(total)
            for i, n in enumerate(counts):
                if n:
                    child._buckets[i].inc(n)
        for metric, labels, value in gauges:
            (metric.labels(*labels) if labels else metric).set(value)

    async def flush(self) -> None:
        async with self._lock:
            taken = self._take_all()
            if any(taken):
                await asyncio.to_thread(self._apply, *taken)

    # --- scrapes -------------------------------------------------------------------------------
    async def render(self, extra: list[Metric]) -> bytes:
        """The exposition: every process's metrics (this one's flushed now) and `extra`."""
        async with self._lock:
            taken = self._take_all()
            return await asyncio.to_thread(self._render, taken, extra)

    def _render(
        self, taken: tuple[list[_Change], list[_Change], list[_Change]], extra: list[Metric]
    ) -> bytes:
        self._apply(*taken)
        registry = CollectorRegistry(auto_describe=False)
        if self._dir is not None:
            MultiProcessCollector(registry, path=self._dir)  # type: ignore[no-untyped-call]
        else:
            registry.register(_Collected(self.registry.collect))
        registry.register(_Collected(lambda: iter(extra)))
        return generate_latest(registry)

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._task = every(self._flush_seconds, self.flush, "metrics-flush", "handing metrics over failed")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("handing the last metrics over failed")
        if self._dir is not None:
            # Its counters stay (they happened); its live gauges go.
            mark_process_dead(os.getpid(), self._dir)  # type: ignore[no-untyped-call]


class _Collected:
    """A collector made of a function (the registries' `register` wants an object)."""

    def __init__(self, collect: Any) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        yield from self._collect()
