"""Usage reports for admins and for users: the request log (filters, keyset paging, CSV)
and the daily aggregates, from query-string parameters to JSON-able dicts.

The admin API (``relaygate.api.admin_reports``) calls the ``admin_*`` functions; the
user-facing account API calls the ``user_*`` ones, which take the caller's user id and
force every query to it (a user never sees another user's rows, nor channel ids: the
``attempts`` chain, which names channels, is shown to admins only, as a JSON array).

Every parameter is checked before the database is asked; a bad one is a
:class:`~relaygate.services.fields.ValidationError` naming it (``param``). Money is shown
twice: ``cost`` as an exact decimal string of the operator currency (six decimals, the
precision of a unit, so that sums of the strings add up) and ``cost_units`` as the
integer number of units (docs/billing.md).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import orjson

from relaygate.billing.money import format_amount
from relaygate.services.fields import ValidationError, iso_datetime, string
from relaygate.services.validation import parse_id
from relaygate.storage.repo import Repository
from relaygate.storage.usage_reports import (
    LOG_FIELDS,
    MAX_PAGE,
    GroupBy,
    LogPage,
    StatusFilter,
    daily_usage,
    query_logs,
)

__all__ = [
    "CSV_PAGE",
    "MAX_DAYS",
    "DailyQuery",
    "LogQuery",
    "admin_daily_usage",
    "admin_logs",
    "admin_logs_csv",
    "csv_cell",
    "parse_daily_query",
    "parse_log_query",
    "user_daily_usage",
    "user_logs",
    "user_logs_csv",
]

CSV_PAGE = 1000  # rows fetched per query while streaming a CSV export
MAX_DAYS = 366  # longest date range of a daily-usage query
MONEY_DECIMALS = 6  # cost strings are exact: one unit is 0.000001

_FILTERS = ("user_id", "key_id", "model", "channel_id", "status", "stream", "start", "end")
_LOG_PARAMS = (*_FILTERS, "request_id", "cursor", "limit")
_DAILY_PARAMS = ("group_by", "start", "end", "user_id", "key_id", "model")
_GROUPS = ("model", "user", "key")
_model = string(1, 128)
_request_id = string(1, 64)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Checked parameters of a request-log query: ``filters`` are ``query_logs``
    keywords (user_id, key_id, model, …)."""

    filters: dict[str, Any] = field(default_factory=dict)
    cursor: int | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class DailyQuery:
    group_by: GroupBy
    start: date
    end: date
    filters: dict[str, Any] = field(default_factory=dict)


# ---- parameters ---------------------------------------------------------------------------
def _refuse_unknown(params: Mapping[str, str], known: tuple[str, ...]) -> None:
    for name in params:
        if name not in known:
            raise ValidationError(
                name, f"Unknown query parameter `{name}`; known: {', '.join(known)}."
            )


def _own_user(params: Mapping[str, str], user_id: int | None) -> int | None:
    """The ``user_id`` filter: the caller's own (a user's view), else the parameter."""
    raw = params.get("user_id")
    given = parse_id("user_id", raw) if raw is not None else None
    if user_id is None:
        return given
    if given is not None and given != user_id:
        raise ValidationError("user_id", "`user_id` can only be your own user id.")
    return user_id


def _status(raw: str) -> StatusFilter:
    if raw in ("ok", "error"):
        return cast(StatusFilter, raw)
    if raw.isascii() and raw.isdigit() and 100 <= int(raw) <= 599:
        return int(raw)
    raise ValidationError(
        "status", f"`status` must be 'ok', 'error' or an HTTP status (100-599), not {raw!r}."
    )


def _flag(name: str, raw: str) -> bool:
    low = raw.lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise ValidationError(name, f"`{name}` must be true or false, not {raw!r}.")


_MAX_ID = 2**63 - 1  # ids and cursors are 64-bit in the database


def _positive(name: str, raw: str, max_value: int | None = None) -> int:
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1 or int(raw) > (max_value or _MAX_ID):
        what = f"from 1 to {max_value}" if max_value else "of at least 1 (a 64-bit id)"
        raise ValidationError(name, f"`{name}` must be an integer {what}, not {raw!r}.")
    return int(raw)


