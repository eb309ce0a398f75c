"""Fast encoders and the batch decoder: same bytes / same meaning as the generic codec."""

from __future__ import annotations

import numpy as np
import pytest

from engine.fixedpoint import Grid
from fixserver.batchdecode import (
    E_ACTION,
    E_FLAGS,
    E_MSG,
    E_POSITION,
    E_PRICE,
    E_SIZE,
    E_SYM_HASH,
    E_TYPE,
    HAS_ID,
    HAS_POSITION,
    HAS_PRICE,
    HAS_SIZE,
    M_DECLARED,
    M_ENTRY_COUNT,
    M_POSS_DUP,
    M_SEQ,
    M_SYM_HASH,
    M_TYPE,
    PRICE_EXACT,
    SIZE_EXACT,
    BatchDecoder,
    msg_type_code,
    reference_entries,
    symbol_hash,
)
from fixserver.codec import (
    EXECUTION_REPORT_FILL,
    EncodeError,
    FrameDecoder,
    FrameTooLarge,
    MessageTemplate,
    encode,
    encode_prepared,
    encode_snapshot,
    encode_with_prepared,
    md_incremental_body,
    md_snapshot_body,
    prepare_body,
    snapshot_encoder,
)

HDR = [(49, b"LAGG"), (56, b"CLIENT"), (34, b"42"), (52, b"20260105-10:00:00.123")]
HDR_BYTES = b"49=LAGG\x0156=CLIENT\x0134=42\x0152=20260105-10:00:00.123\x01"
BIDS = [(b"1.08520", b"1000000"), (b"1.08519", b"3000000")]
ASKS = [(b"1.08523", b"1000000"), (b"1.08525", b"2000000")]


def snapshot_fields(symbol=b"EUR/USD", bids=BIDS, asks=ASKS, req=None):
    out = [] if req is None else [(262, req)]
    out += [(55, symbol), (268, b"%d" % (len(bids) + len(asks)))]
    for etype, levels in ((b"0", bids), (b"1", asks)):
        for px, sz in levels:
            out += [(269, etype), (270, px), (271, sz)]
    return out


def test_snapshot_body_is_the_generic_encoding():
    for req in (None, b"req-7"):
        fast = md_snapshot_body(b"EUR/USD", BIDS, ASKS, md_req_id=req)
        assert fast == prepare_body(b"W", snapshot_fields(req=req))
        assert encode_prepared(HDR_BYTES, fast) == encode(b"W", HDR, snapshot_fields(req=req))
        assert encode_with_prepared(HDR, fast) == encode_prepared(HDR_BYTES, fast)


@pytest.mark.parametrize("req", [None, b"req-7"])
@pytest.mark.parametrize("depth", [0, 1, 2, 10])
def test_one_shot_snapshot_is_the_generic_encoding(req, depth):
    bids = [(b"1.%05d" % (8520 - i), b"%d" % (1000000 + i), b"b%d" % i) for i in range(depth)]
    asks = [(b"1.%05d" % (8523 + i), b"%d" % (2000000 + i), b"a%d" % i) for i in range(depth)]
    expected = [] if req is None else [(262, req)]
    expected += [(55, b"EUR/USD"), (268, b"%d" % (2 * depth))]
    for etype, levels in ((b"0", bids), (b"1", asks)):
        for px, sz, eid in levels:
            expected += [(269, etype), (270, px), (271, sz), (278, eid)]
    assert encode_snapshot(HDR_BYTES, b"EUR/USD", bids, asks, req) == encode(b"W", HDR, expected)
    two = [lvl[:2] for lvl in bids], [lvl[:2] for lvl in asks]
    assert encode_snapshot(HDR_BYTES, b"EUR/USD", *two, req) == encode_prepared(
        HDR_BYTES, md_snapshot_body(b"EUR/USD", *two, req)
    )


@pytest.mark.parametrize(
    "bids", [[(b"1.1", b"")], [(b"1.1", b"5\x0110=000")], [(1, b"1")], [(b"1.1", b"1"), (b"1.2", b"1", b"id")]]
)
def test_one_shot_snapshot_refuses_values_fix_cannot_carry(bids):
    with pytest.raises(EncodeError):
        encode_snapshot(HDR_BYTES, b"EUR/USD", bids, [])


def test_a_kept_snapshot_encoder_is_the_same_encoder_and_checks_the_shape():
    encode_w = snapshot_encoder(2, 2, with_ids=False, with_req=False)
    assert encode_w(HDR_BYTES, b"EUR/USD", BIDS, ASKS) == encode(b"W", HDR, snapshot_fields())
    with pytest.raises(EncodeError, match="2 bid and 2 ask"):
        encode_w(HDR_BYTES, b"EUR/USD", BIDS[:1], ASKS)


def test_template_refuses_a_value_that_would_smuggle_a_field_into_the_header():
    with pytest.raises(EncodeError):
        MessageTemplate(b"D", (11, 55)).encode(HDR_BYTES, (b"x\x0149=EVIL", b"EUR/USD"))


