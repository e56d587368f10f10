"""``BillingAdmin``: redemption codes, balance adjustments, plans and user packages.

Like ``services/admin.py``, the one way these administrative writes reach the database,
for the admin API (``api/admin_billing.py``) and the CLI. Input is validated completely
(``services/billing_rules.py``) before anything is written, and every write is one
transaction, so a refused request changes nothing.

:func:`redeem_code` is the user-facing redemption (the account API calls it). Money in
the JSON views is given twice: ``<name>_units`` (an integer, 1/1,000,000 of the operator
currency) and ``<name>`` (a decimal string, four decimals, truncated toward zero).

Guessing codes: a code carries ~118 random bits, so trying codes is hopeless without a
limit; a per-user limit of wrong attempts is left to the caller's rate limits.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from relaygate.billing.money import format_amount
from relaygate.errors import InvalidRequest, NotFound
from relaygate.services.admin import ConflictError
from relaygate.services.billing_rules import (
    page_query,
    validate_adjustment,
    validate_code_batch,
    validate_code_patch,
    validate_code_query,
    validate_grant,
    validate_plan_create,
    validate_plan_patch,
)
from relaygate.services.fields import ValidationError, choice
from relaygate.services.validation import parse_id
from relaygate.storage.base import Conflict, now
from relaygate.storage.codes import CodeRecord, CodeStore, claim, new_code, why_unclaimed
from relaygate.storage.ledger import KINDS, Insufficient, LedgerEntry, post
from relaygate.storage.plans import (
    PackageRecord,
    PlanRecord,
    PlanStore,
    PlanUnavailable,
    grant_package,
)
from relaygate.storage.repo import Repository

__all__ = [
    "BillingAdmin",
    "code_view",
    "entry_view",
    "normalize_code",
    "package_view",
    "plan_view",
    "redeem_code",
]

_CODE_TEXT = re.compile(r"[A-Z0-9-]{4,64}")


def _money(name: str, units: int | None) -> dict[str, Any]:
    return {name: None if units is None else format_amount(units), f"{name}_units": units}


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


# ---- JSON views --------------------------------------------------------------------------
def plan_view(p: PlanRecord) -> dict[str, Any]:
    """A counts plan's ``quota`` is counts; a credit plan's is money (also in units)."""
    quota: dict[str, Any] = {"quota": p.quota, "quota_units": None}
    if p.kind == "credit":
        quota = _money("quota", p.quota)
    return {
        "id": p.id,
        "name": p.name,
        "kind": p.kind,
        **quota,
        "period_days": p.period_days,
        "models": list(p.models) if p.models is not None else None,
        "model_multipliers": dict(p.model_multipliers),
        "rpm_limit": p.rpm_limit,
        "tpm_limit": p.tpm_limit,
        "daily_requests": p.daily_requests,
        "status": p.status,
        "description": p.description,
        "created_at": p.created_at.isoformat(),
    }


def package_view(p: PackageRecord, at: datetime | None = None) -> dict[str, Any]:
    """``remaining`` is ``quota - used`` of the current period (null when unlimited)."""
    if p.kind == "credit":
        amounts = {
            **_money("quota", p.quota),
            **_money("used", p.used),
            **_money("remaining", p.remaining),
            **_money("leased", p.leased),
        }
    else:
        counted = p.kind == "counts"
        amounts = {
            "quota": p.quota if counted else None,
            "used": p.used,
            "remaining": p.remaining,
            "leased": p.leased,
        }
    return {
        "id": p.id,
        "user_id": p.user_id,
        "plan_id": p.plan_id,
        "plan_name": p.plan_name,
        "kind": p.kind,
        **amounts,
        "period_days": p.period_days,
        "period_start": p.period_start.isoformat(),
        "period_end": _iso(p.period_end),
        "expires_at": _iso(p.expires_at),
        "status": p.display_status(at or now()),
        "models": sorted(p.models) if p.models is not None else None,
        "model_multipliers": dict(p.model_multipliers),
        "rpm_limit": p.rpm_limit,
        "tpm_limit": p.tpm_limit,
        "daily_requests": p.daily_requests,
        "created_at": p.created_at.isoformat(),
    }


def code_view(c: CodeRecord, at: datetime | None = None) -> dict[str, Any]:
    return {
        "id": c.id,
        "code": c.code,
        **_money("amount", c.amount if c.plan_id is None else None),
        "plan_id": c.plan_id,
        "batch": c.batch,
        "status": c.display_status(at or now()),
        "created_by": c.created_by,
        "created_at": c.created_at.isoformat(),
        "expires_at": _iso(c.expires_at),
        "used_by": c.used_by,
        "used_at": _iso(c.used_at),
    }


def entry_view(e: LedgerEntry) -> dict[str, Any]:
    return {
        **e.to_public(),
        "amount": format_amount(e.amount),
        "balance_after": format_amount(e.balance_after),
    }


def _balance_view(balance: int, leased: int) -> dict[str, Any]:
    return {
        **_money("balance", balance),
        **_money("leased", leased),
        **_money("free", balance - leased),
    }


def _csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# ---- redemption (user-facing) -------------------------------------------------------------
def normalize_code(text: Any) -> str:
    """A code as typed (any case, spaces around or inside) in its stored form; a text
    that cannot be a code is ``invalid_code`` at once (no database round trip)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest("`code` is required: the redemption code to redeem.", param="code")
    code = "".join(text.split()).upper()
    if not _CODE_TEXT.fullmatch(code):
        raise InvalidRequest(
            "This is not a valid redemption code.", code="invalid_code", param="code"
        )
    return code


