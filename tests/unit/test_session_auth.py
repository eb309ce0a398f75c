"""Logon authentication: an operator can tell why a client cannot log on, and no secret is logged."""

import hashlib
import logging

import pytest

from engine.config import ClientConfig, parse_config
from fixserver.session_auth import ConfigAuthenticator
from tests.conftest import EXAMPLE_CONFIG

PASSWORD = "Hunter2-distinctive"
DIGEST = hashlib.sha256(PASSWORD.encode()).hexdigest()
ENV_SECRET = "env-Secret-77"


def _clients() -> list[ClientConfig]:
    return [
        ClientConfig("Hashed Broker", "HASHED", "t", password_sha256=DIGEST),
        ClientConfig("Env Broker", "ENVSET", "t", password_env="ENVSET_PW"),
        ClientConfig("Forgotten Broker", "ENVGONE", "t", password_env="ENVGONE_PW"),
    ]


@pytest.fixture
def auth_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="lagg.fix.auth")
    return caplog


def _assert_no_secret(text: str) -> None:
    for secret in (PASSWORD, DIGEST, ENV_SECRET, hashlib.sha256(ENV_SECRET.encode()).hexdigest(), "wrong-pw"):
        assert secret not in text


def test_an_unset_password_variable_is_named_at_start(auth_log):
    ConfigAuthenticator(_clients(), environ={"ENVSET_PW": ENV_SECRET})
    warnings = [r.getMessage() for r in auth_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "'Forgotten Broker' (ENVGONE)" in warnings[0] and "ENVGONE_PW" in warnings[0]
    assert "rejected" in warnings[0]
    _assert_no_secret(auth_log.text)


def test_an_empty_password_variable_counts_as_unset(auth_log):
    ConfigAuthenticator(_clients(), environ={"ENVSET_PW": ENV_SECRET, "ENVGONE_PW": ""})
    assert [r for r in auth_log.records if "ENVGONE_PW" in r.getMessage()]


@pytest.mark.parametrize(
    ("comp_id", "password", "reason"),
    [
        ("NOBODY", b"whatever", "unknown CompID"),
        ("HASHED", b"wrong-pw", "wrong password"),
        ("HASHED", None, "no Password(554) in the Logon"),
        ("ENVSET", b"wrong-pw", "wrong password"),
        ("ENVGONE", b"wrong-pw", "no password configured (environment variable ENVGONE_PW is not set or empty)"),
    ],
)
def test_a_refused_logon_logs_its_reason_category(auth_log, comp_id, password, reason):
    auth = ConfigAuthenticator(_clients(), environ={"ENVSET_PW": ENV_SECRET})
    auth_log.clear()
    assert auth(comp_id, b"user", password) is False
    assert [r.getMessage() for r in auth_log.records] == [f"Logon of {comp_id} refused: {reason}"]
    _assert_no_secret(auth_log.text)


def test_a_good_logon_logs_nothing(auth_log):
    auth = ConfigAuthenticator(_clients(), environ={"ENVSET_PW": ENV_SECRET})
    auth_log.clear()  # the start-up warning about ENVGONE
    assert auth("HASHED", None, PASSWORD.encode())
    assert auth("ENVSET", None, ENV_SECRET.encode())
    assert auth_log.records == []


def test_the_repr_of_a_client_masks_its_password_digest():
    cfg = parse_config(EXAMPLE_CONFIG.read_text())
    client = next(c for c in cfg.clients if c.password_sha256 is not None)
    assert client.password_sha256 not in repr(client)
    assert client.password_sha256 not in repr(cfg)
    assert "password_sha256='***'" in repr(client)
    assert "name='Demo Broker'" in repr(client) and "limits=ClientLimits(" in repr(client)

    from rich.pretty import pretty_repr

    assert client.password_sha256 not in pretty_repr(cfg)
    # Unset stays visibly unset, and the digest itself is still there for the authenticator.
    assert "password_sha256=None" in repr(ClientConfig("n", "C", "t", password_env="X"))
    assert len(client.password_sha256) == 64
