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

The outbound sequence counter is not an SQL row on the hot path. Market data moves every
session's counter on every price update, and an SQL UPDATE plus COMMIT per update cost ~100 µs
with 20 sessions (with a WAL checkpoint, and its fsync, every thousand or so). Instead:

* the table holds a **ceiling**: every number used so far is below it. A commit whose counter
  passes the ceiling first raises it by :data:`SEQ_RESERVE` in SQL, so that costs one SQL commit
  per :data:`SEQ_RESERVE` messages of a session; a clean close writes the exact value;
* a small file beside the database (``<db>-seqnums``), mapped into memory, holds the **exact**
  counter, written at every commit with a memory copy. Like a WAL commit under NORMAL, it
  survives the process being killed (the kernel owns the page).

On open, a store continues from the mapped file's counter when it can believe it (the file
names its database, the slot was written, and the factory runs with NORMAL): after ``kill -9``
the sequence continues exactly. Otherwise it continues from the table's ceiling (a lost or
foreign file, or FULL, where an OS crash may have lost the file's last pages but not the
fsynced table): the sequence jumps forward and the peer's ResendRequest for the jump is answered
with a gap fill, so no number is ever used twice. The inbound counter moves only when the peer
sends (orders, heartbeats), so it stays an SQL row, written in the commit that follows.
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
    "SEQ_RESERVE",
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


SEQ_RESERVE = 8192
"""Outbound sequence numbers reserved in the table at a time (module docstring)."""


class _SeqFile:
    """The exact outbound sequence counter of every session of a database, one int64 per slot,
    in a file mapped into memory (``:memory:`` databases get an anonymous map). A 16-byte header
    names the database it belongs to, so a file left over from another database is not believed.
    Its blocks are allocated when it grows, so a full disk is an OSError then, not a SIGBUS at a
    later write through the map."""

    _MAGIC = b"LAGGSEQ2"
    _HEADER = struct.Struct("<8sq")
    _SLOT = struct.Struct("<q")  # the next outbound MsgSeqNum; 0: never written
    _GROW = 512  # slots added at a time

    def __init__(self, path: str | None, db_id: int) -> None:
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
            os.posix_fallocate(self._fd, 0, size)
        return mmap.mmap(self._fd, size)

    def read(self, slot: int) -> int:
        """The counter of ``slot``; 0 where nothing was written (or beyond this process's map)."""
        off = self._size(slot)
        if off + self._SLOT.size > len(self._map):
            return 0
        return int(self._SLOT.unpack_from(self._map, off)[0])

    def write(self, slot: int, sender: int) -> None:
        off = self._size(slot)
        if off + self._SLOT.size > len(self._map):
            old = self._map
            self._map = self._mapping(self._size(slot + self._GROW))
            if self._fd < 0:
                self._map[: len(old)] = old
            old.close()
        self._SLOT.pack_into(self._map, off, sender)

    def close(self) -> None:
        self._map.close()
        if self._fd >= 0:
            os.close(self._fd)


class SqliteStore(MessageStore):
    """One session's rows in a shared SQLite database. Sequence numbers are cached in memory
    (reads are free) and written at :meth:`commit` only (see the module docstring): one commit
    writes every session's (``dirty`` is shared by all stores on the connection). Saved messages
    go into the open transaction at once."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        session_key: str,
        now_ns: int,
        seqs: _SeqFile,
        dirty: set[SqliteStore] | None = None,
        trust_file: bool = True,
    ) -> None:
        self._conn = conn
        self._key = session_key
        self._seqs = seqs
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
        self._ceiling = int(row[0])  # every number used so far is below it (module docstring)
        exact = seqs.read(self._slot) if trust_file and seqs.believed else 0
        self._sender = max(exact or self._ceiling, int(last_saved) + 1)
        self._target = self._table_target = int(row[1])
        self._created = int(row[2])
        seqs.write(self._slot, self._sender)

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
        # The file first: a crash before the SQL commit leaves the old creation time, so the
        # schedule resets again at the next logon, not a new creation time with the old numbers.
        self._seqs.write(self._slot, 1)
        self._conn.execute("DELETE FROM fix_messages WHERE session_key = ?", (self._key,))
        self._conn.execute(
            "UPDATE fix_sessions SET next_sender = 1, next_target = 1, creation_ns = ? WHERE session_key = ?",
            (now_ns, self._key),
        )
        self._conn.commit()  # a reset is rare and must not wait for the next batch's commit
        self._sender = self._target = self._ceiling = self._table_target = 1
        self._created = now_ns
        self._dirty.discard(self)

    def commit(self) -> None:
        _commit(self._conn, self._seqs, self._dirty)


def _commit(conn: sqlite3.Connection, seqs: _SeqFile, dirty: set[SqliteStore]) -> None:
    """Write the counters of every store in ``dirty``: the exact outbound counter into the
    mapped file; in SQL, a new ceiling where one was passed and the inbound counter where it
    moved; then commit the connection's transaction (with any saved messages)."""
    if dirty:
        ceilings: list[tuple[int, str]] = []
        targets: list[tuple[int, str]] = []
        for store in dirty:
            seqs.write(store._slot, store._sender)
            if store._sender > store._ceiling:
                store._ceiling = store._sender + SEQ_RESERVE
                ceilings.append((store._ceiling, store._key))
            if store._target != store._table_target:
                store._table_target = store._target
                targets.append((store._target, store._key))
        dirty.clear()
        if ceilings:
            conn.executemany("UPDATE fix_sessions SET next_sender = ? WHERE session_key = ?", ceilings)
        if targets:
            conn.executemany("UPDATE fix_sessions SET next_target = ? WHERE session_key = ?", targets)
    if conn.in_transaction:
        conn.commit()


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
        # Under FULL the table (fsynced) is the truth after a crash: an OS crash may have lost
        # the mapped file's last pages (module docstring).
        self._trust_file = synchronous == "NORMAL"
        self._stores: dict[str, SqliteStore] = {}
        self._dirty: set[SqliteStore] = set()  # stores whose counters the next commit writes

    def create(self, session_key: str, now_ns: int) -> MessageStore:
        store = self._stores.get(session_key)
        if store is None:
            store = SqliteStore(self._conn, session_key, now_ns, self._seqs, self._dirty, self._trust_file)
            self._stores[session_key] = store
        return store

    def pragma(self, name: str) -> str:
        """Read a PRAGMA (tests check WAL mode and the synchronous level)."""
        return str(self._conn.execute(f"PRAGMA {name}").fetchone()[0])

    def close(self) -> None:
        """Commit, write every session's exact counters into the table, and close."""
        _commit(self._conn, self._seqs, self._dirty)
        self._conn.executemany(
            "UPDATE fix_sessions SET next_sender = ?, next_target = ? WHERE session_key = ?",
            [(store._sender, store._target, store._key) for store in self._stores.values()],
        )
        self._conn.commit()
        self._conn.close()
        self._seqs.close()