def parse_log_query(
    params: Mapping[str, str], *, user_id: int | None = None, export: bool = False
) -> LogQuery:
    """Check the parameters of a log query. ``user_id``: the caller in a user's own view
    (forced filter; ``channel_id`` is not offered). ``export``: a CSV export, which has
    no ``limit`` (it streams every matching row)."""
    known = tuple(
        p
        for p in _LOG_PARAMS
        if not (user_id is not None and p == "channel_id") and not (export and p == "limit")
    )
    _refuse_unknown(params, known)
    f: dict[str, Any] = {}
    uid = _own_user(params, user_id)
    if uid is not None:
        f["user_id"] = uid
    for name in ("key_id", "channel_id"):
        raw = params.get(name)
        if raw is not None:
            f[name] = parse_id(name, raw)
    if (raw := params.get("model")) is not None:
        f["model"] = _model("model", raw)
    if (raw := params.get("request_id")) is not None:
        f["request_id"] = _request_id("request_id", raw)
    if (raw := params.get("status")) is not None:
        f["status"] = _status(raw)
    if (raw := params.get("stream")) is not None:
        f["stream"] = _flag("stream", raw)
    for name in ("start", "end"):
        if (raw := params.get(name)) is not None:
            f[name] = iso_datetime(name, raw)
    if "start" in f and "end" in f and f["end"] <= f["start"]:
        raise ValidationError("end", "`end` must be later than `start`.")
    cursor = params.get("cursor")
    limit = params.get("limit")
    return LogQuery(
        f,
        _positive("cursor", cursor) if cursor is not None else None,
        _positive("limit", limit, MAX_PAGE) if limit is not None else 100,
    )


