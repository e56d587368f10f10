"""Content-safety administration (docs/safety.md): word lists, their words, import and
export, the "test this text" call and the audit of hits.

A list is ``{"name", "category", "action", "groups", "enabled", "description"}``:
``action`` is ``block`` (refuse the prompt / end the answer), ``mask`` (replace the word) or
``log`` (only audit it); ``groups`` the user groups it applies to (null: every group). A
create may carry its first ``words``. Words are checked whole by ``safety/lists.py``
(:class:`~relaygate.safety.lists.ListRefused` naming the invalid entries, nothing saved).
Every write bumps the configuration revision, so every worker and node reloads its policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from relaygate.errors import InvalidRequest, NotFound
from relaygate.safety.base import ACTIONS, Policy
from relaygate.safety.lists import (
    FORMATS,
    ListRefused,
    WordCheck,
    check_words,
    export_words,
    parse_words,
)
from relaygate.services.admin import ConflictError
from relaygate.services.fields import (
    Field,
    Schema,
    ValidationError,
    boolean,
    choice,
    iso_datetime,
    nullable,
    string,
    string_list,
)
from relaygate.services.validation import GROUP_RE
from relaygate.storage.base import Conflict
from relaygate.storage.safety import AuditQuery, SafetyListRecord, SafetyStore

__all__ = ["LIST", "SafetyService"]

MAX_TEST_TEXT = 100_000  # characters of a "test this text" call
MAX_AUDIT_PAGE = 1000


def _group(name: str, value: Any) -> str:
    if not isinstance(value, str) or GROUP_RE.fullmatch(value) is None:
        raise ValidationError(
            name, f"`{name}` must be a user group: 1-32 of a-z, 0-9, `_` and `-`, not {value!r}."
        )
    return value


LIST = Schema(
    "safety list",
    {
        "name": Field(string(1, 64, strip=True), required=True),
        "category": Field(string(0, 64, strip=True), default=""),
        "action": Field(choice(*ACTIONS), default="block"),
        "groups": Field(nullable(string_list(1, _group, max_items=100)), default=None),
        "enabled": Field(boolean, default=True),
        "description": Field(string(0, 512), default=""),
    },
)


def _words_of(name: str, value: Any) -> WordCheck:
    """A JSON ``words`` array (strings or ``{"word", "category"?, "action"?}``)."""
    if not isinstance(value, list):
        raise ValidationError(name, f"`{name}` must be an array of words.")
    return parse_words_json(value, name)


def parse_words_json(items: list[Any], name: str = "words") -> WordCheck:
    raw: list[tuple[Any, Any, Any, str]] = []
    for i, item in enumerate(items):
        where = f"{name}[{i}]"
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"word", "category", "action"})
            if unknown:
                raise ValidationError(
                    name, f"`{where}` has unknown field(s): {', '.join(unknown)}."
                )
            raw.append((item.get("word"), item.get("category"), item.get("action"), where))
        else:
            raw.append((item, None, None, where))
    return check_words(raw)


def _int_param(params: Mapping[str, str], name: str, lo: int, hi: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(name, f"`{name}` must be an integer, not {raw!r}.") from None
    if not lo <= value <= hi:
        raise ValidationError(name, f"`{name}` must be an integer from {lo} to {hi}.")
    return value


def _time_param(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if not raw:
        return None
    return iso_datetime(name, raw).astimezone(UTC)  # stored times are UTC


def fmt_of(params: Mapping[str, str]) -> str:
    fmt = (params.get("format") or "txt").lower()
    if fmt not in FORMATS:
        raise ValidationError(
            "format", f"`format` must be one of {', '.join(FORMATS)}, not {fmt!r}."
        )
    return fmt


class SafetyService:
    def __init__(self, store: SafetyStore) -> None:
        self.store = store

    async def _list(self, list_id: str | int) -> SafetyListRecord:
        try:
            lid = int(list_id)
        except (TypeError, ValueError):
            lid = -1
        lst = await self.store.get_list(lid) if 0 < lid < 2**31 else None
        if lst is None:
            raise NotFound(f"No safety list with id {list_id!r}.", code="safety_list_not_found")
        return lst

    # ---- lists -------------------------------------------------------------------
    async def list_lists(self) -> list[SafetyListRecord]:
        return await self.store.list_lists()

    async def get_list(self, list_id: str) -> SafetyListRecord:
        return await self._list(list_id)

    async def create_list(self, body: Mapping[str, Any]) -> tuple[SafetyListRecord, WordCheck]:
        words = WordCheck([], [])
        if isinstance(body, Mapping) and "words" in body:
            words = await asyncio.to_thread(_words_of, "words", body["words"])
            body = {k: v for k, v in body.items() if k != "words"}
        fields = LIST.create(body)
        try:
            return await self.store.create_list(fields, words.words), words
        except Conflict as exc:
            raise ConflictError(str(exc), param="name") from None

    async def update_list(self, list_id: str, body: Mapping[str, Any]) -> SafetyListRecord:
        await self._list(list_id)
        fields = LIST.patch(body)
        try:
            lst = await self.store.update_list(int(list_id), fields)
        except Conflict as exc:
            raise ConflictError(str(exc), param="name") from None
        if lst is None:
            raise NotFound(f"No safety list with id {list_id!r}.", code="safety_list_not_found")
        return lst

    async def delete_list(self, list_id: str) -> None:
        lst = await self._list(list_id)
        await self.store.delete_list(lst.id)

    # ---- words -------------------------------------------------------------------
    async def add_words(self, list_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        lst = await self._list(list_id)
        if not isinstance(body, Mapping) or set(body) - {"words"} or "words" not in body:
            raise ValidationError("words", 'The body must be {"words": [...]}.')
        check = await asyncio.to_thread(_words_of, "words", body["words"])
        return await self._save(lst, check, replace=False)

    async def remove_words(self, list_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        lst = await self._list(list_id)
        words = body.get("words") if isinstance(body, Mapping) else None
        if not isinstance(words, list) or not words or set(body) - {"words"}:
            raise ValidationError("words", 'The body must be {"words": ["…", …]} (not empty).')
        if len(words) > 500_000 or not all(isinstance(w, str) for w in words):
            raise ValidationError("words", "`words` must be an array of strings.")
        removed = await self.store.remove_words(lst.id, [w.strip() for w in words])
        return {"removed": removed or 0, "not_found": len(set(words)) - (removed or 0)}

    async def import_words(
        self, list_id: str, raw: bytes, params: Mapping[str, str]
    ) -> dict[str, Any]:
        lst = await self._list(list_id)
        fmt = fmt_of(params)
        mode = (params.get("mode") or "add").lower()
        if mode not in ("add", "replace"):
            raise ValidationError("mode", f"`mode` must be add or replace, not {mode!r}.")
        if not raw.strip():
            raise ListRefused("The import is empty; nothing was saved.")
        check = await asyncio.to_thread(parse_words, raw, fmt)  # 100,000 words: ~0.5 s
        if not check.words and mode == "replace":
            raise ListRefused("The import holds no word; nothing was saved.")
        return await self._save(lst, check, replace=mode == "replace")

    async def _save(
        self, lst: SafetyListRecord, check: WordCheck, *, replace: bool
    ) -> dict[str, Any]:
        try:
            got = await self.store.add_words(lst.id, check.words, replace=replace)
        except Conflict as exc:
            raise ConflictError(str(exc), param="words") from None
        if got is None:
            raise NotFound(f"No safety list with id {lst.id}.", code="safety_list_not_found")
        added, existing = got
        return {
            "added": added,
            "already_listed": existing,
            "duplicates": len(check.duplicates),
            "duplicate_words": check.duplicates[:20],
        }

    async def export_words(self, list_id: str, params: Mapping[str, str]) -> tuple[bytes, str]:
        lst = await self._list(list_id)
        return export_words(lst, await self.store.words(lst.id), fmt_of(params))

    async def words(self, list_id: str) -> list[dict[str, Any]]:
        lst = await self._list(list_id)
        return [
            {"word": w, "category": c, "action": a} for w, c, a in await self.store.words(lst.id)
        ]

    # ---- test and audit ----------------------------------------------------------
    @staticmethod
    def test_text(policy: Policy | None, body: Mapping[str, Any]) -> dict[str, Any]:
        """The hits of the saved lists (as this worker compiled them) in ``text`` for a
        user of ``group`` (default ``default``)."""
        if not isinstance(body, Mapping) or set(body) - {"text", "group"}:
            raise ValidationError(None, 'The body must be {"text": "…", "group"?: "…"}.')
        text = body.get("text")
        if not isinstance(text, str):
            raise ValidationError("text", "`text` must be a string.")
        if len(text) > MAX_TEST_TEXT:
            raise ValidationError("text", f"`text` must be at most {MAX_TEST_TEXT} characters.")
        group = _group("group", body.get("group", "default"))
        hits = policy.scan(text, group) if policy is not None and text else []
        return {
            "blocked": any(h.action == "block" for h in hits),
            "hits": [
                {
                    "word": h.word,
                    "list_id": h.list_id,
                    "list_name": h.list_name,
                    "category": h.category,
                    "action": h.action,
                    "start": h.start,
                    "end": h.end,
                    "text": text[h.start : h.end],
                }
                for h in hits
            ],
            "revision": policy.revision if policy is not None else None,
        }

    async def audit(self, params: Mapping[str, str]) -> dict[str, Any]:
        unknown = sorted(
            set(params) - {"limit", "before_id", "user_id", "list_id", "since", "until"}
        )
        if unknown:
            raise InvalidRequest(
                f"Unknown parameter(s): {', '.join(unknown)}. Known: before_id, limit, list_id, "
                "since, until, user_id.",
                param=unknown[0],
            )
        query = AuditQuery(
            limit=_int_param(params, "limit", 1, MAX_AUDIT_PAGE) or 100,
            before_id=_int_param(params, "before_id", 1, 2**63 - 1),
            user_id=_int_param(params, "user_id", 1, 2**31 - 1),
            list_id=_int_param(params, "list_id", 1, 2**31 - 1),
            since=_time_param(params, "since"),
            until=_time_param(params, "until"),
        )
        rows = await self.store.list_audit(query)
        more = len(rows) == query.limit
        return {"data": rows, "next_before_id": rows[-1]["id"] if rows and more else None}
