"""Differential tests: our codec against simplefix (the independent reference), and the batch fast
path against the generic decoder, over random messages, random bytes and damaged messages."""

from __future__ import annotations

import dataclasses

import pytest
import simplefix
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.fixedpoint import Grid
from fixserver.batchdecode import (
    E_FLAGS,
    E_PRICE,
    E_PX_END,
    E_PX_START,
    E_SIZE,
    E_SIZE_END,
    E_SIZE_START,
    PRICE_EXACT,
    SIZE_EXACT,
    BatchDecoder,
    reference_entries,
)
from fixserver.codec import (
    EncodeError,
    FrameDecoder,
    FrameTooLarge,
    MessageTemplate,
    encode,
    encode_prepared,
    encode_snapshot,
    md_snapshot_body,
    snapshot_encoder,
)
from fixserver.message import FixMessage

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FRAMING_TAGS = {8, 9, 10, 35}
# Length-prefixed data fields (RawData & co.) may hold SOH; lagg never uses them and our codec
# treats every field as tag=value<SOH>, so they are outside the compared domain.
_parser = simplefix.FixParser()
DATA_TAGS = set(_parser.raw_len_tags) | set(_parser.raw_data_tags)
values = st.binary(min_size=1, max_size=20).filter(lambda v: b"\x01" not in v)
ascii_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=12).map(str.encode)
tags = st.integers(1, 9999).filter(lambda t: t not in FRAMING_TAGS and t not in DATA_TAGS)
msg_types = st.sampled_from([b"0", b"A", b"D", b"F", b"8", b"V", b"W", b"X", b"AB"])
decimals = st.builds(
    lambda neg, i, f: (b"-" if neg else b"") + str(i).encode() + (b"." + f.encode() if f else b""),
    st.booleans(),
    st.integers(0, 10**6),
    st.text("0123456789", max_size=7),
)


@st.composite
def headers(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    seq = draw(st.integers(1, 10**9))
    out = [(49, draw(ascii_values)), (56, draw(ascii_values)), (34, b"%d" % seq)]
    out.append((52, b"20260105-10:00:00.123"))
    if draw(st.booleans()):
        out += [(43, b"Y"), (122, b"20260105-09:59:59.000")]
    return out


@st.composite
def groups(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    """A NoMDEntries group with a random number of entries of random members."""
    entries = draw(st.lists(st.lists(st.sampled_from([270, 271, 278, 290, 55]), unique=True), max_size=6))
    out = [(268, b"%d" % len(entries))]
    for members in entries:
        out.append((269, draw(st.sampled_from([b"0", b"1", b"2"]))))
        for tag in members:
            out.append((tag, draw(decimals if tag in (270, 271) else ascii_values)))
    return out


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    body = draw(st.lists(st.tuples(tags, values), max_size=15))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(body)))
        body[at:at] = draw(groups())
    return draw(msg_types), draw(headers()), body


def simplefix_pairs(raw: bytes) -> list[tuple[int, bytes]]:
    parser = simplefix.FixParser()
    parser.append_buffer(raw)
    msg = parser.get_message()
    assert msg is not None and parser.get_message() is None
    return [(int(t), v) for t, v in msg.pairs]


@SETTINGS
@given(messages())
def test_our_encoding_decodes_in_simplefix_to_the_same_fields(message):
    msg_type, header, body = message
    raw = encode(msg_type, header, body)
    pairs = simplefix_pairs(raw)
    assert pairs[2:-1] == [(35, msg_type), *header, *body]
    assert pairs[0] == (8, b"FIX.4.4")
    # simplefix does not check BodyLength or CheckSum on decode: check them against its encoder.
    ref = simplefix.FixMessage()
    for tag, value in [(8, b"FIX.4.4"), (35, msg_type), *header, *body]:
        ref.append_pair(tag, value)
    assert ref.encode() == raw


