"""A-book routing: pass an order's quantity on to the LPs, best price first, within a time budget.

Sans-I/O. :class:`Router` is told the LPs' current best prices (a callable), sends child orders
through a callable, and is fed the LPs' execution reports and the time; it answers with events:

* :class:`RouteFill`: an LP filled part of a route; the owner fills its client (or its hedge).
* :class:`RouteDone`: the route is over; ``unfilled`` steps were not placed, with the reasons.
* :class:`LateFill`: an LP filled a child order *after* its route was over (the budget ran out
  while the LP was deciding). Nobody is waiting for it: the house holds that position.

A route sends its whole remaining quantity to the best LP that can still be tried (each LP once
per route). On a last-look reject, a partial fill, or the LP's session going away, the remainder
goes to the next-best LP, until it is all filled, no LP is left, or ``budget_ns`` has passed since
the route started. Prices are the LPs' own (no haircut): an order is what the LP fills at.

Quantities are whole steps. An LP may still fill a part of a step (500 of a step of 1000): its
owner books that part to the house, and tells the router (``sub_step``) so that the route never
sends again what an LP has filled. A child order whose LP filled ``f`` steps in all thus takes
``ceil(f)`` steps off the route: the next LP gets the whole steps that are still free, and the
route's owner gets only the whole steps (``RouteFill``), the remainder ending up unfilled.

What the *client* is charged for an LP fill is :func:`client_price`: the LP's price worsened by
the tier's markup, and never worse than the client's limit.

Execution quality, per LP (:attr:`Router.lp_stats`, :class:`LpOrderStats`): how each of our
orders there ended (filled, partly filled, rejected, no answer within the budget, session lost,
report unreadable) and how long the LP took to send its final report, kept as plain counts for
the metrics to read when scraped.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import ClassVar

from engine.config import MarkupUnit, TierConfig
from engine.execution import crosses
from risk.positions import BUY

__all__ = [
    "ChildOrder",
    "LP_ORDER_OUTCOMES",
    "LP_RESPONSE_BUCKETS_S",
    "LateFill",
    "LpOrderStats",
    "LpPrice",
    "RouteDone",
    "RouteEvent",
    "RouteFill",
    "Router",
    "client_price",
    "lp_limit",
    "markup_ticks",
]

# OrdStatus (39) values after which an LP sends nothing more for that order.
_TERMINAL = frozenset({b"2", b"3", b"4", b"8", b"C"})
# A child order whose route is over is remembered this long for fills that may still come.
_ORPHAN_KEEP_NS = 60 * 1_000_000_000


# How an order of ours at an LP ended, as far as its route is concerned: filled in full, filled
# in part (the rest cancelled), rejected (last look, or any final report with no fill), no
# final report within the route's budget, the LP's session lost while it was out, a report we
# could not read.
LP_ORDER_OUTCOMES = ("filled", "partial", "rejected", "no_answer", "session_lost", "unreadable")
# Upper bounds (seconds) of the LP response-time buckets: order sent -> the LP's final report.
LP_RESPONSE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class LpOrderStats:
    """One LP's record with our orders, kept as plain counts (read at scrape time, never reset)."""

    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LP_ORDER_OUTCOMES, 0))
    # Final reports per response-time bucket (LP_RESPONSE_BUCKETS_S, then one for longer): not
    # cumulative. Late ones (after the route gave up on the order) count too: the LP was that slow.
    response_buckets: list[int] = field(default_factory=lambda: [0] * (len(LP_RESPONSE_BUCKETS_S) + 1))
    response_sum_s: float = 0.0
    bucket_bounds_s: ClassVar[tuple[float, ...]] = LP_RESPONSE_BUCKETS_S

    def answered(self, seconds: float) -> None:
        self.response_buckets[bisect_left(LP_RESPONSE_BUCKETS_S, seconds)] += 1
        self.response_sum_s += seconds


@dataclass(frozen=True, slots=True)
class LpPrice:
    """An LP's best price on the side an order would take (asks for a buy), and its size there."""

    lp: int
    price: int
    qty: int


@dataclass(frozen=True, slots=True)
class RouteFill:
    key: str
    lp: int
    qty: int
    price: int  # the LP's price, in ticks


@dataclass(frozen=True, slots=True)
class RouteDone:
    key: str
    filled: int
    unfilled: int
    reason: str  # why something is unfilled ("" when all of it filled)


@dataclass(frozen=True, slots=True)
class LateFill:
    lp: int
    instr: int
    side: int
    qty: int
    price: int


@dataclass(frozen=True, slots=True)
class ChildOrder:
    """One of our orders at an LP, as its owner needs it to read the LP's report."""

    key: str  # the route's key
    instr: int
    side: int
    orphan: bool  # its route is over: a fill now is a LateFill, the house's


RouteEvent = RouteFill | RouteDone | LateFill
# send(lp, cl_ord_id, instr, side, qty, limit) -> False when that LP cannot take orders now.
SendOrder = Callable[[int, str, int, int, int, "int | None"], bool]


