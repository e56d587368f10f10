"""External sign-in's pure parts: the settings' checks, PKCE (RFC 7636's example), the
username made from a provider's login, and the redirect and flow cookie helpers."""

from __future__ import annotations

import pytest

from relaygate.console.accounts import USERNAME_RE
from relaygate.console.config import ConsoleSettings
from relaygate.console.oauth import _username_base, providers
from relaygate.console.oauth_common import add_query, pkce_challenge

GH = {
    "RELAYGATE_CONSOLE_GITHUB_CLIENT_ID": "Iv1.x",
    "RELAYGATE_CONSOLE_GITHUB_CLIENT_SECRET": "s",
}
OIDC = {
    "RELAYGATE_CONSOLE_OIDC_ISSUER": "https://id.example.com/realms/main/",
    "RELAYGATE_CONSOLE_OIDC_CLIENT_ID": "relaygate",
    "RELAYGATE_CONSOLE_OIDC_CLIENT_SECRET": "s",
}


def _settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> ConsoleSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ConsoleSettings.from_env()


def test_no_provider_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _settings(monkeypatch, {})
    assert providers(cfg) == []
    assert cfg.github_url == "https://github.com" and cfg.github_api_url == "https://api.github.com"
    assert cfg.oidc_scopes == "openid profile email"


def test_both_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _settings(monkeypatch, {**GH, **OIDC, "RELAYGATE_CONSOLE_OIDC_NAME": "Company SSO"})
    assert providers(cfg) == [
        {"id": "github", "name": "GitHub"},
        {"id": "oidc", "name": "Company SSO"},
    ]
    assert cfg.oidc_issuer == "https://id.example.com/realms/main"  # no trailing slash


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RELAYGATE_CONSOLE_GITHUB_CLIENT_ID": "x"}, "RELAYGATE_CONSOLE_GITHUB_CLIENT_SECRET"),
        ({"RELAYGATE_CONSOLE_OIDC_ISSUER": "https://id.example.com"}, "OIDC_CLIENT_ID"),
        ({**OIDC, "RELAYGATE_CONSOLE_OIDC_ISSUER": "http://id.example.com"}, "https://"),
        ({**OIDC, "RELAYGATE_CONSOLE_OIDC_SCOPES": "profile email"}, "openid"),
        ({**GH, "RELAYGATE_CONSOLE_GITHUB_URL": "https://gh.example.com/?x=1"}, "plain URL"),
        ({**GH, "RELAYGATE_CONSOLE_GITHUB_API_URL": "ftp://gh.example.com"}, "https://"),
    ],
)
def test_half_or_wrongly_configured_providers_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(monkeypatch, env)


def test_loopback_http_and_a_plain_http_public_url_are_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = _settings(
        monkeypatch,
        {
            **OIDC,
            "RELAYGATE_CONSOLE_OIDC_ISSUER": "http://127.0.0.1:8123",
            "RELAYGATE_CONSOLE_PUBLIC_URL": "http://gateway.lan:8080/",
        },
    )
    assert cfg.oidc_issuer == "http://127.0.0.1:8123"
    assert cfg.public_url == "http://gateway.lan:8080"


def test_pkce_s256_matches_rfc_7636() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_add_query_keeps_an_existing_query() -> None:
    assert add_query("https://a/b", {"x": "1 2"}) == "https://a/b?x=1+2"
    assert add_query("https://a/b?tenant=t", {"x": "y"}) == "https://a/b?tenant=t&x=y"


@pytest.mark.parametrize(
    ("login", "expected"),
    [
        ("alice", "alice"),
        ("Alice Smith", "Alice-Smith"),
        ("al", "user-al"),
        ("", "user"),
        ("jürgen@example.com", "jürgen-example.com"),
        ("x" * 40, "x" * 28),
        ("--..--", "user"),
        ("名字", "user-名字"),
    ],
)
def test_usernames_from_a_login_are_valid(login: str, expected: str) -> None:
    name = _username_base(login)
    assert name == expected
    assert USERNAME_RE.fullmatch(name)
