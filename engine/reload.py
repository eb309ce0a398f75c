"""Config hot-reload: on file change or SIGHUP, load the new file; refuse a bad one.

The running config is replaced only by a file that passes every check of
:func:`engine.config.load_config`. A bad file is refused with its errors (logged, counted) and
the running config stays, so a typo in production never takes prices down. So is a file that
changes what only a restart can change (:func:`restart_needed`): pricing, limits and routing
apply live; which instruments, LPs, tiers and clients exist, and their sessions, do not.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

import msgspec
from watchfiles import awatch

from engine.config import Config, ConfigError, TierConfig, load_config

__all__ = ["ConfigReloader", "LIVE_FIELDS", "LIVE_SECTIONS", "restart_needed"]

log = logging.getLogger("lagg.config")

# What a running gateway takes from an edited file, per list section of the config: pricing,
# risk limits and routing. Anything else (which instruments, LPs, tiers and clients there are,
# grids, LP sessions, credentials, a client's tier, a tier's depth, the server, metrics, routing
# and engine sections) is built into sessions, subscriptions and arrays: a reload that changes it
# is refused, naming what changed, and takes effect at the next start.
LIVE_FIELDS: dict[str, frozenset[str]] = {
    "instruments": frozenset(
        {"spike_filter_ticks", "vol_halflife_ms", "skew_step_qty", "hedge_threshold", "price_collar_ticks"}
    ),
    "lps": frozenset({"haircut_ticks", "size_weight_pct", "staleness_ms"}),
    "tiers": frozenset(TierConfig.__struct_fields__) - {"name", "depth"},
    "clients": frozenset({"routing", "hybrid_threshold", "limits", "market_data", "trading"}),
}
_KEY = {"instruments": "symbol", "lps": "name", "tiers": "name", "clients": "sender_comp_id"}
# Sections taken live as a whole: the operators' kill switches.
LIVE_SECTIONS = frozenset({"halt"})


def restart_needed(old: Config, new: Config) -> list[str]:
    """The changes from ``old`` to ``new`` that a running gateway cannot take (see
    :data:`LIVE_FIELDS`), as key paths; empty when ``new`` can be applied live."""
    changed: list[str] = []
    for section in Config.__struct_fields__:
        before, after = getattr(old, section), getattr(new, section)
        if section in LIVE_SECTIONS:
            continue
        live = LIVE_FIELDS.get(section)
        if live is None:
            if before != after:
                changed.append(section)
            continue
        key = _KEY[section]
        if [getattr(x, key) for x in before] != [getattr(x, key) for x in after]:
            changed.append(f"{section} (added, removed or reordered)")
            continue
        for n, (x, y) in enumerate(zip(before, after, strict=True)):
            changed += [f"{section}[{n}].{f.name}" for f in msgspec.structs.fields(x)
                        if f.name not in live and getattr(x, f.name) != getattr(y, f.name)]  # fmt: skip
    return changed


class ConfigReloader:
    """Holds the current config and swaps it for a valid new one.

    ``check(old, new)`` lists what keeps ``new`` from being applied (a refusal, e.g.
    :func:`restart_needed`); ``on_change(old, new)`` applies it, after which it is current;
    ``on_result(ok)`` is called after every attempt (for the reload counter).
    """

    def __init__(
        self,
        path: str | Path,
        current: Config,
        on_change: Callable[[Config, Config], None],
        on_result: Callable[[bool], None] | None = None,
        check: Callable[[Config, Config], list[str]] | None = None,
        on_signal: Callable[[], None] | None = None,
    ) -> None:
        """``on_signal()`` runs on SIGHUP before the reload (reopening log files after a rotation)."""
        self.path = Path(path)
        self._on_signal = on_signal
        self.current = current
        self.last_errors: list[str] = []
        self._on_change = on_change
        self._on_result = on_result or (lambda ok: None)
        self._check = check or (lambda old, new: [])

    def reload(self) -> bool:
        """Try the file now. True if a new config was taken (or it was unchanged)."""
        try:
            new = load_config(self.path)
        except ConfigError as exc:
            return self._refuse(exc.errors, str(exc))
        old = self.current
        if new != old:
            blocked = self._check(old, new)
            if blocked:
                errors = [f"{self.path}: {change}: changed, which needs a restart" for change in blocked]
                return self._refuse(errors, "; ".join(errors))
            try:
                self._on_change(old, new)
            except Exception as exc:  # the running config stays; the watcher goes on
                log.exception("config reload from %s could not be applied", self.path)
                return self._refuse([f"{self.path}: not applied: {exc}"], str(exc))
            self.current = new
            log.info("config reloaded from %s", self.path)
        else:
            log.info("config reload: %s is unchanged", self.path)  # (an answer to a SIGHUP too)
        self.last_errors = []
        self._on_result(True)
        return True

    def _sighup(self) -> None:
        if self._on_signal is not None:
            try:
                self._on_signal()
            except Exception:  # the reload still runs
                log.exception("SIGHUP: reopening the log files failed")
        self.reload()

    def _refuse(self, errors: list[str], text: str) -> bool:
        self.last_errors = errors
        log.error("config reload refused, keeping the running config: %s", text)
        self._on_result(False)
        return False

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload on every change of the file and on SIGHUP until ``stop`` is set."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._sighup)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass
        try:
            # Watch the directory: editors replace files by rename, which a file watch misses.
            async for changes in awatch(self.path.parent, stop_event=stop, debounce=200, step=50):
                if any(Path(p).resolve() == self.path.resolve() for _, p in changes):
                    self.reload()
        finally:
            try:
                loop.remove_signal_handler(signal.SIGHUP)
            except (NotImplementedError, RuntimeError):
                pass
