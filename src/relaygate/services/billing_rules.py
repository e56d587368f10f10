"""Validation of the billing administration's input: plans, redemption-code batches,
balance adjustments, package grants and their list queries.

Pure functions like ``services/validation.py``: raw input (a JSON object, query
parameters, or CLI options gathered into one) in, normalized values out, or a
:class:`~relaygate.services.fields.ValidationError` naming the field. Money goes through
``billing/money.py`` (units of 1/1,000,000 of the operator currency): non-numbers,
NaN/infinity, more than six decimals and magnitudes over 10^12 are refused there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from relaygate.billing.money import parse_amount
from relaygate.errors import InvalidRequest
from relaygate.services.fields import (
    Field,
    Schema,
    ValidationError,
    choice,
    integer,
    iso_datetime,
    nullable,
    string,
    string_list,
)
from relaygate.services.validation import parse_id

__all__ = [
    "ADJUST_KINDS",
    "CODE_STATUSES",
    "MAX_CODES",
    "PAGE_MAX",
    "PLAN_KINDS",
    "money",
    "page_query",
    "validate_adjustment",
    "validate_code_batch",
    "validate_code_patch",
    "validate_code_query",
    "validate_grant",
    "validate_plan_create",
    "validate_plan_patch",
]

PLAN_KINDS = ("counts", "unlimited", "credit")
PLAN_STATUSES = ("active", "disabled")
CODE_STATUSES = ("unused", "used", "disabled", "expired")
ADJUST_KINDS = ("adjust", "topup")
MAX_CODES = 10_000  # codes per batch
MAX_COUNTS = 10**12  # counts in one package
MAX_MULTIPLIER = 1_000_000  # counts one request may cost
MAX_MULTIPLIERS = 1000  # models in one plan's model_multipliers
MAX_PERIOD_DAYS = 3650
PAGE_MAX = 1000
_PREFIX = re.compile(r"[A-Z0-9]{1,8}")


def money(*, positive: bool = False, signed: bool = False) -> Any:
    """A checker for an amount of money (a decimal string or number) → units."""

    def check(name: str, value: Any) -> int:
        try:
            units = parse_amount(value, name, allow_negative=signed)
        except InvalidRequest as exc:
            raise ValidationError(name, exc.message) from None
        if positive and units <= 0:
            raise ValidationError(name, f"`{name}` must be greater than 0.")
        if signed and units == 0:
            raise ValidationError(name, f"`{name}` must not be 0.")
        return units

    return check


def _raw(name: str, value: Any) -> Any:
    """Accepted as is here; checked by the entity's own rule (it depends on another field)."""
    return value


def _future(name: str, value: datetime | None, at: datetime | None) -> datetime | None:
    """An expiry in UTC (every stored time is UTC) that lies in the future."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    if value <= (at or datetime.now(UTC)):
        raise ValidationError(name, f"`{name}` must be in the future, not {value.isoformat()}.")
    return value


# ---- plans -------------------------------------------------------------------------------
_model = string(1, 128, no_space=True)


def _models(name: str, value: Any) -> list[str] | None:
    if isinstance(value, list | tuple) and not value:
        raise ValidationError(
            name, f"`{name}` must name at least one model; leave it out, or null, for every model."
        )
    return nullable(string_list(1, _model))(name, value)  # type: ignore[no-any-return]


def _counts_per_request(name: str, value: Any) -> int:
    """A multiplier: a whole number of counts, 1 to MAX_MULTIPLIER (a JSON integer; not
    a string, a fraction, a boolean or null; NaN and 1e400 are not JSON to begin with)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MULTIPLIER:
        if value is None:
            shown = "null"
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, dict | list):
            shown = "an object" if isinstance(value, dict) else "an array"
        else:
            shown = repr(value[:24] if isinstance(value, str) else value)
        raise ValidationError(
            name,
            f"`{name}` must be a whole number of counts from 1 to {MAX_MULTIPLIER}, not {shown}.",
        )
    return value


