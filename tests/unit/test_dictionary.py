"""Session-level validation: every SessionRejectReason we send, produced by a concrete bad message."""

from __future__ import annotations

import pytest

from fixserver.codec import FrameDecoder, encode
from fixserver.dictionary import FIELDS, MESSAGES, Reject, SessionRejectReason, validate
from fixserver.message import FixMessage

HEADER = [(49, b"CLIENT"), (56, b"LAGG"), (34, 12), (52, b"20260105-10:00:00.123")]
NOW = b"20260105-10:00:00.123"
ORDER = [(11, b"o1"), (55, b"EUR/USD"), (54, b"1"), (60, NOW), (38, b"1000000"), (40, b"2"), (44, b"1.0852")]
MD_REQUEST = [(262, b"r1"), (263, b"1"), (264, b"5"), (265, b"1"), (267, b"2"), (269, b"0"), (269, b"1")]
MD_REQUEST += [(146, b"1"), (55, b"EUR/USD")]
SNAPSHOT = [(262, b"r1"), (55, b"EUR/USD"), (268, b"2")]
SNAPSHOT += [
    (269, b"0"),
    (270, b"1.08520"),
    (271, b"1000000"),
    (269, b"1"),
    (270, b"1.08523"),
    (271, b"2000000"),
]


def decoded(msg_type: bytes, body, header=HEADER) -> FixMessage:
    (msg,) = FrameDecoder().feed(encode(msg_type, header, body))
    return msg


def hand_framed(body: bytes) -> FixMessage:
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    (msg,) = FrameDecoder().feed(head + body + b"10=%03d\x01" % (sum(head + body) % 256))
    return msg


@pytest.mark.parametrize(
    "msg_type, body",
    [
        (b"0", []),
        (b"1", [(112, b"t1")]),
        (b"2", [(7, b"1"), (16, b"0")]),
        (b"4", [(123, b"Y"), (36, b"20")]),
        (b"5", [(58, b"bye")]),
        (b"A", [(98, b"0"), (108, b"30"), (141, b"Y"), (553, b"u"), (554, b"secret")]),
        (b"V", MD_REQUEST),
        (b"W", SNAPSHOT),
        (
            b"X",
            [
                (262, b"r1"),
                (268, b"1"),
                (279, b"0"),
                (269, b"0"),
                (278, b"e1"),
                (55, b"EUR/USD"),
                (270, b"-37.63"),
                (271, b"5"),
            ],
        ),
        (b"D", ORDER + [(59, b"3")]),
        (b"F", [(41, b"o1"), (11, b"o2"), (55, b"EUR/USD"), (54, b"1"), (60, NOW)]),
        (b"H", [(11, b"o1"), (55, b"EUR/USD"), (54, b"2")]),
        (
            b"8",
            [
                (37, b"x"),
                (11, b"o1"),
                (17, b"e"),
                (150, b"F"),
                (39, b"2"),
                (55, b"EUR/USD"),
                (54, b"1"),
                (38, b"1"),
                (151, b"0"),
                (14, b"1"),
                (6, b"1.1"),
                (31, b"1.1"),
                (32, b"1"),
                (60, NOW),
            ],
        ),
        (b"9", [(37, b"x"), (11, b"o2"), (41, b"o1"), (39, b"8"), (434, b"1"), (102, b"1")]),
        (b"x", [(320, b"s1"), (559, b"4")]),
        (b"y", [(320, b"s1"), (322, b"r"), (560, b"0"), (146, b"2"), (55, b"EUR/USD"), (55, b"USD/JPY")]),
        (b"Y", [(262, b"r1"), (281, b"0"), (58, b"unknown symbol")]),
        (b"j", [(45, b"3"), (372, b"R"), (380, b"3")]),
        (b"3", [(45, b"3"), (371, b"44"), (372, b"D"), (373, b"6"), (58, b"bad")]),
    ],
)
def test_well_formed_messages_of_every_type_we_speak_pass(msg_type, body):
    assert validate(decoded(msg_type, body)) is None


def assert_reject(reject: Reject | None, reason: int, tag: int | None, *words: str) -> None:
    assert reject is not None, "expected a Reject"
    assert (reject.reason, reject.ref_tag_id) == (reason, tag), reject
    for word in words:
        assert word in reject.text, reject.text


def test_0_invalid_tag_number():
    reject = validate(decoded(b"D", ORDER + [(4999, b"x")]))
    assert_reject(reject, SessionRejectReason.INVALID_TAG_NUMBER, 4999, "Invalid tag number: 4999")


def test_0_a_field_that_is_not_tag_equals_value():
    body = b"35=0\x0149=C\x0156=L\x0134=2\x0152=20260105-10:00:00\x01x1=2\x01"
    assert_reject(validate(hand_framed(body)), 0, None, "Invalid tag number", "x1=2")


def test_1_required_tag_missing_names_the_tag_and_the_message():
    body = [f for f in ORDER if f[0] != 38]
    assert_reject(validate(decoded(b"D", body)), 1, 38, "38 (OrderQty)", "NewOrderSingle")


def test_1_required_header_tag_missing():
    reject = validate(decoded(b"0", [], header=[(49, b"C"), (56, b"L"), (34, 2)]))
    assert_reject(reject, 1, 52, "SendingTime")


