"""FIX codec benchmark: encode and decode of the hot messages, ours against two baselines.

Run with ``make bench-fix`` (``python -m benchmarks.fix_codec``). Writes
``benchmarks/results/fix_codec.json`` and prints a table.

Messages: W with 2 and with 10 levels per side (each entry 269/270/271/278), an ExecutionReport
(8) for a fill, a limit NewOrderSingle (D). Every message in a run is distinct (sequence number,
prices, ids vary), pre-generated before the clock starts.

Implementations, measured in the same run on the same messages:

* ``fast``: ours. Encode: the native (C, :mod:`fixserver._wire`) W encoder for the book's shape
  (:func:`fixserver.codec.snapshot_encoder`, obtained once per case as a subscription keeps its
  own), :class:`MessageTemplate` for 8 and D, each with the session header (49, 56, 34, 52)
  formatted per message in Python from the sequence number and sending time; symbol, MDReqID and
  every level are passed, checked and encoded per message. A second figure, ``fanout``, is the
  per-subscriber cost when the W body is shared (:func:`md_snapshot_body` once,
  :func:`encode_prepared` per session). A third, ``python_reference``, is the same encode with the
  generated pure-Python encoders the native ones replaced (kept as their test reference). Decode:
  :class:`fixserver.batchdecode.BatchDecoder` (Numba kernel, frames + checksum + entries as int64
  arrays at scale 5/0); for 8 and D :meth:`DecodedBatch.extract` returns the application's fields
  (first occurrence of each tag, found in the kernel's field index) as bytes.
* ``naive``: plain Python. Encode: ``"tag=value"`` pieces joined on SOH, BodyLength by ``len``,
  CheckSum by ``sum``. Decode: split the buffer on SOH, partition each field on ``=``, a new
  message at tag 8, a dict per message; W entries as tuples. It does not validate BodyLength or
  CheckSum (ours does: the comparison flatters naive).
* ``simplefix``: ``FixMessage.append_pair`` + ``encode()``; ``FixParser.append_buffer`` +
  ``get_message()`` and a walk over ``pairs``.

"Decode" is bytes in → the fields the application reads: for W every entry's type, price, size
and id; for 8: 37, 11, 150, 39, 55, 54, 32, 31, 151, 14; for D: 11, 55, 54, 38, 40, 44, 59, 60.

Method: decode is timed per read buffer of ``BUFFER_MESSAGES`` messages (the way the transport
hands bytes over), encode per run of ``ENCODE_BATCH`` messages; each timed sample is divided by
its message count, and p50/p99/mean are numpy percentiles of those per-message samples;
``per_s`` = 1e6 / mean. Implementations are interleaved in ``ROUNDS`` rounds, so load from other
processes falls on all of them alike; ratios are of medians (means on a shared machine measure
preemption as much as code). ``cpu_mean_us`` is the CPU time the process actually got. The
garbage collector is off while timing (for every implementation). Each (implementation,
operation) runs for about ``SECONDS_PER_CASE`` seconds in total after a warm-up, so the whole
benchmark stays under a minute. The Numba kernel is compiled (or loaded from cache) first.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import simplefix

from benchmarks.machine import machine as _machine
from fixserver.batchdecode import E_FLAGS, E_ID_END, E_ID_START, E_PRICE, E_SIZE, E_TYPE, BatchDecoder
from fixserver.codec import (
    MessageTemplate,
    encode,
    encode_prepared,
    md_snapshot_body,
    reference_snapshot_encoder,
    snapshot_encoder,
)

RESULTS = Path(__file__).resolve().parent / "results" / "fix_codec.json"
BUFFER_MESSAGES = 128
ENCODE_BATCH = 64
SECONDS_PER_CASE = 0.6
ROUNDS = 3
MIN_SAMPLES = 15
SEED = 20260105
SOH = b"\x01"
TS = b"20260105-10:00:00.123"

MESSAGES = ("W2", "W10", "8", "D")
ER_TAGS = (37, 11, 17, 150, 39, 55, 54, 38, 40, 44, 59, 32, 31, 151, 14, 6, 60)
ER_READ = (37, 11, 150, 39, 55, 54, 32, 31, 151, 14)
D_TAGS = (11, 55, 54, 60, 38, 40, 44, 59)
D_READ = (11, 55, 54, 38, 40, 44, 59, 60)


# --------------------------------------------------------------------------------------------
# Workload: the logical content of each message, then the wire bytes (identical for all codecs)


def _levels(rng: np.random.Generator, n: int, mid: int) -> tuple[list[tuple[bytes, bytes, bytes]], ...]:
    bids = [(b"1.%05d" % (mid - 1 - i), b"%d" % (1_000_000 * (1 + rng.integers(0, 5))), b"b%d" % i) for i in range(n)]
    asks = [(b"1.%05d" % (mid + 1 + i), b"%d" % (1_000_000 * (1 + rng.integers(0, 5))), b"a%d" % i) for i in range(n)]
    return bids, asks


def workload(count: int) -> dict[str, list[dict[str, Any]]]:
    """``count`` distinct instances of each message, as (header fields, body fields) and parts."""
    rng = np.random.default_rng(SEED)
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in MESSAGES}
    for i in range(count):
        seq = 1000 + i
        header = [(49, b"LAGG"), (56, b"CLIENT01"), (34, b"%d" % seq), (52, TS)]
        mid = 8500 + int(rng.integers(-50, 50))
        for name, depth in (("W2", 2), ("W10", 10)):
            bids, asks = _levels(rng, depth, mid)
            body = [(262, b"md-1"), (55, b"EUR/USD"), (268, b"%d" % (2 * depth))]
            for etype, side in ((b"0", bids), (b"1", asks)):
                for px, sz, eid in side:
                    body += [(269, etype), (270, px), (271, sz), (278, eid)]
            prepared = md_snapshot_body(b"EUR/USD", bids, asks, b"md-1")
            out[name].append(
                {"seq": seq, "header": header, "body": body, "bids": bids, "asks": asks, "prepared": prepared}
            )
        er: tuple[bytes, ...] = (b"O%d" % i, b"C%d" % i, b"E%d" % i, b"F", b"2", b"EUR/USD", b"1", b"1000000", b"2")
        er += (b"1.%05d" % mid, b"3", b"1000000", b"1.%05d" % mid, b"0", b"1000000", b"1.%05d" % mid, TS)
        out["8"].append({"seq": seq, "header": header, "body": list(zip(ER_TAGS, er, strict=True)), "values": er})
        d = (b"C%d" % i, b"EUR/USD", b"1", TS, b"1000000", b"2", b"1.%05d" % mid, b"1")
        out["D"].append({"seq": seq, "header": header, "body": list(zip(D_TAGS, d, strict=True)), "values": d})
    return out


# --------------------------------------------------------------------------------------------
# fast (ours)

_HEADER = b"49=LAGG\x0156=CLIENT01\x0134=%d\x0152=%s\x01"
_ER = MessageTemplate(b"8", ER_TAGS)
_D = MessageTemplate(b"D", D_TAGS)


def _fast_encode_w(depth: int) -> Callable[[dict[str, Any]], bytes]:
    encode_w = snapshot_encoder(depth, depth, with_ids=True, with_req=True)  # a subscription keeps its own

    def fast_encode_w(msg: dict[str, Any]) -> bytes:
        return encode_w(_HEADER % (msg["seq"], TS), b"EUR/USD", msg["bids"], msg["asks"], b"md-1")

    return fast_encode_w


fast_encode_w2 = _fast_encode_w(2)
fast_encode_w10 = _fast_encode_w(10)


def _reference_encode_w(depth: int) -> Callable[[dict[str, Any]], bytes]:
    encode_w = reference_snapshot_encoder(depth, depth, with_ids=True, with_req=True)

    def reference_encode_w(msg: dict[str, Any]) -> bytes:
        return encode_w(_HEADER % (msg["seq"], TS), b"EUR/USD", msg["bids"], msg["asks"], b"md-1")

    return reference_encode_w


def reference_encode_8(msg: dict[str, Any]) -> bytes:
    return _ER.reference_encode(_HEADER % (msg["seq"], TS), msg["values"])


def reference_encode_d(msg: dict[str, Any]) -> bytes:
    return _D.reference_encode(_HEADER % (msg["seq"], TS), msg["values"])


REFERENCE_ENCODERS = {"W2": _reference_encode_w(2), "W10": _reference_encode_w(10), "8": reference_encode_8,
                      "D": reference_encode_d}  # fmt: skip


def fast_encode_w_fanout(msg: dict[str, Any]) -> bytes:
    """Per-session cost when the body is shared: only the header is formatted and summed."""
    return encode_prepared(_HEADER % (msg["seq"], TS), msg["prepared"])


def fast_encode_8(msg: dict[str, Any]) -> bytes:
    return _ER.encode(_HEADER % (msg["seq"], TS), msg["values"])


def fast_encode_d(msg: dict[str, Any]) -> bytes:
    return _D.encode(_HEADER % (msg["seq"], TS), msg["values"])


_FAST_DECODER = BatchDecoder(price_scale=5, size_scale=0)


def fast_decode_w(buf: bytes) -> Any:
    e = _FAST_DECODER.feed(buf).entries
    # the application's columns: type, price (int ticks), size (int), id span, flags
    return e[:, (E_TYPE, E_PRICE, E_SIZE, E_ID_START, E_ID_END, E_FLAGS)]


def _fast_decode_fields(read: tuple[int, ...]) -> Callable[[bytes], list[list[bytes | None]]]:
    def decode(buf: bytes) -> list[list[bytes | None]]:
        return _FAST_DECODER.feed(buf).extract(read)

    return decode


# --------------------------------------------------------------------------------------------
# naive (plain Python)


def naive_encode(msg_type: bytes, header: list[tuple[int, bytes]], body: list[tuple[int, bytes]]) -> bytes:
    fields = [b"35=" + msg_type] + [b"%d=%s" % (t, v) for t, v in header] + [b"%d=%s" % (t, v) for t, v in body]
    payload = SOH.join(fields) + SOH
    head = b"8=FIX.4.4\x019=" + str(len(payload)).encode() + SOH
    msg = head + payload
    return msg + b"10=" + b"%03d" % (sum(msg) % 256) + SOH


def naive_messages(buf: bytes) -> list[list[tuple[bytes, bytes]]]:
    out: list[list[tuple[bytes, bytes]]] = []
    current: list[tuple[bytes, bytes]] = []
    for field in buf.split(SOH):
        if not field:
            continue
        tag, _, value = field.partition(b"=")
        if tag == b"8":
            current = []
            out.append(current)
        current.append((tag, value))
    return out


def _w_entries(messages: Iterable[Iterable[tuple[bytes, bytes]]]) -> list[tuple[bytes, bytes, bytes, bytes]]:
    """(type, price, size, id) of every W entry, from each message's (tag, value) byte pairs:
    the same walk for the naive and simplefix baselines, so they differ only in parsing."""
    entries = []
    for fields in messages:
        entry: list[bytes] | None = None
        for tag, value in fields:
            if tag == b"269":
                entry = [value, b"", b"", b""]
                entries.append(entry)
            elif entry is not None:
                if tag == b"270":
                    entry[1] = value
                elif tag == b"271":
                    entry[2] = value
                elif tag == b"278":
                    entry[3] = value
    return [tuple(e) for e in entries]  # type: ignore[misc]


def naive_decode_w(buf: bytes) -> list[tuple[bytes, bytes, bytes, bytes]]:
    return _w_entries(naive_messages(buf))


def _naive_decode_fields(read: tuple[int, ...]) -> Callable[[bytes], list[list[bytes | None]]]:
    keys = [str(t).encode() for t in read]

    def decode(buf: bytes) -> list[list[bytes | None]]:
        return [[d.get(k) for k in keys] for d in (dict(f) for f in naive_messages(buf))]

    return decode


# --------------------------------------------------------------------------------------------
# simplefix


def simplefix_encode(msg_type: bytes, header: list[tuple[int, bytes]], body: list[tuple[int, bytes]]) -> bytes:
    m = simplefix.FixMessage()
    m.append_pair(8, b"FIX.4.4")
    m.append_pair(35, msg_type)
    for t, v in header:
        m.append_pair(t, v)
    for t, v in body:
        m.append_pair(t, v)
    return m.encode()


def _simplefix_messages(buf: bytes) -> list[simplefix.FixMessage]:
    parser = simplefix.FixParser()
    parser.append_buffer(buf)
    out = []
    while (msg := parser.get_message()) is not None:
        out.append(msg)
    return out


def simplefix_decode_w(buf: bytes) -> list[tuple[bytes, bytes, bytes, bytes]]:
    return _w_entries(msg.pairs for msg in _simplefix_messages(buf))


def _simplefix_decode_fields(read: tuple[int, ...]) -> Callable[[bytes], list[list[bytes | None]]]:
    def decode(buf: bytes) -> list[list[bytes | None]]:
        return [[m.get(t) for t in read] for m in _simplefix_messages(buf)]

    return decode


# --------------------------------------------------------------------------------------------
# Measurement


class Case:
    """One (implementation, operation): its timed samples, gathered over several rounds."""

    def __init__(self, run: Callable[[int], None], per_sample: int, n_inputs: int) -> None:
        self.run = run
        self.per_sample = per_sample
        self.n_inputs = n_inputs
        self.samples: list[float] = []
        self.cpu_s = 0.0
        self.i = 0
        for i in range(min(3, n_inputs)):
            run(i)  # warm-up

    def measure(self, seconds: float) -> None:
        """Time ``run`` (one sample = ``per_sample`` messages) for about ``seconds``."""
        run, per_sample, samples = self.run, self.per_sample, self.samples
        gc.collect()
        gc.disable()
        try:
            deadline = time.perf_counter() + seconds
            cpu0 = time.process_time()
            taken = 0
            while taken < MIN_SAMPLES // ROUNDS + 1 or time.perf_counter() < deadline:
                t0 = time.perf_counter_ns()
                run(self.i % self.n_inputs)
                samples.append((time.perf_counter_ns() - t0) / per_sample / 1000.0)
                self.i += 1
                taken += 1
            self.cpu_s += time.process_time() - cpu0
        finally:
            gc.enable()

    def stats(self) -> dict[str, float]:
        arr = np.asarray(self.samples)
        mean = float(arr.mean())
        return {
            "p50_us": round(float(np.percentile(arr, 50)), 4),
            "p99_us": round(float(np.percentile(arr, 99)), 4),
            "mean_us": round(mean, 4),
            "per_s": round(1e6 / mean),
            # CPU time this process got per message (wall time includes time given to others)
            "cpu_mean_us": round(self.cpu_s / (len(self.samples) * self.per_sample) * 1e6, 4),
            "samples": len(self.samples),
        }


def machine() -> dict[str, Any]:
    """The shared machine description plus the reference codec's version."""
    return {**_machine(), "simplefix": importlib.metadata.version("simplefix")}


