"""Property tests: the fast LP market-data path equals the plain-Python reference, byte for byte.

Random LP streams (snapshots, incremental new/change/delete by id or by position, negative prices
and prices crossing zero, bad entries, unknown instruments, resends), framed with simplefix, then
damaged (garbage between messages, bad checksums, truncated frames) and split at random into
reads. The fast decoder and the reference must emit the same rows after every read, list the
same messages and end with the same counters; the rows must also rebuild the LP's true book.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.batch import SET_LEVEL, UpdateBatch
from engine.fixedpoint import Grid
from feeds._md_stream import encode_md, encode_other
from feeds._reference_path import ReferenceMdPath
from feeds.lpbook import KEYED_BY_ID, KEYED_BY_POSITION, MAX_ID_LEN
from feeds.md_decode import M_END, M_KIND, M_POSSDUP, M_SEQ, M_START, MdDecoder
from fixserver.batchdecode import M_END as B_END
from fixserver.batchdecode import M_START as B_START
from fixserver.batchdecode import BatchDecoder
from fixserver.codec import decode_fields

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TICKS = ["0.01", "0.25", "1", "0.00001", "5"]
STEPS = ["1", "1000", "0.1"]
SYMBOLS = {"AAA": 0, "BBB": 1}
# Junk between messages; the last is a BodyLength far above the maximum that is really junk.
GARBAGE = [b"xx", b"8=FI", b"8=FIX", b"\x0110=000\x01", b"8=FIX.4.4\x019=", b"\x01", b"8=FIX.4.4\x019=123456789"]
BAD_BEGIN = [b"8=FIX.4.4x", b"8=FIXabc", b"8=FIX.44", b"8=FIXT.1", b"8=FIX.4.4.4.4", b"8=FIX"]


def rows(batch: UpdateBatch) -> list[tuple[int, ...]]:
    return [
        tuple(int(a[i]) for a in (batch.kind, batch.lp, batch.instr, batch.side, batch.level, batch.price,
                                  batch.qty, batch.ts_ns))
        for i in range(batch.n)
    ]  # fmt: skip


@st.composite
def number(draw: Any, grid: Grid, low: int = -2000) -> str:
    """Mostly on-grid decimals (from ``low`` steps), sometimes off-grid or not a number."""
    kind = draw(st.sampled_from(["on"] * 20 + ["off", "junk"]))
    if kind == "junk":
        return draw(st.sampled_from(["x", "1e3", "", "--1", "1.2.3", ".", "99999999999999999999"]))
    steps = draw(st.integers(low, 2000))
    text = grid.to_text(steps)
    if kind == "off":
        text += "1" if "." in text else ".1"
        if grid.to_text(steps) == text:  # pragma: no cover - defensive
            text += "7"
    return text


@st.composite
def entry(draw: Any, grids: tuple[Grid, Grid], incremental: bool) -> list[tuple[int, str]]:
    px_grid, qty_grid = grids
    fields: list[tuple[int, str]] = []
    if incremental:
        fields.append((279, draw(st.sampled_from(["0"] * 4 + ["1"] * 3 + ["2"] * 3 + ["7"]))))
    elif draw(st.integers(0, 20)) == 0:
        fields.append((279, "0"))  # a snapshot entry's 279 is ignored
    if draw(st.integers(0, 15)):
        fields.append((269, draw(st.sampled_from(["0", "1"] * 6 + ["2"]))))
    if draw(st.integers(0, 5)):
        fields.append((278, draw(st.sampled_from(["a", "b", "c", "A-1", "x" * (MAX_ID_LEN + 1)]))))
    if incremental and draw(st.integers(0, 6)) == 0:
        fields.append((55, draw(st.sampled_from(["AAA", "BBB", "ZZZ"]))))  # may be off-grid there
    if draw(st.integers(0, 12)):
        fields.append((270, draw(number(px_grid))))
    if draw(st.integers(0, 12)):
        qty = draw(number(qty_grid, low=0))
        fields.append((271, qty if draw(st.integers(0, 20)) else "-" + qty.lstrip("-")))
    if draw(st.integers(0, 3)):
        fields.append((290, draw(st.sampled_from(["1", "2", "3", "4", "5", "0", "x"]))))
    # The group's first field is its delimiter: put the entry's 279 (X) or 269 (W) first if any.
    return fields


@st.composite
def message(draw: Any, grids: list[tuple[Grid, Grid]], seq: int) -> bytes:
    kind = draw(st.sampled_from(["W"] * 3 + ["X"] * 6 + ["0"]))
    if kind == "0":
        return encode_other(draw(st.sampled_from(["0", "1", "Y"])), seq, [(112, "t")])
    header: list[tuple[int, str | int]] = []
    if draw(st.integers(0, 30)) == 0:
        header.append((43, "Y"))
    route = draw(st.sampled_from(["reqid"] * 4 + ["symbol"] * 2 + ["both", "bad_reqid", "none"]))
    instr = draw(st.integers(0, 1))
    sym = draw(st.sampled_from([["AAA", "BBB"][instr]] * 10 + ["ZZZ"]))
    if route in ("reqid", "both"):
        header.append((262, instr))
    if route == "bad_reqid":
        header.append((262, draw(st.sampled_from(["9", "abc"]))))
    if route in ("symbol", "both", "bad_reqid"):
        header.append((55, sym))
    entries = draw(st.lists(entry(grids[instr], kind == "X"), max_size=6))
    return encode_md(kind, seq, [e for e in entries if e], header)


@st.composite
def damaged_stream(draw: Any, grids: list[tuple[Grid, Grid]]) -> tuple[bytes, list[int]]:
    n = draw(st.integers(1, 20))
    out = b""
    for seq in range(1, n + 1):
        msg = draw(message(grids, seq))
        damage = draw(st.sampled_from(["none"] * 16 + ["checksum", "truncate", "garbage", "length", "begin"]))
        if damage == "checksum":
            msg = msg[:-2] + bytes([48 + (msg[-2] - 47) % 10]) + msg[-1:]
        elif damage == "truncate":
            msg = msg[: draw(st.integers(1, len(msg) - 1))]
        elif damage == "garbage":
            out += draw(st.sampled_from(GARBAGE))
        elif damage == "length":
            msg = msg.replace(b"\x019=", b"\x019=1", 1)
        elif damage == "begin":  # a malformed BeginString on an otherwise sound frame (CheckSum redone)
            body = draw(st.sampled_from(BAD_BEGIN)) + msg[msg.index(b"\x01") : msg.rindex(b"10=")]
            msg = body + b"10=%03d\x01" % (sum(body) % 256)
        out += msg
    cuts = sorted(draw(st.lists(st.integers(0, len(out)), max_size=6)))
    return out, cuts


@st.composite
def lp_setup(draw: Any) -> dict[str, Any]:
    grids = [(Grid.parse(draw(st.sampled_from(TICKS))), Grid.parse(draw(st.sampled_from(STEPS)))) for _ in range(2)]
    return {
        "grids": grids,
        "levels": draw(st.integers(1, 5)),
        "keyed_by": KEYED_BY_POSITION if draw(st.integers(0, 2)) == 0 else KEYED_BY_ID,
        "max_entries": draw(st.integers(1, 8)),
    }


def build(setup: dict[str, Any]) -> tuple[MdDecoder, ReferenceMdPath]:
    grids = setup["grids"]
    args = ([g for g, _ in grids], [q for _, q in grids], SYMBOLS, setup["levels"])
    kw = {"keyed_by": setup["keyed_by"], "max_entries": setup["max_entries"]}
    return MdDecoder(4, *args, **kw), ReferenceMdPath(4, *args, **kw)


def apply_rows(book: dict[tuple[int, int, int], tuple[int, int]], batch: UpdateBatch) -> None:
    for r in rows(batch):
        assert r[0] == SET_LEVEL
        book[(r[2], r[3], r[4])] = (r[5], r[6])


@SETTINGS
@given(st.data())
def test_fast_equals_reference_on_damaged_split_streams(data: st.DataObject) -> None:
    setup = data.draw(lp_setup())
    stream, cuts = data.draw(damaged_stream(setup["grids"]))
    fast, ref = build(setup)
    engine_view: dict[tuple[int, int, int], tuple[int, int]] = {}
    bounds = [0, *cuts, len(stream)]
    for t, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        fb, rb = UpdateBatch(1), UpdateBatch(1)
        got = fast.feed(stream[a:b], t, fb)
        want = ref.feed(stream[a:b], t, rb)
        assert rows(fb) == rows(rb)
        assert [(int(m[M_SEQ]), int(m[M_KIND]), int(m[M_POSSDUP])) for m in got.messages] == [
            (s, k, p) for s, k, p, _ in want
        ]
        for m, (_, _, _, fields) in zip(got.messages, want, strict=True):
            assert decode_fields(got.buffer[int(m[M_START]) : int(m[M_END])]) == fields
        apply_rows(engine_view, fb)
    assert fast.counters == ref.counters
    c = fast.counters
    dropped = sum(c[k] for k in ("unknown_instrument", "missing_field", "bad_action", "bad_number", "off_grid",
                                 "unknown_id", "id_too_long", "book_full", "ignored"))  # fmt: skip
    assert c["entries"] == c["applied"] + dropped
    # The rows rebuild exactly the books the reference holds.
    for instr in range(2):
        for side in range(2):
            ladder = [engine_view.get((instr, side, k), (0, 0)) for k in range(setup["levels"])]
            assert ladder == ref.ladder(instr, side)


@SETTINGS
@given(st.data())
def test_batch_decoder_and_lp_kernel_frame_a_damaged_stream_alike(data: st.DataObject) -> None:
    """Both kernels frame with fixserver._framing: the same frames, in the same reads, the same garbled count."""
    setup = data.draw(lp_setup())
    stream, cuts = data.draw(damaged_stream(setup["grids"]))
    lp, generic = build(setup)[0], BatchDecoder()
    bounds = [0, *cuts, len(stream)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        got, want = lp.feed(stream[a:b], 0, UpdateBatch(1)), generic.feed(stream[a:b])
        frames = [got.buffer[int(m[M_START]) : int(m[M_END])] for m in got.messages]
        assert frames == [want.buffer[int(s) : int(e)] for s, e in want.msgs[:, (B_START, B_END)].tolist()]
    assert lp.counters["garbled"] == generic.garbled
    assert lp.pending == generic.buffered


@st.composite
def book(draw: Any) -> dict[str, tuple[int, int, int]]:
    """A random LP book around a mid that may sit on either side of zero; keys are entry ids."""
    mid = draw(st.integers(-30, 30))
    out = {}
    for side in (0, 1):
        for px in draw(st.sets(st.integers(0, 12), max_size=7)):
            price = mid - 1 - px if side == 0 else mid + 1 + px
            out[f"{'BA'[side]}{price}"] = (side, price, draw(st.integers(0, 9)))
    return out


def top(levels_book: dict[str, tuple[int, int, int]], side: int, depth: int) -> list[tuple[int, int]]:
    best = sorted(((px, q) for s, px, q in levels_book.values() if s == side and q > 0), reverse=side == 0)
    return best[:depth] + [(0, 0)] * (depth - len(best[:depth]))


@SETTINGS
@given(st.lists(book(), min_size=1, max_size=8), st.integers(1, 6), st.data())
def test_incremental_stream_rebuilds_each_books_top_levels(
    books: list[dict[str, tuple[int, int, int]]], depth: int, data: st.DataObject
) -> None:
    grid = Grid.parse("0.25")
    px_text = [grid.to_text(p) for p in range(-100, 100)]
    fast = MdDecoder(0, [grid], [Grid.parse("1")], {"S": 0}, depth)
    slow = ReferenceMdPath(0, [grid], [Grid.parse("1")], {"S": 0}, depth, framer="simplefix")
    msgs = []
    prev = None
    for seq, cur in enumerate(books, 1):
        if prev is None or data.draw(st.integers(0, 5)) == 0:
            entries = [[(269, s), (270, px_text[p + 100]), (271, q), (278, k)] for k, (s, p, q) in cur.items()]
            msgs.append(encode_md("W", seq, entries, [(262, 0)]))
        else:
            entries = [[(279, 2), (278, k)] for k in prev if k not in cur]
            entries += [
                [(279, 0 if k not in prev else 1), (269, s), (278, k), (270, px_text[p + 100]), (271, q)]
                for k, (s, p, q) in cur.items()
                if prev.get(k) != (s, p, q)
            ]
            msgs.append(encode_md("X", seq, entries, [(262, 0)]))
        prev = cur
    stream = b"".join(msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    view: dict[tuple[int, int, int], tuple[int, int]] = {}
    fb_all, sb_all = UpdateBatch(), UpdateBatch()
    bounds = [0, *cuts, len(stream)]
    for t, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        fb = UpdateBatch()
        fast.feed(stream[a:b], t, fb)
        slow.feed(stream[a:b], t, sb_all)
        apply_rows(view, fb)
        for r in rows(fb):
            fb_all.set_level(*r[1:])
    assert rows(fb_all) == rows(sb_all)  # the simplefix baseline agrees on a clean stream
    assert fast.counters["applied"] == fast.counters["entries"]
    for side in (0, 1):
        assert [view.get((0, side, k), (0, 0)) for k in range(depth)] == top(books[-1], side, depth)
