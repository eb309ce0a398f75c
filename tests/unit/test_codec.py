"""The FIX 4.4 framing rules, one behaviour per test: what a peer sends and what the session sees."""

from __future__ import annotations

import pytest

from fixserver.codec import (
    EncodeError,
    FrameDecoder,
    FrameTooLarge,
    byte_sum,
    checksum_field,
    encode,
    encode_with_prepared,
    prepare_body,
)
from fixserver.message import FixMessage

HEADER = [(49, b"CLIENT"), (56, b"LAGG"), (34, 7), (52, b"20260105-10:00:00.123")]
ORDER = [(11, b"ord-1"), (55, b"EUR/USD"), (54, b"1"), (38, 1000000), (40, b"2"), (44, b"1.08523")]


def frame(body: bytes, begin: bytes = b"FIX.4.4") -> bytes:
    """Hand-frame a body (35=... through its last SOH) the way the spec describes it."""
    head = b"8=" + begin + b"\x019=" + str(len(body)).encode() + b"\x01"
    return head + body + b"10=%03d\x01" % (sum(head + body) % 256)


def test_encode_matches_a_hand_framed_message():
    body = b"35=D\x0149=CLIENT\x0156=LAGG\x0134=7\x0152=20260105-10:00:00.123\x01"
    body += b"11=ord-1\x0155=EUR/USD\x0154=1\x0138=1000000\x0140=2\x0144=1.08523\x01"
    assert encode(b"D", HEADER, ORDER) == frame(body)


def test_body_length_and_checksum_are_what_the_spec_defines():
    raw = encode(b"0", [(49, b"A"), (56, b"B"), (34, 1), (52, b"20260105-10:00:00")], [])
    head, _, rest = raw.partition(b"\x0135=")
    body_start = len(head) + 1
    trailer_at = raw.rindex(b"10=")
    assert int(raw.split(b"\x01")[1][2:]) == trailer_at - body_start
    assert raw[trailer_at:] == b"10=%03d\x01" % (sum(raw[:trailer_at]) % 256)
    assert raw[trailer_at + 3 : trailer_at + 6].isdigit()  # always three digits


def test_encode_accepts_int_str_and_bool_values():
    raw = encode("D", HEADER, [(11, "x"), (38, 5), (377, True), (43, False)])
    assert b"\x0111=x\x0138=5\x01377=Y\x0143=N\x01" in raw


@pytest.mark.parametrize(
    "value, why",
    [(b"", "empty"), (b"a\x01b", "SOH"), ("é", "ASCII"), (1.5, "float"), (None, "NoneType")],
)
def test_encode_refuses_values_fix_cannot_carry(value, why):
    with pytest.raises(EncodeError, match=why):
        encode(b"D", HEADER, [(58, value)])


def test_encode_refuses_a_non_positive_tag():
    with pytest.raises(EncodeError):
        encode(b"D", HEADER, [(0, b"x")])


def test_prepared_body_gives_the_same_bytes_as_a_full_encode():
    prepared = prepare_body(b"W", [(55, b"EUR/USD"), (268, 1), (269, b"0"), (270, b"1.1"), (271, 1)])
    for seq in (1, 99, 123456):
        header = [(49, b"LAGG"), (56, b"C%d" % seq), (34, seq), (52, b"20260105-10:00:00.000")]
        assert encode_with_prepared(header, prepared) == encode(
            b"W", header, [(55, b"EUR/USD"), (268, 1), (269, b"0"), (270, b"1.1"), (271, 1)]
        )


def test_prepared_body_accepts_a_pre_encoded_header():
    prepared = prepare_body(b"X", [(268, 1), (279, 2), (269, b"1"), (278, b"e1")])
    raw = encode_with_prepared(b"49=LAGG\x0156=C\x0134=3\x0152=20260105-10:00:00\x01", prepared)
    assert raw == encode(
        b"X",
        [(49, b"LAGG"), (56, b"C"), (34, 3), (52, b"20260105-10:00:00")],
        [(268, 1), (279, 2), (269, b"1"), (278, b"e1")],
    )


def test_byte_sum_is_exact_for_long_and_high_bytes():
    data = bytes(range(256)) * 40
    assert byte_sum(data) == sum(data)
    assert byte_sum(b"\xff" * 257) == 255 * 257
    assert checksum_field(sum(data)) == b"10=%03d\x01" % (sum(data) % 256)


