"""Message stores: sequence numbers and sent resendable application messages, per session.

A :class:`MessageStore` belongs to one session (QuickFIX/J's split: a factory hands out one
store per session key). It keeps

* the next outbound (sender) and inbound (target) MsgSeqNum,
* every *resendable* application message we sent (execution reports and the like; market data
  is not stored: on a ResendRequest it is replaced by a gap fill),
* the store's creation time, which the daily schedule compares with the session period's start
  to decide when sequence numbers reset.

Durability contract: the session layer writes into the store as it builds a message; the
transport calls :meth:`MessageStore.commit` *before* it hands the encoded bytes to the socket. So
a message that reached the counterparty is always in the store, and a restarted acceptor
continues the sequence instead of reusing numbers. One commit covers a whole batch of sends
(everything produced by one socket read or one application call), which keeps the per-message
cost to an in-memory row insert.

:class:`SqliteStoreFactory` runs SQLite in WAL mode with ``synchronous=NORMAL`` by default: in
WAL mode a committed transaction is in the WAL file (the OS page cache) when ``commit`` returns,
so it survives a process crash (``kill -9``); only an OS crash or power loss can lose the last
transactions, and NORMAL avoids an fsync per batch on the hot path. Deployments that must also
survive power loss pass ``synchronous="FULL"`` (an fsync per commit).

The sequence counters are not SQL rows on the hot path: they live in a small file beside the
database (``<db>-seqnums``), mapped into memory and shared with the page cache, so a commit
writes them with a memory copy. Like a WAL commit under NORMAL, what is written there survives
the process being killed (the kernel owns the page); under FULL the commit also msyncs it. Market
data moves every session's counter on every price update, and an SQL UPDATE plus COMMIT per update
cost ~100 µs with 20 sessions, with a WAL checkpoint (and its fsync) every thousand or so. The
table keeps the counters as of the last clean close; on open a store takes the highest of the
table, the mapped file and its last saved message + 1, so a lost or foreign counters file can
only make the sequence jump forward (the peer's ResendRequest is then answered with a gap fill),
never reuse a number.
"""

from __future__ import annotations

import mmap
import os
import secrets
import sqlite3
import struct
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fixserver.message import SOH

