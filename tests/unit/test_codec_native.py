"""The native encoders (fixserver._wire) against their Python reference and simplefix.

Every hot encoder in :mod:`fixserver.codec` is C; the generated Python encoder it replaced is kept as the
reference. These tests hold the two to the same bytes for random valid messages (past 256 bytes, past the
4096-byte prefix table, any BeginString, many book shapes) and to the same outcome for invalid input:
EncodeError from both for a bad value or level shape, TypeError from both for a BeginString that is not
bytes, and the same bytes from both for what both accept (a bytearray value, a list as a level).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import simplefix
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixserver.codec import (
    EncodeError,
    FrameDecoder,
    MessageTemplate,
    PreparedBody,
    encode,
    encode_prepared,
    encode_snapshot,
    md_snapshot_body,
    prepare_body,
    reference_encode_prepared,
    reference_snapshot_encoder,
    snapshot_encoder,
)

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_parser = simplefix.FixParser()
DATA_TAGS = set(_parser.raw_len_tags) | set(_parser.raw_data_tags)  # length-prefixed in simplefix: not compared
values = st.binary(min_size=1, max_size=20).filter(lambda v: b"\x01" not in v)
tags = st.integers(1, 99999).filter(lambda t: t not in {8, 9, 10, 35} | DATA_TAGS)
fix_begin_strings = st.sampled_from([b"FIX.4.4", b"FIXT.1.1", b"FIX.4.2", b"FIX.5.0"])
# Framing takes any BeginString it is given (the session decides which it speaks): any bytes without SOH.
any_begin_strings = st.one_of(fix_begin_strings, st.binary(max_size=12).filter(lambda v: b"\x01" not in v))
msg_types = st.one_of(st.sampled_from([b"8", b"D", b"W", b"AB"]), values)
header_fields = st.lists(st.tuples(tags, values), min_size=0, max_size=6)


def header_bytes(fields: list[tuple[int, bytes]]) -> bytes:
    return b"".join(b"%d=%s\x01" % f for f in fields)


def outcome(fn: Callable[..., bytes], *args: Any, **kwargs: Any) -> bytes | type[BaseException]:
    """The bytes ``fn`` returns, or the class of what it raises."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        return type(exc)


def assert_framed(raw: bytes, begin: bytes) -> None:
    """BodyLength and CheckSum as the spec defines them, computed here from the bytes alone."""
    head = b"8=%s\x019=" % begin
    assert raw.startswith(head)
    length_end = raw.index(b"\x01", len(head))
    body_start = length_end + 1
    assert int(raw[len(head) : length_end]) == len(raw) - 7 - body_start
    assert raw[-7:-4] == b"10=" and raw[-1:] == b"\x01"
    assert int(raw[-4:-1]) == sum(raw[:-7]) % 256


def simplefix_fields(raw: bytes) -> list[tuple[int, bytes]]:
    parser = simplefix.FixParser()
    parser.append_buffer(raw)
    msg = parser.get_message()
    assert msg is not None and parser.get_message() is None
    return [(int(t), v) for t, v in msg.pairs]


def w_body(symbol: bytes, bids: list[tuple[bytes, ...]], asks: list[tuple[bytes, ...]], req: bytes | None) -> list:
    body = [] if req is None else [(262, req)]
    body += [(55, symbol), (268, b"%d" % (len(bids) + len(asks)))]
    for etype, side in ((b"0", bids), (b"1", asks)):
        for level in side:
            body += [(269, etype), *zip((270, 271, 278), level, strict=False)]
    return body


# ---------------------------------------------------------------------------------------------
# Valid messages: native == reference == simplefix


@SETTINGS
@given(
    header_fields,
    values,
    values,
    st.lists(st.tuples(values, values, values), max_size=12),
    st.lists(st.tuples(values, values, values), max_size=12),
    st.booleans(),
    st.booleans(),
    fix_begin_strings,
)
def test_snapshot_native_equals_reference_and_simplefix(header, symbol, req, bids, asks, with_ids, with_req, begin):
    width = 3 if with_ids else 2
    bids, asks = [lvl[:width] for lvl in bids], [lvl[:width] for lvl in asks]
    req_or_none = req if with_req else None
    hdr = header_bytes(header)
    native = snapshot_encoder(len(bids), len(asks), with_ids=with_ids, with_req=with_req)
    reference = reference_snapshot_encoder(len(bids), len(asks), with_ids=with_ids, with_req=with_req)
    raw = native(hdr, symbol, bids, asks, req_or_none, begin)
    assert raw == reference(hdr, symbol, bids, asks, req_or_none, begin)
    assert raw == encode_snapshot(hdr, symbol, bids, asks, req_or_none, begin)
    assert raw == encode(b"W", header, w_body(symbol, bids, asks, req_or_none), begin)
    body = w_body(symbol, bids, asks, req_or_none)
    fields = simplefix_fields(raw)
    assert fields[:3] == [(8, begin), (9, b"%d" % (len(raw) - 7 - raw.index(b"\x0135=") - 1)), (35, b"W")]
    assert fields[3:-1] == [*header, *body]
    assert_framed(raw, begin)
    (decoded,) = FrameDecoder().feed(raw)  # our own decoder checks BodyLength and CheckSum too
    assert decoded.fields == fields


