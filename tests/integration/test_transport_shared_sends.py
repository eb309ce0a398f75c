"""Market data to many sessions in one loop step: one store commit for all of them, then every
session's bytes, in order. (A commit per session and message cost ~26 µs each: half a millisecond
per price update with 20 clients, most of the gateway's time per tick. Market data saves no
message, so that commit writes only the mapped sequence counters: no SQL at all.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fixserver.codec import prepare_body
from fixserver.session import SharedBody
from fixserver.store import SqliteStoreFactory
from tests.integration.test_transport_loopback import Recorder, make_acceptor, make_initiator, on_uvloop, until


def test_shared_sends_of_one_loop_step_share_one_commit_and_arrive_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        factory = SqliteStoreFactory(tmp_path / "store.sqlite")
        acceptor = make_acceptor(Recorder(), factory)
        await acceptor.start()
        clients = {name: Recorder() for name in ("DEMO", "FUNDA")}
        initiators = [make_initiator(app, acceptor.port, comp_id=name, max_attempts=1) for name, app in clients.items()]
        for initiator in initiators:
            await initiator.start()
            await asyncio.wait_for(initiator.handle.wait_logged_on(), 5)
        handles = [acceptor.handle(name) for name in clients]
        before = [h.session.next_sender_seq for h in handles]
        statements: list[str] = []
        factory._conn.set_trace_callback(statements.append)

        for n in range(3):  # a publish cycle: each session in turn, outside any socket read
            body = prepare_body(b"W", [(55, b"EUR/USD"), (268, b"1"), (269, b"0"), (270, b"1.0850%d" % n)])
            for handle in handles:
                handle.send_shared(SharedBody(((262, b"md-1"),), body))
        assert all(h.buffered_bytes > 0 for h in handles)  # nothing written inside the step
        assert statements == [s for s in statements if "COMMIT" not in s.upper()]

        await until(lambda: all(len(app.app) == 3 for app in clients.values()))
        assert statements == []  # counters only: the mapped file, no SQL
        for app in clients.values():
            assert [m.get(270) for m in app.app] == [b"1.08500", b"1.08501", b"1.08502"]
            assert [m.seq_num for m in app.app] == [before[0], before[0] + 1, before[0] + 2]
        # Committed before the bytes left: a restarted acceptor continues after them.
        other = SqliteStoreFactory(tmp_path / "store.sqlite")
        again = [other.create(h.session_id.key, 0).next_sender_seq for h in handles]
        assert again == [h.session.next_sender_seq for h in handles]
        assert [h.session.next_sender_seq for h in handles] == [b + 3 for b in before]
        for initiator in initiators:
            await initiator.stop()
        await acceptor.stop()

    on_uvloop(main())
