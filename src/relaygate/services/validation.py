"""Validation of every administrative write, written once for the CLI and the admin API.

Pure functions: each takes the raw input (a JSON object, or the CLI's options gathered into
one) and returns a normalized dict ready for storage, or raises
:class:`~relaygate.services.fields.ValidationError` naming the field. Nothing here touches the
database; rules that need stored state (does the user exist, is the key revoked) are in
``relaygate.services.admin``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from relaygate.billing.money import parse_amount
from relaygate.errors import InvalidRequest
from relaygate.providers import PROVIDERS
from relaygate.providers.profiles import PROFILES
from relaygate.providers.registry import native_profiles
from relaygate.services.channel_config import channel_config
from relaygate.services.fields import (
    INT_MAX,
    Field,
    Schema,
    ValidationError,
    boolean,
    choice,
    http_url,
    integer,
    iso_datetime,
    nullable,
    string,
    string_list,
    string_map,
)

__all__ = [
    "CHANNEL",
    "CHANNEL_STATUSES",
    "IP_ALLOW_MAX",
    "KEY",
    "LOG_LIMIT_MAX",
    "OPERATOR_CHANNEL_STATUSES",
    "USER",
    "ValidationError",
    "check_key_status_change",
    "parse_id",
    "split_force",
    "validate_channel_create",
    "validate_channel_patch",
    "validate_key_create",
    "validate_key_patch",
    "validate_log_query",
    "validate_user_create",
    "validate_user_patch",
]

USER_ROLES = ("user", "admin")
USER_STATUSES = ("active", "disabled")
KEY_KINDS = ("api", "personal", "admin")
KEY_STATUSES = ("active", "disabled", "revoked")
#: every status a channel can have; ``auto_disabled`` is set by the gateway only (rejected
#: credentials), an operator sets ``enabled`` or ``disabled``
CHANNEL_STATUSES = ("enabled", "disabled", "auto_disabled")
OPERATOR_CHANNEL_STATUSES = ("enabled", "disabled")
LOG_LIMIT_MAX = 1000
IP_ALLOW_MAX = 100  # addresses / networks in one key's allow-list
GROUP_RE = re.compile(r"[a-z0-9_-]{1,32}")

_limit = nullable(integer(1))
_model_names = string_list(1, string(1, 128, no_space=True))
_plain_upstream_key = string(1, 4096, no_space=True)
_json_upstream_key = string(1, 4096)


def _upstream_key(name: str, value: Any) -> str:
    """An upstream key: no whitespace, except a JSON credential file (a Google
    service-account key), stored compacted (one line)."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            obj = json.loads(value)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            return str(_json_upstream_key(name, json.dumps(obj, separators=(",", ":"))))
    return str(_plain_upstream_key(name, value))


# ---- users -----------------------------------------------------------------------------
def _group(name: str, value: Any) -> str:
    """A price group name (billing's tier): 1-32 of ``a-z 0-9 _ -``."""
    if not isinstance(value, str) or GROUP_RE.fullmatch(value) is None:
        raise ValidationError(
            name,
            f'`{name}` must be 1-32 characters of a-z, 0-9, `_` and `-` (e.g. "default", '
            f'"vip"), not {value!r}.',
        )
    return value


USER = Schema(
    "user",
    {
        "username": Field(string(1, 64, no_space=True), required=True, patchable=False),
        "role": Field(choice(*USER_ROLES), default="user"),
        "status": Field(choice(*USER_STATUSES), default="active"),
        "group_name": Field(_group, default="default"),
        "rpm_limit": Field(_limit, default=None),
        "tpm_limit": Field(_limit, default=None),
        "concurrency_limit": Field(_limit, default=None),
    },
)


def validate_user_create(body: Mapping[str, Any]) -> dict[str, Any]:
    out = USER.create(body)
    if out["status"] != "active":
        raise ValidationError("status", "A new user is always `active`; disable it afterwards.")
    return out


