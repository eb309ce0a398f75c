"""The FIX message log: every message a session sends or receives, as text, for support and disputes.

One line per message, appended as it is sent or read::

    20261123-10:00:00.123 IN  FIX.4.4:LAGG->DEMO 8=FIX.4.4|9=142|35=D|34=7|49=DEMO|...|10=088|
    20261123-10:00:00.124 OUT FIX.4.4:LAGG->DEMO 8=FIX.4.4|9=201|35=8|34=9|49=LAGG|...|10=201|

SOH is written as ``|``. Passwords (554 Password, 925 NewPassword) are written as ``***``. Market
data (35=W and 35=X, either way) is left out: it is most of the traffic (every price to every
client, every LP tick), it is rebuilt from the recording (``--record``) if it is ever needed, and
logging it would cost the publish path what it is built to save. Everything else is in: logons,
heartbeats, rejects, orders, execution reports, LP orders and their reports.

Inbound messages are written from their decoded fields (the same bytes but for a BodyLength or
CheckSum the decoder found wrong, which a message that got this far did not have). Lines are
flushed as they are written, so a crash loses none that a client could have been answered on.
:meth:`MessageLog.reopen` starts a new file at the same path after a rotation (``logrotate``'s
``create`` mode; the gateway calls it on SIGHUP).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

from fixserver.message import SECRET_TAGS, FixMessage
from fixserver.session import format_utc_timestamp

__all__ = ["MessageLog"]

_MARKET_DATA = frozenset({b"W", b"X"})
_SECRET_FIELD = re.compile(rb"(\x01(?:%s)=)[^\x01]*" % b"|".join(b"%d" % tag for tag in sorted(SECRET_TAGS)))


class MessageLog:
    """An append-only text log of one process's FIX messages (all sessions in one file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = self._open()
        self.lines = 0

    def _open(self) -> BinaryIO:
        return open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for the process's life

    def inbound(self, session: str, msg: FixMessage, now_ns: int) -> None:
        """A message read on ``session`` (its key, e.g. ``FIX.4.4:LAGG->DEMO``)."""
        if msg.msg_type in _MARKET_DATA:
            return
        text = b"|".join(
            b"%d=%s" % (tag, b"***" if tag in SECRET_TAGS else value) for tag, value in msg.fields
        )
        self._write(b"IN ", session, text + b"|", now_ns)

    def outbound(self, session: str, data: bytes, now_ns: int) -> None:
        """The encoded bytes of one message sent on ``session``."""
        start = data.find(b"\x0135=") + 4
        if data[start : data.find(b"\x01", start)] in _MARKET_DATA:
            return
        self._write(b"OUT", session, _SECRET_FIELD.sub(rb"\1***", data).replace(b"\x01", b"|"), now_ns)

    def _write(self, direction: bytes, session: str, text: bytes, now_ns: int) -> None:
        # One write per line, unbuffered: the line is in the file (the OS's) when this returns.
        self._file.write(b"%s %s %s %s\n" % (format_utc_timestamp(now_ns), direction, session.encode(), text))
        self.lines += 1

    def reopen(self) -> None:
        """Close the file and open the path again (a new file, if it was rotated away)."""
        self._file.close()
        self._file = self._open()

    def close(self) -> None:
        self._file.close()
