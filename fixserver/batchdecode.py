"""Batch fast path: frame a whole read buffer and pull market-data entries out as arrays.

The LP feed's hot loop reads many messages at once (W and X mostly, the odd heartbeat). This
module turns such a buffer into structure-of-arrays in one compiled (Numba) call, with no Python
object per field or per entry:

* ``msgs``: one row per valid frame, in order (start/end offsets into ``buffer``, MsgType code,
  MsgSeqNum, PossDupFlag, the frame's first entry row and entry count, NoMDEntries as sent,
  MDReqID and Symbol spans and hashes);
* ``entries``: one row per market-data entry of every W and X (its message row, MDEntryType,
  MDUpdateAction, price and size as exact integers at the caller's decimal scale, MDEntryPositionNo,
  MDEntryID and Symbol spans and hashes, presence/exactness flags).

Framing is :func:`fixserver._framing.next_frame`, shared with the LP market-data kernel
(:mod:`feeds.md_decode`): the rules of :class:`fixserver.codec.FrameDecoder` (same resynchronisation,
same garbled count, same :class:`~fixserver.codec.FrameTooLarge`); the tests drive both with the
same streams. Frames other than W/X (heartbeats, logon, execution reports) are framed here and
turned into :class:`~fixserver.message.FixMessage` on demand by :meth:`DecodedBatch.messages`.

Entry semantics (shared with :func:`reference_entries`, the plain-Python statement of them):
only fields after NoMDEntries (268) belong to entries; an entry starts at the group's first field
(W: 269, X: 279), or at an entry field when no entry is open or when that field is already set
in the open entry. An entry without its own Symbol (55) takes the message's. Prices and sizes are
``value * 10**scale`` when that is an integer that fits 18 digits (flag ``*_EXACT``); otherwise the
raw span is there for :meth:`engine.fixedpoint.Grid.to_steps` with an explicit rounding rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from fixserver._framing import FS_GARBLED, FS_REASON, N_FS, REASONS, next_frame, parse_uint
from fixserver.codec import DEFAULT_MAX_MESSAGE_SIZE, FrameTooLarge
from fixserver.message import FixMessage

__all__ = [
    "BatchDecoder",
    "DecodedBatch",
    "MdEntry",
    "reference_entries",
    "symbol_hash",
    "msg_type_code",
    # message columns
    "M_START", "M_END", "M_TYPE", "M_SEQ", "M_POSS_DUP", "M_FIRST_ENTRY", "M_ENTRY_COUNT",
    "M_DECLARED", "M_REQ_START", "M_REQ_END", "M_REQ_HASH", "M_SYM_START", "M_SYM_END", "M_SYM_HASH",
    "M_FIRST_FIELD", "M_FIELD_COUNT", "F_TAG", "F_START", "F_END",
    # entry columns
    "E_MSG", "E_TYPE", "E_ACTION", "E_PRICE", "E_SIZE", "E_POSITION", "E_FLAGS", "E_ID_START",
    "E_ID_END", "E_ID_HASH", "E_SYM_START", "E_SYM_END", "E_SYM_HASH", "E_PX_START", "E_PX_END",
    "E_SIZE_START", "E_SIZE_END",
    # entry flags
    "HAS_PRICE", "PRICE_EXACT", "HAS_SIZE", "SIZE_EXACT", "HAS_ID", "HAS_POSITION",
]  # fmt: skip

# Message columns
M_START, M_END, M_TYPE, M_SEQ, M_POSS_DUP, M_FIRST_ENTRY, M_ENTRY_COUNT, M_DECLARED = range(8)
M_REQ_START, M_REQ_END, M_REQ_HASH, M_SYM_START, M_SYM_END, M_SYM_HASH = range(8, 14)
M_FIRST_FIELD, M_FIELD_COUNT = 14, 15
_NM = 16
# Entry columns
E_MSG, E_TYPE, E_ACTION, E_PRICE, E_SIZE, E_POSITION, E_FLAGS, E_ID_START, E_ID_END = range(9)
E_ID_HASH, E_SYM_START, E_SYM_END, E_SYM_HASH, E_PX_START, E_PX_END, E_SIZE_START, E_SIZE_END = range(9, 17)
_NE = 17
# Field index columns: every field of every frame, in wire order (tag 0: malformed field whose
# span is the whole "junk" item, as decode_fields keeps it)
F_TAG, F_START, F_END = 0, 1, 2
_NF = 3
# Entry flags
HAS_PRICE, PRICE_EXACT, HAS_SIZE, SIZE_EXACT, HAS_ID, HAS_POSITION = 1, 2, 4, 8, 16, 32
_TYPE_SET, _ACTION_SET, _SYM_SET = 64, 128, 256  # which fields the open entry already has

# Kernel state slots (int64 array shared with the kernel): the framing state first (fixserver._framing's
# FS_* slots, kept between reads), then this decoder's results of one call.
_S_CONSUMED, _S_NMSGS, _S_NENTRIES, _S_STATUS, _S_TOO_LARGE, _S_NFIELDS = range(N_FS, N_FS + 6)
_NS = N_FS + 6
_STATUS_OK, _STATUS_TOO_LARGE = 0, 1

_HASH_MASK = (1 << 62) - 1


def symbol_hash(value: bytes) -> int:
    """The 62-bit FNV-1a hash the kernel stores for Symbol, MDReqID and MDEntryID spans."""
    h = 0xCBF29CE484222325
    for c in value:
        h = ((h ^ c) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h & _HASH_MASK


def msg_type_code(msg_type: bytes) -> int:
    """The integer the kernel stores for a MsgType of one or two characters (-1 otherwise)."""
    if len(msg_type) == 1:
        return msg_type[0]
    if len(msg_type) == 2:
        return msg_type[0] | (msg_type[1] << 8)
    return -1


_W = msg_type_code(b"W")
_X = msg_type_code(b"X")


# --------------------------------------------------------------------------------------------
# Kernel helpers


@njit(cache=True, nogil=True)
def _hash(buf, s, e):  # type: ignore[no-untyped-def]
    h = np.uint64(0xCBF29CE484222325)
    prime = np.uint64(0x100000001B3)
    for i in range(s, e):
        h = (h ^ np.uint64(buf[i])) * prime
    return np.int64(h & np.uint64(_HASH_MASK))


@njit(cache=True, nogil=True)
def _scaled(buf, s, e, scale):  # type: ignore[no-untyped-def]
    """Exact ``decimal * 10**scale`` of the span, as (value, ok).

    Grammar as engine.fixedpoint.parse_decimal: [+-] digits [. digits], not both digit runs empty.
    ``ok`` is False when the text is not a decimal, has non-zero digits beyond ``scale``, or needs
    more than 18 significant digits (int64 safety).
    """
    i = s
    neg = False
    if i < e and (buf[i] == 45 or buf[i] == 43):
        neg = buf[i] == 45
        i += 1
    mant = 0
    sig = 0  # significant digits in mant
    frac = 0  # fractional digits taken into mant
    digits = 0
    dot = False
    while i < e:
        c = buf[i]
        i += 1
        if 48 <= c <= 57:
            digits += 1
            if dot:
                if frac >= scale:
                    if c != 48:
                        return 0, False  # off the scale: not exact
                    continue
                frac += 1
            if mant != 0 or c != 48:
                sig += 1
                if sig > 18:
                    return 0, False
            mant = mant * 10 + (c - 48)
        elif c == 46 and not dot:
            dot = True
        else:
            return 0, False
    if digits == 0:
        return 0, False
    for _ in range(scale - frac):
        if mant != 0:
            sig += 1
            if sig > 18:
                return 0, False
        mant *= 10
    return (-mant if neg else mant), True


# --------------------------------------------------------------------------------------------
# Fields of one valid frame


@njit(cache=True, nogil=True)
def _open_entry(ents, ne, msg_row):  # type: ignore[no-untyped-def]
    ents[ne, E_MSG] = msg_row
    ents[ne, E_TYPE] = 0
    ents[ne, E_ACTION] = -1
    ents[ne, E_PRICE] = 0
    ents[ne, E_SIZE] = 0
    ents[ne, E_POSITION] = 0
    ents[ne, E_FLAGS] = 0
    ents[ne, E_ID_START] = -1
    ents[ne, E_ID_END] = -1
    ents[ne, E_ID_HASH] = 0
    ents[ne, E_SYM_START] = -1
    ents[ne, E_SYM_END] = -1
    ents[ne, E_SYM_HASH] = 0
    ents[ne, E_PX_START] = -1
    ents[ne, E_PX_END] = -1
    ents[ne, E_SIZE_START] = -1
    ents[ne, E_SIZE_END] = -1


@njit(cache=True, nogil=True)
def _fields(buf, soh, start, end, msgs, nm, ents, ne, flds, nf, price_scale, size_scale):  # type: ignore[no-untyped-def]
    """Fill message row ``nm``, entry rows from ``ne`` and field rows from ``nf`` from a valid
    frame; return the new (ne, nf). ``soh`` holds the offsets of every SOH in ``buf``."""
    msgs[nm, M_START] = start
    msgs[nm, M_END] = end
    msgs[nm, M_TYPE] = -1
    msgs[nm, M_SEQ] = -1
    msgs[nm, M_POSS_DUP] = 0
    msgs[nm, M_FIRST_ENTRY] = ne
    msgs[nm, M_DECLARED] = -1
    msgs[nm, M_REQ_START] = -1
    msgs[nm, M_REQ_END] = -1
    msgs[nm, M_REQ_HASH] = 0
    msgs[nm, M_SYM_START] = -1
    msgs[nm, M_SYM_END] = -1
    msgs[nm, M_SYM_HASH] = 0
    msgs[nm, M_FIRST_FIELD] = nf
    is_md = False
    delimiter = 269
    in_group = False
    open_entry = -1
    seen_type = False
    seen_seq = False
    seen_dup = False
    i = start
    stop = end - 1
    k = np.searchsorted(soh, start)  # soh[k] is the SOH that ends the field starting at i
    while i < stop:
        fe = soh[k]
        k += 1
        # tag: digits up to "=" (a tag is short; the value is never scanned byte by byte)
        tag = 0
        j = i
        ok = True
        while j < fe:
            c = buf[j]
            if c == 61:
                break
            if c < 48 or c > 57:
                ok = False
            elif j - i < 18:  # leading zeros allowed, like int(); over 18 digits is malformed
                tag = tag * 10 + (c - 48)
            j += 1
        if j == fe or j == i or not ok or j - i > 18:
            # malformed field: indexed as tag 0 with its whole text, as decode_fields does
            flds[nf, F_TAG] = 0
            flds[nf, F_START] = i
            flds[nf, F_END] = fe
            nf += 1
            i = fe + 1
            continue
        vs = j + 1
        ve = fe
        i = fe + 1
        flds[nf, F_TAG] = tag
        flds[nf, F_START] = vs
        flds[nf, F_END] = ve
        nf += 1
        if tag < 35 and tag != 34:
            continue
        # 35, 34 and 43: the first occurrence counts, as in FixMessage.get
        if tag == 35:
            if not seen_type:
                seen_type = True
                mtype = -1
                if ve - vs == 1:
                    mtype = buf[vs]
                elif ve - vs == 2:
                    mtype = buf[vs] | (buf[vs + 1] << 8)
                msgs[nm, M_TYPE] = mtype
                is_md = mtype == 87 or mtype == 88
                delimiter = 279 if mtype == 88 else 269
        elif tag == 34:
            if not seen_seq:
                seen_seq = True
                msgs[nm, M_SEQ] = parse_uint(buf, vs, ve)
        elif tag == 43:
            if not seen_dup:
                seen_dup = True
                msgs[nm, M_POSS_DUP] = 1 if (ve - vs == 1 and buf[vs] == 89) else 0
        elif not is_md:
            continue
        elif tag == 262:
            msgs[nm, M_REQ_START] = vs
            msgs[nm, M_REQ_END] = ve
            msgs[nm, M_REQ_HASH] = _hash(buf, vs, ve)
        elif tag == 268:
            msgs[nm, M_DECLARED] = parse_uint(buf, vs, ve)
            in_group = True
        elif tag == 55 and not (in_group and open_entry >= 0):
            msgs[nm, M_SYM_START] = vs
            msgs[nm, M_SYM_END] = ve
            msgs[nm, M_SYM_HASH] = _hash(buf, vs, ve)
        elif in_group and (
            tag == 269 or tag == 270 or tag == 271 or tag == 278 or tag == 279 or tag == 290 or tag == 55
        ):
            if tag == 269:
                bit = _TYPE_SET
            elif tag == 270:
                bit = HAS_PRICE
            elif tag == 271:
                bit = HAS_SIZE
            elif tag == 278:
                bit = HAS_ID
            elif tag == 279:
                bit = _ACTION_SET
            elif tag == 290:
                bit = HAS_POSITION
            else:
                bit = _SYM_SET
            if tag == delimiter or open_entry < 0 or (ents[open_entry, E_FLAGS] & bit) != 0:
                _open_entry(ents, ne, nm)
                open_entry = ne
                ne += 1
            e = open_entry
            ents[e, E_FLAGS] |= bit
            if tag == 269:
                ents[e, E_TYPE] = buf[vs] if ve - vs == 1 else 0
            elif tag == 270:
                ents[e, E_PX_START] = vs
                ents[e, E_PX_END] = ve
                v, exact = _scaled(buf, vs, ve, price_scale)
                if exact:
                    ents[e, E_PRICE] = v
                    ents[e, E_FLAGS] |= PRICE_EXACT
            elif tag == 271:
                ents[e, E_SIZE_START] = vs
                ents[e, E_SIZE_END] = ve
                v, exact = _scaled(buf, vs, ve, size_scale)
                if exact:
                    ents[e, E_SIZE] = v
                    ents[e, E_FLAGS] |= SIZE_EXACT
            elif tag == 278:
                ents[e, E_ID_START] = vs
                ents[e, E_ID_END] = ve
                ents[e, E_ID_HASH] = _hash(buf, vs, ve)
            elif tag == 279:
                ents[e, E_ACTION] = (buf[vs] - 48) if (ve - vs == 1 and 48 <= buf[vs] <= 57) else -2
            elif tag == 290:
                ents[e, E_POSITION] = parse_uint(buf, vs, ve)
            else:
                ents[e, E_SYM_START] = vs
                ents[e, E_SYM_END] = ve
                ents[e, E_SYM_HASH] = _hash(buf, vs, ve)
    # Entries without their own Symbol take the message's; bookkeeping bits are cleared.
    first = msgs[nm, M_FIRST_ENTRY]
    for k in range(first, ne):
        if ents[k, E_SYM_START] < 0:
            ents[k, E_SYM_START] = msgs[nm, M_SYM_START]
            ents[k, E_SYM_END] = msgs[nm, M_SYM_END]
            ents[k, E_SYM_HASH] = msgs[nm, M_SYM_HASH]
        ents[k, E_FLAGS] &= HAS_PRICE | PRICE_EXACT | HAS_SIZE | SIZE_EXACT | HAS_ID | HAS_POSITION
    msgs[nm, M_ENTRY_COUNT] = ne - first
    msgs[nm, M_FIELD_COUNT] = nf - msgs[nm, M_FIRST_FIELD]
    return ne, nf


# --------------------------------------------------------------------------------------------
# The kernel


@njit(cache=True, nogil=True)
def _decode(buf, soh, n, max_size, price_scale, size_scale, msgs, ents, flds, state):  # type: ignore[no-untyped-def]
    """Frame (fixserver._framing) and decode ``buf[:n]``; results in ``msgs``/``ents``; bookkeeping in ``state``."""
    state[FS_GARBLED] = 0
    state[FS_REASON] = 0
    state[_S_STATUS] = _STATUS_OK
    nm = 0
    ne = 0
    nf = 0
    pos = 0
    # the stop offset is read after the loop (see next_frame on the loop's shape)
    while True:
        start, end, _, _ = next_frame(buf, n, pos, max_size, state)
        if end <= 0:
            break
        ne, nf = _fields(buf, soh, start, end, msgs, nm, ents, ne, flds, nf, price_scale, size_scale)
        nm += 1
        pos = end
    if end == -2:  # too large: the wrapper re-reads the digits and raises
        state[_S_STATUS] = _STATUS_TOO_LARGE
        state[_S_TOO_LARGE] = start
    state[_S_CONSUMED] = start  # where the bytes kept for the next read begin
    state[_S_NMSGS] = nm
    state[_S_NENTRIES] = ne
    state[_S_NFIELDS] = nf


@njit(cache=True, nogil=True)
def _extract(msgs, flds, wanted, out):  # type: ignore[no-untyped-def]
    """out[i, k] = (start, end) of the first ``wanted[k]`` field of message i, or (-1, -1)."""
    nw = wanted.shape[0]
    for i in range(msgs.shape[0]):
        for k in range(nw):
            out[i, k, 0] = -1
            out[i, k, 1] = -1
        first = msgs[i, M_FIRST_FIELD]
        for f in range(first, first + msgs[i, M_FIELD_COUNT]):
            tag = flds[f, F_TAG]
            for k in range(nw):
                if wanted[k] == tag:
                    if out[i, k, 0] < 0:
                        out[i, k, 0] = flds[f, F_START]
                        out[i, k, 1] = flds[f, F_END]
                    break


# --------------------------------------------------------------------------------------------
# Python owner


@dataclass(frozen=True, slots=True)
class MdEntry:
    """One market-data entry as plain Python values (reference semantics, tests, non-hot tools)."""

    msg_index: int
    entry_type: bytes | None  # 269
    action: bytes | None  # 279
    price: bytes | None  # 270, raw
    size: bytes | None  # 271, raw
    entry_id: bytes | None  # 278
    position: bytes | None  # 290
    symbol: bytes | None  # 55 of the entry, else of the message


class DecodedBatch:
    """What one :meth:`BatchDecoder.feed` produced. Views stay valid until the next feed.

    ``msgs[:, M_*]`` and ``entries[:, E_*]`` are int64 arrays (see the module docstring); spans
    index into ``buffer``.
    """

    __slots__ = ("buffer", "msgs", "entries", "fields")

    def __init__(self, buffer: bytes, msgs: np.ndarray, entries: np.ndarray, fields: np.ndarray) -> None:
        self.buffer = buffer
        self.msgs = msgs
        self.entries = entries
        self.fields = fields

    def __len__(self) -> int:
        return len(self.msgs)

    def span(self, start: int, end: int) -> bytes | None:
        """The bytes of a span column pair, or None where the field was absent."""
        return None if start < 0 else self.buffer[start:end]

    def message(self, index: int) -> FixMessage:
        """Frame ``index`` as a FixMessage, from the field index (no re-parsing)."""
        first, count = self.msgs[index, M_FIRST_FIELD], self.msgs[index, M_FIELD_COUNT]
        buf = self.buffer
        return FixMessage([(t, buf[s:e]) for t, s, e in self.fields[first : first + count].tolist()])

    def messages(self, types: frozenset[int] | None = None) -> list[FixMessage]:
        """Every frame (or those whose M_TYPE is in ``types``) as FixMessage, in order."""
        buf = self.buffer
        rows = self.fields.tolist()
        out = []
        for first, count, mtype in self.msgs[:, (M_FIRST_FIELD, M_FIELD_COUNT, M_TYPE)].tolist():
            if types is None or mtype in types:
                out.append(FixMessage([(t, buf[s:e]) for t, s, e in rows[first : first + count]]))
        return out

    def extract(self, tags: Sequence[int]) -> list[list[bytes | None]]:
        """Per message, the value of the first occurrence of each tag (None where absent).

        The application's fast read of order flow (D, F, 8): only the fields it asks for become
        Python objects; the tag search runs in the kernel over the field index.
        """
        wanted = np.asarray(tags, np.int64)
        spans = np.empty((len(self.msgs), len(wanted), 2), np.int64)
        _extract(self.msgs, self.fields, wanted, spans)
        buf = self.buffer
        return [[buf[s:e] if s >= 0 else None for s, e in row] for row in spans.tolist()]

    def entry_objects(self) -> list[MdEntry]:
        """Entries as :class:`MdEntry` (for tests and tools; the hot path reads the arrays)."""
        out = []
        span = self.span
        for row in self.entries.tolist():
            px = span(row[E_PX_START], row[E_PX_END])
            size = span(row[E_SIZE_START], row[E_SIZE_END])
            flags = row[E_FLAGS]
            out.append(
                MdEntry(
                    row[E_MSG],
                    bytes((row[E_TYPE],)) if row[E_TYPE] else None,
                    None if row[E_ACTION] == -1 else self._action(row),
                    px,
                    size,
                    span(row[E_ID_START], row[E_ID_END]),
                    self._position(row) if flags & HAS_POSITION else None,
                    span(row[E_SYM_START], row[E_SYM_END]),
                )
            )
        return out

    def _action(self, row: list[int]) -> bytes:
        # the raw byte is not kept for a bad action; re-read it from the frame for exactness
        if row[E_ACTION] >= 0:
            return b"%d" % row[E_ACTION]
        return b"?"

    def _position(self, row: list[int]) -> bytes:
        return b"%d" % row[E_POSITION] if row[E_POSITION] >= 0 else b"?"


class BatchDecoder:
    """Streaming batch decoder for an LP feed: bytes in, message and entry arrays out.

    Framing rules, the ``garbled`` count and :class:`FrameTooLarge` are those of
    :class:`fixserver.codec.FrameDecoder`. ``price_scale``/``size_scale`` are the decimal scales of
    the integer price and size columns (8 covers every FX tick; per-instrument ticks are then
    one vectorised integer division away).
    """

    def __init__(
        self, price_scale: int = 8, size_scale: int = 2, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ) -> None:
        self.price_scale = price_scale
        self.size_scale = size_scale
        self.max_message_size = max_message_size
        self.garbled = 0
        self.last_garbled_reason: str | None = None
        self._pending = b""
        self._state = np.zeros(_NS, np.int64)
        self._msgs = np.empty((0, _NM), np.int64)
        self._ents = np.empty((0, _NE), np.int64)
        self._flds = np.empty((0, _NF), np.int64)

    @property
    def buffered(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes | bytearray | memoryview) -> DecodedBatch:
        """Decode every complete frame in the bytes received so far; keep the partial tail.

        Raises :class:`FrameTooLarge` (with the messages decoded before it) like FrameDecoder.
        """
        chunk = data if isinstance(data, bytes) else bytes(data)
        buf = self._pending + chunk if self._pending else chunk
        n = len(buf)
        arr = np.frombuffer(buf, np.uint8)
        # Where every SOH is (vectorised); the kernel jumps from field to field with it. Every
        # field, entry and frame ends in its own SOH, so the count also bounds the output rows.
        soh = np.flatnonzero(arr == 1)
        rows = len(soh) + 1
        if self._flds.shape[0] < rows:
            self._msgs = np.empty((2 * rows // 4 + 1, _NM), np.int64)
            self._ents = np.empty((2 * rows, _NE), np.int64)
            self._flds = np.empty((2 * rows, _NF), np.int64)
        state = self._state
        _decode(arr, soh, n, self.max_message_size, self.price_scale, self.size_scale,
                self._msgs, self._ents, self._flds, state)  # fmt: skip
        garbled = int(state[FS_GARBLED])
        if garbled:
            self.garbled += garbled
            self.last_garbled_reason = REASONS[int(state[FS_REASON])]
        batch = DecodedBatch(
            buf,
            self._msgs[: int(state[_S_NMSGS])],
            self._ents[: int(state[_S_NENTRIES])],
            self._flds[: int(state[_S_NFIELDS])],
        )
        self._pending = buf[int(state[_S_CONSUMED]) :]
        if state[_S_STATUS] == _STATUS_TOO_LARGE:
            start = int(state[_S_TOO_LARGE])
            digits = buf[start:].split(b"\x01", 2)[1][2:].split(b"\x01")[0][:21]
            self._pending = b""
            state[:] = 0
            raise FrameTooLarge(int(digits), self.max_message_size, batch.messages())
        return batch


def reference_entries(messages: list[FixMessage]) -> list[MdEntry]:
    """Plain-Python statement of the entry semantics the kernel implements (see module doc)."""
    out: list[MdEntry] = []
    entry_tags = {269, 270, 271, 278, 279, 290, 55}
    for index, msg in enumerate(messages):
        msg_type = msg.msg_type
        if msg_type not in (b"W", b"X"):
            continue
        delimiter = 279 if msg_type == b"X" else 269
        msg_symbol: bytes | None = None
        in_group = False
        entries: list[dict[int, bytes]] = []
        for tag, value in msg.fields:
            if tag == 268:
                in_group = True
            elif tag == 55 and not (in_group and entries):
                msg_symbol = value
            elif in_group and tag in entry_tags:
                if tag == delimiter or not entries or tag in entries[-1]:
                    entries.append({})
                entries[-1][tag] = value
        for e in entries:
            etype = e.get(269)
            action = e.get(279)
            if action is not None and not (len(action) == 1 and action.isdigit()):
                action = b"?"
            position = e.get(290)
            if position is not None and not (position.isdigit() and len(position) <= 18):
                position = b"?"
            out.append(
                MdEntry(
                    index,
                    etype if etype is not None and len(etype) == 1 else None,
                    action,
                    e.get(270),
                    e.get(271),
                    e.get(278),
                    None if position is None else (position if position == b"?" else b"%d" % int(position)),
                    e.get(55, msg_symbol),
                )
            )
    return out
