"""A GitHub OAuth app emulator, a real HTTP server on loopback for the console's sign-in
tests (docs/emulator.md, "Sign-in emulators"). One server plays both hosts: the web flow at
the root (``RELAYGATE_CONSOLE_GITHUB_URL`` = the origin) and the REST API under ``/api/v3``
(``RELAYGATE_CONSOLE_GITHUB_API_URL`` = origin + ``/api/v3``, as on GitHub Enterprise
Server).

- ``GET /login/oauth/authorize``: approves the configured user at once and redirects back
  with ``code`` and ``state``; ``deny``: ``error=access_denied`` with GitHub's description and
  ``error_uri``. An unknown ``client_id`` is a 404 page, as on GitHub.
- ``POST /login/oauth/access_token`` (form, JSON or query): GitHub's error shapes — status 200
  with ``error`` ``incorrect_client_credentials``, ``redirect_uri_mismatch`` or
  ``bad_verification_code`` (a code unknown, used, older than 10 minutes, or whose PKCE
  verifier does not match); JSON with ``Accept: application/json``, else form-encoded.
  ``token_status``: that status with an HTML body, as GitHub's own failures look.
- ``GET /api/v3/user``, ``GET /api/v3/user/emails`` (needs the ``user:email`` scope: 404
  without, as GitHub): ``401 {"message": "Bad credentials"}`` for an unknown token;
  ``emails_status`` answers that status instead.

Run one by hand: ``python -m relaygate.emulator.github_oauth --port 8701``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from relaygate.emulator.loopback import LoopbackServer
from relaygate.emulator.oauth_common import (
    client_args,
    form_params,
    pkce_matches,
    redeem,
    redirect_back,
    without_secret,
)

__all__ = ["DEFAULT_EMAILS", "DEFAULT_USER", "GitHubKnobs", "GitHubOAuthEmulator"]

DEFAULT_USER: dict[str, Any] = {"id": 4242001, "login": "octo-tester", "name": "Octo Tester"}
DEFAULT_EMAILS: list[dict[str, Any]] = [
    {"email": "octo-old@example.test", "primary": False, "verified": True, "visibility": None},
    {"email": "octo@example.test", "primary": True, "verified": True, "visibility": "private"},
]
DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
CODE_TTL = 600.0


@dataclass(frozen=True, slots=True)
class GitHubKnobs:
    client_id: str = "Iv1.emulator"
    client_secret: str = "emulator-secret"
    user: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_USER))
    emails: list[dict[str, Any]] = field(default_factory=lambda: [dict(e) for e in DEFAULT_EMAILS])
    deny: bool = False
    token_status: int | None = None
    emails_status: int | None = None


@dataclass(slots=True)
class _Grant:
    redirect_uri: str
    challenge: str
    scope: str
    user: dict[str, Any]
    emails: list[dict[str, Any]]
    expires: float
    used: bool = False


def _error(error: str, description: str, anchor: str) -> dict[str, str]:
    return {"error": error, "error_description": description, "error_uri": f"{DOCS}#{anchor}"}


class GitHubOAuthEmulator(LoopbackServer[GitHubKnobs]):
    """``with GitHubOAuthEmulator() as gh: … gh.origin, gh.api_url …``"""

    def __init__(self, knobs: GitHubKnobs | None = None, **kw: Any) -> None:
        super().__init__(knobs or GitHubKnobs(), **kw)
        self.grants: dict[str, _Grant] = {}
        self.tokens: dict[str, _Grant] = {}

    @property
    def api_url(self) -> str:
        return self.origin + "/api/v3"

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        q = dict(request.query)
        self.note(request, q)
        knobs = self.knobs
        if q.get("client_id") != knobs.client_id:
            return web.Response(status=404, text="Not Found")
        uri = q.get("redirect_uri", "")
        if urlsplit(uri).scheme not in ("http", "https"):
            return web.Response(status=400, text="The redirect_uri is not valid.")
        params: dict[str, str] = {}
        if knobs.deny:
            params = {
                "error": "access_denied",
                "error_description": "The user has denied your application access.",
                "error_uri": f"{DOCS}#access-denied",
            }
        else:
            code = secrets.token_hex(10)
            self.grants[code] = _Grant(
                uri,
                q.get("code_challenge", ""),
                ",".join(q.get("scope", "").replace(",", " ").split()),
                dict(knobs.user),
                [dict(e) for e in knobs.emails],
                time.monotonic() + CODE_TTL,
            )
            params = {"code": code}
        return redirect_back(uri, params, q)

    async def access_token(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            params.update({k: str(v) for k, v in body.items()} if isinstance(body, dict) else {})
        else:
            params.update(await form_params(request))
        self.note(request, without_secret(params))
        knobs = self.knobs
        if knobs.token_status is not None:
            return web.Response(
                status=knobs.token_status,
                text="<html><body><h1>Something went wrong</h1></body></html>",
                content_type="text/html",
            )
        answer = self._exchange(params, knobs)
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response(answer)
        return web.Response(
            text=urlencode(answer), content_type="application/x-www-form-urlencoded"
        )

    def _exchange(self, p: dict[str, str], knobs: GitHubKnobs) -> dict[str, str]:
        if p.get("client_id") != knobs.client_id or p.get("client_secret") != knobs.client_secret:
            return _error(
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
                "incorrect-client-credentials",
            )
        bad_code = _error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
            "bad-verification-code",
        )
        grant = redeem(self.grants, p.get("code", ""))
        if grant is None:
            return bad_code
        if "redirect_uri" in p and p["redirect_uri"] != grant.redirect_uri:
            return _error(
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
                "redirect-uri-mismatch",
            )
        if grant.challenge and not pkce_matches(grant.challenge, p.get("code_verifier", "")):
            return bad_code
        token = "gho_" + secrets.token_urlsafe(27)
        self.tokens[token] = grant
        return {"access_token": token, "token_type": "bearer", "scope": grant.scope}

    def _grant(self, request: web.Request) -> _Grant | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        self.note(request, {})
        return self.tokens.get(token) if scheme.lower() in ("bearer", "token") else None

    @staticmethod
    def _message(status: int, message: str) -> web.Response:
        return web.json_response(
            {
                "message": message,
                "documentation_url": "https://docs.github.com/rest",
                "status": str(status),
            },
            status=status,
        )

    async def user(self, request: web.Request) -> web.Response:
        grant = self._grant(request)
        if grant is None:
            return self._message(401, "Bad credentials")
        u = grant.user
        return web.json_response(
            {
                "login": u.get("login"),
                "id": u.get("id"),
                "node_id": f"U_emu{u.get('id')}",
                "avatar_url": f"{self.origin}/avatars/{u.get('id')}",
                "html_url": f"{self.origin}/{u.get('login')}",
                "type": "User",
                "site_admin": False,
                "name": u.get("name"),
                "email": u.get("email"),
            }
        )

    async def emails(self, request: web.Request) -> web.Response:
        grant = self._grant(request)
        if grant is None:
            return self._message(401, "Bad credentials")
        status = self.knobs.emails_status
        if status is not None:
            return self._message(status, "Emulated failure")
        if "user:email" not in grant.scope.split(",") and "user" not in grant.scope.split(","):
            return self._message(404, "Not Found")
        return web.json_response(grant.emails)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/login/oauth/authorize", self.authorize)
        app.router.add_post("/login/oauth/access_token", self.access_token)
        app.router.add_get("/api/v3/user", self.user)
        app.router.add_get("/api/v3/user/emails", self.emails)


def main(argv: list[str] | None = None) -> None:
    args = client_args(
        "A GitHub OAuth app emulator.", port=8701, client_id="Iv1.emulator", argv=argv
    )
    knobs = GitHubKnobs(client_id=args.client_id, client_secret=args.client_secret)
    GitHubOAuthEmulator(knobs, host=args.host, port=args.port).serve_forever()


if __name__ == "__main__":
    main()
