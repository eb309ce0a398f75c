"""The order side of the client gateway: D / F / H in, ExecutionReports (8) and
OrderCancelRejects (9) out. Sans-I/O: messages and ``now_ns`` in, outbound messages out.

Durability by construction: the handlers only *queue* reports. :meth:`OrderDesk.flush` commits
the journal (one group commit for everything queued since the last flush) and only then returns
the reports for sending, so no client ever holds an execution report for a fill we could lose.

Failing closed: each event (an order, a cancel, one LP report's consequence, a resting order's
match) is one unit. If anything in it fails (the journal's disk, say), its journal writes, its
position moves and its queued reports are all taken back, and the client gets a definite answer:
a new order is rejected, a cancel is refused (the order keeps working), a resting order keeps
resting. An LP's fill cannot be taken back: if it cannot be recorded for its client it becomes
the house's, the route stops and the client's order is closed with the reason. If even that
cannot be journaled, or the group commit fails, trading halts (the global kill switch) and the
error log is the record an operator reconciles from.

Routing, per tier (``routing`` in ``[[tiers]]``) unless a client sets its own:

* ``internalise`` (B-book): filled against the client's tier prices; the house takes the other side.
* ``a_book``: passed on to the LPs by :class:`risk.routing.Router` (best LP first, the remainder
  to the next LP after a last-look reject or a partial fill, within ``routing.budget_ms``). The
  client is charged the LP's price worsened by the tier's markup, never worse than its limit.
  A market order's limit is the tier price the client saw when it ordered, worsened by the
  instrument's ``price_collar_ticks``: the LPs get that less the markup as their limit, so the
  slippage is bounded (no tier price then: rejected). With a collar of 0 a market order goes to
  the LPs without a limit and the client pays whatever they fill at, plus the markup.
  A DAY/GTC limit order is routed at once, then rests here and is routed again whenever the tier
  price reaches it. A FOK order is reported only if the LPs filled all of it; until then its LP
  fills are the house's, journaled as they come; if the LPs filled only part, the house keeps that
  part and the client gets a reject.
* ``hybrid``: an order up to ``hybrid_threshold`` steps is internalised; a larger IOC/market order
  internalises that many steps and routes the rest; a larger FOK or resting order is routed whole.

Auto-hedge: when the house position in an instrument passes its ``hedge_threshold``, the desk
routes an order for the whole position to the LPs (one hedge in flight per instrument). Hedges
and any LP fill nobody waits for any more (a late answer after the budget) are journaled as
orders of the house (client ``__house__``), so a restart recovers the house position too.

An LP fill that is not a whole number of quantity steps (500 where the step is 1000, or 2500) is
split: its whole steps go to the route's owner as any fill; the part below one step is the
house's, journaled at once as an odd lot (the exact fraction of a step, at the LP's price rounded
against the house, with the LP's text) and held in :attr:`PositionBook.odd_lots`. Positions,
skew and hedges stay in whole steps, so an odd lot is not hedged: a warning names the LP and its
text, and ``odd_lot_fills`` counts them for the operator. The route never sends that step again
(see :mod:`risk.routing`): the client's order is short of it, and its remainder is cancelled (or
rests, for a resting order) like any unfilled part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

from engine.config import ClientConfig, Config, Routing
from engine.execution import Execution, Order, OrdType, TimeInForce, execute, fill_at_quote, match_resting, rests
from engine.fixedpoint import DecimalFormatError, Grid, OffGridError, Rounding, parse_decimal
from engine.journal import HOUSE_CLIENT, OPEN_STATUSES, BatchLost, Journal, JournalOrder
from fixserver.marketdata import QuoteLookup
from fixserver.message import FixMessage
from fixserver.session import business_reject_body, format_utc_timestamp
from risk import BUY, PositionBook, PreTradeChecker, RejectReason
from risk.routing import (
    ChildOrder,
    LateFill,
    LpOrderStats,
    RouteDone,
    RouteEvent,
    RouteFill,
    Router,
    client_price,
    lp_limit,
)

__all__ = ["HOUSE", "Outbound", "OrderDesk"]

log = logging.getLogger("lagg.orders")

Ladder = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]
Body = list[tuple[int, bytes]]

# FIX 103 OrdRejReason
_UNKNOWN_SYMBOL = b"1"
_DUPLICATE = b"6"
_INCORRECT_QTY = b"13"
_OTHER = b"99"

_NO_SYMBOL = b"[N/A]"  # FIX's placeholder for a Symbol (55) a report must carry but the order had none
_ORD_TYPES = frozenset(t.value for t in OrdType)
# FIX 4.4's values of Side (54), OrdType (40) and TimeInForce (59), as its dictionary lists them:
# what a report may echo of a client's order. A client validating with that dictionary refuses
# a report carrying any other value, so it would never learn what became of its order.
_FIX44_SIDES = frozenset(b"%c" % c for c in b"123456789ABCDEFG")
_FIX44_ORD_TYPES = frozenset("1 2 3 4 6 7 8 9 D E G I J K L M P".split())
_FIX44_TIFS = frozenset("01234567")
# BusinessRejectReason (380)
_BR_OTHER = b"0"
_BR_FIELD_MISSING = b"5"  # conditionally required field missing
_INT64_MAX = 2**63 - 1  # the journal's integers are SQLite's: 64-bit signed

HOUSE = HOUSE_CLIENT  # the journal's client for the house's own orders (hedges, late LP fills)


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message for one client session (by its CompID)."""

    client: str
    msg_type: bytes
    body: Body
    route: str = ""  # a fill's route ("internal" or the LP's name), for metrics; never sent


@dataclass
class _Resting:
    order_id: str
    client: ClientConfig
    order: Order
    instr: int
    tier: int
    cl_ord_id: str
    leaves: int
    # Decided once, when the order is accepted (see _to_route): a hybrid client's small order is
    # internalised whether it fills at once or rests; a routed one goes to the LPs each time.
    routed: bool
    retry_after_ns: int = 0  # a routed resting order waits this long after a failed route


@dataclass
class _Routed:
    """A client order (or part of one) out at the LPs."""

    order_id: str
    client: ClientConfig
    echo: _Echo
    order: Order
    instr: int
    tier: int
    cum: int  # filled so far (all routes, internal part included), steps
    cost: int
    bound: int | None = None  # the worst price the client pays for this route's LP fills (None: any)
    # FOK: the LP fills, (qty, client px, lp px, lp), that the house holds until the LPs filled all
    # of it; journaled as they come, on the house order ``held_by`` (made with the first fill).
    held: list[tuple[int, int, int, int]] | None = None
    held_by: str | None = None
    broken: str | None = None  # an LP fill could not be recorded for the client: close it when the route ends


