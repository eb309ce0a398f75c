"""The market-data hub as it was before its publish path was optimised (commit d9ddda6), kept as
the reference for differential tests and the publish benchmark. Behaviour fixes since then are
made here too, in the same plain style (each is named in its commit): the sides a subscription
asked for in 269; QuoteIDs of levels still live; no message when nothing a subscription shows
moved; deletes bottom up; 266=N and unknown MDReqIDs to cancel rejected honestly; MDEntryIDs
that name a level since it last changed, carried by deletes and, as 280, by changes.

Encodes every body field by field through :func:`fixserver.codec.prepare_body` and renders every
price and size with :meth:`Grid.to_text`; slow, obviously right. Do not optimise this copy:
``tests/property/test_marketdata_vs_reference.py`` checks that :mod:`fixserver.marketdata` sends
the same bytes as this module for random quote sequences, subscriptions and conflation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

from engine.fixedpoint import Grid
from fixserver.codec import PreparedBody, prepare_body
from fixserver.marketdata import MdReject, MdRejectReason, QuoteLookup, Subscription
from fixserver.message import FixMessage

__all__ = ["ReferenceMarketDataHub"]

Ladder = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]  # (bids, asks)
Since = tuple[list[tuple[int, int]], list[tuple[int, int]]]
SessionKey = Hashable

# How many past versions of each (tier, instrument) stay resolvable as QuoteIDs.
QUOTE_HISTORY = 64


class ReferenceMarketDataHub:
    """Subscriptions per session and the shared encoding of tier quotes (the pre-optimisation code)."""

    def __init__(
        self,
        symbols: Sequence[str],
        price_grids: Sequence[Grid],
        qty_grids: Sequence[Grid],
        tier_depths: Sequence[int],
        quote_of: Callable[[int, int], tuple[Ladder, int]],
    ) -> None:
        """``quote_of(tier, instr)`` returns ``((bids, asks), version)`` from the engine."""
        self.symbols = list(symbols)
        self._symbol_index = {s.encode(): i for i, s in enumerate(symbols)}
        self._price_grids = list(price_grids)
        self._qty_grids = list(qty_grids)
        self._tier_depths = list(tier_depths)
        self._quote_of = quote_of
        self.sessions: dict[SessionKey, dict[bytes, Subscription]] = {}
        # Per (tier, instr): version -> (ladder, published_ns), newest last.
        # Per (tier, instr): version -> (ladder, since), newest last; since[side][level] is
        # (version, first sent ns) since which that level has held its (price, size).
        self._history: dict[tuple[int, int], OrderedDict[int, tuple[Ladder, Since]]] = {}
        self.conflated = 0

    # --- requests ----------------------------------------------------------------------------

    def on_request(
        self, session: SessionKey, tier: int, msg: FixMessage, now_ns: int
    ) -> tuple[list[tuple[bytes, PreparedBody]], MdReject | None]:
        """Handle a 35=V. Returns the W snapshots to send as ``(MDReqID, body)``, or a reject."""
        req_id = msg.get(262) or b""
        subs = self.sessions.setdefault(session, {})
        req_type = msg.get(263)
        if req_type == b"2":  # unsubscribe
            if subs.pop(req_id, None) is None:
                return [], MdReject(req_id, None, "no subscription with this MDReqID to cancel")
            return [], None
        if req_type not in (b"0", b"1"):
            return [], MdReject(req_id, MdRejectReason.UNSUPPORTED_SUBSCRIPTION_TYPE, "263 must be 0, 1 or 2")
        if req_type == b"1" and req_id in subs:
            return [], MdReject(req_id, MdRejectReason.DUPLICATE_MDREQID, "MDReqID already subscribed")
        tier_depth = self._tier_depths[tier]
        depth_raw = msg.get_int(264)
        if depth_raw is None or depth_raw < 0:
            return [], MdReject(req_id, MdRejectReason.UNSUPPORTED_MARKET_DEPTH, "264 MarketDepth is required")
        if depth_raw > tier_depth:
            return [], MdReject(
                req_id, MdRejectReason.UNSUPPORTED_MARKET_DEPTH, f"depth {depth_raw} exceeds {tier_depth} levels"
            )
        depth = tier_depth if depth_raw == 0 else depth_raw
        update_type = msg.get(265, b"0" if req_type == b"0" else None)
        if update_type not in (b"0", b"1"):
            return [], MdReject(req_id, MdRejectReason.UNSUPPORTED_MD_UPDATE_TYPE, "265 must be 0 or 1")
        if msg.get(266, b"Y") != b"Y":  # 266=N asks for a book per LP, which is not offered
            return [], MdReject(
                req_id, MdRejectReason.UNSUPPORTED_AGGREGATED_BOOK, "only the aggregated book (266=Y) is offered"
            )
        entry_types = set(msg.get_all(269))
        if not entry_types or not entry_types <= {b"0", b"1"}:
            return [], MdReject(req_id, MdRejectReason.UNSUPPORTED_MD_ENTRY_TYPE, "only 269=0 (bid) and 1 (offer)")
        sides = tuple(side for side, entry_type in enumerate((b"0", b"1")) if entry_type in entry_types)
        instruments: list[int] = []
        for sym in msg.get_all(55):
            index = self._symbol_index.get(sym)
            if index is None:
                return [], MdReject(
                    req_id, MdRejectReason.UNKNOWN_SYMBOL, f"unknown symbol {sym.decode('ascii', 'replace')}"
                )
            instruments.append(index)
        if not instruments:
            return [], MdReject(req_id, MdRejectReason.UNKNOWN_SYMBOL, "no symbol requested")
        sub = Subscription(req_id, tier, tuple(instruments), depth, update_type == b"1", sides)
        snapshots = []
        for i in instruments:
            ladder, version = self._quote_of(tier, i)
            self._remember(tier, i, ladder, version, now_ns)
            snapshots.append((req_id, self._snapshot(i, tier, version, ladder, depth, sides, now_ns)))
            sub.last_version[i] = version
        if req_type == b"1":
            subs[req_id] = sub
        return snapshots, None

    def drop_session(self, session: SessionKey) -> None:
        self.sessions.pop(session, None)

    # --- publishing --------------------------------------------------------------------------

    def publish(
        self, now_ns: int, writable: Callable[[SessionKey], bool] = lambda s: True
    ) -> dict[SessionKey, list[tuple[bytes, PreparedBody]]]:
        """Encode what changed since the last call, once per (tier, instr, depth, sides, format).

        A subscription for which only levels beyond its depth or on a side it did not ask for
        moved gets nothing (no empty X) and is up to date. Sessions for which
        ``writable(session)`` is false are skipped (conflated): their subscriptions keep the old
        version and receive a full W when they can take it again.
        """
        out: dict[SessionKey, list[tuple[bytes, PreparedBody]]] = {}
        cache: dict[tuple[int, int, int, tuple[int, ...], bool, int], PreparedBody] = {}
        current: dict[tuple[int, int], tuple[Ladder, int]] = {}
        for session, subs in self.sessions.items():
            can_send = None
            for sub in subs.values():
                for i in sub.instruments:
                    key = (sub.tier, i)
                    if key not in current:
                        ladder, version = self._quote_of(sub.tier, i)
                        self._remember(sub.tier, i, ladder, version, now_ns)
                        current[key] = (ladder, version)
                    ladder, version = current[key]
                    last = sub.last_version.get(i, -1)
                    if version == last:
                        continue
                    # Nothing it shows moved in any version since the one it holds (then the
                    # QuoteIDs it holds stay good): nothing to send.
                    history = self._history[key]
                    if last in history:
                        views = []
                        for v in reversed(history):  # newest first, down to the one it holds
                            views.append(self._view(history[v][0], sub))
                            if v == last:
                                break
                        if all(view == views[0] for view in views):
                            sub.last_version[i] = version
                            continue
                    if can_send is None:
                        can_send = writable(session)
                    if not can_send:
                        self.conflated += 1
                        continue
                    # In step (exactly one version behind) and incremental: a shared X.
                    # Otherwise a shared W, which replaces the client's book outright.
                    in_step = sub.incremental and last == version - 1 and self._has(sub.tier, i, last)
                    ck = (sub.tier, i, sub.depth, sub.sides, in_step, version)
                    body = cache.get(ck)
                    if body is None:
                        if in_step:
                            body = self._incremental(i, sub.tier, version, last, sub.depth, sub.sides)
                        else:
                            body = self._snapshot(i, sub.tier, version, ladder, sub.depth, sub.sides, now_ns)
                        cache[ck] = body
                    out.setdefault(session, []).append((sub.md_req_id, body))
                    sub.last_version[i] = version
        return out

    # --- quote ids -----------------------------------------------------------------------------

    def resolve_quote(self, quote_id: bytes, tier: int, now_ns: int, ttl_ns: int) -> QuoteLookup | str:
        """Resolve a QuoteID for a client of ``tier``: the level, or why it cannot be hit."""
        try:
            t_s, i_s, v_s, level_s = quote_id.decode("ascii").split("-")
            t, i, v = int(t_s), int(i_s), int(v_s)
            side = {"b": 0, "a": 1}[level_s[0]]
            level = int(level_s[1:])
        except (ValueError, KeyError, IndexError, UnicodeDecodeError):
            return "unknown QuoteID"
        if t != tier:
            return "unknown QuoteID"  # another tier's quote: do not confirm it exists
        history = self._history.get((t, i))
        if not history:
            return "quote expired"
        # Good while the level it names has held its (price, size) since the version in the ID:
        # in the latest version sent and in the engine's ladder now; within the TTL from when
        # it last went out (in an X, or a W since).
        ladder, since = history[list(history)[-1]]
        if level >= len(ladder[side]) or since[side][level][0] != v:
            return "quote expired"
        price, qty = ladder[side][level]
        published_ns = since[side][level][1]
        if now_ns - published_ns > ttl_ns:
            return "quote expired"
        now_ladder = self._quote_of(t, i)[0]
        if level >= len(now_ladder[side]) or now_ladder[side][level] != (price, qty):
            return "quote expired"
        return QuoteLookup(t, i, side, price, qty, published_ns)

    # --- encoding ----------------------------------------------------------------------------

    def _remember(self, tier: int, instr: int, ladder: Ladder, version: int, now_ns: int) -> None:
        hist = self._history.setdefault((tier, instr), OrderedDict())
        if version in hist:
            return
        before = hist[list(hist)[-1]] if hist else None
        since: Since = ([], [])
        for side in (0, 1):
            for level, quote in enumerate(ladder[side]):
                if before is not None and level < len(before[0][side]) and before[0][side][level] == quote:
                    since[side].append(before[1][side][level])  # unchanged: it keeps its MDEntryID
                else:
                    since[side].append((version, now_ns))
        hist[version] = (ladder, since)
        while len(hist) > QUOTE_HISTORY:
            hist.popitem(last=False)

    def _has(self, tier: int, instr: int, version: int) -> bool:
        return version in self._history.get((tier, instr), {})

    def _view(self, ladder: Ladder, sub: Subscription) -> list[tuple[tuple[int, int], ...]]:
        """The part of ``ladder`` that ``sub`` shows: its sides, to its depth."""
        return [ladder[side][: sub.depth] for side in sub.sides]

    def _quote_id(self, tier: int, instr: int, version: int, side: int, level: int) -> bytes:
        return b"%d-%d-%d-%s%d" % (tier, instr, version, b"a" if side else b"b", level)

    def _px_qty(self, instr: int, px: int, qty: int) -> list[tuple[int, bytes]]:
        return [
            (270, self._price_grids[instr].to_text(px).encode()),
            (271, self._qty_grids[instr].to_text(qty).encode()),
        ]

    def _entry_id(self, tier: int, instr: int, version: int, side: int, level: int) -> bytes:
        """The MDEntryID (and QuoteID) of a level of ``version``: its since version's."""
        since_version = self._history[(tier, instr)][version][1][side][level][0]
        return self._quote_id(tier, instr, since_version, side, level)

    def _snapshot(
        self, instr: int, tier: int, version: int, ladder: Ladder, depth: int, sides: tuple[int, ...], now_ns: int
    ) -> PreparedBody:
        # Group order per FIX 4.4 W (MDFullGrp): 269, 270, 271, 299, 290; the entry's ID (the
        # QuoteID) is QuoteEntryID (299), as FIX 4.4's W has no MDEntryID (278).
        entries: list[tuple[int, bytes]] = []
        count = 0
        for side in sides:
            for level, (px, qty) in enumerate(ladder[side][:depth]):
                entries += [(269, b"1" if side else b"0"), *self._px_qty(instr, px, qty)]
                entries += [(299, self._entry_id(tier, instr, version, side, level)), (290, b"%d" % (level + 1))]
                count += 1
                # Sent again now: its QuoteID's TTL runs from now.
                since = self._history[(tier, instr)][version][1][side]
                since[level] = (since[level][0], now_ns)
        body = [(55, self.symbols[instr].encode()), (268, b"%d" % count), *entries]
        return prepare_body(b"W", body)

    def _incremental(
        self, instr: int, tier: int, version: int, last: int, depth: int, sides: tuple[int, ...]
    ) -> PreparedBody:
        # Group order per FIX 4.4 X: 279, 269, 278, 280, 55, 270, 271, 290. A change carries the
        # level's new MDEntryID and, in 280, the one the client had; a delete the one it had.
        entries: list[tuple[int, bytes]] = []
        count = 0
        symbol = self.symbols[instr].encode()
        history = self._history[(tier, instr)]
        for side in sides:
            entry_type = b"1" if side else b"0"
            old, new = history[last][0][side][:depth], history[version][0][side][:depth]
            for level in range(len(new)):
                if level < len(old) and new[level] == old[level]:
                    continue
                px, qty = new[level]
                entry_id = (278, self._entry_id(tier, instr, version, side, level))
                if level < len(old):
                    old_id = (280, self._entry_id(tier, instr, last, side, level))
                    entries += [(279, b"1"), (269, entry_type), entry_id, old_id, (55, symbol)]
                else:
                    entries += [(279, b"0"), (269, entry_type), entry_id, (55, symbol)]
                entries += [*self._px_qty(instr, px, qty), (290, b"%d" % (level + 1))]
                count += 1
            # Deletes bottom up, so that a client closing the gap after each one stays right.
            for level in reversed(range(len(new), len(old))):
                old_id = (278, self._entry_id(tier, instr, last, side, level))
                entries += [(279, b"2"), (269, entry_type), old_id, (55, symbol), (290, b"%d" % (level + 1))]
                count += 1
        return prepare_body(b"X", [(268, b"%d" % count), *entries])
