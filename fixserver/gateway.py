"""The client gateway process: engine + FIX acceptor + market data + orders, on one uvloop loop.

One loop iteration (a *batch*): take the LP updates that arrived, apply them to the engine in one
kernel call, reprice, retry resting orders, flush the order desk (journal commit, then reports),
and publish market data once, shared across sessions. Per-message Python work stays in the FIX
session layer; everything per price level is in the engine's kernels.

The market source is either the in-process LP simulator (:class:`feeds.sim_feed.SimFeed`) or the
configured LPs over FIX (:class:`feeds.lp_feed.LpFeed`, one initiator each), both writing the same
:class:`~engine.batch.UpdateBatch`. Over FIX, the LP sessions also carry A-book routes and hedges
(:class:`risk.routing.Router`); with the in-process simulator every order is internalised.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from engine.batch import UpdateBatch
from engine.book import Engine
from engine.config import ClientConfig, Config, ConfigError, HaltConfig
from engine.journal import Journal
from engine.metrics import Metrics
from engine.reload import ConfigReloader, restart_needed
from feeds import md_decode
from feeds.lp_feed import LpFeed
from feeds.replay import QuoteHasher, recorder_for
from feeds.sim_feed import SimFeed, SimLpStatus
from feeds.sim_market import SimConfig
from fixserver.clock import Clock, SystemClock
from fixserver.codec import PreparedBody
from fixserver.marketdata import MarketDataHub, MdReject, MdRejectReason
from fixserver.message import FixMessage
from fixserver.message_log import MessageLog
from fixserver.orders import OrderDesk, Outbound
from fixserver.security_list import security_list
from fixserver.session import SessionState, SharedBody
from fixserver.store import SqliteStoreFactory
from fixserver.transport import Acceptor, Application, Initiator, SessionHandle
from risk import KillSwitches, PositionBook, PreTradeChecker
from risk.routing import LpPrice, Router

__all__ = ["Gateway", "GatewayOptions", "serve"]

log = logging.getLogger("lagg.gateway")

_UNSUPPORTED_MSG_TYPE = 3  # 380 BusinessRejectReason
_FIELD_MISSING = 5  # 380: conditionally required field missing


class Gateway(Application):
    """The acceptor application: routes V/x to market data and D/F/H to the order desk."""

    def __init__(
        self, cfg: Config, engine: Engine, journal: Journal, metrics: Metrics, clock: Clock, lp_orders: bool = False
    ) -> None:
        """``lp_orders``: LP order sessions exist (``--market fix``), so A-book routing and hedging
        are on; their feeds are registered with :meth:`add_lp_feed`."""
        self.cfg = cfg
        self.engine = engine
        self.metrics = metrics
        self.clock = clock
        self.clients: dict[str, ClientConfig] = {c.sender_comp_id: c for c in cfg.clients}
        self._tier_index = {t.name: n for n, t in enumerate(cfg.tiers)}
        self._tier_names = [t.name for t in cfg.tiers]
        self._symbols = [i.symbol for i in cfg.instruments]
        self._disabled_symbols = {i.symbol.encode() for i in cfg.instruments if not i.enabled}
        self.handles: dict[str, SessionHandle] = {}
        self._price_grids = [i.price_grid() for i in cfg.instruments]
        self._qty_grids = [i.qty_grid() for i in cfg.instruments]
        self.hub = MarketDataHub(
            self._symbols,
            self._price_grids,
            self._qty_grids,
            [t.depth for t in cfg.tiers],
            quote_of=engine.ladder,
            # Hub and engine index tiers and instruments alike (config order): the hub copies a
            # ladder only when its version moved.
            version_of=lambda tier, instr: int(engine.quote_state[tier, instr, 2]),
            versions=lambda: engine.quote_state[:, :, 2].tolist(),
        )
        self.positions = PositionBook(len(cfg.instruments), skew_step_qty=[i.skew_step_qty for i in cfg.instruments])
        self.kill = KillSwitches()
        self._set_halts(cfg)
        self.desk = OrderDesk(
            cfg,
            quote_of=self._ladder,
            journal=journal,
            positions=self.positions,
            checker=PreTradeChecker(self.positions, self.kill, [i.price_collar_ticks for i in cfg.instruments]),
            resolve_quote=self.hub.resolve_quote,
            on_exposure=self._on_exposure,
            router=Router(self._send_lp_order, self._lp_prices, engine.lp_names) if lp_orders else None,
        )
        self.lp_feeds: dict[int, LpFeed] = {}  # by engine LP index
        # A session whose backlog passes this share of the hard limit gets conflated data.
        self.conflate_bytes = max(cfg.server.max_send_buffer_bytes // 4, 16 * 1024)
        # Skew inputs set since the last recorded batch (a list only while recording).
        self.skews_to_record: list[tuple[int, int]] | None = None
        # Expires run for orders and market-data requests read since the last recorded batch, as
        # (now_ns, how many of skews_to_record were set before it): kept only while recording.
        self.expires_to_record: list[tuple[int, int]] = []
        self._expire_for_read: Callable[[int], object] = engine.expire  # start_recording swaps it
        self.skews = [0] * len(cfg.instruments)  # the skew input last set per instrument
        self._conflated_since: dict[str, int] = {}
        # Reports for clients with no session in this process yet, in order (flush_orders).
        self._undelivered: dict[str, list[Outbound]] = {}
        self._fanout_ns = 0  # time spent writing market data in the current publish
        self._stages = {name: metrics.stage_latency.labels(stage=name) for name in ("orders", "publish", "fanout")}

    # --- engine views ----------------------------------------------------------------------------

    def _ladder(self, tier: int, instr: int):  # noqa: ANN202
        return self.engine.ladder(tier, instr)[0]

    def _on_exposure(self, instr: int, skew_ticks: int) -> None:
        self.engine.set_skew(instr, skew_ticks)
        self.skews[instr] = skew_ticks
        if self.skews_to_record is not None:
            self.skews_to_record.append((instr, skew_ticks))
        self.metrics.exposure.labels(instrument=self._symbols[instr]).set(self.positions.exposure(instr))

    def start_recording(self) -> None:
        """Keep what changes the engine between loop turns for the batch recorded next
        (:meth:`take_recorded`): the skew inputs set and the expires run for orders and
        market-data requests read, in order. Starts from the skews recovered from the journal."""
        self.skews_to_record = [(i, skew) for i, skew in enumerate(self.skews) if skew]
        self.expires_to_record = []
        self._expire_for_read = self._expire_recorded

    def _expire_recorded(self, now: int) -> None:
        self.engine.expire(now)
        self.expires_to_record.append((now, len(self.skews_to_record or ())))

    def take_recorded(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The skews and expires kept since the last call (see :meth:`start_recording`)."""
        skews, expires = self.skews_to_record or [], self.expires_to_record
        self.skews_to_record, self.expires_to_record = [], []
        return skews, expires

    def _set_halts(self, cfg: Config) -> None:
        """The operators' kill switches from the config (the desk's ``fault`` is not theirs)."""
        kill, halt = self.kill, cfg.halt
        self._halts_applied = halt
        kill.all = halt.all
        kill.clients = set(halt.clients)
        kill.instruments = {self.engine.instrument_index(symbol) for symbol in halt.instruments}
        kill.lps = set(halt.lps)
        if halt != HaltConfig():
            log.warning("kill switches on: %s", msgspec.json.encode(halt).decode())

    def reload_check(self, old: Config, new: Config) -> list[str]:
        """The hot reload's check (:func:`engine.reload.restart_needed`), except that the
        operators' kill switches apply even when the rest of the file must wait for a restart."""
        blocked = restart_needed(old, new)
        halt = new.halt
        if blocked and halt != self._halts_applied:
            unknown = set(halt.instruments) - set(self._symbols) or set(halt.lps) - set(self.engine.lp_names)
            if unknown:
                log.error("kill switches not applied: %s unknown until a restart", ", ".join(sorted(unknown)))
            else:
                self._set_halts(new)
        return blocked

    def reconfigure(self, new: Config) -> None:
        """Apply a hot reload that :func:`engine.reload.restart_needed` let through: tier
        pricing, LP haircuts and staleness, spike filters, skew steps, hedge thresholds, quote
        TTLs, client limits and routing. Quotes are repriced by the loop's next turn; orders
        read from now on see the new limits and routing."""
        self.engine.reconfigure(new)
        self.cfg = new
        for client in new.clients:
            if not client.market_data and self.clients[client.sender_comp_id].market_data:
                self.hub.drop_session(client.sender_comp_id)  # its subscriptions end with its entitlement
        self.clients = {c.sender_comp_id: c for c in new.clients}
        self.desk.reconfigure(new, self.clients)
        self.positions.skew_step_qty = [i.skew_step_qty for i in new.instruments]
        self.desk.checker.collar_ticks = [i.price_collar_ticks for i in new.instruments]
        self._set_halts(new)
        for instr in range(len(new.instruments)):
            skew = self.positions.skew_ticks(instr)
            if skew != self.skews[instr]:
                self._on_exposure(instr, skew)
        if self.skews_to_record is not None:
            log.warning("config reloaded while recording: a replay of the recording prices with one config")

    # --- LP order sessions -----------------------------------------------------------------------

    def add_lp_feed(self, feed: LpFeed) -> None:
        self.lp_feeds[self.engine.lp_index(feed.lp.name)] = feed

    def _lp_prices(self, instr: int, side: int) -> list[LpPrice]:
        book_side = 1 if side > 0 else 0  # a buy takes the LPs' asks
        tops = self.engine.lp_tops(instr, book_side, self.clock.now_ns())
        halted, names = self.kill.lps, self.engine.lp_names
        return [LpPrice(lp, price, qty) for lp, price, qty in tops if lp in self.lp_feeds and names[lp] not in halted]

    def _send_lp_order(self, lp: int, cl_ord_id: str, instr: int, side: int, qty: int, limit: int | None) -> bool:
        feed = self.lp_feeds.get(lp)
        if feed is None:
            return False
        qty_text = self._qty_grids[instr].to_text(qty).encode()
        limit_text = self._price_grids[instr].to_text(limit).encode() if limit is not None else None
        sent = feed.send_order(cl_ord_id, instr, side, qty_text, limit_text, self.clock.now_ns())
        if sent:
            self.metrics.lp_orders.labels(lp=feed.lp.name).inc()
        return sent

    def on_lp_execution(self, feed: LpFeed, msg: FixMessage) -> None:
        self.desk.on_lp_execution(self.engine.lp_index(feed.lp.name), msg, self.clock.now_ns())
        self.flush_orders()

    def on_lp_down(self, feed: LpFeed) -> None:
        self.desk.on_lp_down(self.engine.lp_index(feed.lp.name), self.clock.now_ns())
        self.flush_orders()

    # --- session callbacks -----------------------------------------------------------------------

    def on_logon(self, session: SessionHandle) -> None:
        comp_id = session.session_id.target_comp_id
        self.handles[comp_id] = session
        for out in self._undelivered.pop(comp_id, ()):
            self._send_report(session, out)
        session.set_socket_send_buffer(self.cfg.server.socket_send_buffer_bytes)
        self.metrics.sessions.labels(state="logged_on").set(sum(h.is_logged_on for h in self.handles.values()))

    def on_logout(self, session: SessionHandle, reason: str) -> None:
        comp_id = session.session_id.target_comp_id
        self.hub.drop_session(comp_id)
        self._conflated_since.pop(comp_id, None)  # its next session starts with a clean slate
        self.metrics.sessions.labels(state="logged_on").set(sum(h.is_logged_on for h in self.handles.values()))

    def from_app(self, message: FixMessage, session: SessionHandle) -> None:
        comp_id = session.session_id.target_comp_id
        client = self.clients[comp_id]
        now = self.clock.now_ns()
        kind = message.msg_type
        if kind in (b"D", b"V"):
            # The loop takes stale LP prices out once per turn; an order or a snapshot read in
            # between must not see them (a fill or a quote past the LP's staleness limit). While
            # recording, the expire is kept too: it reprices, and the replay must do the same.
            self._expire_for_read(now)
        if kind == b"V":
            self._on_md_request(client, message, session, now)
        elif kind == b"x":
            self._on_security_list_request(message, session)
        elif kind in (b"D", b"F", b"G", b"H"):
            if kind == b"D":
                self.metrics.orders.labels(client=comp_id).inc()
                self.desk.on_new_order(client, message, now)
            elif kind == b"F":
                self.desk.on_cancel(client, message, now)
            elif kind == b"G":
                self.desk.on_replace(client, message, now)
            else:
                self.desk.on_status(client, message, now)
            self.flush_orders()
        else:
            session.business_reject(message, _UNSUPPORTED_MSG_TYPE, "message type not supported by this gateway")

    def _on_md_request(self, client: ClientConfig, msg: FixMessage, session: SessionHandle, now: int) -> None:
        req_id = msg.get(262) or b""
        if not req_id:  # a reject (Y) or any data must name the request: nothing to answer with but 35=j
            session.business_reject(msg, _FIELD_MISSING, "MDReqID (262) is required")
            return
        if session.session.state is not SessionState.ACTIVE:
            # Read after we sent a Logout (a slow consumer, say): it gets no more market data,
            # and no subscription that would outlive the session.
            log.info("%s: MarketDataRequest %r while logging out, ignored", client.sender_comp_id, req_id)
            return
        if not client.market_data:
            refused = MdReject(req_id, MdRejectReason.INSUFFICIENT_PERMISSIONS, "market data not enabled")
            session.send(b"Y", refused.body())
            return
        if msg.get(263) != b"2":  # (an unsubscribe names no symbols that matter)
            disabled = [sym for sym in msg.get_all(55) if sym in self._disabled_symbols]
            if disabled:  # as unknown: the security list leaves them out, and they are never priced
                refused = MdReject(req_id, MdRejectReason.UNKNOWN_SYMBOL, f"unknown symbol {disabled[0].decode()}")
                session.send(b"Y", refused.body())
                return
        snapshots, reject = self.hub.on_request(client.sender_comp_id, self._tier_index[client.tier], msg, now)
        if reject is not None:
            session.send(b"Y", reject.body())
        for md_req_id, body in snapshots:
            session.send_shared(SharedBody(((262, md_req_id),), body))

    def _on_security_list_request(self, msg: FixMessage, session: SessionHandle) -> None:
        """SecurityList (y) in FIX 4.4's fields (fixserver.security_list)."""
        if not msg.get(320):  # the list must name the request it answers
            session.business_reject(msg, _FIELD_MISSING, "SecurityReqID (320) is required")
            return
        session.send(b"y", security_list(self.cfg.instruments, msg, b"SL-%d" % self.clock.now_ns()))

    # --- per batch ---------------------------------------------------------------------------------

    def flush_orders(self) -> None:
        """Journal commit, then the reports: the desk enforces that order."""
        for out in self.desk.flush():
            handle = self.handles.get(out.client)
            if handle is None:
                # Not logged on since this process started (a resting order filled, or an order
                # at an LP was closed, after a restart): sent when it logs on.
                log.info("report for %s, which is not logged on: sent at its next logon", out.client)
                self._undelivered.setdefault(out.client, []).append(out)
            else:
                self._send_report(handle, out)

    def _send_report(self, handle: SessionHandle, out: Outbound) -> None:
        if out.msg_type == b"8":
            body = dict(out.body)
            if body.get(150) == b"F":
                self.metrics.fills.labels(client=out.client, route=out.route).inc()
            elif body.get(150) == b"8":
                self.metrics.rejects.labels(client=out.client, reason=body.get(103, b"?").decode()).inc()
        # Stored by the session before it is written, so a client that was away gets it
        # again by ResendRequest (43=Y) after its next logon.
        handle.send(out.msg_type, out.body)

    def on_batch(self, now_ns: int, timed: bool = True) -> None:
        """After the engine repriced: routes past their budget, resting orders, then market data.

        ``timed``: observe the orders, publish and fanout stages (batches of LP updates; the
        idle turns that only expire quotes would dilute them)."""
        started = time.perf_counter_ns()
        self.desk.poll(now_ns)
        self.desk.on_quotes(now_ns)
        self.flush_orders()
        encoded = time.perf_counter_ns()
        self._fanout_ns = 0
        self.hub.publish(now_ns, writable=lambda comp_id: self._writable(str(comp_id), now_ns), deliver=self._deliver)
        if timed:
            # Publish and fanout interleave (each session is written once its bodies are ready):
            # fanout is the time spent writing, publish the rest.
            fanout = self._fanout_ns
            stages = self._stages
            stages["orders"].observe((encoded - started) / 1e9)
            stages["publish"].observe((time.perf_counter_ns() - encoded - fanout) / 1e9)
            stages["fanout"].observe(fanout / 1e9)

    def _deliver(self, comp_id: Hashable, bodies: list[tuple[bytes, PreparedBody]]) -> None:
        """One session's market data of this publish, written now (before the next session is
        visited, so the first client does not wait for the last one's encoding)."""
        started = time.perf_counter_ns()
        handle = self.handles.get(str(comp_id))
        if handle is not None:  # and ACTIVE: the hub delivers only to sessions _writable accepted
            try:
                handle.send_market_data(bodies)
            except Exception:
                # The hub counts these updates as sent: a client that missed them must not apply
                # the next X to a stale book, so it reconnects and starts from a snapshot. The
                # other sessions go on.
                log.exception("%s: market data could not be sent; dropping the connection", comp_id)
                handle.abort("market data could not be sent")
        self._fanout_ns += time.perf_counter_ns() - started

    def _writable(self, comp_id: str, now_ns: int) -> bool:
        """May this session take market data now? Slow sessions are conflated, then logged out."""
        handle = self.handles.get(comp_id)
        if handle is None or handle.session.state is not SessionState.ACTIVE:
            return False  # not logged on, or being logged out (slow or otherwise): no market data
        backlog = handle.buffered_bytes
        if backlog <= self.conflate_bytes:
            self._conflated_since.pop(comp_id, None)
            return True
        since = self._conflated_since.setdefault(comp_id, now_ns)
        server = self.cfg.server
        over_cap = backlog > server.max_send_buffer_bytes
        if not over_cap and now_ns - since <= server.max_conflation_s * 1_000_000_000:
            self.metrics.conflated.labels(client=comp_id).inc()
            return False
        behind = f"slow consumer: {backlog} bytes behind for {(now_ns - since) / 1e9:.1f}s"
        self._conflated_since.pop(comp_id, None)
        self.metrics.slow_logouts.labels(client=comp_id).inc()
        if over_cap:
            # Past the hard cap nothing more is queued, not even a Logout. The session keeps its
            # sequence numbers; the client recovers on its next logon.
            handle.abort(behind)
        else:
            # Conflated too long: a FIX Logout, queued behind the backlog. A client that catches
            # up reads it and goes; one that does not is dropped when the Logout handshake times
            # out and the connection's close grace ends (fixserver.transport).
            log.warning("%s: %s; logging it out", comp_id, behind)
            handle.logout(behind)
        return False


