"""A client's view of market data: rebuild per-symbol ladders from W and X messages.

This is what a B2B client does with our feed; the demo client and the acceptance tests use it to
check that what a client reconstructs equals the engine's tier quotes. Entries are keyed by
position (290); prices and sizes stay as the decimal strings received.
"""

from __future__ import annotations

from collections.abc import Sequence

from fixserver.message import FixMessage

__all__ = ["MdBook", "md_request"]

Level = tuple[bytes, bytes, bytes]  # (price, size, MDEntryID)


def md_request(
    md_req_id: bytes,
    symbols: Sequence[bytes],
    depth: int = 0,
    incremental: bool = True,
    request: bytes = b"1",
    entry_types: Sequence[bytes] = (b"0", b"1"),
) -> list[tuple[int, bytes]]:
    """A MarketDataRequest (35=V) body: 263 ``request`` (0 snapshot, 1 subscribe, 2 unsubscribe),
    264 ``depth`` (0 = full), 265 from ``incremental``, bids and offers by default."""
    body = [(262, md_req_id), (263, request), (264, b"%d" % depth), (265, b"1" if incremental else b"0")]
    body += [(267, b"%d" % len(entry_types)), *((269, t) for t in entry_types)]
    return body + [(146, b"%d" % len(symbols)), *((55, sym) for sym in symbols)]


class MdBook:
    def __init__(self) -> None:
        # symbol -> [bids, asks], each a dict position -> Level
        self.books: dict[bytes, list[dict[int, Level]]] = {}

    def ladder(self, symbol: bytes) -> tuple[list[Level], list[Level]]:
        """Bids and asks best first (by position)."""
        sides = self.books.get(symbol, [{}, {}])
        return (
            [sides[0][k] for k in sorted(sides[0])],
            [sides[1][k] for k in sorted(sides[1])],
        )

    def apply(self, msg: FixMessage) -> bytes | None:
        """Apply a W or X; returns the symbol it updated (X: the last entry's)."""
        if msg.msg_type == b"W":
            symbol = msg.get(55) or b""
            sides: list[dict[int, Level]] = [{}, {}]
            for entry in _entries(msg, 269):
                side = 1 if entry.get(269) == b"1" else 0
                sides[side][int(entry[290])] = (entry[270], entry[271], entry.get(278, b""))
            self.books[symbol] = sides
            return symbol
        if msg.msg_type == b"X":
            last: bytes | None = None
            for entry in _entries(msg, 279):
                symbol = entry.get(55, last or b"")
                last = symbol
                sides = self.books.setdefault(symbol, [{}, {}])
                side = 1 if entry.get(269) == b"1" else 0
                position = int(entry[290])
                if entry[279] == b"2":
                    sides[side].pop(position, None)
                else:
                    sides[side][position] = (entry[270], entry[271], entry.get(278, b""))
            return last
        return None


def _entries(msg: FixMessage, first_tag: int) -> list[dict[int, bytes]]:
    """Split the 268 group into entries, each starting at ``first_tag``."""
    entries: list[dict[int, bytes]] = []
    in_group = False
    for tag, value in msg.fields:
        if tag == 268:
            in_group = True
            continue
        if not in_group or tag == 10:
            continue
        if tag == first_tag:
            entries.append({})
        if entries:
            entries[-1][tag] = value
    return entries
