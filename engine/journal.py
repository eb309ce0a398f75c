"""The trade journal: every order, fill and reject, durable before its execution report is sent.

SQLite in WAL mode. The gateway writes everything a batch of orders produced and then calls
:meth:`Journal.commit` once (group commit) *before* it sends any of the batch's execution
reports; a crash therefore never leaves a client holding a report for a fill we have no record of.

``synchronous=FULL`` (the default here) makes each commit survive power loss, at the cost of an
fsync per commit; ``NORMAL`` in WAL mode survives a process crash (kill -9) but not an OS crash.
Group commit keeps FULL affordable: one fsync per loop iteration, not per order.

Quantities are quantity steps and prices ticks (integers); the CSV export renders decimals with
the instruments' grids. The one exception is an LP fill's part below one step (500 where the step
is 1000): the house's, kept apart in ``odd_lots`` as an exact fraction of a step, with the LP's
own text (:meth:`Journal.odd_lot`).

One event's writes (an order and its fills, a status change and its report) go inside
:meth:`Journal.atomic`, a savepoint within the group transaction: if any of them fails, all of
that event's are rolled back and the next commit cannot make half of it durable. OrderIDs and
ExecIDs come from a counter in memory that each commit writes back, so handing out an id never
touches the disk (a report of a failed event has used no row) and ids never repeat: every id a
sent report carries was handed out before the commit that preceded the sending.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import IO

from engine.fixedpoint import Grid

HOUSE_CLIENT = "__house__"  # the client of the house's own orders and odd lots

__all__ = [
    "BatchLost",
    "HOUSE_CLIENT",
    "Journal",
    "JournalOrder",
    "JournalFill",
    "JournalOddLot",
    "DuplicateClOrdID",
    "NotAJournal",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id    TEXT PRIMARY KEY,
    client      TEXT NOT NULL,
    cl_ord_id   TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    side        INTEGER NOT NULL,         -- 1 buy, -1 sell
    ord_type    TEXT NOT NULL,            -- FIX 40
    tif         TEXT NOT NULL,            -- FIX 59
    qty         INTEGER NOT NULL,         -- steps
    price       INTEGER,                  -- ticks; NULL for market orders
    status      TEXT NOT NULL,            -- FIX 39
    cum_qty     INTEGER NOT NULL DEFAULT 0,
    cost        INTEGER NOT NULL DEFAULT 0,  -- sum(fill qty * fill price), for AvgPx
    text        TEXT NOT NULL DEFAULT '',
    created_ns  INTEGER NOT NULL,
    updated_ns  INTEGER NOT NULL,
    UNIQUE (client, cl_ord_id)
);
CREATE TABLE IF NOT EXISTS fills (
    exec_id   TEXT PRIMARY KEY,
    order_id  TEXT NOT NULL REFERENCES orders(order_id),
    client    TEXT NOT NULL,
    symbol    TEXT NOT NULL,
    side      INTEGER NOT NULL,
    qty       INTEGER NOT NULL,
    price     INTEGER NOT NULL,
    route     TEXT NOT NULL,              -- internal | lp name
    ts_ns     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS fills_by_client ON fills(client, symbol);
CREATE TABLE IF NOT EXISTS odd_lots (
    exec_id   TEXT PRIMARY KEY,
    symbol    TEXT NOT NULL,
    side      INTEGER NOT NULL,           -- the house's: 1 bought from the LP, -1 sold to it
    qty       TEXT NOT NULL,              -- a fraction of one step, exactly: "1/2"
    price     INTEGER NOT NULL,           -- ticks
    route     TEXT NOT NULL,              -- lp name
    lp_order  TEXT NOT NULL,              -- our ClOrdID at the LP
    lp_fill   TEXT NOT NULL,              -- the LP's LastQty and LastPx as it sent them
    ts_ns     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS replaced (     -- each OrderCancelReplaceRequest (35=G) that went through
    client     TEXT NOT NULL,
    cl_ord_id  TEXT NOT NULL,             -- the ClOrdID the order had until then (stays taken)
    order_id   TEXT NOT NULL REFERENCES orders(order_id),
    qty        INTEGER NOT NULL,          -- the order's qty and price until then
    price      INTEGER,
    ts_ns      INTEGER NOT NULL,
    PRIMARY KEY (client, cl_ord_id)
);
CREATE TABLE IF NOT EXISTS grids (        -- what a tick and a step of each symbol were when journaled
    symbol     TEXT PRIMARY KEY,
    tick_size  TEXT NOT NULL,             -- prices here are integers of this
    qty_step   TEXT NOT NULL              -- quantities here are integers of this
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

OPEN_STATUSES = ("0", "1", "A", "E", "6")  # new, partially filled, pending new/replace/cancel


class DuplicateClOrdID(Exception):
    """The client already used this ClOrdID."""


class NotAJournal(Exception):
    """The file is not a journal this build can read (:meth:`Journal.open_read_only`)."""


class BatchLost(Exception):
    """Everything written since the last commit is gone (SQLite rolled the transaction back, or the
    commit failed): the caller must not send the reports it queued for those writes."""


@dataclass(frozen=True, slots=True)
class JournalOrder:
    order_id: str
    client: str
    cl_ord_id: str
    symbol: str
    side: int
    ord_type: str
    tif: str
    qty: int
    price: int | None
    status: str
    cum_qty: int
    cost: int
    text: str
    created_ns: int
    updated_ns: int


@dataclass(frozen=True, slots=True)
class JournalFill:
    exec_id: str
    order_id: str
    client: str
    symbol: str
    side: int
    qty: int
    price: int
    route: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class JournalOddLot:
    """The part below one step of an LP fill of ours: the house's."""

    exec_id: str
    symbol: str
    side: int
    qty: Fraction  # of one step, 0 < qty < 1
    price: int
    route: str
    lp_order: str
    lp_fill: str
    ts_ns: int


