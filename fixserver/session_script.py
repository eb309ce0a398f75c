"""Conversation scripts for the sans-I/O session: "send this, expect that", no sockets.

:class:`Counterparty` plays the other side of a :class:`~fixserver.session.Session`: it builds
its messages with its own MsgSeqNum and SendingTime, feeds them to the session, and moves time.
Tests (ours, and an application's) read like QuickFIX/J's acceptance scripts::

    peer = Counterparty(session, now_ns=T0)
    session.connected(peer.now_ns)
    actions = peer.send(b"A", (98, b"0"), (108, b"30"))
    assert [s.msg_type for s in sends(actions)] == [b"A"]
"""

from __future__ import annotations

from fixserver.message import FixMessage
from fixserver.session import Action, Send, Session, SharedBody, format_utc_timestamp
from fixserver.store import decode_body

__all__ = ["Counterparty", "field_map", "sends"]

_NS = 1_000_000_000


def sends(actions: list[Action]) -> list[Send]:
    """The :class:`Send` actions, in order."""
    return [a for a in actions if isinstance(a, Send)]


def _body(send: Send) -> tuple[tuple[int, bytes | int | str], ...]:
    body = send.body
    if isinstance(body, SharedBody):
        return (*body.prefix, *decode_body(body.prepared.body))
    return body


def field_map(send: Send) -> dict[int, bytes]:
    """Header and body of a :class:`Send` as ``{tag: bytes}`` (first occurrence wins)."""
    out: dict[int, bytes] = {35: send.msg_type}
    for tag, value in (*send.header, *_body(send)):
        if tag not in out:
            out[tag] = value if isinstance(value, bytes) else str(value).encode()
    return out


def as_received(send: Send) -> FixMessage:
    """What the other side decodes from a :class:`Send` (8, 9 and 10 are placeholders)."""
    fields: list[tuple[int, bytes]] = [(8, send.begin_string), (9, b"0"), (35, send.msg_type)]
    for tag, value in (*send.header, *_body(send)):
        fields.append((tag, value if isinstance(value, bytes) else str(value).encode()))
    fields.append((10, b"000"))
    return FixMessage(fields)


class Counterparty:
    """The other end of ``session``: its CompIDs are the session's, swapped."""

    def __init__(self, session: Session, now_ns: int, next_seq: int = 1) -> None:
        self.session = session
        self.now_ns = now_ns
        self.next_seq = next_seq
        sid = session.session_id
        self.begin = sid.begin_string.encode()
        self.comp_id = sid.target_comp_id.encode()  # the peer sends as our target
        self.their = sid.sender_comp_id.encode()

    def message(
        self,
        msg_type: bytes,
        *body: tuple[int, bytes],
        seq: int | None = None,
        poss_dup: bool = False,
        orig_sending_time: bytes | None = None,
        sending_time: bytes | None = None,
        sender: bytes | None = None,
        target: bytes | None = None,
        omit: frozenset[int] = frozenset(),
    ) -> FixMessage:
        """Build the peer's next message. Without ``seq`` it takes (and advances) ``next_seq``."""
        if seq is None:
            seq = self.next_seq
            self.next_seq += 1
        stamp = sending_time if sending_time is not None else format_utc_timestamp(self.now_ns)
        header: list[tuple[int, bytes]] = [
            (8, self.begin), (9, b"0"), (35, msg_type),
            (49, sender if sender is not None else self.comp_id),
            (56, target if target is not None else self.their),
            (34, b"%d" % seq), (52, stamp),
        ]
        if poss_dup:
            header.append((43, b"Y"))
            if orig_sending_time is not None:
                header.append((122, orig_sending_time))
        fields = [f for f in (*header, *body) if f[0] not in omit]
        fields.append((10, b"000"))
        return FixMessage(fields)

    def send(self, msg_type: bytes, *body: tuple[int, bytes], **kw: object) -> list[Action]:
        """Build the peer's next message and feed it to the session."""
        return self.session.receive(self.message(msg_type, *body, **kw), self.now_ns)  # type: ignore[arg-type]

    def deliver(self, message: FixMessage) -> list[Action]:
        """Feed an already built message."""
        return self.session.receive(message, self.now_ns)

    def logon(self, heartbeat_s: int = 30, *extra: tuple[int, bytes], **kw: object) -> list[Action]:
        """The peer's Logon (98=0, 108=heartbeat_s, extra fields)."""
        return self.send(b"A", (98, b"0"), (108, b"%d" % heartbeat_s), *extra, **kw)

    def advance(self, seconds: float) -> list[Action]:
        """Move time forward and tick the session's timer."""
        self.now_ns += int(seconds * _NS)
        return self.session.on_timer(self.now_ns)
