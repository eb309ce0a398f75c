"""Config hot-reload: on file change or SIGHUP, load the new file; refuse a bad one.

The running config is replaced only by a file that passes every check of
:func:`engine.config.load_config`. A bad file is refused with its errors (logged, counted) and
the running config stays, so a typo in production never takes prices down.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from watchfiles import awatch

from engine.config import Config, ConfigError, load_config

__all__ = ["ConfigReloader"]

log = logging.getLogger("lagg.config")


class ConfigReloader:
    """Holds the current config and swaps it for a valid new one.

    ``on_change(old, new)`` is called after a successful swap; ``on_result(ok)`` after every
    attempt (for the reload counter).
    """

    def __init__(
        self,
        path: str | Path,
        current: Config,
        on_change: Callable[[Config, Config], None],
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.current = current
        self.last_errors: list[str] = []
        self._on_change = on_change
        self._on_result = on_result or (lambda ok: None)

    def reload(self) -> bool:
        """Try the file now. True if a new config was taken (or it was unchanged)."""
        try:
            new = load_config(self.path)
        except ConfigError as exc:
            self.last_errors = exc.errors
            log.error("config reload refused, keeping the running config: %s", exc)
            self._on_result(False)
            return False
        self.last_errors = []
        old, self.current = self.current, new
        if new != old:
            log.info("config reloaded from %s", self.path)
            self._on_change(old, new)
        self._on_result(True)
        return True

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload on every change of the file and on SIGHUP until ``stop`` is set."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self.reload)
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
