"""Message stores: the in-memory one and SQLite (WAL) agree, and SQLite survives a reopen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fixserver.store import (
    SEQ_RESERVE,
    MemoryStoreFactory,
    MessageStoreFactory,
    SqliteStoreFactory,
    StoredMessage,
    decode_body,
    encode_body,
)

T0 = 1_700_000_000_000_000_000


@pytest.fixture(params=["memory", "sqlite"])
def factory(request, tmp_path: Path) -> MessageStoreFactory:
    if request.param == "memory":
        return MemoryStoreFactory()
    return SqliteStoreFactory(tmp_path / "store.sqlite")


def test_new_store_starts_at_one(factory: MessageStoreFactory) -> None:
    store = factory.create("FIX.4.4:LAGG->DEMO", T0)
    assert (store.next_sender_seq, store.next_target_seq, store.creation_time_ns) == (1, 1, T0)


def test_sequences_messages_and_reset(factory: MessageStoreFactory) -> None:
    store = factory.create("FIX.4.4:LAGG->DEMO", T0)
    other = factory.create("FIX.4.4:LAGG->FUNDA", T0)
    store.set_next_sender_seq(5)
    store.set_next_target_seq(7)
    for seq in (2, 4, 3):
        store.save(StoredMessage(seq, b"8", b"20231114-22:13:20.000", ((37, b"E%d" % seq), (150, b"0"))))
    store.commit()
    assert [m.seq_num for m in store.get_range(1, 10)] == [2, 3, 4]
    assert [m.seq_num for m in store.get_range(3, 3)] == [3]
    assert store.get_range(3, 3)[0].body == ((37, b"E3"), (150, b"0"))
    assert other.get_range(1, 10) == [] and other.next_sender_seq == 1  # keys are separate
    store.reset(T0 + 1)
    assert (store.next_sender_seq, store.next_target_seq, store.creation_time_ns) == (1, 1, T0 + 1)
    assert store.get_range(1, 10) == []


def test_sqlite_survives_reopen_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "var" / "store.sqlite"
    first = SqliteStoreFactory(path)
    assert first.pragma("journal_mode") == "wal"
    assert first.pragma("synchronous") == "1"  # NORMAL
    store = first.create("k", T0)
    store.set_next_sender_seq(42)
    store.set_next_target_seq(17)
    store.save(StoredMessage(41, b"8", b"20231114-22:13:20.000", ((37, b"E41"),)))
    store.commit()
    uncommitted = first.create("k", T0)
    assert uncommitted is store
    # A second connection (another process after a crash) sees exactly what was committed.
    second = SqliteStoreFactory(path)
    again = second.create("k", T0 + 99)
    assert (again.next_sender_seq, again.next_target_seq, again.creation_time_ns) == (42, 17, T0)
    assert again.get_range(1, 100) == [StoredMessage(41, b"8", b"20231114-22:13:20.000", ((37, b"E41"),))]
    # Under FULL only the fsynced table is believed after a crash: the outbound sequence jumps to
    # the reserved ceiling (the peer's ResendRequest gets a gap fill), never back.
    full = SqliteStoreFactory(path, synchronous="FULL")
    assert full.pragma("synchronous") == "2"
    assert (full.create("k", T0).next_sender_seq, full.create("k", T0).next_target_seq) == (42 + SEQ_RESERVE, 17)


def test_uncommitted_writes_are_not_visible_to_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    first = SqliteStoreFactory(path)
    store = first.create("k", T0)
    store.set_next_sender_seq(9)  # not committed: the bytes were never written to a socket
    second = SqliteStoreFactory(path)
    assert second.create("k", T0).next_sender_seq == 1


def test_body_codec_round_trips() -> None:
    body = ((55, b"EUR/USD"), (44, b"-1.5"), (58, b"a=b"))
    assert decode_body(encode_body(body)) == body


def test_bad_synchronous_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteStoreFactory(tmp_path / "x.sqlite", synchronous="OFF")  # type: ignore[arg-type]


def test_outbound_counters_cost_sql_once_per_reserved_block(tmp_path: Path) -> None:
    factory = SqliteStoreFactory(tmp_path / "s.sqlite")
    stores = [factory.create(f"FIX.4.4:LAGG->C{n}", 0) for n in range(3)]
    statements: list[str] = []
    factory._conn.set_trace_callback(statements.append)
    for store in stores:
        store.set_next_sender_seq(2)
    stores[0].commit()  # the first numbers: each session reserves a block in SQL, in one commit
    assert sum(s.startswith("UPDATE") for s in statements) == 3
    assert sum("COMMIT" in s.upper() for s in statements) == 1
    statements.clear()
    for seq in range(3, 23):  # a publish cycle: 20 messages to each of three sessions
        for store in stores:
            store.set_next_sender_seq(seq)
        stores[0].commit()  # any store's commit writes every session's counter, into the mapped file
    assert statements == []
    # ... where another process (the next one, after a crash) finds them without a clean close.
    reopened = SqliteStoreFactory(tmp_path / "s.sqlite")
    assert [reopened.create(f"FIX.4.4:LAGG->C{n}", 0).next_sender_seq for n in range(3)] == [22, 22, 22]
    # The inbound counter moves only when the peer sends: an SQL row, in the next commit.
    stores[1].set_next_target_seq(7)
    stores[1].commit()
    assert sum(s.startswith("UPDATE") for s in statements) == 1
    assert SqliteStoreFactory(tmp_path / "s.sqlite").create("FIX.4.4:LAGG->C1", 0).next_target_seq == 7
    # Past the block, one more reservation.
    statements.clear()
    stores[2].set_next_sender_seq(2 + SEQ_RESERVE + 1)
    stores[2].commit()
    assert sum(s.startswith("UPDATE") for s in statements) == 1


def test_counters_survive_kill_9_without_a_close(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    script = (
        "import os, sys\n"
        "from fixserver.store import SqliteStoreFactory\n"
        f"store = SqliteStoreFactory({str(path)!r}).create('k', 0)\n"
        "store.set_next_sender_seq(1234); store.set_next_target_seq(55); store.commit()\n"
        "store.set_next_sender_seq(9999)\n"  # not committed: never sent
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], check=False)
    assert proc.returncode == -9
    store = SqliteStoreFactory(path).create("k", 0)
    assert (store.next_sender_seq, store.next_target_seq) == (1234, 55)


def test_a_lost_or_foreign_counters_file_never_makes_a_number_reused(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    first = SqliteStoreFactory(path)
    store = first.create("k", 0)
    store.set_next_sender_seq(30)
    store.save(StoredMessage(29, b"8", b"20231114-22:13:20.000", ((37, b"E29"),)))
    store.commit()
    store.set_next_sender_seq(40)  # market data after the last execution report: not saved
    store.commit()
    counters = Path(f"{path}-seqnums")
    saved = counters.read_bytes()
    counters.unlink()  # lost (no clean close): the table's ceiling is above every number used
    assert SqliteStoreFactory(path).create("k", 0).next_sender_seq == 30 + SEQ_RESERVE
    other = tmp_path / "other.sqlite"
    SqliteStoreFactory(other).create("k", 0)
    Path(f"{other}-seqnums").write_bytes(saved)  # another database's: not believed
    assert SqliteStoreFactory(other).create("k", 0).next_sender_seq == 1
    # A clean close writes the exact counters into the table: nothing to jump over.
    first.close()
    counters.unlink()
    assert SqliteStoreFactory(path).create("k", 0).next_sender_seq == 40


def test_a_crash_inside_a_reset_leaves_a_reset_to_redo_not_old_numbers_with_a_new_day(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = SqliteStoreFactory(path).create("k", T0)
    store.set_next_sender_seq(500)
    store.set_next_target_seq(300)
    store.commit()

    class Crash(Exception):
        pass

    class DiesAtCommit:  # the process dies at the reset's SQL commit
        def __init__(self, conn: object) -> None:
            self._conn = conn

        def __getattr__(self, name: str) -> object:
            return getattr(self._conn, name)

        def commit(self) -> None:
            raise Crash

    store._conn = DiesAtCommit(store._conn)  # type: ignore[assignment]
    with pytest.raises(Crash):
        store.reset(T0 + 1)
    assert store._seqs.read(store._slot) == 1  # the counters file went first
    again = SqliteStoreFactory(path).create("k", T0 + 2)
    # Still the old period (its creation time), so the schedule resets at the next logon.
    assert again.creation_time_ns == T0


def test_many_sessions_grow_the_counters_file(tmp_path: Path) -> None:
    factory = SqliteStoreFactory(tmp_path / "s.sqlite")
    stores = [factory.create(f"C{n}", 0) for n in range(600)]
    for n, store in enumerate(stores):
        store.set_next_sender_seq(n + 2)
    stores[0].commit()
    reopened = SqliteStoreFactory(tmp_path / "s.sqlite")
    assert [reopened.create(f"C{n}", 0).next_sender_seq for n in range(600)] == [n + 2 for n in range(600)]
    memory = SqliteStoreFactory(":memory:")
    stores = [memory.create(f"C{n}", 0) for n in range(600)]
    stores[599].set_next_sender_seq(5)
    stores[0].commit()
    assert memory.create("C599", 0).next_sender_seq == 5
