"""An OpenID Connect provider emulator (authorization code flow), a real HTTP server on
loopback for the console's external sign-in tests (docs/emulator.md, "Sign-in emulators").

- ``GET /.well-known/openid-configuration``: discovery; the issuer is the server's origin.
- ``GET /jwks``: the public keys (an RSA key and an EC P-256 key, drawn at start).
- ``GET /authorize``: approves the configured test user at once and redirects back with
  ``code`` and ``state`` (or ``error=access_denied`` with the ``deny`` knob). An unknown
  ``client_id`` or a ``redirect_uri`` that is not absolute is a 400 page (no redirect); PKCE
  (``code_challenge`` with ``S256``) is required unless ``require_pkce`` is off.
- ``POST /token``: client authentication (HTTP Basic or ``client_secret_post``), the code
  (one use, 60 s, the same ``redirect_uri``) and the PKCE verifier checked; answers an access
  token and an ID token (``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``nonce`` and the
  user's profile claims) signed with ``alg``.
- ``GET /userinfo``: the user's claims for a bearer access token.

Failure knobs: ``deny``, ``wrong_nonce``, ``expired`` (the ID token's ``exp`` in the past),
``wrong_audience``, ``bad_signature`` (signed by another key under the same ``kid``),
``token_status`` (the token endpoint answers that status), ``profile_in_id_token`` off (only
``/userinfo`` names the user), ``alg`` ``none`` or ``HS256`` (keyed by the client secret's SHA-256:
tokens a client must refuse). ``rotate()`` replaces the RSA key and its ``kid``.

Run one by hand: ``python -m relaygate.emulator.oidc --port 8700``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from relaygate.emulator.loopback import LoopbackServer
from relaygate.emulator.oauth_common import (
    client_args,
    form_params,
    pkce_matches,
    redeem,
    redirect_back,
    without_secret,
)

__all__ = ["DEFAULT_USER", "OIDCEmulator", "OIDCKnobs"]

DEFAULT_USER: dict[str, Any] = {
    "sub": "emu-user-1",
    "preferred_username": "oidc-tester",
    "name": "OIDC Tester",
    "email": "oidc-tester@example.test",
    "email_verified": True,
}
CODE_TTL = 60.0
TOKEN_TTL = 300


@dataclass(frozen=True, slots=True)
class OIDCKnobs:
    client_id: str = "relaygate-console"
    client_secret: str = "emulator-secret"
    user: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_USER))
    alg: str = "RS256"  # or ES256; none and HS256 for the refusal tests
    require_pkce: bool = True
    profile_in_id_token: bool = True
    deny: bool = False
    wrong_nonce: bool = False
    expired: bool = False
    wrong_audience: bool = False
    bad_signature: bool = False
    token_status: int | None = None


@dataclass(slots=True)
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    scope: str
    user: dict[str, Any]
    expires: float
    used: bool = False


class OIDCEmulator(LoopbackServer[OIDCKnobs]):
    """``with OIDCEmulator() as idp: … idp.issuer …``"""

    def __init__(self, knobs: OIDCKnobs | None = None, **kw: Any) -> None:
        super().__init__(knobs or OIDCKnobs(), **kw)
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_kid = "emu-rsa"
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.grants: dict[str, _Grant] = {}
        self.tokens: dict[str, dict[str, Any]] = {}

    @property
    def issuer(self) -> str:
        return self.origin

    # ---- helpers -----------------------------------------------------------------------------
    def _jwks(self) -> dict[str, Any]:
        rsa_jwk = dict(RSAAlgorithm.to_jwk(self.rsa_key.public_key(), as_dict=True))
        ec_jwk = dict(ECAlgorithm.to_jwk(self.ec_key.public_key(), as_dict=True))
        rsa_jwk.update(kid=self.rsa_kid, use="sig", alg="RS256")
        ec_jwk.update(kid="emu-ec", use="sig", alg="ES256")
        return {"keys": [rsa_jwk, ec_jwk]}

    def _id_token(self, grant: _Grant, knobs: OIDCKnobs) -> str:
        at = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": str(grant.user.get("sub", "")),
            "aud": "someone-else" if knobs.wrong_audience else grant.client_id,
            "iat": at - 900 if knobs.expired else at,
            "exp": at - 600 if knobs.expired else at + TOKEN_TTL,
            "auth_time": at,
        }
        if grant.nonce is not None:
            claims["nonce"] = "not-" + grant.nonce if knobs.wrong_nonce else grant.nonce
        if knobs.profile_in_id_token:
            claims.update({k: v for k, v in grant.user.items() if k != "sub"})
        if knobs.alg == "ES256":
            key: Any = self.ec_key
            kid = "emu-ec"
        elif knobs.alg == "none":
            key, kid = None, self.rsa_kid
        elif knobs.alg == "HS256":
            key = hashlib.sha256(knobs.client_secret.encode()).digest()  # 32 bytes
            kid = self.rsa_kid
        else:
            key = self.rogue_key if knobs.bad_signature else self.rsa_key
            kid = self.rsa_kid
        return jwt.encode(claims, key, algorithm=knobs.alg, headers={"kid": kid})

    def rotate(self) -> str:
        """A new RSA signing key under a new ``kid`` (the old one leaves the JWKS)."""
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_kid = "emu-rsa-" + secrets.token_hex(4)
        return self.rsa_kid

    @staticmethod
    def _error(error: str, desc: str, status: int = 400) -> web.Response:
        return web.json_response(
            {"error": error, "error_description": desc},
            status=status,
            headers={"Cache-Control": "no-store"},
        )

    # ---- endpoints ---------------------------------------------------------------------------
    async def discovery(self, request: web.Request) -> web.Response:
        o = self.origin
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": o + "/authorize",
                "token_endpoint": o + "/token",
                "userinfo_endpoint": o + "/userinfo",
                "jwks_uri": o + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "scopes_supported": ["openid", "profile", "email"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "name", "preferred_username", "email"],
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self._jwks())

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        q = dict(request.query)
        self.note(request, q)
        knobs = self.knobs
        uri = q.get("redirect_uri", "")
        if q.get("client_id") != knobs.client_id:
            return web.Response(status=400, text="Unknown client_id.")
        if urlsplit(uri).scheme not in ("http", "https") or not urlsplit(uri).netloc:
            return web.Response(status=400, text="redirect_uri must be an absolute URL.")

        def back(params: dict[str, str]) -> web.Response:
            return redirect_back(uri, params, q)

        if q.get("response_type") != "code":
            return back({"error": "unsupported_response_type"})
        if "openid" not in q.get("scope", "").split():
            return back({"error": "invalid_scope", "error_description": "openid is required"})
        challenge = q.get("code_challenge", "")
        if (challenge or knobs.require_pkce) and q.get("code_challenge_method") != "S256":
            return back({"error": "invalid_request", "error_description": "PKCE S256 is required"})
        if knobs.deny:
            return back({"error": "access_denied", "error_description": "The user denied access."})
        code = secrets.token_urlsafe(24)
        self.grants[code] = _Grant(
            knobs.client_id,
            uri,
            challenge,
            q.get("nonce"),
            q.get("scope", ""),
            dict(knobs.user),
            time.monotonic() + CODE_TTL,
        )
        return back({"code": code})

    async def token(self, request: web.Request) -> web.Response:
        form = await form_params(request)
        self.note(request, without_secret(form))
        knobs = self.knobs
        if knobs.token_status is not None:
            return self._error("server_error", "emulated failure", knobs.token_status)
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return self._error("invalid_client", "bad Basic credentials", 401)
        good = hmac.compare_digest(secret.encode(), knobs.client_secret.encode())
        if client_id != knobs.client_id or not good:
            return self._error("invalid_client", "client authentication failed", 401)
        if form.get("grant_type") != "authorization_code":
            return self._error("unsupported_grant_type", "only authorization_code")
        grant = redeem(self.grants, form.get("code", ""))  # one use, even when a check fails
        if grant is None:
            return self._error("invalid_grant", "the code is unknown, used or expired")
        if grant.client_id != client_id or grant.redirect_uri != form.get("redirect_uri"):
            return self._error("invalid_grant", "redirect_uri does not match")
        if grant.challenge and not pkce_matches(grant.challenge, form.get("code_verifier", "")):
            return self._error("invalid_grant", "PKCE verification failed")
        access = secrets.token_urlsafe(24)
        self.tokens[access] = dict(grant.user)
        return web.json_response(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": TOKEN_TTL,
                "id_token": self._id_token(grant, knobs),
                "scope": grant.scope,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def userinfo(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        user = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        self.note(request, {})
        if user is None:
            return web.json_response(
                {"error": "invalid_token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return web.json_response(user)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_get("/userinfo", self.userinfo)


def main(argv: list[str] | None = None) -> None:
    args = client_args(
        "An OpenID Connect provider emulator.", port=8700, client_id="relaygate-console", argv=argv
    )
    knobs = OIDCKnobs(client_id=args.client_id, client_secret=args.client_secret)
    OIDCEmulator(knobs, host=args.host, port=args.port).serve_forever()


if __name__ == "__main__":
    main()
