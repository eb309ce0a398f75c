"""Market data to clients: MarketDataRequest (V) handling and shared W/X fan-out. Sans-I/O.

:class:`MarketDataHub` turns tier quotes into FIX bodies. Per publish cycle (one engine batch),
each changed (tier, instrument) is encoded **once per (depth, sides, format)** into a
:class:`~fixserver.codec.PreparedBody`, and every subscribed session gets the same object; the
session layer adds only its header (34, 52, 56, 262 MDReqID) and the codec adds that header's
byte sum to the shared body's.

A subscription gets a message only when something it shows (its sides, to its depth) moved: a
depth-1 client is not sent an empty X when only deeper levels change.

Incremental subscribers (265=1) receive an X with the changes since the version they last saw
when they are in step; a session that skipped versions (conflated because it was slow, see
``writable`` in :meth:`MarketDataHub.publish`) receives a full W instead, which replaces its
book — so a slow client always converges to the latest state and never applies a diff to a book
it does not have.

A subscription gets the sides it asked for in 267/269 (bids 269=0, offers 269=1, or both), in
its W and in its X alike.

An X names each entry both ways, so a client may key its book by either: by position (290,
1-based level), and by MDEntryID (278), with the entry a Change replaces in 280 and the entry a
Delete removes in 278; a W gives each entry's ID in QuoteEntryID (299), as FIX 4.4's W has no
278. An entry's ID is the version since which its level has held its (price, size), the same
for every client whether it came in a W or an X; it is also the QuoteID a
previously-quoted order (40=D, 117) can name, and :meth:`MarketDataHub.resolve_quote` checks it:
good while the level is unchanged, within its TTL from when the ID last went out.

Publishing runs once per engine batch for every session, so its cost per cycle is kept to what
changed: what is constant about an entry (tags, entry type, position, the QuoteID's tier and
instrument, the symbol) is formatted once per (tier, instrument) into a byte template; each
level's ``270=price<SOH>271=size<SOH>`` is rendered once and kept in a bounded cache per
instrument; with ``versions`` (or ``version_of``), an unchanged quote costs a version read, not a
ladder copy; only the (subscription, instrument) pairs of quotes that moved, or that were
conflated last time, are visited (subscriptions are flattened into a plan, rebuilt when they
change); and with ``deliver``, each session's bodies leave as soon as its pairs are visited.
``tests/md_reference.py`` keeps the field-by-field encoder this replaced, and a property test
checks that both send the same bytes.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from operator import eq

from engine.fixedpoint import Grid
from fixserver.codec import PreparedBody, byte_sum
from fixserver.message import SOH, FixMessage

__all__ = ["MdRejectReason", "MdReject", "Subscription", "MarketDataHub", "QuoteLookup"]

Ladder = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]  # (bids, asks)
SessionKey = Hashable

# One instrument of one subscription: (session, the subscription's last_version, instrument,
# (tier, instrument), MDReqID, depth, sides, incremental, view): the fields publish reads, unpacked
# at once. ``view`` numbers the distinct (tier, instrument, depth, sides) of the plan: one encoding
# of each per format and publish, cached under a plain int (cheaper to hash than that tuple).
_Delivery = tuple[SessionKey, dict[int, int], int, tuple[int, int], bytes, int, tuple[int, ...], bool, int]
_NO_SESSION = object()
_NO_UPDATE = PreparedBody(b"X", b"", 0)  # in publish: nothing this subscription shows moved
# The MDEntryID of one level, as (the version in it, as text; when it last went out): the
# version since which the level has held its (price, size). Per side, per level.
_EntryId = tuple[bytes, int]
_EntryIds = tuple[Sequence[_EntryId], Sequence[_EntryId]]
# Per (tier, instr): version -> (ladder, its entry ids), newest last.
_History = OrderedDict[int, tuple[Ladder, _EntryIds]]

# How many past versions of each (tier, instrument) are kept, to diff against.
QUOTE_HISTORY = 64
# Rendered "270=<price><SOH>271=<size><SOH>" pieces, prices and sizes kept per instrument, each
# cache up to this many entries. A full cache is emptied, so memory stays flat however far prices
# walk (a refill costs one Grid.to_text pair per level, as every level did before the caches).
LEVEL_TEXT_CACHE = 4096


class MdRejectReason(enum.Enum):
    """FIX 281 MDReqRejReason."""

    UNKNOWN_SYMBOL = b"0"
    DUPLICATE_MDREQID = b"1"
    INSUFFICIENT_PERMISSIONS = b"3"
    UNSUPPORTED_SUBSCRIPTION_TYPE = b"4"
    UNSUPPORTED_MARKET_DEPTH = b"5"
    UNSUPPORTED_MD_UPDATE_TYPE = b"6"
    UNSUPPORTED_AGGREGATED_BOOK = b"7"
    UNSUPPORTED_MD_ENTRY_TYPE = b"8"


@dataclass(frozen=True, slots=True)
class MdReject:
    md_req_id: bytes
    reason: MdRejectReason | None  # None: no 281 fits, the Y carries only 58
    text: str

    def body(self) -> list[tuple[int, bytes]]:
        """The 35=Y body."""
        reason = [] if self.reason is None else [(281, self.reason.value)]
        return [(262, self.md_req_id), *reason, (58, self.text.encode())]


@dataclass(eq=False)
class Subscription:
    md_req_id: bytes
    tier: int
    instruments: tuple[int, ...]
    depth: int  # levels per side actually published (resolved from 264 and the tier's depth)
    incremental: bool
    sides: tuple[int, ...] = (0, 1)  # 0 bids (269=0), 1 offers (269=1), as requested in 267/269
    last_version: dict[int, int] = field(default_factory=dict)  # instrument -> version last sent


@dataclass(frozen=True, slots=True)
class QuoteLookup:
    """A resolved QuoteID: the level a previously-quoted order may hit."""

    tier: int
    instrument: int
    side: int  # 0 bid (client sells), 1 ask (client buys)
    price: int
    qty: int
    published_ns: int


class MarketDataHub:
    """Subscriptions per session and the shared encoding of tier quotes."""

    def __init__(
        self,
        symbols: Sequence[str],
        price_grids: Sequence[Grid],
        qty_grids: Sequence[Grid],
        tier_depths: Sequence[int],
        quote_of: Callable[[int, int], tuple[Ladder, int]],
        version_of: Callable[[int, int], int] | None = None,
        versions: Callable[[], Sequence[Sequence[int]]] | None = None,
    ) -> None:
        """``quote_of(tier, instr)`` returns ``((bids, asks), version)`` from the engine.

        ``version_of(tier, instr)``, if given, returns just the version ``quote_of`` would: the
        hub then copies a ladder only when its version moved (``Engine.quote`` takes ~10 µs per
        ladder, and most (tier, instrument) pairs do not change in a given batch).
        ``versions()``, if given, returns every version at once as ``[tier][instr]``: one read
        per publish instead of one probe per subscribed (tier, instrument).
        """
        self.symbols = list(symbols)
        self._symbol_bytes = [s.encode() for s in symbols]
        for s, raw in zip(symbols, self._symbol_bytes, strict=True):
            if not raw or SOH in raw:
                raise ValueError(f"symbol {s!r} cannot go on the wire as 55=")
        self._symbol_index = {s.encode(): i for i, s in enumerate(symbols)}
        self._price_grids = list(price_grids)
        self._qty_grids = list(qty_grids)
        self._tier_depths = list(tier_depths)
        self._quote_of = quote_of
        self._version_of = version_of
        self._versions = versions
        self._fetched: dict[tuple[int, int], tuple[Ladder, int]] = {}  # the last (ladder, version) read
        self._level_text: list[dict[tuple[int, int], bytes]] = [{} for _ in symbols]
        self._price_text: list[dict[int, bytes]] = [{} for _ in symbols]
        self._qty_text: list[dict[int, bytes]] = [{} for _ in symbols]
        self._formats: dict[tuple[int, int], _EntryFormats] = {}
        # The fan-out plan (see _plan_fanout), rebuilt after any change of subscriptions.
        self._plan: list[_Delivery] | None = None
        self._plan_by_key: dict[tuple[int, int], list[int]] = {}
        self._behind: set[int] = set()  # plan positions conflated in the last publish
        self._published: dict[tuple[int, int], int] = {}  # version of each quote at the last publish
        self.sessions: dict[SessionKey, dict[bytes, Subscription]] = {}
        self._history: dict[tuple[int, int], _History] = {}
        self.conflated = 0

    # --- requests ----------------------------------------------------------------------------

    def on_request(
        self, session: SessionKey, tier: int, msg: FixMessage, now_ns: int
    ) -> tuple[list[tuple[bytes, PreparedBody]], MdReject | None]:
        """Handle a 35=V. Returns the W snapshots to send as ``(MDReqID, body)``, or a reject."""
        req_id = msg.get(262) or b""
        self._plan = None
        subs = self.sessions.setdefault(session, {})
        req_type = msg.get(263)
        if req_type == b"2":  # unsubscribe
            if subs.pop(req_id, None) is None:
                # FIX 4.4 has no 281 for an unknown MDReqID (4 would say 263=2 is unsupported,
                # 1 that the ID is a duplicate): the Y goes without 281, which is optional, and
                # 58 says what is wrong.
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
            ladder, version = self._fetch(tier, i, now_ns)
            snapshots.append((req_id, self._snapshot(i, tier, version, ladder, depth, sides)))
            self._shown_again((tier, i), version, depth, sides, now_ns)
            sub.last_version[i] = version
        if req_type == b"1":
            subs[req_id] = sub
        return snapshots, None

    def drop_session(self, session: SessionKey) -> None:
        self.sessions.pop(session, None)
        self._plan = None

    # --- publishing --------------------------------------------------------------------------

    def publish(
        self,
        now_ns: int,
        writable: Callable[[SessionKey], bool] = lambda s: True,
        deliver: Callable[[SessionKey, list[tuple[bytes, PreparedBody]]], None] | None = None,
    ) -> dict[SessionKey, list[tuple[bytes, PreparedBody]]]:
        """Encode what changed since the last call, once per (tier, instr, depth, sides, format).

        A subscription for which only levels beyond its depth or on a side it did not ask for
        moved gets nothing (no empty X) and is up to date. Sessions for which
        ``writable(session)`` is false are skipped (conflated): their subscriptions keep the old
        version and receive a full W when they can take it again.

        With ``deliver``, each session's ``(MDReqID, body)`` list goes to ``deliver(session,
        bodies)`` as soon as it is complete, in session order, and the returned dict is empty:
        the first session's bytes can be on the wire before the last session is visited. The
        hub counts an update as sent once ``deliver`` returns. If anything raises first (the
        engine read, an encoding, ``writable``, ``deliver`` itself), the updates not yet handed
        out are taken back and the next call sends them.
        """
        plan = self._plan if self._plan is not None else self._plan_fanout()
        versions = self._read_versions(now_ns)
        # Visit only the (subscription, instrument) pairs that may be behind: those of quotes that
        # moved since the last call and those conflated then. Every other pair holds the version
        # it held after the last call, which is still the latest. In plan order, which is the
        # order of sessions, their subscriptions and their instruments, as the bytes must be.
        visit = set(self._behind)
        published = self._published
        for key, positions in self._plan_by_key.items():
            if published.get(key) != versions[key]:
                visit.update(positions)
        behind: set[int] = set()
        out: dict[SessionKey, list[tuple[bytes, PreparedBody]]] = {}
        current: dict[tuple[int, int], tuple[Ladder, int]] = {}  # ladders read in this call
        cache: dict[int, PreparedBody] = {}  # by view (X) or -1 - view (W)
        refreshes: dict[tuple[int, int], PreparedBody] = {}  # W or _NO_UPDATE by (view, last version sent)
        shown: set[int] = set()  # views whose W went out in this call
        history = self._history
        session: SessionKey = _NO_SESSION
        can_send = None
        sent: list[tuple[bytes, PreparedBody]] | None = None
        # (last_version, instrument, previous) of updates built but not yet handed out: if this
        # call raises, they are taken back, so the next call sends them again.
        undo: list[tuple[dict[int, int], int, int]] = []
        try:
            for position in sorted(visit):
                new_session, last_version, i, key, md_req_id, depth, sides, incremental, view = plan[position]
                if new_session is not session:
                    if sent and deliver is not None:
                        deliver(session, sent)
                        undo.clear()  # out: no longer ours to take back
                    session, can_send, sent = new_session, None, None
                entry = current.get(key)
                if entry is None:
                    entry = current[key] = self._ladder_at(key, versions[key], now_ns)
                ladder, version = entry
                last = last_version.get(i, -1)
                if version == last:
                    continue
                # In step (exactly one version behind) and incremental: a shared X. Otherwise a
                # shared W, which replaces the client's book outright. Either is _NO_UPDATE if
                # nothing this subscription shows moved.
                # (The version is the key's, one per call, so the cache needs no version.)
                known = history[key]
                if incremental and last == version - 1 and last in known:
                    body = cache.get(view)
                    if body is None:
                        prev, prev_ids = known[last]
                        update = self._incremental(i, key[0], version, prev, prev_ids, ladder, depth, sides)
                        body = cache[view] = _NO_UPDATE if update is None else update
                else:
                    # Whether the view moved since ``last`` is the same for every subscription of
                    # this view that holds ``last`` (most hold the same one): judged once per call.
                    body = refreshes.get((view, last))
                    if body is None:
                        if _view_kept(known, last, depth, sides):
                            body = _NO_UPDATE
                        else:
                            body = cache.get(-1 - view)
                            if body is None:
                                body = cache[-1 - view] = self._snapshot(i, key[0], version, ladder, depth, sides)
                        refreshes[(view, last)] = body
                if body is _NO_UPDATE:
                    # Only levels beyond its depth or on a side it did not ask for moved: nothing
                    # to send (no empty X), and the client's book is that of the new version.
                    last_version[i] = version
                    continue
                if can_send is None:
                    can_send = writable(session)
                if not can_send:
                    self.conflated += 1
                    behind.add(position)
                    continue
                if sent is None:
                    sent = []
                    if deliver is None:
                        out[session] = sent
                sent.append((md_req_id, body))
                if body.msg_type == b"W" and view not in shown:  # its IDs go out again: their TTL restarts
                    shown.add(view)
                    self._shown_again(key, version, depth, sides, now_ns)
                undo.append((last_version, i, last))
                last_version[i] = version
            if sent and deliver is not None:
                deliver(session, sent)
        except BaseException:
            for versions_sent, instr, previous in reversed(undo):
                if previous < 0:
                    del versions_sent[instr]
                else:
                    versions_sent[instr] = previous
            raise
        # Only now: if anything above raised, the next call visits all of this call's pairs again.
        self._behind = behind
        for key, (_, version) in current.items():
            published[key] = version
        return out

    def _read_versions(self, now_ns: int) -> dict[tuple[int, int], int]:
        """The current version of every subscribed (tier, instrument)."""
        if self._versions is not None:
            table = self._versions()
            return {key: table[key[0]][key[1]] for key in self._plan_by_key}
        if self._version_of is not None:
            return {key: self._version_of(key[0], key[1]) for key in self._plan_by_key}
        # No version source: every quote is copied (publish then finds the copy in _ladder_at).
        return {key: self._fetch(key[0], key[1], now_ns)[1] for key in self._plan_by_key}

    def _ladder_at(self, key: tuple[int, int], version: int, now_ns: int) -> tuple[Ladder, int]:
        """``(ladder, version)`` of ``key``: the copy read last if ``version`` is still its version."""
        known = self._fetched.get(key)
        if known is not None and known[1] == version:
            return known
        return self._fetch(key[0], key[1], now_ns)

    def _plan_fanout(self) -> list[_Delivery]:
        """Flatten the subscriptions into deliveries in publishing order, indexed by (tier, instrument)."""
        plan: list[_Delivery] = []
        by_key: dict[tuple[int, int], list[int]] = {}
        views: dict[tuple[tuple[int, int], int, tuple[int, ...]], int] = {}
        for session, subs in self.sessions.items():
            for sub in subs.values():
                for i in sub.instruments:
                    key = (sub.tier, i)
                    by_key.setdefault(key, []).append(len(plan))
                    view = views.setdefault((key, sub.depth, sub.sides), len(views))
                    plan.append(
                        (session, sub.last_version, i, key, sub.md_req_id, sub.depth, sub.sides, sub.incremental, view)
                    )
        self._plan, self._plan_by_key = plan, by_key
        # New or removed subscriptions: every pair is checked once, as if behind.
        self._behind = set(range(len(plan)))
        return plan

    def _fetch(self, tier: int, instr: int, now_ns: int) -> tuple[Ladder, int]:
        quote = self._quote_of(tier, instr)
        self._remember(tier, instr, quote[0], quote[1], now_ns)
        self._fetched[(tier, instr)] = quote
        return quote

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
        # The ID names a level by the version since which it has held its (price, size): good
        # while the latest version sent still has it so (not if it changed, A->B->A included,
        # or went), the engine's ladder now too, and within the TTL from when it last went out
        # (in the X that brought it, or in a W since).
        ladder, ids = history[next(reversed(history))]
        levels = ladder[side]
        if level >= len(levels) or ids[side][level][0] != b"%d" % v:
            return "quote expired"
        published_ns = ids[side][level][1]
        if now_ns - published_ns > ttl_ns:
            return "quote expired"
        named = levels[level]
        latest = self._version_of(t, i) if self._version_of is not None else None
        known = history.get(latest) if latest is not None else None
        current = known[0] if known is not None else self._quote_of(t, i)[0]
        if not _holds(current[side], level, named):
            return "quote expired"
        price, qty = named
        return QuoteLookup(t, i, side, price, qty, published_ns)

    # --- encoding ----------------------------------------------------------------------------

    def _remember(self, tier: int, instr: int, ladder: Ladder, version: int, now_ns: int) -> None:
        """Keep ``ladder`` as ``version`` with its levels' MDEntryIDs: those of the version kept
        before it where a level's (price, size) did not change, this version's where it did."""
        hist = self._history.get((tier, instr))
        if hist is None:
            hist = self._history[(tier, instr)] = OrderedDict()
        elif version in hist:
            return
        fresh = (b"%d" % version, now_ns)
        bids, asks = ladder
        if hist:
            (old_bids, old_asks), (bid_ids, ask_ids) = hist[next(reversed(hist))]
            if bids != old_bids:  # most versions move one side only: the other keeps its ids as they are
                bid_ids = _carry(old_bids, bids, bid_ids, fresh)
            if asks != old_asks:
                ask_ids = _carry(old_asks, asks, ask_ids, fresh)
        else:
            bid_ids, ask_ids = (fresh,) * len(bids), (fresh,) * len(asks)
        hist[version] = (ladder, (bid_ids, ask_ids))
        while len(hist) > QUOTE_HISTORY:
            hist.popitem(last=False)

    def _entry_formats(self, tier: int, instr: int, depth: int) -> _EntryFormats:
        formats = self._formats.get((tier, instr))
        if formats is None or len(formats.snapshot[0]) < depth:
            depth = max(depth, self._tier_depths[tier])
            formats = self._formats[(tier, instr)] = _EntryFormats.build(tier, instr, self._symbol_bytes[instr], depth)
        return formats

    def _render(self, instr: int, level: tuple[int, int]) -> bytes:
        """``270=<price><SOH>271=<size><SOH>`` of one level, cached per instrument, as are the
        price and size texts it is made of (a new price rarely comes with a new size)."""
        px, qty = level
        prices, sizes, texts = self._price_text[instr], self._qty_text[instr], self._level_text[instr]
        px_text = prices.get(px)
        if px_text is None:
            if len(prices) >= LEVEL_TEXT_CACHE:
                prices.clear()
            px_text = prices[px] = self._price_grids[instr].to_text(px).encode()
        qty_text = sizes.get(qty)
        if qty_text is None:
            if len(sizes) >= LEVEL_TEXT_CACHE:
                sizes.clear()
            qty_text = sizes[qty] = self._qty_grids[instr].to_text(qty).encode()
        if len(texts) >= LEVEL_TEXT_CACHE:
            texts.clear()
        text = texts[level] = b"270=%s\x01271=%s\x01" % (px_text, qty_text)
        return text

    def _shown_again(self, key: tuple[int, int], version: int, depth: int, sides: tuple[int, ...], now_ns: int) -> None:
        """A W of ``version`` (the newest kept) went out now: the IDs it shows were sent again, so
        their QuoteID TTL runs from now. A client that subscribes gets the full TTL on what it is
        shown, as an in-step client does on each level an X brings."""
        history = self._history[key]
        ladder, ids = history[version]
        shown = [side_ids[:depth] for side_ids in ids]
        for side in sides:
            shown[side] = [(entry_id, now_ns) for entry_id, _ in shown[side]]
        history[version] = (ladder, (tuple(shown[0]) + tuple(ids[0][depth:]), tuple(shown[1]) + tuple(ids[1][depth:])))

    def _snapshot(
        self, instr: int, tier: int, version: int, ladder: Ladder, depth: int, sides: tuple[int, ...]
    ) -> PreparedBody:
        """The W of ``version`` (the newest kept)."""
        # Group order per FIX 4.4 W (MDFullGrp): 269, 270, 271, 299, 290. FIX 4.4's W has no
        # MDEntryID (278): a client validating with the standard dictionary (QuickFIX's FIX44.xml)
        # refuses a W that carries one. The entry's ID goes in QuoteEntryID (299), which MDFullGrp
        # has: the same value that the X's 278 and 280 carry, and the QuoteID (117) to hit it with.
        ids = self._history[(tier, instr)][version][1]
        formats = self._entry_formats(tier, instr, depth).snapshot
        texts = self._level_text[instr]
        parts = [b""]  # the head, once the count is known
        for side in sides:
            side_formats, side_ids = formats[side], ids[side]
            for level, quote in enumerate(ladder[side][:depth]):
                text = texts.get(quote)
                if text is None:
                    text = self._render(instr, quote)
                parts.append(side_formats[level] % (text, side_ids[level][0]))
        parts[0] = b"55=%s\x01268=%d\x01" % (self._symbol_bytes[instr], len(parts) - 1)
        body = b"".join(parts)
        return PreparedBody(b"W", body, byte_sum(body))

    def _incremental(
        self,
        instr: int,
        tier: int,
        version: int,
        prev: Ladder,
        prev_ids: _EntryIds,
        ladder: Ladder,
        depth: int,
        sides: tuple[int, ...],
    ) -> PreparedBody | None:
        # Group order per FIX 4.4 X: 279, 269, 278, 280, 55, 270, 271, 290. Per side: changes
        # and new levels (at the end) top down, then deletes (at the end) bottom up. A change
        # carries the level's new MDEntryID (278) and the one the client had for it (280); a
        # delete the one it had: a client may key its book by 290 or by 278.
        formats = self._entry_formats(tier, instr, depth)
        texts = self._level_text[instr]
        v = b"%d" % version
        parts = [b""]  # the count, once known
        for side in sides:
            old, new, old_ids = prev[side][:depth], ladder[side][:depth], prev_ids[side]
            n_old = len(old)
            change, add = formats.change[side], formats.new[side]
            for level, quote in enumerate(new):
                if level < n_old and quote == old[level]:
                    continue
                text = texts.get(quote)
                if text is None:
                    text = self._render(instr, quote)
                if level < n_old:
                    parts.append(change[level] % (v, old_ids[level][0], text))
                else:
                    parts.append(add[level] % (v, text))
            # Deletes from the bottom up: a client that closes the gap after each one (290 as a
            # display position, as FIX describes it) would otherwise shift the next one's target.
            if n_old > len(new):
                delete = formats.delete[side]
                parts += [delete[level] % old_ids[level][0] for level in range(n_old - 1, len(new) - 1, -1)]
        if len(parts) == 1:
            return None  # nothing within the depth and sides moved: no X at all, not an empty one
        parts[0] = b"268=%d\x01" % (len(parts) - 1)
        body = b"".join(parts)
        return PreparedBody(b"X", body, byte_sum(body))


def _view_kept(history: _History, last: int, depth: int, sides: tuple[int, ...]) -> bool:
    """Whether a subscription to ``depth`` levels of ``sides`` saw the same book in every version
    since ``last`` (the one it holds), the newest included. Not only in the newest: a client
    that was skipped past an A->B->A keeps A's QuoteIDs, which resolve_quote refuses, so it must
    get a W with the new ones."""
    if last not in history:
        return False
    seen = history[last][0]
    view = [seen[side][:depth] for side in sides]
    for version in reversed(history):
        if version == last:
            return True
        ladder = history[version][0]
        if [ladder[side][:depth] for side in sides] != view:
            return False
    return True


def _carry(
    before: tuple[tuple[int, int], ...], now: tuple[tuple[int, int], ...], ids: Sequence[_EntryId], fresh: _EntryId
) -> Sequence[_EntryId]:
    """One side's MDEntryIDs for ``now`` (not ``before``): ``ids`` (``before``'s) where a level is
    unchanged, else ``fresh``."""
    if not any(map(eq, now, before)):  # the usual move: every level shifts (both loops in C)
        return (fresh,) * len(now)
    carried = [kept if quote == old else fresh for quote, old, kept in zip(now, before, ids, strict=False)]
    if len(now) > len(before):
        carried += [fresh] * (len(now) - len(before))
    return carried


def _holds(levels: tuple[tuple[int, int], ...], level: int, quote: tuple[int, int]) -> bool:
    """Whether ``levels`` has ``quote`` at index ``level``."""
    return level < len(levels) and levels[level] == quote


@dataclass(frozen=True, slots=True)
class _EntryFormats:
    """One (tier, instrument)'s W/X entries as byte templates, per side and level.

    Everything but the version and the level's ``270/271`` text is fixed by (tier, instrument,
    side, level), so it is formatted once here rather than field by field per publish.
    """

    snapshot: tuple[tuple[bytes, ...], tuple[bytes, ...]]  # W entry: % (270/271 text, id version)
    new: tuple[tuple[bytes, ...], tuple[bytes, ...]]  # X 279=0: % (version, 270/271 text)
    change: tuple[tuple[bytes, ...], tuple[bytes, ...]]  # X 279=1: % (version, old id version, 270/271 text)
    delete: tuple[tuple[bytes, ...], tuple[bytes, ...]]  # X 279=2: % old id version

    @classmethod
    def build(cls, tier: int, instr: int, symbol: bytes, depth: int) -> _EntryFormats:
        escaped = symbol.replace(b"%", b"%%")  # it goes into templates that are % formatted again
        snapshot: tuple[list[bytes], list[bytes]] = ([], [])
        new: tuple[list[bytes], list[bytes]] = ([], [])
        change: tuple[list[bytes], list[bytes]] = ([], [])
        delete: tuple[list[bytes], list[bytes]] = ([], [])
        for side, (entry_type, letter) in enumerate(((b"0", b"b"), (b"1", b"a"))):
            for level in range(depth):
                quote_id = b"%d-%d-%%s-%s%d" % (tier, instr, letter, level)  # "%s": the version
                position = level + 1
                snapshot[side].append(b"269=%s\x01%%s299=%s\x01290=%d\x01" % (entry_type, quote_id, position))
                new[side].append(
                    b"279=0\x01269=%s\x01278=%s\x0155=%s\x01%%s290=%d\x01" % (entry_type, quote_id, escaped, position)
                )
                change[side].append(
                    b"279=1\x01269=%s\x01278=%s\x01280=%s\x0155=%s\x01%%s290=%d\x01"
                    % (entry_type, quote_id, quote_id, escaped, position)
                )
                delete[side].append(
                    b"279=2\x01269=%s\x01278=%s\x0155=%s\x01290=%d\x01" % (entry_type, quote_id, escaped, position)
                )
        return cls(*((tuple(bids), tuple(asks)) for bids, asks in (snapshot, new, change, delete)))
