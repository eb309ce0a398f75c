"""Positions and exposure from fills, and the inventory skew they feed back into pricing.

Everything is integer: quantities in quantity steps, prices in ticks, so cash is ticks x steps.
A client *buy* of q at p makes the client long q and, when internalised, the house short q.

The house position per instrument is what the broker holds after internalising client flow
(B-book) net of hedges sent to LPs. It drives the inventory skew: a long house lowers both its
prices (to attract buyers, deter sellers), by one tick per ``skew_step_qty`` steps of position.

An LP may fill a part of a step (500 units where the step is 1000). That part is the house's,
held exactly (a :class:`~fractions.Fraction` of a step) in :attr:`PositionBook.odd_lots`, apart
from the whole-step position: skew works in whole steps, and no order for less than a step can
be sent to take an odd lot back out. Hedges count the odd lots with the position and send the
whole steps of the sum (two halves make a step that a hedge can close); what stays below a step
is there for the operator to see and close.

Positions move with fills that the journal records in the same event; when the journal fails the
event, the owner undoes its moves too (:meth:`PositionBook.mark` / :meth:`PositionBook.undo`), so
positions never hold a fill the journal does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

__all__ = ["BUY", "SELL", "Position", "PositionBook"]

BUY = 1
SELL = -1


@dataclass
class Position:
    """A net position: quantity (signed steps), and the cost of opening it (ticks x steps)."""

    qty: int = 0
    open_cost: int = 0  # sum of price x qty of the open part, signed like qty
    realised: int = 0  # realised P&L in ticks x steps

    def apply(self, side: int, qty: int, price: int) -> None:
        """Apply a fill of ``qty`` steps at ``price`` ticks on ``side`` (BUY/SELL)."""
        signed = side * qty
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            self.qty += signed
            self.open_cost += signed * price
            return
        # Reducing (and perhaps flipping): close at the average open price, exactly.
        closing = min(abs(signed), abs(self.qty))
        direction = 1 if self.qty > 0 else -1
        # Cost of the closed part, pro rata; floor division keeps integers and the remainder
        # stays in open_cost so nothing is lost across many partial closes.
        closed_cost = self.open_cost * closing // abs(self.qty)
        self.realised += direction * closing * price - closed_cost
        self.open_cost -= closed_cost
        self.qty -= direction * closing
        rest = abs(signed) - closing
        if rest:
            self.qty += side * rest
            self.open_cost = side * rest * price

    def unrealised(self, mark: int) -> int:
        return self.qty * mark - self.open_cost


class _OddLotWas(NamedTuple):
    """An undo record: the house's odd lot in ``instr`` before a fill moved it."""

    instr: int
    qty: Fraction


@dataclass
class PositionBook:
    """Client positions, the house position per instrument, and the skew it implies."""

    n_instruments: int
    skew_step_qty: list[int] = field(default_factory=list)  # per instrument; 0 = no skew
    clients: dict[tuple[str, int], Position] = field(default_factory=dict)
    house: list[Position] = field(default_factory=list)
    # The house's holdings below one step per instrument, signed, exactly (see the module doc).
    odd_lots: list[Fraction] = field(default_factory=list)
    # (position, qty, open_cost, realised) before each fill since the outermost open mark.
    _undo: list[tuple[Position, int, int, int] | _OddLotWas] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _open_marks: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.house:
            self.house = [Position() for _ in range(self.n_instruments)]
        if not self.skew_step_qty:
            self.skew_step_qty = [0] * self.n_instruments
        if not self.odd_lots:
            self.odd_lots = [Fraction(0)] * self.n_instruments

    def client(self, client: str, instr: int) -> Position:
        return self.clients.setdefault((client, instr), Position())

    def on_client_fill(self, client: str, instr: int, side: int, qty: int, price: int, internalised: bool) -> None:
        """A client's fill: the client takes the side; the house takes the other if internalised."""
        self._apply(self.client(client, instr), side, qty, price)
        if internalised:
            self._apply(self.house[instr], -side, qty, price)

    def on_hedge_fill(self, instr: int, side: int, qty: int, price: int) -> None:
        """A fill of our own order at an LP (hedge or A-book cover)."""
        self._apply(self.house[instr], side, qty, price)

    def on_odd_lot(self, instr: int, side: int, qty: Fraction) -> None:
        """The part below one step (``0 < qty < 1``) of an LP fill of ours: the house's."""
        if self._undo is not None:
            self._undo.append(_OddLotWas(instr, self.odd_lots[instr]))
        self.odd_lots[instr] += side * qty

    def _apply(self, position: Position, side: int, qty: int, price: int) -> None:
        if self._undo is not None:
            self._undo.append((position, position.qty, position.open_cost, position.realised))
        position.apply(side, qty, price)

    # --- undoing the fills of a failed event ------------------------------------------------------

    def mark(self) -> int:
        """Start (or nest) a span of fills that :meth:`undo` can take back.

        Every mark is released once with :meth:`release`, inner spans before outer ones.
        """
        if self._undo is None:
            self._undo = []
        self._open_marks += 1
        return len(self._undo)

    def undo(self, mark: int) -> None:
        """Take back every fill since ``mark``, those of inner spans that stood included."""
        undo = self._undo
        assert undo is not None and self._open_marks > 0, "undo without mark"
        while len(undo) > mark:
            was = undo.pop()
            if isinstance(was, _OddLotWas):
                self.odd_lots[was.instr] = was.qty
                continue
            position, qty, open_cost, realised = was
            position.qty, position.open_cost, position.realised = qty, open_cost, realised

    def release(self, mark: int) -> None:
        """The span from ``mark`` is over; the record is forgotten when the outermost one is.

        An inner span's fills stay on record until then: an outer span that fails later takes
        them back too. (Two spans may start at the same mark, e.g. 0 before any fill, so the
        mark itself cannot say which span is the outermost: the count of open spans does.)
        """
        assert self._open_marks > 0, "release without mark"
        self._open_marks -= 1
        if self._open_marks == 0:
            self._undo = None

    def exposure(self, instr: int) -> int:
        return self.house[instr].qty

    def skew_ticks(self, instr: int) -> int:
        """Inventory skew input for the engine: positive when the house is long."""
        step = self.skew_step_qty[instr]
        if step <= 0:
            return 0
        qty = self.house[instr].qty
        # Truncate toward zero: a small position in either direction gives no skew.
        return qty // step if qty >= 0 else -((-qty) // step)

    def hedge_needed(self, instr: int, threshold: int) -> int:
        """Signed quantity to trade at an LP to bring exposure back inside ``threshold`` (0 = none).

        Hedges back to zero rather than to the threshold so that a position hovering at the
        threshold does not produce a stream of tiny hedges. The exposure is the whole-step
        position plus the odd lots, cut to whole steps towards zero: a hedge takes every whole
        step out, and what is left is less than one step either way.
        """
        qty = int(self.house[instr].qty + self.odd_lots[instr])  # int() of a Fraction: towards zero
        if threshold <= 0 or abs(qty) <= threshold:
            return 0
        return -qty
