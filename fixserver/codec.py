"""FIX 4.4 wire codec: framing, decode and encode.

Wire format (FIX 4.4 Vol. 2, "Message format"): ``8=BeginString SOH 9=BodyLength SOH 35=MsgType
SOH ... 10=CheckSum SOH``. BodyLength counts the bytes from the first byte after the SOH that ends
field 9 up to and including the SOH before ``10=``. CheckSum is the byte sum of everything before
``10=``, modulo 256, written as exactly three digits.

This module is the one place framing is decided:

* :func:`encode` builds a whole message from the header fields after 35 and the body fields.
* :class:`PreparedBody` / :func:`encode_with_prepared` split a message into a shared body (encoded
  and summed once) and a per-session header, for market-data fan-out: CheckSum is a byte sum, so
  the body's sum is computed once and each session only adds its header's.
* :class:`FrameDecoder` turns a byte stream into :class:`~fixserver.message.FixMessage` objects,
  ignoring and counting garbled messages as the spec asks (they never reach the session and so
  never consume a sequence number) and resynchronising on the next ``8=FIX``.

The batch fast path for market data lives in :mod:`fixserver.mdbatch`; it shares the framing rules
written here and is differential-tested against :class:`FrameDecoder` and simplefix.

The hot encoders (:func:`snapshot_encoder`, :class:`MessageTemplate`, :func:`encode_prepared`) run in C
(:mod:`fixserver._wire`, built by ``pip install -e .``); the Python encoders they replace stay here as the
reference (:func:`reference_snapshot_encoder`, ``MessageTemplate.reference_encode``,
:func:`reference_encode_prepared`), and the tests hold the two byte for byte and error for error.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

from fixserver import _wire
from fixserver.message import SOH, FixMessage

__all__ = [
    "CodecError",
    "EncodeError",
    "FrameTooLarge",
    "FrameDecoder",
    "PreparedBody",
    "byte_sum",
    "checksum_field",
    "decode_fields",
    "encode",
    "encode_with_prepared",
    "encode_prepared",
    "MessageTemplate",
    "EXECUTION_REPORT_FILL",
    "md_snapshot_body",
    "encode_snapshot",
    "snapshot_encoder",
    "reference_snapshot_encoder",
    "reference_encode_prepared",
    "md_incremental_body",
    "prepare_body",
    "DEFAULT_MAX_MESSAGE_SIZE",
]

FieldValue = bytes | int | str
Field = tuple[int, FieldValue]

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
"""Largest BodyLength a :class:`FrameDecoder` accepts by default (1 MiB): far above any message we
use (a 10-level W is ~700 bytes) and small enough that a hostile 9= cannot exhaust memory."""

_BEGIN_STRING = re.compile(rb"8=FIXT?\.[0-9]\.[0-9]")
_MAX_LENGTH_DIGITS = 20  # more digits than any int64: garbage, not a length
_START = b"8=FIX"


class CodecError(Exception):
    """Base class of every error this codec raises on purpose."""


class EncodeError(CodecError, ValueError):
    """A value cannot be put on the wire (empty, contains SOH, not ASCII, or a float)."""


class FrameTooLarge(CodecError):
    """A peer announced a BodyLength above the configured maximum.

    The transport turns this into a disconnect: there is no way to resynchronise with a peer
    that may be streaming gigabytes at us. ``messages`` holds the valid messages decoded from the
    same :meth:`FrameDecoder.feed` call before the oversized frame, in order, so nothing already
    received is lost.
    """

    def __init__(self, body_length: int, limit: int, messages: list[FixMessage]) -> None:
        super().__init__(f"BodyLength {body_length} exceeds the maximum message size {limit}")
        self.body_length = body_length
        self.limit = limit
        self.messages = messages


# --------------------------------------------------------------------------------------------
# Checksum


def byte_sum(data: bytes | bytearray | memoryview) -> int:
    """Exact byte sum of ``data`` (not reduced mod 256).

    ``sum(data)`` walks Python ints (~6 ns a byte); Adler-32's first half is the byte sum modulo
    65521 computed in C, and is exact while the sum stays below 65521: any 256 bytes, or any 515
    ASCII bytes (each < 128), which covers nearly every FIX message in one call and a 10-level W in two.
    """
    n = len(data)
    if n <= 256:
        return zlib.adler32(data, 0) & 0xFFFF
    chunk = 256
    if isinstance(data, bytes) and data.isascii():
        if n <= 515:
            return zlib.adler32(data, 0) & 0xFFFF
        if n <= 1030:  # two slices cost less than a memoryview and a loop
            return (zlib.adler32(data[:515], 0) & 0xFFFF) + (zlib.adler32(data[515:], 0) & 0xFFFF)
        chunk = 515
    view = memoryview(data)
    total = 0
    for i in range(0, n, chunk):
        total += zlib.adler32(view[i : i + chunk], 0) & 0xFFFF
    return total


_CHECKSUM_FIELDS = tuple(b"10=%03d\x01" % i for i in range(256))


def checksum_field(total: int) -> bytes:
    """The trailer ``10=NNN<SOH>`` for a byte sum ``total`` (any size; reduced mod 256)."""
    return _CHECKSUM_FIELDS[total & 0xFF]


# --------------------------------------------------------------------------------------------
# Encoding

_TAG_PREFIX: dict[int, bytes] = {}


def _tag_prefix(tag: int) -> bytes:
    prefix = _TAG_PREFIX.get(tag)
    if prefix is None:
        if type(tag) is not int or tag <= 0:
            raise EncodeError(f"tag must be a positive int, got {tag!r}")
        prefix = _TAG_PREFIX[tag] = b"%d=" % tag
    return prefix


def _value_bytes(tag: int, value: FieldValue) -> bytes:
    """Wire bytes of one value; bytes are the fast path, int/str/bool are conveniences."""
    if type(value) is bytes:
        raw = value
    elif isinstance(value, bool):  # before int: bool is an int, and FIX booleans are Y/N
        raw = b"Y" if value else b"N"
    elif isinstance(value, int):
        raw = b"%d" % value
    elif isinstance(value, str):
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise EncodeError(f"tag {tag}: value is not ASCII") from None
    elif isinstance(value, (bytearray, memoryview)):
        raw = bytes(value)
    else:
        # Floats are refused on purpose: prices go on the wire as exact decimal text.
        raise EncodeError(f"tag {tag}: cannot encode {type(value).__name__}; give bytes, int or str")
    if not raw:
        raise EncodeError(f"tag {tag}: empty value (FIX forbids a tag without a value)")
    if SOH in raw:
        raise EncodeError(f"tag {tag}: value contains SOH")
    return raw


def _encode_fields(fields: Sequence[Field], out: list[bytes]) -> None:
    for tag, value in fields:
        out.append(_tag_prefix(tag))
        out.append(_value_bytes(tag, value))
        out.append(SOH)


def _frame(begin_string: bytes, body: bytes, body_sum: int) -> bytes:
    """Wrap an encoded body (35=... through the SOH before 10=) with 8, 9 and 10."""
    head = b"8=%s\x019=%d\x01" % (begin_string, len(body))
    return b"".join((head, body, _CHECKSUM_FIELDS[(byte_sum(head) + body_sum) & 0xFF]))


def encode(
    msg_type: FieldValue,
    header: Sequence[Field],
    body: Sequence[Field],
    begin_string: bytes = b"FIX.4.4",
) -> bytes:
    """Encode one message.

    ``header`` is the standard header after 35, in order (49, 56, 34, 52, then optional 43, 122,
    ...); ``body`` the application fields in order, repeating groups flat. BodyLength (9) and
    CheckSum (10) are computed here. Raises :class:`EncodeError` for a value FIX cannot carry.
    """
    out: list[bytes] = [b"35=", _value_bytes(35, msg_type), SOH]
    _encode_fields(header, out)
    _encode_fields(body, out)
    encoded = b"".join(out)
    return _frame(begin_string, encoded, byte_sum(encoded))


class PreparedBody(NamedTuple):
    """The session-independent part of a message, encoded once and shared across sessions.

    ``body`` is every field after the header (each ending in SOH); ``body_sum`` its exact byte
    sum. Only 35, the per-session header, 8, 9 and 10 are added per session. (A NamedTuple, not
    a dataclass: one is built per published book, and tuple construction is the cheapest.)
    """

    msg_type: bytes
    body: bytes
    body_sum: int


def prepare_body(msg_type: FieldValue, body: Sequence[Field]) -> PreparedBody:
    """Encode the shared body of a message once (see :func:`encode_with_prepared`)."""
    out: list[bytes] = []
    _encode_fields(body, out)
    encoded = b"".join(out)
    return PreparedBody(_value_bytes(35, msg_type), encoded, byte_sum(encoded))


def encode_with_prepared(
    header: Sequence[Field] | bytes, prepared: PreparedBody, begin_string: bytes = b"FIX.4.4"
) -> bytes:
    """Encode one session's copy of a shared body: only the header is encoded and summed here.

    ``header`` is the header after 35 as fields, or already encoded bytes (each field ending in
    SOH) when the session keeps its constant part (49, 56) pre-encoded.
    """
    if isinstance(header, bytes):
        encoded_header = header
    else:
        out: list[bytes] = []
        _encode_fields(header, out)
        encoded_header = b"".join(out)
    return encode_prepared(encoded_header, prepared, begin_string)


# --------------------------------------------------------------------------------------------
# Fast encoders: native (fixserver._wire) per message shape, with their Python reference: code generated per
# message shape, one join per message, checks that cost a C call each

_FIX44 = b"FIX.4.4"
_PREFIX_TABLE_SIZE = 4096
_PREFIX_TABLES: dict[bytes, tuple[tuple[bytes, ...], tuple[int, ...]]] = {}
_JOIN_ITEMS = 30
"""Most pieces one generated ``b"".join((...))`` takes: CPython compiles a tuple display of more than 30 items
into a list built item by item (its stack-use guideline), which costs more than a second join."""


def _prefix_table(msg_type: bytes) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
    """``8=FIX.4.4<SOH>9=N<SOH>35=<msg_type><SOH>`` for every BodyLength N below 4096, and each one's byte sum.

    Built once per message type, so framing a FIX 4.4 message is a tuple lookup for the prefix and for its share
    of the CheckSum.
    """
    table = _PREFIX_TABLES.get(msg_type)
    if table is None:
        prefixes = tuple(b"8=FIX.4.4\x019=%d\x0135=%s\x01" % (n, msg_type) for n in range(_PREFIX_TABLE_SIZE))
        table = _PREFIX_TABLES[msg_type] = prefixes, tuple(map(sum, prefixes))
    return table


def _frame_payload(begin_string: bytes, msg_type: bytes, payload: bytes) -> bytes:
    """Frame ``payload`` (the message after ``35=<type><SOH>``): the generated encoders' path for a message over
    256 bytes or another BeginString."""
    n = len(msg_type) + 4 + len(payload)
    if n < _PREFIX_TABLE_SIZE and begin_string == _FIX44:
        prefixes, sums = _PREFIX_TABLES.get(msg_type) or _prefix_table(msg_type)
        return b"".join((prefixes[n], payload, _CHECKSUM_FIELDS[(sums[n] + byte_sum(payload)) & 0xFF]))
    encoded = b"".join((b"35=", msg_type, SOH, payload))
    return _frame(begin_string, encoded, byte_sum(encoded))


def _frame_prepared(msg_type: bytes, header: bytes, body: bytes, body_sum: int, begin_string: bytes) -> bytes:
    # BodyLength = len("35=" + type + SOH + header + body): known without building that prefix.
    n = len(msg_type) + 4 + len(header) + len(body)
    if n < _PREFIX_TABLE_SIZE and begin_string == _FIX44:
        prefixes, sums = _PREFIX_TABLES.get(msg_type) or _prefix_table(msg_type)
        total = sums[n] + byte_sum(header) + body_sum
        return b"".join((prefixes[n], header, body, _CHECKSUM_FIELDS[total & 0xFF]))
    start = b"8=%s\x019=%d\x0135=%s\x01%s" % (begin_string, n, msg_type, header)
    return b"".join((start, body, _CHECKSUM_FIELDS[(byte_sum(start) + body_sum) & 0xFF]))


def _generate_encoder(
    name: str, signature: str, unpack: Sequence[str], msg_type: bytes, pieces: Sequence[bytes | str], what: str
) -> Callable[..., bytes]:
    """Compile the encoder of one message shape (generated source, as namedtuple and dataclasses do).

    ``pieces`` is the message after ``35=<type><SOH>`` in wire order: ``header`` (the pre-encoded header, fields
    ending in SOH) first, then ``bytes`` for constant text (tags, ``=``, SOH) and ``str`` for the names of the
    values that ``unpack`` binds. The generated function:

    * joins the pieces (at most :data:`_JOIN_ITEMS` to a join); a value that is not bytes-like, or levels of
      the wrong shape, raise TypeError/ValueError there, reported as :class:`EncodeError` after ``what``;
    * refuses a value containing SOH (the SOH count after the header must be exactly the constants' count, so a
      value cannot smuggle a field in) or an empty one (one ``and`` chain over the values);
    * frames with the precomputed ``8=FIX.4.4 9=N 35=type`` prefix for N and its byte sum, so the only sum
      taken per message is one Adler-32 of the joined parts (its low half is their exact byte sum below 257
      bytes; longer messages go through :func:`byte_sum`).
    """
    merged: list[bytes | str] = []
    for piece in pieces:
        if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += piece
        else:
            merged.append(piece)
    values = [p for p in merged if isinstance(p, str) and p != "header"]
    n_soh = sum(p.count(SOH) for p in merged if isinstance(p, bytes))
    # A join takes at most _JOIN_ITEMS pieces; a longer message nests the rest as one piece of the join before.
    step = _JOIN_ITEMS - 1
    chunks = [merged[i : i + step] for i in range(0, len(merged), step)] if len(merged) > _JOIN_ITEMS else [merged]
    joins = []
    for k in reversed(range(len(chunks))):
        items = [p if isinstance(p, str) else repr(p) for p in chunks[k]]
        items += [f"p{k + 1}"] if k + 1 < len(chunks) else []
        joins.append(f"p{k} = b''.join(({', '.join(items)},))")
    src = [f"def {name}({signature}):", "    try:"]
    src += [f"        {line}" for line in [*unpack, *joins]]
    type_len = len(msg_type) + 4
    src += [
        "    except (TypeError, ValueError) as exc:",
        "        raise EncodeError(f'{WHAT}: {exc}') from None",
        f"    if p0.count(1, len(header)) != {n_soh}" + (f" or not ({' and '.join(values)}):" if values else ":"),
        "        raise EncodeError(REFUSED)",
        f"    n = len(p0) + {type_len}",
        # below 257 bytes Adler-32's low half is the exact byte sum (its high half vanishes mod 256)
        f"    if n <= {256 + type_len} and begin_string is FIX44:",
        "        return b''.join((PREFIXES[n], p0, CHECKSUMS[(SUMS[n] + adler32(p0, 0)) & 0xFF]))",
        "    return frame_payload(begin_string, MSG_TYPE, p0)",
    ]
    prefixes, sums = _prefix_table(msg_type)
    namespace: dict[str, object] = {
        "EncodeError": EncodeError, "WHAT": what, "REFUSED": f"{what}: a value is empty or contains SOH",
        "FIX44": _FIX44, "PREFIXES": prefixes, "SUMS": sums, "CHECKSUMS": _CHECKSUM_FIELDS, "MSG_TYPE": msg_type,
        "adler32": zlib.adler32, "frame_payload": _frame_payload,
    }  # fmt: skip
    exec(compile("\n".join(src) + "\n", f"<encoder of {what}>", "exec"), namespace)
    return namespace[name]  # type: ignore[return-value]


def _native_encoder(
    msg_type: bytes, pieces: Sequence[bytes | str], what: str, shape: tuple[int, int, int, bool] | None = None
) -> _wire.Encoder:
    """The C twin of :func:`_generate_encoder` for the same ``pieces``: the constant text around the values
    (after the header) is handed over once; values are taken in the order the names appear in ``pieces``."""
    consts = [b""]
    for piece in pieces:
        if isinstance(piece, bytes):
            consts[-1] += piece
        elif piece != "header":
            consts.append(b"")
    return _wire.Encoder(msg_type, tuple(consts), what, EncodeError, shape)


class MessageTemplate:
    """A message shape with a fixed list of body tags and a generated encoder.

    For the hot messages whose fields are known in advance (an ExecutionReport for a fill, a NewOrderSingle):
    ``template.encode(header, values, begin_string=b"FIX.4.4")`` encodes a whole message, ``header`` being the
    encoded header after 35 (fields ending in SOH) and ``values`` one bytes value per tag, in tag order. A
    value that is empty, contains SOH or is not bytes raises :class:`EncodeError`. ``encode`` is native;
    ``reference_encode`` is the generated Python encoder it must equal (see :func:`_generate_encoder`).
    """

    __slots__ = ("msg_type", "tags", "_fmt", "_soh", "encode", "reference_encode")

    encode: Callable[..., bytes]
    reference_encode: Callable[..., bytes]

    def __init__(self, msg_type: bytes, tags: Sequence[int]) -> None:
        self.msg_type = msg_type
        self.tags = tuple(tags)
        self._fmt = b"".join(b"%d=%%s\x01" % t for t in self.tags)
        self._soh = len(self.tags)
        names = [f"v{i}" for i in range(len(self.tags))]
        pieces: list[bytes | str] = ["header"]
        for tag, value in zip(self.tags, names, strict=True):
            pieces += [b"%d=" % tag, value, SOH]
        what = f"{msg_type!r} template (values must be bytes, one per tag)"
        self.encode = _native_encoder(msg_type, pieces, what)
        self.reference_encode = _generate_encoder(
            "encode",
            "header, values, begin_string=FIX44",
            [f"{', '.join(names)}, = values" if names else "[] = values"],
            msg_type,
            pieces,
            what,
        )

    def body(self, values: tuple[bytes, ...]) -> bytes:
        """The encoded body fields (each ending in SOH)."""
        try:
            body = self._fmt % values
        except TypeError as exc:
            raise EncodeError(f"{self.msg_type!r} template: {exc} (values must be bytes, one per tag)") from None
        if body.count(SOH) != self._soh or not all(values):
            raise EncodeError(f"{self.msg_type!r} template: a value is empty or contains SOH")
        return body

    def prepare(self, values: tuple[bytes, ...]) -> PreparedBody:
        """The body as a :class:`PreparedBody`, to share across sessions."""
        body = self.body(values)
        return PreparedBody(self.msg_type, body, byte_sum(body))


EXECUTION_REPORT_FILL = MessageTemplate(b"8", (37, 11, 17, 150, 39, 55, 54, 38, 40, 44, 59, 32, 31, 151, 14, 6, 60))
"""ExecutionReport of a (partial) fill: OrderID, ClOrdID, ExecID, ExecType, OrdStatus, Symbol, Side,
OrderQty, OrdType, Price, TimeInForce, LastQty, LastPx, LeavesQty, CumQty, AvgPx, TransactTime."""

_BID_LEVEL = b"269=0\x01270=%s\x01271=%s\x01"
_ASK_LEVEL = b"269=1\x01270=%s\x01271=%s\x01"
_BID_LEVEL_ID = b"269=0\x01270=%s\x01271=%s\x01278=%s\x01"
_ASK_LEVEL_ID = b"269=1\x01270=%s\x01271=%s\x01278=%s\x01"


def md_snapshot_body(
    symbol: bytes,
    bids: Sequence[tuple[bytes, ...]],
    asks: Sequence[tuple[bytes, ...]],
    md_req_id: bytes | None = None,
) -> PreparedBody:
    """MarketDataSnapshotFullRefresh (W) body: [262,] 55, 268, then bid and ask levels.

    Levels are ``(price, size)`` or ``(price, size, entry_id)`` (269/270/271[/278]) as bytes,
    best first, all of one shape. Encoded once per publish and shared by every subscriber through
    :func:`encode_prepared` / :func:`encode_with_prepared`. Refuses (EncodeError) an empty value,
    SOH inside a value, or a value ending in "=" (the cheap whole-body check cannot tell those
    apart, and no price, size or id ends in "=").
    """
    count = len(bids) + len(asks)
    width = len(bids[0]) if bids else len(asks[0]) if asks else 2
    bid_fmt, ask_fmt = (_BID_LEVEL_ID, _ASK_LEVEL_ID) if width == 3 else (_BID_LEVEL, _ASK_LEVEL)
    if md_req_id is None:
        head = b"55=%s\x01268=%d\x01" % (symbol, count)
    else:
        head = b"262=%s\x0155=%s\x01268=%d\x01" % (md_req_id, symbol, count)
    try:
        # map over the bound % (C level): list comprehensions cost a frame each on 3.11
        body = b"".join((head, *map(bid_fmt.__mod__, bids), *map(ask_fmt.__mod__, asks)))
    except TypeError as exc:
        raise EncodeError(f"W levels must be (price, size[, id]) bytes tuples of one shape: {exc}") from None
    if body.count(SOH) != 2 + (md_req_id is not None) + (width + 1) * count or b"=\x01" in body:
        raise EncodeError("W: a value is empty or contains SOH")
    return PreparedBody(b"W", body, byte_sum(body))


_SNAPSHOT_ENCODERS: dict[tuple[int, int, int, bool], Callable[..., bytes]] = {}


def _snapshot_pieces(n_bids: int, n_asks: int, width: int, with_req: bool) -> tuple[list[str], list[bytes | str], str]:
    """The W of one book shape as ``_generate_encoder`` takes it: level unpacking, wire pieces, description.

    Unpacking a known number of levels by name is several times cheaper than flattening them in a loop.
    """
    pieces: list[bytes | str] = ["header"]
    if with_req:
        pieces += [b"262=", "md_req_id", SOH]
    pieces += [b"55=", "symbol", b"\x01268=%d\x01" % (n_bids + n_asks)]
    unpack = []
    for side, arg, etype, count in (("b", "bids", b"0", n_bids), ("a", "asks", b"1", n_asks)):
        levels = []
        for i in range(count):
            px, size, eid = f"{side}{i}p", f"{side}{i}s", f"{side}{i}i"
            pieces += [b"269=%s\x01270=" % etype, px, b"\x01271=", size, SOH]
            if width == 3:
                pieces += [b"278=", eid, SOH]
            levels.append(f"({px}, {size}, {eid})" if width == 3 else f"({px}, {size})")
        unpack.append(f"{', '.join(levels)}, = {arg}" if levels else f"[] = {arg}")
    shape = f"{n_bids} bid and {n_asks} ask ({'price, size, id' if width == 3 else 'price, size'})"
    return unpack, pieces, f"W of {shape} levels (bytes tuples)"


def _snapshot_encoder(n_bids: int, n_asks: int, width: int, with_req: bool) -> Callable[..., bytes]:
    """The native encoder of a whole W for one book shape (made once per shape)."""
    _, pieces, what = _snapshot_pieces(n_bids, n_asks, width, with_req)
    return _native_encoder(b"W", pieces, what, (n_bids, n_asks, width, with_req))


def reference_snapshot_encoder(
    n_bids: int, n_asks: int, with_ids: bool = True, with_req: bool = True
) -> Callable[..., bytes]:
    """The generated Python encoder :func:`snapshot_encoder`'s native one must equal, byte for byte and
    error for error (the tests' reference; not cached, not for the hot path)."""
    unpack, pieces, what = _snapshot_pieces(n_bids, n_asks, 3 if with_ids else 2, with_req)
    signature = "header, symbol, bids, asks, md_req_id=None, begin_string=FIX44"
    return _generate_encoder("encode_w", signature, unpack, b"W", pieces, what)


def snapshot_encoder(n_bids: int, n_asks: int, with_ids: bool = True, with_req: bool = True) -> Callable[..., bytes]:
    """The W encoder for one book shape, to keep per subscription (skips the shape lookup).

    Returns ``encode_w(header, symbol, bids, asks, md_req_id=None, begin_string=b"FIX.4.4")``
    with the semantics of :func:`encode_snapshot`; ``md_req_id`` is required iff ``with_req``.
    """
    key = (n_bids, n_asks, 3 if with_ids else 2, with_req)
    encoder = _SNAPSHOT_ENCODERS.get(key)
    if encoder is None:
        encoder = _SNAPSHOT_ENCODERS[key] = _snapshot_encoder(*key)
    return encoder


def encode_snapshot(
    header: bytes,
    symbol: bytes,
    bids: Sequence[tuple[bytes, ...]],
    asks: Sequence[tuple[bytes, ...]],
    md_req_id: bytes | None = None,
    begin_string: bytes = b"FIX.4.4",
) -> bytes:
    """One whole W for one session in a single ``bytes %``: the fast path when a body is not
    shared (for fan-out use :func:`md_snapshot_body` once and :func:`encode_prepared` per session).

    ``header`` is the encoded header after 35; levels as in :func:`md_snapshot_body`, all of one
    shape. Raises :class:`EncodeError` for an empty value, SOH in a value or mixed level shapes.
    """
    width = len(bids[0]) if bids else len(asks[0]) if asks else 2
    key = (len(bids), len(asks), width, md_req_id is not None)
    encoder = _SNAPSHOT_ENCODERS.get(key)
    if encoder is None:
        if width not in (2, 3):
            raise EncodeError(f"W levels must be (price, size) or (price, size, id), got {width} values")
        encoder = _SNAPSHOT_ENCODERS[key] = _snapshot_encoder(*key)
    return encoder(header, symbol, bids, asks, md_req_id, begin_string)


_X_CHANGE = b"279=%s\x01269=%s\x0155=%s\x01270=%s\x01271=%s\x01"
_X_NO_SIZE = b"279=%s\x01269=%s\x0155=%s\x01270=%s\x01"


def md_incremental_body(
    changes: Sequence[tuple[bytes, bytes, bytes, bytes, bytes | None]], md_req_id: bytes | None = None
) -> PreparedBody:
    """MarketDataIncrementalRefresh (X) body from ``(action 279, type 269, symbol, price, size)``.

    A change without a size (typically a delete, 279=2) gives ``None`` and omits 271.
    """
    parts = [b"268=%d\x01" % len(changes) if md_req_id is None else b"262=%s\x01268=%d\x01" % (md_req_id, len(changes))]
    nsoh = 1 + (md_req_id is not None)
    try:
        for action, etype, symbol, price, size in changes:
            if size is None:
                parts.append(_X_NO_SIZE % (action, etype, symbol, price))
                nsoh += 4
            else:
                parts.append(_X_CHANGE % (action, etype, symbol, price, size))
                nsoh += 5
    except TypeError as exc:
        raise EncodeError(f"X changes must be bytes: {exc}") from None
    body = b"".join(parts)
    if body.count(SOH) != nsoh or b"=\x01" in body:
        raise EncodeError("X: a value is empty or contains SOH")
    return PreparedBody(b"X", body, byte_sum(body))


encode_prepared = _wire.encode_prepared
"""``encode_prepared(header, prepared, begin_string=b"FIX.4.4")``: fast :func:`encode_with_prepared` for a
header already encoded as bytes (native; :func:`reference_encode_prepared` is its Python reference)."""


def reference_encode_prepared(header: bytes, prepared: PreparedBody, begin_string: bytes = b"FIX.4.4") -> bytes:
    """The Python :func:`encode_prepared`: the reference the native one must equal."""
    return _frame_prepared(prepared.msg_type, header, prepared.body, prepared.body_sum, begin_string)


# --------------------------------------------------------------------------------------------
# Decoding


def decode_fields(frame: bytes) -> list[tuple[int, bytes]]:
    """Split one complete, framed message (ending in SOH) into ``(tag, value)`` pairs.

    A field that is not ``digits=value`` is kept as ``(0, raw_field)``: the frame itself was
    sound (length and checksum matched), so it is not garbled; tag 0 is never a valid tag, and
    the dictionary rejects it with SessionRejectReason 0 (invalid tag number).
    """
    fields: list[tuple[int, bytes]] = []
    append = fields.append
    for item in frame[:-1].split(SOH):
        tag, sep, value = item.partition(b"=")
        if sep and tag.isdigit() and len(tag) <= 18:  # 18 digits: what an int64 index can hold
            append((int(tag), value))
        else:
            append((0, item))
    return fields


class FrameDecoder:
    """Streaming FIX decoder: bytes in (any split), validated messages out.

    A frame is delivered only if: it starts with ``8=FIX.n.n`` or ``8=FIXT.n.n`` (BeginString;
    whether it is the *expected* version is the session's decision), the second field is
    ``9=`` with a BodyLength that lands exactly on ``10=``, the first body field is ``35=`` with
    a value, and the trailer is ``10=NNN<SOH>`` (three digits) equal to the byte sum mod 256.
    Anything else is garbled: it is dropped, counted in :attr:`garbled`, and decoding resumes at
    the next ``8=FIX``. Each rejected frame counts one; a run of bytes outside any frame counts
    one, however many reads it spans (the tail of a rejected frame belongs to that frame).

    :meth:`feed` never raises on arbitrary bytes except :class:`FrameTooLarge` (BodyLength above
    ``max_message_size``), which the transport turns into a disconnect. The buffer never holds
    more than one partial frame of at most ``max_message_size`` plus its header.
    """

    __slots__ = ("max_message_size", "garbled", "last_garbled_reason", "_buf", "_in_junk", "_scanned")

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self.garbled = 0
        self.last_garbled_reason: str | None = None
        self._buf = bytearray()
        self._in_junk = False
        self._scanned = 0  # bytes of the pending partial frame already searched for a trailer

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def _garble(self, reason: str) -> None:
        """Count one garbled frame; the rest of it, up to the next frame, is the same event."""
        self.garbled += 1
        self._in_junk = True
        self.last_garbled_reason = reason

    def _junk(self) -> None:
        """Count a run of bytes outside any frame once, however many reads it spans."""
        if not self._in_junk:
            self.garbled += 1
            self._in_junk = True
            self.last_garbled_reason = "bytes outside any frame"

    def feed(self, data: bytes | bytearray | memoryview) -> list[FixMessage]:
        """Add bytes read from the peer; return the complete valid messages, in order."""
        buf = self._buf
        buf += data
        out: list[FixMessage] = []
        pos = 0
        n = len(buf)
        while pos < n:
            start = buf.find(_START, pos)
            if start < 0:
                # Keep a tail that may be the beginning of "8=FIX"; the rest is junk.
                keep = n
                for k in range(min(len(_START) - 1, n - pos), 0, -1):
                    if buf.endswith(_START[:k]):
                        keep = n - k
                        break
                if keep > pos:
                    self._junk()
                pos = keep
                break
            if start > pos:
                self._junk()
            pos = start
            end = self._frame_end(buf, start, n, out)
            if end == 0:  # incomplete: wait for more bytes
                self._scanned = n - start
                break
            self._scanned = 0
            if end < 0:  # garbled: resynchronise after this "8=FIX"
                pos = start + 1
                continue
            out.append(FixMessage(decode_fields(bytes(buf[start:end]))))
            self._in_junk = False
            pos = end
        del buf[:pos]
        return out

    def _frame_end(self, buf: bytearray, start: int, n: int, out: list[FixMessage]) -> int:
        """End offset of a valid frame at ``start``; 0 if more bytes are needed; -1 if garbled."""
        # "8=FIX.4.4<SOH>" or "8=FIXT.1.1<SOH>": anything else after "8=FIX" is not a frame start
        # (a stricter rule than "up to SOH" keeps junk ending in "8=FIX" from swallowing the
        # next real message as its BeginString).
        soh1 = buf.find(SOH, start, start + 11)
        if soh1 < 0:
            if n - start >= 11:
                self._garble("BeginString is not FIX.n.n or FIXT.n.n")
                return -1
            return 0
        if _BEGIN_STRING.fullmatch(buf, start, soh1) is None:
            self._garble("BeginString is not FIX.n.n or FIXT.n.n")
            return -1
        if n < soh1 + 3:
            return 0
        if buf[soh1 + 1 : soh1 + 3] != b"9=":
            self._garble("second field is not BodyLength (9)")
            return -1
        len_start = soh1 + 3
        soh2 = buf.find(SOH, len_start, len_start + _MAX_LENGTH_DIGITS + 1)
        digits = buf[len_start : (n if soh2 < 0 else soh2)][: _MAX_LENGTH_DIGITS + 1]
        if not digits.isdigit():
            if soh2 < 0 and not digits:
                return 0
            self._garble("BodyLength is not a number")
            return -1
        if soh2 < 0:
            if len(digits) > _MAX_LENGTH_DIGITS:
                self._garble("BodyLength is not a number")
                return -1
            return 0
        # Decided at BodyLength's SOH (at most _MAX_LENGTH_DIGITS bytes buffered, never the body):
        # before it, "9=52" may still turn out to be junk followed by the next message's "8=".
        body_length = int(digits)
        if body_length > self.max_message_size:
            raise FrameTooLarge(body_length, self.max_message_size, out)
        body_start = soh2 + 1
        body_end = body_start + body_length
        frame_end = body_end + 7
        # MsgType must be the first body field; checking it early drops junk without waiting.
        have = min(n, body_start + 3) - body_start
        if buf[body_start : body_start + have] != b"35="[:have] or body_length < 5:
            self._garble("third field is not MsgType (35)")
            return -1
        if n < frame_end:
            # A trailer before the announced end means BodyLength is wrong (tag 10 only ever
            # ends a message): drop it now instead of swallowing the next messages while waiting.
            # Resume where the last partial read stopped so a slow peer costs linear time.
            early = buf.find(b"\x0110=", max(body_start, start + self._scanned - 4), n)
            if 0 <= early < body_end - 1:
                self._garble("BodyLength does not end at CheckSum (10)")
                return -1
            return 0
        if buf[body_end - 1] != 1 or buf[body_end : body_end + 3] != b"10=" or buf[frame_end - 1] != 1:
            self._garble("BodyLength does not end at CheckSum (10)")
            return -1
        if buf[body_start + 3] == 1:
            self._garble("MsgType (35) is empty")
            return -1
        check = buf[body_end + 3 : body_end + 6]
        if not check.isdigit():
            self._garble("CheckSum is not three digits")
            return -1
        with memoryview(buf) as view:  # released at once: the bytearray is resized later
            total = byte_sum(view[start:body_end])
        if int(check) != total & 0xFF:
            self._garble("CheckSum mismatch")
            return -1
        return frame_end
