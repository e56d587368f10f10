"""Redemption codes, admin balance adjustments, plans and packages: on SQLite and the
running PostgreSQL (the ``repo`` fixture), and through the admin API of a real gateway."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway, run_cli
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from relaygate.errors import InvalidRequest, NotFound, RelayError
from relaygate.services.admin import ConflictError
from relaygate.services.billing_admin import BillingAdmin, redeem_code
from relaygate.services.fields import ValidationError
from relaygate.storage.db import create_engine
from relaygate.storage.leases import LeaseStore
from relaygate.storage.repo import Repository
from relaygate.storage.tables import ledger, redemption_codes, user_packages

CODE_RE = re.compile(r"RG(-[A-HJKMNP-TV-Z2-9]{4}){6}")
YUAN = 1_000_000


async def _ledger_sum(repo: Repository, uid: int) -> int:
    async with repo.engine.connect() as conn:
        total = await conn.scalar(select(func.sum(ledger.c.amount)).where(ledger.c.user_id == uid))
    return int(total or 0)


async def _count(repo: Repository, table: Any, *where: Any) -> int:
    async with repo.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def _balance(repo: Repository, uid: int) -> int:
    got = await repo.ledger.balance(uid)
    assert got is not None
    return got[0]


@asynccontextmanager
async def _second_engine(repo: Repository) -> AsyncIterator[AsyncEngine]:
    """Another engine on the same database: a second worker's connection pool."""
    url = repo.engine.url.render_as_string(hide_password=False)
    if repo.engine.dialect.name == "sqlite":
        engine = create_engine(url)
    else:
        async with repo.engine.connect() as conn:
            schema = await conn.scalar(text("SELECT current_schema()"))
        engine = create_async_engine(
            url, connect_args={"server_settings": {"search_path": str(schema)}}
        )
    try:
        yield engine
    finally:
        await engine.dispose()


def _err(exc: pytest.ExceptionInfo[RelayError]) -> tuple[str, str | None]:
    return exc.value.code, exc.value.param


# ---- codes -------------------------------------------------------------------------------
async def test_generate_list_export_and_disable(repo: Repository) -> None:
    svc = BillingAdmin(repo)
    out = await svc.generate_codes({"count": 40, "amount": "12.5", "batch": "launch"}, actor="root")
    assert out["batch"] == "launch" and out["count"] == 40
    assert out["amount_units"] == 12_500_000 and out["amount"] == "12.5000"
    codes = out["codes"]
    assert len(set(codes)) == 40 and all(CODE_RE.fullmatch(c) for c in codes)
    listed = await svc.list_codes({"batch": "launch", "limit": "1000"})
    assert {c["code"] for c in listed} == set(codes)
    assert {(c["status"], c["created_by"], c["amount_units"]) for c in listed} == {
        ("unused", "root", 12_500_000)
    }
    # the same batch name again is refused, and adds nothing
    with pytest.raises(ConflictError):
        await svc.generate_codes({"count": 1, "amount": 1, "batch": "launch"}, actor="root")
    assert await _count(repo, redemption_codes) == 40

    # paging: newest first, before_id continues
    page1 = await svc.list_codes({"batch": "launch", "limit": "15"})
    page2 = await svc.list_codes(
        {"batch": "launch", "limit": "30", "before_id": str(page1[-1]["id"])}
    )
    assert len(page1) == 15 and len(page2) == 25
    assert {c["id"] for c in page1}.isdisjoint(c["id"] for c in page2)

    first = out["ids"][0]
    assert (await svc.disable_code(first, {"status": "disabled"}))["status"] == "disabled"
    name, body = await svc.export_codes_csv({"batch": "launch"})
    assert name == "codes-launch.csv"
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["code"] for r in rows] == codes  # the order they were generated
    assert rows[0]["status"] == "disabled" and {r["status"] for r in rows[1:]} == {"unused"}
    assert {r["amount"] for r in rows} == {"12.5000"}
    disabled = await svc.list_codes({"status": "disabled"})
    assert [c["id"] for c in disabled] == [first]
    with pytest.raises(NotFound):
        await svc.export_codes_csv({"batch": "nope"})

    # an expiry with an offset is the same instant when read back (stored in UTC)
    when = (datetime.now(UTC) + timedelta(hours=2)).astimezone(timezone(timedelta(hours=8)))
    timed = await svc.generate_codes(
        {"count": 1, "amount": 1, "batch": "tz", "expires_at": when.isoformat()}, actor="root"
    )
    [row] = await svc.list_codes({"batch": "tz", "status": "unused"})
    assert datetime.fromisoformat(row["expires_at"]) == when
    assert datetime.fromisoformat(timed["expires_at"]) == when


