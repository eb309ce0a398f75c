"""Order execution against a tier's published prices (internalisation, B-book).

Pure functions of (order, quote): no I/O, no clock. The gateway looks up the client's tier
quote, calls :func:`execute`, journals the result, then sends the execution reports.

How a tier's prices are hit depends on how they were built:

* ``full_depth`` / ``top_of_book``: the order sweeps the published levels best first, one fill
  per level (each fill's price is on the grid; the client's AvgPx is their VWAP). A limit stops
  the sweep at the first level worse than the limit.
* ``vwap_bands`` / ``full_amount``: each published level is a firm price *for a size*; the whole
  order fills at the price of the smallest band that covers it, or not at all.

Time in force: IOC fills what it can and cancels the rest; FOK fills everything or nothing;
market orders behave as IOC (or FOK if asked); DAY/GTC limit orders fill what crosses now and
rest for :func:`match_resting` to retry on later quotes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from engine.config import AggregationMode

__all__ = [
    "OrdType", "TimeInForce", "Order", "Fill", "Execution", "crosses", "execute", "match_resting", "fill_at_quote",
    "rests",
]

BUY = 1
SELL = -1


class OrdType(enum.Enum):
    MARKET = "1"
    LIMIT = "2"
    PREVIOUSLY_QUOTED = "D"


class TimeInForce(enum.Enum):
    DAY = "0"
    GTC = "1"
    IOC = "3"
    FOK = "4"


def rests(ord_type: OrdType, tif: TimeInForce) -> bool:
    """Does what is left of such an order keep working (a DAY or GTC limit), rather than end now?"""
    return ord_type is OrdType.LIMIT and tif in (TimeInForce.DAY, TimeInForce.GTC)


@dataclass(frozen=True, slots=True)
class Order:
    side: int  # BUY or SELL
    qty: int  # steps, > 0
    ord_type: OrdType
    tif: TimeInForce
    price: int | None = None  # limit, ticks

    @property
    def rests(self) -> bool:
        return rests(self.ord_type, self.tif)


@dataclass(frozen=True, slots=True)
class Fill:
    qty: int
    price: int


@dataclass(frozen=True, slots=True)
class Execution:
    """What happened: fills now, what keeps working (resting), or why nothing happened."""

    fills: tuple[Fill, ...] = ()
    resting: int = 0  # steps left working on the book (DAY/GTC limits only)
    reject: str | None = None  # reason, when the order is refused outright

    @property
    def filled(self) -> int:
        return sum(f.qty for f in self.fills)


def crosses(side: int, level_price: int, limit: int | None) -> bool:
    """May a ``side`` order with ``limit`` (None: any price) trade at ``level_price``?"""
    if limit is None:
        return True
    return level_price <= limit if side == BUY else level_price >= limit


def _sweep(order: Order, levels: tuple[tuple[int, int], ...], qty: int) -> list[Fill]:
    fills: list[Fill] = []
    left = qty
    for price, size in levels:
        if left == 0 or not crosses(order.side, price, order.price):
            break
        take = min(left, size)
        fills.append(Fill(take, price))
        left -= take
    return fills


def _band_price(order: Order, levels: tuple[tuple[int, int], ...], qty: int) -> int | None:
    for price, band in levels:  # bands are published smallest first
        if qty <= band:
            return price if crosses(order.side, price, order.price) else None
    return None


def execute(
    order: Order,
    bids: tuple[tuple[int, int], ...],
    asks: tuple[tuple[int, int], ...],
    mode: AggregationMode,
) -> Execution:
    """Fill ``order`` against a tier quote's levels (``(price, qty)`` best first)."""
    if order.qty <= 0:
        return Execution(reject="order quantity must be positive")
    if order.ord_type is OrdType.LIMIT and order.price is None:
        return Execution(reject="limit order without a price")
    if order.ord_type is OrdType.PREVIOUSLY_QUOTED:
        return Execution(reject="previously-quoted orders need a QuoteID (use fill_at_quote)")
    levels = asks if order.side == BUY else bids
    if not levels:
        return Execution(reject="no price available")
    resting_allowed = order.rests

    if mode in (AggregationMode.VWAP_BANDS, AggregationMode.FULL_AMOUNT):
        if order.qty > levels[-1][1] and not resting_allowed:
            return Execution(reject=f"quantity exceeds the largest priced size ({levels[-1][1]} steps)")
        price = _band_price(order, levels, order.qty)
        if price is not None:
            return Execution(fills=(Fill(order.qty, price),))
        if resting_allowed:
            return Execution(resting=order.qty)
        return Execution(reject="no price at or better than the limit for this size")

    fills = _sweep(order, levels, order.qty)
    filled = sum(f.qty for f in fills)
    if order.tif is TimeInForce.FOK and filled < order.qty:
        return Execution(reject="fill-or-kill: not enough liquidity at the limit")
    if resting_allowed:
        return Execution(fills=tuple(fills), resting=order.qty - filled)
    if not fills:
        return Execution(reject="no liquidity at or better than the limit")
    return Execution(fills=tuple(fills))


def match_resting(
    order: Order,
    leaves: int,
    bids: tuple[tuple[int, int], ...],
    asks: tuple[tuple[int, int], ...],
    mode: AggregationMode,
) -> Execution:
    """Retry a resting DAY/GTC limit order's ``leaves`` against a new quote."""
    return execute(Order(order.side, leaves, order.ord_type, order.tif, order.price), bids, asks, mode)


def fill_at_quote(order: Order, quoted_price: int, quoted_qty: int) -> Execution:
    """A previously-quoted order (40=D) hits one published level by its QuoteID.

    The caller resolves the QuoteID and checks it is still live and within its TTL; here the
    order must fit the quoted size and, if it carries a limit, the quote must satisfy it.
    """
    if order.qty <= 0:
        return Execution(reject="order quantity must be positive")
    if order.qty > quoted_qty:
        return Execution(reject=f"quantity exceeds the quoted size ({quoted_qty} steps)")
    if not crosses(order.side, quoted_price, order.price):
        return Execution(reject="quoted price is worse than the limit")
    return Execution(fills=(Fill(order.qty, quoted_price),))