def _multipliers(name: str, value: Any) -> dict[str, int]:
    """``{model: counts per request}``, at most MAX_MULTIPLIERS entries; a model not listed
    costs 1 count. ``null`` or ``{}`` is none."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(name, f"`{name}` must be an object of model: counts per request.")
    if len(value) > MAX_MULTIPLIERS:
        raise ValidationError(name, f"`{name}` may list at most {MAX_MULTIPLIERS} models.")
    return {
        _model(f"{name} key", k): _counts_per_request(f"{name}[{k!r}]", v) for k, v in value.items()
    }


PLAN = Schema(
    "plan",
    {
        "name": Field(string(1, 64, strip=True), required=True),
        "kind": Field(choice(*PLAN_KINDS), required=True, patchable=False),
        "quota": Field(_raw),
        "period_days": Field(integer(1, MAX_PERIOD_DAYS), default=30),
        "models": Field(_models, default=None),
        "model_multipliers": Field(_multipliers, default={}),
        "rpm_limit": Field(nullable(integer(1)), default=None),
        "tpm_limit": Field(nullable(integer(1)), default=None),
        "daily_requests": Field(nullable(integer(1)), default=None),
        "status": Field(choice(*PLAN_STATUSES), default="active"),
        "description": Field(string(0, 256), default=""),
    },
)


def _quota(kind: str, value: Any) -> int | None:
    """Counts for a counts plan, money (→ units) for a credit plan, none when unlimited."""
    if kind == "unlimited":
        if value is not None:
            raise ValidationError("quota", "An unlimited plan has no `quota`; leave it out.")
        return None
    if value is None:
        what = "the number of counts" if kind == "counts" else "the credit per period, e.g. 50"
        raise ValidationError("quota", f"`quota` ({what}) is required for a {kind} plan.")
    if kind == "counts":
        return int(integer(1, MAX_COUNTS)("quota", value))
    return int(money(positive=True)("quota", value))


def _check_plan(out: Mapping[str, Any], kind: str) -> None:
    """Rules across fields: multipliers only for counts plans, and only for models the
    plan covers."""
    multipliers = out.get("model_multipliers") or {}
    if multipliers and kind != "counts":
        raise ValidationError(
            "model_multipliers", f"`model_multipliers` apply to counts plans, not to {kind} plans."
        )
    models = out.get("models")
    if models is not None:
        stray = sorted(set(multipliers) - set(models))
        if stray:
            raise ValidationError(
                "model_multipliers",
                f"`model_multipliers` names {stray[0]!r}, which is not in the plan's `models`.",
            )


def validate_plan_create(body: Mapping[str, Any]) -> dict[str, Any]:
    out = PLAN.create(body)
    out["quota"] = _quota(out["kind"], out.get("quota"))
    _check_plan(out, out["kind"])
    out["model_multipliers"] = out["model_multipliers"] or None
    return out


def validate_plan_patch(
    body: Mapping[str, Any], *, kind: str, current: Mapping[str, Any]
) -> dict[str, Any]:
    """``kind`` is the stored plan's (it cannot change); ``current`` its models and
    multipliers, which the patched values must still agree with. A new quota applies to
    packages granted from now on; models, multipliers and limits to every package."""
    out = PLAN.patch(body)
    if "quota" in out:
        out["quota"] = _quota(kind, out["quota"])
    _check_plan({**current, **out}, kind)
    if "model_multipliers" in out:
        out["model_multipliers"] = out["model_multipliers"] or None
    return out


# ---- packages ----------------------------------------------------------------------------
GRANT = Schema(
    "package",
    {
        "plan_id": Field(integer(1), required=True),
        "expires_at": Field(nullable(iso_datetime), default=None),
    },
)


def validate_grant(body: Mapping[str, Any], *, at: datetime | None = None) -> dict[str, Any]:
    """``expires_at`` (optional, future) ends a credit package; the others last their
    plan's ``period_days`` (checked by the caller, which knows the plan)."""
    out = GRANT.create(body)
    out["expires_at"] = _future("expires_at", out["expires_at"], at)
    return out