def test_incremental_body_is_the_generic_encoding():
    changes = [(b"1", b"0", b"EUR/USD", b"1.08521", b"500000"), (b"2", b"1", b"EUR/USD", b"1.08525", None)]
    expected = [(268, b"2")]
    expected += [(279, b"1"), (269, b"0"), (55, b"EUR/USD"), (270, b"1.08521"), (271, b"500000")]
    expected += [(279, b"2"), (269, b"1"), (55, b"EUR/USD"), (270, b"1.08525")]
    assert md_incremental_body(changes) == prepare_body(b"X", expected)


def test_execution_report_template_is_the_generic_encoding():
    values = (b"O1", b"C1", b"E1", b"F", b"2", b"EUR/USD", b"1", b"1000000", b"2", b"1.0852", b"3")
    values += (b"1000000", b"1.0852", b"0", b"1000000", b"1.0852", b"20260105-10:00:00.123")
    generic = encode(b"8", HDR, list(zip(EXECUTION_REPORT_FILL.tags, values, strict=True)))
    assert EXECUTION_REPORT_FILL.encode(HDR_BYTES, values) == generic


@pytest.mark.parametrize("bad", [(b"", b"x"), (b"a\x01b", b"x"), (b"x",), ("str", b"x"), (1, b"x")])
def test_template_refuses_empty_soh_wrong_count_or_non_bytes(bad):
    with pytest.raises(EncodeError):
        MessageTemplate(b"D", (11, 55)).encode(HDR_BYTES, bad)


@pytest.mark.parametrize("levels", [[(b"", b"1")], [(b"1.1", b"1\x012")], [(1, b"1")]])
def test_snapshot_body_refuses_bad_levels(levels):
    with pytest.raises(EncodeError):
        md_snapshot_body(b"EUR/USD", levels, [])


# ---------------------------------------------------------------------------------------------
# Batch decode


def w(seq: int, symbol=b"EUR/USD", bids=BIDS, asks=ASKS) -> bytes:
    header = [(49, b"LP1"), (56, b"LAGG"), (34, seq), (52, b"20260105-10:00:00.123")]
    return encode(b"W", header, snapshot_fields(symbol, bids, asks, req=b"r1"))


def test_batch_gives_one_row_per_message_and_per_entry():
    raw = w(1) + encode(b"0", [(49, b"LP1"), (56, b"LAGG"), (34, 2), (52, b"x")], []) + w(3, b"USD/JPY")
    batch = BatchDecoder(price_scale=5, size_scale=0).feed(raw)
    assert batch.msgs[:, M_TYPE].tolist() == [msg_type_code(b"W"), msg_type_code(b"0"), msg_type_code(b"W")]
    assert batch.msgs[:, M_SEQ].tolist() == [1, 2, 3]
    assert batch.msgs[:, M_ENTRY_COUNT].tolist() == [4, 0, 4]
    assert batch.msgs[:, M_DECLARED].tolist() == [4, -1, 4]
    assert batch.msgs[:, M_SYM_HASH].tolist()[::2] == [symbol_hash(b"EUR/USD"), symbol_hash(b"USD/JPY")]
    e = batch.entries
    assert e[:, E_MSG].tolist() == [0, 0, 0, 0, 2, 2, 2, 2]
    assert bytes(e[:4, E_TYPE].astype(np.uint8)) == b"0011"
    assert e[:4, E_PRICE].tolist() == [108520, 108519, 108523, 108525]
    assert e[:4, E_SIZE].tolist() == [1000000, 3000000, 1000000, 2000000]
    assert (e[:, E_FLAGS] == HAS_PRICE | PRICE_EXACT | HAS_SIZE | SIZE_EXACT).all()
    assert e[4:, E_SYM_HASH].tolist() == [symbol_hash(b"USD/JPY")] * 4
    assert batch.messages() == FrameDecoder().feed(raw)


def test_incremental_entries_carry_action_id_position_and_their_own_symbol():
    body = [(262, b"r1"), (268, b"3")]
    body += [(279, b"0"), (269, b"0"), (278, b"b7"), (55, b"EUR/USD"), (270, b"1.1"), (271, b"5"), (290, b"1")]
    body += [(279, b"2"), (269, b"1"), (278, b"a3"), (55, b"GBP/USD")]
    body += [(279, b"1"), (269, b"1"), (55, b"WTI"), (270, b"-37.63"), (271, b"10"), (290, b"2")]
    raw = encode(b"X", HDR + [(43, b"Y")], body)
    batch = BatchDecoder(price_scale=2, size_scale=0).feed(raw)
    assert batch.msgs[0, M_POSS_DUP] == 1
    e = batch.entries
    assert e[:, E_ACTION].tolist() == [0, 2, 1]
    assert e[:, E_PRICE].tolist() == [110, 0, -3763]  # negative prices are ordinary prices
    assert e[:, E_POSITION].tolist() == [1, 0, 2]
    assert [bool(f & HAS_ID) for f in e[:, E_FLAGS]] == [True, True, False]
    assert [bool(f & HAS_POSITION) for f in e[:, E_FLAGS]] == [True, False, True]
    assert [bool(f & HAS_PRICE) for f in e[:, E_FLAGS]] == [True, False, True]
    assert e[:, E_SYM_HASH].tolist() == [symbol_hash(s) for s in (b"EUR/USD", b"GBP/USD", b"WTI")]
    assert batch.entry_objects() == reference_entries(FrameDecoder().feed(raw))


