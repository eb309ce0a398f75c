"""FIX bytes for the end-to-end benchmark's driver: precomputed templates out, a few ``find`` calls in.

The driver plays 10 LPs and 20 clients in one process, so its own cost per message must be small
and the same whether the gateway or the plain echo server (the floor) stands between its two
ends. It therefore does not run our session layer: every message it sends is a ``bytes`` template
filled with ``%`` and framed here (BodyLength, CheckSum), and every message it reads is split on
its ``10=`` trailer and looked at with ``bytes.find`` only.

The market is a monotone walk built so that each LP tick is decodable from any quote it shows:
the k-th tick of instrument ``i`` comes from LP ``(k + i) % N_LPS`` and sets that LP's ladder to
bids ``base + k - l`` and asks ``base + k + SPREAD + l`` (l = 0..levels-1). Its bid is above every
other LP's, so it is the new best bid, and a tier that marks bids down by ``m`` ticks shows
``base + k - m`` as its top bid: ``k`` (hence the tick and its send time) comes back from the
price. The best ask is the oldest LP's, ``SPREAD - N_LPS + 1`` ticks above the best bid, so the
book never crosses.
"""

from __future__ import annotations

from dataclasses import dataclass

from fixserver.session import format_utc_timestamp

SOH = b"\x01"
N_LPS = 10
LEVELS = 3  # per side, per LP; every tick rewrites the LP's whole ladder (6 entries)
SPREAD = 50  # ticks between an LP's own bid and ask; > N_LPS so the aggregated book never crosses
LEVEL_QTY = 1000  # quantity steps per LP level (1M for the FX pairs)
BEGIN = b"8=FIX.4.4\x01"


@dataclass(frozen=True)
class Instrument:
    symbol: str
    tick_size: str
    qty_step: str
    base: int  # price in ticks where the walk starts
    decimals: int

    @property
    def qty_text(self) -> bytes:
        step = int(self.qty_step)
        return b"%d" % (LEVEL_QTY * step)


INSTRUMENTS = [
    Instrument("EUR/USD", "0.00001", "1000", 108_000, 5),
    Instrument("GBP/USD", "0.00001", "1000", 126_000, 5),
    Instrument("USD/JPY", "0.001", "1000", 150_000, 3),
    Instrument("XAU/USD", "0.01", "1", 240_000, 2),
    Instrument("WTI", "0.01", "1", 7_000, 2),
]
N_INSTR = len(INSTRUMENTS)


def lp_of(instr: int, k: int) -> int:
    """The LP that sends instrument ``instr``'s k-th tick (every LP once in any N_LPS ticks)."""
    return (k + instr) % N_LPS


def tick_of(n: int) -> tuple[int, int]:
    """Global tick ``n`` → (instrument, k): the instruments take turns."""
    return n % N_INSTR, n // N_INSTR


def price_text(instr: int, ticks: int) -> bytes:
    d = INSTRUMENTS[instr].decimals
    whole, frac = divmod(ticks, 10**d)
    return b"%d.%0*d" % (whole, d, frac)


def price_ticks(instr: int, text: bytes) -> int:
    """Inverse of :func:`price_text` (positive prices with the instrument's decimals)."""
    return int(text.replace(b".", b""))


def frame(payload: bytes) -> bytes:
    """``payload`` (35=... up to the last field's SOH) framed with 8, 9 and 10."""
    head = b"%s9=%d\x01" % (BEGIN, len(payload))
    return b"%s%s10=%03d\x01" % (head, payload, (sum(head) + sum(payload)) & 0xFF)


class Outbound:
    """One direction of one session: its CompIDs and the next MsgSeqNum."""

    def __init__(self, sender: str, target: str) -> None:
        self.header = b"49=%s\x0156=%s\x01" % (sender.encode(), target.encode())
        self.seq = 1

    def message(self, msg_type: bytes, body: bytes, now_ns: int) -> bytes:
        """A whole message; ``body`` is the fields after the header, each ending in SOH."""
        seq, self.seq = self.seq, self.seq + 1
        return frame(b"35=%s\x01%s34=%d\x0152=%s\x01%s" % (msg_type, self.header, seq, format_utc_timestamp(now_ns),
                                                           body))  # fmt: skip


def fields(pairs: list[tuple[int, bytes]]) -> bytes:
    return b"".join(b"%d=%s\x01" % (tag, value) for tag, value in pairs)