__all__ = [
    "MemoryStore",
    "MemoryStoreFactory",
    "MessageStore",
    "MessageStoreFactory",
    "SqliteStore",
    "SqliteStoreFactory",
    "StoredMessage",
    "decode_body",
    "encode_body",
]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A sent application message as needed to resend it: type, body and original 52."""

    seq_num: int
    msg_type: bytes
    sending_time: bytes  # our original SendingTime (52); becomes OrigSendingTime (122) on resend
    body: tuple[tuple[int, bytes], ...]


def encode_body(body: Sequence[tuple[int, bytes]]) -> bytes:
    """Serialise body fields as ``tag=value<SOH>...`` (the FIX wire form, without header)."""
    return b"".join(b"%d=%s\x01" % (tag, value) for tag, value in body)


def decode_body(data: bytes) -> tuple[tuple[int, bytes], ...]:
    """Inverse of :func:`encode_body`. (Raw-data fields containing SOH are not supported.)"""
    fields = []
    for part in data.split(SOH):
        if part:
            tag, _, value = part.partition(b"=")
            fields.append((int(tag), value))
    return tuple(fields)


class MessageStore(ABC):
    """Persistence of one session: sequence numbers, sent resendable messages, creation time."""

    @property
    @abstractmethod
    def next_sender_seq(self) -> int:
        """The MsgSeqNum our next new outbound message gets."""

    @property
    @abstractmethod
    def next_target_seq(self) -> int:
        """The MsgSeqNum we expect on the counterparty's next message."""

    @property
    @abstractmethod
    def creation_time_ns(self) -> int:
        """When the store was created or last reset (daily schedule compares against this)."""

    @abstractmethod
    def set_next_sender_seq(self, seq: int) -> None:
        """Set the next outbound MsgSeqNum."""

    @abstractmethod
    def set_next_target_seq(self, seq: int) -> None:
        """Set the next expected inbound MsgSeqNum."""

    @abstractmethod
    def save(self, message: StoredMessage) -> None:
        """Keep a sent resendable message for ResendRequests."""

    @abstractmethod
    def get_range(self, begin: int, end: int) -> list[StoredMessage]:
        """Stored messages with ``begin <= seq <= end``, in sequence order."""

    @abstractmethod
    def reset(self, now_ns: int) -> None:
        """Both sequence numbers back to 1, messages dropped, creation time = ``now_ns``."""

    def commit(self) -> None:  # noqa: B027 - optional hook: in-memory stores have nothing to do
        """Make everything written so far durable (called before bytes go to the socket)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


class MessageStoreFactory(ABC):
    """Creates (or reopens) the store of a session key, e.g. ``FIX.4.4:LAGG->DEMO``."""

    @abstractmethod
    def create(self, session_key: str, now_ns: int) -> MessageStore:
        """Open the store for ``session_key``; a new one starts at seq 1, created at ``now_ns``."""


class MemoryStore(MessageStore):
    """A store in memory: for tests and for sessions that need no recovery."""

    def __init__(self, now_ns: int = 0) -> None:
        self._sender = 1
        self._target = 1
        self._created = now_ns
        self._messages: dict[int, StoredMessage] = {}

    @property
    def next_sender_seq(self) -> int:
        return self._sender

    @property
    def next_target_seq(self) -> int:
        return self._target

    @property
    def creation_time_ns(self) -> int:
        return self._created

    def set_next_sender_seq(self, seq: int) -> None:
        self._sender = seq

    def set_next_target_seq(self, seq: int) -> None:
        self._target = seq

    def save(self, message: StoredMessage) -> None:
        self._messages[message.seq_num] = message

    def get_range(self, begin: int, end: int) -> list[StoredMessage]:
        return [self._messages[s] for s in sorted(self._messages) if begin <= s <= end]

    def reset(self, now_ns: int) -> None:
        self._sender = 1
        self._target = 1
        self._created = now_ns
        self._messages.clear()


class MemoryStoreFactory(MessageStoreFactory):
    """Hands out :class:`MemoryStore` objects; the same key returns the same store."""

    def __init__(self) -> None:
        self.stores: dict[str, MemoryStore] = {}

    def create(self, session_key: str, now_ns: int) -> MessageStore:
        store = self.stores.get(session_key)
        if store is None:
            store = self.stores[session_key] = MemoryStore(now_ns)
        return store


_SCHEMA = """
CREATE TABLE IF NOT EXISTS fix_sessions (
    session_key TEXT PRIMARY KEY,
    next_sender INTEGER NOT NULL,
    next_target INTEGER NOT NULL,
    creation_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fix_seq_slots (
    session_key TEXT PRIMARY KEY,
    slot INTEGER NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS fix_meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fix_messages (
    session_key TEXT NOT NULL,
    seq_num INTEGER NOT NULL,
    msg_type BLOB NOT NULL,
    sending_time BLOB NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (session_key, seq_num)
) WITHOUT ROWID;
"""


class _SeqFile:
    """The sequence counters of every session of a database, two int64 per slot, in a file mapped
    into memory (``:memory:`` databases get an anonymous map). A 16-byte header names the database
    it belongs to, so a file left over from another database is not believed."""

    _MAGIC = b"LAGGSEQ1"
    _HEADER = struct.Struct("<8sq")
    _SLOT = struct.Struct("<qq")  # next sender, next target
    _GROW = 256  # slots added at a time

    def __init__(self, path: str | None, db_id: int) -> None:
        self._path = path
        self._db_id = db_id
        self._fd = -1 if path is None else os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        size = 0 if path is None else os.fstat(self._fd).st_size
        self.believed = size >= self._HEADER.size and self._read_header(size) == (self._MAGIC, db_id)
        self._map = self._mapping(max(size, self._size(self._GROW)))
        if not self.believed:
            self._map[:] = bytes(len(self._map))  # zero: "unknown" for every slot
            self._HEADER.pack_into(self._map, 0, self._MAGIC, db_id)

    @classmethod
    def _size(cls, slots: int) -> int:
        return cls._HEADER.size + slots * cls._SLOT.size

    def _read_header(self, size: int) -> tuple[bytes, int]:
        with mmap.mmap(self._fd, size) as m:
            magic, db_id = self._HEADER.unpack_from(m, 0)
        return magic, db_id

    def _mapping(self, size: int) -> mmap.mmap:
        if self._fd < 0:
            return mmap.mmap(-1, size)
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)
        return mmap.mmap(self._fd, size)

    def read(self, slot: int) -> tuple[int, int]:
        """(sender, target) of ``slot``; zeros where nothing was written (or the file was not believed)."""
        off = self._size(slot)
        if off + self._SLOT.size > len(self._map):
            return 0, 0
        sender, target = self._SLOT.unpack_from(self._map, off)
        return sender, target

    def write(self, slot: int, sender: int, target: int) -> None:
        off = self._size(slot)
        if off + self._SLOT.size > len(self._map):
            old = self._map
            self._map = self._mapping(self._size(slot + self._GROW))
            if self._fd < 0:
                self._map[: len(old)] = old
            old.close()
        self._SLOT.pack_into(self._map, off, sender, target)

    def sync(self) -> None:
        """msync: the counters survive power loss too (``synchronous=FULL``)."""
        if self._fd >= 0:
            self._map.flush()

    def close(self) -> None:
        self._map.close()
        if self._fd >= 0:
            os.close(self._fd)


class SqliteStore(MessageStore):
    """One session's rows in a shared SQLite database. Sequence numbers are cached in memory
    (reads are free) and written at :meth:`commit` only, into the mapped counters file (see the
    module docstring): one commit writes every session's (``dirty`` is shared by all stores on
    the connection). Saved messages go into the open transaction at once."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        session_key: str,
        now_ns: int,
        seqs: _SeqFile,
        dirty: set[SqliteStore] | None = None,
        sync: bool = False,
    ) -> None:
        self._conn = conn
        self._key = session_key
        self._seqs = seqs
        self._sync = sync  # msync the counters at each commit (synchronous=FULL)
        self._dirty: set[SqliteStore] = dirty if dirty is not None else set()
        row = conn.execute(
            "SELECT next_sender, next_target, creation_ns FROM fix_sessions WHERE session_key = ?",
            (session_key,),
        ).fetchone()
        if row is None:
            conn.execute("INSERT INTO fix_sessions VALUES (?, 1, 1, ?)", (session_key, now_ns))
            row = (1, 1, now_ns)
        slot = conn.execute("SELECT slot FROM fix_seq_slots WHERE session_key = ?", (session_key,)).fetchone()
        if slot is None:
            slot = conn.execute("SELECT COALESCE(MAX(slot) + 1, 0) FROM fix_seq_slots").fetchone()
            conn.execute("INSERT INTO fix_seq_slots VALUES (?, ?)", (session_key, slot[0]))
        self._slot = int(slot[0])
        conn.commit()
        last_saved = conn.execute(
            "SELECT COALESCE(MAX(seq_num), 0) FROM fix_messages WHERE session_key = ?", (session_key,)
        ).fetchone()[0]
        mapped_sender, mapped_target = seqs.read(self._slot)
        # The highest of what each place knows: a number is never used twice (module docstring).
        self._sender = max(int(row[0]), mapped_sender, int(last_saved) + 1)
        self._target = max(int(row[1]), mapped_target)
        self._created = int(row[2])
        seqs.write(self._slot, self._sender, self._target)

    @property
    def next_sender_seq(self) -> int:
        return self._sender

    @property
    def next_target_seq(self) -> int:
        return self._target

    @property
    def creation_time_ns(self) -> int:
        return self._created

    def set_next_sender_seq(self, seq: int) -> None:
        self._sender = seq
        self._dirty.add(self)

    def set_next_target_seq(self, seq: int) -> None:
        self._target = seq
        self._dirty.add(self)

    def save(self, message: StoredMessage) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO fix_messages VALUES (?, ?, ?, ?, ?)",
            (self._key, message.seq_num, message.msg_type, message.sending_time, encode_body(message.body)),
        )

    def get_range(self, begin: int, end: int) -> list[StoredMessage]:
        rows = self._conn.execute(
            "SELECT seq_num, msg_type, sending_time, body FROM fix_messages "
            "WHERE session_key = ? AND seq_num BETWEEN ? AND ? ORDER BY seq_num",
            (self._key, begin, end),
        ).fetchall()
        return [StoredMessage(int(s), bytes(t), bytes(st), decode_body(bytes(b))) for s, t, st, b in rows]

    def reset(self, now_ns: int) -> None:
        self._conn.execute("DELETE FROM fix_messages WHERE session_key = ?", (self._key,))
        self._conn.execute(
            "UPDATE fix_sessions SET next_sender = 1, next_target = 1, creation_ns = ? WHERE session_key = ?",
            (now_ns, self._key),
        )
        self._sender = self._target = 1
        self._created = now_ns
        self._dirty.discard(self)
        # A reset is rare and must not be undone by a crash before the next batch's commit.
        self._conn.commit()
        self._seqs.write(self._slot, 1, 1)
        self._seqs.sync()

    def commit(self) -> None:
        _commit(self._conn, self._seqs, self._dirty, self._sync)


