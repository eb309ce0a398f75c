"""The LP simulator over FIX 4.4: one acceptor per simulated liquidity provider.

Each LP of the config (``[[lps]]``: port, CompIDs, symbol map, dialect) gets an acceptor on
127.0.0.1 that behaves like that LP towards our feed initiators:

* market data: MarketDataRequest (V) → a W snapshot, then, every market step, either a full W
  (``incremental = false``: snapshot-only dialect) or an X whose entries are keyed by MDEntryID
  (``incremental = true``: 279 new/change/delete; one stable ID per side and level);
  unknown symbols → MarketDataRequestReject (Y, 281=0);
* orders: NewOrderSingle (D) → ExecutionReport after the LP's fill latency: a fill at the LP's
  current price, a partial fill, or a last-look reject, as the scenarios say;
* scenarios from :mod:`feeds.sim_market`: a *stale* LP stays logged on and sends nothing; a
  *disconnected* LP drops its sessions and refuses logons until the scenario ends.

Prices are rendered from ticks with the instrument's grid, so negative prices go out as FIX
decimals like ``-37.63``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field

from engine.config import Config, LpConfig
from engine.fixedpoint import Grid
from feeds.sim_market import LpBook, LpState, SimConfig, SimMarket
from fixserver.clock import SystemClock
from fixserver.message import FixMessage
from fixserver.session import Role, SessionConfig, SessionID
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Acceptor, Application, SessionHandle

__all__ = ["SimulatedLp", "LpSimulatorFleet"]

log = logging.getLogger("lagg.lpsim")

Body = list[tuple[int, bytes]]


@dataclass
class _Subscription:
    md_req_id: bytes
    symbols: list[str]  # ours
    last: dict[str, LpBook] = field(default_factory=dict)


class SimulatedLp(Application):
    """One LP's FIX behaviour. The fleet owns the market and calls :meth:`on_step`."""

    def __init__(self, lp: LpConfig, market: SimMarket, grids: dict[str, tuple[Grid, Grid]]) -> None:
        self.lp = lp
        self.market = market
        self.grids = grids
        simulated = {i.symbol for i in market.cfg.instruments}
        # Symbols this LP is configured for *and* the simulator has a market for; any other
        # request is rejected (Y), as a real LP rejects what it does not quote.
        self._ours_by_lp_symbol = {lp.symbol_map.get(s, s): s for s in lp.instruments if s in simulated}
        self._subs: dict[bytes, _Subscription] = {}
        self.handles: list[SessionHandle] = []
        self._exec_ids = itertools.count(1)
        self.orders = 0

    def _theirs(self, symbol: str) -> bytes:
        return self.lp.symbol_map.get(symbol, symbol).encode()

    # --- session callbacks -----------------------------------------------------------------------

    def on_create(self, session: SessionHandle) -> None:
        self.handles.append(session)

    def on_logon(self, session: SessionHandle) -> None:
        if self.market.lp_state(self.lp.name) is LpState.DOWN:
            session.abort("simulated LP is down (disconnect scenario)")

    def on_logout(self, session: SessionHandle, reason: str) -> None:
        self._subs.clear()

    def from_app(self, message: FixMessage, session: SessionHandle) -> None:
        if message.msg_type == b"V":
            self._on_md_request(message, session)
        elif message.msg_type == b"D":
            asyncio.get_running_loop().call_later(
                self._fill_latency_s(), self._on_order, message, session
            )
        else:
            session.business_reject(message, 3, "unsupported by this LP")

    def _fill_latency_s(self) -> float:
        for sim_lp in self.market.cfg.lps:
            if sim_lp.name == self.lp.name:
                return sim_lp.fill_latency_ms / 1000
        return 0.0

    # --- market data ---------------------------------------------------------------------------

    def _on_md_request(self, msg: FixMessage, session: SessionHandle) -> None:
        req_id = msg.get(262) or b""
        if msg.get(263) == b"2":
            self._subs.pop(req_id, None)
            return
        symbols = []
        for theirs in msg.get_all(55):
            ours = self._ours_by_lp_symbol.get(theirs.decode("ascii", "replace"))
            if ours is None:
                session.send(b"Y", [(262, req_id), (281, b"0"), (58, b"unknown symbol " + theirs)])
                return
            symbols.append(ours)
        sub = _Subscription(req_id, symbols)
        self._subs[req_id] = sub
        for symbol in symbols:
            book = self.market.current(self.lp.name, symbol)
            if book is not None:
                session.send(b"W", self._snapshot(req_id, symbol, book), resendable=False)
                sub.last[symbol] = book

    def on_step(self, books: dict[tuple[str, str], LpBook]) -> None:
        """A market step: stream what changed to every logged-on subscriber."""
        state = self.market.lp_state(self.lp.name)
        if state is LpState.DOWN:
            for handle in self.handles:
                if handle.connected:
                    handle.abort("simulated LP disconnect")
            return
        if state is LpState.STALE:
            return  # connected, heartbeating, silent
        for handle in self.handles:
            if not handle.is_logged_on:
                continue
            for sub in self._subs.values():
                for symbol in sub.symbols:
                    book = books.get((self.lp.name, symbol))
                    if book is None:
                        continue
                    prev = sub.last.get(symbol)
                    if prev == book:
                        continue
                    if self.lp.incremental and prev is not None:
                        body = self._incremental(sub.md_req_id, symbol, prev, book)
                        handle.send(b"X", body, resendable=False)
                    else:
                        handle.send(b"W", self._snapshot(sub.md_req_id, symbol, book), resendable=False)
                    sub.last[symbol] = book

    def _levels(self, book: LpBook) -> list[tuple[int, int, int, int]]:
        rows = [(0, k, p, q) for k, (p, q) in enumerate(zip(book.bid_px, book.bid_qty, strict=True))]
        rows += [(1, k, p, q) for k, (p, q) in enumerate(zip(book.ask_px, book.ask_qty, strict=True))]
        return rows

    def _px_qty(self, symbol: str, price: int, qty: int) -> Body:
        price_grid, qty_grid = self.grids[symbol]
        return [(270, price_grid.to_text(price).encode()), (271, qty_grid.to_text(qty).encode())]

    def _snapshot(self, req_id: bytes, symbol: str, book: LpBook) -> Body:
        rows = self._levels(book)
        body: Body = [(262, req_id), (55, self._theirs(symbol)), (268, b"%d" % len(rows))]
        for side, level, price, qty in rows:
            body += [(269, b"%d" % side), *self._px_qty(symbol, price, qty)]
            body += [(278, b"%s%d" % (b"ba"[side : side + 1], level)), (290, b"%d" % (level + 1))]
        return body

    def _incremental(self, req_id: bytes, symbol: str, prev: LpBook, book: LpBook) -> Body:
        old = {(s, k): (p, q) for s, k, p, q in self._levels(prev)}
        new = {(s, k): (p, q) for s, k, p, q in self._levels(book)}
        entries: Body = []
        count = 0
        theirs = self._theirs(symbol)
        for key in sorted(old.keys() | new.keys()):
            side, level = key
            entry_id = b"%s%d" % (b"ba"[side : side + 1], level)
            if key not in new:
                entries += [(279, b"2"), (269, b"%d" % side), (278, entry_id), (55, theirs)]
            elif old.get(key) != new[key]:
                action = b"1" if key in old else b"0"
                entries += [(279, action), (269, b"%d" % side), (278, entry_id), (55, theirs)]
                entries += [*self._px_qty(symbol, *new[key]), (290, b"%d" % (level + 1))]
            else:
                continue
            count += 1
        return [(262, req_id), (268, b"%d" % count), *entries]

    # --- orders ----------------------------------------------------------------------------------

    def _on_order(self, msg: FixMessage, session: SessionHandle) -> None:
        if not session.is_logged_on:
            return
        self.orders += 1
        theirs = msg.get_str(55) or ""
        symbol = self._ours_by_lp_symbol.get(theirs)
        side_buy = msg.get(54) == b"1"
        base = [(37, b"LPO-%d" % self.orders), (11, msg.get(11) or b"")]
        base += [(55, theirs.encode()), (54, msg.get(54) or b"")]
        if symbol is None:
            self._report(session, base, b"8", b"8", b"0", b"0", None, None, b"unknown symbol")
            return
        price_grid, qty_grid = self.grids[symbol]
        try:
            qty = qty_grid.to_steps(msg.get(38) or b"")
        except ValueError:
            self._report(session, base, b"8", b"8", b"0", b"0", None, None, b"bad quantity")
            return
        book = self.market.current(self.lp.name, symbol)
        levels = (book.ask_px if side_buy else book.bid_px) if book is not None else ()
        filled, rejected = self.market.fill_decision(self.lp.name, qty)
        limit = msg.get(44)
        price = levels[0] if levels else None
        if price is not None and limit is not None:
            limit_ticks = price_grid.to_steps(limit)
            if (side_buy and price > limit_ticks) or (not side_buy and price < limit_ticks):
                price = None
        if rejected or price is None or filled == 0:
            self._report(session, base, b"8", b"8", b"0", b"0", None, None, b"last look: rejected")
            return
        cum, px = qty_grid.to_text(filled).encode(), price_grid.to_text(price).encode()
        if filled == qty:
            self._report(session, base, b"F", b"2", cum, b"0", cum, px, None)
            return
        # A partial fill, then the rest cancelled: the A-book route retries it elsewhere.
        self._report(session, base, b"F", b"1", cum, qty_grid.to_text(qty - filled).encode(), cum, px, None)
        self._report(session, base, b"4", b"4", cum, b"0", None, px, b"partial fill: remainder cancelled")

    def _report(
        self, session: SessionHandle, base: Body, exec_type: bytes, status: bytes, cum: bytes, leaves: bytes,
        last_qty: bytes | None, last_px: bytes | None, text: bytes | None,
    ) -> None:  # fmt: skip
        body = [*base, (17, b"LPE-%d" % next(self._exec_ids)), (150, exec_type), (39, status)]
        if last_qty is not None and last_px is not None:
            body += [(32, last_qty), (31, last_px)]
        body += [(151, leaves), (14, cum), (6, last_px or b"0")]
        if text:
            body.append((58, text))
        session.send(b"8", body)