class Journal:
    """One journal file per gateway. Not thread-safe: owned by the event loop."""

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)  # explicit transactions
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self._in_tx = False
        self._ids_to_save = False
        self._batch = 0  # counts lost batches: an event sees whether its batch was lost under it
        row = self._db.execute("SELECT value FROM meta WHERE key='next_id'").fetchone()
        self._next_id = row[0] if row else 1

    @classmethod
    def open_read_only(cls, path: str | Path) -> Journal:
        """Open an existing journal for reading only (the CSV export): nothing is created or
        written, so a wrong file (the FIX store, say) is refused with :class:`NotAJournal`
        instead of being given a journal's tables, and a running gateway's journal is read
        as of its last commit."""
        self = cls.__new__(cls)
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise NotAJournal(f"{path}: cannot open: {exc}") from None
        try:
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.Error as exc:
            self._db.close()
            raise NotAJournal(f"{path}: not a journal ({exc})") from None
        missing = {"orders", "fills"} - tables
        if missing:
            self._db.close()
            raise NotAJournal(f"{path}: not a journal (no {', '.join(sorted(missing))} table)")
        self._in_tx = self._ids_to_save = False
        self._batch = self._next_id = 0
        return self

    # --- writing (inside a group-commit transaction) -------------------------------------------

    def _begin(self) -> None:
        if not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """The writes of one event: all of them, or none if the block raises (then re-raised).

        Nests (each level is a savepoint). Raises :class:`BatchLost` instead when SQLite has
        already rolled back the whole group transaction, so that not even earlier events are left.
        """
        self._begin()
        batch = self._batch
        self._db.execute("SAVEPOINT event")
        try:
            yield
        except BaseException:
            self._roll_back_event(batch)
            raise
        if batch != self._batch:
            # The batch this event began in was lost inside it (a nested event's failure): what
            # the event wrote since then must not ride on into the next commit either.
            self._abandon_batch()
            raise BatchLost("the uncommitted batch was lost during this event")
        self._db.execute("RELEASE event")

    def _roll_back_event(self, batch: int) -> None:
        if batch != self._batch:
            self._abandon_batch()
            raise BatchLost("the uncommitted batch was lost during this event")
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK TO event")
                self._db.execute("RELEASE event")
                return
        except sqlite3.Error:
            self._abandon_batch()
            raise BatchLost("the journal could not roll back one event; the batch is rolled back") from None
        # Some errors (disk full, I/O) make SQLite roll back the whole transaction by itself.
        self._abandon_batch()
        raise BatchLost("SQLite rolled back the uncommitted batch")

    def _abandon_batch(self) -> None:
        self._batch += 1
        self._in_tx = False
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # nothing more to undo here: the caller is told the batch is lost either way

    def next_id(self, prefix: str) -> str:
        """A new OrderID/ExecID, unique across restarts (each commit journals the counter)."""
        value = self._next_id
        self._next_id += 1
        self._ids_to_save = True
        return f"{prefix}{value}"

    def new_order(
        self,
        client: str,
        cl_ord_id: str,
        symbol: str,
        side: int,
        ord_type: str,
        tif: str,
        qty: int,
        price: int | None,
        now_ns: int,
        status: str = "0",
        text: str = "",
    ) -> str:
        """Journal an order; returns its OrderID. Raises :class:`DuplicateClOrdID`."""
        self._begin()
        order_id = self.next_id("O")
        try:
            self._db.execute(
                "INSERT INTO orders(order_id, client, cl_ord_id, symbol, side, ord_type, tif, qty, price,"
                " status, text, created_ns, updated_ns) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (order_id, client, cl_ord_id, symbol, side, ord_type, tif, qty, price, status, text, now_ns, now_ns),
            )
        except sqlite3.IntegrityError:
            raise DuplicateClOrdID(cl_ord_id) from None
        return order_id

    def has_cl_ord_id(self, client: str, cl_ord_id: str) -> bool:
        """Whether the client has used ``cl_ord_id``: for an order, or for one before it was replaced."""
        row = self._db.execute(
            "SELECT 1 FROM orders WHERE client=? AND cl_ord_id=?"
            " UNION ALL SELECT 1 FROM replaced WHERE client=? AND cl_ord_id=?",
            (client, cl_ord_id, client, cl_ord_id),
        ).fetchone()
        return row is not None

    def replace_order(self, order_id: str, cl_ord_id: str, qty: int, price: int | None, now_ns: int) -> None:
        """An order replaced (35=G): it goes on under ``cl_ord_id`` with ``qty`` and ``price``; the
        ClOrdID, qty and price it had are kept in ``replaced``. Raises :class:`DuplicateClOrdID`."""
        self._begin()
        row = self.order(order_id)
        if row is None:
            raise KeyError(order_id)
        if self.has_cl_ord_id(row.client, cl_ord_id):
            raise DuplicateClOrdID(cl_ord_id)
        self._db.execute(
            "INSERT INTO replaced(client, cl_ord_id, order_id, qty, price, ts_ns) VALUES(?,?,?,?,?,?)",
            (row.client, row.cl_ord_id, order_id, row.qty, row.price, now_ns),
        )
        self._db.execute(
            "UPDATE orders SET cl_ord_id=?, qty=?, price=?, updated_ns=? WHERE order_id=?",
            (cl_ord_id, qty, price, now_ns, order_id),
        )

    def fill(self, order_id: str, qty: int, price: int, route: str, now_ns: int, status: str) -> str:
        """Journal a fill of ``order_id`` and its new status; returns the ExecID."""
        self._begin()
        order = self._db.execute(
            "SELECT client, symbol, side FROM orders WHERE order_id=?", (order_id,)
        ).fetchone()
        if order is None:
            raise KeyError(order_id)
        exec_id = self.next_id("E")
        self._db.execute(
            "INSERT INTO fills(exec_id, order_id, client, symbol, side, qty, price, route, ts_ns)"
            " VALUES(?,?,?,?,?,?,?,?,?)",
            (exec_id, order_id, order[0], order[1], order[2], qty, price, route, now_ns),
        )
        self._db.execute(
            "UPDATE orders SET cum_qty = cum_qty + ?, cost = cost + ?, status=?, updated_ns=? WHERE order_id=?",
            (qty, qty * price, status, now_ns, order_id),
        )
        return exec_id

    def odd_lot(
        self, symbol: str, side: int, qty: Fraction, price: int, route: str, lp_order: str, lp_fill: str, now_ns: int
    ) -> str:
        """Journal the part below one step (``qty``, a fraction of a step) of an LP fill as the
        house's; ``lp_fill`` is the LP's own text of the fill. Returns the ExecID."""
        if not 0 < qty < 1:
            raise ValueError(f"an odd lot is more than 0 and less than one step, not {qty}")
        self._begin()
        exec_id = self.next_id("E")
        self._db.execute(
            "INSERT INTO odd_lots(exec_id, symbol, side, qty, price, route, lp_order, lp_fill, ts_ns)"
            " VALUES(?,?,?,?,?,?,?,?,?)",
            (exec_id, symbol, side, f"{qty.numerator}/{qty.denominator}", price, route, lp_order, lp_fill, now_ns),
        )
        return exec_id

    def set_status(self, order_id: str, status: str, now_ns: int, text: str = "") -> None:
        self._begin()
        self._db.execute(
            "UPDATE orders SET status=?, text=?, updated_ns=? WHERE order_id=?", (status, text, now_ns, order_id)
        )

    def commit(self) -> None:
        """Make everything since the last commit durable. Call before sending the reports.

        Raises :class:`BatchLost` (after rolling back) if the commit fails.
        """
        if not (self._in_tx or self._ids_to_save):
            return
        try:
            self._begin()
            if self._ids_to_save:
                self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('next_id', ?)", (self._next_id,))
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            self._abandon_batch()
            raise BatchLost(f"the journal commit failed: {e}") from e
        self._in_tx = False
        self._ids_to_save = False

    def close(self) -> None:
        self.commit()
        self._db.close()

    def adopt_grids(self, grids: dict[str, tuple[str, str]]) -> list[str]:
        """Check the config's ``symbol -> (tick_size, qty_step)`` against the journal's: prices
        and quantities are stored as integers of them, so a symbol whose tick or step changed
        would be read wrong (a resting order at 1.08510 would come back at 10.8510). Returns one
        line per such symbol (nothing is changed then); otherwise records the symbols the journal
        did not know yet and returns []."""
        known = dict(self.grids())
        changed = [
            f"{symbol}: the journal {self.path} holds prices in ticks of {known[symbol][0]} and quantities in "
            f"steps of {known[symbol][1]}; the config says {tick} and {step}"
            for symbol, (tick, step) in grids.items()
            if symbol in known and (Decimal(tick), Decimal(step)) != tuple(map(Decimal, known[symbol]))
        ]
        if changed:
            return changed
        new = [(symbol, tick, step) for symbol, (tick, step) in grids.items() if symbol not in known]
        if new:
            self._begin()
            self._db.executemany("INSERT INTO grids(symbol, tick_size, qty_step) VALUES(?,?,?)", new)
            self.commit()
        return []

    def _has(self, table: str) -> bool:
        """Whether the journal has ``table``: one opened read-only keeps the tables it was written
        with, and older journals lack the newer ones."""
        found = self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
        return found is not None

    def grids(self) -> list[tuple[str, tuple[str, str]]]:
        """The journal's ``(symbol, (tick_size, qty_step))``, as adopted (none in older journals)."""
        if not self._has("grids"):
            return []
        rows = self._db.execute("SELECT symbol, tick_size, qty_step FROM grids").fetchall()
        return [(symbol, (tick, step)) for symbol, tick, step in rows]

    # --- reading and recovery --------------------------------------------------------------------

    def order(self, order_id: str) -> JournalOrder | None:
        row = self._db.execute(f"SELECT {_ORDER_COLS} FROM orders WHERE order_id=?", (order_id,)).fetchone()
        return JournalOrder(*row) if row else None

    def order_by_cl_ord_id(self, client: str, cl_ord_id: str) -> JournalOrder | None:
        """The client's order with ``cl_ord_id``, or with it before a replace (then as it is now)."""
        row = self._db.execute(
            f"SELECT {_ORDER_COLS} FROM orders WHERE client=? AND cl_ord_id=?", (client, cl_ord_id)
        ).fetchone()
        if row is None:
            row = self._db.execute(
                f"SELECT {_ORDER_COLS} FROM orders WHERE order_id ="
                " (SELECT order_id FROM replaced WHERE client=? AND cl_ord_id=?)",
                (client, cl_ord_id),
            ).fetchone()
        return JournalOrder(*row) if row else None

    def open_orders(self) -> list[JournalOrder]:
        """Orders still working (resting limits, pending routes): what a restart must restore."""
        marks = ",".join("?" * len(OPEN_STATUSES))
        rows = self._db.execute(
            f"SELECT {_ORDER_COLS} FROM orders WHERE status IN ({marks}) ORDER BY created_ns, order_id",
            OPEN_STATUSES,
        ).fetchall()
        return [JournalOrder(*r) for r in rows]

    def fills(self) -> Iterator[JournalFill]:
        for row in self._db.execute(
            "SELECT exec_id, order_id, client, symbol, side, qty, price, route, ts_ns FROM fills"
            " ORDER BY ts_ns, rowid"
        ):
            yield JournalFill(*row)

    def odd_lots(self) -> Iterator[JournalOddLot]:
        for row in self._db.execute(
            "SELECT exec_id, symbol, side, qty, price, route, lp_order, lp_fill, ts_ns FROM odd_lots"
            " ORDER BY ts_ns, rowid"
        ):
            yield JournalOddLot(row[0], row[1], row[2], Fraction(row[3]), *row[4:])

    def export_csv(self, out: IO[str], grids: dict[str, tuple[Grid, Grid]]) -> int:
        """Write every fill as CSV with decimal prices and quantities, then the house's odd lots
        (parts of LP fills below one quantity step: client ``__house__``, the order id the LP
        filled, the exact quantity); returns the row count.

        ``grids`` maps symbol -> (price grid, quantity grid). The journal's own tick and step
        of a symbol (:meth:`adopt_grids`) win over them: they are what its integers count. A
        symbol of the journal's that neither has raises ValueError before anything is written:
        half an export is worse than none.
        """
        grids = dict(grids)
        for symbol, (tick, step) in self.grids():
            price_grid = grids[symbol][0] if symbol in grids else None
            if price_grid is None or Decimal(price_grid.step_text) != Decimal(tick):
                price_grid = Grid.parse(tick)
            qty_grid = grids[symbol][1] if symbol in grids else None
            if qty_grid is None or Decimal(qty_grid.step_text) != Decimal(step):
                qty_grid = Grid.parse(step)
            grids[symbol] = (price_grid, qty_grid)
        # Journals written before odd lots were kept have no such table (a read-only open adds none).
        has_odd_lots = self._has("odd_lots")
        union = " UNION SELECT symbol FROM odd_lots" if has_odd_lots else ""
        symbols = {row[0] for row in self._db.execute(f"SELECT symbol FROM fills{union}")}
        unknown = sorted(symbols - grids.keys())
        if unknown:
            raise ValueError(f"fills in {', '.join(unknown)}, which the config does not define")
        writer = csv.writer(out)
        writer.writerow(["exec_id", "order_id", "client", "symbol", "side", "qty", "price", "route", "ts_ns"])
        count = 0
        for f in self.fills():
            price_grid, qty_grid = grids[f.symbol]
            writer.writerow([
                f.exec_id, f.order_id, f.client, f.symbol, "buy" if f.side > 0 else "sell",
                qty_grid.to_text(f.qty), price_grid.to_text(f.price), f.route, f.ts_ns,
            ])  # fmt: skip
            count += 1
        for o in self.odd_lots() if has_odd_lots else ():
            price_grid, qty_grid = grids[o.symbol]
            units = o.qty * Fraction(qty_grid.step_text)  # a part of an LP's decimal quantity: finite
            writer.writerow([
                o.exec_id, o.lp_order, HOUSE_CLIENT, o.symbol, "buy" if o.side > 0 else "sell",
                _decimal_text(units), price_grid.to_text(o.price), o.route, o.ts_ns,
            ])  # fmt: skip
            count += 1
        return count


def _decimal_text(value: Fraction) -> str:
    """A fraction whose denominator divides a power of ten, as its exact decimal text."""
    for digits in range(19):
        if (value * 10**digits).denominator == 1:
            break
    else:  # not a finite decimal: cannot come from an LP's decimal text, but never loop on one
        return f"{float(value):.12g}"
    text = str(abs(value.numerator * 10**digits // value.denominator)).rjust(digits + 1, "0")
    sign = "-" if value < 0 else ""
    return sign + (f"{text[:-digits]}.{text[-digits:]}" if digits else text)


_ORDER_COLS = (
    "order_id, client, cl_ord_id, symbol, side, ord_type, tif, qty, price, status, cum_qty, cost, text,"
    " created_ns, updated_ns"
)


def replay_fills(fills: Iterable[JournalFill]) -> dict[tuple[str, str], int]:
    """Net client positions (steps) per (client, symbol) from journaled fills."""
    positions: dict[tuple[str, str], int] = {}
    for f in fills:
        key = (f.client, f.symbol)
        positions[key] = positions.get(key, 0) + f.side * f.qty
    return positions
