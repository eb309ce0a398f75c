"""The ``lagg`` console command: one entry point for every operator tool.

Subcommands register themselves here; each lives beside the package it drives and is imported
lazily so that ``lagg check-config`` does not pay for Numba or the event loop.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.config import Config, ConfigError, load_config


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
    from engine.journal import Journal

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    path = args.journal or cfg.server.journal_path
    if not Path(path).exists():
        print(f"no journal at {path}", file=sys.stderr)
        return 1
    grids = {i.symbol: (i.price_grid(), i.qty_grid()) for i in cfg.instruments}
    journal = Journal(path)
    try:
        if args.out == "-":
            count = journal.export_csv(sys.stdout, grids)
        else:
            with open(args.out, "w", newline="") as out:
                count = journal.export_csv(out, grids)
    finally:
        journal.close()
    print(f"exported {count} fills", file=sys.stderr)
    return 0


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
