"""The ``lagg`` console command: one entry point for every operator tool.

Subcommands register themselves here; each lives beside the package it drives and is imported
lazily so that ``lagg check-config`` does not pay for Numba or the event loop.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    import asyncio

    from feeds.sim_market import SimConfig


def _summary(cfg: Config) -> str:
    lines = [
        f"{len(cfg.instruments)} instruments: " + ", ".join(i.symbol for i in cfg.instruments),
        f"{len(cfg.lps)} LPs: " + ", ".join(f"{lp.name}({len(lp.instruments)} instr)" for lp in cfg.lps),
        f"{len(cfg.tiers)} tiers: " + ", ".join(f"{t.name}[{t.mode.value}]" for t in cfg.tiers),
        f"{len(cfg.clients)} clients: " + ", ".join(f"{c.sender_comp_id}->{c.tier}" for c in cfg.clients),
        f"acceptor {cfg.server.host}:{cfg.server.port} as {cfg.server.sender_comp_id}",
    ]
    return "\n".join(lines)


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        print(f"{args.file}: INVALID, {len(exc.errors)} error(s):", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        return 1
    print(f"{args.file}: OK")
    print(_summary(cfg))
    return 0


def _journal_export(args: argparse.Namespace) -> int:
    import sqlite3

    from engine.journal import Journal, NotAJournal

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    path = args.journal or cfg.server.journal_path
    if not Path(path).exists():
        print(f"no journal at {path}", file=sys.stderr)
        return 1
    if args.out != "-":
        # Opening --out truncates it: naming the journal (or the config) there would destroy it.
        for keep in (path, f"{path}-wal", f"{path}-shm", args.config):
            if Path(keep).exists() and Path(args.out).exists() and Path(args.out).samefile(keep):
                print(f"--out {args.out} is {keep}, which the export reads: choose another file", file=sys.stderr)
                return 1
    grids = {i.symbol: (i.price_grid(), i.qty_grid()) for i in cfg.instruments}
    try:
        journal = Journal.open_read_only(path)
    except NotAJournal as exc:
        print(f"cannot export: {exc}", file=sys.stderr)
        return 1
    try:
        if args.out == "-":
            count = journal.export_csv(sys.stdout, grids)
            sys.stdout.flush()
        else:
            with open(args.out, "w", newline="") as out:
                count = journal.export_csv(out, grids)
    except ValueError as exc:  # a symbol the config does not define: nothing was written
        print(f"cannot export {path} with {args.config}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`| head`): not an error of ours to report
        _silence_stdout()
        return 1
    except OSError as exc:
        print(f"cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    finally:
        journal.close()
    print(f"exported {count} fills", file=sys.stderr)
    return 0


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that the interpreter's last flush of it
    does not fail again (and print a traceback) on the way out."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _lp_ports(pairs: list[str] | None, cfg: Config) -> dict[str, int]:
    """``["LP1=9201", ...]`` -> ``{"LP1": 9201}`` (ports overriding the config's; 0 = any free one)."""
    ports = {}
    names = [lp.name for lp in cfg.lps]
    for pair in pairs or []:
        name, _, port = pair.partition("=")
        if not port.isdigit():
            raise SystemExit(f"--lp-port expects NAME=PORT, got {pair!r}")
        if name not in names:
            raise SystemExit(f"--lp-port {pair}: no LP named {name!r} in the config (LPs: {', '.join(names)})")
        if int(port) > 65535:
            raise SystemExit(f"--lp-port {pair}: a port is 0 to 65535")
        ports[name] = int(port)
    return ports


def _record_path_problem(path: Path) -> str | None:
    """Why ``--record`` cannot write a new recording at ``path``, or None.

    Checked before anything starts: the gateway opens the recording only once its ports and LP
    sessions are up. An existing file is refused, never overwritten: a recording is the record
    of what the engine saw, and a restart with the same command line must not erase the last one.
    """
    if path.exists() or path.is_symlink():
        return f"--record {path}: the file already exists (a recording is never overwritten: choose a new name)"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb"):
            pass
        path.unlink()
    except OSError as exc:
        return f"--record {path}: cannot write there: {exc.strerror or exc}"
    return None


def _run_service(args: argparse.Namespace, body: Callable[..., Awaitable[None]]) -> int:
    """Load ``--config`` and ``--sim``, log to stderr, and run ``body(cfg, sim, stop)`` on uvloop
    until it returns or SIGINT/SIGTERM sets ``stop``. Bad files are reported, not raised."""
    import asyncio
    import logging
    import signal

    import msgspec

    from feeds.sim_market import decode_sim_config
    from fixserver.transport import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_config(args.config)
        sim = decode_sim_config(Path(args.sim).read_text())
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except (OSError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        print(f"{args.sim}: {exc}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as exc:
        print(f"{args.sim}: not UTF-8 text (byte {exc.start})", file=sys.stderr)
        return 1

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await body(cfg, sim, stop)

    try:
        run(main)
    except OSError as exc:  # a port in use, a state directory it cannot write, ...
        print(f"lagg {args.command}: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:  # the config does not fit the state it would run on (the journal's grids)
        print(f"lagg {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    from fixserver.gateway import GatewayOptions, serve

    if args.record:
        problem = _record_path_problem(Path(args.record))
        if problem:
            print(problem, file=sys.stderr)
            return 1

    async def body(cfg: Config, sim: SimConfig, stop: asyncio.Event) -> None:
        options = GatewayOptions(
            port=args.port, metrics_port=args.metrics_port,
            state_dir=Path(args.state_dir) if args.state_dir else None, run_seconds=args.seconds,
            market=args.market, lp_ports=_lp_ports(args.lp_port, cfg),
            record_path=Path(args.record) if args.record else None, config_path=Path(args.config),
        )  # fmt: skip
        await serve(cfg, sim, options, stop)

    return _run_service(args, body)


def _client(args: argparse.Namespace) -> int:
    import os

    from fixserver.client import OrderSpec, run_client
    from fixserver.transport import run

    password = os.environ.get(args.password_env) if args.password_env else None
    orders = []
    for i, (side, qty, symbol) in enumerate(args.order or []):
        orders.append((2.0 + i, OrderSpec(symbol, side, qty)))
    app = run(
        lambda: run_client(args.host, args.port, args.sender, args.target, password, args.symbols, args.seconds, orders)
    )
    return 0 if app.logged_on.is_set() else 1


def _lp_sim(args: argparse.Namespace) -> int:
    import asyncio

    from feeds.lp_simulator import LpSimulatorFleet

    async def body(cfg: Config, sim: SimConfig, stop: asyncio.Event) -> None:
        fleet = LpSimulatorFleet(cfg, sim, ports=_lp_ports(args.lp_port, cfg) or None)
        task = asyncio.create_task(fleet.run(stop, args.seconds))
        await asyncio.sleep(0.2)
        print("simulated LPs: " + ", ".join(f"{n} on 127.0.0.1:{p}" for n, p in fleet.ports.items()), flush=True)
        await task

    return _run_service(args, body)


def _replay(args: argparse.Namespace) -> int:
    from feeds.recording import RecordingError
    from feeds.replay import replay

    try:
        result = replay(args.file, args.speed, "reference" if args.reference else "numba")
    except (OSError, RecordingError, ValueError) as exc:
        print(f"cannot replay {args.file}: {exc}", file=sys.stderr)
        return 1
    if result.torn_tail_bytes:
        print(f"{args.file}: the last {result.torn_tail_bytes} bytes are a torn frame (the recorder was stopped"
              " mid-write) and were not replayed", file=sys.stderr)  # fmt: skip
    print(f"replayed {result.batches} batches, {result.rows} rows in {result.seconds:.2f}s: "
          f"{result.quote_changes} quote changes")  # fmt: skip
    print(f"quote hash {result.quote_hash}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from engine.demo import run_demo

    return run_demo(args.config, args.sim, args.seconds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lagg", description="Liquidity aggregation engine with a FIX 4.4 API")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check-config", help="validate a config file and list every error")
    p.add_argument("file")
    p.set_defaults(func=_check_config)

    journal = sub.add_parser("journal", help="trade journal tools").add_subparsers(dest="journal_cmd", required=True)
    p = journal.add_parser("export", help="export every fill")
    p.add_argument("--csv", action="store_true", required=True, help="CSV output (the one format for now)")
    p.add_argument("--config", default="configs/example.toml", help="for the instruments' decimal grids")
    p.add_argument("--journal", help="journal file (default: server.journal_path from the config)")
    p.add_argument("--out", default="-", help="output file, - for stdout")
    p.set_defaults(func=_journal_export)

    p = sub.add_parser("serve", help="run the gateway: simulated LPs, engine, FIX acceptor, metrics")
    p.add_argument("--config", default="configs/example.toml")
    p.add_argument("--sim", default="configs/simulator.toml", help="simulated LPs (the market source)")
    p.add_argument("--port", type=int, help="FIX port (default: server.port; 0 = any free port)")
    p.add_argument("--metrics-port", type=int, help="metrics port (default: metrics.port; -1 = off)")
    p.add_argument("--state-dir", help="directory for the FIX store and the journal (default: config paths)")
    p.add_argument("--seconds", type=float, help="stop by itself after this long")
    p.add_argument("--market", choices=["sim", "fix"], default="sim",
                   help="sim: simulated LPs in process; fix: the configured LPs over FIX 4.4 (e.g. lagg lp-sim)")
    p.add_argument("--lp-port", action="append", metavar="NAME=PORT", help="override an LP's port (repeatable)")
    p.add_argument("--record", metavar="FILE", help="record every LP update batch for `lagg replay`")
    p.set_defaults(func=_serve)

    p = sub.add_parser("replay", help="replay a recording through the engine and print its quote hash")
    p.add_argument("file")
    p.add_argument("--speed", choices=["max", "recorded"], default="max")
    p.add_argument("--reference", action="store_true", help="use the plain-Python reference engine")
    p.set_defaults(func=_replay)

    p = sub.add_parser("client", help="a FIX client: log on, stream quotes, send orders")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9878)
    p.add_argument("--sender", default="DEMO", help="our SenderCompID (the gateway's client CompID)")
    p.add_argument("--target", default="LAGG", help="the gateway's CompID")
    p.add_argument("--password-env", default="LAGG_PASSWORD", help="environment variable holding the password")
    p.add_argument("--symbols", nargs="+", default=["EUR/USD", "GBP/USD", "USD/JPY", "XAU/USD", "WTI"])
    p.add_argument("--seconds", type=float, default=30.0, help="run this long, then log out")
    p.add_argument("--order", nargs=3, action="append", metavar=("SIDE", "QTY", "SYMBOL"),
                   help="market IOC order, e.g. --order buy 1000000 EUR/USD (repeatable)")
    p.set_defaults(func=_client)

    p = sub.add_parser("lp-sim", help="run the simulated LPs as FIX 4.4 acceptors on their configured ports")
    p.add_argument("--config", default="configs/example.toml")
    p.add_argument("--sim", default="configs/simulator.toml")
    p.add_argument("--seconds", type=float, help="stop by itself after this long")
    p.add_argument("--lp-port", action="append", metavar="NAME=PORT", help="override an LP's port (repeatable)")
    p.set_defaults(func=_lp_sim)

    p = sub.add_parser("demo", help="the whole system on its embedded default, with a demo client")
    p.add_argument("--config", default="configs/example.toml")
    p.add_argument("--sim", default="configs/simulator.toml")
    p.add_argument("--seconds", type=float, default=30.0, help="how long the demo client runs")
    p.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:  # Ctrl-C in a replay or an export: the user's choice, not a crash
        print(f"lagg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