async def test_concurrent_redemptions_of_one_code_succeed_once(repo: Repository) -> None:
    """20 redemptions at once, from two connection pools (two workers): exactly one wins."""
    svc = BillingAdmin(repo)
    users = [await repo.users.create(f"racer{i}") for i in range(20)]
    [code] = (await svc.generate_codes({"count": 1, "amount": "7.25"}, actor="root"))["codes"]
    async with _second_engine(repo) as other:
        repos = [repo, Repository(other, repo.secrets)]

        async def attempt(i: int) -> dict[str, Any] | str:
            try:
                return await redeem_code(repos[i % 2], users[i].id, code.lower())
            except InvalidRequest as exc:
                return exc.code

        results = await asyncio.gather(*(attempt(i) for i in range(20)))
    wins = [r for r in results if isinstance(r, dict)]
    assert len(wins) == 1 and wins[0]["amount_units"] == 7_250_000
    assert sorted(r for r in results if isinstance(r, str)) == ["code_used"] * 19
    winner = next(u for u, r in zip(users, results, strict=True) if isinstance(r, dict))
    assert wins[0]["balance_units"] == 7_250_000
    credited = [u.id for u in users if await _balance(repo, u.id) != 0]
    assert credited == [winner.id]
    assert await _count(repo, ledger) == 1
    assert await _ledger_sum(repo, winner.id) == 7_250_000
    [row] = await svc.list_codes({"status": "used"})
    assert row["used_by"] == winner.id


async def test_concurrent_redemptions_of_a_plan_code_grant_one_package(repo: Repository) -> None:
    svc = BillingAdmin(repo)
    plan = await svc.create_plan({"name": "chat100", "kind": "counts", "quota": 100})
    user = await repo.users.create("planner")
    out = await svc.generate_codes({"count": 1, "plan_id": plan["id"]}, actor="root")
    results = await asyncio.gather(
        *(redeem_code(repo, user.id, out["codes"][0]) for _ in range(20)),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, dict)]
    assert len(wins) == 1 and wins[0]["credited"] == "plan"
    assert wins[0]["package"]["quota"] == 100 and wins[0]["package"]["remaining"] == 100
    assert all(
        isinstance(r, InvalidRequest) and r.code == "code_used" for r in results if r not in wins
    )
    assert await _count(repo, user_packages) == 1
    assert await _count(repo, ledger) == 0  # a plan is not money


