"""Risk: pre-trade limits, positions and exposure, inventory skew, kill switches."""

from risk.limits import ACCEPT, Decision, KillSwitches, PreTradeChecker, RateLimiter, RejectReason
from risk.positions import BUY, SELL, Position, PositionBook

__all__ = [
    "ACCEPT",
    "BUY",
    "SELL",
    "Decision",
    "KillSwitches",
    "Position",
    "PositionBook",
    "PreTradeChecker",
    "RateLimiter",
    "RejectReason",
]
