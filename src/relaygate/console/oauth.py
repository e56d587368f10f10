"""Sign-in with GitHub and OpenID Connect (docs/console.md, "Sign-in with GitHub and OpenID
Connect"): the two browser-facing steps and the TOTP step after them.

``GET /console/api/oauth/{provider}/start`` draws a ``state``, a PKCE verifier and (OIDC) a
``nonce``, keeps them in a short-lived cookie (``rg_oauth``: Fernet-encrypted and
authenticated with the gateway's secret, HttpOnly, SameSite=Lax, sent only to
``/console/api/oauth``) and redirects to the provider. ``GET …/callback`` accepts only the
``state`` of that cookie (a callback URL made in another browser is refused), once (the
state is marked used in the shared state), exchanges the code, finds the user linked to the
identity (``storage/console_identities.py``) or creates one when sign-up is on, and opens a
session through ``Accounts.sign_in_external`` — or, when the user has two-factor on, keeps
the TOTP ticket in ``rg_oauth_totp`` for ``POST /console/api/oauth/totp {code}``.

Every failure redirects to ``/console#/sign-in?error=<code>`` (logged with its reason):
never a JSON error or a 500 page in the middle of a browser's redirects.

``POST …/link`` (a signed-in session) starts the same flow with a ``link`` intent bound to
that session (``console/oauth_link.py``); its callback adds the identity to the account and
redirects to ``/console#/settings?link=<result>`` or ``?link_error=<code>``.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets as pysecrets
import time
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response

from relaygate.console import github, oauth_link, oidc
from relaygate.console.accounts import USERNAME_RE
from relaygate.console.config import ConsoleSettings
from relaygate.console.kit import Call, Handler, ok, read_body, set_cookie
from relaygate.console.oauth_common import (
    ExternalIdentity,
    OAuthFailure,
    pkce_challenge,
    providers,
)
from relaygate.errors import AuthError, InvalidRequest, PolicyError, RateLimited, RelayError
from relaygate.sharedstate.base import SharedStateError
from relaygate.storage.base import Conflict
from relaygate.storage.console_identities import IdentityStore
from relaygate.storage.records import UserRecord

__all__ = ["OAUTH_ROUTES", "providers"]

log = logging.getLogger("relaygate.console")

STATE_COOKIE = "rg_oauth"
TICKET_COOKIE = "rg_oauth_totp"
COOKIE_PATH = "/console/api/oauth"
SIGNED_IN = "/console#/"
TOTP_PAGE = "/console#/sign-in?totp=oauth"
SETTINGS = "/console#/settings"
SIGNUP_WINDOW = 3600.0
SIGN_IN = "signin"


# ---- cookies and redirects -----------------------------------------------------------------
def _cookie(
    response: Response, request: Request, cfg: ConsoleSettings, name: str, value: str, age: int
) -> None:
    parts = [f"{name}={value}", f"Path={COOKIE_PATH}", f"Max-Age={age}", "HttpOnly"]
    parts.append("SameSite=Lax")  # sent on the provider's top-level redirect back, not by forms
    if cfg.secure_cookies or request.url.scheme == "https":
        parts.append("Secure")
    response.headers.append("Set-Cookie", "; ".join(parts))


def _redirect(location: str) -> Response:
    return Response(status_code=302, headers={"Location": location, "Cache-Control": "no-store"})


def _failed(request: Request, call: Call, code: str, linking: bool = False) -> Response:
    """Back to the sign-in page with the error; a link's failure to the settings page when
    the browser is still signed in."""
    if linking and call.current is not None:
        response = _redirect(f"{SETTINGS}?link_error={code}")
    else:
        response = _redirect(f"/console#/sign-in?error={code}")
    _cookie(response, request, call.cfg, STATE_COOKIE, "", 0)
    return response


def _base(request: Request, cfg: ConsoleSettings) -> str:
    return cfg.public_url or f"{request.url.scheme}://{request.url.netloc}"


@dataclass(frozen=True, slots=True)
class _Flow:
    """One browser's started sign-in (or link), as kept in its ``rg_oauth`` cookie. A link
    names the session that started it (the HMAC of its id) and its user."""

    provider: str
    state: str
    verifier: str
    nonce: str
    redirect_uri: str
    started: float
    intent: str = SIGN_IN
    session: str = ""
    user_id: int = 0


def _seal(call: Call, flow: _Flow) -> str:
    data: list[object] = [flow.provider, flow.state, flow.verifier, flow.nonce]
    data += [flow.redirect_uri, flow.started, flow.intent, flow.session, flow.user_id]
    return call.accounts.secrets.encrypt_keys([orjson.dumps(data).decode()])


def _unseal(call: Call, raw: str | None, provider: str) -> _Flow:
    lost = OAuthFailure("oauth_state", "no started sign-in in this browser (cookie missing)")
    if not raw or len(raw) > 4096:
        raise lost
    try:
        p, state, verifier, nonce, uri, started, intent, session, uid = orjson.loads(
            call.accounts.secrets.decrypt_keys(raw)[0]
        )
        flow = _Flow(
            str(p),
            str(state),
            str(verifier),
            str(nonce),
            str(uri),
            float(started),
            str(intent),
            str(session),
            int(uid),
        )
    except (ValueError, TypeError, IndexError):
        raise OAuthFailure("oauth_state", "the sign-in cookie does not decrypt") from None
    if flow.provider != provider:
        raise OAuthFailure("oauth_state", f"the sign-in was started with {flow.provider}")
    if not 0 <= time.time() - flow.started <= call.cfg.oauth_ttl:
        raise OAuthFailure("oauth_state", "the sign-in was started too long ago")
    return flow


# ---- limits ----------------------------------------------------------------------------------
async def _hit(call: Call, key: str, limit: int, window: float, what: str) -> None:
    try:
        wait = await call.accounts.shared.hit_window(key, limit, window)
    except SharedStateError:
        log.warning("console rate limit skipped: shared state unavailable", exc_info=True)
        return
    if wait is not None:
        err = RateLimited(f"Too many {what}; try again later.", code="too_many_attempts")
        err.retry_after = max(1, int(wait + 0.999))
        raise err


async def _claim_state(call: Call, state: str) -> None:
    """A state is used once (across workers when the shared state is Redis)."""
    key = "console:oauth:state:" + call.accounts.secrets.hash_key(state)
    try:
        again = await call.accounts.shared.hit_window(key, 1, call.cfg.oauth_ttl)
    except SharedStateError:
        log.warning("console sign-in state not marked used: shared state unavailable")
        return
    if again is not None:
        raise OAuthFailure("oauth_state", "this sign-in's state was already used")


# ---- users -----------------------------------------------------------------------------------
def _username_base(login: str) -> str:
    name = re.sub(r"[^\w.-]+", "-", login.strip()).strip("-.")[:28]
    return name if USERNAME_RE.fullmatch(name) else f"user-{name}"[:28].rstrip("-.") or "user"


async def _free_username(store: IdentityStore, login: str) -> str:
    base = _username_base(login)
    if len(base) < 3:
        base = "user"
    for candidate in [base] + [f"{base}-{n}" for n in range(2, 10)]:
        if not await store.username_taken(candidate):
            return candidate
    return f"{base[:25]}-{pysecrets.token_hex(3)}"  # at most 32 characters


async def _user_for(call: Call, ident: ExternalIdentity) -> UserRecord:
    """The user linked to the identity, or a new one (when sign-up is on)."""
    store = IdentityStore(call.st.repo.engine)
    found = await store.find(ident.provider, ident.subject)
    if found is not None:
        return found[1]
    if not call.cfg.signup:
        raise PolicyError(
            "Sign-up is turned off on this gateway; ask the operator for an account.",
            code="signup_disabled",
        )
    await _hit(
        call, f"console:signup:ip:{call.ip}", call.cfg.signup_ip_limit, SIGNUP_WINDOW, "sign-ups"
    )
    for _attempt in range(3):
        name = await _free_username(store, ident.login)
        try:
            user = await store.create_user(name, ident.provider, ident.subject, ident.email)
        except Conflict:
            found = await store.find(ident.provider, ident.subject)
            if found is not None:  # the same person's other sign-in won the race
                return found[1]
            continue  # the name was taken in between
        log.info(
            "console sign-up",
            extra={"user_id": user.id, "ip": call.ip, "provider": ident.provider},
        )
        await call.st.catalog.reload_if_changed()
        return user
    raise RelayError("Could not choose a free username; try again.")


# ---- handlers --------------------------------------------------------------------------------
def _configured(call: Call, provider: str) -> None:
    if provider not in {p["id"] for p in providers(call.cfg)}:
        raise OAuthFailure("oauth_not_configured", f"provider {provider[:32]!r} is not on")


async def _begin(
    request: Request, call: Call, provider: str, intent: str = SIGN_IN
) -> tuple[str, _Flow]:
    """The provider's authorization URL and the flow to keep in the browser's cookie."""
    _configured(call, provider)
    uri = f"{_base(request, call.cfg)}/console/api/oauth/{provider}/callback"
    cur = call.current if intent == oauth_link.LINK else None
    flow = _Flow(
        provider,
        pysecrets.token_urlsafe(32),
        pysecrets.token_urlsafe(48),
        pysecrets.token_urlsafe(32),
        uri,
        time.time(),
        intent,
        cur.session.id_hash if cur is not None else "",
        cur.user.id if cur is not None else 0,
    )
    challenge = pkce_challenge(flow.verifier)
    if provider == "oidc":
        url = await oidc.authorize_url(
            call.cfg, state=flow.state, challenge=challenge, nonce=flow.nonce, redirect_uri=uri
        )
    else:
        url = github.authorize_url(
            call.cfg, state=flow.state, challenge=challenge, redirect_uri=uri
        )
    return url, flow


async def start(request: Request, call: Call) -> Response:
    provider = request.path_params["provider"]
    try:
        url, flow = await _begin(request, call, provider)
    except OAuthFailure as failure:
        log.warning(
            "console external sign-in failed",
            extra={"provider": provider[:32], "code": failure.code, "reason": failure.reason},
        )
        return _failed(request, call, failure.code)
    response = _redirect(url)
    _cookie(response, request, call.cfg, STATE_COOKIE, _seal(call, flow), int(call.cfg.oauth_ttl))
    return response


async def link_start(request: Request, call: Call) -> Response:
    """``POST /oauth/{provider}/link`` (a signed-in session and its CSRF token, so another
    site cannot start it): the provider's URL to go to, as JSON; the flow cookie is set."""
    provider = oauth_link.known(request.path_params["provider"])
    await oauth_link.check_proof(call, await read_body(request))
    try:
        url, flow = await _begin(request, call, provider, oauth_link.LINK)
    except OAuthFailure as failure:
        log.warning(
            "console identity link failed",
            extra={"provider": provider, "code": failure.code, "reason": failure.reason},
        )
        raise PolicyError(
            "This sign-in provider is not available right now.", code=failure.code
        ) from None
    response = ok({"url": url})
    _cookie(response, request, call.cfg, STATE_COOKIE, _seal(call, flow), int(call.cfg.oauth_ttl))
    return response