def validate_user_patch(body: Mapping[str, Any]) -> dict[str, Any]:
    return USER.patch(body)


# ---- keys ------------------------------------------------------------------------------
def _key_models(name: str, value: Any) -> list[str] | None:
    if isinstance(value, list | tuple) and not value:
        raise ValidationError(
            name,
            f"`{name}` must name at least one model (a key that can use no model is useless); "
            "leave it out, or null, for every model.",
        )
    return nullable(_model_names)(name, value)  # type: ignore[no-any-return]


def _spend_limit(name: str, value: Any) -> int | None:
    """A spending cap in the operator's currency (``"12.5"`` or ``12.5``) as money units;
    null for no cap. Zero is a cap: the key may spend nothing."""
    if value is None:
        return None
    try:
        return parse_amount(value, name)
    except InvalidRequest as exc:  # the same message, as a field error
        raise ValidationError(name, exc.message) from None


def _ip_entry(name: str, value: Any) -> str:
    """One address (``203.0.113.7``, ``2001:db8::1``) or network (``10.0.0.0/8``),
    normalized; a network with host bits set is refused (it is probably a typo)."""
    text = string(1, 64, no_space=True)(name, value)
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=True))
        return str(ipaddress.ip_address(text))
    except ValueError:
        hint = ""
        if "/" in text:
            with contextlib.suppress(ValueError):
                net = ipaddress.ip_network(text, strict=False)
                hint = f" (host bits set: did you mean {net}?)"
        raise ValidationError(
            name,
            f"`{name}` must be an IP address or a network in CIDR form (203.0.113.7, "
            f"10.0.0.0/8, 2001:db8::/32), not {text!r}{hint}.",
        ) from None


def _ip_allow(name: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple) and not value:
        raise ValidationError(
            name,
            f"`{name}` must list at least one address or network (an empty list would "
            "admit no address); leave it out, or null, for any address.",
        )
    return string_list(1, _ip_entry, max_items=IP_ALLOW_MAX)(name, value)  # type: ignore[no-any-return]


KEY = Schema(
    "key",
    {
        "user_id": Field(integer(1), patchable=False),
        "username": Field(string(1, 64), patchable=False),
        "name": Field(string(0, 128), default=""),
        "kind": Field(choice(*KEY_KINDS), default="api", patchable=False),
        "status": Field(choice(*KEY_STATUSES)),
        "models": Field(_key_models, default=None),
        "expires_at": Field(nullable(iso_datetime), default=None),
        "rpm_limit": Field(_limit, default=None),
        "concurrency_limit": Field(_limit, default=None),
        "tpm_limit": Field(_limit, default=None),
        "spend_limit": Field(_spend_limit, default=None),
        "ip_allow": Field(_ip_allow, default=None),
    },
)