def _full_encoder(
    encoder: Callable[[bytes, list[tuple[int, bytes]], list[tuple[int, bytes]]], bytes], msg_type: bytes
) -> Callable[[dict[str, Any]], bytes]:
    def run(msg: dict[str, Any]) -> bytes:
        return encoder(msg_type, msg["header"], msg["body"])

    return run


def run_benchmark() -> dict[str, Any]:
    t_start = time.perf_counter()
    n_buffers = 8
    data = workload(BUFFER_MESSAGES * n_buffers)
    wire = {name: [encode(b"W" if name.startswith("W") else name.encode(), m["header"], m["body"]) for m in msgs]
            for name, msgs in data.items()}  # fmt: skip
    buffers = {
        name: [b"".join(raws[k * BUFFER_MESSAGES : (k + 1) * BUFFER_MESSAGES]) for k in range(n_buffers)]
        for name, raws in wire.items()
    }
    msg_type = {"W2": b"W", "W10": b"W", "8": b"8", "D": b"D"}

    # Every encoder produces the bytes the reference encoder does, or the benchmark is void.
    for name, msgs in data.items():
        for k in (0, 1):
            m = msgs[k]
            want = wire[name][k]
            fast = {"W2": fast_encode_w2, "W10": fast_encode_w10, "8": fast_encode_8, "D": fast_encode_d}[name](m)
            assert fast == want, name
            assert REFERENCE_ENCODERS[name](m) == want, name
            assert naive_encode(msg_type[name], m["header"], m["body"]) == want, name
            assert simplefix_encode(msg_type[name], m["header"], m["body"]) == want, name
            if name.startswith("W"):
                assert fast_encode_w_fanout(m) == want, name
    # ... and every decoder reads the same fields.
    for name in ("W2", "W10"):
        buf = buffers[name][0]
        rows = fast_decode_w(buf).tolist()
        fast_view = [(bytes([t]), b"1.%05d" % (p % 100000), b"%d" % s, buf[a:b]) for t, p, s, a, b, _ in rows]
        assert fast_view == naive_decode_w(buf) == simplefix_decode_w(buf), name
    decoders_fields = {"8": ER_READ, "D": D_READ}
    for name, read in decoders_fields.items():
        buf = buffers[name][0]
        assert _fast_decode_fields(read)(buf) == _naive_decode_fields(read)(buf) == _simplefix_decode_fields(read)(buf)

    encoders: dict[str, dict[str, Callable[[dict[str, Any]], bytes]]] = {
        "fast": {"W2": fast_encode_w2, "W10": fast_encode_w10, "8": fast_encode_8, "D": fast_encode_d},
        "naive": {n: _full_encoder(naive_encode, msg_type[n]) for n in MESSAGES},
        "simplefix": {n: _full_encoder(simplefix_encode, msg_type[n]) for n in MESSAGES},
    }
    decoders: dict[str, dict[str, Callable[[bytes], Any]]] = {
        "fast": {"W2": fast_decode_w, "W10": fast_decode_w, "8": _fast_decode_fields(ER_READ),
                 "D": _fast_decode_fields(D_READ)},
        "naive": {"W2": naive_decode_w, "W10": naive_decode_w, "8": _naive_decode_fields(ER_READ),
                  "D": _naive_decode_fields(D_READ)},
        "simplefix": {"W2": simplefix_decode_w, "W10": simplefix_decode_w, "8": _simplefix_decode_fields(ER_READ),
                      "D": _simplefix_decode_fields(D_READ)},
    }  # fmt: skip

    def batches_of(name: str) -> list[list[dict[str, Any]]]:
        msgs = data[name]
        return [msgs[k : k + ENCODE_BATCH] for k in range(0, len(msgs), ENCODE_BATCH)]

    def decode_case(d: Callable[[bytes], Any], bufs: list[bytes]) -> Case:
        def run(i: int) -> None:
            d(bufs[i])

        return Case(run, BUFFER_MESSAGES, len(bufs))

    def encode_case(e: Callable[[dict[str, Any]], bytes], batches: list[list[dict[str, Any]]]) -> Case:
        def run(i: int) -> None:
            for m in batches[i]:
                e(m)

        return Case(run, ENCODE_BATCH, len(batches))

    cases: dict[str, dict[str, Case]] = {impl: {} for impl in encoders}
    for name in MESSAGES:
        for impl in encoders:
            cases[impl][f"decode_{name}"] = decode_case(decoders[impl][name], buffers[name])
            cases[impl][f"encode_{name}"] = encode_case(encoders[impl][name], batches_of(name))
    # Fan-out: the W body is encoded once per publish and shared; per subscriber only the
    # header is formatted and summed. Baseline: a full encode by simplefix / naive (they have
    # no shared-body path).
    fan_cases = {f"encode_{n}_per_session": encode_case(fast_encode_w_fanout, batches_of(n)) for n in ("W2", "W10")}
    # The pure-Python encoders the native ones replaced, on the same messages (what C buys).
    ref_cases = {f"encode_{n}": encode_case(REFERENCE_ENCODERS[n], batches_of(n)) for n in MESSAGES}
    # Rounds interleave the implementations, so a burst of load from other processes lands on
    # all of them alike instead of on whichever happened to run at that moment.
    for _ in range(ROUNDS):
        for op in cases["fast"]:
            for impl in encoders:
                cases[impl][op].measure(SECONDS_PER_CASE / ROUNDS)
        for case in (*fan_cases.values(), *ref_cases.values()):
            case.measure(SECONDS_PER_CASE / ROUNDS)
    results = {impl: {op: c.stats() for op, c in ops.items()} for impl, ops in cases.items()}
    fanout: dict[str, Any] = {}
    for op, case in fan_cases.items():
        stats: dict[str, Any] = dict(case.stats())
        full = op.removesuffix("_per_session")
        for base in ("naive", "simplefix"):
            stats[f"vs_{base}_full_encode_p50"] = round(results[base][full]["p50_us"] / stats["p50_us"], 1)
        fanout[op] = stats
    python_reference: dict[str, Any] = {}
    for op, case in ref_cases.items():
        stats = dict(case.stats())
        stats["native_speedup_p50"] = round(stats["p50_us"] / results["fast"][op]["p50_us"], 1)
        python_reference[op] = stats
    # Ratios of medians: the mean of a run on a shared machine is dominated by preemptions.
    ratios = {
        f"fast_vs_{base}_p50": {
            op: round(results[base][op]["p50_us"] / results["fast"][op]["p50_us"], 1) for op in results["fast"]
        }
        for base in ("naive", "simplefix")
    }
    ratios.update(
        {
            f"fast_vs_{base}_mean": {
                op: round(results[base][op]["mean_us"] / results["fast"][op]["mean_us"], 1) for op in results["fast"]
            }
            for base in ("naive", "simplefix")
        }
    )
    w2 = results["fast"]
    targets = {
        "decode_W2 >= 1,000,000 msgs/s (1e6 / p50)": 1e6 / w2["decode_W2"]["p50_us"] >= 1_000_000,
        "decode_W2 >= 3x naive (p50)": ratios["fast_vs_naive_p50"]["decode_W2"] >= 3,
        "encode_W2 <= 1.5 us (p50)": w2["encode_W2"]["p50_us"] <= 1.5,
        "encode_W2 >= 20x simplefix (p50)": ratios["fast_vs_simplefix_p50"]["encode_W2"] >= 20,
    }
    return {
        "benchmark": "fix_codec",
        "workload": {
            "messages": {
                "W2": f"W, 2 levels per side (269/270/271/278 each), {len(wire['W2'][0])} bytes",
                "W10": f"W, 10 levels per side, {len(wire['W10'][0])} bytes",
                "8": f"ExecutionReport fill, 17 body fields, {len(wire['8'][0])} bytes",
                "D": f"NewOrderSingle limit, 8 body fields, {len(wire['D'][0])} bytes",
            },
            "decode": f"per read buffer of {BUFFER_MESSAGES} distinct messages, time / {BUFFER_MESSAGES}",
            "decode_reads": {"W": "every entry's type, price, size, id", "8": list(ER_READ), "D": list(D_READ)},
            "encode": f"runs of {ENCODE_BATCH} distinct messages incl. the per-message header, time / {ENCODE_BATCH}",
            "seconds_per_case": SECONDS_PER_CASE,
            "rounds": ROUNDS,
            "gc": "disabled while timing, for every implementation",
            "naive_validates_checksum": False,
            "fast_validates_checksum": True,
        },
        "machine": machine(),
        "results": results,
        "ratios": ratios,
        "fanout": fanout,
        "python_reference": python_reference,
        "targets_met": targets,
        "runtime_s": round(time.perf_counter() - t_start, 1),
    }


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    res = report["results"]
    table = Table(title="FIX codec: µs per message (wall clock; 'cpu' = CPU time this process got), ratios of p50")
    for col in ("op", "fast p50", "fast p99", "fast mean", "fast cpu", "naive p50", "simplefix p50",
                "vs naive", "vs simplefix"):  # fmt: skip
        table.add_column(col, justify="right" if col != "op" else "left")
    for op in res["fast"]:
        f = res["fast"][op]
        table.add_row(
            op,
            f"{f['p50_us']:.3f}",
            f"{f['p99_us']:.3f}",
            f"{f['mean_us']:.3f}",
            f"{f['cpu_mean_us']:.3f}",
            f"{res['naive'][op]['p50_us']:.3f}",
            f"{res['simplefix'][op]['p50_us']:.2f}",
            f"{report['ratios']['fast_vs_naive_p50'][op]:.1f}x",
            f"{report['ratios']['fast_vs_simplefix_p50'][op]:.1f}x",
        )
    console = Console(width=140)
    console.print(table)
    for op, f in report["fanout"].items():
        console.print(
            f"  fan-out {op}: p50 {f['p50_us']:.3f} µs (p99 {f['p99_us']:.3f}, mean {f['mean_us']:.3f}), "
            f"{f['vs_simplefix_full_encode_p50']:.1f}x simplefix's full encode, "
            f"{f['vs_naive_full_encode_p50']:.1f}x naive's"
        )
    for op, f in report["python_reference"].items():
        console.print(
            f"  pure-Python reference {op}: p50 {f['p50_us']:.3f} µs; native is {f['native_speedup_p50']:.1f}x faster"
        )
    for target, met in report["targets_met"].items():
        console.print(f"  target {target}: {'met' if met else 'MISSED'}")
    m = report["machine"]
    console.print(
        f"  fast decode_W2: {1e6 / res['fast']['decode_W2']['p50_us']:,.0f} msgs/s at p50, "
        f"{res['fast']['decode_W2']['per_s']:,} msgs/s at the mean"
    )
    console.print(
        f"  {m['cpu']}, {m['cores']} cores, load {m['load_average_at_start']} at start, "
        f"Python {m['python']}; {report['runtime_s']} s; {report['workload']['decode']}"
    )


def main() -> int:
    report = run_benchmark()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