async def _identify(request: Request, call: Call, flow: _Flow) -> ExternalIdentity:
    """The identity of the callback: its state checked and used up, its code exchanged."""
    provider = flow.provider
    q = request.query_params
    given = q.get("state", "")
    if not hmac.compare_digest(given.encode(), flow.state.encode()):
        raise OAuthFailure("oauth_state", "the state does not match this browser's sign-in")
    await _claim_state(call, flow.state)
    error = q.get("error")
    if error:
        code = "oauth_denied" if error == "access_denied" else "oauth_provider"
        raise OAuthFailure(code, f"the provider answered error={error[:64]!r}")
    code = q.get("code", "")
    if not code or len(code) > 2048:
        raise OAuthFailure("oauth_provider", "the provider sent no code")
    cfg = call.cfg
    await _hit(
        call,
        f"console:signin:ip:{call.ip}",
        cfg.signin_ip_limit,
        cfg.signin_window,
        "sign-in attempts",
    )
    if provider == "oidc":
        return await oidc.identify(
            cfg, code=code, verifier=flow.verifier, nonce=flow.nonce, redirect_uri=flow.redirect_uri
        )
    return await github.identify(
        cfg, code=code, verifier=flow.verifier, redirect_uri=flow.redirect_uri
    )


async def _linked(request: Request, call: Call, flow: _Flow, ident: ExternalIdentity) -> Response:
    oauth_link.check_session(call, flow.session, flow.user_id)  # still the same, still valid
    result = await oauth_link.link(call, flow.user_id, ident)
    response = _redirect(f"{SETTINGS}?link={result}")
    _cookie(response, request, call.cfg, STATE_COOKIE, "", 0)
    return response


