"""Plain-Python reference of the LP market-data path, and the benchmark's ``simplefix_path``.

The same semantics as :mod:`feeds.md_decode` + :mod:`feeds.lpbook`, written the obvious way:
frame, turn each message into ``(tag, value)`` pairs, walk the pairs, keep each LP book in
dicts and lists, convert numbers with :meth:`engine.fixedpoint.Grid.to_steps`. It shares no code
with the kernel beyond constants, so the property tests can hold one to the other.

Two framers feed the same Python apply:

* ``framer="codec"`` (tests): :class:`fixserver.codec.FrameDecoder`, the project's framer, whose
  garbled-message rules and counting the kernel mirrors.
* ``framer="simplefix"`` (benchmark baseline): frames located by BodyLength, CheckSum checked,
  then each frame parsed by ``simplefix.FixParser``. Frames are handed to simplefix one at a time
  because its parser re-slices its whole buffer after every field, which would make a 64 KiB
  read quadratic and the baseline unfairly slow. Garbage is skipped to the next ``8=FIX``
  (its counting is not FrameDecoder's; it is only used on clean streams).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import simplefix

from engine.batch import UpdateBatch
from engine.fixedpoint import DecimalFormatError, Grid, OffGridError, parse_decimal
from feeds import lpbook as lb
from feeds.lpbook import KEYED_BY_ID, KEYED_BY_POSITION, MAX_ID_LEN
from feeds.md_decode import KIND_OTHER, KIND_W, KIND_X
from fixserver.codec import FrameDecoder

__all__ = ["ReferenceMdPath", "ref_to_steps", "RefMessage"]

_MAXI = 2**63 - 1
_ENTRY_TAGS = frozenset((279, 269, 278, 270, 271, 290, 55))

RefMessage = tuple[int, int, int, list[tuple[int, bytes]]]
"""(seq, kind, possdup, fields) of one valid message, in wire order."""


def ref_to_steps(text: bytes, grid: Grid) -> tuple[str, int]:
    """Exact decimal → steps: ("ok", value) | ("bad", 0) | ("off", 0); the kernel's rules."""
    try:
        mantissa, scale = parse_decimal(text)
    except DecimalFormatError:
        return "bad", 0
    if len(str(abs(mantissa))) > 18 and mantissa != 0 or scale > 18:
        return "bad", 0
    shift = grid.step_scale - scale
    if shift >= 0 and abs(mantissa) * 10**shift > _MAXI:
        return "bad", 0
    try:
        return "ok", Grid(grid.step_mantissa, grid.step_scale, grid.step_scale).to_steps(text)
    except OffGridError:
        return "off", 0


def _uint(value: bytes) -> int:
    return int(value) if value.isdigit() and len(value) <= 18 else -1


class _Book:
    __slots__ = ("ids", "anon", "pos", "emitted")

    def __init__(self, levels: int) -> None:
        self.ids: dict[bytes, list[int]] = {}  # id -> [side, px, qty]
        self.anon: list[list[int]] = []  # snapshot entries without an id
        self.pos = [[[0, 0] for _ in range(levels)] for _ in range(2)]
        self.emitted = [[(0, 0)] * levels for _ in range(2)]

    def reset(self, levels: int) -> None:
        self.ids = {}
        self.anon = []
        self.pos = [[[0, 0] for _ in range(levels)] for _ in range(2)]


