"""Sign-in with GitHub (an OAuth app; GitHub is not OpenID Connect): the authorization URL
(with ``state`` and PKCE S256), the code exchanged at ``/login/oauth/access_token`` (GitHub
answers its errors with status 200 and an ``error`` field), then ``GET /user`` for the
person's stable numeric id and login, and ``GET /user/emails`` for a verified primary
e-mail. ``RELAYGATE_CONSOLE_GITHUB_URL`` and ``_GITHUB_API_URL`` point elsewhere for GitHub
Enterprise Server (``https://HOST`` and ``https://HOST/api/v3``) or the emulator."""

from __future__ import annotations

import logging
from typing import Any

from relaygate.console.config import ConsoleSettings
from relaygate.console.oauth_common import (
    ExternalIdentity,
    OAuthFailure,
    add_query,
    request_json,
)

__all__ = ["SCOPES", "authorize_url", "identify"]

log = logging.getLogger("relaygate.console")

SCOPES = "read:user user:email"
API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


def authorize_url(cfg: ConsoleSettings, *, state: str, challenge: str, redirect_uri: str) -> str:
    return add_query(
        cfg.github_url + "/login/oauth/authorize",
        {
            "client_id": cfg.github_client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPES,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )


async def _token(cfg: ConsoleSettings, code: str, verifier: str, redirect_uri: str) -> str:
    form = {
        "client_id": cfg.github_client_id,
        "client_secret": cfg.github_client_secret,
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    status, body = await request_json(
        "POST", cfg.github_url + "/login/oauth/access_token", what="GitHub token", data=form
    )
    error = body.get("error") if isinstance(body, dict) else None
    if error == "bad_verification_code":
        raise OAuthFailure("oauth_code", "GitHub refused the code (bad_verification_code)")
    token = body.get("access_token") if isinstance(body, dict) else None
    if status != 200 or error or not isinstance(token, str) or not token:
        raise OAuthFailure(
            "oauth_provider", f"GitHub's token endpoint answered {status}: {error!r}"
        )
    return token


async def _api(cfg: ConsoleSettings, path: str, token: str) -> tuple[int, Any]:
    headers = {**API_HEADERS, "Authorization": f"Bearer {token}"}
    return await request_json(
        "GET", cfg.github_api_url + path, what=f"GitHub {path}", headers=headers
    )


def _verified_primary(emails: Any) -> str | None:
    if not isinstance(emails, list):
        return None
    for item in emails:
        if isinstance(item, dict) and item.get("primary") is True and item.get("verified") is True:
            email = item.get("email")
            if isinstance(email, str) and "@" in email and len(email) <= 320:
                return email
    return None


async def identify(
    cfg: ConsoleSettings, *, code: str, verifier: str, redirect_uri: str
) -> ExternalIdentity:
    token = await _token(cfg, code, verifier, redirect_uri)
    status, user = await _api(cfg, "/user", token)
    if status != 200 or not isinstance(user, dict):
        raise OAuthFailure("oauth_provider", f"GitHub /user answered {status}")
    uid, login = user.get("id"), user.get("login")
    if not isinstance(uid, int) or isinstance(uid, bool) or not isinstance(login, str):
        raise OAuthFailure("oauth_provider", "GitHub /user has no id or login")
    status, emails = await _api(cfg, "/user/emails", token)
    email = _verified_primary(emails) if status == 200 else None
    if status != 200:  # the user:email scope refused: signs in without an e-mail
        log.info("GitHub /user/emails unavailable", extra={"status": status})
    return ExternalIdentity("github", str(uid), login, email)
