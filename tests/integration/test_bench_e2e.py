"""The end-to-end benchmark (``make bench-e2e``): its driver's FIX is valid, its price → tick
decoding holds for the quotes the gateway really publishes, and a quick run through real
processes writes a complete, ordered report."""

import json
import subprocess
import sys

import pytest

from benchmarks import _e2e_wire as wire
from benchmarks.e2e import N_CLIENTS, QUICK, TIERS
from engine.fixedpoint import Grid
from fixserver.codec import FrameDecoder
from fixserver.marketdata import MarketDataHub
from fixserver.md_book import md_request
from fixserver.message import FixMessage
from tests.conftest import ROOT

LATENCY_KEYS = {"p50_us", "p90_us", "p99_us", "p999_us", "max_us", "samples"}


def test_driver_messages_are_valid_fix_and_carry_the_walk():
    out = wire.Outbound("LP03", "LAGG")
    encoder = wire.TickEncoder()
    data = b"".join(out.message(b"X", encoder.body(i, 1234), 1_700_000_000_000_000_000) for i in range(wire.N_INSTR))
    decoded = FrameDecoder().feed(data)
    assert [m.msg_type for m in decoded] == [b"X"] * wire.N_INSTR
    assert [m.seq_num for m in decoded] == [1, 2, 3, 4, 5]
    first = decoded[0]
    assert first.get_all(270)[:2] == [b"1.09234", b"1.09233"]  # best bid = base + k, then one tick lower
    assert first.get_all(270)[wire.LEVELS] == wire.price_text(0, 108_000 + 1234 + wire.SPREAD)
    # The same bytes split and read back by the driver's own reader.
    messages, rest = wire.split(data + data[:17])
    assert len(messages) == wire.N_INSTR and rest == data[:17]
    assert wire.top_bid(messages[3]) == (b"XAU/USD", b"2412.34")


def test_every_lp_holds_an_uncrossed_book_before_and_during_the_walk():
    for instr in range(wire.N_INSTR):
        ks = [wire.initial_k(lp, instr) for lp in range(wire.N_LPS)]
        assert sorted(ks) == list(range(-wire.N_LPS, 0))
        for k in range(0, 200):
            ks[wire.lp_of(instr, k)] = k
            assert max(ks) == k  # the tick is the new best bid
            assert min(ks) + wire.SPREAD > k  # the oldest LP's ask is still above it


@pytest.mark.parametrize("incremental", [False, True])
def test_top_bid_decodes_the_gateways_own_w_and_x(incremental):
    """Through the real MarketDataHub encoder: each tier's best bid maps back to the tick."""
    symbols = [i.symbol for i in wire.INSTRUMENTS]
    state = {"k": 10}

    def quote_of(tier, instr):
        markup = TIERS[tier][3]
        base = wire.INSTRUMENTS[instr].base + state["k"]
        bids = tuple((base - markup - lvl, 1000) for lvl in range(5))
        asks = tuple((base + wire.SPREAD - wire.N_LPS + markup + lvl, 1000) for lvl in range(5))
        return (bids, asks), state["k"]

    price_grids = [Grid.parse(i.tick_size) for i in wire.INSTRUMENTS]
    qty_grids = [Grid.parse(i.qty_step) for i in wire.INSTRUMENTS]
    hub = MarketDataHub(symbols, price_grids, qty_grids, [depth for _, _, depth, _, _ in TIERS], quote_of)
    for tier in range(len(TIERS)):
        request = FixMessage([(35, b"V"), *md_request(b"%d" % tier, [b"WTI"], incremental=incremental)])
        snapshots, reject = hub.on_request(f"c{tier}", tier, request, 0)
        assert reject is None
        assert _decoded(snapshots[0][1], tier) == ("WTI", 10)
    state["k"] = 11
    published = hub.publish(1)
    for tier in range(len(TIERS)):
        [(_, body)] = published[f"c{tier}"]
        assert body.msg_type == (b"X" if incremental else b"W")
        assert _decoded(body, tier) == ("WTI", 11)


def _decoded(body, tier):
    msg = wire.frame(b"35=%s\x0149=LAGG\x0156=C\x0134=2\x0152=20260101-00:00:00.000\x01%s" % (body.msg_type, body.body))
    top = wire.top_bid(msg)
    assert top is not None
    instr = [i.symbol.encode() for i in wire.INSTRUMENTS].index(top[0])
    k = wire.price_ticks(instr, top[1]) + TIERS[tier][3] - wire.INSTRUMENTS[instr].base
    return top[0].decode(), k