@SETTINGS
@given(messages(), st.integers(1, 50))
def test_simplefix_encoding_decodes_with_ours_to_the_same_fields(message, chunk):
    msg_type, header, body = message
    ref = simplefix.FixMessage()
    for tag, value in [(8, b"FIX.4.4"), (35, msg_type), *header, *body]:
        ref.append_pair(tag, value)
    raw = ref.encode()
    expected = [(int(t), v) for t, v in simplefix_pairs(raw)]
    decoder = FrameDecoder()
    got: list[FixMessage] = []
    for i in range(0, len(raw), chunk):
        got += decoder.feed(raw[i : i + chunk])
    assert [m.fields for m in got] == [expected]
    assert BatchDecoder().feed(raw).messages() == got
    assert decoder.garbled == 0


@st.composite
def md_messages(draw: st.DrawFn) -> bytes:
    msg_type = draw(st.sampled_from([b"W", b"X"]))
    header = draw(headers())
    body: list[tuple[int, bytes]] = [(262, draw(ascii_values))]
    if msg_type == b"W" or draw(st.booleans()):
        body.append((55, draw(st.sampled_from([b"EUR/USD", b"USD/JPY", b"WTI"]))))
    count = draw(st.integers(0, 10))
    body.append((268, b"%d" % count))
    for _ in range(count):
        entry: list[tuple[int, bytes]] = []
        if msg_type == b"X":
            entry.append((279, draw(st.sampled_from([b"0", b"1", b"2"]))))
        entry.append((269, draw(st.sampled_from([b"0", b"1"]))))
        optional = draw(st.lists(st.sampled_from([270, 271, 278, 290, 55]), unique=True))
        for tag in optional:
            value = {270: decimals, 271: decimals, 290: st.integers(1, 20).map(b"%d".__mod__)}.get(tag, ascii_values)
            entry.append((tag, draw(value)))
        body += entry
    return encode(msg_type, header, body)


@SETTINGS
@given(st.lists(md_messages(), min_size=1, max_size=8), st.integers(0, 8), st.integers(0, 8), st.integers(1, 300))
def test_fast_market_data_path_gives_the_generic_decoders_entries(raws, price_scale, size_scale, chunk):
    stream = b"".join(raws)
    generic = FrameDecoder().feed(stream)
    decoder = BatchDecoder(price_scale=price_scale, size_scale=size_scale)
    entries = []
    msgs: list[FixMessage] = []
    for i in range(0, len(stream), chunk):
        batch = decoder.feed(stream[i : i + chunk])
        first = len(msgs)
        msgs += batch.messages()
        entries += [dataclasses.replace(e, msg_index=e.msg_index + first) for e in batch.entry_objects()]
        # exact integers agree with the fixed-point reference wherever the kernel says "exact";
        # where it does not, the reference either refuses the text or needs more than int64
        for row in batch.entries.tolist():
            for flag, value, s, e, scale in (
                (PRICE_EXACT, row[E_PRICE], row[E_PX_START], row[E_PX_END], price_scale),
                (SIZE_EXACT, row[E_SIZE], row[E_SIZE_START], row[E_SIZE_END], size_scale),
            ):
                if s < 0:
                    continue
                grid = Grid(1, scale, scale)
                text = batch.buffer[s:e]
                if row[E_FLAGS] & flag:
                    assert grid.to_steps(text) == value
                else:
                    try:
                        steps = grid.to_steps(text)
                    except ValueError:
                        continue
                    assert abs(steps) >= 10**18
    assert msgs == generic
    assert entries == reference_entries(generic)


# ---------------------------------------------------------------------------------------------
# Garbage and damage


def valid_checksum(msg: FixMessage) -> bool:
    """Rebuild the wire bytes of a delivered message and check its BodyLength and CheckSum."""
    raw = b"".join((b"%d=%s\x01" % (t, v)) if t else v + b"\x01" for t, v in msg.fields)
    trailer = raw.rindex(b"10=")
    body_start = raw.index(b"\x01", raw.index(b"\x019=") + 1) + 1
    return (
        int(raw[trailer + 3 : trailer + 6]) == sum(raw[:trailer]) % 256
        and int(msg.fields[1][1]) == trailer - body_start
    )