def _commit(conn: sqlite3.Connection, seqs: _SeqFile, dirty: set[SqliteStore], sync: bool = False) -> None:
    """Commit the connection's transaction (saved messages), then write the counters of every
    store in ``dirty`` into the mapped file (msynced when ``sync``)."""
    if conn.in_transaction:
        conn.commit()
    if dirty:
        for store in dirty:
            seqs.write(store._slot, store._sender, store._target)
        dirty.clear()
        if sync:
            seqs.sync()


class SqliteStoreFactory(MessageStoreFactory):
    """All sessions of a process in one SQLite file (WAL) and its counters file (module docstring)."""

    def __init__(self, path: str | Path, synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        in_memory = str(path) == ":memory:"
        if not in_memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection, used only from the event-loop thread.
        self._conn = sqlite3.connect(str(path), check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.executescript(_SCHEMA)
        row = self._conn.execute("SELECT value FROM fix_meta WHERE name = 'db_id'").fetchone()
        if row is None:
            row = (secrets.randbits(62),)
            self._conn.execute("INSERT INTO fix_meta VALUES ('db_id', ?)", row)
        self._conn.commit()
        self._seqs = _SeqFile(None if in_memory else f"{path}-seqnums", int(row[0]))
        self._sync = synchronous == "FULL"
        self._stores: dict[str, SqliteStore] = {}
        self._dirty: set[SqliteStore] = set()  # stores whose counters the next commit writes

    def create(self, session_key: str, now_ns: int) -> MessageStore:
        store = self._stores.get(session_key)
        if store is None:
            store = SqliteStore(self._conn, session_key, now_ns, self._seqs, self._dirty, self._sync)
            self._stores[session_key] = store
        return store

    def pragma(self, name: str) -> str:
        """Read a PRAGMA (tests check WAL mode and the synchronous level)."""
        return str(self._conn.execute(f"PRAGMA {name}").fetchone()[0])

    def close(self) -> None:
        """Commit, write every session's counters into the table too, and close."""
        _commit(self._conn, self._seqs, self._dirty, self._sync)
        self._conn.executemany(
            "UPDATE fix_sessions SET next_sender = ?, next_target = ? WHERE session_key = ?",
            [(store._sender, store._target, store._key) for store in self._stores.values()],
        )
        self._conn.commit()
        self._conn.close()
        self._seqs.close()
