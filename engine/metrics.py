"""Every Prometheus metric the system exports, in one place.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` histograms, base units).
The shipped Grafana dashboard (configs/grafana/lagg.json) and alert rules
(configs/prometheus/alerts.yml) refer to these names; a test checks that every name they use is
defined here, so a rename cannot silently blank a panel or disarm an alert.

No label ever carries a secret: labels are LP names, client CompIDs, symbols, tiers, stages.

Two kinds of metric. Those the gateway updates itself (per batch or per event, off the per-message
path) are declared in :class:`Metrics`. Counts that the engine, the LP feeds and the FIX acceptor
already keep (per message, in kernels or plain ints) are not copied into Prometheus objects on
the hot path: :class:`SourceCollector` reads them when Prometheus scrapes, once
:meth:`Metrics.attach` has named the objects to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["Metrics", "LATENCY_BUCKETS", "SourceCollector", "NO_QUOTE_REASONS"]

# 1 µs .. ~1 s: the engine's stages live in microseconds, the loop's lag in milliseconds.
LATENCY_BUCKETS = (
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
    1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


class Metrics:
    """The metric families, registered on their own registry (one per process, or per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        # Liquidity providers
        self.lp_up = Gauge("lagg_lp_up", "1 while the LP's market-data session is logged on", ["lp"], registry=r)
        # Pricing
        self.stage_latency = Histogram(
            "lagg_stage_latency_seconds",
            "time per batch of LP updates in each stage of the gateway (wait, engine, orders, publish, fanout)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "lagg_loop_lag_seconds", "event-loop scheduling lag", buckets=LATENCY_BUCKETS, registry=r
        )
        # Client sessions
        self.sessions = Gauge("lagg_client_sessions", "client sessions by state", ["state"], registry=r)
        self.conflated = Counter(
            "lagg_md_conflated_total", "market-data updates conflated for slow clients", ["client"], registry=r
        )
        self.slow_logouts = Counter(
            "lagg_slow_client_logouts_total",
            "slow clients logged out (conflated too long) or dropped (past the send-buffer cap)",
            ["client"],
            registry=r,
        )
        # Orders and risk
        self.orders = Counter("lagg_orders_total", "orders received", ["client"], registry=r)
        self.fills = Counter("lagg_fills_total", "fills sent to clients", ["client", "route"], registry=r)
        self.lp_orders = Counter(
            "lagg_lp_orders_total", "orders sent to an LP (A-book routes and hedges)", ["lp"], registry=r
        )
        self.rejects = Counter("lagg_order_rejects_total", "orders rejected", ["client", "reason"], registry=r)
        self.exposure = Gauge("lagg_exposure_steps", "house position per instrument", ["instrument"], registry=r)
        self.config_reloads = Counter(
            "lagg_config_reloads_total", "config reload attempts", ["result"], registry=r
        )
        # LP feeds, pricing counters, client send buffers and logons: read at scrape time.
        self.sources = SourceCollector()
        r.register(self.sources)

    def attach(
        self,
        engine: EngineCounters | None = None,
        feeds: Iterable[LpCounters] = (),
        acceptor: AcceptorCounters | None = None,
        kill: KillState | None = None,
        desk: DeskCounters | None = None,
    ) -> None:
        """Export the counts these objects keep, read when Prometheus scrapes (see
        :class:`SourceCollector`): the engine's (spikes, no quotes, quotes published, stale LPs),
        each LP feed's (MD entries received and dropped, reconnects) and the acceptor's (client
        send buffers, rejected logons). ``feeds``: the :class:`~feeds.lp_feed.LpFeed` of each
        LP, or the simulator's :attr:`~feeds.sim_feed.SimFeed.lps`. Call it again to replace
        them; until then those metrics are exported without samples. ``kill``: the kill switches
        (:class:`risk.limits.KillSwitches`), exported as ``lagg_trading_halted``; ``desk``: the
        order desk (:class:`fixserver.orders.OrderDesk`), for its odd-lot LP fills and each LP's
        record with our orders (outcomes, response times)."""
        self.sources.attach(engine, feeds, acceptor, kill, desk)

    def serve(self, host: str, port: int) -> WSGIServer:
        """Expose /metrics over HTTP (a daemon thread; prometheus-client's own server).

        Returns the server: ``server_address`` gives the bound port (pass 0 for any free
        port), ``shutdown()`` stops it.
        """
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server

    def names(self) -> set[str]:
        """Every sample name this registry can export, as PromQL refers to them."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
        return {
            family.name + suffix
            for family in self.registry.collect()
            for suffix in suffixes.get(family.type, ("",))
        }


# --- read at scrape time ------------------------------------------------------------------------

# lagg_no_quote_total's reasons, and the engine counter (Engine.counters) each one reads.
NO_QUOTE_REASONS = {
    "empty_side": "no_quote_empty_side",
    "crossed": "no_quote_crossed",
    "min_spread": "no_quote_min_spread",
    "max_spread": "no_quote_max_spread",
    "invariant": "no_quote_invariant",
}
# The engine counts no-quote events per instrument over all its tiers (engine.kernels); this is
# the tier label they are exported under until the kernels count them per tier.
ALL_TIERS = "all"


class EngineCounters(Protocol):
    """What the collector reads of :class:`engine.book.Engine`."""

    symbols: tuple[str, ...]
    lp_names: tuple[str, ...]
    tier_names: tuple[str, ...]
    quote_state: np.ndarray
    stale_exclusions: np.ndarray

    def counters(self, symbol: str | None = None) -> dict[str, int]: ...


class _HasName(Protocol):
    @property
    def name(self) -> str: ...


class LpCounters(Protocol):
    """What the collector reads of one LP's market-data source (an LpFeed or a SimLpStatus)."""

    @property
    def lp(self) -> _HasName: ...
    @property
    def entries_received(self) -> int: ...
    @property
    def entries_dropped(self) -> Mapping[str, int]: ...
    @property
    def reconnect_attempts(self) -> int: ...
    @property
    def books_withdrawn(self) -> int: ...


class _ClientHandle(Protocol):
    @property
    def buffered_bytes(self) -> int: ...
    @property
    def session_id(self) -> _ClientSessionID: ...


class _ClientSessionID(Protocol):
    @property
    def target_comp_id(self) -> str: ...


class AcceptorCounters(Protocol):
    """What the collector reads of :class:`fixserver.transport.Acceptor`."""

    @property
    def handles(self) -> Mapping[tuple[bytes, bytes, bytes], _ClientHandle]: ...
    @property
    def logon_rejects(self) -> int: ...


class KillState(Protocol):
    """What the collector reads of :class:`risk.limits.KillSwitches` (its sets are replaced, never
    changed in place, so a scrape reads a whole one)."""

    @property
    def all(self) -> bool: ...
    @property
    def fault(self) -> str: ...
    @property
    def clients(self) -> set[str]: ...
    @property
    def lps(self) -> set[str]: ...
    @property
    def instruments(self) -> set[int]: ...


class LpOrderCounts(Protocol):
    """What the collector reads of one LP's record with our orders (:class:`risk.routing.LpOrderStats`)."""

    @property
    def outcomes(self) -> Mapping[str, int]: ...
    @property
    def response_buckets(self) -> Sequence[int]: ...  # per bucket, not cumulative; the last: above every bound
    @property
    def response_sum_s(self) -> float: ...
    @property
    def bucket_bounds_s(self) -> Sequence[float]: ...


class DeskCounters(Protocol):
    @property
    def odd_lot_fills(self) -> int: ...
    @property
    def lp_order_stats(self) -> Sequence[tuple[str, LpOrderCounts]]: ...  # (LP name, its record)


@dataclass(frozen=True)
class _Sources:
    engine: EngineCounters | None = None
    feeds: Sequence[LpCounters] = ()
    acceptor: AcceptorCounters | None = None
    kill: KillState | None = None
    desk: DeskCounters | None = None


class _Families:
    """One scrape's metric families (samples are added to fresh families on every scrape)."""

    def __init__(self) -> None:
        self.entries = CounterMetricFamily("lagg_lp_md_entries", "MD entries received", labels=["lp"])
        self.dropped = CounterMetricFamily(
            "lagg_lp_md_dropped", "MD entries dropped as invalid", labels=["lp", "reason"]
        )
        self.reconnects = CounterMetricFamily("lagg_lp_reconnects", "LP session reconnect attempts", labels=["lp"])
        self.withdrawn = CounterMetricFamily(
            "lagg_lp_books_withdrawn",
            "LP books withdrawn from pricing until a fresh snapshot (sequence gaps, invalid increments)",
            labels=["lp"],
        )
        self.stale = CounterMetricFamily(
            "lagg_lp_stale", "times an LP was excluded for staleness", labels=["lp", "instrument"]
        )
        self.spikes = CounterMetricFamily(
            "lagg_spikes_filtered", "LP prices ignored by the spike filter", labels=["instrument"]
        )
        self.no_quote = CounterMetricFamily(
            "lagg_no_quote",
            f'tier sides published as no quote (tier="{ALL_TIERS}": counted over every tier)',
            labels=["tier", "instrument", "reason"],
        )
        self.published = CounterMetricFamily("lagg_quotes_published", "tier quote updates published", labels=["tier"])
        self.send_buffer = GaugeMetricFamily(
            "lagg_client_send_buffer_bytes", "bytes queued to a client", labels=["client"]
        )
        self.logon_failures = CounterMetricFamily(
            "lagg_logon_failures", "rejected logons (bad credentials, unknown CompID)"
        )
        self.odd_lots = CounterMetricFamily(
            "lagg_lp_odd_lot_fills",
            "LP fills with a part below one quantity step, booked to the house (journal table odd_lots)",
        )
        self.lp_outcomes = CounterMetricFamily(
            "lagg_lp_order_outcomes",
            "how our orders at each LP ended: filled, partial, rejected, no_answer (within the route's "
            "budget), session_lost, unreadable (its report)",
            labels=["lp", "outcome"],
        )
        self.lp_response = HistogramMetricFamily(
            "lagg_lp_order_response_seconds",
            "time from an order sent to an LP to its final report (late ones included)",
            labels=["lp"],
        )
        self.halted = GaugeMetricFamily(
            "lagg_trading_halted",
            "kill switches on (1), by scope: all, client, instrument, lp (the config's [halt]), or fault "
            "(the order desk stopped trading itself; only a restart clears it)",
            labels=["scope", "name"],
        )

    def all(self) -> list[Metric]:
        return [
            self.entries, self.dropped, self.reconnects, self.withdrawn, self.stale, self.spikes, self.no_quote,
            self.published, self.send_buffer, self.logon_failures, self.halted, self.odd_lots,
            self.lp_outcomes, self.lp_response,
        ]  # fmt: skip


class SourceCollector(Collector):
    """The metrics whose counts live in the engine, the LP feeds and the acceptor.

    Scrapes run in the exporter's thread while the event loop (and the engine's nogil kernels)
    run on: this only reads counters that their owners keep as plain ints or int64 arrays (a read
    may be a moment old, never torn) and changes nothing. The sources are swapped as one object,
    so a scrape sees either the old set or the new one.
    """

    def __init__(self) -> None:
        self._sources = _Sources()

    def attach(
        self,
        engine: EngineCounters | None,
        feeds: Iterable[LpCounters],
        acceptor: AcceptorCounters | None,
        kill: KillState | None = None,
        desk: DeskCounters | None = None,
    ) -> None:
        self._sources = _Sources(engine, tuple(feeds), acceptor, kill, desk)

    def describe(self) -> Iterable[Metric]:
        # The names, for the registry's duplicate check, whether or not anything is attached.
        return _Families().all()

    def collect(self) -> Iterable[Metric]:
        sources = self._sources
        out = _Families()
        for feed in sources.feeds:
            lp = feed.lp.name
            out.entries.add_metric([lp], feed.entries_received)
            for reason, count in feed.entries_dropped.items():
                out.dropped.add_metric([lp, reason], count)
            out.reconnects.add_metric([lp], feed.reconnect_attempts)
            out.withdrawn.add_metric([lp], feed.books_withdrawn)
        if sources.engine is not None:
            _collect_engine(sources.engine, out)
        if sources.acceptor is not None:
            _collect_acceptor(sources.acceptor, out)
        if sources.kill is not None:
            _collect_halts(sources.kill, sources.engine, out)
        if sources.desk is not None:
            out.odd_lots.add_metric([], sources.desk.odd_lot_fills)
            _collect_lp_orders(sources.desk.lp_order_stats, out)
        return out.all()


def _collect_lp_orders(stats: Sequence[tuple[str, LpOrderCounts]], out: _Families) -> None:
    for lp, record in stats:
        for outcome, count in list(record.outcomes.items()):
            out.lp_outcomes.add_metric([lp, outcome], count)
        # One copy of the counts (the loop may add one meanwhile): the buckets agree with the count.
        per_bucket = list(record.response_buckets)
        bounds = [*map(floatToGoString, record.bucket_bounds_s), "+Inf"]
        cumulative = np.cumsum(per_bucket).tolist()
        out.lp_response.add_metric([lp], list(zip(bounds, cumulative, strict=True)), record.response_sum_s)


def _collect_engine(engine: EngineCounters, out: _Families) -> None:
    for symbol in engine.symbols:
        counts = engine.counters(symbol)
        out.spikes.add_metric([symbol], counts["spikes_filtered"])
        for reason, counter in NO_QUOTE_REASONS.items():
            out.no_quote.add_metric([ALL_TIERS, symbol, reason], counts[counter])
    # A tier's ladder version goes up by one on every change published (engine.book), so their
    # sum over the instruments counts the tier's quote updates.
    published = engine.quote_state[:, :, 2].sum(axis=1).tolist()
    for tier, count in zip(engine.tier_names, published, strict=True):
        out.published.add_metric([tier], count)
    stale = engine.stale_exclusions.tolist()
    for i, symbol in enumerate(engine.symbols):
        for j, lp in enumerate(engine.lp_names):
            out.stale.add_metric([lp, symbol], stale[i][j])


def _collect_acceptor(acceptor: AcceptorCounters, out: _Families) -> None:
    for handle in list(acceptor.handles.values()):
        try:
            # The session's pending list and its socket's write-buffer size: both only read here.
            backlog = handle.buffered_bytes
        except Exception:  # a connection closing under us: this client is left out of one scrape
            continue
        out.send_buffer.add_metric([handle.session_id.target_comp_id], backlog)
    out.logon_failures.add_metric([], acceptor.logon_rejects)


def _collect_halts(kill: KillState, engine: EngineCounters | None, out: _Families) -> None:
    out.halted.add_metric(["all", ""], 1 if kill.all else 0)  # always there: an alert can see 1 -> 0
    out.halted.add_metric(["fault", ""], 1 if kill.fault else 0)
    symbols = engine.symbols if engine is not None else ()
    for scope, names in (
        ("client", sorted(kill.clients)),
        ("instrument", sorted(symbols[i] if i < len(symbols) else str(i) for i in kill.instruments)),
        ("lp", sorted(kill.lps)),
    ):
        for name in names:
            out.halted.add_metric([scope, name], 1)