def feed_both(stream: bytes, chunk: int, max_size: int = 4096):
    """Feed the same stream to both decoders in the same chunks; return both outputs."""
    slow, fast = FrameDecoder(max_message_size=max_size), BatchDecoder(max_message_size=max_size)
    out_slow: list[FixMessage] = []
    out_fast: list[FixMessage] = []
    too_large = [False, False]
    for i in range(0, len(stream), chunk):
        piece = stream[i : i + chunk]
        if not too_large[0]:
            try:
                out_slow += slow.feed(piece)
            except FrameTooLarge as exc:  # the one typed error feed() documents
                out_slow += exc.messages
                too_large[0] = True
        if not too_large[1]:
            try:
                out_fast += fast.feed(piece).messages()
            except FrameTooLarge as exc:
                out_fast += exc.messages
                too_large[1] = True
    return slow, fast, out_slow, out_fast, too_large


@SETTINGS
@given(st.binary(max_size=600), st.integers(1, 64))
def test_random_bytes_never_crash_and_both_decoders_agree(data, chunk):
    slow, fast, out_slow, out_fast, too_large = feed_both(data, chunk)
    assert out_slow == out_fast
    assert too_large[0] == too_large[1]
    assert slow.garbled == fast.garbled
    assert all(valid_checksum(m) for m in out_slow)


def good(seq: int) -> bytes:
    return encode(b"D", [(49, b"C"), (56, b"L"), (34, seq), (52, b"20260105-10:00:00")], [(11, b"id"), (55, b"X")])


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    raw = good(1)
    kind = draw(st.sampled_from(["flip", "truncate", "dup9", "drop9", "dup10", "drop10", "checksum", "garbage"]))
    if kind == "flip":
        at = draw(st.integers(0, len(raw) - 1))
        bit = draw(st.integers(0, 7))
        return raw[:at] + bytes([raw[at] ^ (1 << bit)]) + raw[at + 1 :]
    if kind == "truncate":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    nine = raw.split(b"\x01")[1] + b"\x01"
    if kind == "dup9":
        return raw.replace(nine, nine + nine, 1)
    if kind == "drop9":
        return raw.replace(nine, b"", 1)
    if kind == "dup10":
        return raw + raw[-7:]
    if kind == "drop10":
        return raw[:-7]
    if kind == "checksum":
        wrong = (int(raw[-4:-1]) + draw(st.integers(1, 255))) % 256
        return raw[:-4] + b"%03d\x01" % wrong
    junk = draw(st.binary(max_size=80))
    return junk + raw if draw(st.booleans()) else raw[: draw(st.integers(0, len(raw)))] + junk


@SETTINGS
@given(st.lists(damaged(), min_size=1, max_size=4), st.integers(1, 80))
def test_damaged_messages_are_dropped_and_the_next_valid_message_arrives(bad, chunk):
    stream = b"".join(bad) + good(2) + good(3)
    slow, fast, out_slow, out_fast, too_large = feed_both(stream, chunk)
    assert out_slow == out_fast and slow.garbled == fast.garbled
    assert not too_large[0]
    assert all(valid_checksum(m) for m in out_slow)
    seqs = [m.seq_num for m in out_slow]
    # Only an undamaged copy (a duplicated trailer leaves the message itself intact) is delivered,
    # and the decoder is back in step for the two valid messages that follow.
    assert seqs[-2:] == [2, 3]
    assert set(seqs[:-2]) <= {1}
    intact = [m for m in out_slow if m.seq_num == 1]
    assert all(m == FrameDecoder().feed(good(1))[0] for m in intact)
    assert len(intact) <= sum(good(1) in m for m in bad)


@SETTINGS
@given(st.integers(10**4, 10**12), st.integers(1, 30))
def test_a_huge_body_length_is_cut_off_without_buffering_it(length, chunk):
    stream = good(1) + b"8=FIX.4.4\x019=%d\x0135=D\x01" % length + b"x" * 200
    slow, fast, out_slow, out_fast, too_large = feed_both(stream, chunk, max_size=4096)
    assert too_large == [True, True]
    assert [m.seq_num for m in out_slow] == [m.seq_num for m in out_fast] == [1]
    assert slow.buffered < 4096 + 64 and fast.buffered < 4096 + 64


# ---------------------------------------------------------------------------------------------
# Fast encoders (generated per message shape) against simplefix, and their refusals

