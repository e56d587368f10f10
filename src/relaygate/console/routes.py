"""The console JSON API's handlers (``/console/api/…``), as ``(path, method) -> (handler,
needs a session)``. Sessions, CSRF and JSON errors are ``app.py``'s; the rules of every
write are the services' (``accounts.py``, ``services/admin.py``, ``services/billing_admin.py``,
``services/reports.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from relaygate.api.account_routes import _balance, _used  # the account API's own figures
from relaygate.billing.money import format_amount
from relaygate.console.accounts import Current
from relaygate.console.kit import Call, Handler, clear_cookie, ok, read_body, set_cookie
from relaygate.console.oauth import OAUTH_ROUTES, providers
from relaygate.errors import InvalidRequest, NotFound
from relaygate.services import reports
from relaygate.services.admin import AdminService
from relaygate.services.billing_admin import package_view, redeem_code
from relaygate.services.validation import parse_id
from relaygate.storage.plans import PlanStore
from relaygate.storage.records import KeyRecord

__all__ = ["ROUTES"]

#: the fields a user may give a new key (its owner is the signed-in user)
KEY_FIELDS = (
    "name",
    "kind",
    "models",
    "expires_at",
    "rpm_limit",
    "tpm_limit",
    "concurrency_limit",
    "spend_limit",
    "ip_allow",
)
USER_KEY_KINDS = ("api", "personal")
EXACT = 6  # decimals of money shown: one unit (the logs' costs are exact too)


def _me(cur: Current, totp_enabled: bool, csrf: str) -> dict[str, Any]:
    u = cur.user
    return {
        "user": {"id": u.id, "username": u.username, "role": u.role, "group": u.group_name},
        "csrf_token": csrf,
        "totp_enabled": totp_enabled,
        "session": {"expires_at": cur.session.expires_at.isoformat()},
    }


def _service(call: Call) -> AdminService:
    s = call.st.settings
    return AdminService(
        call.st.repo,
        api_key_prefix=s.api_key_prefix,
        personal_key_prefix=s.personal_key_prefix,
        personal_concurrency=s.personal_concurrency,
    )


def _key_view(k: KeyRecord) -> dict[str, Any]:
    view = k.to_public()
    view.pop("user_id", None)
    return view


async def _reload(call: Call) -> None:
    """This worker serves the write at once (others within the refresh interval)."""
    await call.st.catalog.reload_if_changed()


# ---- public ---------------------------------------------------------------------------
async def config(request: Request, call: Call) -> Response:
    return ok(
        {
            "signup": call.cfg.signup,
            "currency": call.st.settings.currency,
            "sign_in_methods": ["password", *(p["id"] for p in providers(call.cfg))],
            "oauth_providers": providers(call.cfg),
            "key_kinds": list(USER_KEY_KINDS),
        }
    )


async def _end_previous(call: Call) -> None:
    """A new sign-in replaces the session the browser still held (no fixation, no
    forgotten sessions)."""
    if call.current is not None:
        await call.accounts.sign_out(call.current.session_id)


async def sign_up(request: Request, call: Call) -> Response:
    user, issued = await call.accounts.sign_up(await read_body(request), call.ip, call.ua)
    await _end_previous(call)
    await _reload(call)
    response = ok({"user": {"id": user.id, "username": user.username}}, 201)
    set_cookie(response, request, call.cfg, issued)
    return response


async def sign_in(request: Request, call: Call) -> Response:
    result = await call.accounts.sign_in(await read_body(request), call.ip, call.ua)
    if result.ticket is not None:
        return ok({"totp_required": True, "ticket": result.ticket})
    assert result.issued is not None
    await _end_previous(call)
    response = ok({"totp_required": False, "user": {"username": result.user.username}})
    set_cookie(response, request, call.cfg, result.issued)
    return response


async def sign_in_totp(request: Request, call: Call) -> Response:
    user, issued = await call.accounts.sign_in_totp(await read_body(request), call.ip, call.ua)
    await _end_previous(call)
    response = ok({"user": {"username": user.username}})
    set_cookie(response, request, call.cfg, issued)
    return response


async def sign_out(request: Request, call: Call) -> Response:
    await call.accounts.sign_out(call.me.session_id)
    response = ok({})
    clear_cookie(response, request, call.cfg)
    return response


# ---- the signed-in user ----------------------------------------------------------------
async def me(request: Request, call: Call) -> Response:
    cur = call.me
    enabled = await call.accounts.totp_status(cur.user.id)
    return ok(_me(cur, enabled, call.accounts.csrf_token(cur.session_id)))


async def change_password(request: Request, call: Call) -> Response:
    ended = await call.accounts.change_password(call.me, await read_body(request))
    return ok({"other_sessions_ended": ended})


async def totp_setup(request: Request, call: Call) -> Response:
    await read_body(request)  # nothing expected, but a body must still be JSON
    return ok(await call.accounts.totp_setup(call.me))


async def totp_enable(request: Request, call: Call) -> Response:
    codes = await call.accounts.totp_enable(call.me, await read_body(request))
    # the recovery codes are in this answer only: stored as HMACs, never shown again
    return ok({"totp_enabled": True, "recovery_codes": codes})


async def totp_disable(request: Request, call: Call) -> Response:
    await call.accounts.totp_disable(call.me, await read_body(request))
    return ok({"totp_enabled": False})


async def recovery_status(request: Request, call: Call) -> Response:
    uid = call.me.user.id
    enabled = await call.accounts.totp_status(uid)
    status = await call.accounts.recovery_status(uid)
    made = status.created_at.isoformat() if status.created_at and enabled else None
    return ok(
        {
            "totp_enabled": enabled,
            "total": status.total if enabled else 0,
            "left": status.left if enabled else 0,
            "created_at": made,
        }
    )


async def recovery_regenerate(request: Request, call: Call) -> Response:
    codes = await call.accounts.regenerate_recovery(call.me, await read_body(request))
    return ok({"recovery_codes": codes})


# ---- keys ------------------------------------------------------------------------------
async def list_keys(request: Request, call: Call) -> Response:
    keys = await _service(call).list_keys(call.me.user.id)
    return ok([_key_view(k) for k in sorted(keys, key=lambda k: -k.id)])


async def create_key(request: Request, call: Call) -> Response:
    body = await read_body(request)
    for name in body:
        if name not in KEY_FIELDS:
            raise InvalidRequest(
                f"Unknown field `{str(name)[:64]}`; a key takes {', '.join(KEY_FIELDS)}.",
                param=str(name)[:64],
            )
    kind = body.get("kind", "api")
    if kind not in USER_KEY_KINDS:
        raise InvalidRequest("`kind` must be `api` or `personal`.", param="kind")
    svc = _service(call)
    uid = call.me.user.id
    live = [k for k in await svc.list_keys(uid) if k.status != "revoked"]
    if len(live) >= call.cfg.max_keys:
        raise InvalidRequest(
            f"You have {len(live)} keys; revoke one before creating another "
            f"(at most {call.cfg.max_keys}).",
            code="too_many_keys",
        )
    rec, plain = await svc.create_key({**body, "user_id": uid})
    await _reload(call)
    # the plain key is in this answer only: it is stored as an HMAC and never shown again
    return ok({**_key_view(rec), "key": plain}, 201)


async def revoke_key(request: Request, call: Call) -> Response:
    kid = parse_id("key_id", request.path_params["id"])
    svc = _service(call)
    key = await call.st.repo.keys.get(kid)
    if key is None or key.user_id != call.me.user.id:
        raise NotFound(f"You have no key with id {kid}.", code="not_found", param="key_id")
    rec = await svc.update_key(kid, {"status": "revoked"})
    await _reload(call)
    return ok(_key_view(rec))


# ---- money and usage ------------------------------------------------------------------
async def account(request: Request, call: Call) -> Response:
    st = call.st
    uid = call.me.user.id
    at = datetime.now(UTC)
    balance = await _balance(st, uid)  # flushes this worker's answered requests first
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    used = await _used(st, uid, start, at + timedelta(days=1))
    packages = await PlanStore(st.repo.engine).active_packages(uid, at)
    return ok(
        {
            "currency": st.settings.currency,
            "balance": format_amount(balance, EXACT),
            "balance_units": balance,
            "packages": [package_view(p, at) for p in packages],
            "usage_this_month": {
                "since": start.isoformat(),
                "cost": format_amount(used, EXACT),
                "cost_units": used,
            },
        }
    )


def _params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items()}


async def logs(request: Request, call: Call) -> Response:
    st = call.st
    if st.usage_log is not None:
        await st.usage_log.flush()  # the requests this worker just answered are listed
    page = await reports.user_logs(st.repo, call.me.user.id, _params(request))
    return ok(page)


async def logs_csv(request: Request, call: Call) -> Response:
    """The same rows as CSV, every matching row (streamed; cells that a spreadsheet would
    run as formulas are quoted by ``services/reports.py``)."""
    st = call.st
    if st.usage_log is not None:
        await st.usage_log.flush()
    body = await reports.user_logs_csv(st.repo, call.me.user.id, _params(request))
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="requests.csv"',
            "Cache-Control": "no-store",
        },
    )


async def daily(request: Request, call: Call) -> Response:
    page = await reports.user_daily_usage(call.st.repo, call.me.user.id, _params(request))
    return ok(page)


async def redeem(request: Request, call: Call) -> Response:
    body = await read_body(request)
    for name in body:
        if name != "code":
            raise InvalidRequest(f"Unknown field `{str(name)[:64]}`; expected code.")
    uid = call.me.user.id
    result = await redeem_code(call.st.repo, uid, body.get("code"))
    forget = getattr(call.st.billing, "forget_packages", None)
    if forget is not None:
        forget(uid)  # a granted package is used from the next request on
    return ok(result)


#: (path under /console/api, method) -> (handler, needs a signed-in session)
ROUTES: dict[tuple[str, str], tuple[Handler, bool]] = {
    ("/config", "GET"): (config, False),
    ("/sign-up", "POST"): (sign_up, False),
    ("/sign-in", "POST"): (sign_in, False),
    ("/sign-in/totp", "POST"): (sign_in_totp, False),
    ("/sign-out", "POST"): (sign_out, True),
    ("/me", "GET"): (me, True),
    ("/password", "POST"): (change_password, True),
    ("/totp/setup", "POST"): (totp_setup, True),
    ("/totp/enable", "POST"): (totp_enable, True),
    ("/totp/disable", "POST"): (totp_disable, True),
    ("/totp/recovery-codes", "GET"): (recovery_status, True),
    ("/totp/recovery-codes", "POST"): (recovery_regenerate, True),
    ("/keys", "GET"): (list_keys, True),
    ("/keys", "POST"): (create_key, True),
    ("/keys/{id}", "DELETE"): (revoke_key, True),
    ("/account", "GET"): (account, True),
    ("/logs", "GET"): (logs, True),
    ("/logs.csv", "GET"): (logs_csv, True),
    ("/usage/daily", "GET"): (daily, True),
    ("/redeem", "POST"): (redeem, True),
}
ROUTES.update(OAUTH_ROUTES)  # sign-in with GitHub and OpenID Connect (oauth.py)
