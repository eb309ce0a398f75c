"""A client's view of market data: rebuild per-symbol ladders from W and X messages.

This is what a B2B client does with our feed; the demo client and the acceptance tests use it to
check that what a client reconstructs equals the engine's tier quotes. Entries are keyed by
position (290); prices and sizes stay as the decimal strings received. Each level keeps its ID,
which is also the QuoteID to hit it with: QuoteEntryID (299) in a W, MDEntryID (278) in an X,
where a change (279=1) brings the new one and names the old one in 280 and a delete (279=2)
names the one it removes, so an entry that comes without 290 is found by that ID.
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
                # The entry's ID: QuoteEntryID (299) in a FIX 4.4 W, which has no MDEntryID (278).
                sides[side][int(entry[290])] = (entry[270], entry[271], entry.get(299, entry.get(278, b"")))
            self.books[symbol] = sides
            return symbol
        if msg.msg_type == b"X":
            last: bytes | None = None
            for entry in _entries(msg, 279):
                symbol = entry.get(55, last or b"")
                last = symbol
                sides = self.books.setdefault(symbol, [{}, {}])
                levels = sides[1 if entry.get(269) == b"1" else 0]
                action = entry[279]
                position = _position(levels, entry, action)
                if position is None:
                    continue  # names an entry this book does not have
                if action == b"2":
                    levels.pop(position, None)
                else:
                    levels[position] = (entry[270], entry[271], entry.get(278, b""))
            return last
        return None


def _position(levels: dict[int, Level], entry: dict[int, bytes], action: bytes) -> int | None:
    """Where an X entry applies: its 290; without one, where the entry its MDEntryID names is
    (280 for a change, 278 for a delete), or after the last level for a new one."""
    position = entry.get(290)
    if position is not None:
        return int(position)
    if action == b"0":
        return max(levels, default=0) + 1
    named = entry.get(280 if action == b"1" and 280 in entry else 278)
    return next((at for at, level in levels.items() if level[2] == named), None)


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
