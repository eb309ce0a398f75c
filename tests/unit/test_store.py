"""Message stores: the in-memory one and SQLite (WAL) agree, and SQLite survives a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixserver.store import (
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
    second = SqliteStoreFactory(path, synchronous="FULL")
    assert second.pragma("synchronous") == "2"
    again = second.create("k", T0 + 99)
    assert (again.next_sender_seq, again.next_target_seq, again.creation_time_ns) == (42, 17, T0)
    assert again.get_range(1, 100) == [StoredMessage(41, b"8", b"20231114-22:13:20.000", ((37, b"E41"),))]


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


def test_counters_of_many_sessions_are_written_once_at_the_commit(tmp_path: Path) -> None:
    factory = SqliteStoreFactory(tmp_path / "s.sqlite")
    stores = [factory.create(f"FIX.4.4:LAGG->C{n}", 0) for n in range(3)]
    statements: list[str] = []
    factory._conn.set_trace_callback(statements.append)
    for seq in range(2, 22):  # a publish cycle: 20 messages to each of three sessions
        for store in stores:
            store.set_next_sender_seq(seq)
    stores[1].set_next_target_seq(7)
    assert statements == []  # nothing written per message
    stores[0].commit()  # any store's commit writes every session's counters
    assert sum(s.startswith("UPDATE") for s in statements) == 3
    assert sum("COMMIT" in s.upper() for s in statements) == 1
    stores[2].commit()  # nothing left to write
    assert sum("COMMIT" in s.upper() for s in statements) == 1
    factory.close()
    reopened = SqliteStoreFactory(tmp_path / "s.sqlite")
    again = [reopened.create(f"FIX.4.4:LAGG->C{n}", 0) for n in range(3)]
    assert [s.next_sender_seq for s in again] == [21, 21, 21]
    assert again[1].next_target_seq == 7
