"""Replay a recording through the engine tick for tick, and hash the tier quotes it produces.

The gateway can record every batch it applies (``lagg serve --record FILE``): the rows and the
``now_ns`` they were applied at, including empty batches, because each loop turn also runs
``expire(now_ns)``. Replaying applies the same batches at the same ``now_ns`` and calls
``expire`` the same way, so the engine publishes the same quotes; :class:`QuoteHasher` folds
every published change (tier, instrument and its levels) into one digest that the live
run and any replay print, so two runs or two versions can be compared.

Inventory-skew changes made by fills (``set_skew``) travel with the next batch and are set
before it is applied, as they were live. So do the expires the gateway runs between loop turns
(an order or a market-data request read then takes stale prices out first): each is replayed
among those skews, at its own time, before the batch. They are not hashed: the live run hashes
only what each loop turn published, and so does the replay.
"""

from __future__ import annotations

import hashlib
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from engine.batch import UpdateBatch
from engine.config import Config
from feeds.recording import FORMAT_VERSION, Recorder, RecordingError, RecordingHeader, read_recording

__all__ = ["QuoteHasher", "ReplayResult", "recorder_for", "replay"]

_KEY = struct.Struct("<iiii")  # tier, instrument, bid levels, ask levels


class QuoteHasher:
    """Digest of every published change of every tier quote, in publication order.

    What is folded is each quote's levels when they differ from the levels last folded for it,
    never the engine's version counter: the gateway also reprices between loop turns (an order
    or a market-data request expires stale prices first, which reprices whatever a fill's skew
    left dirty). Such a reprice is recorded and replayed, but not hashed by either run: clients
    see only what the turn then publishes, and a reprice that changes a quote and the next turn
    changes back publishes nothing new.
    """

    def __init__(self, n_tiers: int, n_instruments: int) -> None:
        self._h = hashlib.blake2b(digest_size=16)
        self._seen = np.zeros((n_tiers, n_instruments), np.int64)  # the version last looked at
        self._folded: dict[tuple[int, int], bytes] = {}  # the levels last folded (none: no quote)
        self.changes = 0

    def update(self, engine: object) -> None:
        """Fold in what changed since the last call (found by the engine's per-quote versions)."""
        state = getattr(engine, "quote_state", None)
        if state is None:
            return self._update_via_api(engine)
        quotes = engine.quotes  # type: ignore[attr-defined]
        for t, i in np.argwhere(state[:, :, 2] != self._seen):
            n_bid, n_ask, version = (int(x) for x in state[t, i, :3])
            self._fold(int(t), int(i), version, quotes[t, i, 0, :, :n_bid], quotes[t, i, 1, :, :n_ask])

    def _update_via_api(self, engine: object) -> None:
        # The reference engine has no arrays: the same bytes, built from its public quotes.
        tiers, symbols = engine.tier_names, engine.symbols  # type: ignore[attr-defined]
        for t, tier in enumerate(tiers):
            for i, symbol in enumerate(symbols):
                q = engine.quote(tier, symbol)  # type: ignore[attr-defined]
                if q.version != self._seen[t, i]:
                    bids = np.array([[p for p, _ in q.bids], [s for _, s in q.bids]], np.int64)
                    asks = np.array([[p for p, _ in q.asks], [s for _, s in q.asks]], np.int64)
                    self._fold(t, i, q.version, bids, asks)

    def _fold(self, t: int, i: int, version: int, bids: np.ndarray, asks: np.ndarray) -> None:
        self._seen[t, i] = version
        levels = (
            _KEY.pack(t, i, bids.shape[1], asks.shape[1])
            + np.ascontiguousarray(bids, "<i8").tobytes()
            + np.ascontiguousarray(asks, "<i8").tobytes()
        )
        if levels == self._folded.get((t, i), _KEY.pack(t, i, 0, 0)):
            return  # changed and changed back between two looks: nothing new was published
        self._folded[(t, i)] = levels
        self._h.update(levels)
        self.changes += 1

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def recorder_for(path: str | Path, cfg: Config, started_ns: int) -> Recorder:
    """A recorder whose header carries everything a replay needs, the config included.

    Without the clients' password digests: a replay does not log anyone on, and a recording is
    handed to people (benchmarks, bug reports) who must not get them (the digest is unsalted, so
    a weak password is one lookup away from it).
    """
    clients = [msgspec.structs.replace(c, password_sha256=None) for c in cfg.clients]
    cfg = msgspec.structs.replace(cfg, clients=clients)
    header = RecordingHeader(
        version=FORMAT_VERSION,
        instruments=[i.symbol for i in cfg.instruments],
        tick_sizes=[i.tick_size for i in cfg.instruments],
        qty_steps=[i.qty_step for i in cfg.instruments],
        lps=[lp.name for lp in cfg.lps],
        tiers=[t.name for t in cfg.tiers],
        started_ns=started_ns,
        config_json=msgspec.json.encode(cfg).decode(),
    )
    return Recorder(path, header)


@dataclass(frozen=True)
class ReplayResult:
    quote_hash: str
    batches: int
    rows: int
    quote_changes: int
    seconds: float
    torn_tail_bytes: int = 0  # a torn last frame (the recorder was killed mid-write), ignored


def replay(path: str | Path, speed: str = "max", engine_kind: str = "numba") -> ReplayResult:
    """Replay ``path``; ``speed`` is ``"max"`` (as fast as possible) or ``"recorded"``."""
    from engine.book import Engine
    from engine.reference import ReferenceEngine

    header, frames = read_recording(path)
    if not header.config_json:
        raise RecordingError(f"{path}: recording has no config to replay with")
    try:
        cfg = msgspec.json.decode(header.config_json, type=Config)
    except msgspec.DecodeError as exc:
        raise RecordingError(f"{path}: the recorded config does not decode: {exc}") from None
    engine = Engine(cfg) if engine_kind == "numba" else ReferenceEngine(cfg)
    hasher = QuoteHasher(len(cfg.tiers), len(cfg.instruments))
    batch = UpdateBatch(4096)
    batches = rows = 0
    started = time.perf_counter()
    first_ns: int | None = None
    for frame in frames:
        frame.to_batch(batch)
        if speed == "recorded":
            first_ns = frame.now_ns if first_ns is None else first_ns
            wait = (frame.now_ns - first_ns) / 1e9 - (time.perf_counter() - started)
            if wait > 0:
                time.sleep(wait)
        for instr, _ in frame.skews:
            if not 0 <= instr < len(cfg.instruments):
                raise RecordingError(f"{path}: batch {batches + 1} sets the skew of instrument {instr}, which"
                                     f" the recorded config does not have")  # fmt: skip
        # Between the turns, as live: the skews fills set and the expires orders and market-data
        # requests ran, in the order they came (the reader checked that order).
        skews_set = 0
        for expire_ns, skews_before in frame.expires:
            for instr, ticks in frame.skews[skews_set:skews_before]:
                engine.set_skew(instr, ticks)
            skews_set = skews_before
            engine.expire(expire_ns)
        for instr, ticks in frame.skews[skews_set:]:
            engine.set_skew(instr, ticks)
        engine.apply(batch, frame.now_ns)
        engine.expire(frame.now_ns)
        hasher.update(engine)
        batches += 1
        rows += frame.n
    seconds = time.perf_counter() - started
    return ReplayResult(hasher.hexdigest(), batches, rows, hasher.changes, seconds, frames.torn_tail_bytes)
