"""Pre-trade checks: every order passes here before it can be filled or routed.

Sans-I/O and time-injected: :meth:`PreTradeChecker.check` takes ``now_ns`` and returns a
:class:`Decision`. A rejection carries a reason a client can act on (it becomes FIX 58 text and a
103 OrdRejReason), never internal detail.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.config import ClientLimits
from risk.positions import BUY, PositionBook

__all__ = ["RejectReason", "Decision", "KillSwitches", "RateLimiter", "PreTradeChecker", "ACCEPT"]


class RejectReason(enum.Enum):
    # value: (FIX 103 OrdRejReason, text for 58)
    KILL_SWITCH = (2, "trading halted")  # 2 = exchange closed: the nearest standard code
    ORDER_TOO_LARGE = (13, "order quantity exceeds the limit")  # 13 = incorrect quantity
    POSITION_LIMIT = (3, "order would exceed the position limit")  # 3 = order exceeds limit
    RATE_LIMIT = (99, "order rate limit exceeded")
    PRICE_COLLAR = (99, "limit price too far from the market")
    NO_PRICE = (99, "no price available")

    @property
    def ord_rej_reason(self) -> int:
        return self.value[0]

    @property
    def text(self) -> str:
        return self.value[1]


@dataclass(frozen=True, slots=True)
class Decision:
    ok: bool
    reason: RejectReason | None = None
    detail: str = ""  # extra client-safe detail, e.g. the limit value

    @property
    def text(self) -> str:
        if self.reason is None:
            return ""
        return f"{self.reason.text} ({self.detail})" if self.detail else self.reason.text


ACCEPT = Decision(True)


@dataclass
class KillSwitches:
    """Halts: global, per client, per LP and per instrument, as the operators' config sets them
    (``[halt]``, hot-reloaded); and ``fault``, set by the order desk when its state and the
    journal's may differ: that one stays until a restart, whatever the config says."""

    all: bool = False
    clients: set[str] = field(default_factory=set)
    lps: set[str] = field(default_factory=set)
    instruments: set[int] = field(default_factory=set)
    fault: str = ""  # why trading stopped by itself ("" = it did not)

    def halted(self, client: str, instr: int) -> bool:
        return self.all or bool(self.fault) or client in self.clients or instr in self.instruments


class RateLimiter:
    """A token bucket per key: ``rate`` orders per second with a burst of ``rate``."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, int]] = {}

    def allow(self, key: str, rate: int, now_ns: int) -> bool:
        if rate <= 0:
            return True
        tokens, last = self._buckets.get(key, (float(rate), now_ns))
        tokens = min(float(rate), tokens + (now_ns - last) * rate / 1e9)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now_ns)
            return False
        self._buckets[key] = (tokens - 1.0, now_ns)
        return True


class PreTradeChecker:
    """Applies a client's limits, the kill switches, the rate limit and the price collar.

    The position limit bounds the worst case: the client's position plus every working order of
    its on the order's side (resting, or out at the LPs) plus the order. An order that only
    reduces the client's exposure (towards flat, without crossing it) is always allowed, even
    when the client is already past its limit: refusing it would keep the client at risk.
    """

    def __init__(
        self, positions: PositionBook, kill: KillSwitches | None = None, collar_ticks: Sequence[int] = ()
    ) -> None:
        """``collar_ticks[instr]``: how far through the market a limit may be, per instrument
        (the instruments' ``price_collar_ticks``); 0, or an instrument past the end, = no collar."""
        self.positions = positions
        self.kill = kill or KillSwitches()
        self.rate = RateLimiter()
        self.collar_ticks = list(collar_ticks)

    def check(
        self,
        client: str,
        limits: ClientLimits,
        instr: int,
        side: int,
        qty: int,
        now_ns: int,
        limit_price: int | None = None,
        market_price: int | None = None,
        working: tuple[int, int] = (0, 0),
    ) -> Decision:
        """Decide whether the order may proceed. Quantities are steps, prices ticks.

        ``working``: the (buy, sell) steps still open on the client's other working orders in
        the instrument."""
        if self.kill.halted(client, instr):
            return Decision(False, RejectReason.KILL_SWITCH)
        if limits.max_order_qty and qty > limits.max_order_qty:
            return Decision(False, RejectReason.ORDER_TOO_LARGE, f"max {limits.max_order_qty} steps")
        position = self._position(client, limits, instr, side, qty, working[0] if side == BUY else working[1])
        if not position.ok:
            return position
        collar = self.collar_ticks[instr] if instr < len(self.collar_ticks) else 0
        if collar and limit_price is not None and market_price is not None:
            # Only a limit far *through* the market is suspicious (a fat finger); a passive
            # limit far away is a resting order, not a risk.
            through = (limit_price - market_price) * side
            if through > collar:
                return Decision(False, RejectReason.PRICE_COLLAR, f"max {collar} ticks through the market")
        if not self.rate.allow(client, limits.max_orders_per_s, now_ns):
            return Decision(False, RejectReason.RATE_LIMIT, f"max {limits.max_orders_per_s}/s")
        return ACCEPT

    def check_fill(self, client: str, limits: ClientLimits, instr: int, side: int, qty: int) -> Decision:
        """May a working order of the client's fill ``qty`` steps now? Halts stop it (it keeps
        working); past the position limit it may not (the limit or the position may have moved
        since it was accepted)."""
        if self.kill.halted(client, instr):
            return Decision(False, RejectReason.KILL_SWITCH)
        return self._position(client, limits, instr, side, qty, 0)

    def _position(self, client: str, limits: ClientLimits, instr: int, side: int, qty: int, working: int) -> Decision:
        if not limits.max_position:
            return ACCEPT
        before = self.positions.client(client, instr).qty + side * working
        after = before + side * qty
        reduces = abs(after) < abs(before) and before * after >= 0
        if abs(after) > limits.max_position and not reduces:
            return Decision(False, RejectReason.POSITION_LIMIT, f"max {limits.max_position} steps")
        return ACCEPT