async def _signed_in(request: Request, call: Call, ident: ExternalIdentity) -> Response:
    cfg = call.cfg
    user = await _user_for(call, ident)
    result = await call.accounts.sign_in_external(user, call.ip, call.ua)
    if call.current is not None:  # a new sign-in replaces the session the browser held
        await call.accounts.sign_out(call.current.session_id)
    if result.ticket is not None:
        response = _redirect(TOTP_PAGE)
        _cookie(response, request, cfg, TICKET_COOKIE, result.ticket, int(cfg.totp_ticket_ttl))
    else:
        assert result.issued is not None
        response = _redirect(SIGNED_IN)
        set_cookie(response, request, cfg, result.issued)
    _cookie(response, request, cfg, STATE_COOKIE, "", 0)
    return response


async def callback(request: Request, call: Call) -> Response:
    provider = request.path_params["provider"]
    linking = False
    try:
        _configured(call, provider)
        flow = _unseal(call, request.cookies.get(STATE_COOKIE), provider)
        linking = flow.intent == oauth_link.LINK
        if linking:  # before the code is used: the session that started it, still valid
            oauth_link.check_session(call, flow.session, flow.user_id)
        ident = await _identify(request, call, flow)
        if linking:
            return await _linked(request, call, flow, ident)
        return await _signed_in(request, call, ident)
    except OAuthFailure as failure:
        code, reason = failure.code, failure.reason
    except RelayError as err:  # account_disabled, signup_disabled, too_many_attempts
        code, reason = err.code or "internal_error", str(err)
    except Exception:
        log.exception("console external sign-in failed", extra={"provider": provider[:32]})
        return _failed(request, call, "internal_error", linking)
    log.warning(
        "console identity link failed" if linking else "console external sign-in failed",
        extra={"provider": provider[:32], "code": code, "reason": reason, "ip": call.ip},
    )
    return _failed(request, call, code, linking)