@pytest.mark.parametrize("n", [256, 257, 515, 516, 1030, 1031, 5000])
@pytest.mark.parametrize("byte", [0x7F, 0xFF])
def test_byte_sum_is_exact_at_every_adler32_chunk_boundary(n, byte):
    # 0x7F: the largest ASCII byte, where the 515-byte chunks are at their limit; 0xFF: the 256-byte ones
    data = bytes([byte]) * n
    assert byte_sum(data) == byte_sum(bytearray(data)) == byte_sum(memoryview(data)) == byte * n


# ---------------------------------------------------------------------------------------------
# Decoding a stream


def test_decode_gives_every_field_in_wire_order_including_header_and_trailer():
    raw = encode(b"D", HEADER, ORDER)
    (msg,) = FrameDecoder().feed(raw)
    assert msg.fields[:3] == [(8, b"FIX.4.4"), (9, raw.split(b"\x01")[1][2:]), (35, b"D")]
    assert msg.fields[3:-1] == [(t, v if isinstance(v, bytes) else str(v).encode()) for t, v in HEADER + ORDER]
    assert msg.fields[-1] == (10, raw[-4:-1])
    assert msg.msg_type == b"D" and msg.seq_num == 7


def test_partial_reads_byte_by_byte_deliver_each_message_once_when_complete():
    raw = encode(b"D", HEADER, ORDER) + encode(b"0", HEADER, [])
    decoder = FrameDecoder()
    delivered: list[tuple[int, FixMessage]] = []
    for i in range(len(raw)):
        for msg in decoder.feed(raw[i : i + 1]):
            delivered.append((i, msg))
    first_end = raw.index(b"\x0110=") + 8
    assert [(i, m.msg_type) for i, m in delivered] == [(first_end - 1, b"D"), (len(raw) - 1, b"0")]
    assert decoder.garbled == 0 and decoder.buffered == 0


def test_many_messages_in_one_read_come_out_in_order():
    raws = [encode(b"0", [(49, b"A"), (56, b"B"), (34, i), (52, b"x")], []) for i in range(1, 201)]
    msgs = FrameDecoder().feed(b"".join(raws))
    assert [m.seq_num for m in msgs] == list(range(1, 201))


def test_a_read_ending_mid_message_keeps_the_rest_for_the_next_read():
    a, b = encode(b"D", HEADER, ORDER), encode(b"F", HEADER, [(11, b"c"), (41, b"ord-1")])
    decoder = FrameDecoder()
    assert [m.msg_type for m in decoder.feed(a + b[:20])] == [b"D"]
    assert decoder.buffered == 20
    assert [m.msg_type for m in decoder.feed(b[20:])] == [b"F"]


def good(seq: int = 2) -> bytes:
    return encode(b"0", [(49, b"A"), (56, b"B"), (34, seq), (52, b"20260105-10:00:00")], [])


def bad_checksum() -> bytes:
    raw = good(1)
    digits = int(raw[-4:-1])
    return raw[:-4] + b"%03d\x01" % ((digits + 1) % 256)


@pytest.mark.parametrize(
    "garbled, reason",
    [
        (bad_checksum(), "CheckSum mismatch"),
        (good(1)[:-4] + b"1X2\x01", "CheckSum is not three digits"),
        (good(1).replace(b"10=", b"10=0", 1)[:-2] + b"\x01", "CheckSum"),
        (good(1).replace(b"9=", b"9=1", 1), "BodyLength"),  # BodyLength too long by 100+
        (frame(b"35=0\x0149=A\x01")[:-13] + b"\x0110=000\x01", "BodyLength"),  # body cut short
        (good(1).replace(b"9=", b"9=x", 1), "BodyLength is not a number"),
        (good(1).replace(b"\x019=", b"\x0134=1\x019=", 1), "second field is not BodyLength"),
        (frame(b"49=A\x0135=0\x01"), "third field is not MsgType"),
        (frame(b"35=\x0149=A\x01"), "MsgType (35) is empty"),
        (b"8=FIX.4.4.4.4.4.4.4.4.4.4.4.4\x019=5\x01", "BeginString is not"),
        (b"8=FIX.4.4x\x019=5\x01", "BeginString is not"),
    ],
)
def test_garbled_message_is_dropped_counted_and_the_next_one_still_arrives(garbled, reason):
    decoder = FrameDecoder()
    msgs = decoder.feed(garbled + good(2))
    assert [m.seq_num for m in msgs] == [2]  # the garbled one never reaches the session
    assert decoder.garbled == 1
    assert reason in (decoder.last_garbled_reason or "")