@SETTINGS
@given(header_fields, st.lists(st.tuples(tags, values), max_size=40), msg_types, fix_begin_strings)
def test_template_native_equals_reference_and_simplefix(header, fields, msg_type, begin):
    template = MessageTemplate(msg_type, [t for t, _ in fields])
    vals = tuple(v for _, v in fields)
    hdr = header_bytes(header)
    raw = template.encode(hdr, vals, begin)
    assert raw == template.reference_encode(hdr, vals, begin)
    assert raw == encode(msg_type, header, fields, begin)
    assert simplefix_fields(raw)[2:-1] == [(35, msg_type), *header, *fields]
    assert_framed(raw, begin)


@SETTINGS
@given(header_fields, st.lists(st.tuples(tags, values), max_size=8), msg_types, any_begin_strings)
def test_any_begin_string_frames_the_same_in_both(header, fields, msg_type, begin):
    template = MessageTemplate(msg_type, [t for t, _ in fields])
    vals = tuple(v for _, v in fields)
    raw = template.encode(header_bytes(header), vals, begin)
    assert raw == template.reference_encode(header_bytes(header), vals, begin)
    assert_framed(raw, begin)


@SETTINGS
@given(
    header_fields,
    st.lists(st.tuples(tags, values), max_size=40),
    msg_types,
    any_begin_strings,
    st.integers(-(2**70), 2**70),
)
def test_encode_prepared_native_equals_reference(header, fields, msg_type, begin, wrong_sum):
    hdr = header_bytes(header)
    prepared = prepare_body(msg_type, fields)
    raw = encode_prepared(hdr, prepared, begin)
    assert raw == reference_encode_prepared(hdr, prepared, begin)
    assert_framed(raw, begin)
    if begin in (b"FIX.4.4", b"FIXT.1.1"):
        assert raw == encode(msg_type, header, fields, begin)
    # the body's sum is trusted, not re-taken, in both: a wrong one gives the same (wrong) CheckSum
    lying = prepared._replace(body_sum=wrong_sum)
    assert encode_prepared(hdr, lying, begin) == reference_encode_prepared(hdr, lying, begin)


def test_deep_books_and_long_templates_past_every_table_and_buffer_limit():
    # 120 levels a side (722 values: past the C encoder's on-stack arrays), ~10 KB (past the 4096-byte
    # prefix table of the Python framing)
    bids = [(b"1.%05d" % (90000 - i), b"%d" % (1000000 + i), b"bid-%d" % i) for i in range(120)]
    asks = [(b"1.%05d" % (90001 + i), b"%d" % (2000000 + i), b"ask-%d" % i) for i in range(120)]
    hdr = b"49=LAGG\x0156=CLIENT\x0134=7\x0152=20260105-10:00:00.123\x01"
    for begin in (b"FIX.4.4", b"FIXT.1.1"):
        raw = snapshot_encoder(120, 120)(hdr, b"EUR/USD", bids, asks, b"md-1", begin)
        assert len(raw) > 8000
        assert raw == reference_snapshot_encoder(120, 120)(hdr, b"EUR/USD", bids, asks, b"md-1", begin)
        assert raw == encode_prepared(hdr, md_snapshot_body(b"EUR/USD", bids, asks, b"md-1"), begin)
        assert_framed(raw, begin)
    template = MessageTemplate(b"U1", range(1000, 1300))
    vals = tuple(b"v%d" % i for i in range(300))
    assert template.encode(hdr, vals) == template.reference_encode(hdr, vals)
    header = [(49, b"LAGG"), (56, b"CLIENT"), (34, b"7"), (52, b"20260105-10:00:00.123")]
    raw = template.encode(hdr, vals)
    assert raw == encode(b"U1", header, list(zip(template.tags, vals, strict=True)))
    assert_framed(raw, b"FIX.4.4")