def test_15_symbol_group_instance_without_its_symbol():
    reject = validate(decoded(b"V", [(262, b"r"), (263, b"0"), (264, b"1"), (146, b"1"), (48, b"EURUSD")]))
    assert_reject(reject, 15, 48, "55 (Symbol)")


def test_2_tag_not_defined_for_this_message_type():
    reject = validate(decoded(b"0", [(55, b"EUR/USD")]))
    assert_reject(reject, 2, 55, "55 (Symbol)", "Heartbeat")


def test_4_tag_specified_without_a_value():
    body = b"35=D\x0149=C\x0156=L\x0134=2\x0152=20260105-10:00:00\x0111=\x01"
    assert_reject(validate(hand_framed(body)), 4, 11, "ClOrdID")


@pytest.mark.parametrize(
    "tag, value",
    [(54, b"Z"), (40, b"X"), (59, b"9")],
)
def test_5_value_out_of_the_enumeration(tag, value):
    body = [(t, value if t == tag else v) for t, v in ORDER + [(59, b"1")]]
    reject = validate(decoded(b"D", body))
    assert_reject(reject, 5, tag, FIELDS[tag].name, "allowed:")


@pytest.mark.parametrize(
    "msg_type, body, tag",
    [
        (b"V", [(262, b"r"), (263, b"3"), (264, b"0")], 263),
        (b"V", [(262, b"r"), (263, b"1"), (264, b"0"), (265, b"2")], 265),
        (b"A", [(98, b"9"), (108, b"30")], 98),
        (b"X", [(268, b"1"), (279, b"7"), (269, b"0")], 279),
        (b"W", [(55, b"E"), (268, b"1"), (269, b"Q")], 269),
        (b"V", [(262, b"r"), (263, b"1"), (264, b"-1")], 264),
    ],
)
def test_5_market_data_and_logon_enumerations(msg_type, body, tag):
    assert_reject(validate(decoded(msg_type, body)), 5, tag)


@pytest.mark.parametrize(
    "tag, value, kind",
    [
        (38, b"1e6", "float"),
        (44, b"1,08", "float"),
        (60, b"2026-01-05 10:00:00", "UTCTimestamp"),
        (60, b"20261305-10:00:00", "UTCTimestamp"),
        (54, b"12", "char"),
    ],
)
def test_6_incorrect_data_format(tag, value, kind):
    body = [(t, value if t == tag else v) for t, v in ORDER]
    assert_reject(validate(decoded(b"D", body)), 6, tag, kind)


def test_6_sequence_number_is_not_a_number():
    reject = validate(decoded(b"0", [], header=[(49, b"C"), (56, b"L"), (34, b"1x"), (52, NOW)]))
    assert_reject(reject, 6, 34, "MsgSeqNum")


def test_11_invalid_msg_type():
    assert_reject(validate(decoded(b"ZZ", [])), 11, 35, "Invalid MsgType")


def test_unsupported_but_valid_msg_type_is_a_business_reject():
    reject = validate(decoded(b"R", [(131, b"q1")]))
    assert reject is not None and reject.business and reject.reason == 3
    assert dict(reject.body_fields())[380] == b"3"


def test_13_tag_appears_more_than_once():
    assert_reject(validate(decoded(b"D", ORDER + [(11, b"again")])), 13, 11, "more than once")


def test_15_group_instance_must_start_with_its_first_field():
    body = [(55, b"EUR/USD"), (268, b"1"), (270, b"1.1"), (269, b"0")]
    assert_reject(validate(decoded(b"W", body)), 15, 270, "out of order", "269 (MDEntryType)")


def test_15_member_repeated_inside_one_instance():
    body = [(55, b"EUR/USD"), (268, b"1"), (269, b"0"), (270, b"1.1"), (270, b"1.2")]
    assert_reject(validate(decoded(b"W", body)), 15, 270)


@pytest.mark.parametrize("count", [b"1", b"3"])
def test_16_incorrect_num_in_group_count(count):
    body = [(t, count if t == 268 else v) for t, v in SNAPSHOT]
    assert_reject(validate(decoded(b"W", body)), 16, 268, "268 (NoMDEntries)", "2 instance(s)")


def test_16_symbols_group_of_a_market_data_request():
    body = [(t, b"2" if t == 146 else v) for t, v in MD_REQUEST]
    assert_reject(validate(decoded(b"V", body)), 16, 146)


def test_reject_body_is_ready_for_a_35_3():
    reject = validate(decoded(b"D", ORDER + [(11, b"again")]))
    assert reject is not None
    assert reject.body_fields() == [
        (45, b"12"),
        (371, b"11"),
        (372, b"D"),
        (373, b"13"),
        (58, b"Tag appears more than once: 11 (ClOrdID)"),
    ]


def test_a_password_never_appears_in_a_reject_text():
    reject = validate(decoded(b"A", [(98, b"0"), (108, b"30"), (554, b"hunter2"), (554, b"hunter2")]))
    assert reject is not None and reject.reason == 13
    assert "hunter2" not in reject.text
    reject = validate(decoded(b"A", [(98, b"0"), (108, b"30"), (925, b"s3cret"), (4999, b"z")]))
    assert reject is not None and "s3cret" not in reject.text


def test_every_tag_the_messages_use_is_defined():
    for mdef in MESSAGES.values():
        used = mdef.allowed | {t for g in mdef.groups for t in g.members}
        assert used <= FIELDS.keys(), mdef.name