header_bytes = st.builds(lambda pairs: b"".join(b"%d=%s\x01" % p for p in pairs), headers())
levels = st.tuples(values, values, values)
begin_strings = st.sampled_from([b"FIX.4.4", b"FIXT.1.1", b"FIX.4.2"])


def simplefix_encode(begin: bytes, msg_type: bytes, header: bytes, body: list[tuple[int, bytes]]) -> bytes:
    ref = simplefix.FixMessage()
    ref.append_pair(8, begin)
    ref.append_pair(35, msg_type)
    for field in header[:-1].split(b"\x01"):
        tag, _, value = field.partition(b"=")
        ref.append_pair(int(tag), value)
    for tag, value in body:
        ref.append_pair(tag, value)
    return ref.encode()


@SETTINGS
@given(
    header_bytes,
    values,
    values,
    st.lists(levels, max_size=4),
    st.lists(levels, max_size=4),
    st.booleans(),
    st.booleans(),
    begin_strings,
)
def test_generated_snapshot_encoder_gives_simplefix_bytes(header, symbol, req, bids, asks, with_ids, with_req, begin):
    # values up to 20 bytes: 8 levels of 3 run well past 256 bytes, the one-Adler-32 limit of the fast framing
    width = 3 if with_ids else 2
    bids, asks = [lvl[:width] for lvl in bids], [lvl[:width] for lvl in asks]
    body = [(262, req)] if with_req else []
    body += [(55, symbol), (268, b"%d" % (len(bids) + len(asks)))]
    for etype, side in ((b"0", bids), (b"1", asks)):
        for level in side:
            body += [(269, etype), *zip((270, 271, 278), level, strict=False)]  # 2 or 3 of them
    encode_w = snapshot_encoder(len(bids), len(asks), with_ids=with_ids, with_req=with_req)
    raw = encode_w(header, symbol, bids, asks, req if with_req else None, begin)
    assert raw == simplefix_encode(begin, b"W", header, body)
    assert encode_snapshot(header, symbol, bids, asks, req if with_req else None, begin) == raw
    shared = [symbol, *([req] if with_req else []), *(v for lvl in bids + asks for v in lvl)]
    if any(v.endswith(b"=") for v in shared):  # the shared body's cheap check refuses these (documented)
        with pytest.raises(EncodeError):
            md_snapshot_body(symbol, bids, asks, req if with_req else None)
    else:
        assert encode_prepared(header, md_snapshot_body(symbol, bids, asks, req if with_req else None), begin) == raw


@SETTINGS
@given(header_bytes, st.lists(st.tuples(tags, values), max_size=25), msg_types, begin_strings)
def test_message_template_gives_simplefix_bytes(header, fields, msg_type, begin):
    template = MessageTemplate(msg_type, [t for t, _ in fields])
    raw = template.encode(header, tuple(v for _, v in fields), begin)
    assert raw == simplefix_encode(begin, msg_type, header, fields)


def _smuggle(value: bytes, at: int, evil: bytes) -> bytes:
    at %= len(value) + 1
    return value[:at] + evil + value[at:]


@SETTINGS
@given(
    header_bytes,
    st.lists(levels, min_size=1, max_size=3),
    st.data(),
    st.sampled_from([b"\x01", b"\x0149=EVIL\x01", b"\x0110=000\x01", b"\x01\x01"]),
)
def test_fast_encoders_refuse_a_value_with_soh_or_an_empty_value(header, bids, data, evil):
    """Whichever value carries SOH (anywhere) or is empty, no bytes come out: no field can be smuggled in."""
    flat = [b"EUR/USD", b"req", *(v for lvl in bids for v in lvl)]
    k = data.draw(st.integers(0, len(flat) - 1))
    for bad in (_smuggle(flat[k], data.draw(st.integers(0, 30)), evil), b""):
        vals = [*flat[:k], bad, *flat[k + 1 :]]
        symbol, req, rest = vals[0], vals[1], vals[2:]
        bad_bids = [tuple(rest[i : i + 3]) for i in range(0, len(rest), 3)]
        with pytest.raises(EncodeError):
            snapshot_encoder(len(bad_bids), 0)(header, symbol, bad_bids, [], req)
        with pytest.raises(EncodeError):
            MessageTemplate(b"D", range(1, len(vals) + 1)).encode(header, tuple(vals))
