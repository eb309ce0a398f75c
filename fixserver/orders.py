"""The order side of the client gateway: D / F / H in, ExecutionReports (8) and
OrderCancelRejects (9) out. Sans-I/O: messages and ``now_ns`` in, outbound messages out.

Durability by construction: the handlers only *queue* reports. :meth:`OrderDesk.flush` commits
the journal (one group commit for everything queued since the last flush) and only then returns
the reports for sending, so no client ever holds an execution report for a fill we could lose.

Routing: orders are internalised (B-book) against the client's tier prices. A-book and hybrid
routing need LP order sessions and are refused with a clear reason until those exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from engine.config import ClientConfig, Config, Routing
from engine.execution import Execution, Order, OrdType, TimeInForce, execute, fill_at_quote, match_resting
from engine.fixedpoint import DecimalFormatError, Grid, OffGridError
from engine.journal import Journal, JournalOrder
from fixserver.marketdata import QuoteLookup
from fixserver.message import FixMessage
from fixserver.session import format_utc_timestamp
from risk import PositionBook, PreTradeChecker

__all__ = ["Outbound", "OrderDesk"]

Ladder = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]
Body = list[tuple[int, bytes]]

# FIX 103 OrdRejReason
_UNKNOWN_SYMBOL = b"1"
_DUPLICATE = b"6"
_INCORRECT_QTY = b"13"
_OTHER = b"99"


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message for one client session (by its CompID)."""

    client: str
    msg_type: bytes
    body: Body