_UNCLAIMED = {
    "unknown": ("invalid_code", "This is not a valid redemption code."),
    "used": ("code_used", "This redemption code has already been used."),
    "disabled": ("code_disabled", "This redemption code has been disabled."),
    "expired": ("code_expired", "This redemption code has expired."),
    "unused": ("code_unavailable", "This redemption code cannot be redeemed now; try again."),
}


async def redeem_code(repo: Repository, user_id: int, code_text: Any) -> dict[str, Any]:
    """Redeem a code for a user, in one transaction: claim the code (exactly one of any
    number of concurrent redemptions can), then credit its amount to the balance (a
    ``redeem`` ledger row, ref ``code:<id>``) or grant its plan (a package). Unknown,
    used, disabled and expired codes are refused (``invalid_code``, ``code_used``,
    ``code_disabled``, ``code_expired``) and change nothing. Returns what was credited
    or granted and the balance after."""
    code = normalize_code(code_text)
    at = now()
    package: PackageRecord | None = None
    try:
        async with repo.engine.begin() as conn:
            rec = await claim(conn, code, user_id, at)
            if rec is None:
                err, message = _UNCLAIMED[await why_unclaimed(conn, code, at)]
                raise InvalidRequest(message, code=err, param="code")
            if rec.plan_id is not None:
                package = await grant_package(conn, user_id, rec.plan_id, at=at)
            else:
                await post(
                    conn,
                    user_id,
                    rec.amount,
                    kind="redeem",
                    reason=f"redemption code {rec.id} (batch {rec.batch})"[:256],
                    ref=f"code:{rec.id}",
                )
    except PlanUnavailable:
        raise InvalidRequest(
            "This redemption code grants a plan that is no longer offered; ask the operator.",
            code="plan_unavailable",
            param="code",
        ) from None
    except LookupError:
        raise NotFound(f"No user with id {user_id}.", param="user_id") from None
    balance, leased = await repo.ledger.balance(user_id) or (0, 0)
    return {
        "code": code,
        "credited": "plan" if package else "balance",
        **_money("amount", None if package else rec.amount),
        "package": package_view(package, at) if package else None,
        **_balance_view(balance, leased),
    }