@dataclass
class GatewayOptions:
    port: int | None = None  # None: the config's server.port; 0: any free port
    metrics_port: int | None = None  # None: the config's; 0: any free port; -1: no endpoint
    state_dir: Path | None = None  # where the FIX store and journal live (default: the config's paths)
    run_seconds: float | None = None  # stop by itself after this long (None: until stopped)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    bound: dict[str, int] = field(default_factory=dict)  # filled: {"fix": port, "metrics": port}
    gateway: Gateway | None = None  # set once running: for in-process tests and tools
    market: str = "sim"  # "sim": in-process simulated LPs; "fix": the configured LPs over FIX 4.4
    lp_ports: dict[str, int] = field(default_factory=dict)  # override LP ports by name ("fix")
    record_path: Path | None = None  # record every applied batch (feeds/recording.py format)
    quote_hash: str | None = None  # set when stopped, if recording: digest of every published tier quote
    config_path: Path | None = None  # reload this file on change or SIGHUP (None: no reloading)


async def serve(cfg: Config, sim: SimConfig, options: GatewayOptions, stop: asyncio.Event) -> None:
    """Run the gateway until ``stop`` is set (or ``options.run_seconds`` pass)."""
    clock = SystemClock()
    state = options.state_dir
    store_path = (state / "fix_store.sqlite") if state else Path(cfg.server.store_path)
    journal_path = (state / "journal.sqlite") if state else Path(cfg.server.journal_path)
    message_log_path = (state / "fix_messages.log") if state else Path(cfg.server.message_log)
    message_log = MessageLog(message_log_path) if state or cfg.server.message_log else None
    store_path.parent.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    engine = Engine(cfg)
    if options.market == "fix":
        # Compile the LP decode kernel before the clock starts, not on the first LP read.
        decoder_compile_s = md_decode.warm_up()
        log.info("LP market-data decoder ready in %.2fs", decoder_compile_s)
    journal = Journal(journal_path)
    # The journal counts prices and quantities in each symbol's ticks and steps: with other ones
    # in the config, recovered orders and positions would be read at other prices. Refuse.
    changed = journal.adopt_grids({i.symbol: (i.tick_size, i.qty_step) for i in cfg.instruments})
    if changed:
        journal.close()
        raise ConfigError(changed, str(journal_path))
    gateway = options.gateway = Gateway(cfg, engine, journal, metrics, clock, lp_orders=options.market == "fix")
    restored = gateway.desk.recover(gateway.clients, now_ns=clock.now_ns())
    acceptor = Acceptor.from_config(cfg, gateway, store_factory=SqliteStoreFactory(store_path), port=options.port)
    for handle in acceptor.handles.values():
        handle.message_log = message_log
    await acceptor.start()
    options.bound["fix"] = acceptor.port
    metrics_server = None
    if options.metrics_port != -1:
        port = cfg.metrics.port if options.metrics_port is None else options.metrics_port
        metrics_server = metrics.serve(cfg.metrics.host, port)
        options.bound["metrics"] = metrics_server.server_address[1]
    log.info(
        "gateway up: FIX %s:%d, metrics %s, engine compiled in %.2fs, %d resting orders restored",
        cfg.server.host, acceptor.port, options.bound.get("metrics", "off"), engine.compile_seconds, restored,
    )  # fmt: skip
    reload_task: asyncio.Future[None] | None = None
    if options.config_path is not None:
        reloads = metrics.config_reloads
        reloader = ConfigReloader(
            options.config_path, cfg, on_change=lambda old, new: gateway.reconfigure(new),
            on_result=lambda ok: reloads.labels(result="ok" if ok else "refused").inc(), check=gateway.reload_check,
            on_signal=message_log.reopen if message_log is not None else None,
        )  # fmt: skip
        reload_task = asyncio.ensure_future(reloader.watch(stop))
    options.ready.set()

    batch = UpdateBatch(4096)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.run_seconds if options.run_seconds else None
    # The loop sleeps on one future per turn, resolved by the idle timer or by the first LP read
    # that adds rows. Resolving it only schedules the loop's next turn, so the turn runs after
    # every socket that was readable at the same time has been read: one batch for all of them.
    wakeup: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not wakeup.done():
            wakeup.set_result(None)

    rows_ready_ns = 0  # when the first LP rows of the coming batch were decoded

    def on_rows() -> None:
        nonlocal rows_ready_ns
        if not rows_ready_ns:
            rows_ready_ns = time.perf_counter_ns()
        wake()
    feeds: list[LpFeed] = []
    initiators: list[Initiator] = []
    sim_feed: SimFeed | None = None
    if options.market == "fix":
        # Each read of an LP socket appends rows and wakes the loop; the loop applies everything
        # that arrived since its last turn in one kernel call (the batch design).
        for lp in cfg.lps:
            if not lp.enabled:
                continue
            if lp.name in options.lp_ports:
                lp = msgspec.structs.replace(lp, port=options.lp_ports[lp.name])
            feed = LpFeed(cfg, lp, batch, clock, on_rows=on_rows,
                          on_execution=gateway.on_lp_execution, on_down=gateway.on_lp_down)  # fmt: skip
            gateway.add_lp_feed(feed)
            feeds.append(feed)
            initiators.append(feed.initiator(backoff_initial_s=0.2, backoff_max_s=5.0))
        for initiator in initiators:
            initiator.handle.message_log = message_log
            await initiator.start()
        idle_s = 0.05  # also the staleness check's resolution
    else:
        sim_feed = SimFeed(cfg, sim)
        idle_s = sim_feed.step_ms / 1000
    # The LPs' sessions as the loop and the metrics see them, over FIX or simulated alike.
    lp_links: Sequence[LpFeed | SimLpStatus] = feeds if sim_feed is None else sim_feed.lps
    # Counts the engine, the feeds and the acceptor keep, read when Prometheus scrapes.
    metrics.attach(engine=engine, feeds=lp_links, acceptor=acceptor, kill=gateway.kill, desk=gateway.desk)
    recorder = recorder_for(options.record_path, cfg, clock.now_ns()) if options.record_path else None
    if recorder is not None:
        gateway.start_recording()
    # The digest a replay of the recording must reproduce; it costs ~35 µs per batch, so only
    # when there is a recording to compare it with.
    hasher = QuoteHasher(len(cfg.tiers), len(cfg.instruments)) if recorder is not None else None
    # Everything allocated so far (Numba, numpy, the config, compiled kernels: ~110k objects) lives
    # as long as the process. Frozen, the collector no longer re-scans it in a full collection,
    # which took 35-40 ms here: a stall of the whole loop each time one ran.
    gc.collect()
    gc.freeze()
    stop_watch = asyncio.ensure_future(stop.wait())  # a stop wakes the loop at once
    stop_watch.add_done_callback(lambda _: wake())
    # Per batch of LP updates: "wait" from the first rows decoded to the turn that applies them
    # (the loop finishing other work), "engine", then the gateway's "orders", "publish" and
    # "fanout" (on_batch). Together, the gateway's share of a tick-to-quote.
    wait_latency = metrics.stage_latency.labels(stage="wait")
    engine_latency = metrics.stage_latency.labels(stage="engine")
    lp_up = [(link, metrics.lp_up.labels(lp=link.lp.name)) for link in lp_links]
    lp_shown: list[bool | None] = [None] * len(lp_up)  # what each gauge shows
    try:
        next_wake = loop.time()
        while not stop.is_set() and (deadline is None or loop.time() < deadline):
            now = clock.now_ns()
            if rows_ready_ns:
                wait_latency.observe((time.perf_counter_ns() - rows_ready_ns) / 1e9)
                rows_ready_ns = 0
            if sim_feed is not None:
                sim_feed.step(batch, now)
            if recorder is not None:
                # Empty batches too (each turn also expires), with the skews set and the expires
                # run for orders and market-data requests since the last.
                recorder.record(batch, now, *gateway.take_recorded())
            started = time.perf_counter_ns()
            rows = batch.n > 0
            engine.apply(batch, now)
            batch.clear()
            engine.expire(now)
            if rows:
                engine_latency.observe((time.perf_counter_ns() - started) / 1e9)
            gateway.on_batch(now, timed=rows)
            if hasher is not None:  # after the quotes went out (fills only mark skew; prices are as published)
                hasher.update(engine)
            for n, (link, gauge) in enumerate(lp_up):
                if link.up is not lp_shown[n]:  # a gauge write takes a lock: only on a change
                    lp_shown[n] = link.up
                    gauge.set(1 if link.up else 0)
            next_wake += idle_s
            delay = next_wake - loop.time()
            if delay < 0:  # we fell behind: do not try to catch up with a burst
                next_wake = loop.time()
                delay = 0
            woke_at = loop.time() + delay
            # Sleep until the idle timer, a stop or the first LP rows (rows that arrived during
            # this turn, e.g. from an order callback, make the next turn start at once).
            wakeup = loop.create_future()
            if batch.n:
                wakeup.set_result(None)
            timer = loop.call_later(delay, wake)
            await wakeup
            timer.cancel()
            if loop.time() >= woke_at:
                metrics.loop_lag.observe(max(0.0, loop.time() - woke_at))
            else:
                next_wake = loop.time()
    finally:
        stop_watch.cancel()
        if reload_task is not None:
            reload_task.cancel()
            await asyncio.gather(reload_task, return_exceptions=True)
        if recorder is not None and hasher is not None:
            recorder.close()
            options.quote_hash = hasher.hexdigest()
            log.info("recorded %d batches (%d rows) to %s", recorder.batches, recorder.rows, options.record_path)
            log.info("quote hash %s (%d quote changes)", options.quote_hash, hasher.changes)
        for initiator in initiators:
            await initiator.stop(logout_timeout_s=0.5)
        await acceptor.stop()
        journal.close()
        if message_log is not None:
            message_log.close()
        if metrics_server is not None:
            metrics_server.shutdown()
        log.info("gateway stopped")