class ReferenceMdPath:
    """Reference decoder of one LP; same constructor arguments as :class:`~feeds.md_decode.MdDecoder`."""

    def __init__(
        self,
        lp: int,
        price_grids: Sequence[Grid | None],
        qty_grids: Sequence[Grid | None],
        symbols: Mapping[str, int] | Mapping[bytes, int],
        levels: int,
        reqids: Mapping[int, int] | None = None,
        keyed_by: int = KEYED_BY_ID,
        max_entries: int = 256,
        framer: str = "codec",
    ) -> None:
        self.lp = lp
        self.levels = levels
        self.keyed_by = keyed_by
        self.max_entries = max_entries
        self.price_grids = list(price_grids)
        self.qty_grids = list(qty_grids)
        quoted = [i for i, g in enumerate(price_grids) if g is not None and qty_grids[i] is not None]
        self.reqids = dict(reqids) if reqids is not None else {i: i for i in quoted}
        self.table_size = max([r + 1 for r in self.reqids] + [1])
        self.symbols = {(s.encode() if isinstance(s, str) else bytes(s)): i for s, i in symbols.items()}
        self.books = [_Book(levels) for _ in price_grids]
        self.counters = dict.fromkeys(lb.C_NAMES, 0)
        self.framer = framer
        self._decoder = FrameDecoder()
        self._pending = b""
        self._dirty: list[int] = []

    # --- framing ---------------------------------------------------------------------------

    def feed(self, data: bytes, now_ns: int, batch: UpdateBatch) -> list[RefMessage]:
        """Decode ``data`` (any split), apply market data, append rows; return every valid message."""
        if self.framer == "codec":
            before = self._decoder.garbled
            frames = [m.fields for m in self._decoder.feed(data)]
            self.counters["garbled"] += self._decoder.garbled - before
        else:
            frames = self._simplefix_frames(data)
        out: list[RefMessage] = []
        for fields in frames:
            out.append(self._message(fields))
        self._emit(now_ns, batch)
        return out

    def _simplefix_frames(self, data: bytes) -> list[list[tuple[int, bytes]]]:
        buf = self._pending + data
        frames: list[list[tuple[int, bytes]]] = []
        pos = 0
        n = len(buf)
        while True:
            start = buf.find(b"8=FIX", pos)
            if start < 0:
                pos = max(pos, n - 4)
                break
            soh1 = buf.find(b"\x01", start)
            soh2 = buf.find(b"\x01", soh1 + 1) if soh1 >= 0 else -1
            if soh2 < 0:
                pos = start
                break
            length_field = buf[soh1 + 1 : soh2]
            if not length_field.startswith(b"9=") or not length_field[2:].isdigit():
                pos = start + 1
                continue
            body_end = soh2 + 1 + int(length_field[2:])
            end = body_end + 7
            if end > n:
                pos = start
                break
            if buf[body_end : body_end + 3] != b"10=" or int(buf[body_end + 3 : body_end + 6] or b"-1") != (
                sum(buf[start:body_end]) & 0xFF
            ):
                self.counters["garbled"] += 1
                pos = start + 1
                continue
            parser = simplefix.FixParser()
            parser.append_buffer(buf[start:end])
            msg = parser.get_message()
            frames.append([(int(tag), value) for tag, value in msg.pairs])
            pos = end
        self._pending = buf[pos:]
        return frames

    # --- messages --------------------------------------------------------------------------

    def _message(self, fields: list[tuple[int, bytes]]) -> RefMessage:
        msg_type = fields[2][1]
        body = fields[2:-1]  # after 8 and 9, before 10: what the kernel walks
        if msg_type not in (b"W", b"X"):
            self.counters["other_messages"] += 1
            seq, possdup = -1, 0
            for tag, value in body:
                if tag == 34:
                    seq = _uint(value)
                elif tag == 43:
                    possdup = 1 if value == b"Y" else 0
            return seq, KIND_OTHER, possdup, fields
        is_w = msg_type == b"W"
        seq, possdup = -1, 0
        msg_instr = msg_sym = -1
        in_group = False
        delim: int | None = None
        entries: list[dict[int, bytes]] = []
        for tag, value in body:
            if not in_group:
                if tag == 34:
                    seq = _uint(value)
                elif tag == 43:
                    possdup = 1 if value == b"Y" else 0
                elif tag == 262:
                    r = _uint(value)
                    msg_instr = self.reqids.get(r, -1) if 0 <= r < self.table_size else -1
                elif tag == 55:
                    msg_sym = self.symbols.get(value, -1)
                elif tag == 268:
                    in_group = True
                continue
            if delim is None:
                delim = tag
            if tag == delim:
                entries.append({})
            if tag in _ENTRY_TAGS:
                entries[-1][tag] = value
        kind = KIND_W if is_w else KIND_X
        if possdup:
            self.counters["possdup_skipped"] += 1
            return seq, kind, possdup, fields
        self.counters["md_messages"] += 1
        if is_w:
            instr = msg_instr if msg_instr >= 0 else msg_sym
            if 0 <= instr < len(self.books):
                self.books[instr].reset(self.levels)
                self._mark(instr)
        snap_count = [0, 0]
        for entry in entries:
            self._entry(entry, is_w, msg_instr, msg_sym, snap_count)
        return seq, kind, possdup, fields

    def _mark(self, instr: int) -> None:
        if instr not in self._dirty:
            self._dirty.append(instr)

    def _drop(self, reason: str) -> None:
        self.counters[reason] += 1

    def _entry(self, e: dict[int, bytes], is_w: bool, msg_instr: int, msg_sym: int, snap_count: list[int]) -> None:
        self.counters["entries"] += 1
        instr = msg_instr
        if instr < 0:
            instr = self.symbols.get(e[55], -1) if 55 in e else msg_sym
        if not 0 <= instr < len(self.books):
            return self._drop("unknown_instrument")
        if is_w:
            action = lb.A_SNAPSHOT
        else:
            if 279 not in e:
                return self._drop("missing_field")
            if e[279] not in (b"0", b"1", b"2"):
                return self._drop("bad_action")
            action = int(e[279])
        side = -1
        if 269 in e:
            if e[269] not in (b"0", b"1"):
                return self._drop("ignored")
            side = int(e[269])
        if side < 0 and (action in (lb.A_SNAPSHOT, lb.A_NEW) or self.keyed_by == KEYED_BY_POSITION):
            return self._drop("missing_field")
        px = qty = None
        if action != lb.A_DELETE:
            if 270 in e:
                grid = self.price_grids[instr]
                assert grid is not None
                status, px = ref_to_steps(e[270], grid)
                if status != "ok":
                    return self._drop("bad_number" if status == "bad" else "off_grid")
            if 271 in e:
                grid = self.qty_grids[instr]
                assert grid is not None
                status, qty = ref_to_steps(e[271], grid)
                if status == "bad" or (status == "ok" and qty < 0):
                    return self._drop("bad_number")
                if status == "off":
                    return self._drop("off_grid")
            if action in (lb.A_SNAPSHOT, lb.A_NEW) and (px is None or qty is None):
                return self._drop("missing_field")
        book = self.books[instr]
        if self.keyed_by == KEYED_BY_POSITION:
            if 290 in e:
                p = _uint(e[290])
                if p < 1:
                    return self._drop("bad_number")
            elif action == lb.A_SNAPSHOT:
                p = snap_count[side] + 1
            else:
                return self._drop("missing_field")
            if action == lb.A_SNAPSHOT:
                snap_count[side] += 1
            if p > self.levels:
                return self._drop("ignored")
            ladder = book.pos[side]
            if action == lb.A_NEW:
                assert px is not None and qty is not None  # checked above for new entries
                ladder.insert(p - 1, [px, qty])
                ladder.pop()
            elif action == lb.A_DELETE:
                ladder.pop(p - 1)
                ladder.append([0, 0])
            else:
                if ladder[p - 1][1] <= 0 and (px is None or qty is None):
                    return self._drop("unknown_id")  # a size alone at an empty position has no price
                if px is not None:
                    ladder[p - 1][0] = px
                if qty is not None:
                    ladder[p - 1][1] = qty
        else:
            entry_id = e.get(278, b"")
            if not entry_id:
                if action != lb.A_SNAPSHOT:
                    return self._drop("missing_field")
            elif len(entry_id) > MAX_ID_LEN:
                return self._drop("id_too_long")
            held = book.ids.get(entry_id) if entry_id else None
            if action == lb.A_DELETE:
                if held is None:
                    return self._drop("unknown_id")
                del book.ids[entry_id]
            elif action == lb.A_CHANGE:
                if held is None:
                    return self._drop("unknown_id")
                if side >= 0:
                    held[0] = side
                if px is not None:
                    held[1] = px
                if qty is not None:
                    held[2] = qty
            elif held is not None:
                assert px is not None and qty is not None  # checked above for new entries
                held[:] = [side, px, qty]
            else:
                assert px is not None and qty is not None
                if len(book.ids) + len(book.anon) >= self.max_entries:
                    return self._drop("book_full")
                if entry_id:
                    book.ids[entry_id] = [side, px, qty]
                else:
                    book.anon.append([side, px, qty])
        self.counters["applied"] += 1
        self._mark(instr)

    # --- ladders ---------------------------------------------------------------------------

    def ladder(self, instr: int, side: int) -> list[tuple[int, int]]:
        """The book's top ``levels`` of ``side`` as (price, qty); qty 0 = empty level."""
        book = self.books[instr]
        if self.keyed_by == KEYED_BY_POSITION:
            return [(px, qty) if qty > 0 else (0, 0) for px, qty in book.pos[side]]
        sizes: dict[int, int] = {}
        for s, px, qty in list(book.ids.values()) + book.anon:
            if s == side and qty > 0:
                sizes[px] = sizes.get(px, 0) + qty
        best = sorted(sizes.items(), reverse=side == 0)[: self.levels]
        return best + [(0, 0)] * (self.levels - len(best))

    def _emit(self, now_ns: int, batch: UpdateBatch) -> None:
        for instr in self._dirty:
            book = self.books[instr]
            for side in range(2):
                for k, level in enumerate(self.ladder(instr, side)):
                    if level != book.emitted[side][k]:
                        book.emitted[side][k] = level
                        batch.set_level(self.lp, instr, side, k, level[0], level[1], now_ns)
        self._dirty = []
