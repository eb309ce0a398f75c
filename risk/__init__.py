"""Risk: pre-trade limits, positions and exposure, inventory skew, kill switches, A-book routing."""

from risk.limits import ACCEPT, Decision, KillSwitches, PreTradeChecker, RateLimiter, RejectReason
from risk.positions import BUY, SELL, Position, PositionBook
from risk.routing import LpPrice, Router

__all__ = [
    "ACCEPT",
    "BUY",
    "SELL",
    "Decision",
    "KillSwitches",
    "LpPrice",
    "Position",
    "PositionBook",
    "PreTradeChecker",
    "RateLimiter",
    "RejectReason",
    "Router",
]