def test_keywords_iterators_and_bytes_likes_are_taken_as_the_reference_takes_them():
    hdr = b"49=A\x01"
    native, reference = snapshot_encoder(2, 1, with_ids=False), reference_snapshot_encoder(2, 1, with_ids=False)
    bids = [[b"1.1", bytearray(b"5")], (memoryview(b"1.0"), b"7")]  # a list as a level, bytes-likes as values
    asks = iter([iter([b"1.2", b"9"])])  # any iterables, as unpacking takes them
    raw = native(hdr, b"X", bids, asks, md_req_id=b"r", begin_string=b"FIX.4.2")
    assert raw == reference(hdr, b"X", bids, [(b"1.2", b"9")], md_req_id=b"r", begin_string=b"FIX.4.2")
    assert raw == native(
        header=hdr, symbol=b"X", bids=bids, asks=[(b"1.2", b"9")], md_req_id=b"r", begin_string=b"FIX.4.2"
    )
    for call in (lambda e: e(hdr, b"X", bids, [], b"r", b"FIX.4.4", 1), lambda e: e(hdr, b"X", bids, asks=[], nope=1),
                 lambda e: e(hdr, b"X", bids), lambda e: e(hdr, b"X", bids, [], header=hdr)):  # fmt: skip
        with pytest.raises(TypeError):
            call(native)
        with pytest.raises(TypeError):
            call(reference)


# ---------------------------------------------------------------------------------------------
# Invalid input: the same outcome from both, and EncodeError for every bad value or shape

BAD_VALUES = [b"", b"\x01", b"a\x01b", b"\x0110=000\x01", "text", 7, 1.5, None, (b"a",)]


@SETTINGS
@given(
    st.lists(st.tuples(values, values, values), min_size=1, max_size=5),
    st.lists(st.tuples(values, values, values), max_size=5),
    st.booleans(),
    st.data(),
)
def test_a_bad_value_anywhere_in_a_snapshot_is_an_encode_error_in_both(bids, asks, with_req, data):
    hdr = b"49=A\x0134=1\x01"
    args: list[Any] = [
        b"EUR/USD",
        [list(lvl) for lvl in bids],
        [list(lvl) for lvl in asks],
        b"req" if with_req else None,
    ]
    slots = [(0, None), *((1, (i, j)) for i in range(len(bids)) for j in range(3))]
    slots += [(2, (i, j)) for i in range(len(asks)) for j in range(3)] + ([(3, None)] if with_req else [])
    where, at = data.draw(st.sampled_from(slots))
    bad = data.draw(st.sampled_from(BAD_VALUES))
    if at is None:
        args[where] = bad
    else:
        args[where][at[0]][at[1]] = bad
    native, reference = snapshot_encoder(len(bids), len(asks)), reference_snapshot_encoder(len(bids), len(asks))
    for begin in (b"FIX.4.4", "FIX.4.4"):  # a bad value is reported before a bad BeginString
        assert outcome(native, hdr, *args, begin) is EncodeError
        assert outcome(reference, hdr, *args, begin) is EncodeError
    with pytest.raises(EncodeError) as info:
        native(hdr, *args)
    assert str(info.value).startswith(native.what + ": ")  # type: ignore[attr-defined]


@SETTINGS
@given(st.lists(values, min_size=1, max_size=30), st.data())
def test_a_bad_template_value_is_an_encode_error_in_both(vals, data):
    template = MessageTemplate(b"D", range(1, len(vals) + 1))
    k = data.draw(st.integers(0, len(vals) - 1))
    bad = data.draw(st.one_of(st.sampled_from(BAD_VALUES), values.map(lambda v: v[:1] + b"\x01" + v[1:])))
    broken = (*vals[:k], bad, *vals[k + 1 :])
    assert outcome(template.encode, b"49=A\x01", broken) is EncodeError
    assert outcome(template.reference_encode, b"49=A\x01", broken) is EncodeError


SHAPES = [
    ("too few bids", lambda b, a: (b[:-1], a)),
    ("too many bids", lambda b, a: (b + b[:1], a)),
    ("too many asks", lambda b, a: (b, a + b[:1])),
    ("a level short", lambda b, a: ([b[0][:-1], *b[1:]], a)),
    ("a level long", lambda b, a: ([(*b[0], b"x"), *b[1:]], a)),
    ("bytes as a level", lambda b, a: ([b"abc", *b[1:]], a)),
    ("an int as a level", lambda b, a: ([1, *b[1:]], a)),
    ("no bids at all", lambda b, a: (None, a)),
    ("an int as the asks", lambda b, a: (b, 5)),
    ("asks of the other width", lambda b, a: (b, [(*lvl, b"x") if len(lvl) == 2 else lvl[:2] for lvl in a])),
]