@dataclass
class _Resting:
    order_id: str
    client: ClientConfig
    order: Order
    instr: int
    tier: int
    cl_ord_id: str
    leaves: int


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
    ) -> None:
        """``quote_of(tier, instr)`` gives the tier's ladder; ``resolve_quote(id, tier, now, ttl)``
        resolves a QuoteID (the market-data hub's); ``on_exposure(instr, skew_ticks)`` feeds the
        inventory skew back to pricing after fills."""
        self.cfg = cfg
        self._quote_of = quote_of
        self._resolve_quote = resolve_quote
        self._on_exposure = on_exposure or (lambda instr, skew: None)
        self.journal = journal
        self.positions = positions
        self.checker = checker
        self._symbols = {i.symbol.encode(): n for n, i in enumerate(cfg.instruments) if i.enabled}
        self._price_grids: list[Grid] = [i.price_grid() for i in cfg.instruments]
        self._qty_grids: list[Grid] = [i.qty_grid() for i in cfg.instruments]
        self._tiers = {t.name: n for n, t in enumerate(cfg.tiers)}
        self._resting: dict[str, _Resting] = {}
        self._pending: list[Outbound] = []

    # --- the durable hand-off ------------------------------------------------------------------

    def flush(self) -> list[Outbound]:
        """Commit the journal, then return every report queued since the last flush."""
        self.journal.commit()
        out, self._pending = self._pending, []
        return out

    # --- NewOrderSingle ------------------------------------------------------------------------

    def on_new_order(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> None:
        cl_ord_id = msg.get_str(11) or ""
        symbol = msg.get(55) or b""
        side_raw = msg.get(54)
        side = 1 if side_raw == b"1" else -1
        ord_type_raw = (msg.get(40) or b"").decode("ascii", "replace")
        tif_raw = (msg.get(59) or b"0").decode("ascii", "replace")
        echo = _Echo(cl_ord_id, symbol, side_raw or b"", msg.get(38) or b"", ord_type_raw, tif_raw, msg.get(44))

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
            return self._report(
                client, echo, "NONE", b"8", b"8", 0, 0, 0, now_ns, reject=(_DUPLICATE, "duplicate ClOrdID")
            )
        instr = self._symbols.get(symbol)
        if instr is None:
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
        price: int | None = None
        price_raw = msg.get(44)
        if ord_type is OrdType.LIMIT and price_raw is None:
            return reject(_OTHER, "a limit order needs a price (44)", instr, qty)
        if price_raw is not None:
            try:
                price = self._price_grids[instr].to_steps(price_raw)
            except (OffGridError, DecimalFormatError):
                tick = self._price_grids[instr].step_text
                return reject(_OTHER, f"price must be a multiple of the tick size {tick}", instr, qty)
        if client.routing is not Routing.INTERNALISE:
            return reject(_OTHER, f"routing {client.routing.value!r} is not available yet", instr, qty, price)
        tier = self._tiers[client.tier]
        order = Order(side, qty, ord_type, tif, price)
        bids, asks = self._quote_of(tier, instr)
        market = (asks if side == 1 else bids)[:1]
        decision = self.checker.check(
            client.sender_comp_id, client.limits, instr, side, qty, now_ns,
            limit_price=price, market_price=market[0][0] if market else None,
        )  # fmt: skip
        if not decision.ok:
            assert decision.reason is not None
            return reject(b"%d" % decision.reason.ord_rej_reason, decision.text, instr, qty, price)

        if ord_type is OrdType.PREVIOUSLY_QUOTED:
            execution = self._previously_quoted(msg, order, tier, instr, now_ns)
        else:
            execution = execute(order, bids, asks, self.cfg.tiers[tier].mode)
        if execution.reject is not None:
            return reject(_OTHER, execution.reject, instr, qty, price)

        order_id = self.journal.new_order(
            client.sender_comp_id, cl_ord_id, symbol.decode(), side, ord_type.value, tif.value, qty, price, now_ns
        )
        self._apply(client, echo, order_id, order, instr, execution, now_ns, cum_before=0, cost_before=0)
        if execution.resting:
            self._resting[order_id] = _Resting(order_id, client, order, instr, tier, cl_ord_id, execution.resting)

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
    ) -> None:
        """Journal fills and queue their reports; update positions and skew."""
        cum, cost = cum_before, cost_before
        total = order.qty
        if not execution.fills and execution.resting and cum_before == 0:
            self._report(client, echo, order_id, b"0", b"0", 0, total, 0, now_ns, instr=instr)
        for fill in execution.fills:
            cum += fill.qty
            cost += fill.qty * fill.price
            # CumQty + LeavesQty = OrderQty while working; an IOC remainder is zeroed by the
            # cancel report that follows.
            leaves = total - cum
            status = b"2" if cum == total else b"1"
            exec_id = self.journal.fill(order_id, fill.qty, fill.price, "internal", now_ns, status.decode())
            self.positions.on_client_fill(client.sender_comp_id, instr, order.side, fill.qty, fill.price, True)
            self._report(
                client, echo, order_id, b"F", status, cum, leaves, cost, now_ns,
                last=(fill.qty, fill.price), exec_id=exec_id, instr=instr,
            )  # fmt: skip
        if execution.fills:
            self._on_exposure(instr, self.positions.skew_ticks(instr))
        unfilled = total - cum
        if unfilled and not execution.resting:
            # IOC/market remainder: cancelled, and the client is told so explicitly.
            self.journal.set_status(order_id, "4", now_ns, "unfilled remainder cancelled")
            self._report(client, echo, order_id, b"4", b"4", cum, 0, cost, now_ns, instr=instr)

    # --- resting orders ------------------------------------------------------------------------

    def on_quotes(self, now_ns: int) -> None:
        """Retry resting limit orders against the latest tier prices."""
        for rest in list(self._resting.values()):
            bids, asks = self._quote_of(rest.tier, rest.instr)
            execution = match_resting(rest.order, rest.leaves, bids, asks, self.cfg.tiers[rest.tier].mode)
            if not execution.fills:
                continue
            row = self.journal.order(rest.order_id)
            assert row is not None
            echo = _Echo.of(row, self._qty_grids[rest.instr], self._price_grids[rest.instr])
            self._apply(
                rest.client, echo, rest.order_id, rest.order, rest.instr, execution, now_ns, row.cum_qty, row.cost
            )
            rest.leaves = execution.resting
            if rest.leaves == 0:
                del self._resting[rest.order_id]

    def recover(self, clients: dict[str, ClientConfig]) -> int:
        """After a restart: positions from journaled fills, resting orders from open orders."""
        symbols = {i.symbol: n for n, i in enumerate(self.cfg.instruments)}
        for f in self.journal.fills():
            instr = symbols.get(f.symbol)
            if instr is not None:
                self.positions.on_client_fill(f.client, instr, f.side, f.qty, f.price, f.route == "internal")
        restored = 0
        for row in self.journal.open_orders():
            client = clients.get(row.client)
            instr = symbols.get(row.symbol)
            if client is None or instr is None or row.ord_type != OrdType.LIMIT.value:
                continue
            order = Order(row.side, row.qty, OrdType.LIMIT, TimeInForce(row.tif), row.price)
            tier = self._tiers[client.tier]
            self._resting[row.order_id] = _Resting(
                row.order_id, client, order, instr, tier, row.cl_ord_id, row.qty - row.cum_qty
            )
            restored += 1
        return restored

    # --- OrderCancelRequest / OrderStatusRequest -------------------------------------------------

    def on_cancel(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> None:
        cl_ord_id = msg.get_str(11) or ""
        orig = msg.get_str(41) or ""
        row = self.journal.order_by_cl_ord_id(client.sender_comp_id, orig)
        rest = self._resting.get(row.order_id) if row else None
        if row is None or rest is None:
            reason = b"1" if row is None else b"0"  # 102: 1 unknown order, 0 too late to cancel
            text = "unknown order" if row is None else "order is no longer working"
            body: Body = [
                (37, (row.order_id if row else "NONE").encode()), (11, cl_ord_id.encode()), (41, orig.encode()),
                (39, (row.status if row else "8").encode()), (434, b"1"), (102, reason), (58, text.encode()),
            ]  # fmt: skip
            self._pending.append(Outbound(client.sender_comp_id, b"9", body))
            return
        del self._resting[row.order_id]
        self.journal.set_status(row.order_id, "4", now_ns, "cancelled by client")
        echo = _Echo.of(row, self._qty_grids[rest.instr], self._price_grids[rest.instr], cl_ord_id=cl_ord_id)
        self._report(
            client, echo, row.order_id, b"4", b"4", row.cum_qty, 0, row.cost, now_ns,
            orig_cl_ord_id=orig, instr=rest.instr,
        )  # fmt: skip

    def on_status(self, client: ClientConfig, msg: FixMessage, now_ns: int) -> None:
        cl_ord_id = msg.get_str(11) or ""
        row = self.journal.order_by_cl_ord_id(client.sender_comp_id, cl_ord_id)
        if row is None:
            echo = _Echo(cl_ord_id, msg.get(55) or b"", msg.get(54) or b"", b"0", "", "", None)
            self._report(client, echo, "NONE", b"I", b"8", 0, 0, 0, now_ns, reject=(_OTHER, "unknown order"))
            return
        instr = self._symbols[row.symbol.encode()]
        echo = _Echo.of(row, self._qty_grids[instr], self._price_grids[instr])
        leaves = row.qty - row.cum_qty if row.order_id in self._resting else 0
        status = row.status.encode()
        self._report(client, echo, row.order_id, b"I", status, row.cum_qty, leaves, row.cost, now_ns, instr=instr)

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
    ) -> None:
        qty_grid = self._qty_grids[instr] if instr is not None else None
        price_grid = self._price_grids[instr] if instr is not None else None
        if exec_id is None:
            exec_id = self.journal.next_id("E")
        body: Body = [(37, order_id.encode()), (11, echo.cl_ord_id.encode())]
        if orig_cl_ord_id is not None:
            body.append((41, orig_cl_ord_id.encode()))
        body += [(17, exec_id.encode()), (150, exec_type), (39, status), (55, echo.symbol), (54, echo.side)]
        body += [(38, echo.qty)]
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
        self._pending.append(Outbound(client.sender_comp_id, b"8", body))


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
    def of(cls, row: JournalOrder, qty_grid: Grid, price_grid: Grid, cl_ord_id: str | None = None) -> _Echo:
        return cls(
            cl_ord_id or row.cl_ord_id, row.symbol.encode(), b"1" if row.side > 0 else b"2",
            qty_grid.to_text(row.qty).encode(), row.ord_type, row.tif,
            price_grid.to_text(row.price).encode() if row.price is not None else None,
        )  # fmt: skip


def _avg_px(cost: int, cum: int, grid: Grid | None) -> bytes:
    """AvgPx (6): the exact VWAP of the fills, shown with four more decimals than the price."""
    if cum == 0 or grid is None:
        return b"0"
    ticks = Decimal(cost) / Decimal(cum)
    step = Decimal(grid.step_text)
    places = Decimal(1).scaleb(-(grid.decimals + 4))
    return str((ticks * step).quantize(places)).encode()