def _day(name: str, raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(
            name, f"`{name}` must be a date such as 2030-01-31 (UTC), not {raw!r}."
        ) from None


def parse_daily_query(
    params: Mapping[str, str], *, user_id: int | None = None, today: date | None = None
) -> DailyQuery:
    """Check the parameters of a daily-usage query: ``group_by`` (model | user | key,
    default model), ``start``/``end`` (UTC days, inclusive; default the last 30 days, at
    most :data:`MAX_DAYS`), and filters ``user_id`` (forced in a user's view), ``key_id``,
    ``model``."""
    _refuse_unknown(params, _DAILY_PARAMS)
    group = params.get("group_by", "model")
    if group not in _GROUPS:
        raise ValidationError(
            "group_by", f"`group_by` must be one of {', '.join(_GROUPS)}, not {group!r}."
        )
    today = today or datetime.now(UTC).date()
    raw_end = params.get("end")
    end = _day("end", raw_end) if raw_end is not None else today
    raw_start = params.get("start")
    start = _day("start", raw_start) if raw_start is not None else end - timedelta(days=29)
    if end < start:
        raise ValidationError("end", "`end` must not be before `start`.")
    if (end - start).days + 1 > MAX_DAYS:
        raise ValidationError("end", f"A daily-usage range covers at most {MAX_DAYS} days.")
    f: dict[str, Any] = {}
    uid = _own_user(params, user_id)
    if uid is not None:
        f["user_id"] = uid
    if (raw := params.get("key_id")) is not None:
        f["key_id"] = parse_id("key_id", raw)
    if (raw := params.get("model")) is not None:
        f["model"] = _model("model", raw)
    return DailyQuery(cast(GroupBy, group), start, end, f)


# ---- presentation ---------------------------------------------------------------------------
def _money(units: int) -> str:
    return format_amount(units, MONEY_DECIMALS)


def _columns(admin: bool) -> tuple[str, ...]:
    """The fields of a shown row, in order; cost is followed by cost_units."""
    out: list[str] = []
    for name in LOG_FIELDS:
        if name in ("channel_id", "attempts") and not admin:
            continue
        out.append(name)
        if name == "cost":
            out.append("cost_units")
    return tuple(out)


_ADMIN_COLUMNS = _columns(True)
_USER_COLUMNS = _columns(False)


def _present(row: Mapping[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in columns:
        if name == "cost":
            out[name] = _money(int(row["cost"]))
        elif name == "cost_units":
            out[name] = int(row["cost"])
        elif name == "created_at":
            out[name] = row[name].isoformat()
        elif name == "attempts":
            out[name] = _attempts(row[name])
        elif name == "search":
            out[name] = _search(row[name])
        else:
            out[name] = row[name]
    return out


def _attempts(raw: Any) -> list[Any] | None:
    """The stored attempt chain (JSON text) as an array; None when there is none (a
    request served by its first attempt) or the text is not an array."""
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def _search(raw: Any) -> dict[str, Any] | None:
    """An online request's stored search (JSON text: status, hits, ms) as an object."""
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def csv_cell(value: Any) -> str:
    """A CSV cell. Text that a spreadsheet would run as a formula (starting with
    ``= + - @``, tab or CR: CSV injection) is prefixed with ``'``. Numbers are written
    as numbers; they are the gateway's own and cannot carry a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


async def _page(repo: Repository, query: LogQuery, cursor: int | None, limit: int) -> LogPage:
    return await query_logs(repo.log_engine, **query.filters, cursor=cursor, limit=limit)


async def _logs(repo: Repository, query: LogQuery, columns: tuple[str, ...]) -> dict[str, Any]:
    page = await _page(repo, query, query.cursor, query.limit)
    return {
        "data": [_present(r, columns) for r in page.rows],
        "next_cursor": None if page.next_cursor is None else str(page.next_cursor),
    }


def _csv_chunk(rows: list[dict[str, Any]], columns: tuple[str, ...], header: bool) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    if header:
        w.writerow(columns)
    for r in rows:
        shown = _present(r, columns)
        # the cost string is the gateway's own number: written as it is; the attempt
        # chain as its JSON text
        w.writerow(
            [
                shown[c]
                if c == "cost"
                else csv_cell(r[c] if c in ("attempts", "search") else shown[c])
                for c in columns
            ]
        )
    return buf.getvalue().encode()


async def _csv(repo: Repository, query: LogQuery, columns: tuple[str, ...]) -> AsyncIterator[bytes]:
    """The header and the first page are read before this returns (a failing database is
    an error response, not a cut stream); the rest is read page by page while streaming,
    so an export of millions of rows holds one page in memory and no connection between
    pages."""
    first = await _page(repo, query, query.cursor, CSV_PAGE)

    async def stream() -> AsyncIterator[bytes]:
        page = first
        yield _csv_chunk(page.rows, columns, header=True)
        while page.next_cursor is not None:
            page = await _page(repo, query, page.next_cursor, CSV_PAGE)
            yield _csv_chunk(page.rows, columns, header=False)

    return stream()


async def _daily(repo: Repository, query: DailyQuery) -> dict[str, Any]:
    rows = await daily_usage(
        repo.log_engine,
        group_by=query.group_by,
        start=query.start,
        end=query.end,
        **query.filters,
    )
    totals = {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0}
    cost = counts = 0
    data = []
    for r in rows:
        for k in totals:
            totals[k] += r[k]
        cost += r["cost"]
        counts += r["counts"]
        data.append({**r, "cost": _money(r["cost"]), "cost_units": r["cost"]})
    return {
        "group_by": query.group_by,
        "start": query.start.isoformat(),
        "end": query.end.isoformat(),
        "data": data,
        "totals": {**totals, "cost": _money(cost), "cost_units": cost, "counts": counts},
    }


# ---- the admin view ---------------------------------------------------------------------------
async def admin_logs(repo: Repository, params: Mapping[str, str]) -> dict[str, Any]:
    """``{"data": [rows], "next_cursor": str | None}``, every user's rows."""
    return await _logs(repo, parse_log_query(params), _ADMIN_COLUMNS)


async def admin_logs_csv(repo: Repository, params: Mapping[str, str]) -> AsyncIterator[bytes]:
    """The CSV export (header row first) as an async iterator of encoded lines."""
    return await _csv(repo, parse_log_query(params, export=True), _ADMIN_COLUMNS)


async def admin_daily_usage(repo: Repository, params: Mapping[str, str]) -> dict[str, Any]:
    """``{"group_by", "start", "end", "data": [per day and group], "totals"}``."""
    return await _daily(repo, parse_daily_query(params))


# ---- a user's own view ----------------------------------------------------------------------
async def user_logs(repo: Repository, user_id: int, params: Mapping[str, str]) -> dict[str, Any]:
    """The caller's rows only (``user_id`` forced; no ``channel_id`` shown or filter)."""
    return await _logs(repo, parse_log_query(params, user_id=user_id), _USER_COLUMNS)


async def user_logs_csv(
    repo: Repository, user_id: int, params: Mapping[str, str]
) -> AsyncIterator[bytes]:
    """The caller's rows as CSV (see :func:`admin_logs_csv`)."""
    return await _csv(repo, parse_log_query(params, user_id=user_id, export=True), _USER_COLUMNS)


async def user_daily_usage(
    repo: Repository, user_id: int, params: Mapping[str, str]
) -> dict[str, Any]:
    """The caller's daily usage (``user_id`` forced)."""
    return await _daily(repo, parse_daily_query(params, user_id=user_id))
