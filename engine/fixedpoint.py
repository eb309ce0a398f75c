"""Exact conversion between FIX decimal strings and integer ticks / quantity units.

Prices in the book are ``int64`` ticks of a per-instrument tick size; quantities are ``int64``
units of a per-instrument quantity step. Nothing here goes through ``float``: a decimal string is
split into an integer mantissa and a power-of-ten scale and divided exactly.

Negative prices are ordinary values (WTI settled at -37.63 in April 2020). Nothing in this module
treats zero or a negative number as "missing".

Off-grid values follow an explicit rule: :attr:`Rounding.REJECT` raises :class:`OffGridError`;
:attr:`Rounding.DOWN` / :attr:`Rounding.UP` round toward minus / plus infinity. Callers pick the
direction that is in the *client's* disfavour (a bid rounds down, an ask rounds up).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "DecimalFormatError",
    "OffGridError",
    "Rounding",
    "Grid",
    "parse_decimal",
]


class DecimalFormatError(ValueError):
    """The text is not a plain FIX decimal (``[-]digits[.digits]``)."""


class OffGridError(ValueError):
    """The value is not a whole multiple of the grid step and the rule says reject."""


class Rounding(enum.Enum):
    REJECT = "reject"
    DOWN = "down"  # toward minus infinity
    UP = "up"  # toward plus infinity


_DIGITS = frozenset(b"0123456789")


def parse_decimal(text: str | bytes) -> tuple[int, int]:
    """Split a FIX decimal into ``(mantissa, scale)`` with value = mantissa * 10**-scale.

    FIX "float" fields are plain decimals: an optional sign, digits, an optional point and
    digits. Exponents, spaces, ``nan`` and ``inf`` are not FIX and are refused.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    body = raw
    negative = False
    if body[:1] in (b"-", b"+"):
        negative = body[:1] == b"-"
        body = body[1:]
    int_part, dot, frac_part = body.partition(b".")
    if (
        not (int_part or frac_part)
        or (dot and not frac_part and not int_part)
        or not _DIGITS.issuperset(int_part)
        or not _DIGITS.issuperset(frac_part)
    ):
        raise DecimalFormatError(f"not a decimal number: {raw.decode('ascii', 'replace')!r}")
    mantissa = int(int_part + frac_part or b"0")
    return (-mantissa if negative else mantissa), len(frac_part)


def _format_scaled(value: int, scale: int) -> str:
    """Render ``value * 10**-scale`` with exactly ``scale`` decimals."""
    if scale <= 0:
        return str(value * 10 ** (-scale))
    sign = "-" if value < 0 else ""
    digits = str(abs(value)).rjust(scale + 1, "0")
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"


@dataclass(frozen=True, slots=True)
class Grid:
    """A tick grid: step = ``step_mantissa * 10**-step_scale`` (e.g. 0.00001 → (1, 5), 0.25 → (25, 2)).

    ``decimals`` is how many decimals to print (defaults to the step's own scale).
    """

    step_mantissa: int
    step_scale: int
    decimals: int

    @classmethod
    def parse(cls, step: str, decimals: int | None = None) -> Grid:
        mantissa, scale = parse_decimal(step)
        if mantissa <= 0:
            raise ValueError(f"grid step must be > 0, got {step!r}")
        # Normalise 0.0010 → (1, 3) so equal grids compare equal.
        while scale > 0 and mantissa % 10 == 0:
            mantissa //= 10
            scale -= 1
        if decimals is None:
            decimals = max(scale, 0)
        if decimals < scale:
            raise ValueError(f"{decimals} decimals cannot show a step of {step!r}")
        return cls(mantissa, scale, decimals)

    @property
    def step_text(self) -> str:
        return _format_scaled(self.step_mantissa, self.step_scale)

    def to_steps(self, text: str | bytes, rounding: Rounding = Rounding.REJECT) -> int:
        """Convert a decimal string to a whole number of steps, exactly."""
        mantissa, scale = parse_decimal(text)
        # value / step = (m * 10**-s) / (M * 10**-S) = m * 10**(S-s) / M
        shift = self.step_scale - scale
        if shift >= 0:
            num, den = mantissa * 10**shift, self.step_mantissa
        else:
            num, den = mantissa, self.step_mantissa * 10 ** (-shift)
        q, r = divmod(num, den)  # floor division: q rounds toward minus infinity
        if r == 0:
            return q
        if rounding is Rounding.DOWN:
            return q
        if rounding is Rounding.UP:
            return q + 1
        shown = text.decode("ascii", "replace") if isinstance(text, bytes) else text
        raise OffGridError(f"{shown} is not a multiple of {self.step_text}")

    def to_text(self, steps: int) -> str:
        """Render a whole number of steps as a decimal string with ``decimals`` places."""
        # steps * M * 10**-S shown with `decimals` places: scale up to that many decimals.
        return _format_scaled(steps * self.step_mantissa * 10 ** (self.decimals - self.step_scale), self.decimals)