async def totp(request: Request, call: Call) -> Response:
    """The TOTP step of an external sign-in: the ticket is in the ``rg_oauth_totp`` cookie."""
    body = await read_body(request)
    for name in body:
        if name != "code":
            raise InvalidRequest(f"Unknown field `{str(name)[:64]}`; expected code.")
    ticket = request.cookies.get(TICKET_COOKIE, "")
    if not ticket:
        raise AuthError("This sign-in has expired; sign in again.", code="ticket_expired")
    user, issued = await call.accounts.sign_in_totp(
        {"ticket": ticket, "code": body.get("code")}, call.ip, call.ua
    )
    if call.current is not None:
        await call.accounts.sign_out(call.current.session_id)
    response = ok({"user": {"username": user.username}})
    set_cookie(response, request, call.cfg, issued)
    _cookie(response, request, call.cfg, TICKET_COOKIE, "", 0)
    return response


#: added to ``routes.ROUTES``: (path under /console/api, method) -> (handler, needs a session)
OAUTH_ROUTES: dict[tuple[str, str], tuple[Handler, bool]] = {
    ("/oauth/{provider}/start", "GET"): (start, False),
    ("/oauth/{provider}/callback", "GET"): (callback, False),
    ("/oauth/totp", "POST"): (totp, False),
    ("/oauth/{provider}/link", "POST"): (link_start, True),
    **oauth_link.IDENTITY_ROUTES,  # the linked identities: list, unlink
}
