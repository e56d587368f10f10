"""``AdminService``: the one way administrative writes reach the database.

The CLI (``relaygate.cli``) and the admin API (``relaygate.api.admin_routes``) both call it
with plain input (a JSON object, or the CLI options gathered into one). Each write is
validated completely (``relaygate.services.validation``) before anything is written, so a
refused write changes nothing. Failures are :class:`~relaygate.errors.RelayError` s:
``ValidationError`` (an ``InvalidRequest`` naming the field), :class:`ConflictError`
(``conflict``) and :class:`~relaygate.errors.NotFound`.

Adding an entity (prices, plans, codes): a ``Schema`` and ``validate_*`` functions in
``validation.py``, a store in ``relaygate.storage``, and create/update/delete/list methods here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relaygate.billing.money import format_amount
from relaygate.errors import InvalidRequest, NotFound
from relaygate.services.channel_checks import ChannelShape, check_host_resolves, check_weights
from relaygate.services.fields import choice, string
from relaygate.services.validation import (
    ValidationError,
    check_key_status_change,
    parse_id,
    split_force,
    validate_channel_create,
    validate_channel_patch,
    validate_key_create,
    validate_key_patch,
    validate_log_query,
    validate_user_create,
    validate_user_patch,
)
from relaygate.storage.base import Conflict
from relaygate.storage.records import ChannelRecord, KeyRecord, UserRecord
from relaygate.storage.repo import Repository

__all__ = ["AdminService", "ConflictError"]

USERS_PAGE_MAX = 500  # users per page of GET /admin/api/users


class ConflictError(InvalidRequest):
    """The write breaks a uniqueness or reference rule (duplicate username, …)."""

    default_code = "conflict"


class AdminService:
    """``api_key_prefix`` / ``personal_key_prefix`` start new keys of each kind
    (``RELAYGATE_API_KEY_PREFIX`` / ``RELAYGATE_PERSONAL_KEY_PREFIX``); a personal key
    created without a ``concurrency_limit`` gets ``personal_concurrency``."""

    def __init__(
        self,
        repo: Repository,
        *,
        api_key_prefix: str = "zk-",
        personal_key_prefix: str = "zp-",
        personal_concurrency: int | None = 2,
    ) -> None:
        self.repo = repo
        self.prefixes = {"api": api_key_prefix, "personal": personal_key_prefix}
        self.personal_concurrency = personal_concurrency

    # ---- users -----------------------------------------------------------------------
    async def list_users(self) -> list[UserRecord]:
        return await self.repo.users.list()

    async def search_users(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET /users``: ``q`` (part of the name, any case, or the id), ``limit``
        (1-500; none: every user), ``after_id`` (the last id of the previous page) and
        ``balance=1`` (each user with the balance, 4 decimals, and its units)."""
        known = ("q", "limit", "after_id", "balance")
        for name in params:
            if name not in known:
                raise ValidationError(
                    name, f"Unknown query parameter `{name}`; known: {', '.join(known)}."
                )
        q = string(0, 64, strip=True)("q", params.get("q", ""))
        raw = params.get("limit")
        limit = None if raw is None else parse_id("limit", raw)
        if limit is not None and limit > USERS_PAGE_MAX:
            raise ValidationError("limit", f"`limit` must be from 1 to {USERS_PAGE_MAX}.")
        after = params.get("after_id")
        money = choice("0", "1", "true", "false")("balance", params.get("balance", "0"))
        found = await self.repo.users.search(
            q, limit=limit, after_id=None if after is None else parse_id("after_id", after)
        )
        data = [
            {**u.to_public(), "balance": format_amount(b), "balance_units": b, "leased_units": lz}
            if money in ("1", "true")
            else u.to_public()
            for u, b, lz in found
        ]
        more = limit is not None and len(found) == limit
        return {"data": data, "has_more": more, "next_after_id": data[-1]["id"] if more else None}

    async def get_user(self, user_id: Any) -> UserRecord:
        uid = parse_id("user_id", user_id)
        user = await self.repo.users.get(user_id=uid)
        if user is None:
            raise NotFound(f"No user with id {uid}.", param="user_id")
        return user

    async def user_named(self, username: str) -> UserRecord:
        user = await self.repo.users.get(username=username)
        if user is None:
            raise NotFound(f"No user named {username!r}.", param="username")
        return user

    async def create_user(self, body: Mapping[str, Any]) -> UserRecord:
        fields = validate_user_create(body)
        fields.pop("status")  # always active (checked)
        try:
            return await self.repo.users.create(**fields)
        except Conflict as exc:
            raise ConflictError(f"The user {fields['username']!r} already exists.") from exc

    async def update_user(self, user_id: Any, body: Mapping[str, Any]) -> UserRecord:
        uid = parse_id("user_id", user_id)
        fields = validate_user_patch(body)
        if not await self.repo.users.update(uid, fields):
            raise NotFound(f"No user with id {uid}.", param="user_id")
        return await self.get_user(uid)

    # ---- keys ------------------------------------------------------------------------
    async def list_keys(
        self, user_id: Any = None, *, username: str | None = None
    ) -> list[KeyRecord]:
        uid: int | None = None
        if username is not None:
            uid = (await self.user_named(username)).id
        elif user_id is not None:
            uid = parse_id("user_id", user_id)
        return await self.repo.keys.list(uid)

    async def create_key(self, body: Mapping[str, Any]) -> tuple[KeyRecord, str]:
        """Returns the record and the plaintext key (shown once)."""
        fields = validate_key_create(body)
        if "username" in fields:
            owner = await self.user_named(fields.pop("username"))
        else:
            owner = await self.get_user(fields.pop("user_id"))
        kind = fields["kind"]
        if kind == "admin" and owner.role != "admin":
            raise ValidationError("kind", "Admin tokens can only be created for admin users.")
        if kind == "personal" and "concurrency_limit" not in body:
            fields["concurrency_limit"] = self.personal_concurrency
        prefix = self.prefixes.get(kind, "")  # admin tokens have their own fixed prefix
        try:
            return await self.repo.keys.create(owner.id, prefix=prefix, **fields)
        except Conflict as exc:  # the owner was deleted meanwhile
            raise ConflictError(f"The user {owner.id} does not exist.") from exc

    async def update_key(self, key_id: Any, body: Mapping[str, Any]) -> KeyRecord:
        kid = parse_id("key_id", key_id)
        fields = validate_key_patch(body)
        key = await self._key(kid)
        status = fields.get("status")
        if status is not None:
            check_key_status_change(key.status, status)
        unless = "revoked" if status not in (None, "revoked") else None
        if not await self.repo.keys.update(kid, fields, unless_status=unless):
            key = await self._key(kid)  # raises if it was deleted meanwhile
            if status is not None:  # revoked meanwhile: the guarded update changed nothing
                check_key_status_change(key.status, status)
        return await self._key(kid)

    async def delete_key(self, key_id: Any) -> None:
        kid = parse_id("key_id", key_id)
        if not await self.repo.keys.delete(kid):
            raise NotFound(f"No key with id {kid}.", param="key_id")

    async def _key(self, kid: int) -> KeyRecord:
        key = await self.repo.keys.get(kid)
        if key is None:
            raise NotFound(f"No key with id {kid}.", param="key_id")
        return key

    async def bootstrap_admin(self, username: str) -> str:
        """Create (or reuse) the admin user ``username`` and return a new admin token."""
        user = await self.repo.users.get(username=username)
        if user is None:
            user = await self.create_user({"username": username, "role": "admin"})
        elif user.role != "admin":
            raise ValidationError("username", f"The user {username!r} exists and is not an admin.")
        _, token = await self.create_key({"user_id": user.id, "name": "bootstrap", "kind": "admin"})
        return token

    # ---- channels ----------------------------------------------------------------------
    async def list_channels(self) -> list[ChannelRecord]:
        return await self.repo.channels.list()

    async def create_channel(
        self, body: Mapping[str, Any], *, is_emulator: bool = False
    ) -> ChannelRecord:
        """``is_emulator`` marks the demo's built-in emulator channels (not settable by input).

        Besides the fields, refused: a save that leaves a model with enabled channels whose
        weights are all 0, and a base URL whose host does not resolve (unless the body says
        ``"force": true``; see ``services/channel_checks.py``)."""
        body, force = split_force(body)
        fields = validate_channel_create(body)
        new = ChannelShape(fields["name"], fields["status"], fields["weight"], fields["models"])
        others = [_shape(c) for c in await self.repo.channels.list()]
        check_weights([*others, new], new.models, "weight")
        await check_host_resolves(fields["base_url"], fields["config"], force=force)
        return await self.repo.channels.create(**fields, is_emulator=is_emulator)

    async def update_channel(self, channel_id: Any, body: Mapping[str, Any]) -> ChannelRecord:
        """The same checks as :meth:`create_channel`, on the channel as the patch leaves it
        (the DNS check only when the patch changes ``base_url``)."""
        cid = parse_id("channel_id", channel_id)
        current = await self._channel(cid)
        body, force = split_force(body)
        fields = validate_channel_patch(body, provider=current.provider)
        after = ChannelShape(
            fields.get("name", current.name),
            fields.get("status", current.status),
            fields.get("weight", current.weight),
            tuple(fields.get("models", current.models)),
        )
        others = [_shape(c) for c in await self.repo.channels.list() if c.id != cid]
        which = next((f for f in ("weight", "status", "models") if f in fields), None)
        check_weights([*others, after], {*current.models, *after.models}, which)
        if "base_url" in fields and fields["base_url"] != current.base_url:
            config = fields.get("config", current.config)
            await check_host_resolves(fields["base_url"], config, force=force)
        if not await self.repo.channels.update(cid, fields):
            raise NotFound(f"No channel with id {cid}.", param="channel_id")
        return await self._channel(cid)

    async def delete_channel(self, channel_id: Any) -> None:
        """Refused when it would leave a model with only weight-0 enabled channels."""
        cid = parse_id("channel_id", channel_id)
        channels = await self.repo.channels.list()
        gone = next((c for c in channels if c.id == cid), None)
        if gone is not None:
            check_weights([_shape(c) for c in channels if c.id != cid], gone.models, None)
        if not await self.repo.channels.delete(cid):
            raise NotFound(f"No channel with id {cid}.", param="channel_id")

    async def _channel(self, cid: int) -> ChannelRecord:
        ch = await self.repo.channels.get(cid)
        if ch is None:
            raise NotFound(f"No channel with id {cid}.", param="channel_id")
        return ch

    # ---- request logs (read only) -------------------------------------------------------
    async def list_logs(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        limit, user_id = validate_log_query(params)
        return await self.repo.list_request_logs(limit, user_id)


def _shape(ch: ChannelRecord) -> ChannelShape:
    return ChannelShape(ch.name, ch.status, ch.weight, ch.models)