@pytest.mark.parametrize("name, reshape", SHAPES, ids=[s[0] for s in SHAPES])
@pytest.mark.parametrize("with_ids", [True, False])
def test_a_wrong_level_shape_is_an_encode_error_in_both(name, reshape, with_ids):
    width = 3 if with_ids else 2
    bids = [(b"1.1", b"5", b"b0")[:width], (b"1.0", b"6", b"b1")[:width]]
    asks = [(b"1.2", b"7", b"a0")[:width]]
    bids2, asks2 = reshape(bids, asks)
    native = snapshot_encoder(len(bids), len(asks), with_ids=with_ids)
    reference = reference_snapshot_encoder(len(bids), len(asks), with_ids=with_ids)
    assert outcome(native, b"49=A\x01", b"X", bids2, asks2, b"r") is EncodeError
    assert outcome(reference, b"49=A\x01", b"X", bids2, asks2, b"r") is EncodeError
    with pytest.raises(EncodeError, match=r"^W of 2 bid and \d ask"):
        native(b"49=A\x01", b"X", bids2, asks2, b"r")
    if name == "asks of the other width":  # the shape encode_snapshot picks comes from the first level
        with pytest.raises(EncodeError):
            encode_snapshot(b"49=A\x01", b"X", bids2, asks2, b"r")


@pytest.mark.parametrize("header", ["49=A\x01", None, 7])
def test_a_header_that_is_not_bytes_is_an_encode_error_in_both(header):
    template = MessageTemplate(b"D", (11,))
    assert outcome(template.encode, header, (b"x",)) is EncodeError
    assert outcome(template.reference_encode, header, (b"x",)) is EncodeError
    assert outcome(snapshot_encoder(0, 0), header, b"X", [], [], b"r") is EncodeError
    assert outcome(reference_snapshot_encoder(0, 0), header, b"X", [], [], b"r") is EncodeError


@pytest.mark.parametrize("values_", [None, 5, (b"a",), (b"a", b"b", b"c")])
def test_a_wrong_number_of_template_values_is_an_encode_error_in_both(values_):
    template = MessageTemplate(b"D", (11, 55))
    assert outcome(template.encode, b"", values_) is EncodeError
    assert outcome(template.reference_encode, b"", values_) is EncodeError


@pytest.mark.parametrize("begin", ["FIX.4.4", None, 44])
def test_a_begin_string_that_is_not_bytes_is_a_type_error_in_both(begin):
    template = MessageTemplate(b"D", (11,))
    prepared = template.prepare((b"x",))
    for native, reference, args in (
        (template.encode, template.reference_encode, (b"49=A\x01", (b"x",), begin)),
        (snapshot_encoder(0, 0), reference_snapshot_encoder(0, 0), (b"49=A\x01", b"X", [], [], b"r", begin)),
        (encode_prepared, reference_encode_prepared, (b"49=A\x01", prepared, begin)),
    ):
        assert outcome(native, *args) is TypeError
        assert outcome(reference, *args) is TypeError


def test_encode_prepared_takes_what_the_reference_takes_and_refuses_what_it_refuses():
    prepared = prepare_body(b"8", [(37, b"O1"), (11, b"C1")])

    class Duck:  # not a PreparedBody, but has its fields
        msg_type, body, body_sum = prepared.msg_type, prepared.body, prepared.body_sum

    hdr = b"49=A\x01"
    for good in (prepared, Duck(), PreparedBody(b"8", memoryview(prepared.body), prepared.body_sum)):
        assert encode_prepared(hdr, good) == reference_encode_prepared(hdr, good)  # type: ignore[arg-type]
    assert encode_prepared(bytearray(hdr), prepared) == reference_encode_prepared(bytearray(hdr), prepared)  # type: ignore[arg-type]
    assert encode_prepared(header=hdr, prepared=prepared, begin_string=b"FIXT.1.1") == reference_encode_prepared(
        hdr, prepared, b"FIXT.1.1"
    )
    for bad_header, bad_prepared in (("49=A\x01", prepared), (hdr, PreparedBody(b"8", prepared.body, 1.5))):
        assert outcome(encode_prepared, bad_header, bad_prepared) is TypeError
        assert outcome(reference_encode_prepared, bad_header, bad_prepared) is TypeError
    assert outcome(encode_prepared, hdr, object()) is AttributeError
    assert outcome(reference_encode_prepared, hdr, object()) is AttributeError