def test_junk_ending_in_8_equals_fix_does_not_swallow_the_next_message():
    decoder = FrameDecoder()
    assert [m.seq_num for m in decoder.feed(b"xx8=FIX" + good(4))] == [4]
    assert decoder.garbled == 2  # the junk run and the false frame start each count


def test_each_garbled_message_in_a_row_counts_once():
    decoder = FrameDecoder()
    msgs = decoder.feed(bad_checksum() + bad_checksum() + good(3))
    assert [m.seq_num for m in msgs] == [3]
    assert decoder.garbled == 2


def test_junk_between_messages_is_skipped_and_counted_once_across_reads():
    decoder = FrameDecoder()
    assert decoder.feed(b"\r\nhello ") == []
    assert decoder.feed(b"world") == []
    assert [m.seq_num for m in decoder.feed(b"!!" + good(5))] == [5]
    assert decoder.garbled == 1
    assert decoder.buffered == 0


def test_junk_does_not_grow_the_buffer_but_a_split_begin_string_survives():
    decoder = FrameDecoder()
    decoder.feed(b"x" * 100_000 + b"8=FI")
    assert decoder.buffered == 4
    assert [m.seq_num for m in decoder.feed(good(9)[4:])] == [9]


def test_wrong_body_length_does_not_hold_back_the_next_message():
    # 9= claims far more than was sent; the next message's trailer proves the length wrong
    # without waiting for bytes that will never come.
    decoder = FrameDecoder()
    msgs = decoder.feed(good(1).replace(b"9=", b"9=99", 1) + good(2))
    assert [m.seq_num for m in msgs] == [2]
    assert decoder.garbled == 1


def test_truncated_message_followed_by_a_valid_one_resynchronises():
    decoder = FrameDecoder()
    msgs = decoder.feed(good(1)[:30] + good(2) + good(3))
    assert [m.seq_num for m in msgs] == [2, 3]


def test_huge_body_length_is_a_typed_error_with_earlier_messages_kept():
    decoder = FrameDecoder(max_message_size=4096)
    # Decided at BodyLength's SOH: nothing of the body is buffered.
    assert decoder.feed(b"8=FIX.4.4\x019=10000000000") == []
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"\x01")
    assert info.value.body_length == 10_000_000_000
    decoder = FrameDecoder(max_message_size=4096)
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(good(1) + b"8=FIX.4.4\x019=10000000000\x01")
    assert [m.seq_num for m in info.value.messages] == [1]


def test_junk_length_digits_run_into_the_next_message_byte_by_byte_resynchronise():
    # "9=52" cut short, then "8", then a real message: the digits read "5288" before the "="
    # shows they are junk. Found by hypothesis; must not be mistaken for a huge message.
    stream = b"8=FIX.4.4\x019=52" + b"8" + good(2) + good(3)
    decoder = FrameDecoder(max_message_size=4096)
    out = [m for i in range(len(stream)) for m in decoder.feed(stream[i : i + 1])]
    assert [m.seq_num for m in out] == [2, 3]


def test_begin_string_is_delivered_for_the_session_to_judge():
    (msg,) = FrameDecoder().feed(frame(b"35=0\x0149=A\x01", begin=b"FIX.4.2"))
    assert msg.get(8) == b"FIX.4.2"


def test_a_malformed_field_in_a_sound_frame_is_kept_as_tag_0():
    (msg,) = FrameDecoder().feed(frame(b"35=D\x0149=A\x01abc=1\x01noequals\x0155=\x01"))
    assert msg.fields[4:7] == [(0, b"abc=1"), (0, b"noequals"), (55, b"")]


def test_values_may_contain_equals_signs():
    (msg,) = FrameDecoder().feed(encode(b"D", HEADER, [(58, b"a=b=c")]))
    assert msg.get(58) == b"a=b=c"
