"""The account API a key's owner (and the clients they use) reads: balance, packages,
usage, redemption, their own request logs. Authenticated with the same key as the model
API. Off the hot path: these handlers may query the database.

Shapes that real clients read (docs/billing.md):

- ``GET|POST /v1/dashboard/billing/credit_grants`` — seed 000's
  ``{"code":0,"msg":"ok","object":"credit_summary","grants":{"available_amount":"111.8658"}}``
  plus OpenAI's old totals (``total_granted``, ``total_used``, ``total_available``).
- ``GET /dashboard/billing/subscription`` and ``/dashboard/billing/usage`` (also under
  ``/v1``): what NextChat reads — ``hard_limit_usd`` (currency units) and
  ``total_usage`` (hundredths).
- ``GET /v1/account``: balance, packages with counts left, usage this month.
"""

from __future__ import annotations

import calendar
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import and_, func, select

from relaygate.asgi import Request, ok_body, send_json
from relaygate.billing.money import UNITS, format_amount
from relaygate.context import RelayContext
from relaygate.errors import InvalidRequest, NotFound, RelayError
from relaygate.relay.pipeline import authenticate, fail, finish, parse_json_body
from relaygate.services import reports
from relaygate.services.billing_admin import package_view, redeem_code
from relaygate.state import AppState
from relaygate.storage.plans import PlanStore
from relaygate.storage.tables import ledger

__all__ = ["ACCOUNT_PATHS", "handle_account"]

Handler = Callable[[AppState, Request, RelayContext], Awaitable[Any]]


def _number(units: int) -> float:
    """Units as a JSON number of currency (4 decimals), for clients that want numbers."""
    return float(Decimal(units).scaleb(-6).quantize(Decimal("0.0001")))


async def _balance(state: AppState, user_id: int) -> int:
    if state.usage_log is not None:
        await state.usage_log.flush()  # this worker's answered requests are charged first
    found = await state.repo.ledger.balance(user_id)
    return found[0] if found else 0


async def _used(state: AppState, user_id: int, start: datetime, end: datetime) -> int:
    """Money charged to the balance in [start, end) (from the ledger)."""
    q = select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
        and_(
            ledger.c.user_id == user_id,
            ledger.c.kind == "charge",
            ledger.c.created_at >= start,
            ledger.c.created_at < end,
        )
    )
    async with state.repo.engine.connect() as conn:
        total = await conn.scalar(q)
    return -int(total or 0)


async def _granted(state: AppState, user_id: int) -> int:
    q = select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
        and_(ledger.c.user_id == user_id, ledger.c.amount > 0)
    )
    async with state.repo.engine.connect() as conn:
        return int(await conn.scalar(q) or 0)


def _month_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def _query(req: Request) -> dict[str, str]:
    raw = req.scope.get("query_string", b"").decode("latin-1")
    return dict(parse_qsl(raw, keep_blank_values=True))


def _day(params: Mapping[str, str], name: str, default: date) -> date:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"`{name}` must be a date like 2026-11-01.", param=name) from None


# ---- handlers ----------------------------------------------------------------------------
async def credit_grants(state: AppState, req: Request, ctx: RelayContext) -> dict[str, Any]:
    assert ctx.user is not None
    balance = await _balance(state, ctx.user.id)
    granted = await _granted(state, ctx.user.id)
    return {
        "object": "credit_summary",
        "grants": {"available_amount": format_amount(balance)},
        "total_granted": _number(granted),
        "total_used": _number(max(granted - balance, 0)),
        "total_available": _number(balance),
        "currency": state.settings.currency,
    }


async def subscription(state: AppState, req: Request, ctx: RelayContext) -> dict[str, Any]:
    assert ctx.user is not None and ctx.key is not None
    now = datetime.now(UTC)
    balance = await _balance(state, ctx.user.id)
    used = await _used(state, ctx.user.id, _month_start(now), now + timedelta(days=1))
    limit = balance + used  # NextChat shows "used this month / limit"
    if ctx.key.spend_limit is not None:
        limit = min(limit, ctx.key.spend_limit)
    hard = _number(max(limit, 0))
    expires = ctx.key.expires_at
    return {
        "object": "billing_subscription",
        "has_payment_method": True,
        "soft_limit_usd": hard,
        "hard_limit_usd": hard,
        "system_hard_limit_usd": hard,
        "access_until": int(expires.timestamp()) if expires else 0,
        "currency": state.settings.currency,
    }


