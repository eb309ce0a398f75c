"""One LP's market-data feed: a FIX initiator whose reads go straight into engine rows.

Per socket read, :class:`~feeds.md_decode.MdDecoder` frames every message, applies W/X entries
to the LP's book and appends the changed levels to the shared :class:`~engine.batch.UpdateBatch`
in one kernel call. The FIX session still sees *every* message, so sequence numbers, gaps,
CompIDs and heartbeats stay the session layer's job: non-market-data messages are decoded in
full, market-data messages as their header only (no per-entry Python objects).

Lifecycle, as the engine's contract asks (engine/batch.py):

* on logon: one MarketDataRequest per instrument, with ``262=<engine instrument index>`` so the
  decoder maps W/X to instruments without reading symbols (an LP that echoes only Symbol 55 is
  matched by symbol);
* ``LP_UP`` only once every subscribed instrument has delivered a fresh W (or was rejected);
* on logout or a lost connection: ``LP_DOWN`` (the LP's books are dropped at once);
* a MsgSeqNum gap (in any state: up or still coming up), seen by the decoder on the wire before
  the session queues anything: every live book is withdrawn (CLEAR_BOOK) and re-subscribed
  (unsubscribe, subscribe), because increments after a gap would apply to a book we no longer
  have; until its fresh W an instrument takes no increments and this LP adds nothing to its
  price. One gap withdraws each book once, however long the session waits for its resend;
* a 35=X entry the decoder must drop as invalid (a bad 279, a missing field, an off-grid price or
  size): that instrument's book is withdrawn and re-subscribed the same way, because the LP's
  book moved and ours did not;
* MarketDataRequestReject (Y): that instrument's book is cleared and not waited for on this
  session; it is requested again after a reconnect.

Orders (A-book routes and hedges) go over the same session: :meth:`LpFeed.send_order` sends an
IOC NewOrderSingle, and the LP's ExecutionReports go to ``on_execution``; ``on_down`` tells the
router that whatever it had at this LP will not be answered on this session.

Reconnects with backoff and jitter are the initiator's (:class:`fixserver.transport.Initiator`).
Staleness (connected but silent) is decided by the engine from row timestamps and each LP's
``staleness_ms``; the feed does not need a timer for it. Every W/X heard for an instrument counts
(the decoder runs ``supervised``: an unchanged book gets a ``TOUCH`` row), so an LP resending the
same snapshot is not taken for a silent one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from engine.batch import UpdateBatch
from engine.config import BookKeys, Config, LpConfig
from feeds import lpbook
from feeds.md_decode import KEYED_BY_ID, KEYED_BY_POSITION, KIND_OTHER, M_END, M_KIND, M_START, MdDecoder
from fixserver.clock import Clock, SystemClock
from fixserver.codec import FrameTooLarge, decode_fields
from fixserver.md_book import md_request
from fixserver.message import SOH, FixMessage
from fixserver.session import Credentials, Role, SessionConfig, SessionID, SessionStateError, format_utc_timestamp
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Application, Initiator, SessionHandle

__all__ = ["LpFeed"]

log = logging.getLogger("lagg.feed")

# Header tags the session reads; a market-data message is decoded only this far.
_HEADER_TAGS = frozenset({8, 9, 35, 49, 56, 34, 52, 43, 97, 122, 115, 128, 50, 57})

# The decoder's counters of entries it dropped as invalid, by reason (feeds.lpbook.C_NAMES);
# "ignored" entries (other entry types, positions past our depth) are no error and not listed.
DROP_REASONS = {lpbook.C_NAMES[c]: c for c in range(lpbook.C_UNKNOWN_INSTRUMENT, lpbook.C_IGNORED)}


def _header_only(frame: bytes) -> FixMessage:
    fields: list[tuple[int, bytes]] = []
    pos = 0
    while True:
        soh = frame.find(SOH, pos)
        if soh < 0:
            break
        tag, _, value = frame[pos:soh].partition(b"=")
        if not tag.isdigit() or int(tag) not in _HEADER_TAGS:
            break
        fields.append((int(tag), value))
        pos = soh + 1
    return FixMessage(fields)


class LpFeed(Application):
    """Market data from one LP into the engine's update batch."""

    def __init__(
        self,
        cfg: Config,
        lp: LpConfig,
        batch: UpdateBatch,
        clock: Clock | None = None,
        on_rows: Callable[[], None] | None = None,
        on_execution: Callable[[LpFeed, FixMessage], None] | None = None,
        on_down: Callable[[LpFeed], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.lp = lp
        self.batch = batch
        self.clock = clock or SystemClock()
        self._on_rows = on_rows or (lambda: None)
        self._on_execution = on_execution or (lambda feed, msg: None)
        self._on_down = on_down or (lambda feed: None)
        keyed_by = KEYED_BY_ID if lp.book_keys is BookKeys.ENTRY_ID else KEYED_BY_POSITION
        self.decoder = MdDecoder.from_config(cfg, lp.name, keyed_by=keyed_by, supervised=True)
        index = {inst.symbol: i for i, inst in enumerate(cfg.instruments)}
        self.instruments = [index[s] for s in lp.instruments if cfg.instruments[index[s]].enabled]
        self._symbols = {index[s]: lp.symbol_map.get(s, s) for s in lp.instruments}
        self.decoder.await_snapshot()
        self.up = False
        self._gaps_logged = 0
        self.rejected: set[int] = set()
        self.handle: SessionHandle | None = None
        self.connector: Initiator | None = None  # the initiator made by initiator(), if any

    # --- the initiator -------------------------------------------------------------------------

    def initiator(self, environ: dict[str, str] | None = None, **kwargs: object) -> Initiator:
        """A reconnecting initiator for this LP (password from ``lp.password_env``)."""
        env = os.environ if environ is None else environ
        password = env.get(self.lp.password_env) if self.lp.password_env else None
        config = SessionConfig(
            SessionID("FIX.4.4", self.lp.sender_comp_id, self.lp.target_comp_id), Role.INITIATOR,
            heartbeat_s=kwargs.pop("heartbeat_s", 30),  # type: ignore[arg-type]
            reset_on_logon=True,  # market data is not recoverable by resend: start clean each time
            credentials=Credentials(None, password) if password else None,
        )  # fmt: skip
        self.connector = Initiator(
            self, config, MemoryStoreFactory(), self.lp.host, self.lp.port,
            clock=self.clock, decoder_factory=self._decoder, defer_session_reads=True,
            **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip
        return self.connector

    # --- what the metrics exporter reads (plain ints, from its own thread) -------------------------

    @property
    def entries_received(self) -> int:
        """MD entries of every 35=W / 35=X applied (valid or not), since the feed was made."""
        return int(self.decoder.counter_array[lpbook.C_ENTRIES])

    @property
    def entries_dropped(self) -> Mapping[str, int]:
        """MD entries dropped as invalid, by reason (every reason, zeros included)."""
        counts = self.decoder.counter_array
        return {reason: int(counts[c]) for reason, c in DROP_REASONS.items()}

    @property
    def books_withdrawn(self) -> int:
        """Books of this LP taken out of pricing until a fresh snapshot (gaps, invalid increments)."""
        return int(self.decoder.counter_array[lpbook.C_WITHDRAWN])

    @property
    def reconnect_attempts(self) -> int:
        """Connection attempts after the first one (refused, failed or successful)."""
        return max(self.connector.connect_attempts - 1, 0) if self.connector is not None else 0

    def _decoder(self) -> object:
        feed = self
        self.decoder.discard_pending()  # a new connection: a new byte stream and MsgSeqNum series

        class Decoder:
            def feed(self, data: bytes) -> list[FixMessage]:
                return feed._on_read(data)

        return Decoder()

    # --- reads ---------------------------------------------------------------------------------

    def _on_read(self, data: bytes) -> list[FixMessage]:
        now = self.clock.now_ns()
        before = self.batch.n
        expected = self.handle.session.next_target_seq if self.handle is not None else 0
        result = self.decoder.feed(data, now, self.batch, expected)
        rows = result.messages
        messages: list[FixMessage] = []
        buf = result.buffer
        for r in range(len(rows)):
            start, end, kind = int(rows[r, M_START]), int(rows[r, M_END]), int(rows[r, M_KIND])
            frame = buf[start:end]
            if kind == KIND_OTHER:
                messages.append(FixMessage(decode_fields(frame)))
                continue
            messages.append(_header_only(frame))
        if result.withdrawn or self.gaps != self._gaps_logged:
            # (A gap while no book was live withdraws nothing, yet the books it left awaiting may
            # have lost their snapshot in it: they are asked for again too.)
            self._resubscribe_withdrawn()
        if not self.up:
            self._maybe_up(now)
        if self.batch.n != before:
            self._on_rows()
        if result.too_large:
            # Nothing behind an oversized frame can be read, and holding it would re-copy MBs per
            # read until a TestRequest times out: the transport disconnects on FrameTooLarge.
            log.warning("%s: message with BodyLength %d above the maximum %d; dropping the connection",
                        self.lp.name, result.too_large, self.decoder.max_message_size)  # fmt: skip
            self.decoder.discard_pending()
            raise FrameTooLarge(result.too_large, self.decoder.max_message_size, messages)
        return messages

    @property
    def awaiting(self) -> set[int]:
        """Subscribed instruments whose fresh snapshot has not arrived yet (rejected ones excluded)."""
        return {i for i in self.instruments if i not in self.rejected and self.decoder.awaiting_snapshot(i)}

    def _maybe_up(self, now: int) -> None:
        """LP_UP once every subscribed instrument has a fresh snapshot (or was rejected)."""
        if not self.up and self.handle is not None and self.handle.is_logged_on and not self.awaiting:
            self.batch.lp_up(self.decoder.lp, now)
            self.up = True
            log.info("%s: up (fresh snapshots for %d instruments)", self.lp.name, len(self.instruments))

    @property
    def gaps(self) -> int:
        """MsgSeqNum gaps seen on this LP's sessions (each withdrew the books once)."""
        return self.decoder.gaps

    def _resubscribe_withdrawn(self) -> None:
        """The decoder withdrew books (a gap, or an increment it could not apply): ask for a
        fresh snapshot of each, once."""
        instrs = [i for i in self.decoder.take_withdrawn() if i in self._symbols and i not in self.rejected]
        if self.gaps != self._gaps_logged:
            self._gaps_logged = self.gaps
            why = f"market-data sequence gap ({self.gaps} so far)"
        else:
            counts = self.entries_dropped
            why = "invalid incremental entries (" + ", ".join(f"{k} {v}" for k, v in counts.items() if v) + " so far)"
        log.warning("%s: %s: withdrawn until a fresh snapshot, resubscribing: %s",
                    self.lp.name, why, ", ".join(self._symbols[i] for i in instrs))  # fmt: skip
        if self.handle is None:
            return
        try:
            for instr in instrs:
                if instr in self.instruments:
                    self.handle.send(b"V", self._request(instr, unsubscribe=True), resendable=False)
                    self.handle.send(b"V", self._request(instr), resendable=False)
        except SessionStateError:
            # Logging out or gone (a gap often comes with the trouble that ends a session): the
            # next logon asks for every book afresh.
            log.info("%s: session ending; the books are asked for again at the next logon", self.lp.name)

    # --- session callbacks -----------------------------------------------------------------------

    def on_create(self, session: SessionHandle) -> None:
        self.handle = session

    def on_logon(self, session: SessionHandle) -> None:
        self.handle = session
        self.up = False
        # A reject is this session's answer (an instrument not available now): ask again on the next.
        self.rejected.clear()
        self._subscribe(session)

    def _subscribe(self, session: SessionHandle) -> None:
        self.decoder.await_snapshot()
        for instr in self.instruments:
            if instr not in self.rejected:
                session.send(b"V", self._request(instr), resendable=False)

    def _request(self, instr: int, unsubscribe: bool = False) -> list[tuple[int, bytes]]:
        return md_request(
            b"%d" % instr, [self._symbols[instr].encode()], depth=self.lp.depth,
            incremental=self.lp.incremental, request=b"2" if unsubscribe else b"1",
        )  # fmt: skip

    def on_logout(self, session: SessionHandle, reason: str) -> None:
        now = self.clock.now_ns()
        self.decoder.lp_down(self.batch, now)
        self.up = False
        log.warning("%s: down (%s)", self.lp.name, reason)
        self._on_rows()
        self._on_down(self)

    # --- orders ------------------------------------------------------------------------------------

    def send_order(
        self, cl_ord_id: str, instr: int, side: int, qty: bytes, limit: bytes | None, now_ns: int
    ) -> bool:
        """Send an IOC NewOrderSingle; False when this LP cannot take it now (down, not for orders,
        or not quoting the instrument). ``qty``/``limit`` are the decimal strings to send."""
        symbol = self._symbols.get(instr)
        if not self.lp.orders or not self.up or symbol is None:
            return False
        if self.handle is None or not self.handle.is_logged_on:
            return False
        body: list[tuple[int, bytes]] = [
            (11, cl_ord_id.encode()), (55, symbol.encode()), (54, b"1" if side > 0 else b"2"),
            (60, format_utc_timestamp(now_ns)), (38, qty), (40, b"1" if limit is None else b"2"),
        ]  # fmt: skip
        if limit is not None:
            body.append((44, limit))
        body.append((59, b"3"))  # IOC: nothing of ours is ever left resting at an LP
        self.handle.send(b"D", body)
        return True

    def from_app(self, message: FixMessage, session: SessionHandle) -> None:
        if message.msg_type == b"8":
            self._on_execution(self, message)
        elif message.msg_type == b"Y":
            req = message.get(262) or b""
            if req.isdigit():
                instr = int(req)
                self.rejected.add(instr)
                now = self.clock.now_ns()
                self.decoder.clear_book(self.batch, now, instr)
                self.decoder.await_snapshot(instr)
                self._maybe_up(now)
                log.warning(
                    "%s: market data for %s rejected (281=%s): %s; asked again after a reconnect",
                    self.lp.name, self._symbols.get(instr), message.get_str(281), message.get_str(58),
                )  # fmt: skip
                self._on_rows()
        # W and X arrive here as headers only: their entries are already in the batch.