def validate_key_create(body: Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """The owner is ``user_id`` or ``username`` (exactly one); ``expires_at`` must lie in the
    future; ``models`` is a non-empty allow-list or null (every model)."""
    out = KEY.create(body)
    if ("user_id" in out) == ("username" in out):
        field = "username" if "username" in out else "user_id"
        raise ValidationError(field, "Give the key's owner as `user_id` or `username` (one).")
    if "status" in out and out["status"] != "active":
        raise ValidationError("status", "A new key is always `active`; change it afterwards.")
    out.pop("status", None)
    expires = out["expires_at"]
    if expires is not None and expires <= (now or datetime.now(UTC)):
        raise ValidationError(
            "expires_at", f"`expires_at` must be in the future, not {expires.isoformat()}."
        )
    return out


def validate_key_patch(body: Mapping[str, Any]) -> dict[str, Any]:
    """A past ``expires_at`` is allowed here: it expires the key at once."""
    return KEY.patch(body)


def check_key_status_change(old: str, new: str) -> None:
    """Revoked is final: a revoked key cannot become active or disabled again."""
    if old == "revoked" and new != "revoked":
        raise ValidationError(
            "status", "This key is revoked; a revoked key cannot be used again. Create a new key."
        )


# ---- channels --------------------------------------------------------------------------
def _operator_status(name: str, value: Any) -> str:
    if value == "auto_disabled":
        raise ValidationError(
            name,
            f"`{name}` 'auto_disabled' is set by the gateway when the upstream rejects the "
            "channel's credentials; set 'enabled' or 'disabled'.",
        )
    return str(choice(*OPERATOR_CHANNEL_STATUSES)(name, value))


def split_force(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """``body`` without ``force``, and ``force``: an instruction (for a channel: skip the
    base URL's DNS check), not a field that is stored."""
    if not isinstance(body, Mapping) or "force" not in body:
        return body, False
    return {k: v for k, v in body.items() if k != "force"}, boolean("force", body["force"])


CHANNEL = Schema(
    "channel",
    {
        "name": Field(string(1, 128), required=True),
        "provider": Field(choice(*PROVIDERS), default="openai_compat", patchable=False),
        "profile": Field(string(1, 32)),
        "base_url": Field(http_url(), required=True),
        "keys": Field(string_list(0, _upstream_key, unique=False), default=[]),
        "models": Field(_model_names, required=True),
        "model_mapping": Field(string_map(value=string(1, 128, no_space=True)), default={}),
        "priority": Field(integer(), default=0),
        # 0: a standby channel, used only when the weighted channels of its tier fail
        "weight": Field(integer(0, INT_MAX), default=1),
        "status": Field(_operator_status, default="enabled"),
        "config": Field(channel_config, default={}),
    },
    aliases={"api_key": "keys"},
)


def _check_profile(provider: str, profile: str) -> None:
    if provider == "openai_compat":
        if profile not in PROFILES:
            known = ", ".join(sorted(PROFILES))
            raise ValidationError(
                "profile", f"Unknown profile {profile!r} for openai_compat; known: {known}."
            )
    elif profile not in native_profiles(provider):
        known = ", ".join(native_profiles(provider))
        raise ValidationError(
            "profile", f"Unknown profile {profile!r} for {provider}; known: {known} (or none)."
        )


def validate_channel_create(body: Mapping[str, Any]) -> dict[str, Any]:
    """``keys`` (an array) or ``api_key`` (one key) give the upstream keys: none at all is fine
    (e.g. a local Ollama), an empty string is not. ``force`` is the caller's
    (:func:`split_force`)."""
    out = CHANNEL.create(body)
    if "api_key" in out:
        if "keys" in body:
            raise ValidationError("api_key", "Give `keys` or `api_key`, not both.")
        out["keys"] = [_upstream_key("api_key", out.pop("api_key"))]
    provider = out["provider"]
    out.setdefault("profile", "openai" if provider == "openai_compat" else provider)
    _check_profile(provider, out["profile"])
    return out


def validate_channel_patch(body: Mapping[str, Any], *, provider: str) -> dict[str, Any]:
    """``provider`` is the stored channel's (it cannot change); ``keys`` replaces every key."""
    out = CHANNEL.patch(body)
    if "profile" in out:
        _check_profile(provider, out["profile"])
    return out


# ---- request logs and ids ----------------------------------------------------------------
def parse_id(name: str, value: Any) -> int:
    """An id from JSON (an integer) or from a URL (decimal digits)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    return int(integer(1)(name, value))


def validate_log_query(params: Mapping[str, str]) -> tuple[int, int | None]:
    """``limit`` 1..1000 (default 100) and an optional ``user_id``, from query strings."""
    raw = params.get("limit")
    limit = 100
    if raw is not None:
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= LOG_LIMIT_MAX:
            raise ValidationError(
                "limit", f"`limit` must be an integer from 1 to {LOG_LIMIT_MAX}, not {raw!r}."
            )
        limit = int(raw)
    uid = params.get("user_id")
    return limit, (parse_id("user_id", uid) if uid is not None else None)