class TickEncoder:
    """The LP side's incremental refresh (35=X) for one tick, from a per-(LP, instrument) template.

    The body is what :class:`feeds.lp_simulator.SimulatedLp` sends for an incremental LP: 262 (our
    feed's MDReqID, the instrument index), 268, then per entry 279, 269, 278 (MDEntryID), 55, 270,
    271, 290, bids first, best first.
    """

    def __init__(self) -> None:
        self._templates: list[bytes] = []
        for instr, inst in enumerate(INSTRUMENTS):
            entries = b""
            for side in (0, 1):
                for level in range(LEVELS):
                    entries += b"279=1\x01269=%d\x01278=%s%d\x0155=%s\x01270=%%s\x01271=%s\x01290=%d\x01" % (
                        side, b"ba"[side : side + 1], level, inst.symbol.encode(), inst.qty_text, level + 1,
                    )  # fmt: skip
            self._templates.append(b"262=%d\x01268=%d\x01" % (instr, 2 * LEVELS) + entries)

    def body(self, instr: int, k: int) -> bytes:
        base = INSTRUMENTS[instr].base + k
        prices = [price_text(instr, base - level) for level in range(LEVELS)]
        prices += [price_text(instr, base + SPREAD + level) for level in range(LEVELS)]
        return self._templates[instr] % tuple(prices)


def snapshot_body(md_req_id: bytes, instr: int, k: int) -> bytes:
    """A 35=W body with LP ladder ``k`` (the LP's book after the walk's k-th tick)."""
    inst = INSTRUMENTS[instr]
    base = inst.base + k
    entries = []
    for side in (0, 1):
        for level in range(LEVELS):
            px = base - level if side == 0 else base + SPREAD + level
            entries += [(269, b"%d" % side), (270, price_text(instr, px)), (271, inst.qty_text)]
            entries += [(278, b"%s%d" % (b"ba"[side : side + 1], level)), (290, b"%d" % (level + 1))]
    return fields([(262, md_req_id), (55, inst.symbol.encode()), (268, b"%d" % (2 * LEVELS)), *entries])


def initial_k(lp: int, instr: int) -> int:
    """The tick (< 0) whose ladder LP ``lp`` holds for ``instr`` before the run: the walk is
    taken to have run for N_LPS ticks already, so every LP has a book and the book is uncrossed."""
    for k in range(-1, -N_LPS - 1, -1):
        if lp_of(instr, k) == lp:
            return k
    raise AssertionError("every LP sends one of any N_LPS consecutive ticks")


# --- reading ---------------------------------------------------------------------------------------


def split(buf: bytes) -> tuple[list[bytes], bytes]:
    """Whole messages in ``buf`` (each ends ``SOH 10=ddd SOH``) and the incomplete rest."""
    out = []
    pos = 0
    end = len(buf)
    find = buf.find
    while True:
        at = find(b"\x0110=", pos)
        if at < 0 or at + 8 > end:
            break
        out.append(buf[pos : at + 8])
        pos = at + 8
    return out, buf[pos:]


def value(msg: bytes, tag: bytes, start: int = 0) -> bytes | None:
    """The first value of ``tag`` (e.g. ``b"\\x0111="``) in ``msg`` after ``start``."""
    at = msg.find(tag, start)
    if at < 0:
        return None
    at += len(tag)
    return msg[at : msg.find(SOH, at)]


def msg_type(msg: bytes) -> bytes:
    at = msg.find(b"\x0135=") + 4
    return msg[at : msg.find(SOH, at)]


def top_bid(msg: bytes) -> tuple[bytes, bytes] | None:
    """(symbol, price) of the best bid a W/X shows, or None if it does not show the best bid.

    The first 270 of the message must belong to a bid (269=0) at position 1 (290=1): true of our
    W (bids first, best first) and of an X whose best bid changed (entries in side, level order).
    """
    p = msg.find(b"\x01270=")
    if p < 0:
        return None
    e = msg.find(SOH, p + 5)
    s = msg.rfind(b"\x01269=", 0, p)
    if s < 0 or msg[s + 5 : s + 6] != b"0":
        return None
    q = msg.find(b"\x01290=", e)
    if q < 0 or msg[q + 5 : q + 7] != b"1\x01":
        return None
    y = msg.find(b"\x0155=")
    if y < 0:
        return None
    return msg[y + 4 : msg.find(SOH, y + 4)], msg[p + 5 : e]
