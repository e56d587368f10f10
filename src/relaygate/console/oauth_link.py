"""Linking GitHub and OpenID Connect identities to an existing console account, and
unlinking them (docs/console.md, "Sign-in with GitHub and OpenID Connect").

``POST /console/api/oauth/{provider}/link`` (``console/oauth.py``; a signed-in session, its
CSRF token, and the current password when the account has one) starts the provider's flow
with a ``link`` intent: the flow cookie holds the HMAC of the session id and the user's id,
so the callback links only to the session that started it, and only while that session is
still valid. At the callback :func:`link` adds the identity, or refuses it when another user
has it (``identity_linked_elsewhere``) or the user has another identity of that provider
(``identity_provider_linked``); nothing else changes (no new session, no sign-out).

``GET /console/api/identities`` lists the user's identities (provider, its e-mail when the
provider gave a verified one, when it was linked; never tokens or subjects) and
``DELETE /console/api/identities/{provider}`` unlinks one, refused when the account would
keep no way to sign in (no console password and no other identity of a provider that is on).
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relaygate.console import passwords
from relaygate.console.kit import Call, Handler, ok, read_body
from relaygate.console.oauth_common import ExternalIdentity, OAuthFailure, providers
from relaygate.errors import AuthError, InvalidRequest, NotFound, RateLimited
from relaygate.sharedstate.base import SharedStateError
from relaygate.storage import console_identities as store_mod
from relaygate.storage.console_identities import IdentityStore

__all__ = ["IDENTITY_ROUTES", "LINK", "check_proof", "check_session", "known", "link"]

log = logging.getLogger("relaygate.console")

LINK = "link"  # the intent of a flow started from the settings page
KNOWN = ("github", "oidc")
_NAME = re.compile(r"[a-z]{1,32}")


def known(provider: str) -> str:
    """A provider name of the URL, as a JSON 404 when it is not one relaygate knows."""
    if not _NAME.fullmatch(provider) or provider not in KNOWN:
        raise NotFound(
            f"No sign-in provider {provider[:32]!r}; known: {', '.join(KNOWN)}.",
            code="unknown_provider",
            param="provider",
        )
    return provider


async def check_proof(call: Call, body: dict[str, Any]) -> None:
    """Starting a link needs the current password when the account has one (a stolen
    session alone cannot add a way in); wrong passwords count towards the per-username
    sign-in limit, as when changing the password."""
    for name in body:
        if name != "password":
            raise InvalidRequest(f"Unknown field `{str(name)[:64]}`; expected password.")
    user = call.me.user
    creds = await call.accounts.store.credentials(user.id)
    if creds is None or not creds.password_hash:
        return  # signed in through a provider only: that sign-in is the proof
    given = body.get("password")
    if not isinstance(given, str) or not given:
        raise InvalidRequest("`password` is required (your console password).", param="password")
    if len(given) > passwords.MAX_PASSWORD:
        raise InvalidRequest("`password` is too long.", param="password")
    key = f"console:signin:user:{user.username.lower()}"
    cfg = call.cfg
    try:
        wait = await call.accounts.shared.hit_window(key, cfg.signin_user_limit, cfg.signin_window)
    except SharedStateError:
        log.warning("console rate limit skipped: shared state unavailable", exc_info=True)
        wait = None
    if wait is not None:
        err = RateLimited("Too many wrong passwords; try again later.", code="too_many_attempts")
        err.retry_after = max(1, int(wait + 0.999))
        raise err
    right, _ = await passwords.verify_password(creds.password_hash, given)
    if not right:
        raise AuthError("The password is wrong.", code="invalid_credentials", param="password")
    try:
        await call.accounts.shared.undo_hit(key)
    except SharedStateError:
        log.warning("console rate limit: undo failed", exc_info=True)


def check_session(call: Call, session_hash: str, user_id: int) -> None:
    """The callback of a link runs in the session that started it, still valid (``app.py``
    looked it up: an ended, expired or idle session, or a disabled user, is None)."""
    cur = call.current
    if (
        cur is None
        or not session_hash
        or not hmac.compare_digest(cur.session.id_hash.encode(), session_hash.encode())
        or cur.user.id != user_id
    ):
        raise OAuthFailure("link_session", "the session that started the link is not this one")


async def link(call: Call, user_id: int, ident: ExternalIdentity) -> str:
    """Link the identity to the user: ``linked`` or ``already_linked``; refused with
    :class:`OAuthFailure` (``identity_linked_elsewhere``, ``identity_provider_linked``)."""
    found = await IdentityStore(call.st.repo.engine).link(
        user_id, ident.provider, ident.subject, ident.email
    )
    if found == store_mod.ELSEWHERE:
        raise OAuthFailure(
            "identity_linked_elsewhere", f"{ident.provider} identity is another user's"
        )
    if found == store_mod.PROVIDER_TAKEN:
        raise OAuthFailure(
            "identity_provider_linked", f"the user has another {ident.provider} identity"
        )
    if found == store_mod.LINKED:
        log.info(
            "console identity linked",
            extra={"user_id": user_id, "provider": ident.provider, "ip": call.ip},
        )
        return "linked"
    return "already_linked"


# ---- handlers --------------------------------------------------------------------------------
async def list_identities(request: Request, call: Call) -> Response:
    uid = call.me.user.id
    store = IdentityStore(call.st.repo.engine)
    names = {p["id"]: p["name"] for p in providers(call.cfg)}
    rows = sorted(await store.for_user(uid), key=lambda i: (i.provider, i.created_at))
    return ok(
        {
            "identities": [
                {
                    "provider": i.provider,
                    "name": names.get(i.provider, i.provider),
                    "configured": i.provider in names,
                    "email": i.email,
                    "linked_at": i.created_at.isoformat(),
                }
                for i in rows
            ],
            "providers": providers(call.cfg),
            "has_password": await store.has_password(uid),
        }
    )


async def unlink(request: Request, call: Call) -> Response:
    provider = known(request.path_params["provider"])
    await read_body(request)  # nothing expected, but a body must still be JSON
    uid = call.me.user.id
    usable = {p["id"] for p in providers(call.cfg)}
    found = await IdentityStore(call.st.repo.engine).unlink(uid, provider, usable)
    if found == store_mod.NOT_LINKED:
        raise NotFound(
            f"No {provider} identity is linked to your account.",
            code="identity_not_linked",
            param="provider",
        )
    if found == store_mod.LAST_WAY_IN:
        raise InvalidRequest(
            "This is the only way you can sign in: set a console password or link another "
            "identity before unlinking it.",
            code="last_sign_in_method",
            status=409,
        )
    log.info(
        "console identity unlinked", extra={"user_id": uid, "provider": provider, "ip": call.ip}
    )
    return ok({"unlinked": provider})


#: added to ``oauth.OAUTH_ROUTES``: (path under /console/api, method) -> (handler, session)
IDENTITY_ROUTES: dict[tuple[str, str], tuple[Handler, bool]] = {
    ("/identities", "GET"): (list_identities, True),
    ("/identities/{provider}", "DELETE"): (unlink, True),
}