class LpSimulatorFleet:
    """Every configured LP that the simulator knows, each on its own acceptor, one market."""

    def __init__(self, cfg: Config, sim: SimConfig, host: str = "127.0.0.1", ports: dict[str, int] | None = None):
        grids = {i.symbol: (i.price_grid(), i.qty_grid()) for i in cfg.instruments}
        self.market = SimMarket(sim, {s: g[0] for s, g in grids.items()})
        simulated = {lp.name for lp in sim.lps}
        self.lps: dict[str, SimulatedLp] = {}
        self.acceptors: dict[str, Acceptor] = {}
        for lp in cfg.lps:
            if lp.name not in simulated:
                continue
            app = SimulatedLp(lp, self.market, grids)
            # The LP's view: it is the sender of its messages; our feed is its counterparty.
            session = SessionConfig(SessionID("FIX.4.4", lp.target_comp_id, lp.sender_comp_id), Role.ACCEPTOR)
            port = (ports or {}).get(lp.name, lp.port)
            self.acceptors[lp.name] = Acceptor(app, [session], MemoryStoreFactory(), host=host, port=port,
                                               clock=SystemClock())  # fmt: skip
            self.lps[lp.name] = app

    @property
    def ports(self) -> dict[str, int]:
        return {name: a.port for name, a in self.acceptors.items()}

    async def run(self, stop: asyncio.Event, seconds: float | None = None) -> None:
        """Serve until ``stop`` (or ``seconds``), stepping the market every ``step_ms``."""
        for acceptor in self.acceptors.values():
            await acceptor.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds if seconds else None
        step_s = self.market.cfg.step_ms / 1000
        try:
            while not stop.is_set() and (deadline is None or loop.time() < deadline):
                books = self.market.step()
                for app in self.lps.values():
                    app.on_step(books)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=step_s)
                except TimeoutError:
                    pass
        finally:
            for acceptor in self.acceptors.values():
                await acceptor.stop(logout_timeout_s=0.5)
