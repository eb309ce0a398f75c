"""A restart with a client away: a resting order restored from the journal that fills before its
client logs on again is reported to that client when it does."""

import asyncio

import msgspec
import pytest

from engine.config import ConfigError
from fixserver.client import ClientApp, OrderSpec, order_fields
from fixserver.gateway import GatewayOptions, serve
from fixserver.session import Credentials, Role, SessionConfig, SessionID
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Initiator
from tests.acceptance.test_gateway import PASSWORD, SIM, _config, _start


def _client(port: int, store: MemoryStoreFactory) -> tuple[ClientApp, Initiator]:
    app = ClientApp(["EUR/USD"])
    config = SessionConfig(
        SessionID("FIX.4.4", "C0", "LAGG"), Role.INITIATOR, heartbeat_s=5, credentials=Credentials("C0", PASSWORD),
    )  # fmt: skip
    return app, Initiator(app, config, store, "127.0.0.1", port, max_attempts=3)


async def _wait_for(predicate, timeout_s: float) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_a_restored_order_filled_while_its_client_is_away_is_reported_at_its_next_logon(tmp_path):
    cfg = _config(1)  # C0: institutional, internalised
    store = MemoryStoreFactory()  # the client's own store, kept across the gateway's restart
    stop, task, options = await _start(cfg, tmp_path)
    app, initiator = _client(options.bound["fix"], store)
    try:
        await initiator.start()
        await asyncio.wait_for(app.logged_on.wait(), 20)
        # A GTC buy 20 pips under a market standing at 1.08500: it rests.
        resting = OrderSpec("EUR/USD", "buy", "1000000", "limit", "gtc", "1.08300")
        initiator.handle.send(b"D", order_fields(resting, app))
        await _wait_for(lambda: any(r.get(150) == b"0" for r in app.reports), 10)
        cl_ord_id = app.reports[0].get(11)
        await initiator.stop()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    # The gateway comes back on a market 30 pips lower: the restored order fills at once, while
    # its client is still away.
    lower = [msgspec.structs.replace(i, start_mid="1.08200") if i.symbol == "EUR/USD" else i for i in SIM.instruments]
    sim = msgspec.structs.replace(SIM, instruments=lower)
    stop, task, options = await _start(cfg, tmp_path, sim)
    app, initiator = _client(options.bound["fix"], store)
    try:
        await _wait_for(lambda: list(options.gateway.desk.journal.fills()), 10)
        await initiator.start()
        await asyncio.wait_for(app.logged_on.wait(), 20)
        await _wait_for(lambda: any(r.get(39) == b"2" for r in app.reports), 10)
        fills = [r for r in app.reports if r.get(150) == b"F"]
        assert {f.get(11) for f in fills} == {cl_ord_id}
        assert (fills[-1].get(39), fills[-1].get(14)) == (b"2", b"1000000")
        assert all(float(f.get(31)) <= 1.08300 for f in fills)  # the limit or better
        journaled = list(options.gateway.desk.journal.fills())
        assert [f.get_str(17) for f in fills] == [j.exec_id for j in journaled]
    finally:
        await initiator.stop()
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_restart_with_another_tick_size_for_a_journaled_symbol_is_refused(tmp_path):
    # The first run journals EUR/USD in ticks of 0.00001; the next config says 0.0001, so a
    # resting order at 1.08510 would come back at 10.8510. The gateway does not start.
    cfg = _config(1)
    stop, task, _ = await _start(cfg, tmp_path)
    stop.set()
    await asyncio.wait_for(task, 30)
    eurusd = cfg.instrument("EUR/USD")
    changed = msgspec.structs.replace(
        cfg, instruments=[msgspec.structs.replace(eurusd, tick_size="0.0001", price_decimals=4) if i is eurusd else i
                          for i in cfg.instruments],
    )  # fmt: skip
    with pytest.raises(ConfigError, match="EUR/USD: the journal .* holds prices in ticks of 0.00001"):
        options = GatewayOptions(port=0, metrics_port=-1, state_dir=tmp_path, run_seconds=5)  # stops by itself
        await serve(changed, SIM, options, asyncio.Event())