@dataclass
class _Route:
    key: str
    instr: int
    side: int
    qty: int
    limit: int | None
    deadline_ns: int
    filled: int = 0  # whole steps the LPs filled for the owner (RouteFill)
    spent: int = 0  # steps the LPs filled only in part (the house has those parts): never sent again
    tried: set[int] = field(default_factory=set)
    child: str | None = None
    attempts: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Child:
    cl_ord_id: str
    lp: int
    route: _Route
    qty: int
    sent_ns: int
    filled: int = 0
    sub_step: Fraction = Fraction(0)  # filled on top of ``filled``, below one step: the house's
    orphan: bool = False  # its route ended before the LP answered


class Router:
    """Routes in flight, keyed by their owner's key (an OrderID, or a hedge's id)."""

    def __init__(
        self,
        send: SendOrder,
        lp_prices: Callable[[int, int], Sequence[LpPrice]],
        lp_names: Sequence[str],
    ) -> None:
        """``lp_prices(instr, side)``: every LP that could take an order on ``side`` now."""
        self._send = send
        self._lp_prices = lp_prices
        self._lp_names = list(lp_names)
        self._routes: dict[str, _Route] = {}
        self._children: dict[str, _Child] = {}
        # Asked before each order of a route goes to an LP, with the route's key and instrument:
        # may its owner still trade? The order desk sets it to its kill switches, so a halt set
        # while a route is out stops the remainder going on to the next LP.
        self.may_route: Callable[[str, int], bool] = lambda key, instr: True
        self.lp_stats = [LpOrderStats() for _ in self._lp_names]  # by LP index

    def __contains__(self, key: str) -> bool:
        return key in self._routes

    def __len__(self) -> int:
        return len(self._routes)

    def instrument_of(self, cl_ord_id: str) -> int | None:
        """The instrument of one of our child orders (to read its report's decimals)."""
        child = self._children.get(cl_ord_id)
        return child.route.instr if child is not None else None

    def child_order(self, cl_ord_id: str, lp: int | None = None) -> ChildOrder | None:
        """Who one of our child orders belongs to (None: not one we know, forgotten, or, given
        ``lp``, not one at that LP)."""
        child = self._children.get(cl_ord_id)
        if child is None or (lp is not None and child.lp != lp):
            return None
        return ChildOrder(child.route.key, child.route.instr, child.route.side, child.orphan)

    def start(
        self, key: str, instr: int, side: int, qty: int, limit: int | None, now_ns: int, budget_ns: int
    ) -> list[RouteEvent]:
        """Route ``qty`` steps; ``limit`` is the worst LP price acceptable (None: any)."""
        if key in self._routes:
            raise ValueError(f"route {key} is already in flight")
        route = _Route(key, instr, side, qty, limit, now_ns + budget_ns)
        self._routes[key] = route
        return self._next(route, now_ns)

    def on_execution(
        self,
        lp: int,
        cl_ord_id: str,
        status: bytes,
        last_qty: int,
        last_px: int | None,
        text: str,
        now_ns: int,
        sub_step: Fraction = Fraction(0),
    ) -> list[RouteEvent]:
        """An LP's ExecutionReport for one of our child orders (unknown ids are ignored).

        ``last_qty`` is the whole steps of its fill (LastQty) and ``sub_step`` the part of a step
        it filled on top of them (0 <= sub_step < 1), which the owner has booked to the house.
        """
        child = self._children.get(cl_ord_id)
        if child is None or child.lp != lp:
            return []
        events: list[RouteEvent] = []
        route = child.route
        if sub_step > 0:
            child.sub_step += sub_step
        if last_qty > 0 and last_px is not None:
            child.filled += last_qty
            if child.orphan:
                events.append(LateFill(lp, route.instr, route.side, last_qty, last_px))
            else:
                route.filled += last_qty
                events.append(RouteFill(route.key, lp, last_qty, last_px))
        if status in _TERMINAL:
            del self._children[cl_ord_id]
            stats = self.lp_stats[lp]
            stats.answered((now_ns - child.sent_ns) / 1e9)
            if not child.orphan:  # an orphan's outcome was counted when its route gave up on it
                done = child.filled + child.sub_step
                outcome = "filled" if done >= child.qty else "partial" if done else "rejected"
                stats.outcomes[outcome] += 1
                self._child_over(child, text or "not filled")
                events += self._next(route, now_ns)
        return events

    def abandon(self, lp: int, cl_ord_id: str, why: str) -> list[RouteEvent]:
        """End the route of a child order whose report we could not read.

        Such a report may hide a fill, so the remainder must not go to another LP (that could
        fill it twice): the route ends here, and the child is kept as an orphan, so what it
        reports later is a :class:`LateFill` for the house.
        """
        child = self._children.get(cl_ord_id)
        if child is None or child.lp != lp or child.orphan:
            return []
        self.lp_stats[lp].outcomes["unreadable"] += 1
        return self.stop(child.route.key, f"{self._lp_names[lp]}: {why}")

    def stop(self, key: str, why: str) -> list[RouteEvent]:
        """End a route now (its owner can no longer take its fills): nothing more is sent for it,
        and its child at an LP, if any, becomes an orphan whose later fills are LateFills."""
        route = self._routes.get(key)
        if route is None:
            return []
        if route.child is not None:
            self._children[route.child].orphan = True
            route.child = None
        return self._finish(route, why)

    def on_lp_down(self, lp: int, now_ns: int) -> list[RouteEvent]:
        """The LP's session is gone: what it had of ours will not be answered on that session.

        The remainder moves on to the next LP. If the LP did fill before it went away we will not
        hear of it here; the LP's own trade report is the place to reconcile that.
        """
        events: list[RouteEvent] = []
        for cl_ord_id, child in list(self._children.items()):
            if child.lp != lp:
                continue
            del self._children[cl_ord_id]
            if not child.orphan:
                self.lp_stats[lp].outcomes["session_lost"] += 1
                self._child_over(child, "session lost")
                events += self._next(child.route, now_ns)
        return events

    def poll(self, now_ns: int) -> list[RouteEvent]:
        """End routes whose budget is spent; forget long-unanswered orphans."""
        events: list[RouteEvent] = []
        for route in list(self._routes.values()):
            if now_ns < route.deadline_ns:
                continue
            if route.child is not None:
                child = self._children[route.child]
                child.orphan = True
                self.lp_stats[child.lp].outcomes["no_answer"] += 1
                self._note(route, child.lp, "no answer within the time budget")
                route.child = None
            events += self._finish(route, "time budget spent")
        for cl_ord_id, child in list(self._children.items()):
            if child.orphan and now_ns - child.sent_ns > _ORPHAN_KEEP_NS:
                del self._children[cl_ord_id]
        return events

    # --- internals -----------------------------------------------------------------------------

    def _next(self, route: _Route, now_ns: int) -> list[RouteEvent]:
        """Send the remainder to the best untried LP, or end the route."""
        while route.filled + route.spent < route.qty:
            if now_ns >= route.deadline_ns:
                return self._finish(route, "time budget spent")
            if not self.may_route(route.key, route.instr):
                return self._finish(route, "trading halted")
            candidates = [
                p for p in self._lp_prices(route.instr, route.side)
                if p.lp not in route.tried and crosses(route.side, p.price, route.limit)
            ]  # fmt: skip
            if not candidates:
                return self._finish(route, "no LP left that can fill within the limit")
            # Best price first; at equal prices the LP showing more size.
            best = min(candidates, key=lambda p: (p.price if route.side == BUY else -p.price, -p.qty))
            route.tried.add(best.lp)
            route.attempts += 1
            cl_ord_id = f"{route.key}.{route.attempts}"
            remainder = route.qty - route.filled - route.spent
            if self._send(best.lp, cl_ord_id, route.instr, route.side, remainder, route.limit):
                self._children[cl_ord_id] = _Child(cl_ord_id, best.lp, route, remainder, now_ns)
                route.child = cl_ord_id
                return []
            self._note(route, best.lp, "cannot take orders now")
        return self._finish(route, "")

    def _finish(self, route: _Route, why: str) -> list[RouteEvent]:
        del self._routes[route.key]
        unfilled = route.qty - route.filled
        reason = ""
        if unfilled:
            reason = "; ".join([why, *route.notes]) if why else "; ".join(route.notes)
        return [RouteDone(route.key, route.filled, unfilled, reason)]

    def _child_over(self, child: _Child, why: str) -> None:
        """A child order of a live route has ended at its LP (``why``, if it did not fill it all)."""
        route = child.route
        route.child = None
        if child.sub_step:
            # The LP filled part of a step on top of the whole ones: that step is not free any
            # more (sending it again would buy it twice), and not the owner's either.
            route.spent += math.ceil(child.filled + child.sub_step) - child.filled
            self._note(route, child.lp, "filled a part smaller than the quantity step")
        if child.filled + child.sub_step < child.qty:
            self._note(route, child.lp, why)

    def _note(self, route: _Route, lp: int, what: str) -> None:
        route.notes.append(f"{self._lp_names[lp]}: {what}")


def markup_ticks(tier: TierConfig, side: int, price: int) -> int:
    """The tier's markup on one side at ``price``: ticks, or ceil(|price| x bps / 10000)."""
    markup = tier.ask_markup if side == BUY else tier.bid_markup
    if tier.markup_unit is MarkupUnit.TICKS:
        return markup
    return -((-abs(price) * markup) // 10_000)


def client_price(tier: TierConfig, side: int, lp_price: int, limit: int | None) -> int:
    """What the client pays for an LP fill: the LP's price plus the markup, capped at the limit."""
    if side == BUY:
        price = lp_price + markup_ticks(tier, side, lp_price)
        return min(price, limit) if limit is not None else price
    price = lp_price - markup_ticks(tier, side, lp_price)
    return max(price, limit) if limit is not None else price


def lp_limit(tier: TierConfig, side: int, client_limit: int | None) -> int | None:
    """The worst LP price at which the client's limit still holds after the markup."""
    if client_limit is None:
        return None
    markup = markup_ticks(tier, side, client_limit)
    return client_limit - markup if side == BUY else client_limit + markup
