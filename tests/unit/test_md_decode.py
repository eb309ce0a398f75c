"""Fast LP market-data decode: framing, fields, numbers, instruments, counters."""

from __future__ import annotations

import pytest

from engine.batch import CLEAR_BOOK, SET_LEVEL, TOUCH, UpdateBatch
from engine.config import parse_config
from engine.fixedpoint import Grid
from feeds._md_stream import encode_md, encode_other
from feeds._reference_path import ReferenceMdPath, ref_to_steps
from feeds.md_decode import KIND_OTHER, KIND_W, KIND_X, M_KIND, M_POSSDUP, M_SEQ, MdDecoder, _to_steps

PX = Grid.parse("0.00001")
QTY = Grid.parse("1000")
WTI = Grid.parse("0.01")


def make(levels: int = 5, **kw: object) -> MdDecoder:
    return MdDecoder(3, [PX, WTI, None], [QTY, Grid.parse("1"), None], {"EURUSD": 0, "CL": 1}, levels, **kw)


def rows(batch: UpdateBatch) -> list[tuple[int, ...]]:
    return [
        (int(batch.kind[i]), int(batch.lp[i]), int(batch.instr[i]), int(batch.side[i]), int(batch.level[i]),
         int(batch.price[i]), int(batch.qty[i]), int(batch.ts_ns[i]))
        for i in range(batch.n)
    ]  # fmt: skip


def bid(px: str, qty: str, eid: str | None = None) -> list[tuple[int, str]]:
    return [(269, "0"), (270, px), (271, qty)] + ([(278, eid)] if eid else [])


def ask(px: str, qty: str, eid: str | None = None) -> list[tuple[int, str]]:
    return [(269, "1"), (270, px), (271, qty)] + ([(278, eid)] if eid else [])


def test_snapshot_emits_levels_best_first_with_exact_ticks() -> None:
    dec, batch = make(), UpdateBatch(4)
    w = encode_md("W", 7, [bid("1.08500", "2000"), ask("1.08503", "1000"), bid("1.08501", "1000000")], [(262, 0)])
    result = dec.feed(w, 99, batch)
    assert rows(batch) == [
        (SET_LEVEL, 3, 0, 0, 0, 108501, 1000, 99),
        (SET_LEVEL, 3, 0, 0, 1, 108500, 2, 99),
        (SET_LEVEL, 3, 0, 1, 0, 108503, 1, 99),
    ]
    assert result.messages[:, M_SEQ].tolist() == [7]
    assert result.messages[:, M_KIND].tolist() == [KIND_W]
    assert result.consumed == len(w) and dec.pending == 0


def test_negative_and_zero_prices_are_ordinary_prices() -> None:
    dec, batch = make(), UpdateBatch()
    w = encode_md("W", 1, [bid("-37.63", "5"), bid("0", "1"), ask("0.01", "2"), ask("-0.00", "3")], [(55, "CL")])
    dec.feed(w, 1, batch)
    assert [(r[3], r[4], r[5], r[6]) for r in rows(batch)] == [
        (0, 0, 0, 1), (0, 1, -3763, 5), (1, 0, 0, 3), (1, 1, 1, 2),
    ]  # fmt: skip
    assert dec.counters["applied"] == 4


def test_incremental_by_id_emits_only_changed_levels() -> None:
    dec, batch = make(), UpdateBatch()
    book = [bid("1.1", "1000", "a"), bid("1.09999", "1000", "b"), ask("1.1001", "1000", "c")]
    dec.feed(encode_md("W", 1, book, [(262, 0)]), 1, batch)
    batch.clear()
    x = encode_md("X", 2, [
        [(279, "1"), (278, "a"), (271, "3000")],           # change size only
        [(279, "2"), (278, "c")],                          # delete the only ask
        [(279, "0"), (269, "1"), (278, "d"), (270, "1.10005"), (271, "2000")],
    ], [(262, 0)])  # fmt: skip
    dec.feed(x, 2, batch)
    assert rows(batch) == [
        (SET_LEVEL, 3, 0, 0, 0, 110000, 3, 2),
        (SET_LEVEL, 3, 0, 1, 0, 110005, 2, 2),
    ]
    batch.clear()
    dec.feed(encode_md("X", 3, [[(279, "2"), (278, "d")]], [(262, 0)]), 3, batch)
    assert rows(batch) == [(SET_LEVEL, 3, 0, 1, 0, 0, 0, 3)]


