"""SecurityList (35=y): the instruments a client can trade, in FIX 4.4's own fields.

Each instrument is one NoRelatedSym (146) entry: Symbol (55), RoundLot (561) for the quantity
step, and Text (58) ``tick size <tick>`` for the price increment. FIX 4.4 has no field for a
tick size (MinPriceIncrement, 969, came with FIX 5.0): a client validating with the FIX 4.4
dictionary refuses a SecurityList carrying 969, so the increment goes in the entry's Text, the
one 4.4 field there for it. Sans-I/O: the caller sends the body.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.config import InstrumentConfig
from fixserver.message import FixMessage

__all__ = ["TICK_SIZE_TEXT", "security_list"]

TICK_SIZE_TEXT = b"tick size "  # + the tick, as the entry's Text (58)


def security_list(
    instruments: Sequence[InstrumentConfig], request: FixMessage, response_id: bytes
) -> list[tuple[int, bytes]]:
    """The 35=y body answering ``request`` (35=x, which has its SecurityReqID, 320): 559=4 (or no
    559) lists every enabled instrument, 559=0 the one named in 55; other request types (by
    SecurityType, Product, TradingSession) are not supported (560=1)."""
    listed = [inst for inst in instruments if inst.enabled]
    kind = request.get(559)
    result = b"0"  # 560 SecurityRequestResult: valid request
    if kind == b"0":
        wanted = request.get(55)
        listed = [inst for inst in listed if inst.symbol.encode() == wanted]
        if not listed:
            result = b"2"  # no instruments found that match the selection criteria
    elif kind not in (None, b"4"):
        listed, result = [], b"1"  # invalid or unsupported request
    body = [(320, request.get(320) or b""), (322, response_id), (560, result), (146, b"%d" % len(listed))]
    for inst in listed:
        tick = inst.price_grid().step_text.encode()
        body += [(55, inst.symbol.encode()), (561, inst.qty_step.encode()), (58, TICK_SIZE_TEXT + tick)]
    return body
