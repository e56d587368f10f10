"""Plans (套餐 definitions) and the packages granted from them (``user_packages``).

A *plan* is a template: ``counts`` (a number of counts per package, each request costing
its model's multiplier), ``unlimited`` (a period with fair-use limits) or ``credit``
(an amount of money per period, in units, renewed every ``period_days``). A *package* is
one grant of a plan to one user: the plan's kind and quota are copied into it at grant
time (a later plan edit does not change what a user was sold), while the model list,
multipliers and fair-use limits are read from the plan (an operator can correct them).

Storage only stores; the service layer (``services/billing_admin.py``) validates values.
Every write bumps the ``billing`` revision in its transaction, so a worker that caches
packages can tell that they changed.

Concurrency: a grant "touches" the plan row first (a no-op ``UPDATE``), so it holds the
row (PostgreSQL) or the write lock (SQLite) before it reads; a plan deletion does the
same, so a plan is never deleted under a package being granted from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import Conflict, aware, columns, now
from relaygate.storage.tables import plans, redemption_codes, user_packages, users

__all__ = [
    "PLAN_KINDS",
    "USE_ORDER",
    "PackageRecord",
    "PlanRecord",
    "PlanStore",
    "PlanUnavailable",
    "grant_package",
]

PLAN_KINDS = ("counts", "unlimited", "credit")
#: the order in which a request uses a user's packages (before the balance)
USE_ORDER = {"unlimited": 0, "counts": 1, "credit": 2}
REVISION = "billing"

WRITABLE = (
    "name",
    "kind",
    "quota",
    "period_days",
    "models",
    "model_multipliers",
    "rpm_limit",
    "tpm_limit",
    "daily_requests",
    "status",
    "description",
)


class PlanUnavailable(LookupError):
    """The plan to grant does not exist or is not active (disabled or retired)."""


@dataclass(slots=True, frozen=True)
class PlanRecord:
    id: int
    name: str
    kind: str
    quota: int | None  # counts, or units of money per period (credit); None for unlimited
    period_days: int
    models: tuple[str, ...] | None  # the models it covers; None: every model
    model_multipliers: Mapping[str, int]  # counts per request (counts plans); default 1
    rpm_limit: int | None
    tpm_limit: int | None
    daily_requests: int | None
    status: str  # active | disabled | retired
    description: str
    created_at: datetime


@dataclass(slots=True, frozen=True)
class PackageRecord:
    """One package of a user, with what the billing stage needs of its plan."""

    id: int
    user_id: int
    plan_id: int
    plan_name: str
    kind: str
    quota: int  # counts, or units per period (credit); 0 for unlimited
    used: int
    leased: int  # held by workers for requests in flight
    period_days: int
    period_start: datetime
    expires_at: datetime | None
    status: str  # active | cancelled (stored); see display_status()
    created_at: datetime
    models: frozenset[str] | None = None
    model_multipliers: Mapping[str, int] = field(default_factory=dict)
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    daily_requests: int | None = None

    @property
    def remaining(self) -> int | None:
        """Quota left in this period (``quota - used``); None for an unlimited package."""
        return None if self.kind == "unlimited" else max(0, self.quota - self.used)

    @property
    def period_end(self) -> datetime | None:
        """When the current period ends: a credit package renews then; the others end."""
        if self.kind == "credit":
            end = self.period_start + timedelta(days=self.period_days)
            return end if self.expires_at is None else min(end, self.expires_at)
        return self.expires_at

    def covers(self, model: str) -> bool:
        return self.models is None or model in self.models

    def counts_for(self, model: str) -> int:
        """Counts one request of ``model`` costs (a counts package; 1 if not listed)."""
        return int(self.model_multipliers.get(model, 1))

    def display_status(self, at: datetime) -> str:
        """``cancelled``, ``expired``, ``exhausted`` (nothing left this period) or ``active``."""
        if self.status != "active":
            return self.status
        if self.expires_at is not None and self.expires_at <= at:
            return "expired"
        if self.kind != "unlimited" and self.used >= self.quota:
            return "exhausted"
        return "active"


def plan_from_row(r: Any) -> PlanRecord:
    return PlanRecord(
        id=int(r["id"]),
        name=r["name"],
        kind=r["kind"],
        quota=None if r["quota"] is None else int(r["quota"]),
        period_days=int(r["period_days"]),
        models=None if r["models"] is None else tuple(r["models"]),
        model_multipliers={str(k): int(v) for k, v in (r["model_multipliers"] or {}).items()},
        rpm_limit=r["rpm_limit"],
        tpm_limit=r["tpm_limit"],
        daily_requests=r["daily_requests"],
        status=r["status"],
        description=r["description"],
        created_at=aware(r["created_at"]) or now(),
    )


def _package(r: Any, plan: PlanRecord | None) -> PackageRecord:
    return PackageRecord(
        id=int(r["id"]),
        user_id=int(r["user_id"]),
        plan_id=int(r["plan_id"]),
        plan_name=plan.name if plan else "",
        kind=r["kind"],
        quota=int(r["quota"]),
        used=int(r["used"]),
        leased=int(r["leased"]),
        period_days=int(r["period_days"]),
        period_start=aware(r["period_start"]) or now(),
        expires_at=aware(r["expires_at"]),
        status=r["status"],
        created_at=aware(r["created_at"]) or now(),
        models=frozenset(plan.models) if plan and plan.models is not None else None,
        model_multipliers=dict(plan.model_multipliers) if plan else {},
        rpm_limit=plan.rpm_limit if plan else None,
        tpm_limit=plan.tpm_limit if plan else None,
        daily_requests=plan.daily_requests if plan else None,
    )


def _use_order(p: PackageRecord) -> tuple[int, bool, datetime, int]:
    """Unlimited, then counts, then credit; within a kind the soonest expiry first (a
    package that never expires last), then the oldest."""
    return (USE_ORDER.get(p.kind, 9), p.expires_at is None, p.expires_at or p.period_start, p.id)


async def grant_package(
    conn: AsyncConnection,
    user_id: int,
    plan_id: int,
    *,
    at: datetime,
    expires_at: datetime | None = None,
) -> PackageRecord:
    """Grant an active plan to a user in the caller's transaction: a package with the
    plan's kind and quota, nothing used, its period starting ``at``. Counts and unlimited
    packages end ``period_days`` later; a credit package renews every period until
    ``expires_at`` (None: until cancelled). :class:`PlanUnavailable` if the plan is not
    active; ``LookupError`` if the user does not exist."""
    touched = await conn.execute(
        update(plans)
        .where(and_(plans.c.id == plan_id, plans.c.status == "active"))
        .values(status=plans.c.status)
    )
    if touched.rowcount != 1:
        raise PlanUnavailable(f"plan {plan_id} is not an active plan")
    if (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first() is None:
        raise LookupError(f"no user {user_id}")
    prow = (await conn.execute(select(plans).where(plans.c.id == plan_id))).mappings().one()
    plan = plan_from_row(prow)
    if plan.kind != "credit":
        expires_at = at + timedelta(days=plan.period_days)
    values = {
        "user_id": user_id,
        "plan_id": plan_id,
        "kind": plan.kind,
        "quota": plan.quota or 0,
        "used": 0,
        "leased": 0,
        "period_days": plan.period_days,
        "period_start": at,
        "expires_at": expires_at,
        "status": "active",
        "created_at": at,
    }
    res = await conn.execute(insert(user_packages).values(**values))
    await revisions.bump(conn, REVISION)
    row = {"id": int(res.inserted_primary_key[0]), **values}  # type: ignore[index]
    return _package(row, plan)


class PlanStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # ---- plans -------------------------------------------------------------------------
    async def create(self, fields: Mapping[str, Any]) -> PlanRecord:
        values = {**columns(fields, WRITABLE), "created_at": now()}
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(insert(plans).values(**values))
                await revisions.bump(conn, REVISION)
        except IntegrityError as exc:
            raise Conflict(f"a plan named {values.get('name')!r} already exists") from exc
        got = await self.get(int(res.inserted_primary_key[0]))  # type: ignore[index]
        assert got is not None
        return got

    async def get(self, plan_id: int) -> PlanRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(plans).where(plans.c.id == plan_id))).mappings()
            first = row.first()
        return plan_from_row(first) if first else None

    async def list_plans(self, *, include_retired: bool = False) -> list[PlanRecord]:
        q = select(plans).order_by(plans.c.id)
        if not include_retired:
            q = q.where(plans.c.status != "retired")
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [plan_from_row(r) for r in rows]

    async def update(self, plan_id: int, fields: Mapping[str, Any]) -> bool:
        values = columns(fields, WRITABLE)
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(
                    update(plans)
                    .where(and_(plans.c.id == plan_id, plans.c.status != "retired"))
                    .values(**values)
                )
                await revisions.bump(conn, REVISION)
        except IntegrityError as exc:
            raise Conflict(f"a plan named {values.get('name')!r} already exists") from exc
        return bool(res.rowcount)

    async def delete(self, plan_id: int) -> str | None:
        """Delete a plan nothing refers to; a plan that packages or codes refer to is
        *retired* instead (no new grants, its packages keep working, its name stays
        taken). Returns ``"deleted"``, ``"retired"`` or None (no such plan)."""
        async with self.engine.begin() as conn:
            touched = await conn.execute(
                update(plans).where(plans.c.id == plan_id).values(status=plans.c.status)
            )
            if touched.rowcount != 1:
                return None
            used = await conn.scalar(
                select(
                    exists().where(user_packages.c.plan_id == plan_id)
                    | exists().where(redemption_codes.c.plan_id == plan_id)
                )
            )
            if used:
                await conn.execute(
                    update(plans).where(plans.c.id == plan_id).values(status="retired")
                )
                outcome = "retired"
            else:
                await conn.execute(delete(plans).where(plans.c.id == plan_id))
                outcome = "deleted"
            await revisions.bump(conn, REVISION)
        return outcome

    # ---- packages ----------------------------------------------------------------------
    async def grant(
        self, user_id: int, plan_id: int, *, expires_at: datetime | None = None
    ) -> PackageRecord:
        """:func:`grant_package` in a transaction of its own."""
        async with self.engine.begin() as conn:
            return await grant_package(conn, user_id, plan_id, at=now(), expires_at=expires_at)

    async def packages(self, user_id: int, *, package_id: int | None = None) -> list[PackageRecord]:
        """Every package of a user (cancelled and expired ones too), newest first."""
        q = (
            select(user_packages)
            .where(user_packages.c.user_id == user_id)
            .order_by(user_packages.c.id.desc())
        )
        if package_id is not None:
            q = q.where(user_packages.c.id == package_id)
        return await self._with_plans(q)

    async def cancel(self, user_id: int, package_id: int) -> bool:
        """Cancel an active package (kept for the request logs that name it). False if the
        user has no such package or it is not active."""
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(user_packages)
                .where(
                    and_(
                        user_packages.c.id == package_id,
                        user_packages.c.user_id == user_id,
                        user_packages.c.status == "active",
                    )
                )
                .values(status="cancelled")
            )
            if res.rowcount:
                await revisions.bump(conn, REVISION)
        return bool(res.rowcount)

    async def active_packages(self, user_id: int, at: datetime) -> list[PackageRecord]:
        """The packages a request of this user may use at ``at``, in the order of use:
        unlimited, then counts, then credit, each by soonest expiry. Active, started, not
        expired; a credit package whose period has ended is renewed first (``used`` back
        to 0, its period advanced by whole periods; see :meth:`renew`). Exhausted
        packages are included (``remaining`` 0): the caller skips them."""
        q = select(user_packages).where(
            and_(
                user_packages.c.user_id == user_id,
                user_packages.c.status == "active",
                user_packages.c.period_start <= at,
                or_(user_packages.c.expires_at.is_(None), user_packages.c.expires_at > at),
            )
        )
        found = await self._with_plans(q)
        due = [p for p in found if p.kind == "credit" and p.period_start + _days(p) <= at]
        if due:
            for p in due:
                await self.renew(p, at)
            found = await self._with_plans(q)
        return sorted(found, key=_use_order)

    async def renew(self, package: PackageRecord, at: datetime) -> bool:
        """Start the current period of a credit package: ``used`` to 0 and
        ``period_start`` advanced by the whole periods that have passed. Guarded by the
        old ``period_start``, so concurrent callers renew it once. What workers hold
        (``leased``) is untouched: it is charged to the new period when it settles."""
        length = _days(package)
        periods = (at - package.period_start) // length
        if periods < 1:
            return False
        start = package.period_start + periods * length
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(user_packages)
                .where(
                    and_(
                        user_packages.c.id == package.id,
                        user_packages.c.period_start == package.period_start,
                        user_packages.c.status == "active",
                    )
                )
                .values(used=0, period_start=start)
            )
            if res.rowcount:
                await revisions.bump(conn, REVISION)
        return bool(res.rowcount)

    async def _with_plans(self, q: Any) -> list[PackageRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
            ids = {int(r["plan_id"]) for r in rows}
            found = {}
            if ids:
                prows = (await conn.execute(select(plans).where(plans.c.id.in_(ids)))).mappings()
                found = {int(p["id"]): plan_from_row(p) for p in prows.all()}
        return [_package(r, found.get(int(r["plan_id"]))) for r in rows]


def _days(p: PackageRecord) -> timedelta:
    return timedelta(days=max(1, p.period_days))