def test_off_grid_and_bad_numbers_are_dropped_and_counted_never_rounded() -> None:
    dec, batch = make(), UpdateBatch()
    w = encode_md("W", 1, [
        bid("1.085005", "1000"),   # price off the 0.00001 grid
        bid("1.08500", "1500"),    # size off the 1000 grid
        bid("1.0850x", "1000"),    # not a number
        bid("1.08500", "-1000"),   # negative size
        [(269, "0"), (271, "1000")],  # no price
        bid("1.08499", "1000"),    # fine
    ], [(262, 0)])  # fmt: skip
    dec.feed(w, 1, batch)
    c = dec.counters
    assert (c["off_grid"], c["bad_number"], c["missing_field"], c["applied"], c["entries"]) == (2, 2, 1, 1, 6)
    assert rows(batch) == [(SET_LEVEL, 3, 0, 0, 0, 108499, 1, 1)]


def test_instrument_from_reqid_then_symbol_and_unknown_counted() -> None:
    dec, batch = make(), UpdateBatch()
    dec.feed(encode_md("W", 1, [bid("1.0", "1000")], [(262, 1), (55, "EURUSD")]), 1, batch)  # 262 wins: CL
    dec.feed(encode_md("W", 2, [bid("1.0", "1000")], [(262, 77), (55, "EURUSD")]), 1, batch)  # 262 unmapped
    dec.feed(encode_md("W", 3, [bid("1.0", "1000")], [(55, "GBPUSD")]), 1, batch)  # unknown symbol
    x = encode_md("X", 4, [[(279, "0"), (269, "1"), (278, "z"), (55, "CL"), (270, "2"), (271, "1")]])
    dec.feed(x, 1, batch)  # per-entry symbol of an X
    assert [(r[2], r[3], r[5], r[6]) for r in rows(batch)] == [(1, 0, 100, 1000), (0, 0, 100000, 1), (1, 1, 200, 1)]
    assert dec.counters["unknown_instrument"] == 1


def test_garbled_frames_are_skipped_counted_and_decoding_resumes() -> None:
    dec, batch = make(), UpdateBatch()
    good = encode_md("W", 1, [bid("1.0", "1000")], [(262, 0)])
    bad = bytearray(encode_md("W", 2, [bid("2.0", "1000")], [(262, 0)]))
    bad[-3] = ord("0") + (bad[-3] - ord("0") + 1) % 10  # wrong CheckSum
    after = encode_md("W", 3, [bid("1.5", "1000")], [(262, 0)])
    result = dec.feed(good + b"garbage\x01" + bytes(bad) + after, 5, batch)
    assert result.messages[:, M_SEQ].tolist() == [1, 3]
    assert dec.counters["garbled"] == 2  # the junk run, the bad frame
    assert rows(batch) == [(SET_LEVEL, 3, 0, 0, 0, 150000, 1, 5)]


def _with_begin_string(frame: bytes, begin: bytes) -> bytes:
    """``frame`` with another BeginString and a CheckSum that matches it (BodyLength is unaffected)."""
    body = begin + frame[frame.index(b"\x01") : frame.rindex(b"10=")]
    return body + b"10=%03d\x01" % (sum(body) % 256)


@pytest.mark.parametrize("begin", [b"8=FIX.4.4x", b"8=FIXabc", b"8=FIX.44", b"8=FIXT.1", b"8=FIX.4.4.4.4"])
def test_a_frame_with_a_malformed_begin_string_is_garbled_like_frame_decoder(begin: bytes) -> None:
    # The framing is FrameDecoder's (fixserver._framing): BeginString must be FIX.n.n or FIXT.n.n.
    dec, ref, batch = make(), ReferenceMdPath(3, [PX, WTI, None], [QTY, Grid.parse("1"), None],
                                              {"EURUSD": 0, "CL": 1}, 5), UpdateBatch()  # fmt: skip
    bad = _with_begin_string(encode_md("W", 1, [bid("2.0", "1000")], [(262, 0)]), begin)
    good = encode_md("W", 2, [bid("1.0", "1000")], [(262, 0)])
    result = dec.feed(bad + good, 5, batch)
    assert result.messages[:, M_SEQ].tolist() == [s for s, _, _, _ in ref.feed(bad + good, 5, UpdateBatch())] == [2]
    assert dec.counters["garbled"] == ref.counters["garbled"] == 1
    assert rows(batch) == [(SET_LEVEL, 3, 0, 0, 0, 100000, 1, 5)]


def test_other_messages_come_back_in_order_with_seq_and_possdup() -> None:
    dec, batch = make(), UpdateBatch()
    hb = encode_other("0", 5)
    reject = encode_other("Y", 7, [(262, 1), (281, "0")])
    stream = encode_md("W", 4, [bid("1.0", "1000")], [(262, 0)]) + hb
    stream += encode_md("X", 6, [[(279, "2"), (278, "x")]], [(43, "Y"), (262, 0)]) + reject
    result = dec.feed(stream, 1, batch)
    assert result.messages[:, M_SEQ].tolist() == [4, 5, 6, 7]
    assert result.messages[:, M_KIND].tolist() == [KIND_W, KIND_OTHER, KIND_X, KIND_OTHER]
    assert result.messages[:, M_POSSDUP].tolist() == [0, 0, 1, 0]
    assert result.other_messages() == [hb, reject]
    assert dec.counters["possdup_skipped"] == 1 and dec.counters["unknown_id"] == 0


