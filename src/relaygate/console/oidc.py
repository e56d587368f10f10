"""Sign-in with any OpenID Connect provider (authorization code flow with PKCE and a nonce):
the discovery document and the provider's keys (JWKS), both fetched and cached per worker,
the authorization URL, the code exchanged at the token endpoint, and the ID token verified
(PyJWT): its signature against the provider's keys (RS256 or ES256 only), ``iss``, ``aud``
(and ``azp`` when several audiences), ``exp``/``iat``, and the ``nonce`` of this browser's
sign-in. The UserInfo endpoint is asked only when the ID token names neither a username
nor an e-mail, and must name the same ``sub``."""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from relaygate.console.config import ConsoleSettings
from relaygate.console.oauth_common import (
    ExternalIdentity,
    OAuthFailure,
    add_query,
    request_json,
)

__all__ = ["authorize_url", "discovery", "forget_cache", "identify"]

log = logging.getLogger("relaygate.console")

DISCOVERY_TTL = 3600.0  # seconds a discovery document (and its JWKS) is kept
JWKS_REFRESH_MIN = 5.0  # seconds between two fetches of the keys for an unknown kid
ALGORITHMS = ("RS256", "ES256")
LEEWAY = 60  # seconds of clock difference accepted on exp/iat

_discovery: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks: dict[str, tuple[float, dict[str, jwt.PyJWK]]] = {}


def _endpoint(doc: dict[str, Any], name: str, required: bool = True) -> str:
    value = doc.get(name)
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return value
    if required:
        raise OAuthFailure("oauth_provider", f"discovery document has no usable {name}")
    return ""


async def discovery(cfg: ConsoleSettings) -> dict[str, Any]:
    """The issuer's discovery document (cached :data:`DISCOVERY_TTL`); its ``issuer`` must
    be exactly the configured one (OpenID Connect Discovery 1.0, 4.3)."""
    issuer = cfg.oidc_issuer
    cached = _discovery.get(issuer)
    if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL:
        return cached[1]
    url = issuer + "/.well-known/openid-configuration"
    status, doc = await request_json("GET", url, what="OIDC discovery")
    if status != 200 or not isinstance(doc, dict):
        raise OAuthFailure("oauth_provider", f"OIDC discovery answered {status}")
    if doc.get("issuer") != issuer:
        raise OAuthFailure(
            "oauth_provider", f"discovery names issuer {doc.get('issuer')!r}, not {issuer!r}"
        )
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        _endpoint(doc, name)
    _discovery[issuer] = (time.monotonic(), doc)
    return doc


async def _keys(uri: str, refresh: bool) -> dict[str, jwt.PyJWK]:
    cached = _jwks.get(uri)
    if cached is not None:
        age = time.monotonic() - cached[0]
        if age < DISCOVERY_TTL and not (refresh and age >= JWKS_REFRESH_MIN):
            return cached[1]
    status, body = await request_json("GET", uri, what="OIDC JWKS")
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise OAuthFailure("oauth_provider", f"the JWKS answered {status} without keys")
    keys: dict[str, jwt.PyJWK] = {}
    for item in body["keys"]:
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(item)
        except jwt.PyJWTError:
            continue  # a key type this client does not use
        keys[str(item.get("kid", ""))] = key
    _jwks[uri] = (time.monotonic(), keys)
    return keys


