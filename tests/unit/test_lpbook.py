"""LP book normalisation: dialects, level diffing, id table, resets."""

from __future__ import annotations

from engine.batch import CLEAR_BOOK, LP_DOWN, SET_LEVEL, UpdateBatch
from engine.fixedpoint import Grid
from feeds._md_stream import encode_md
from feeds.lpbook import KEYED_BY_POSITION, MAX_ID_LEN
from feeds.md_decode import MdDecoder

ONE = Grid.parse("1")


def make(levels: int = 3, **kw: object) -> MdDecoder:
    return MdDecoder(0, [ONE, ONE], [ONE, ONE], {"A": 0, "B": 1}, levels, **kw)


def levels(batch: UpdateBatch) -> list[tuple[int, int, int, int]]:
    """(side, level, price, qty) of the SET_LEVEL rows."""
    assert all(int(k) == SET_LEVEL for k in batch.kind[: batch.n])
    return [(int(batch.side[i]), int(batch.level[i]), int(batch.price[i]), int(batch.qty[i])) for i in range(batch.n)]


def e(side: int, px: int, qty: int, eid: str | None = None, pos: int | None = None) -> list[tuple[int, object]]:
    out: list[tuple[int, object]] = [(269, side), (270, px), (271, qty)]
    if eid is not None:
        out.append((278, eid))
    if pos is not None:
        out.append((290, pos))
    return out


def x(action: int, **fields: object) -> list[tuple[int, object]]:
    tags = {"side": 269, "eid": 278, "px": 270, "qty": 271, "pos": 290}
    return [(279, action)] + [(tags[k], v) for k, v in fields.items()]


def test_snapshot_sums_sizes_per_price_and_cuts_to_depth() -> None:
    dec, batch = make(), UpdateBatch()
    w = encode_md("W", 1, [e(0, 10, 1), e(0, 9, 2), e(0, 10, 3), e(0, 7, 1), e(0, 8, 1), e(1, 12, 0)], [(262, 0)])
    dec.feed(w, 0, batch)
    assert levels(batch) == [(0, 0, 10, 4), (0, 1, 9, 2), (0, 2, 8, 1)]  # qty-0 ask is no level


def test_snapshot_replaces_the_book_and_vanished_levels_go_to_zero() -> None:
    dec, batch = make(), UpdateBatch()
    dec.feed(encode_md("W", 1, [e(0, 10, 1), e(0, 9, 1), e(1, 11, 1)], [(262, 0)]), 0, batch)
    batch.clear()
    dec.feed(encode_md("W", 2, [e(0, 10, 1)], [(262, 0)]), 0, batch)
    assert levels(batch) == [(0, 1, 0, 0), (1, 0, 0, 0)]  # level 0 bid unchanged: not re-sent
    batch.clear()
    dec.feed(encode_md("W", 3, [], [(262, 0)]), 0, batch)
    assert levels(batch) == [(0, 0, 0, 0)]


def test_messages_in_one_read_are_conflated_to_the_end_state() -> None:
    dec, batch = make(), UpdateBatch()
    stream = encode_md("W", 1, [e(0, 10, 1, "a")], [(262, 0)])
    stream += encode_md("X", 2, [x(1, eid="a", qty=5)], [(262, 0)])
    stream += encode_md("X", 3, [x(0, side=1, eid="b", px=12, qty=2)], [(262, 1)])
    stream += encode_md("X", 4, [x(1, eid="a", px=11)], [(262, 0)])
    dec.feed(stream, 0, batch)
    # One row per changed level of the end state, instruments in the order they became dirty.
    assert [(int(batch.instr[i]),) + lv for i, lv in enumerate(levels(batch))] == [(0, 0, 0, 11, 5), (1, 1, 0, 12, 2)]
    assert dec.counters["md_messages"] == 4 and dec.counters["applied"] == 4


def test_new_for_a_known_id_replaces_and_change_may_move_side() -> None:
    dec, batch = make(), UpdateBatch()
    stream = encode_md("W", 1, [e(0, 10, 1, "a")], [(262, 0)])
    stream += encode_md("X", 2, [x(0, side=0, eid="a", px=9, qty=2), x(1, eid="a", side=1)], [(262, 0)])
    dec.feed(stream, 0, batch)
    assert levels(batch) == [(1, 0, 9, 2)]
    assert dec.books.n_ent[0] == 1