def test_partial_message_is_kept_for_the_next_read() -> None:
    dec, batch = make(), UpdateBatch()
    w = encode_md("W", 1, [bid("1.0", "1000")], [(262, 0)])
    result = dec.decode(w + w[:20], 1, batch)
    assert result.consumed == len(w)
    assert dec.feed(w[:33], 1, batch).messages.shape[0] == 0 and dec.pending == 33
    assert dec.feed(w[33:], 1, batch).messages[:, M_SEQ].tolist() == [1]


def test_body_length_above_the_maximum_is_reported() -> None:
    dec = make(max_message_size=100)
    w = encode_md("W", 1, [bid("1.0", "1000")] * 10, [(262, 0)])
    result = dec.decode(w, 1, UpdateBatch())
    assert result.too_large > 100 and result.consumed == 0
    # Digits without their SOH yet are not judged: they may be junk before the next message.
    dec = make(max_message_size=100)
    assert dec.feed(b"8=FIX.4.4\x019=12345", 1, UpdateBatch()).too_large == 0
    small = encode_md("W", 2, [bid("1.0", "1000")], [(262, 0)])
    result = dec.feed(small, 1, UpdateBatch())
    assert result.too_large == 0 and result.messages[:, M_SEQ].tolist() == [2]
    assert dec.counters["garbled"] == 1


@pytest.mark.parametrize(
    "text, step",
    [
        ("1.08501", "0.00001"), ("-37.63", "0.01"), ("+5", "0.25"), ("5.", "1"), (".5", "0.5"),
        ("0.000000000000000001", "0.00001"), ("1.2345678901234567890", "0.1"), ("123456789012345678", "1"),
        ("1234567890123456789", "1"), ("92233720368547758.07", "0.01"), ("92233720368547758.08", "0.01"),
        ("9223372036854775807", "1"), ("-", "1"), (".", "1"), ("", "1"), ("1e5", "1"), ("1..2", "1"),
        ("0.75", "0.25"), ("0.7", "0.25"), ("-0.00", "0.01"), ("000000000000000000000001", "1"),
    ],
)  # fmt: skip
def test_exact_decimal_to_steps_matches_the_reference(text: str, step: str) -> None:
    import numpy as np

    grid = Grid.parse(step)
    buf = np.frombuffer(text.encode() or b"\0", np.uint8)
    status, value = _to_steps(buf, 0, len(text), grid.step_mantissa, grid.step_scale)
    ref_status, ref_value = ref_to_steps(text.encode(), grid)
    assert ({"ok": 0, "bad": 1, "off": 2}[ref_status], ref_value) == (status, value)


def test_from_config_uses_symbol_map_instruments_and_depth() -> None:
    cfg = parse_config(
        """
        [[instruments]]
        symbol = "EUR/USD"
        tick_size = "0.00001"
        qty_step = "1000"
        [[instruments]]
        symbol = "WTI"
        tick_size = "0.01"
        qty_step = "1"
        [[lps]]
        name = "A"
        [[lps]]
        name = "B"
        instruments = ["WTI"]
        symbol_map = { WTI = "CL.F" }
        depth = 3
        [[tiers]]
        name = "t"
        """
    )
    dec = MdDecoder.from_config(cfg, "B")
    assert dec.lp == 1 and dec.books.levels == 3
    batch = UpdateBatch()
    dec.feed(encode_md("W", 1, [bid("-1.25", "4")], [(55, "CL.F")]), 1, batch)
    dec.feed(encode_md("W", 2, [bid("1.0", "1000")], [(55, "EUR/USD")]), 1, batch)
    assert rows(batch) == [(SET_LEVEL, 1, 1, 0, 0, -125, 4, 1)]
    assert dec.counters["unknown_instrument"] == 1


def test_fast_path_matches_reference_on_a_hand_written_stream() -> None:
    args = ([PX, WTI, None], [QTY, Grid.parse("1"), None], {"EURUSD": 0, "CL": 1}, 4)
    fast, ref = MdDecoder(0, *args), ReferenceMdPath(0, *args)
    stream = [
        encode_md("W", 1, [bid("1.1", "1000", "a"), bid("1.1", "2000", "b"), ask("1.2", "1000", "c")], [(262, 0)]),
        encode_md(
            "X", 2, [[(279, "1"), (278, "b"), (270, "1.09")], [(279, "9"), (278, "a")], [(279, "2"), (278, "q")]],
            [(262, 0)],
        ),
        encode_md("X", 3, [[(279, "0"), (269, "2"), (278, "t"), (270, "1"), (271, "1")]], [(262, 0)]),
        encode_other("0", 4),
    ]  # fmt: skip
    fb, rb = UpdateBatch(), UpdateBatch()
    for i, msg in enumerate(stream):
        fast.feed(msg, i, fb)
        ref.feed(msg, i, rb)
    assert rows(fb) == rows(rb)
    assert fast.counters == ref.counters
    assert fast.counters["bad_action"] == 1 and fast.counters["ignored"] == 1
    assert fast.counters["unknown_id"] == 1