# ---- redemption codes --------------------------------------------------------------------
def _prefix(name: str, value: Any) -> str:
    text = string(1, 8)(name, value)
    if not _PREFIX.fullmatch(text):
        raise ValidationError(name, f"`{name}` must be 1-8 capital letters or digits, e.g. RG.")
    return str(text)


CODE_BATCH = Schema(
    "code batch",
    {
        "count": Field(integer(1, MAX_CODES), required=True),
        "amount": Field(money(positive=True)),
        "plan_id": Field(integer(1)),
        "batch": Field(string(1, 64, strip=True)),
        "expires_at": Field(nullable(iso_datetime), default=None),
        "prefix": Field(_prefix, default="RG"),
    },
)


def validate_code_batch(body: Mapping[str, Any], *, at: datetime | None = None) -> dict[str, Any]:
    """``count`` codes (1-10000) each worth ``amount`` or granting ``plan_id`` (exactly
    one), with an optional future ``expires_at`` and ``batch`` name."""
    out = CODE_BATCH.create(body)
    if ("amount" in out) == ("plan_id" in out):
        raise ValidationError(
            "plan_id" if "plan_id" in out else "amount",
            "Give a code's value as `amount` (money) or `plan_id` (a plan to grant), one of them.",
        )
    out["expires_at"] = _future("expires_at", out["expires_at"], at)
    return out


CODE_PATCH = Schema("code", {"status": Field(choice("disabled"), required=True)})


def validate_code_patch(body: Mapping[str, Any]) -> dict[str, Any]:
    """Only ``{"status": "disabled"}``: an unused code can be disabled, nothing else."""
    return CODE_PATCH.patch(body)


# ---- balance adjustments -----------------------------------------------------------------
ADJUST = Schema(
    "balance adjustment",
    {
        "amount": Field(money(signed=True), required=True),
        "reason": Field(string(1, 256, strip=True), required=True),
        "kind": Field(choice(*ADJUST_KINDS), default="adjust"),
        "ref": Field(string(1, 64, no_space=True)),
    },
)


def validate_adjustment(body: Mapping[str, Any]) -> dict[str, Any]:
    """A signed ``amount`` (not 0) with a non-empty ``reason``; ``kind`` ``topup`` must
    be a credit. An optional ``ref`` makes a retried adjustment apply once."""
    out = ADJUST.create(body)
    if out["kind"] == "topup" and out["amount"] < 0:
        raise ValidationError("amount", "A top-up must be positive; use `adjust` to debit.")
    return out


# ---- list queries ------------------------------------------------------------------------
def _int_param(params: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ValidationError(
            name, f"`{name}` must be an integer from {low} to {high}, not {raw!r}."
        )
    return int(raw)


def page_query(params: Mapping[str, str]) -> tuple[int, int | None]:
    """``limit`` (1-1000, default 100) and ``before_id`` (the last id of the previous page)."""
    limit = _int_param(params, "limit", 1, PAGE_MAX) or 100
    before = params.get("before_id")
    return limit, (parse_id("before_id", before) if before is not None else None)


def validate_code_query(params: Mapping[str, str]) -> dict[str, Any]:
    """Filters of a code listing: ``batch``, ``status``, ``used_by``, plus paging."""
    known = {"batch", "status", "used_by", "limit", "before_id"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValidationError(
            unknown[0], f"Unknown filter `{unknown[0]}`; known: {', '.join(sorted(known))}."
        )
    limit, before = page_query(params)
    out: dict[str, Any] = {"limit": limit, "before_id": before}
    if "batch" in params:
        out["batch"] = string(1, 64)("batch", params["batch"])
    if "status" in params:
        out["status"] = choice(*CODE_STATUSES)("status", params["status"])
    if "used_by" in params:
        out["used_by"] = parse_id("used_by", params["used_by"])
    return out