def test_entry_ids_are_exact_bytes_and_long_ids_are_refused() -> None:
    dec, batch = make(), UpdateBatch()
    long_id = "i" * (MAX_ID_LEN + 1)
    stream = encode_md("W", 1, [e(0, 10, 1, "id-1"), e(0, 9, 1, "id-10"), e(0, 8, 1, long_id)], [(262, 0)])
    stream += encode_md("X", 2, [x(2, eid="id-1"), x(2, eid="id-1")], [(262, 0)])
    dec.feed(stream, 0, batch)
    assert levels(batch) == [(0, 0, 9, 1)]
    assert dec.counters["id_too_long"] == 1 and dec.counters["unknown_id"] == 1


def test_full_entry_table_drops_and_counts() -> None:
    dec, batch = make(max_entries=2), UpdateBatch()
    dec.feed(encode_md("W", 1, [e(0, 10, 1, "a"), e(0, 9, 1, "b"), e(0, 8, 1, "c")], [(262, 0)]), 0, batch)
    assert dec.counters["book_full"] == 1 and dec.counters["applied"] == 2


def test_position_keyed_insert_change_delete_shift_levels() -> None:
    dec, batch = make(levels=3, keyed_by=KEYED_BY_POSITION), UpdateBatch()
    dec.feed(encode_md("W", 1, [e(0, 10, 1), e(0, 9, 1), e(0, 8, 1), e(1, 11, 1, pos=2)], [(262, 0)]), 0, batch)
    assert levels(batch) == [(0, 0, 10, 1), (0, 1, 9, 1), (0, 2, 8, 1), (1, 1, 11, 1)]
    batch.clear()
    dec.feed(encode_md("X", 2, [x(0, side=0, pos=1, px=11, qty=5)], [(262, 0)]), 0, batch)  # insert at top
    assert levels(batch) == [(0, 0, 11, 5), (0, 1, 10, 1), (0, 2, 9, 1)]
    batch.clear()
    dec.feed(encode_md("X", 3, [x(2, side=0, pos=2), x(1, side=0, pos=1, qty=6)], [(262, 0)]), 0, batch)
    assert levels(batch) == [(0, 0, 11, 6), (0, 1, 9, 1), (0, 2, 0, 0)]
    batch.clear()
    dec.feed(encode_md("X", 4, [x(0, side=1, pos=4, px=1, qty=1), x(1, pos=1, qty=1)], [(262, 0)]), 0, batch)
    assert levels(batch) == []
    assert dec.counters["ignored"] == 1 and dec.counters["missing_field"] == 1  # beyond depth; no side


def test_clear_book_and_lp_down_forget_state_so_a_snapshot_is_sent_again() -> None:
    dec, batch = make(), UpdateBatch()
    w = encode_md("W", 1, [e(0, 10, 1, "a")], [(262, 0)])
    dec.feed(w, 0, batch)
    batch.clear()
    dec.clear_book(batch, 5, instr=0)
    dec.feed(w, 6, batch)
    assert [int(k) for k in batch.kind[: batch.n]] == [CLEAR_BOOK, SET_LEVEL]
    batch.clear()
    dec.feed(w[:10], 7, batch)
    dec.lp_down(batch, 8)
    assert dec.pending == 0
    dec.feed(w, 9, batch)
    assert [int(k) for k in batch.kind[: batch.n]] == [LP_DOWN, SET_LEVEL]
    assert int(batch.ts_ns[1]) == 9


def test_position_keyed_change_of_a_level_we_do_not_hold_is_refused_not_priced_at_zero() -> None:
    dec, batch = make(levels=3, keyed_by=KEYED_BY_POSITION), UpdateBatch()
    dec.feed(encode_md("W", 1, [e(0, 10, 1), e(1, 11, 1)], [(262, 0)]), 0, batch)
    batch.clear()
    dec.feed(encode_md("X", 2, [x(1, side=1, pos=2, qty=3), x(1, side=1, pos=3, px=13)], [(262, 0)]), 0, batch)
    assert levels(batch) == [] and dec.counters["unknown_id"] == 2  # a size (or a price) alone: no level
    dec.feed(encode_md("X", 3, [x(1, side=1, pos=2, px=12, qty=3), x(1, side=1, pos=1, qty=4)], [(262, 0)]), 0, batch)
    assert levels(batch) == [(1, 0, 11, 4), (1, 1, 12, 3)]  # a whole level, and a size change of a held one
