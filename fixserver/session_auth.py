"""Logon authentication against the client config (553 Username / 554 Password).

The config never holds a plain password: either its SHA-256 hex digest (``password_sha256``) or
the name of an environment variable holding it (``password_env``). Comparison is constant-time
and an unknown CompID costs the same hash as a known one, so timing does not tell them apart.
Nothing here logs or raises with the password in it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping

from engine.config import ClientConfig

__all__ = ["ConfigAuthenticator"]

_NO_MATCH = "0" * 64  # a digest no password hashes to in practice


class ConfigAuthenticator:
    """``authenticator(comp_id, username, password) -> bool`` for :class:`~fixserver.session.Session`.

    Only the password decides; Username (553) is accepted but not required, as the CompID
    already names the client."""

    def __init__(self, clients: Iterable[ClientConfig], environ: Mapping[str, str] | None = None) -> None:
        self._clients = {c.sender_comp_id: c for c in clients}
        self._environ = os.environ if environ is None else environ

    def _expected_digest(self, comp_id: str) -> str | None:
        client = self._clients.get(comp_id)
        if client is None:
            return None
        if client.password_sha256 is not None:
            return client.password_sha256
        if client.password_env is not None:
            secret = self._environ.get(client.password_env)
            if secret:
                return hashlib.sha256(secret.encode()).hexdigest()
        return None  # misconfigured (no secret in the environment): nobody gets in

    def __call__(self, comp_id: str, username: bytes | None, password: bytes | None) -> bool:
        expected = self._expected_digest(comp_id)
        digest = hashlib.sha256(password or b"").hexdigest()
        ok = hmac.compare_digest(digest, expected if expected is not None else _NO_MATCH)
        return ok and expected is not None and password is not None

    def __repr__(self) -> str:
        return f"ConfigAuthenticator(clients={sorted(self._clients)})"
