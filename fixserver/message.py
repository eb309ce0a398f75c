"""The decoded FIX message shared by the codec, the session layer and the applications.

A message is its fields in wire order as ``(tag, value)`` pairs with ``bytes`` values: FIX is
ASCII on the wire and the hot path never needs ``str``. Repeating groups stay flat, in order; the
application walks them (``fields`` from the group's count tag onward). Header fields (8, 9, 35,
49, 56, 34, 52, 43, 122, ...) and the trailer (10) are included as received.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["FixMessage", "SECRET_TAGS", "SOH"]

SOH = b"\x01"
# Password (554) and NewPassword (925): shown as *** wherever a message is printed or logged.
SECRET_TAGS = frozenset({554, 925})


class FixMessage:
    """One decoded FIX message. Cheap to build: the tag index is made on first lookup."""

    __slots__ = ("fields", "_index")

    def __init__(self, fields: list[tuple[int, bytes]]) -> None:
        self.fields = fields
        self._index: dict[int, bytes] | None = None

    def _lookup(self) -> dict[int, bytes]:
        index = self._index
        if index is None:
            index = {}
            for tag, value in self.fields:
                index.setdefault(tag, value)  # first occurrence wins (header before groups)
            self._index = index
        return index

    @property
    def msg_type(self) -> bytes:
        return self._lookup().get(35, b"")

    @property
    def seq_num(self) -> int | None:
        value = self._lookup().get(34)
        return int(value) if value is not None and value.isdigit() else None

    def get(self, tag: int, default: bytes | None = None) -> bytes | None:
        return self._lookup().get(tag, default)

    def get_str(self, tag: int, default: str | None = None) -> str | None:
        value = self._lookup().get(tag)
        return default if value is None else value.decode("ascii", "replace")

    def get_int(self, tag: int, default: int | None = None) -> int | None:
        value = self._lookup().get(tag)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            return default

    def get_all(self, tag: int) -> list[bytes]:
        return [v for t, v in self.fields if t == tag]

    def __contains__(self, tag: object) -> bool:
        return tag in self._lookup()

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FixMessage) and other.fields == self.fields

    def __hash__(self) -> int:
        return hash(tuple(self.fields))

    def __repr__(self) -> str:
        shown = "|".join(
            f"{t}={'***' if t in SECRET_TAGS else v.decode('ascii', 'replace')}" for t, v in self.fields
        )
        return f"FixMessage({shown})"
