"""FIX 4.4: codec, sans-I/O session layer, message store, transport, acceptor application.

The session-layer names below are imported lazily (PEP 562), so ``import fixserver.codec`` stays
cheap and no import cycle can form through this file.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module, for the session layer, stores, clock and transport.
_SESSION_API = {
    "Session": "fixserver.session",
    "SessionConfig": "fixserver.session",
    "SessionID": "fixserver.session",
    "SessionState": "fixserver.session",
    "SessionEvent": "fixserver.session",
    "SessionError": "fixserver.session",
    "SessionStateError": "fixserver.session",
    "SessionUsageError": "fixserver.session",
    "Role": "fixserver.session",
    "Credentials": "fixserver.session",
    "DailySchedule": "fixserver.session",
    "Send": "fixserver.session",
    "Deliver": "fixserver.session",
    "AdminReceived": "fixserver.session",
    "LoggedOn": "fixserver.session",
    "LoggedOut": "fixserver.session",
    "Disconnect": "fixserver.session",
    "ConfigAuthenticator": "fixserver.session_auth",
    "MessageStore": "fixserver.store",
    "MessageStoreFactory": "fixserver.store",
    "MemoryStoreFactory": "fixserver.store",
    "SqliteStoreFactory": "fixserver.store",
    "Clock": "fixserver.clock",
    "SystemClock": "fixserver.clock",
    "ManualClock": "fixserver.clock",
    "Acceptor": "fixserver.transport",
    "Initiator": "fixserver.transport",
    "Application": "fixserver.transport",
    "SessionHandle": "fixserver.transport",
}

__all__ = sorted(_SESSION_API)


def __getattr__(name: str) -> Any:
    module = _SESSION_API.get(name)
    if module is None:
        raise AttributeError(f"module 'fixserver' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