def test_rows_drive_the_real_engine_to_a_quote() -> None:
    from engine.book import Engine

    cfg = parse_config(
        """
        [[instruments]]
        symbol = "WTI"
        tick_size = "0.01"
        qty_step = "1"
        [[lps]]
        name = "A"
        instruments = ["WTI"]
        [[lps]]
        name = "B"
        instruments = ["WTI"]
        incremental = false
        [[tiers]]
        name = "t"
        depth = 2
        """
    )
    engine = Engine(cfg)
    decoders = [MdDecoder.from_config(cfg, name) for name in ("A", "B")]
    batch = UpdateBatch()
    batch.lp_up(0, 0)
    batch.lp_up(1, 0)
    decoders[0].feed(encode_md("W", 1, [bid("-0.05", "3", "x"), ask("0.02", "1", "y")], [(262, 0)]), 1, batch)
    decoders[1].feed(encode_md("W", 1, [bid("-0.05", "2"), ask("0.01", "4")], [(55, "WTI")]), 1, batch)
    engine.apply(batch, 1)
    quote = engine.quote("t", "WTI")
    assert quote.bids == ((-5, 5),)
    assert quote.asks == ((1, 4), (2, 1))


def test_a_supervised_decoder_touches_an_instrument_heard_from_whose_levels_did_not_change() -> None:
    # The LP resent its book unchanged (a W) and sent an X that moved nothing we keep (a level
    # past our depth): no level row, but a TOUCH for each, so the engine keeps the LP fresh.
    entries = [bid("1.08500", "2000"), ask("1.08503", "1000")]
    x = encode_md("X", 3, [[(279, "0"), (269, "2"), (278, "t"), (270, "1.08501"), (271, "1000")]], [(262, 1)])
    plain, supervised = make(), make(supervised=True)
    for dec in (plain, supervised):
        dec.feed(encode_md("W", 1, entries, [(262, 0)]), 1, UpdateBatch())
    batch = UpdateBatch()
    supervised.feed(encode_md("W", 2, entries, [(262, 0)]) + x, 2, batch)
    assert rows(batch) == [(TOUCH, 3, 0, 0, 0, 0, 0, 2), (TOUCH, 3, 1, 0, 0, 0, 0, 2)]
    batch.clear()
    plain.feed(encode_md("W", 2, entries, [(262, 0)]) + x, 2, batch)
    assert rows(batch) == []  # plain decoding emits changed levels only
    supervised.feed(encode_md("W", 4, [bid("1.08500", "3000"), ask("1.08503", "1000")], [(262, 0)]), 5, batch)
    assert rows(batch) == [(SET_LEVEL, 3, 0, 0, 0, 108500, 3, 5)]  # a changed level is touch enough


def test_a_supervised_decoder_withdraws_every_live_book_at_a_gap_within_one_read() -> None:
    dec, batch = make(supervised=True), UpdateBatch()
    dec.feed(encode_md("W", 1, [bid("1.08500", "2000")], [(262, 0)]), 1, batch, expected_seq=1)
    dec.feed(encode_md("W", 2, [bid("1.00", "1")], [(262, 1)]), 1, batch, expected_seq=1)
    batch.clear()
    stream = encode_md("X", 3, [[(279, "1"), (269, "0"), (278, "b"), (271, "3000")]], [(262, 0)])  # unknown id
    stream += encode_md("X", 5, [[(279, "0"), (269, "0"), (278, "c"), (270, "1.08501"), (271, "1000")]], [(262, 0)])
    stream += encode_md("W", 6, [bid("1.08499", "1000")], [(262, 0)])  # a fresh snapshot: live again
    result = dec.feed(stream, 2, batch, expected_seq=3)  # 4 is missing
    assert rows(batch) == [
        (CLEAR_BOOK, 3, 0, 0, 0, 0, 0, 2),
        (SET_LEVEL, 3, 0, 0, 0, 108499, 1, 2),
        (CLEAR_BOOK, 3, 1, 0, 0, 0, 0, 2),
    ]
    assert result.withdrawn == 2 and dec.gaps == 1
    assert dec.take_withdrawn() == [1]  # instrument 0 has its fresh snapshot: nothing to ask for
    assert dec.counters["awaiting_snapshot"] == 1  # the X after the gap
    assert dec.awaiting_snapshot(1) and not dec.awaiting_snapshot(0)