@pytest.mark.parametrize(
    "text, scale",
    [
        (b"1.08523", 5),
        (b"1.1", 5),
        (b"-37.63", 2),
        (b"+0.001", 3),
        (b".5", 1),
        (b"7.", 0),
        (b"0", 8),
        (b"150", 0),
        (b"1.234500", 4),  # trailing zeros beyond the scale are exact
        (b"99999999.99999999", 8),
    ],
)
def test_exact_price_conversion_agrees_with_the_fixedpoint_reference(text, scale):
    raw = encode(b"W", HDR, [(55, b"X"), (268, b"1"), (269, b"0"), (270, text)])
    (row,) = BatchDecoder(price_scale=scale).feed(raw).entries
    assert row[E_FLAGS] & PRICE_EXACT
    assert row[E_PRICE] == Grid.parse("1" if scale == 0 else "0." + "0" * (scale - 1) + "1").to_steps(text)


@pytest.mark.parametrize("text", [b"1.085235", b"1e5", b"1,5", b"-", b".", b"1.2.3", b"12345678901234567890", b"nan"])
def test_a_price_that_is_not_exact_at_the_scale_is_flagged_not_guessed(text):
    raw = encode(b"W", HDR, [(55, b"X"), (268, b"1"), (269, b"0"), (270, text)])
    (row,) = BatchDecoder(price_scale=5).feed(raw).entries
    assert row[E_FLAGS] & HAS_PRICE and not row[E_FLAGS] & PRICE_EXACT
    assert row[E_PRICE] == 0
    try:
        reference: int | None = Grid.parse("0.00001").to_steps(text)
    except ValueError:  # DecimalFormatError and OffGridError are ValueErrors
        reference = None
    assert reference is None or abs(reference) >= 10**18  # the kernel refuses what int64 cannot hold


def test_batch_decoder_keeps_partial_frames_across_reads():
    raw = w(1) + w(2) + w(3)
    decoder = BatchDecoder()
    seqs: list[int] = []
    for i in range(0, len(raw), 7):
        seqs += decoder.feed(raw[i : i + 7]).msgs[:, M_SEQ].tolist()
    assert seqs == [1, 2, 3] and decoder.buffered == 0 and decoder.garbled == 0


def test_batch_decoder_accepts_bytearray_and_memoryview_reads():
    raw = w(1) + w(2)
    decoder = BatchDecoder()
    seqs = decoder.feed(bytearray(raw[:100])).msgs[:, M_SEQ].tolist()
    seqs += decoder.feed(memoryview(raw)[100:]).msgs[:, M_SEQ].tolist()
    assert seqs == [1, 2]


def test_batch_decoder_drops_garbled_frames_like_frame_decoder():
    bad = w(1)[:-4] + b"000\x01" if not w(1).endswith(b"000\x01") else w(1)[:-4] + b"001\x01"
    decoder = BatchDecoder()
    batch = decoder.feed(b"junk" + bad + w(2))
    assert batch.msgs[:, M_SEQ].tolist() == [2]
    assert decoder.garbled == 2
    assert decoder.last_garbled_reason == "CheckSum mismatch"


def test_batch_decoder_raises_frame_too_large_with_earlier_messages():
    decoder = BatchDecoder(max_message_size=1000)
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(w(1) + b"8=FIX.4.4\x019=5000\x0135=W\x01")
    assert info.value.body_length == 5000
    assert [m.seq_num for m in info.value.messages] == [1]


def test_extract_reads_the_first_occurrence_of_each_asked_tag_like_fixmessage_get():
    orders = [
        encode(b"D", HDR, [(11, b"c%d" % i), (55, b"EUR/USD"), (54, b"1"), (38, b"%d" % (i + 1))]) for i in range(3)
    ]
    raw = orders[0] + encode(b"0", HDR, [(58, b"a"), (58, b"b")]) + orders[1] + orders[2]
    batch = BatchDecoder().feed(raw)
    tags = (11, 38, 58, 44)
    assert batch.extract(tags) == [[m.get(t) for t in tags] for m in FrameDecoder().feed(raw)]
    assert batch.extract(tags)[1] == [None, None, b"a", None]


def test_batch_decoder_resynchronises_when_junk_length_digits_run_into_the_next_message():
    stream = b"8=FIX.4.4\x019=52" + b"8" + w(2) + w(3)
    decoder = BatchDecoder(max_message_size=4096)
    out = [m for i in range(len(stream)) for m in decoder.feed(stream[i : i + 1]).messages()]
    assert [m.seq_num for m in out] == [2, 3]