async def usage(state: AppState, req: Request, ctx: RelayContext) -> dict[str, Any]:
    assert ctx.user is not None
    today = datetime.now(UTC).date()
    params = _query(req)
    start = _day(params, "start_date", today.replace(day=1))
    end = _day(params, "end_date", today + timedelta(days=1))
    if end < start:
        raise InvalidRequest("`end_date` is before `start_date`.", param="end_date")
    if (end - start).days > 366:
        raise InvalidRequest("The date range is at most 366 days.", param="end_date")
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    t1 = datetime(end.year, end.month, end.day, tzinfo=UTC)
    if state.usage_log is not None:
        await state.usage_log.flush()
    used = await _used(state, ctx.user.id, t0, t1)
    # hundredths of the currency (NextChat: Math.round(total_usage) / 100)
    return {
        "object": "list",
        "total_usage": float(Decimal(used) / (UNITS // 100)),
        "currency": state.settings.currency,
    }


async def account(state: AppState, req: Request, ctx: RelayContext) -> dict[str, Any]:
    assert ctx.user is not None and ctx.key is not None
    now = datetime.now(UTC)
    balance = await _balance(state, ctx.user.id)
    start = _month_start(now)
    days = calendar.monthrange(now.year, now.month)[1]
    used = await _used(state, ctx.user.id, start, start + timedelta(days=days))
    packages = await PlanStore(state.repo.engine).active_packages(ctx.user.id, now)
    key = ctx.key
    return {
        "object": "account",
        "currency": state.settings.currency,
        "user": {"id": ctx.user.id, "username": ctx.user.username, "group": ctx.user.group_name},
        "key": {
            "id": key.id,
            "name": key.name,
            "kind": key.kind,
            "spend_limit": format_amount(key.spend_limit) if key.spend_limit is not None else None,
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        },
        "balance": format_amount(balance),
        "balance_units": balance,
        "packages": [package_view(p, now) for p in packages],
        "usage_this_month": {
            "since": start.isoformat(),
            "cost": format_amount(used),
            "cost_units": used,
        },
    }


async def redeem(state: AppState, req: Request, ctx: RelayContext) -> dict[str, Any]:
    assert ctx.user is not None
    body = await parse_json_body(state, req)
    result = await redeem_code(state.repo, ctx.user.id, body.get("code"))
    billing = state.billing
    forget = getattr(billing, "forget_packages", None)
    if forget is not None:
        forget(ctx.user.id)
    return {"data": result}


async def ledger_entries(state: AppState, req: Request, ctx: RelayContext) -> dict[str, Any]:
    assert ctx.user is not None
    params = _query(req)
    before = params.get("before_id")
    limit = params.get("limit", "50")
    if not limit.isdigit() or not 1 <= int(limit) <= 500:
        raise InvalidRequest("`limit` must be an integer from 1 to 500.", param="limit")
    if before is not None and not (before.isdigit() and int(before) < 2**63):
        raise InvalidRequest("`before_id` must be a ledger entry id.", param="before_id")
    entries = await state.repo.ledger.entries(
        user_id=ctx.user.id, before_id=int(before) if before else None, limit=int(limit)
    )
    data = []
    for e in entries:
        d = e.to_public()
        d["amount"] = format_amount(e.amount)
        d["balance_after"] = format_amount(e.balance_after)
        data.append(d)
    return {"object": "list", "data": data}


async def own_logs(state: AppState, req: Request, ctx: RelayContext) -> dict[str, Any]:
    assert ctx.user is not None
    return await reports.user_logs(state.repo, ctx.user.id, _query(req))


async def own_daily(state: AppState, req: Request, ctx: RelayContext) -> dict[str, Any]:
    assert ctx.user is not None
    return await reports.user_daily_usage(state.repo, ctx.user.id, _query(req))


ROUTES: dict[tuple[str, str], Handler] = {}
for _prefix in ("/v1", ""):
    ROUTES[("GET", f"{_prefix}/dashboard/billing/credit_grants")] = credit_grants
    ROUTES[("POST", f"{_prefix}/dashboard/billing/credit_grants")] = credit_grants
    ROUTES[("GET", f"{_prefix}/dashboard/billing/subscription")] = subscription
    ROUTES[("GET", f"{_prefix}/dashboard/billing/usage")] = usage
ROUTES[("GET", "/v1/account")] = account
ROUTES[("POST", "/v1/account/redeem")] = redeem
ROUTES[("GET", "/v1/account/ledger")] = ledger_entries
ROUTES[("GET", "/v1/account/logs")] = own_logs
ROUTES[("GET", "/v1/account/usage/daily")] = own_daily

#: every path served here, with its methods (for 405 answers)
ACCOUNT_PATHS: dict[str, tuple[str, ...]] = {}
for _method, _path in ROUTES:
    ACCOUNT_PATHS[_path] = (*ACCOUNT_PATHS.get(_path, ()), _method)
ACCOUNT_PATHS["/v1/account/logs.csv"] = ("GET",)


async def handle_account(state: AppState, req: Request) -> bool:
    """Serve an account path; False when ``req`` is not one (the caller answers)."""
    path, method = req.path, req.method
    csv = path == "/v1/account/logs.csv" and method == "GET"
    handler = ROUTES.get((method, path))
    if handler is None and not csv:
        return False
    ctx = RelayContext(req.request_id, "models", client_ip=req.client_ip)  # no request-log row
    try:
        authenticate(state, req, ctx)
        assert ctx.user is not None
        if csv:
            await _send_csv(state, req, ctx.user.id)
            return True
        assert handler is not None
        payload = await handler(state, req, ctx)
        ctx.finished = True
        await send_json(req.send, 200, ok_body(payload, state.settings.envelope), req.request_id)
    except RelayError as err:
        if not ctx.started_response:
            await fail(state, req, ctx, err)
    except LookupError:
        await fail(state, req, ctx, NotFound("No such account object."))
    finally:
        finish(state, req, ctx)
    return True


async def _send_csv(state: AppState, req: Request, user_id: int) -> None:
    body = await reports.user_logs_csv(state.repo, user_id, _query(req))  # validates first
    await req.send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/csv; charset=utf-8"),
                (b"content-disposition", b'attachment; filename="requests.csv"'),
                (b"x-request-id", req.request_id.encode()),
            ],
        }
    )
    async for chunk in body:
        await req.send({"type": "http.response.body", "body": chunk, "more_body": True})
    await req.send({"type": "http.response.body", "body": b""})