# ---- the admin service -------------------------------------------------------------------
class BillingAdmin:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.codes = CodeStore(repo.engine)
        self.plans = PlanStore(repo.engine)

    async def _user(self, user_id: Any) -> int:
        uid = parse_id("user_id", user_id)
        if await self.repo.users.get(user_id=uid) is None:
            raise NotFound(f"No user with id {uid}.", param="user_id")
        return uid

    async def _plan(self, plan_id: Any) -> PlanRecord:
        pid = parse_id("plan_id", plan_id)
        plan = await self.plans.get(pid)
        if plan is None:
            raise NotFound(f"No plan with id {pid}.", param="plan_id")
        return plan

    # ---- redemption codes --------------------------------------------------------------
    async def generate_codes(self, body: Mapping[str, Any], actor: str | None) -> dict[str, Any]:
        """A batch of ``count`` new codes, all or none. The batch name must be new (a
        batch is what the CSV export hands out)."""
        fields = validate_code_batch(body)
        plan_id = fields.get("plan_id")
        if plan_id is not None:
            plan = await self._plan(plan_id)
            if plan.status != "active":
                raise ValidationError("plan_id", f"The plan {plan.name!r} is {plan.status}.")
        batch = fields.get("batch") or f"{now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        if await self.codes.batch_exists(batch):
            raise ConflictError(f"The batch {batch!r} exists already; choose another name.")
        for _ in range(3):  # a collision of ~118-bit codes is a formality
            codes = [new_code(fields["prefix"]) for _ in range(fields["count"])]
            try:
                made = await self.codes.create_batch(
                    codes,
                    amount=fields.get("amount", 0),
                    plan_id=plan_id,
                    batch=batch,
                    expires_at=fields["expires_at"],
                    created_by=actor,
                )
                break
            except Conflict:
                if await self.codes.batch_exists(batch):
                    raise ConflictError(f"The batch {batch!r} exists already.") from None
        else:  # pragma: no cover - would need three collisions in a row
            raise ConflictError("Could not draw unique codes; try again.")
        return {
            "batch": batch,
            "count": len(made),
            **_money("amount", fields.get("amount")),
            "plan_id": plan_id,
            "expires_at": _iso(fields["expires_at"]),
            "codes": [c.code for c in made],
            "ids": [c.id for c in made],
        }

    async def list_codes(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        at = now()
        found = await self.codes.search(**validate_code_query(params), at=at)
        return [code_view(c, at) for c in found]

    async def export_codes_csv(self, params: Mapping[str, str]) -> tuple[str, str]:
        """The codes of one batch as CSV (``code,amount,amount_units,plan_id,batch,status,
        expires_at,created_at,used_by,used_at``); returns (file name, text)."""
        batch = params.get("batch")
        if not batch:
            raise ValidationError("batch", "`batch` is required: the batch to export.")
        filters = {"batch": batch}
        if "status" in params:
            filters["status"] = params["status"]
        query = validate_code_query(filters)
        query["limit"] = None
        at = now()
        found = await self.codes.search(**query, at=at)
        if not found and not await self.codes.batch_exists(batch):
            raise NotFound(f"No batch named {batch!r}.", param="batch")
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n")
        cols = ["code", "amount", "amount_units", "plan_id", "batch", "status"]
        tail = ["expires_at", "created_at", "used_by", "used_at"]
        w.writerow(cols + tail)
        for c in reversed(found):  # oldest first: the order they were generated
            v = code_view(c, at)
            w.writerow([_csv_cell(v[k]) for k in cols + tail])
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", batch)[:64] or "codes"
        return f"codes-{safe}.csv", out.getvalue()

    async def disable_code(self, code_id: Any, body: Mapping[str, Any]) -> dict[str, Any]:
        cid = parse_id("code_id", code_id)
        validate_code_patch(body)
        if not await self.codes.disable(cid):
            rec = await self.codes.get(cid)
            if rec is None:
                raise NotFound(f"No code with id {cid}.", param="code_id")
            if rec.status != "disabled":
                raise InvalidRequest(
                    f"The code {cid} has been used; a used code cannot be disabled.",
                    code="code_used",
                    param="status",
                )
        rec = await self.codes.get(cid)
        assert rec is not None
        return code_view(rec)

    async def redeem(self, user_id: Any, code_text: Any) -> dict[str, Any]:
        """Redeem a code on behalf of a user (support, the CLI)."""
        return await redeem_code(self.repo, await self._user(user_id), code_text)

    # ---- balances ----------------------------------------------------------------------
    async def balance(self, user_id: Any) -> dict[str, Any]:
        uid = await self._user(user_id)
        got = await self.repo.ledger.balance(uid)
        if got is None:
            raise NotFound(f"No user with id {uid}.", param="user_id")
        return {"user_id": uid, **_balance_view(*got)}

    async def adjust(self, user_id: Any, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """Credit or debit a balance with a reason (ledger kind ``adjust`` or ``topup``).
        A debit larger than what is free (balance minus what requests in flight hold) is
        refused with ``insufficient_quota``; a repeated ``ref`` with ``conflict``."""
        uid = parse_id("user_id", user_id)
        f = validate_adjustment(body)
        ref = f"adjust:{f['ref']}" if "ref" in f else None
        try:
            after = await self.repo.ledger.post(
                uid, f["amount"], kind=f["kind"], reason=f["reason"], ref=ref, actor=actor
            )
        except Insufficient as exc:
            raise InvalidRequest(
                f"The user has only {format_amount(exc.free)} free (balance minus what "
                f"requests in flight hold); a debit of {format_amount(-f['amount'])} would "
                "overdraw it.",
                code="insufficient_quota",
                param="amount",
            ) from None
        except Conflict:
            raise ConflictError(
                f"An adjustment with ref {f['ref']!r} was made already; nothing was changed.",
            ) from None
        except LookupError:
            raise NotFound(f"No user with id {uid}.", param="user_id") from None
        got = await self.repo.ledger.balance(uid)
        leased = got[1] if got else 0
        return {
            "user_id": uid,
            "kind": f["kind"],
            **_money("amount", f["amount"]),
            "reason": f["reason"],
            **_money("balance_after", after),
            **_balance_view(after, leased),
        }

    async def ledger(self, user_id: Any, params: Mapping[str, str]) -> dict[str, Any]:
        """A user's ledger, newest first, with the balance now; page with ``before_id``."""
        uid = await self._user(user_id)
        limit, before = page_query(params)
        kind = params.get("kind")
        if kind is not None:
            choice(*KINDS)("kind", kind)
        entries = await self.repo.ledger.entries(
            user_id=uid, kind=kind, before_id=before, limit=limit
        )
        got = await self.repo.ledger.balance(uid) or (0, 0)
        return {
            "data": [entry_view(e) for e in entries],
            "next_before_id": entries[-1].id if len(entries) == limit else None,
            **_balance_view(*got),
        }

    # ---- plans -------------------------------------------------------------------------
    async def list_plans(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        retired = params.get("include_retired") in ("1", "true")
        return [plan_view(p) for p in await self.plans.list_plans(include_retired=retired)]

    async def get_plan(self, plan_id: Any) -> dict[str, Any]:
        return plan_view(await self._plan(plan_id))

    async def create_plan(self, body: Mapping[str, Any]) -> dict[str, Any]:
        fields = validate_plan_create(body)
        try:
            return plan_view(await self.plans.create(fields))
        except Conflict:
            raise ConflictError(f"A plan named {fields['name']!r} exists already.") from None

    async def update_plan(self, plan_id: Any, body: Mapping[str, Any]) -> dict[str, Any]:
        plan = await self._plan(plan_id)
        if plan.status == "retired":
            raise InvalidRequest(
                f"The plan {plan.name!r} is retired; it cannot be changed.", code="plan_retired"
            )
        current = {"models": plan.models, "model_multipliers": dict(plan.model_multipliers)}
        fields = validate_plan_patch(body, kind=plan.kind, current=current)
        try:
            changed = await self.plans.update(plan.id, fields)
        except Conflict:
            raise ConflictError(f"A plan named {fields.get('name')!r} exists already.") from None
        if not changed:
            raise NotFound(f"No plan with id {plan.id}.", param="plan_id")
        return plan_view(await self._plan(plan.id))

    async def delete_plan(self, plan_id: Any) -> dict[str, Any]:
        """Deleted if nothing refers to it; retired if packages or codes do."""
        pid = parse_id("plan_id", plan_id)
        outcome = await self.plans.delete(pid)
        if outcome is None:
            raise NotFound(f"No plan with id {pid}.", param="plan_id")
        return {"id": pid, "outcome": outcome}

    # ---- packages ----------------------------------------------------------------------
    async def grant(self, user_id: Any, body: Mapping[str, Any]) -> dict[str, Any]:
        """Give a user a package of a plan (its kind and quota copied, nothing used)."""
        uid = await self._user(user_id)
        fields = validate_grant(body)
        plan = await self._plan(fields["plan_id"])
        if fields["expires_at"] is not None and plan.kind != "credit":
            raise ValidationError(
                "expires_at",
                f"A {plan.kind} package lasts its plan's period ({plan.period_days} days); "
                "`expires_at` is only for credit packages.",
            )
        try:
            pkg = await self.plans.grant(uid, plan.id, expires_at=fields["expires_at"])
        except PlanUnavailable:
            raise ValidationError(
                "plan_id", f"The plan {plan.name!r} is not active; it cannot be granted."
            ) from None
        except LookupError:
            raise NotFound(f"No user with id {uid}.", param="user_id") from None
        return package_view(pkg)

    async def list_packages(self, user_id: Any, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every package of the user, newest first; ``active=1``: only those usable now,
        in the order requests use them."""
        uid = await self._user(user_id)
        at = now()
        if params.get("active") in ("1", "true"):
            found = await self.plans.active_packages(uid, at)
        else:
            found = await self.plans.packages(uid)
        return [package_view(p, at) for p in found]

    async def cancel_package(self, user_id: Any, package_id: Any) -> dict[str, Any]:
        uid = parse_id("user_id", user_id)
        pid = parse_id("package_id", package_id)
        if not await self.plans.cancel(uid, pid):
            found = await self.plans.packages(uid, package_id=pid)
            if not found:
                raise NotFound(f"The user {uid} has no package {pid}.", param="package_id")
            raise InvalidRequest(
                f"The package {pid} is already {found[0].status}.",
                code="package_not_active",
                param="package_id",
            )
        [pkg] = await self.plans.packages(uid, package_id=pid)
        return package_view(pkg)
