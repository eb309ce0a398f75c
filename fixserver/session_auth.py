"""Logon authentication against the client config (553 Username / 554 Password).

The config never holds a plain password: either its SHA-256 hex digest (``password_sha256``) or
the name of an environment variable holding it (``password_env``). Comparison is constant-time
and an unknown CompID costs the same hash as a known one, so timing does not tell them apart.
Nothing here logs or raises with the password in it.

What *is* logged, so an operator can tell a client why it cannot log on: at start, every client
whose password environment variable is unset or empty (by CompID and the variable's name; that
client cannot log on until the process is restarted with it set); at each refused Logon, the
CompID and the reason's category (unknown CompID, wrong or missing password, no password
configured). The client itself still gets only the neutral "Logon rejected".
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Mapping

from engine.config import ClientConfig

__all__ = ["ConfigAuthenticator"]

log = logging.getLogger("lagg.fix.auth")

_NO_MATCH = "0" * 64  # a digest no password hashes to in practice


class ConfigAuthenticator:
    """``authenticator(comp_id, username, password) -> bool`` for :class:`~fixserver.session.Session`.

    Only the password decides; Username (553) is accepted but not required, as the CompID
    already names the client."""

    def __init__(self, clients: Iterable[ClientConfig], environ: Mapping[str, str] | None = None) -> None:
        self._clients = {c.sender_comp_id: c for c in clients}
        self._environ = os.environ if environ is None else environ
        for comp_id, client in self._clients.items():
            if client.password_sha256 is None and client.password_env is not None:
                if not self._environ.get(client.password_env):
                    log.warning(
                        "client %r (%s): environment variable %s (its password_env) is not set or empty; "
                        "every Logon of this client will be rejected",
                        client.name, comp_id, client.password_env,
                    )  # fmt: skip

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
        if ok and expected is not None and password is not None:
            return True
        log.warning("Logon of %s refused: %s", comp_id, self._refusal(comp_id, password))
        return False

    def _refusal(self, comp_id: str, password: bytes | None) -> str:
        """Why a Logon was refused, as a category; never the password, the digest or Username."""
        client = self._clients.get(comp_id)
        if client is None:
            return "unknown CompID"
        env = client.password_env
        if client.password_sha256 is None and (env is None or not self._environ.get(env)):
            where = f" (environment variable {env} is not set or empty)" if env is not None else ""
            return "no password configured" + where
        if password is None:
            return "no Password(554) in the Logon"
        return "wrong password"

    def __repr__(self) -> str:
        return f"ConfigAuthenticator(clients={sorted(self._clients)})"