async def test_unknown_used_expired_disabled_codes_each_refused_and_nothing_changes(
    repo: Repository,
) -> None:
    svc = BillingAdmin(repo)
    user = await repo.users.create("redeemer")
    out = await svc.generate_codes({"count": 4, "amount": "5"}, actor="root")
    used, expired, disabled, fresh = out["codes"]
    await redeem_code(repo, user.id, used)
    async with repo.engine.begin() as conn:  # let one expire (validation refuses a past date)
        await conn.execute(
            update(redemption_codes)
            .where(redemption_codes.c.code == expired)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    await svc.disable_code(out["ids"][2], {"status": "disabled"})
    balance, entries = await _balance(repo, user.id), await _count(repo, ledger)

    cases = [
        (used, "code_used", "already been used"),
        (expired, "code_expired", "expired"),
        (disabled, "code_disabled", "disabled"),
        ("RG-AAAA-BBBB-CCCC-DDDD-EEEE-FFFF", "invalid_code", "not a valid"),
        ("not a code!", "invalid_code", "not a valid"),
        ("x" * 65, "invalid_code", "not a valid"),
    ]
    for text_, code, words in cases:
        with pytest.raises(InvalidRequest) as exc:
            await redeem_code(repo, user.id, text_)
        assert _err(exc) == (code, "code") and words in exc.value.message
    for blank in ("", "   ", None, 42):
        with pytest.raises(InvalidRequest) as exc:
            await redeem_code(repo, user.id, blank)
        assert exc.value.param == "code" and "required" in exc.value.message
    with pytest.raises(NotFound):
        await redeem_code(repo, 99999, fresh)
    assert await _balance(repo, user.id) == balance and await _count(repo, ledger) == entries
    statuses = {c["code"]: c["status"] for c in await svc.list_codes({})}
    assert statuses == {used: "used", expired: "expired", disabled: "disabled", fresh: "unused"}
    assert [c["code"] for c in await svc.list_codes({"status": "expired"})] == [expired]
    # a used code cannot be disabled; a spaced, lower-case copy of the fresh one redeems
    with pytest.raises(InvalidRequest) as exc:
        await svc.disable_code(out["ids"][0], {"status": "disabled"})
    assert exc.value.code == "code_used"
    got = await redeem_code(repo, user.id, "  " + fresh.lower().replace("-", "- ", 2) + " ")
    assert got["balance_units"] == balance + 5 * YUAN


async def test_code_batch_input_is_validated(repo: Repository) -> None:
    svc = BillingAdmin(repo)
    plan = await svc.create_plan({"name": "off", "kind": "unlimited", "status": "disabled"})
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for body, param in [
        ({"count": 0, "amount": 1}, "count"),
        ({"count": 10001, "amount": 1}, "count"),
        ({"count": "5", "amount": 1}, "count"),
        ({"amount": 1}, "count"),
        ({"count": 1}, "amount"),
        ({"count": 1, "amount": 1, "plan_id": plan["id"]}, "plan_id"),
        ({"count": 1, "amount": 0}, "amount"),
        ({"count": 1, "amount": "-3"}, "amount"),
        ({"count": 1, "amount": "ten"}, "amount"),
        ({"count": 1, "amount": "0.0000001"}, "amount"),
        ({"count": 1, "amount": "1e13"}, "amount"),
        ({"count": 1, "amount": 1, "expires_at": past}, "expires_at"),
        ({"count": 1, "amount": 1, "prefix": "rg!"}, "prefix"),
        ({"count": 1, "amount": 1, "colour": "red"}, "colour"),
        ({"count": 1, "plan_id": plan["id"]}, "plan_id"),  # a disabled plan
    ]:
        with pytest.raises(ValidationError) as exc:
            await svc.generate_codes(body, actor="root")
        assert exc.value.param == param, (body, exc.value.message)
    with pytest.raises(NotFound):
        await svc.generate_codes({"count": 1, "plan_id": 999}, actor="root")
    assert await _count(repo, redemption_codes) == 0


# ---- balance adjustments -----------------------------------------------------------------
async def test_adjustments_keep_ledger_equal_to_balance(repo: Repository) -> None:
    svc = BillingAdmin(repo)
    user = await repo.users.create("payer")
    await svc.adjust(user.id, {"amount": "100", "reason": "opening credit", "kind": "topup"}, "ops")
    out = await svc.adjust(user.id, {"amount": "-30.5", "reason": " refund fix "}, "ops")
    assert out["balance_after_units"] == 69_500_000 and out["balance"] == "69.5000"
    assert out["reason"] == "refund fix" and out["amount_units"] == -30_500_000
    await svc.adjust(user.id, {"amount": 0.000001, "reason": "one unit"}, "ops")
    assert await _balance(repo, user.id) == 69_500_001 == await _ledger_sum(repo, user.id)
    got = await svc.ledger(user.id, {"limit": "2"})
    assert [e["reason"] for e in got["data"]] == ["one unit", "refund fix"]
    assert got["data"][1]["actor"] == "ops" and got["data"][1]["kind"] == "adjust"
    assert got["data"][1]["amount"] == "-30.5000" and got["balance_units"] == 69_500_001
    rest = await svc.ledger(user.id, {"before_id": str(got["next_before_id"])})
    assert [e["kind"] for e in rest["data"]] == ["topup"] and rest["next_before_id"] is None

    # an idempotency ref applies once
    body = {"amount": "1", "reason": "retry-safe", "ref": "ticket-42"}
    await svc.adjust(user.id, body, "ops")
    with pytest.raises(ConflictError):
        await svc.adjust(user.id, body, "ops")
    assert await _balance(repo, user.id) == 70_500_001 == await _ledger_sum(repo, user.id)


async def test_over_debit_is_refused_counting_what_requests_hold(repo: Repository) -> None:
    svc = BillingAdmin(repo)
    user = await repo.users.create("thin")
    await svc.adjust(user.id, {"amount": "10", "reason": "start"}, "ops")
    leased = await LeaseStore(repo.engine).acquire("w1", "u", user.id, 4 * YUAN, 4 * YUAN)
    assert leased == 4 * YUAN  # a worker holds 4 of the 10 for requests in flight
    with pytest.raises(InvalidRequest) as exc:
        await svc.adjust(user.id, {"amount": "-6.5", "reason": "too much"}, "ops")
    assert _err(exc) == ("insufficient_quota", "amount")
    assert "only 6.0000 free" in exc.value.message and "6.5000" in exc.value.message
    await svc.adjust(user.id, {"amount": "-6", "reason": "all that is free"}, "ops")
    assert (await svc.balance(user.id))["free_units"] == 0
    assert await _balance(repo, user.id) == 4 * YUAN == await _ledger_sum(repo, user.id)


async def test_bad_adjustments_are_refused_and_write_nothing(repo: Repository) -> None:
    svc = BillingAdmin(repo)
    user = await repo.users.create("careful")
    for body, param in [
        ({"amount": "abc", "reason": "x"}, "amount"),
        ({"amount": None, "reason": "x"}, "amount"),
        ({"amount": True, "reason": "x"}, "amount"),
        ({"amount": "NaN", "reason": "x"}, "amount"),
        ({"amount": "Infinity", "reason": "x"}, "amount"),
        ({"amount": "1e13", "reason": "x"}, "amount"),
        ({"amount": "99999999999999999999", "reason": "x"}, "amount"),
        ({"amount": "0.1234567", "reason": "x"}, "amount"),
        ({"amount": 0, "reason": "x"}, "amount"),
        ({"amount": "-5", "reason": "x", "kind": "topup"}, "amount"),
        ({"amount": "5"}, "reason"),
        ({"amount": "5", "reason": "   "}, "reason"),
        ({"amount": "5", "reason": "r" * 257}, "reason"),
        ({"amount": "5", "reason": "bad\x00byte"}, "reason"),
        ({"amount": "5", "reason": "x", "kind": "charge"}, "kind"),
        ({"amount": "5", "reason": "x", "note": "y"}, "note"),
    ]:
        with pytest.raises(ValidationError) as exc:
            await svc.adjust(user.id, body, "ops")
        assert exc.value.param == param, (body, exc.value.message)
    with pytest.raises(NotFound):
        await svc.adjust(99999, {"amount": "5", "reason": "x"}, "ops")
    with pytest.raises(ValidationError):
        await svc.adjust("me", {"amount": "5", "reason": "x"}, "ops")
    assert await _count(repo, ledger) == 0 and await _balance(repo, user.id) == 0


# ---- plans and packages ------------------------------------------------------------------
async def test_plan_crud_and_validation(repo: Repository) -> None:
    svc = BillingAdmin(repo)
    counts = await svc.create_plan(
        {
            "name": "Chat 100",
            "kind": "counts",
            "quota": 100,
            "period_days": 30,
            "models": ["gpt-4o-mini", "claude-sonnet-4"],
            "model_multipliers": {"claude-sonnet-4": 5},
        }
    )
    assert counts["quota"] == 100 and counts["model_multipliers"] == {"claude-sonnet-4": 5}
    credit = await svc.create_plan({"name": "Monthly 20", "kind": "credit", "quota": "20.5"})
    assert credit["quota"] == "20.5000" and credit["quota_units"] == 20_500_000
    unl = await svc.create_plan({"name": "Pro", "kind": "unlimited", "rpm_limit": 30})
    assert unl["quota"] is None and unl["rpm_limit"] == 30 and unl["period_days"] == 30

    for body, param in [
        ({"name": "a", "kind": "counts"}, "quota"),
        ({"name": "a", "kind": "counts", "quota": 0}, "quota"),
        ({"name": "a", "kind": "counts", "quota": 1.5}, "quota"),
        ({"name": "a", "kind": "credit", "quota": "-1"}, "quota"),
        ({"name": "a", "kind": "credit", "quota": "1.0000001"}, "quota"),
        ({"name": "a", "kind": "unlimited", "quota": 5}, "quota"),
        ({"name": "a", "kind": "weekly", "quota": 5}, "kind"),
        ({"name": "", "kind": "unlimited"}, "name"),
        ({"kind": "unlimited"}, "name"),
        ({"name": "a", "kind": "unlimited", "period_days": 0}, "period_days"),
        ({"name": "a", "kind": "unlimited", "models": []}, "models"),
        ({"name": "a", "kind": "unlimited", "model_multipliers": {"m": 2}}, "model_multipliers"),
        (
            {"name": "a", "kind": "counts", "quota": 1, "model_multipliers": {"m": 0}},
            "model_multipliers['m']",
        ),
        (
            {
                "name": "a",
                "kind": "counts",
                "quota": 1,
                "models": ["x"],
                "model_multipliers": {"m": 2},
            },
            "model_multipliers",
        ),
        ({"name": "a", "kind": "unlimited", "rpm_limit": 0}, "rpm_limit"),
        ({"name": "a", "kind": "unlimited", "status": "retired"}, "status"),
    ]:
        with pytest.raises(ValidationError) as exc:
            await svc.create_plan(body)
        assert exc.value.param == param, (body, exc.value.message)
    with pytest.raises(ConflictError):
        await svc.create_plan({"name": "Pro", "kind": "unlimited"})
    assert len(await svc.list_plans({})) == 3

    patched = await svc.update_plan(counts["id"], {"quota": 200, "description": "more"})
    assert patched["quota"] == 200 and patched["description"] == "more"
    for body, param in [
        ({"kind": "credit"}, "kind"),
        ({"quota": "many"}, "quota"),
        ({"model_multipliers": {"deepseek-chat": 2}}, "model_multipliers"),
        ({}, None),
    ]:
        with pytest.raises(ValidationError) as exc:
            await svc.update_plan(counts["id"], body)
        assert exc.value.param == param
    with pytest.raises(ValidationError):
        await svc.update_plan(credit["id"], {"quota": 0})
    with pytest.raises(NotFound):
        await svc.update_plan(999, {"quota": 1})
    assert (await svc.get_plan(counts["id"]))["quota"] == 200


async def test_grant_list_order_cancel_and_delete(repo: Repository) -> None:
    svc = BillingAdmin(repo)
    user = await repo.users.create("subscriber")
    c_short = await svc.create_plan({"name": "c7", "kind": "counts", "quota": 10, "period_days": 7})
    c_long = await svc.create_plan(
        {
            "name": "c30",
            "kind": "counts",
            "quota": 50,
            "models": ["gpt-4o-mini"],
            "model_multipliers": {"gpt-4o-mini": 3},
        }
    )
    credit = await svc.create_plan(
        {"name": "cr", "kind": "credit", "quota": "5", "period_days": 30}
    )
    unl = await svc.create_plan(
        {"name": "un", "kind": "unlimited", "tpm_limit": 1000, "daily_requests": 50}
    )
    before = datetime.now(UTC)
    p_long = await svc.grant(user.id, {"plan_id": c_long["id"]})
    p_credit = await svc.grant(user.id, {"plan_id": credit["id"]})
    p_short = await svc.grant(user.id, {"plan_id": c_short["id"]})
    p_unl = await svc.grant(user.id, {"plan_id": unl["id"]})
    assert p_long["kind"] == "counts" and p_long["quota"] == 50 and p_long["used"] == 0
    assert p_long["remaining"] == 50 and p_long["status"] == "active"
    expires = datetime.fromisoformat(p_long["expires_at"])
    assert timedelta(days=30) <= expires - before < timedelta(days=30, minutes=1)
    assert p_credit["expires_at"] is None and p_credit["remaining"] == "5.0000"
    assert p_credit["quota_units"] == 5 * YUAN and p_credit["period_end"] is not None
    assert p_unl["remaining"] is None and p_unl["quota"] is None

    active = await svc.plans.active_packages(user.id, datetime.now(UTC))
    assert [p.id for p in active] == [p_unl["id"], p_short["id"], p_long["id"], p_credit["id"]]
    long_rec = active[2]
    assert long_rec.covers("gpt-4o-mini") and not long_rec.covers("claude-sonnet-4")
    assert long_rec.counts_for("gpt-4o-mini") == 3 and active[1].counts_for("anything") == 1
    assert active[0].tpm_limit == 1000 and active[0].daily_requests == 50
    # a plan edit reaches existing packages' models and limits, not their quota
    await svc.update_plan(c_long["id"], {"quota": 999, "model_multipliers": {"gpt-4o-mini": 4}})
    again = {p.id: p for p in await svc.plans.active_packages(user.id, datetime.now(UTC))}
    assert again[p_long["id"]].quota == 50 and again[p_long["id"]].counts_for("gpt-4o-mini") == 4
    # beyond the short package's week it is no longer active
    later = await svc.plans.active_packages(user.id, datetime.now(UTC) + timedelta(days=8))
    assert p_short["id"] not in {p.id for p in later}

    listed = await svc.list_packages(user.id, {})
    assert [p["id"] for p in listed] == [p_unl["id"], p_short["id"], p_credit["id"], p_long["id"]]
    assert [p["id"] for p in await svc.list_packages(user.id, {"active": "1"})] == [
        p.id for p in active
    ]
    cancelled = await svc.cancel_package(user.id, p_short["id"])
    assert cancelled["status"] == "cancelled"
    with pytest.raises(InvalidRequest) as exc:
        await svc.cancel_package(user.id, p_short["id"])
    assert exc.value.code == "package_not_active"
    with pytest.raises(NotFound):
        await svc.cancel_package(user.id, 99999)
    other = await repo.users.create("someone-else")
    with pytest.raises(NotFound):  # a package of another user
        await svc.cancel_package(other.id, p_long["id"])
    now_active = await svc.plans.active_packages(user.id, datetime.now(UTC))
    assert p_short["id"] not in {p.id for p in now_active}

    # grants: bad input, unknown user or plan, inactive plan
    future = (datetime.now(UTC) + timedelta(days=90)).isoformat()
    with pytest.raises(ValidationError) as vexc:
        await svc.grant(user.id, {"plan_id": c_long["id"], "expires_at": future})
    assert vexc.value.param == "expires_at"
    ending = await svc.grant(user.id, {"plan_id": credit["id"], "expires_at": future})
    assert datetime.fromisoformat(ending["expires_at"]) == datetime.fromisoformat(future)
    with pytest.raises(NotFound):
        await svc.grant(99999, {"plan_id": c_long["id"]})
    with pytest.raises(NotFound):
        await svc.grant(user.id, {"plan_id": 99999})
    with pytest.raises(ValidationError):
        await svc.grant(user.id, {"plan_id": "1"})
    await svc.update_plan(unl["id"], {"status": "disabled"})
    with pytest.raises(ValidationError) as vexc:
        await svc.grant(user.id, {"plan_id": unl["id"]})
    assert vexc.value.param == "plan_id" and "not active" in vexc.value.message

    # delete: a plan in use is retired (its packages go on), an unused one is deleted
    assert (await svc.delete_plan(c_long["id"]))["outcome"] == "retired"
    spare = await svc.create_plan({"name": "spare", "kind": "unlimited"})
    assert (await svc.delete_plan(spare["id"]))["outcome"] == "deleted"
    with pytest.raises(NotFound):
        await svc.delete_plan(spare["id"])
    names = [p["name"] for p in await svc.list_plans({})]
    assert "c30" not in names and "spare" not in names
    assert "c30" in [p["name"] for p in await svc.list_plans({"include_retired": "1"})]
    with pytest.raises(InvalidRequest) as exc:
        await svc.update_plan(c_long["id"], {"quota": 5})
    assert exc.value.code == "plan_retired"
    still = await svc.plans.active_packages(user.id, datetime.now(UTC))
    assert p_long["id"] in {p.id for p in still}


async def test_credit_package_renews_each_period(repo: Repository) -> None:
    svc = BillingAdmin(repo)
    user = await repo.users.create("monthly")
    plan = await svc.create_plan({"name": "m", "kind": "credit", "quota": "3", "period_days": 30})
    pkg = await svc.grant(user.id, {"plan_id": plan["id"]})
    async with repo.engine.begin() as conn:  # requests used 2 of the 3
        await conn.execute(
            update(user_packages).where(user_packages.c.id == pkg["id"]).values(used=2 * YUAN)
        )
    start = datetime.fromisoformat(pkg["period_start"])
    [same] = await svc.plans.active_packages(user.id, start + timedelta(days=29))
    assert same.used == 2 * YUAN and same.remaining == YUAN
    [renewed] = await svc.plans.active_packages(user.id, start + timedelta(days=65))
    assert renewed.used == 0 and renewed.remaining == 3 * YUAN
    assert renewed.period_start == start + timedelta(days=60)  # whole periods
    [again] = await svc.plans.active_packages(user.id, start + timedelta(days=66))
    assert again.period_start == renewed.period_start  # renewed once


# ---- through the admin API of a real gateway ---------------------------------------------
@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(Path(tmp_path_factory.mktemp("gw-billing-admin")))
    g.start()
    try:
        yield g
    finally:
        g.stop()


def call(gw: Gateway, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        gw.base + "/admin/api" + path,
        json=body,
        headers={"Authorization": f"Bearer {gw.admin_token}"},
        timeout=30,
    )


def refused(r: httpx.Response, param: str | None, code: str = "invalid_request_error") -> str:
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"]["param"] == param and body["error"]["code"] == code, body
    return str(body["error"]["message"])


def test_admin_api_codes_balances_plans(gw: Gateway) -> None:
    uid = gw.create_user("api-buyer", balance=None)
    made = gw.admin("POST", "/codes", {"count": 3, "amount": "2.5", "batch": "api batch"})
    data = made["data"]
    assert made["code"] == 0 and data["count"] == 3 and data["amount_units"] == 2_500_000
    r = call(gw, "GET", "/codes.csv?batch=api%20batch")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="codes-api_batch.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["code"] for row in rows] == data["codes"]
    refused(call(gw, "GET", "/codes.csv"), "batch")
    assert call(gw, "GET", "/codes.csv?batch=none").status_code == 404
    listed = gw.admin("GET", "/codes?batch=api%20batch&status=unused")["data"]
    assert len(listed) == 3 and listed[0]["amount"] == "2.5000"
    refused(call(gw, "GET", "/codes?status=lost"), "status")
    refused(call(gw, "GET", "/codes?limit=0"), "limit")
    refused(call(gw, "GET", "/codes?owner=1"), "owner")
    cid = data["ids"][0]
    assert gw.admin("PATCH", f"/codes/{cid}", {"status": "disabled"})["data"]["status"] == (
        "disabled"
    )
    refused(call(gw, "PATCH", f"/codes/{cid}", {"status": "unused"}), "status")
    assert call(gw, "PATCH", "/codes/99999", {"status": "disabled"}).status_code == 404

    # balance: adjust with a reason, the actor is the admin, the ledger sums to it
    out = gw.admin("POST", f"/users/{uid}/balance", {"amount": "12.345678", "reason": "gift"})
    assert out["data"]["balance_units"] == 12_345_678 and out["data"]["balance"] == "12.3456"
    gw.admin("POST", f"/users/{uid}/balance", {"amount": -2, "reason": "fix"})
    book = gw.admin("GET", f"/users/{uid}/ledger")
    assert [e["amount_units"] for e in book["data"]] == [-2_000_000, 12_345_678]
    assert sum(e["amount_units"] for e in book["data"]) == book["balance_units"] == 10_345_678
    assert {e["actor"] for e in book["data"]} == {"admin"}
    assert gw.admin("GET", f"/users/{uid}/balance")["data"]["free"] == "10.3456"
    bad_bodies: list[tuple[Any, str | None, str]] = [
        ({"amount": "-10.345679", "reason": "x"}, "amount", "insufficient_quota"),
        ({"amount": "1,5", "reason": "x"}, "amount", "invalid_request_error"),
        ({"amount": "1e400", "reason": "x"}, "amount", "invalid_request_error"),
        ({"amount": 1e300, "reason": "x"}, "amount", "invalid_request_error"),
        ({"amount": "0.0000005", "reason": "x"}, "amount", "invalid_request_error"),
        ({"amount": "5"}, "reason", "invalid_request_error"),
        ({"amount": "5", "reason": ""}, "reason", "invalid_request_error"),
        (["5"], None, "invalid_request_error"),
    ]
    for body, param, code in bad_bodies:
        message = refused(call(gw, "POST", f"/users/{uid}/balance", body), param, code)
        if code == "insufficient_quota":
            assert "only 10.3456 free" in message
    assert call(gw, "POST", "/users/99999/balance", {"amount": 1, "reason": "x"}).status_code == 404
    refused(call(gw, "POST", "/users/abc/balance", {"amount": 1, "reason": "x"}), "user_id")
    assert len(gw.admin("GET", f"/users/{uid}/ledger")["data"]) == 2  # nothing written
    refused(call(gw, "GET", f"/users/{uid}/ledger?limit=5000"), "limit")
    refused(call(gw, "GET", f"/users/{uid}/ledger?kind=gift"), "kind")

    # plans and packages
    plan = gw.admin(
        "POST", "/plans", {"name": "api-counts", "kind": "counts", "quota": 20, "period_days": 10}
    )["data"]
    refused(call(gw, "POST", "/plans", {"name": "p", "kind": "credit", "quota": "abc"}), "quota")
    refused(call(gw, "PATCH", f"/plans/{plan['id']}", {"kind": "credit"}), "kind")
    assert gw.admin("PATCH", f"/plans/{plan['id']}", {"rpm_limit": 9})["data"]["rpm_limit"] == 9
    assert [p["name"] for p in gw.admin("GET", "/plans")["data"]] == ["api-counts"]
    pkg = gw.admin("POST", f"/users/{uid}/packages", {"plan_id": plan["id"]})["data"]
    assert pkg["remaining"] == 20 and pkg["plan_name"] == "api-counts"
    refused(call(gw, "POST", f"/users/{uid}/packages", {"plan_id": 0}), "plan_id")
    assert call(gw, "POST", f"/users/{uid}/packages", {"plan_id": 999}).status_code == 404
    listed_pkgs = gw.admin("GET", f"/users/{uid}/packages")["data"]
    assert [p["id"] for p in listed_pkgs] == [pkg["id"]]
    gone = gw.admin("DELETE", f"/users/{uid}/packages/{pkg['id']}")["data"]
    assert gone["status"] == "cancelled"
    assert gw.admin("GET", f"/users/{uid}/packages?active=1")["data"] == []
    assert gw.admin("DELETE", f"/plans/{plan['id']}")["data"]["outcome"] == "retired"
    r = call(gw, "PUT", "/plans")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"


def test_admin_api_code_generation_limits(gw: Gateway) -> None:
    big = gw.admin("POST", "/codes", {"count": 10000, "amount": "1", "batch": "big"})["data"]
    assert big["count"] == 10000 and len(set(big["codes"])) == 10000
    r = call(gw, "GET", "/codes.csv?batch=big")
    assert r.status_code == 200 and r.text.count("\r\n") == 10001
    refused(call(gw, "POST", "/codes", {"count": 10001, "amount": "1"}), "count")
    refused(
        call(gw, "POST", "/codes", {"count": 1, "amount": "1", "batch": "big"}), None, "conflict"
    )


def test_cli_adjust_generate_and_export(gw: Gateway) -> None:
    uid = gw.create_user("cli-user", balance=None)
    out = json.loads(
        run_cli(gw.env, "user", "adjust", "--user", "cli-user", "--amount", "3.5", "--reason", "x")
    )
    assert out["balance_units"] == 3_500_000 and out["kind"] == "adjust"
    with pytest.raises(RuntimeError, match=r"only 3\.5000 free"):
        run_cli(gw.env, "user", "adjust", "--user", "cli-user", "--amount", "-4", "--reason", "x")
    with pytest.raises(RuntimeError, match="`reason` must not be empty"):
        run_cli(gw.env, "user", "adjust", "--user", "cli-user", "--amount", "1", "--reason", " ")
    assert gw.admin("GET", f"/users/{uid}/balance")["data"]["balance_units"] == 3_500_000
    codes = run_cli(
        gw.env, "code", "generate", "--count", "3", "--amount", "1", "--batch", "cli-batch"
    ).splitlines()
    assert len(codes) == 3 and all(CODE_RE.fullmatch(c) for c in codes)
    exported = run_cli(gw.env, "code", "export", "--batch", "cli-batch")
    assert [r["code"] for r in csv.DictReader(io.StringIO(exported))] == codes
    with pytest.raises(RuntimeError, match="`count`"):
        run_cli(gw.env, "code", "generate", "--count", "0", "--amount", "1")


async def test_leases_of_a_lost_worker_are_released_once_stale(repo: Repository) -> None:
    """A machine lost with its spool never releases its leases: once they have not been
    renewed for STALE_AFTER they go back to their budgets; a living worker's stay."""
    from datetime import UTC, datetime

    from relaygate.storage.leases import STALE_AFTER
    from relaygate.storage.tables import balance_leases, users

    svc = BillingAdmin(repo)
    user = await repo.users.create("lost-node")
    await svc.adjust(user.id, {"amount": "10", "reason": "start"}, "ops")
    store = LeaseStore(repo.engine)
    assert await store.acquire("lost", "u", user.id, 3 * YUAN, 3 * YUAN) == 3 * YUAN
    assert await store.acquire("alive", "u", user.id, 2 * YUAN, 2 * YUAN) == 2 * YUAN
    old = datetime.now(UTC) - STALE_AFTER - STALE_AFTER / 10
    async with repo.engine.begin() as conn:
        await conn.execute(
            balance_leases.update().where(balance_leases.c.owner == "lost").values(renewed_at=old)
        )
    assert await store.release_stale(datetime.now(UTC) - STALE_AFTER) == 3 * YUAN
    assert await store.release_stale(datetime.now(UTC) - STALE_AFTER) == 0  # once
    async with repo.engine.connect() as conn:
        leased = await conn.scalar(
            users.select().with_only_columns(users.c.leased).where(users.c.id == user.id)
        )
        owners = (await conn.execute(balance_leases.select())).mappings().all()
    assert leased == 2 * YUAN
    assert [o["owner"] for o in owners if o["target_id"] == user.id] == ["alive"]
