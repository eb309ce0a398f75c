"""Every Prometheus metric the system exports, in one place.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` histograms, base units).
The shipped Grafana dashboard (configs/grafana/lagg.json) and alert rules
(configs/prometheus/alerts.yml) refer to these names; a test checks that every name they use is
defined here, so a rename cannot silently blank a panel or disarm an alert.

No label ever carries a secret: labels are LP names, client CompIDs, symbols, tiers, stages.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["Metrics", "LATENCY_BUCKETS"]

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
        self.lp_md_entries = Counter("lagg_lp_md_entries_total", "MD entries received", ["lp"], registry=r)
        self.lp_md_dropped = Counter(
            "lagg_lp_md_dropped_total", "MD entries dropped as invalid", ["lp", "reason"], registry=r
        )
        self.lp_reconnects = Counter("lagg_lp_reconnects_total", "LP session reconnect attempts", ["lp"], registry=r)
        self.lp_stale = Counter(
            "lagg_lp_stale_total", "times an LP was excluded for staleness", ["lp", "instrument"], registry=r
        )
        # Pricing
        self.spikes_filtered = Counter(
            "lagg_spikes_filtered_total", "LP prices ignored by the spike filter", ["instrument"], registry=r
        )
        self.no_quote = Counter(
            "lagg_no_quote_total", "tier sides published as no quote", ["tier", "instrument", "reason"], registry=r
        )
        self.quotes_published = Counter(
            "lagg_quotes_published_total", "tier quote updates published", ["tier"], registry=r
        )
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
        self.send_buffer = Gauge(
            "lagg_client_send_buffer_bytes", "bytes queued to a client", ["client"], registry=r
        )
        self.conflated = Counter(
            "lagg_md_conflated_total", "market-data updates conflated for slow clients", ["client"], registry=r
        )
        self.slow_logouts = Counter(
            "lagg_slow_client_logouts_total",
            "slow clients logged out (conflated too long) or dropped (past the send-buffer cap)",
            ["client"],
            registry=r,
        )
        self.logon_failures = Counter(
            "lagg_logon_failures_total", "rejected logons (bad credentials, unknown CompID)", registry=r
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