def test_quick_run_writes_a_complete_ordered_report(tmp_path):
    out = tmp_path / "e2e.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.e2e", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "e2e"
    assert {"workload", "machine", "results"} <= set(report)
    res = report["results"]
    for name in ("tick_to_quote", "order_round_trip", "floor_echo", "tick_to_quote_first_client", "floor_fanout",
                 "floor_fanout_first_client"):  # fmt: skip
        r = res[name]
        assert set(r) == LATENCY_KEYS, name
        assert r["samples"] > 0, name
        assert 0 < r["p50_us"] <= r["p90_us"] <= r["p99_us"] <= r["p999_us"] <= r["max_us"], name
    wl = report["workload"]
    assert wl["latency_ticks"] == wl["floor_ticks"] == wl["floor_fanout_ticks"] == QUICK.latency_ticks
    assert wl["floor_fanout_phase_s"] > 0
    assert res["floor_echo"]["samples"] <= QUICK.latency_ticks
    assert res["tick_to_quote"]["samples"] <= QUICK.latency_ticks * N_CLIENTS
    assert res["tick_to_quote_first_client"]["samples"] <= QUICK.latency_ticks
    assert res["order_round_trip"]["samples"] == QUICK.orders
    # The forwarder writes every tick to each of its 20 clients and conflates nothing, so every
    # client's receipt of every measured tick is a sample, but for the rare pair of one instrument's
    # ticks (from two LP connections) that a stalled forwarder reads in the other order.
    assert 0.99 * QUICK.latency_ticks * N_CLIENTS <= res["floor_fanout"]["samples"] <= QUICK.latency_ticks * N_CLIENTS
    assert 0.99 * QUICK.latency_ticks <= res["floor_fanout_first_client"]["samples"] <= QUICK.latency_ticks
    for key, over, under in [
        ("p99_ratio_tick_to_quote_over_floor", "tick_to_quote", "floor_echo"),
        ("p99_ratio_first_client_over_floor", "tick_to_quote_first_client", "floor_echo"),
        ("p99_ratio_floor_fanout_over_floor", "floor_fanout", "floor_echo"),
        ("p99_ratio_tick_to_quote_over_floor_fanout", "tick_to_quote", "floor_fanout"),
        ("p99_ratio_first_client_over_floor_fanout_first_client", "tick_to_quote_first_client",
         "floor_fanout_first_client"),
    ]:  # fmt: skip
        assert isinstance(res[key], float) and res[key] > 0, key
        assert res[key] == pytest.approx(res[over]["p99_us"] / res[under]["p99_us"], abs=0.01), key
    assert res["rss_mb"]["after_100k"] > 0 and res["rss_mb"]["after_1m"] > 0
    detail = res["detail"]
    assert detail["rss_read_at_ticks"] == [QUICK.warmup_ticks + QUICK.latency_ticks, QUICK.total_ticks]
    # The measurement itself is sound: every client ends on the last tick's price, every order
    # is answered by a fill, and nobody was logged out on the way.
    assert detail["clients_converged_after_latency_phase"] == N_CLIENTS
    assert detail["clients_converged_after_total"] == N_CLIENTS
    assert detail["floor_converged"]
    assert detail["floor_fanout_converged"] is True
    assert isinstance(detail["floor_fanout"], str) and detail["floor_fanout"]
    assert detail["order_first_reports_by_exec_type"] == {"F": QUICK.orders}
    assert detail["clients_logged_out_at_end"] == []
    for phase in ("cpu_cores_tick_to_quote_phase", "cpu_cores_floor_phase", "cpu_cores_floor_fanout_phase"):
        assert detail[phase]["server_cores"] > 0 and detail[phase]["driver_cores"] > 0
    # The gateway does more per tick than a process that only forwards bytes.
    assert (
        detail["cpu_cores_tick_to_quote_phase"]["server_cpu_us_per_tick"]
        > (detail["cpu_cores_floor_phase"]["server_cpu_us_per_tick"])
    )
    # The gateway's own stages, read from its metrics endpoint: one observation per batch of LP
    # updates for each, and no stage longer on average than the whole tick-to-quote.
    stages = detail["gateway_stages_tick_to_quote_phase"]
    assert set(stages) == {"wait", "engine", "orders", "publish", "fanout"}
    for stage, s in stages.items():
        assert 0 < s["batches"] <= QUICK.latency_ticks, stage
        assert 0 < s["mean_us"] < res["tick_to_quote"]["max_us"], stage
    assert stages["engine"]["batches"] == stages["publish"]["batches"] == stages["fanout"]["batches"]