class OrderDesk:
    """Handles clients' orders; owns the resting orders and feeds positions and skew."""

    def __init__(
        self,
        cfg: Config,
        quote_of: Callable[[int, int], Ladder],
        journal: Journal,
        positions: PositionBook,
        checker: PreTradeChecker,
        resolve_quote: Callable[[bytes, int, int, int], QuoteLookup | str] | None = None,
        on_exposure: Callable[[int, int], None] | None = None,
        router: Router | None = None,
    ) -> None:
        """``quote_of(tier, instr)`` gives the tier's ladder; ``resolve_quote(id, tier, now, ttl)``
        resolves a QuoteID (the market-data hub's); ``on_exposure(instr, skew_ticks)`` feeds the
        inventory skew back to pricing after fills; ``router`` reaches the LPs (None: no LP order
        sessions, so A-book routing and hedging are off)."""
        self.cfg = cfg
        self._quote_of = quote_of
        self._resolve_quote = resolve_quote
        self._on_exposure = on_exposure or (lambda instr, skew: None)
        self.journal = journal
        self.positions = positions
        self.checker = checker
        self._symbols = {i.symbol.encode(): n for n, i in enumerate(cfg.instruments) if i.enabled}
        self._instruments = {i.symbol: n for n, i in enumerate(cfg.instruments)}  # journaled symbols, enabled or not
        self._price_grids: list[Grid] = [i.price_grid() for i in cfg.instruments]
        self._qty_grids: list[Grid] = [i.qty_grid() for i in cfg.instruments]
        self._tiers = {t.name: n for n, t in enumerate(cfg.tiers)}
        self._resting: dict[str, _Resting] = {}
        self._pending: list[Outbound] = []
        self.router = router
        if router is not None:
            router.may_route = self._may_route
        self._lp_names = [lp.name for lp in cfg.lps]
        self._routed: dict[str, _Routed] = {}
        self._hedges: dict[str, tuple[int, int]] = {}  # house order id -> (instrument, side)
        self._budget_ns = cfg.routing.budget_ms * 1_000_000
        # Instruments whose house position moved in the current event -> may it start a hedge.
        # Skew and hedges follow once the event stands (a hedge at an LP cannot be taken back).
        self._exposure_due: dict[int, bool] = {}
        self.odd_lot_fills = 0  # LP fills with a part below one step, booked to the house

    def reconfigure(self, cfg: Config, clients: dict[str, ClientConfig]) -> None:
        """A hot reload (:func:`engine.reload.restart_needed` let it through): tiers, instruments
        and routing are read from ``cfg`` from now on, and working orders take their clients' new
        limits and switches (a resting fill is checked against them)."""
        self.cfg = cfg
        for rest in self._resting.values():
            rest.client = clients.get(rest.client.sender_comp_id, rest.client)
        for routed in self._routed.values():
            routed.client = clients.get(routed.client.sender_comp_id, routed.client)

    # --- the durable hand-off ------------------------------------------------------------------

    def flush(self) -> list[Outbound]:
        """Commit the journal, then return every report queued since the last flush."""
        try:
            self.journal.commit()
        except BatchLost as e:
            self._batch_lost(e)
            return []
        out, self._pending = self._pending, []
        return out

    # --- failing closed --------------------------------------------------------------------------

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One event: its journal writes, position moves and queued reports all stand, or none do."""
        queued = len(self._pending)
        mark = self.positions.mark()
        try:
            with self.journal.atomic():
                yield
        except BaseException:
            del self._pending[queued:]  # first, so that no failure below can let them go out
            self.positions.undo(mark)
            raise
        finally:
            self.positions.release(mark)

    def _failed(self, what: str, error: Exception) -> None:
        """Log a failed (and rolled back) event; a lost batch also halts trading."""
        log.error("%s failed and was rolled back", what, exc_info=error)
        if isinstance(error, BatchLost):
            self._batch_lost(error)

    def _batch_lost(self, error: BatchLost) -> None:
        """What the last commit would have made durable is gone: none of its reports may go out,
        and the desk's state no longer matches the journal, so trading stops for an operator."""
        log.critical("%s: %d reports withheld; trading halted until an operator reconciles and restarts",
                     error, len(self._pending))  # fmt: skip
        self._pending.clear()
        self.checker.kill.fault = f"journal batch lost: {error}"

    def _halt(self, why: str) -> None:
        log.critical("%s; trading halted until an operator reconciles and restarts", why)
        self.checker.kill.fault = why

    # --- NewOrderSingle ------------------------------------------------------------------------

    def on_new_order(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> None:
        if self._unanswerable(client, msg):
            return
        try:
            with self._atomic():
                self._new_order(client, msg, now_ns)
        except Exception as e:
            self._failed(f"order {msg.get_str(11)!r} of {client.sender_comp_id}", e)
            self._refuse(client, msg, now_ns)
        self._settle(now_ns)

    def _refuse(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> None:
        """A new order whose handling failed (and was rolled back): nothing was executed, and the
        client is told so. Journaled if the journal takes it, sent either way."""
        cl_ord_id = msg.get_str(11) or ""
        echo = _Echo.of_request(msg)
        text = "order not accepted: it could not be recorded, nothing was executed; please retry"
        order_id = "NONE"
        try:
            with self._atomic():
                if cl_ord_id and not self.journal.has_cl_ord_id(client.sender_comp_id, cl_ord_id):
                    order_id = self.journal.new_order(
                        client.sender_comp_id, cl_ord_id, (msg.get(55) or b"").decode("ascii", "replace"),
                        1 if echo.side == b"1" else -1, echo.ord_type or "?", echo.tif, 0, None, now_ns,
                        status="8", text=text,
                    )  # fmt: skip
        except Exception as e:
            self._failed("journaling a reject", e)
            order_id = "NONE"
        self._report(client, echo, order_id, b"8", b"8", 0, 0, 0, now_ns, reject=(_OTHER, text))

    def _new_order(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> None:
        cl_ord_id = msg.get_str(11) or ""
        symbol = msg.get(55) or b""
        side_raw = msg.get(54)
        side = 1 if side_raw == b"1" else -1
        ord_type_raw = (msg.get(40) or b"").decode("ascii", "replace")
        tif_raw = (msg.get(59) or b"0").decode("ascii", "replace")
        # A market order has no price: a stray 44 on one is ignored (not echoed, not a limit), as
        # FIX 4.4 counterparties expect.
        price_raw = msg.get(44) if ord_type_raw != OrdType.MARKET.value else None
        echo = _Echo.of_request(msg)
        if price_raw is None:
            echo = replace(echo, price=None)

        def reject(code: bytes, text: str, instr: int | None = None, qty: int = 0, price: int | None = None) -> None:
            order_id = "NONE"
            if cl_ord_id and not self.journal.has_cl_ord_id(client.sender_comp_id, cl_ord_id):
                order_id = self.journal.new_order(
                    client.sender_comp_id, cl_ord_id, symbol.decode("ascii", "replace"), side, ord_type_raw or "?",
                    tif_raw, qty, price, now_ns, status="8", text=text,
                )  # fmt: skip
            self._report(client, echo, order_id, b"8", b"8", 0, 0, 0, now_ns, reject=(code, text))

        if not client.trading:
            return reject(_OTHER, "trading is not enabled for this session")
        if not cl_ord_id:
            return reject(_OTHER, "ClOrdID (11) is required")
        if self.journal.has_cl_ord_id(client.sender_comp_id, cl_ord_id):
            if msg.get(43) == b"Y" or msg.get(97) == b"Y":
                # The client resends an order it never saw answered: it gets the order's state
                # now (150=I), not a reject that would read as "your order did not go in".
                return self._status(client, msg, now_ns)
            return self._report(
                client, echo, "NONE", b"8", b"8", 0, 0, 0, now_ns, reject=(_DUPLICATE, "duplicate ClOrdID")
            )
        instr = self._symbols.get(symbol)
        if instr is None:
            if not symbol:
                return reject(_UNKNOWN_SYMBOL, "Symbol (55) is required")
            return reject(_UNKNOWN_SYMBOL, f"unknown symbol {symbol.decode('ascii', 'replace')}")
        if side_raw not in (b"1", b"2"):
            return reject(_OTHER, "side (54) must be 1 (buy) or 2 (sell)")
        try:
            ord_type = OrdType(ord_type_raw)
        except ValueError:
            return reject(_OTHER, "order type (40) must be 1 (market), 2 (limit) or D (previously quoted)", instr)
        try:
            tif = TimeInForce(tif_raw)
        except ValueError:
            return reject(_OTHER, "time in force (59) must be 0, 1, 3 or 4", instr)
        try:
            qty = self._qty_grids[instr].to_steps(msg.get(38) or b"")
        except (OffGridError, DecimalFormatError):
            step = self._qty_grids[instr].step_text
            return reject(_INCORRECT_QTY, f"quantity must be a positive multiple of {step}", instr)
        if qty <= 0:
            return reject(_INCORRECT_QTY, "quantity must be positive", instr)
        if qty > _INT64_MAX:  # the journal's integers are 64-bit
            return reject(_INCORRECT_QTY, "quantity (38) is out of range", instr)
        price: int | None = None
        if ord_type is OrdType.LIMIT and price_raw is None:
            return reject(_OTHER, "a limit order needs a price (44)", instr, qty)
        if price_raw is not None:
            try:
                price = self._price_grids[instr].to_steps(price_raw)
            except (OffGridError, DecimalFormatError):
                tick = self._price_grids[instr].step_text
                return reject(_OTHER, f"price must be a multiple of the tick size {tick}", instr, qty)
            if abs(price) > _INT64_MAX:
                return reject(_OTHER, "price (44) is out of range", instr, qty)
        tier = self._tiers[client.tier]
        to_route = self._to_route(client, ord_type, tif, qty)
        if to_route and self.router is None:
            return reject(_OTHER, "orders for LPs cannot be routed: no LP order sessions", instr, qty, price)
        order = Order(side, qty, ord_type, tif, price)
        bids, asks = self._quote_of(tier, instr)
        market = (asks if side == 1 else bids)[:1]
        working = self._working(client.sender_comp_id, instr) if client.limits.max_position else (0, 0)
        decision = self.checker.check(
            client.sender_comp_id, client.limits, instr, side, qty, now_ns,
            limit_price=price, market_price=market[0][0] if market else None, working=working,
        )  # fmt: skip
        if not decision.ok:
            assert decision.reason is not None
            return reject(b"%d" % decision.reason.ord_rej_reason, decision.text, instr, qty, price)
        bound = price  # the worst price the client may be charged for what the LPs fill
        if to_route and ord_type is OrdType.MARKET and self.cfg.instruments[instr].price_collar_ticks:
            # A market order at the LPs is bounded by the price the client saw plus the collar.
            if not market:
                return reject(_OTHER, "no price available: a market order needs a tier price", instr, qty)
            bound = market[0][0] + side * self.cfg.instruments[instr].price_collar_ticks

        if ord_type is OrdType.PREVIOUSLY_QUOTED:
            execution = self._previously_quoted(msg, order, tier, instr, now_ns)
        elif to_route == qty:
            execution = Execution()  # all of it goes to the LPs
        elif to_route:
            # Hybrid: the internal part fills what it can now; the LPs get the rest.
            part = Order(side, qty - to_route, ord_type, TimeInForce.IOC, price)
            execution = execute(part, bids, asks, self.cfg.tiers[tier].mode)
            if execution.reject is not None:
                execution = Execution()
        else:
            execution = execute(order, bids, asks, self.cfg.tiers[tier].mode)
        if execution.reject is not None:
            return reject(_OTHER, execution.reject, instr, qty, price)

        order_id = self.journal.new_order(
            client.sender_comp_id, cl_ord_id, symbol.decode(), side, ord_type.value, tif.value, qty, price, now_ns
        )
        if to_route:
            limit = bound
            if ord_type is OrdType.PREVIOUSLY_QUOTED:
                limit = execution.fills[0].price  # the quoted price is the most the client pays
                execution = Execution()
            cum, cost = self._apply(
                client, echo, order_id, order, instr, execution, now_ns, cum_before=0, cost_before=0, final=False
            )
            routed = _Routed(order_id, client, echo, order, instr, tier, cum, cost)
            if tif is TimeInForce.FOK:
                routed.held = []
            self._route(routed, qty - cum, limit, now_ns)
            return None
        self._apply(client, echo, order_id, order, instr, execution, now_ns, cum_before=0, cost_before=0)
        if execution.resting:
            self._resting[order_id] = _Resting(
                order_id, client, order, instr, tier, cl_ord_id, execution.resting, routed=False
            )

    def _working(self, client: str, instr: int) -> tuple[int, int]:
        """The (buy, sell) steps still open on the client's working orders in ``instr``: resting
        here or out at the LPs. A scan, done only for clients with a position limit."""
        buy = sell = 0
        for order_id, rest in self._resting.items():
            if rest.client.sender_comp_id == client and rest.instr == instr and order_id not in self._routed:
                if rest.order.side == BUY:
                    buy += rest.leaves
                else:
                    sell += rest.leaves
        for r in self._routed.values():
            if r.client.sender_comp_id == client and r.instr == instr:
                if r.order.side == BUY:
                    buy += r.order.qty - r.cum
                else:
                    sell += r.order.qty - r.cum
        return buy, sell

    def _previously_quoted(self, msg: FixMessage, order: Order, tier: int, instr: int, now_ns: int) -> Execution:
        quote_id = msg.get(117)
        if quote_id is None or self._resolve_quote is None:
            return Execution(reject="QuoteID (117) is required for previously-quoted orders")
        ttl_ns = self.cfg.tiers[tier].quote_ttl_ms * 1_000_000
        hit = self._resolve_quote(quote_id, tier, now_ns, ttl_ns)
        if isinstance(hit, str):
            return Execution(reject=hit)
        if hit.instrument != instr:
            return Execution(reject="QuoteID is for another symbol")
        if hit.side != (1 if order.side == 1 else 0):  # a buy hits the ask
            return Execution(reject="QuoteID is on the other side")
        return fill_at_quote(order, hit.price, hit.qty)

    def _apply(
        self,
        client: ClientConfig,
        echo: _Echo,
        order_id: str,
        order: Order,
        instr: int,
        execution: Execution,
        now_ns: int,
        cum_before: int,
        cost_before: int,
        final: bool = True,
    ) -> tuple[int, int]:
        """Journal internal fills and queue their reports; update positions and skew. Returns the
        order's cumulative quantity and cost. ``final=False``: more may come from the LPs."""
        cum, cost = cum_before, cost_before
        total = order.qty
        if not execution.fills and execution.resting and cum_before == 0:
            self._report(client, echo, order_id, b"0", b"0", 0, total, 0, now_ns, instr=instr)
        for fill in execution.fills:
            cum, cost = self._fill(client, echo, order_id, order, instr, fill.qty, fill.price, None, cum, cost, now_ns)
        if execution.fills:
            self._exposure_changed(instr, now_ns)
        unfilled = total - cum
        if final and unfilled and not execution.resting:
            # IOC/market remainder: cancelled, and the client is told so explicitly.
            self._cancel_remainder(client, echo, order_id, instr, cum, cost, now_ns, "unfilled remainder cancelled")
        return cum, cost

    def _fill(
        self, client: ClientConfig, echo: _Echo, order_id: str, order: Order, instr: int, qty: int, price: int,
        lp: int | None, cum: int, cost: int, now_ns: int,
    ) -> tuple[int, int]:  # fmt: skip
        """One fill of a client order: journal, position, report. ``lp`` None = internalised."""
        cum += qty
        cost += qty * price
        # CumQty + LeavesQty = OrderQty while working; an IOC remainder is zeroed by the cancel
        # report that follows.
        status = b"2" if cum == order.qty else b"1"
        route = "internal" if lp is None else self._lp_names[lp]
        exec_id = self.journal.fill(order_id, qty, price, route, now_ns, status.decode())
        self.positions.on_client_fill(client.sender_comp_id, instr, order.side, qty, price, lp is None)
        self._report(
            client, echo, order_id, b"F", status, cum, order.qty - cum, cost, now_ns,
            last=(qty, price), exec_id=exec_id, instr=instr, route=route,
        )  # fmt: skip
        return cum, cost

    def _cancel_remainder(
        self, client: ClientConfig, echo: _Echo, order_id: str, instr: int, cum: int, cost: int, now_ns: int, why: str,
        acked: bool = False, record: bool = True,
    ) -> None:  # fmt: skip
        """The unfilled rest of an order is over: cancelled, or rejected if nothing filled and the
        client was never told the order was accepted (``acked``). ``record=False``: the report
        only (the journal failed)."""
        if cum == 0 and not acked:
            if record:
                self.journal.set_status(order_id, "8", now_ns, why)
            self._report(client, echo, order_id, b"8", b"8", 0, 0, 0, now_ns, reject=(_OTHER, why), instr=instr)
            return
        if record:
            self.journal.set_status(order_id, "4", now_ns, why)
        self._report(client, echo, order_id, b"4", b"4", cum, 0, cost, now_ns, instr=instr, text=why)

    # --- routing to LPs ----------------------------------------------------------------------------

    def _to_route(self, client: ClientConfig, ord_type: OrdType, tif: TimeInForce, qty: int) -> int:
        """How many of the order's steps go to the LPs (0: internalise it all)."""
        routing, threshold = self.cfg.routing_of(client)
        if routing is Routing.INTERNALISE:
            return 0
        if routing is Routing.A_BOOK:
            return qty
        if qty <= threshold:
            return 0
        whole = rests(ord_type, tif) or tif is TimeInForce.FOK or ord_type is OrdType.PREVIOUSLY_QUOTED
        return qty if whole else qty - threshold

    def _route(self, routed: _Routed, qty: int, client_limit: int | None, now_ns: int) -> None:
        assert self.router is not None
        self._routed[routed.order_id] = routed
        routed.bound = client_limit
        limit = lp_limit(self.cfg.tiers[routed.tier], routed.order.side, client_limit)
        events = self.router.start(routed.order_id, routed.instr, routed.order.side, qty, limit, now_ns,
                                   self._budget_ns)  # fmt: skip
        self._on_route_events(events, now_ns)

    def on_lp_execution(self, lp: int, msg: FixMessage, now_ns: int) -> None:
        """An LP's ExecutionReport for one of our orders at it."""
        if self.router is None:
            return
        cl_ord_id = msg.get_str(11) or ""
        child = self.router.child_order(cl_ord_id, lp)  # another LP's word on it is not a fill of ours
        if child is None:
            return
        last_qty, last_px, sub_step = 0, None, Fraction(0)
        qty_text, px_text = msg.get(32), msg.get(31)
        if msg.get(150) in (b"F", b"1", b"2") and qty_text is not None and px_text is not None:
            read = self._read_lp_fill(lp, cl_ord_id, child, qty_text, px_text)
            if isinstance(read, str):
                # A fill we cannot read may still be a fill: sending the rest to another LP could
                # fill it twice, so the route stops here and the operator reconciles with the LP.
                log.error("LP %s fill for %s unreadable (32=%r 31=%r): %s; route stopped",
                          self._lp_names[lp], cl_ord_id, qty_text, px_text, read)  # fmt: skip
                self._on_route_events(self.router.abandon(lp, cl_ord_id, read), now_ns)
                self._settle(now_ns)
                return
            last_qty, sub_step, last_px, house_px = read
            if sub_step:
                lp_fill = f"32={qty_text.decode('ascii', 'replace')} 31={px_text.decode('ascii', 'replace')}"
                self._odd_lot(lp, cl_ord_id, child, sub_step, house_px, lp_fill, now_ns)
        status = msg.get(39) or b""
        text = msg.get_str(58) or ""
        events = self.router.on_execution(lp, cl_ord_id, status, last_qty, last_px, text, now_ns, sub_step=sub_step)
        self._on_route_events(events, now_ns)
        self._settle(now_ns)

    def _read_lp_fill(
        self, lp: int, cl_ord_id: str, child: ChildOrder, qty_text: bytes, px_text: bytes
    ) -> tuple[int, Fraction, int, int] | str:
        """An LP fill as (whole steps, the part of a step on top of them, price, the house's
        price), prices in ticks; or why it cannot be read.

        An LP's fill is a fact, so a value off our grids is never dropped. The price is rounded
        in the favour of whoever we filled for (a client: it is charged that price plus the
        markup; the house's own hedges and late fills: against the house, so its books never
        look better than the LP's); the house's price, for a part below one step, always against
        the house. A quantity off the grid is split into whole steps and the part of a step above
        them, the house's. Either is logged with the LP's exact text, which its own trade report
        also holds.
        """
        instr = child.instr
        qty_grid, price_grid = self._qty_grids[instr], self._price_grids[instr]
        for_client = not child.orphan and child.key not in self._hedges
        # A buy for a client rounds down (it pays less); a buy of the house's rounds up.
        px_rounding = Rounding.DOWN if (child.side == BUY) == for_client else Rounding.UP
        house_rounding = Rounding.UP if child.side == BUY else Rounding.DOWN
        try:
            steps = _exact_steps(qty_grid, qty_text)
            price, px_exact = _to_grid(price_grid, px_text, px_rounding)
            house_price, _ = _to_grid(price_grid, px_text, house_rounding)
        except DecimalFormatError as e:
            return f"unreadable fill ({e})"
        qty = steps.numerator // steps.denominator
        sub_step = steps - qty
        if not (0 <= qty <= _INT64_MAX and abs(price) <= _INT64_MAX and abs(house_price) <= _INT64_MAX):
            return "fill quantity or price out of range"
        if sub_step:
            log.warning(
                "LP %s filled %s: 32=%s 31=%s is not a whole number of quantity steps (%s): the order gets %s"
                " at %s, the house the remaining %s of a step (odd lot) at %s",
                self._lp_names[lp], cl_ord_id, qty_text.decode("ascii", "replace"),
                px_text.decode("ascii", "replace"), qty_grid.step_text, qty_grid.to_text(qty),
                price_grid.to_text(price), sub_step, price_grid.to_text(house_price),
            )  # fmt: skip
        elif not px_exact:
            log.warning(
                "LP %s filled %s: 32=%s 31=%s is off the grids (qty step %s, tick %s); recorded as %s at %s"
                " (price rounded %s)",
                self._lp_names[lp], cl_ord_id, qty_text.decode("ascii", "replace"),
                px_text.decode("ascii", "replace"), qty_grid.step_text, price_grid.step_text,
                qty_grid.to_text(qty), price_grid.to_text(price),
                "in the client's favour" if for_client else "against the house",
            )  # fmt: skip
        return qty, sub_step, price, house_price

    def _odd_lot(
        self, lp: int, cl_ord_id: str, child: ChildOrder, qty: Fraction, price: int, lp_fill: str, now_ns: int
    ) -> None:
        """The part below one step of an LP fill: the house's, whoever the whole steps are for.

        It happened whatever becomes of the rest of the report: journaled in an event of its
        own, and if even that fails, held in memory and trading halted, like a fill that cannot
        be recorded at all.
        """
        self.odd_lot_fills += 1
        symbol = self.cfg.instruments[child.instr].symbol
        lp_name = self._lp_names[lp]
        try:
            with self._atomic():
                self.journal.odd_lot(symbol, child.side, qty, price, lp_name, cl_ord_id, lp_fill, now_ns)
                self.positions.on_odd_lot(child.instr, child.side, qty)
                self._exposure_changed(child.instr, now_ns)  # odd lots that add up to a step are hedged
        except Exception as e:
            self._failed("journaling an LP fill's part below one step as the house's", e)
            self.positions.on_odd_lot(child.instr, child.side, qty)
            self._halt(f"UNJOURNALED LP FILL: {lp_name} {lp_fill} for {cl_ord_id}: {qty} of a step of {symbol}")

    def on_lp_down(self, lp: int, now_ns: int) -> None:
        if self.router is not None:
            self._on_route_events(self.router.on_lp_down(lp, now_ns), now_ns)
            self._settle(now_ns)

    def poll(self, now_ns: int) -> None:
        """Per loop turn: end routes whose time budget is spent."""
        if self.router is not None and len(self.router):
            self._on_route_events(self.router.poll(now_ns), now_ns)
            self._settle(now_ns)

    def _on_route_events(self, events: list[RouteEvent], now_ns: int) -> None:
        """Each event is one unit (see the module doc); a failed one never stops the rest."""
        for event in events:
            if isinstance(event, RouteDone) and event.key in self._routed:
                r = self._routed.pop(event.key)
                try:
                    with self._atomic():
                        self._on_route_done(r, event, now_ns)
                except Exception as e:
                    self._failed(f"end of route {event.key}", e)
                    self._close_failed(r, "the order could not be completed", now_ns)
                continue
            try:
                with self._atomic():
                    self._on_route_event(event, now_ns)
            except Exception as e:
                self._failed(f"route event {event}", e)
                if isinstance(event, RouteDone):
                    hedge = self._hedges.pop(event.key, None)  # its status stays open: a restart closes it
                    if hedge is not None:
                        self._exposure_changed(hedge[0], now_ns, hedge=False)
                else:
                    self._lp_fill_unrecorded(event, now_ns)

    def _on_route_event(self, event: RouteFill | LateFill | RouteDone, now_ns: int) -> None:
        if isinstance(event, LateFill):
            why = "late LP fill"
            self._house_fill(event.instr, event.side, event.qty, event.price, event.lp, now_ns, why)
        elif isinstance(event, RouteFill):
            self._on_route_fill(event, now_ns)
        elif event.key in self._hedges:
            instr = self._hedges[event.key][0]
            status = "2" if event.unfilled == 0 else ("4" if event.filled else "8")
            text = f"auto-hedge: {event.reason}" if event.reason else "auto-hedge"
            self.journal.set_status(event.key, status, now_ns, text)
            del self._hedges[event.key]
            self._exposure_changed(instr, now_ns, hedge=False)

    def _lp_fill_unrecorded(self, event: RouteFill | LateFill, now_ns: int) -> None:
        """An LP fill whose recording failed (and was rolled back). It happened all the same: it
        becomes the house's, journaled on an order of its own; a client it was for can no longer
        be filled consistently, so its route stops and its order is closed when the route ends."""
        if isinstance(event, LateFill):
            instr, side = event.instr, event.side
        elif event.key in self._hedges:
            instr, side = self._hedges[event.key]
        else:
            r = self._routed[event.key]
            instr, side = r.instr, r.order.side
            r.broken = f"an LP fill for it could not be recorded ({self._lp_names[event.lp]})"
        why = "LP fill that could not be recorded for its order"
        try:
            with self._atomic():
                self._house_fill(instr, side, event.qty, event.price, event.lp, now_ns, why)
        except Exception as e:
            self._failed("journaling an LP fill as the house's", e)
            self.positions.on_hedge_fill(instr, side, event.qty, event.price)
            self._exposure_changed(instr, now_ns)
            self._halt(
                f"UNJOURNALED LP FILL: {self._lp_names[event.lp]} {'bought' if side < 0 else 'sold'} us"
                f" {event.qty} steps of {self.cfg.instruments[instr].symbol} at {event.price} ticks"
            )
        if isinstance(event, RouteFill) and event.key in self._routed and self.router is not None:
            self._on_route_events(self.router.stop(event.key, "stopped: an LP fill could not be recorded"), now_ns)

    def _close_failed(self, r: _Routed, why: str, now_ns: int) -> None:
        """Close a client's routed order for good after a failure: what it has filled stands, the
        rest is cancelled (rejected if nothing filled), with the reason."""
        acked = self._resting.pop(r.order_id, None) is not None  # it rested: the client has its 150=0
        if r.held:
            self._exposure_changed(r.instr, now_ns)  # the house keeps a FOK's LP fills
        try:
            with self._atomic():
                self._cancel_remainder(r.client, r.echo, r.order_id, r.instr, r.cum, r.cost, now_ns, why, acked)
        except Exception as e:
            self._failed(f"closing order {r.order_id}", e)
            self._cancel_remainder(
                r.client, r.echo, r.order_id, r.instr, r.cum, r.cost, now_ns, why, acked, record=False
            )
            self._halt(f"order {r.order_id} of {r.client.sender_comp_id} closed ({why}) but not journaled")

    def _on_route_fill(self, event: RouteFill, now_ns: int) -> None:
        if event.key in self._hedges:
            instr = self._hedges[event.key][0]
            row = self.journal.order(event.key)
            assert row is not None
            status = "2" if row.cum_qty + event.qty == row.qty else "1"
            self.journal.fill(event.key, event.qty, event.price, self._lp_names[event.lp], now_ns, status)
            self.positions.on_hedge_fill(instr, row.side, event.qty, event.price)
            return
        r = self._routed[event.key]
        price = client_price(self.cfg.tiers[r.tier], r.order.side, event.price, r.bound)
        if r.held is not None:
            self._hold(r, event, price, now_ns)
            return
        r.cum, r.cost = self._fill(
            r.client, r.echo, r.order_id, r.order, r.instr, event.qty, price, event.lp, r.cum, r.cost, now_ns
        )

    def _hold(self, r: _Routed, event: RouteFill, client_px: int, now_ns: int) -> None:
        """A fill for a FOK order: the house's trade with the LP until the LPs have filled all of it.

        Journaled now, like any LP fill, so that a crash before the route ends cannot lose it: the
        recovered house position has it, and the client's order is closed as cancelled.
        """
        assert r.held is not None
        held_by = r.held_by
        if held_by is None:
            why = f"fill-or-kill {r.order_id}: held until the LPs fill all of it"
            held_by = self._house_order("K", r.instr, r.order.side, r.order.qty, now_ns, why)
        held = sum(h[0] for h in r.held) + event.qty
        status = "2" if held == r.order.qty else "1"
        self.journal.fill(held_by, event.qty, event.price, self._lp_names[event.lp], now_ns, status)
        self.positions.on_hedge_fill(r.instr, r.order.side, event.qty, event.price)
        # Memory follows the journal, so that a failure above leaves no trace here.
        r.held_by = held_by
        r.held.append((event.qty, client_px, event.price, event.lp))
        # No skew or hedge for it yet: if the FOK completes, the house is flat again.

    def _on_route_done(self, r: _Routed, event: RouteDone, now_ns: int) -> None:
        if r.broken is not None:
            self._keep_held(r, now_ns)
            self._close_failed(r, f"order closed: {r.broken}", now_ns)
            return
        if r.held is not None:
            self._fok_done(r, event, now_ns)
            return
        if not r.order.rests:
            if event.unfilled:
                why = f"unfilled remainder cancelled: {event.reason}"
                self._cancel_remainder(r.client, r.echo, r.order_id, r.instr, r.cum, r.cost, now_ns, why)
            return
        leaves = r.order.qty - r.cum
        rest = self._resting.get(r.order_id)
        if leaves == 0:
            self._resting.pop(r.order_id, None)
        elif rest is None:
            # First attempt over: the rest works here, routed again when the tier price reaches it.
            if r.cum == 0:
                self._report(r.client, r.echo, r.order_id, b"0", b"0", 0, leaves, 0, now_ns, instr=r.instr)
            self._resting[r.order_id] = _Resting(
                r.order_id, r.client, r.order, r.instr, r.tier, r.echo.cl_ord_id, leaves, True,
                now_ns + self._budget_ns,
            )  # fmt: skip
        else:
            rest.leaves = leaves
            rest.retry_after_ns = now_ns + self._budget_ns

    def _fok_done(self, r: _Routed, event: RouteDone, now_ns: int) -> None:
        """A FOK route is over: the client gets all of it, or a reject and the house keeps the part."""
        assert r.held is not None
        if event.unfilled == 0:
            # The house passes what it holds to the client at the LPs' prices: a house order on
            # the other side balances the held one, so the journal (and a restart) says the same.
            assert r.held_by is not None
            why = f"fill-or-kill {r.order_id}: passed to the client"
            side = -r.order.side
            passed = self._house_order("T", r.instr, side, r.order.qty, now_ns, why)
            self.journal.set_status(r.held_by, "2", now_ns, why)
            cum, cost = r.cum, r.cost
            for qty, price, lp_price, lp in r.held:
                self.journal.fill(passed, qty, lp_price, "internal", now_ns, "2" if cum + qty == r.order.qty else "1")
                self.positions.on_hedge_fill(r.instr, side, qty, lp_price)
                cum, cost = self._fill(
                    r.client, r.echo, r.order_id, r.order, r.instr, qty, price, lp, cum, cost, now_ns
                )
            r.cum, r.cost = cum, cost
            return
        self._keep_held(r, now_ns)
        why = f"fill-or-kill: the LPs could not fill all of it ({event.reason})"
        self._cancel_remainder(r.client, r.echo, r.order_id, r.instr, 0, 0, now_ns, why)

    def _keep_held(self, r: _Routed, now_ns: int) -> None:
        """A FOK that will not complete: what the LPs filled for it stays the house's."""
        if r.held_by is not None:
            kept = f"fill-or-kill {r.order_id} not completed: the house keeps what the LPs filled"
            self.journal.set_status(r.held_by, "4", now_ns, kept)
            self._exposure_changed(r.instr, now_ns)

    def _house_fill(self, instr: int, side: int, qty: int, price: int, lp: int, now_ns: int, why: str) -> None:
        """An LP fill that belongs to no client: journal it as the house's and take the position."""
        order_id = self._house_order("L", instr, side, qty, now_ns, why)
        self.journal.fill(order_id, qty, price, self._lp_names[lp], now_ns, "2")
        self.positions.on_hedge_fill(instr, side, qty, price)
        self._exposure_changed(instr, now_ns)

    def _exposure_changed(self, instr: int, now_ns: int, hedge: bool = True) -> None:
        """The house position moved: skew (and perhaps a hedge) once the event stands."""
        self._exposure_due[instr] = self._exposure_due.get(instr, False) or hedge

    def _settle(self, now_ns: int) -> None:
        """After an event: feed the skew back to pricing, and hedge past the instrument's threshold."""
        while self._exposure_due:
            due, self._exposure_due = self._exposure_due, {}
            for instr, hedge in due.items():
                self._on_exposure(instr, self.positions.skew_ticks(instr))
                if hedge and self.router is not None and all(h[0] != instr for h in self._hedges.values()):
                    try:
                        with self._atomic():
                            self._hedge(instr, now_ns)
                    except Exception as e:
                        self._failed(f"auto-hedge of {self.cfg.instruments[instr].symbol}", e)

    def _hedge(self, instr: int, now_ns: int) -> None:
        assert self.router is not None
        need = self.positions.hedge_needed(instr, self.cfg.instruments[instr].hedge_threshold)
        if need == 0:
            return
        if self.checker.kill.halted(HOUSE, instr):
            # A halt stops the house's own orders too (after a fault, its positions are in doubt);
            # the next fill in the instrument once trading resumes hedges the whole position.
            log.warning("auto-hedge of %s (%+d steps) held: trading halted", self.cfg.instruments[instr].symbol, need)
            return
        side = 1 if need > 0 else -1
        order_id = self._house_order("H", instr, side, abs(need), now_ns, "auto-hedge")
        self._hedges[order_id] = (instr, side)
        events = self.router.start(order_id, instr, side, abs(need), None, now_ns, self._budget_ns)
        self._on_route_events(events, now_ns)

    @property
    def lp_order_stats(self) -> list[tuple[str, LpOrderStats]]:
        """Each LP's record with our orders (how they ended, how fast it answered), for the metrics."""
        if self.router is None:
            return []
        return list(zip(self._lp_names, self.router.lp_stats, strict=True))

    def _may_route(self, key: str, instr: int) -> bool:
        """Whether the owner of route ``key`` (a client's order, or the house's hedge) may still
        send orders to LPs: not while trading is halted for it or for the instrument."""
        routed = self._routed.get(key)
        return not self.checker.kill.halted(routed.client.sender_comp_id if routed is not None else HOUSE, instr)

    def _house_order(self, prefix: str, instr: int, side: int, qty: int, now_ns: int, text: str) -> str:
        """Journal an order of the house: a market IOC with a ClOrdID of its own (``prefix`` + id)."""
        symbol = self.cfg.instruments[instr].symbol
        return self.journal.new_order(
            HOUSE, self.journal.next_id(prefix), symbol, side, OrdType.MARKET.value, TimeInForce.IOC.value, qty,
            None, now_ns, text=text,
        )  # fmt: skip

    # --- resting orders ------------------------------------------------------------------------

    def on_quotes(self, now_ns: int) -> None:
        """Retry resting limit orders against the latest tier prices."""
        for rest in list(self._resting.values()):
            self._retry(rest, now_ns)
        self._settle(now_ns)

    def _retry(self, rest: _Resting, now_ns: int) -> None:
        """One resting limit order against its tier's price now: filled (or routed) if it crosses."""
        routed = rest.routed
        if routed and (rest.order_id in self._routed or now_ns < rest.retry_after_ns or self.router is None):
            return
        bids, asks = self._quote_of(rest.tier, rest.instr)
        execution = match_resting(rest.order, rest.leaves, bids, asks, self.cfg.tiers[rest.tier].mode)
        if not execution.fills:
            return
        client = rest.client
        decision = self.checker.check_fill(
            client.sender_comp_id, client.limits, rest.instr, rest.order.side, execution.filled
        )
        if decision.reason is RejectReason.KILL_SWITCH:
            return  # halted: it keeps resting, and fills when trading resumes
        try:
            with self._atomic():
                if decision.ok:
                    self._match(rest, execution, routed, now_ns)
                else:
                    self._cancel_resting(rest, f"cancelled: {decision.text}", now_ns)
        except Exception as e:
            self._failed(f"resting order {rest.order_id} (it keeps resting)", e)

    def _cancel_resting(self, rest: _Resting, why: str, now_ns: int) -> None:
        """The desk cancels a resting order (its client is told why)."""
        row = self.journal.order(rest.order_id)
        assert row is not None
        self.journal.set_status(rest.order_id, "4", now_ns, why)
        del self._resting[rest.order_id]
        echo = _Echo.of(row, self._qty_grids[rest.instr], self._price_grids[rest.instr])
        self._report(
            rest.client, echo, rest.order_id, b"4", b"4", row.cum_qty, 0, row.cost, now_ns, instr=rest.instr, text=why
        )

    def _match(self, rest: _Resting, execution: Execution, routed: bool, now_ns: int) -> None:
        row = self.journal.order(rest.order_id)
        assert row is not None
        echo = _Echo.of(row, self._qty_grids[rest.instr], self._price_grids[rest.instr])
        if routed:
            # The tier price reached the limit: the LPs get what would have filled here.
            r = _Routed(rest.order_id, rest.client, echo, rest.order, rest.instr, rest.tier, row.cum_qty, row.cost)
            self._route(r, execution.filled, rest.order.price, now_ns)
            return
        self._apply(rest.client, echo, rest.order_id, rest.order, rest.instr, execution, now_ns, row.cum_qty, row.cost)
        rest.leaves = execution.resting
        if rest.leaves == 0:
            del self._resting[rest.order_id]

    def recover(self, clients: dict[str, ClientConfig], now_ns: int | None = None) -> int:
        """After a restart: positions from journaled fills, resting orders from open orders.

        An order that was at an LP is closed, and its client's execution report for that is
        queued (sent by the next :meth:`flush`). ``now_ns`` stamps it (default: the order's last
        journaled time)."""
        symbols = {i.symbol: n for n, i in enumerate(self.cfg.instruments)}
        for f in self.journal.fills():
            instr = symbols.get(f.symbol)
            if instr is None:
                continue
            if f.client == HOUSE:
                self.positions.on_hedge_fill(instr, f.side, f.qty, f.price)
            else:
                self.positions.on_client_fill(f.client, instr, f.side, f.qty, f.price, f.route == "internal")
        for odd in self.journal.odd_lots():
            instr = symbols.get(odd.symbol)
            if instr is not None:
                self.positions.on_odd_lot(instr, odd.side, odd.qty)
        restored = 0
        for row in self.journal.open_orders():
            client = clients.get(row.client)
            instr = symbols.get(row.symbol)
            # Every open order was accepted, so its 40 and 59 are ones we know.
            if not rests(OrdType(row.ord_type), TimeInForce(row.tif)):
                # Only a route or a hedge is open across a restart: it was at an LP when we stopped,
                # and the LP session starts afresh, so its answer will not come. The LP's trade
                # report is where such an order is reconciled.
                log.warning("order %s (%s %s) was at an LP when the gateway stopped; closed as cancelled",
                            row.order_id, row.client, row.cl_ord_id)  # fmt: skip
                why = "gateway restarted while at an LP"
                at = row.updated_ns if now_ns is None else now_ns
                self.journal.set_status(row.order_id, "4", at, why)
                if client is not None and instr is not None:  # the house's own orders have no client
                    echo = _Echo.of(row, self._qty_grids[instr], self._price_grids[instr])
                    self._report(client, echo, row.order_id, b"4", b"4", row.cum_qty, 0, row.cost, at,
                                 instr=instr, text=why)  # fmt: skip
                elif row.client != HOUSE:
                    log.error("order %s of %s closed, but that client is no longer configured: no report queued",
                              row.order_id, row.client)  # fmt: skip
                continue
            if client is None or instr is None:
                continue
            order = Order(row.side, row.qty, OrdType.LIMIT, TimeInForce(row.tif), row.price)
            tier = self._tiers[client.tier]
            routed = self._to_route(client, OrdType.LIMIT, order.tif, row.qty) != 0  # as when it was accepted
            self._resting[row.order_id] = _Resting(
                row.order_id, client, order, instr, tier, row.cl_ord_id, row.qty - row.cum_qty, routed
            )
            restored += 1
        self.journal.commit()
        for instr in range(len(self.cfg.instruments)):
            if self.positions.exposure(instr):
                self._on_exposure(instr, self.positions.skew_ticks(instr))  # pricing resumes with its skew
        return restored

    # --- OrderCancelRequest / OrderStatusRequest -------------------------------------------------

    def on_cancel(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> None:
        if self._unanswerable(client, msg):
            return
        try:
            with self._atomic():
                self._cancel(client, msg, now_ns)
        except Exception as e:
            self._failed(f"cancel {msg.get_str(11)!r} of {client.sender_comp_id}", e)
            orig = msg.get_str(41) or ""
            order_id, status = "NONE", b"0"
            for rest in self._resting.values():  # from memory: the journal may be unreadable
                if rest.client.sender_comp_id == client.sender_comp_id and rest.cl_ord_id == orig:
                    order_id, status = rest.order_id, b"0" if rest.leaves == rest.order.qty else b"1"
            text = "the cancel could not be recorded: the order is still working; please retry"
            self._cancel_rejected(client, msg, order_id, status, b"1", _OTHER, text)

    def _cancel(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> None:
        cl_ord_id = msg.get_str(11) or ""
        orig = msg.get_str(41) or ""
        row = self.journal.order_by_cl_ord_id(client.sender_comp_id, orig)
        rest = self._resting.get(row.order_id) if row else None
        if row is None:
            return self._cancel_rejected(client, msg, "NONE", b"8", b"1", b"1", "unknown order")  # 102=1
        # 102=0: too late to cancel (for now, while a part of it is at an LP)
        status = row.status.encode()
        if rest is None:
            return self._cancel_rejected(client, msg, row.order_id, status, b"1", b"0", "order is no longer working")
        if row.order_id in self._routed:
            text = "part of the order is being filled at an LP; cancel again shortly"
            return self._cancel_rejected(client, msg, row.order_id, status, b"1", b"0", text)
        self.journal.set_status(row.order_id, "4", now_ns, "cancelled by client")
        del self._resting[row.order_id]
        echo = _Echo.of(row, self._qty_grids[rest.instr], self._price_grids[rest.instr], cl_ord_id=cl_ord_id)
        self._report(
            client, echo, row.order_id, b"4", b"4", row.cum_qty, 0, row.cost, now_ns,
            orig_cl_ord_id=orig, instr=rest.instr,
        )  # fmt: skip

    def on_replace(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> None:
        """OrderCancelReplaceRequest (35=G): a working limit order's new quantity and price.

        Only orders resting here can be replaced (a DAY or GTC limit; not while a part of it is
        out at an LP); side, symbol, order type and time in force stay as they are. The new
        order is checked like a new one (grids, limits, collar, halts); an accepted replace is
        journaled, answered with 150=5, and the order then fills at once if the new price crosses
        the tier's. A refusal is an OrderCancelReject (434=2); the order works on unchanged."""
        if self._unanswerable(client, msg):
            return
        try:
            with self._atomic():
                rest = self._replace(client, msg, now_ns)
        except Exception as e:
            self._failed(f"replace {msg.get_str(11)!r} of {client.sender_comp_id}", e)
            text = "the replace could not be recorded: the order works on unchanged; please retry"
            self._replace_refused(client, msg, None, _OTHER, text)
            return
        if rest is not None:
            self._retry(rest, now_ns)
        self._settle(now_ns)

    def _replace(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> _Resting | None:
        """The replace as one journal event; the order replaced (None: refused, and answered so)."""
        cl_ord_id = msg.get_str(11) or ""
        orig = msg.get_str(41) or ""
        row = self.journal.order_by_cl_ord_id(client.sender_comp_id, orig) if orig else None
        rest = self._resting.get(row.order_id) if row is not None else None

        def refuse(reason: bytes, text: str) -> _Resting | None:
            self._replace_refused(client, msg, row, reason, text)
            return None  # nothing replaced

        if not client.trading:
            return refuse(_OTHER, "trading is not enabled for this session")
        if not cl_ord_id:
            return refuse(_OTHER, "ClOrdID (11) is required")
        if row is None:
            return refuse(b"1", "unknown order")
        if rest is None:
            return refuse(b"0", "order is no longer working" if row.status not in OPEN_STATUSES else
                          "only a limit order resting here can be replaced")  # fmt: skip
        if row.order_id in self._routed:
            return refuse(b"0", "part of the order is being filled at an LP; replace again shortly")
        if self.journal.has_cl_ord_id(client.sender_comp_id, cl_ord_id):
            return refuse(b"6", "duplicate ClOrdID")
        order, instr = rest.order, rest.instr
        side = b"1" if order.side == BUY else b"2"
        unchanged = (
            (55, row.symbol.encode(), "Symbol (55)"), (54, side, "Side (54)"),
            (40, order.ord_type.value.encode(), "OrdType (40)"), (59, order.tif.value.encode(), "TimeInForce (59)"),
        )  # fmt: skip
        for tag, value, name in unchanged:
            if msg.get(tag, value) != value:
                return refuse(_OTHER, f"{name} cannot be changed by a replace")
        qty_grid, price_grid = self._qty_grids[instr], self._price_grids[instr]
        try:
            qty = qty_grid.to_steps(msg.get(38) or b"")
        except (OffGridError, DecimalFormatError):
            return refuse(_OTHER, f"quantity must be a positive multiple of {qty_grid.step_text}")
        if qty > _INT64_MAX:
            return refuse(_OTHER, "quantity (38) is out of range")
        if qty <= row.cum_qty:
            return refuse(_OTHER, f"quantity must be above the {qty_grid.to_text(row.cum_qty)} already filled")
        try:
            price = price_grid.to_steps(msg.get(44) or b"")
        except (OffGridError, DecimalFormatError):
            return refuse(_OTHER, f"a limit price (44) that is a multiple of the tick size {price_grid.step_text}")
        if abs(price) > _INT64_MAX:
            return refuse(_OTHER, "price (44) is out of range")
        limits = client.limits
        if limits.max_order_qty and qty > limits.max_order_qty:
            return refuse(_OTHER, f"order size limit (max {limits.max_order_qty} steps)")
        bids, asks = self._quote_of(rest.tier, instr)
        market = (asks if order.side == BUY else bids)[:1]
        working = (0, 0)
        if limits.max_position:  # the client's other working orders: this one is checked as replaced
            buy, sell = self._working(client.sender_comp_id, instr)
            working = (buy - rest.leaves, sell) if order.side == BUY else (buy, sell - rest.leaves)
        decision = self.checker.check(
            client.sender_comp_id, limits, instr, order.side, qty - row.cum_qty, now_ns,
            limit_price=price, market_price=market[0][0] if market else None, working=working,
        )  # fmt: skip
        if not decision.ok:
            return refuse(_OTHER, decision.text)
        self.journal.replace_order(row.order_id, cl_ord_id, qty, price, now_ns)
        replaced = self.journal.order(row.order_id)
        assert replaced is not None
        leaves = qty - row.cum_qty
        self._report(
            client, _Echo.of(replaced, qty_grid, price_grid), row.order_id, b"5", b"1" if row.cum_qty else b"0",
            row.cum_qty, leaves, row.cost, now_ns, orig_cl_ord_id=orig, instr=instr,
        )  # fmt: skip
        # Only now, with nothing left to fail: a rolled back event leaves the order as it was.
        rest.order = Order(order.side, qty, order.ord_type, order.tif, price)
        rest.cl_ord_id, rest.leaves = cl_ord_id, leaves
        return rest

    def _unanswerable(self, client: ClientConfig, msg: FixMessage) -> bool:
        """Whether ``msg`` lacks what every answer to it must carry (a new order's Side, a cancel's
        or replace's ClOrdID and OrigClOrdID); if so it gets a BusinessMessageReject (35=j)
        naming the field, the one answer FIX leaves for it, and nothing else happens (no order,
        no journal entry)."""
        kind = msg.msg_type
        problem = _side_problem(msg) if kind == b"D" else None
        if kind in (b"F", b"G"):
            missing = [name for tag, name in ((11, "ClOrdID (11)"), (41, "OrigClOrdID (41)")) if not msg.get(tag)]
            if missing:
                problem = (_BR_FIELD_MISSING, " and ".join(missing) + " required")
        if problem is None:
            return False
        self._business_reject(client, msg, *problem)
        return True

    def _business_reject(self, client: ClientConfig, msg: FixMessage, reason: bytes, text: str) -> None:
        """BusinessMessageReject (35=j) of ``msg``, naming its ClOrdID (379) if it has one."""
        body = business_reject_body(msg, reason, text.encode(), msg.get(11))
        self._pending.append(Outbound(client.sender_comp_id, b"j", body))

    def _replace_refused(
        self, client: ClientConfig, msg: FixMessage, row: JournalOrder | None, reason: bytes, text: str
    ) -> None:
        order_id, status = (row.order_id, row.status) if row is not None else ("NONE", "8")
        self._cancel_rejected(client, msg, order_id, status.encode(), b"2", reason, text)

    def _cancel_rejected(
        self, client: ClientConfig, msg: FixMessage, order_id: str, status: bytes, response_to: bytes, reason: bytes,
        text: str,
    ) -> None:  # fmt: skip
        """OrderCancelReject (35=9) of ``msg``, a cancel (434=1) or a replace (434=2): the order
        (37, 39 its status) works on; 102 and 58 say why."""
        body: Body = [
            (37, order_id.encode()), (11, msg.get(11) or b""), (41, msg.get(41) or b""), (39, status),
            (434, response_to), (102, reason), (58, text.encode()),
        ]  # fmt: skip
        self._pending.append(Outbound(client.sender_comp_id, b"9", body))

    def on_status(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> None:
        if self._unanswerable(client, msg):
            return
        try:
            self._status(client, msg, now_ns)
        except Exception as e:  # it only reads: nothing to roll back, and no answer we could stand by
            log.error("order status request %r of %s failed", msg.get_str(11), client.sender_comp_id, exc_info=e)

    def _status(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> None:
        cl_ord_id = msg.get_str(11) or ""
        row = self.journal.order_by_cl_ord_id(client.sender_comp_id, cl_ord_id)
        if row is None:
            problem = _side_problem(msg)  # an unknown order's report can only echo the client's Side
            if problem is not None:
                return self._business_reject(client, msg, _BR_OTHER, f"unknown order; {problem[1]}")
            echo = replace(_Echo.of_request(msg), qty=b"0", ord_type="", tif="", price=None)
            self._report(client, echo, "NONE", b"I", b"8", 0, 0, 0, now_ns, reject=(_OTHER, "unknown order"))
            return
        status = row.status.encode()
        text = row.text or None  # why it was rejected or cancelled
        instr = self._instruments.get(row.symbol)
        if instr is None:
            # Rejected for its symbol (unknown, or missing): nothing of it is on any grid.
            ord_type = row.ord_type if row.ord_type in _ORD_TYPES else ""
            echo = _Echo(row.cl_ord_id, row.symbol.encode() or _NO_SYMBOL, b"1" if row.side > 0 else b"2", b"0",
                         ord_type, row.tif, None)  # fmt: skip
            self._report(client, echo, row.order_id, b"I", status, 0, 0, 0, now_ns, text=text)
            return
        echo = _Echo.of(row, self._qty_grids[instr], self._price_grids[instr])
        working = row.order_id in self._resting or row.order_id in self._routed
        leaves = row.qty - row.cum_qty if working else 0  # CumQty + LeavesQty = OrderQty while it works
        self._report(
            client, echo, row.order_id, b"I", status, row.cum_qty, leaves, row.cost, now_ns, instr=instr, text=text
        )

    # --- reports -------------------------------------------------------------------------------

    def _report(
        self,
        client: ClientConfig,
        echo: _Echo,
        order_id: str,
        exec_type: bytes,
        status: bytes,
        cum: int,
        leaves: int,
        cost: int,
        now_ns: int,
        *,
        last: tuple[int, int] | None = None,
        exec_id: str | None = None,
        reject: tuple[bytes, str] | None = None,
        orig_cl_ord_id: str | None = None,
        instr: int | None = None,
        text: str | None = None,
        route: str = "",
    ) -> None:
        qty_grid = self._qty_grids[instr] if instr is not None else None
        price_grid = self._price_grids[instr] if instr is not None else None
        if exec_id is None:
            exec_id = self.journal.next_id("E")
        body: Body = [(37, order_id.encode())]
        if echo.cl_ord_id:  # an order without one is rejected with a report that cannot name it
            body.append((11, echo.cl_ord_id.encode()))
        if orig_cl_ord_id is not None:
            body.append((41, orig_cl_ord_id.encode()))
        body += [(17, exec_id.encode()), (150, exec_type), (39, status), (55, echo.symbol), (54, echo.side)]
        if echo.qty:
            body.append((38, echo.qty))
        if echo.ord_type:
            body.append((40, echo.ord_type.encode()))
        if echo.price is not None:
            body.append((44, echo.price))
        if echo.tif:
            body.append((59, echo.tif.encode()))
        if last is not None and qty_grid and price_grid:
            body += [(32, qty_grid.to_text(last[0]).encode()), (31, price_grid.to_text(last[1]).encode())]
        cum_text = qty_grid.to_text(cum).encode() if qty_grid else b"0"
        leaves_text = qty_grid.to_text(leaves).encode() if qty_grid else b"0"
        body += [(151, leaves_text), (14, cum_text), (6, _avg_px(cost, cum, price_grid))]
        body.append((60, format_utc_timestamp(now_ns)))
        if reject is not None:
            body += [(103, reject[0]), (58, reject[1].encode())]
        elif text:
            body.append((58, text.encode()))
        self._pending.append(Outbound(client.sender_comp_id, b"8", body, route))


@dataclass(frozen=True, slots=True)
class _Echo:
    """The order fields an execution report echoes back."""

    cl_ord_id: str
    symbol: bytes
    side: bytes
    qty: bytes
    ord_type: str
    tif: str
    price: bytes | None

    @classmethod
    def of_request(cls, msg: FixMessage) -> _Echo:
        """What a report may echo of a client's D or H as it came: each field that is there and
        a FIX 4.4 value; a missing Symbol as [N/A]. (A Side that is not one is answered before
        any report is made: see :meth:`OrderDesk._unanswerable`.)"""
        qty, price = msg.get(38) or b"", msg.get(44)
        ord_type = (msg.get(40) or b"").decode("ascii", "replace")
        tif = (msg.get(59) or b"0").decode("ascii", "replace")  # absent: DAY, as FIX defines
        return cls(
            msg.get_str(11) or "", msg.get(55) or _NO_SYMBOL, msg.get(54) or b"",
            qty if _is_decimal(qty) else b"", ord_type if ord_type in _FIX44_ORD_TYPES else "",
            tif if tif in _FIX44_TIFS else "", price if price is not None and _is_decimal(price) else None,
        )  # fmt: skip

    @classmethod
    def of(cls, row: JournalOrder, qty_grid: Grid, price_grid: Grid, cl_ord_id: str | None = None) -> _Echo:
        return cls(
            cl_ord_id or row.cl_ord_id, row.symbol.encode(), b"1" if row.side > 0 else b"2",
            qty_grid.to_text(row.qty).encode(), row.ord_type, row.tif,
            price_grid.to_text(row.price).encode() if row.price is not None else None,
        )  # fmt: skip


def _side_problem(msg: FixMessage) -> tuple[bytes, str] | None:
    """Why ``msg``'s Side (54) cannot go into a report (380 reason, text), or None if it can."""
    side = msg.get(54)
    if side is None:
        return _BR_FIELD_MISSING, "Side (54) is required"
    if side not in _FIX44_SIDES:
        return _BR_OTHER, f"Side (54) {side.decode('ascii', 'replace')!r} is not a FIX 4.4 side"
    return None


def _is_decimal(text: bytes) -> bool:
    try:
        parse_decimal(text)
    except DecimalFormatError:
        return False
    return True


def _to_grid(grid: Grid, text: bytes, rounding: Rounding) -> tuple[int, bool]:
    """``text`` in whole steps, rounded by ``rounding`` if it is off the grid; and whether it was on it."""
    try:
        return grid.to_steps(text), True
    except OffGridError:
        return grid.to_steps(text, rounding), False


def _exact_steps(grid: Grid, text: bytes) -> Fraction:
    """``text`` in steps of ``grid``, exactly (a fraction when it is off the grid)."""
    mantissa, scale = parse_decimal(text)
    # value / step = (m * 10**-s) / (M * 10**-S)
    return Fraction(mantissa, grid.step_mantissa) * Fraction(10) ** (grid.step_scale - scale)


def _avg_px(cost: int, cum: int, grid: Grid | None) -> bytes:
    """AvgPx (6): the exact VWAP of the fills, shown with four more decimals than the price."""
    if cum == 0 or grid is None:
        return b"0"
    ticks = Decimal(cost) / Decimal(cum)
    step = Decimal(grid.step_text)
    places = Decimal(1).scaleb(-(grid.decimals + 4))
    return str((ticks * step).quantize(places)).encode()