async def authorize_url(
    cfg: ConsoleSettings, *, state: str, challenge: str, nonce: str, redirect_uri: str
) -> str:
    doc = await discovery(cfg)
    return add_query(
        _endpoint(doc, "authorization_endpoint"),
        {
            "response_type": "code",
            "client_id": cfg.oidc_client_id,
            "redirect_uri": redirect_uri,
            "scope": cfg.oidc_scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )


async def _exchange(
    cfg: ConsoleSettings, doc: dict[str, Any], code: str, verifier: str, redirect_uri: str
) -> dict[str, Any]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    auth = None
    if "client_secret_basic" in methods:
        auth = aiohttp.BasicAuth(cfg.oidc_client_id, cfg.oidc_client_secret)
    else:
        form |= {"client_id": cfg.oidc_client_id, "client_secret": cfg.oidc_client_secret}
    status, body = await request_json(
        "POST", _endpoint(doc, "token_endpoint"), what="OIDC token endpoint", data=form, auth=auth
    )
    error = body.get("error") if isinstance(body, dict) else None
    if status == 200 and isinstance(body, dict) and not error:
        return body
    if error == "invalid_grant":
        raise OAuthFailure("oauth_code", f"the token endpoint refused the code ({status})")
    raise OAuthFailure("oauth_provider", f"the token endpoint answered {status}: {error!r}")


async def _verify(
    cfg: ConsoleSettings, doc: dict[str, Any], token: Any, nonce: str
) -> dict[str, Any]:
    if not isinstance(token, str) or not token:
        raise OAuthFailure("oauth_provider", "the token endpoint gave no id_token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise OAuthFailure("oauth_id_token", f"unreadable ID token: {exc}") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise OAuthFailure("oauth_id_token", f"ID token algorithm {alg!r} is not accepted")
    kid = str(header.get("kid", ""))
    uri = _endpoint(doc, "jwks_uri")
    keys = await _keys(uri, refresh=False)
    if kid not in keys:
        keys = await _keys(uri, refresh=True)  # the provider may have rotated its keys
    key = keys.get(kid)
    wanted = rsa.RSAPublicKey if alg == "RS256" else ec.EllipticCurvePublicKey
    if key is None or not isinstance(key.key, wanted):
        raise OAuthFailure("oauth_id_token", f"no {alg} key {kid!r} in the provider's JWKS")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=cfg.oidc_client_id,
            issuer=cfg.oidc_issuer,
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise OAuthFailure("oauth_id_token", f"{type(exc).__name__}: {exc}") from None
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != cfg.oidc_client_id:
        raise OAuthFailure("oauth_id_token", "several audiences and azp is not this client")
    given = claims.get("nonce")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), nonce.encode()):
        raise OAuthFailure("oauth_id_token", "the nonce is not this browser's")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise OAuthFailure("oauth_id_token", "the ID token's sub is missing or too long")
    return claims


async def _userinfo(doc: dict[str, Any], access_token: Any, sub: str) -> dict[str, Any]:
    url = _endpoint(doc, "userinfo_endpoint", required=False)
    if not url or not isinstance(access_token, str):
        return {}
    status, body = await request_json(
        "GET", url, what="OIDC userinfo", headers={"Authorization": f"Bearer {access_token}"}
    )
    if status != 200 or not isinstance(body, dict):
        raise OAuthFailure("oauth_provider", f"the userinfo endpoint answered {status}")
    if body.get("sub") != sub:
        raise OAuthFailure("oauth_provider", "the userinfo endpoint names another sub")
    return body


def _text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) else ""


async def identify(
    cfg: ConsoleSettings, *, code: str, verifier: str, nonce: str, redirect_uri: str
) -> ExternalIdentity:
    """The code exchanged and its ID token verified: who signed in."""
    doc = await discovery(cfg)
    tokens = await _exchange(cfg, doc, code, verifier, redirect_uri)
    claims = await _verify(cfg, doc, tokens.get("id_token"), nonce)
    sub = str(claims["sub"])
    if not _text(claims, "preferred_username") and not _text(claims, "email"):
        claims = {**await _userinfo(doc, tokens.get("access_token"), sub), **claims}
    verified = claims.get("email_verified") in (True, "true")
    email = _text(claims, "email") if verified else ""
    login = (
        _text(claims, "preferred_username")
        or _text(claims, "nickname")
        or email.split("@", 1)[0]
        or _text(claims, "name")
    )
    return ExternalIdentity("oidc", sub, login, email[:320] or None)


def forget_cache() -> None:
    """Drop the cached discovery documents and keys (tests, or a changed issuer)."""
    _discovery.clear()
    _jwks.clear()
