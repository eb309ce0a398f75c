"""Pre-trade checks: every order passes here before it can be filled or routed.

Sans-I/O and time-injected: :meth:`PreTradeChecker.check` takes ``now_ns`` and returns a
:class:`Decision`. A rejection carries a reason a client can act on (it becomes FIX 58 text and a
103 OrdRejReason), never internal detail.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from engine.config import ClientLimits
from risk.positions import PositionBook

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
    """Halts: global, per client, per LP and per instrument. Set by operators or by risk rules."""

    all: bool = False
    clients: set[str] = field(default_factory=set)
    lps: set[str] = field(default_factory=set)
    instruments: set[int] = field(default_factory=set)

    def halted(self, client: str, instr: int) -> bool:
        return self.all or client in self.clients or instr in self.instruments


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
    """Applies a client's limits, the kill switches, the rate limit and the price collar."""

    def __init__(self, positions: PositionBook, kill: KillSwitches | None = None, collar_ticks: int = 0) -> None:
        self.positions = positions
        self.kill = kill or KillSwitches()
        self.rate = RateLimiter()
        self.collar_ticks = collar_ticks  # 0 = no collar

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
    ) -> Decision:
        """Decide whether the order may proceed. Quantities are steps, prices ticks."""
        if self.kill.halted(client, instr):
            return Decision(False, RejectReason.KILL_SWITCH)
        if limits.max_order_qty and qty > limits.max_order_qty:
            return Decision(False, RejectReason.ORDER_TOO_LARGE, f"max {limits.max_order_qty} steps")
        if limits.max_position:
            after = self.positions.client(client, instr).qty + side * qty
            if abs(after) > limits.max_position:
                return Decision(False, RejectReason.POSITION_LIMIT, f"max {limits.max_position} steps")
        if self.collar_ticks and limit_price is not None and market_price is not None:
            # Only a limit far *through* the market is suspicious (a fat finger); a passive
            # limit far away is a resting order, not a risk.
            through = (limit_price - market_price) * side
            if through > self.collar_ticks:
                return Decision(False, RejectReason.PRICE_COLLAR)
        if not self.rate.allow(client, limits.max_orders_per_s, now_ns):
            return Decision(False, RejectReason.RATE_LIMIT, f"max {limits.max_orders_per_s}/s")
        return ACCEPT
