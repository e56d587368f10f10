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
from urllib.parse import urlsplit

from relaygate.billing.money import parse_amount
from relaygate.errors import InvalidRequest
from relaygate.providers import PROVIDERS
from relaygate.providers.profiles import PROFILES
from relaygate.providers.registry import native_profiles
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
    json_object,
    nullable,
    one_of_types,
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
TIMEOUT_MAX_S = 3600  # config.timeouts.*: seconds
QUEUE_TIMEOUT_MAX_S = 60
QUEUE_SIZE_MAX = 10_000
CHANNEL_GROUPS_MAX = 64
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
def _proxy(name: str, value: Any) -> str:
    """An HTTP CONNECT proxy URL (``http://[user:pass@]host:port``), or "" for a direct
    connection even when ``HTTPS_PROXY`` is set."""
    if not isinstance(value, str):
        raise ValidationError(name, f"`{name}` must be a string.")
    if value == "":
        return value
    parts = urlsplit(value)
    if parts.scheme != "http" or not parts.hostname or len(value) > 2048:
        raise ValidationError(
            name,
            f"`{name}` must be an http:// proxy URL such as http://user:pass@host:3128, "
            'or "" for a direct connection.',
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValidationError(name, f"`{name}` has an invalid port.")
    return value


def _seconds(low: float, high: float, *, low_exclusive: bool) -> Any:
    """A number of seconds in ``low``..``high`` (``low`` itself refused when exclusive)."""
    above = f"> {low:g}" if low_exclusive else f">= {low:g}"

    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(name, f"`{name}` must be a number of seconds.")
        if value != value or (value <= low if low_exclusive else value < low) or value > high:
            raise ValidationError(
                name, f"`{name}` must be a number of seconds {above} and <= {high:g}, not {value}."
            )
        return float(value) if isinstance(value, float) else value

    return check


_TIMEOUT_KEYS = ("connect", "first_byte", "idle")
_timeout_s = _seconds(0, TIMEOUT_MAX_S, low_exclusive=True)


def _timeouts(name: str, value: Any) -> dict[str, float]:
    """``{"connect": s, "first_byte": s, "idle": s}``, each optional: the connect timeout,
    the wait for the first byte of the answer, and the longest pause between chunks."""
    obj = json_object(name, value)
    unknown = [k for k in obj if k not in _TIMEOUT_KEYS]
    if unknown:
        raise ValidationError(
            f"{name}.{unknown[0]}",
            f"Unknown key `{unknown[0]}` in `{name}`; known: {', '.join(_TIMEOUT_KEYS)}.",
        )
    return {k: _timeout_s(f"{name}.{k}", v) for k, v in obj.items()}


def _mapping(key: Any, value: Any, *, max_items: int = 1000) -> Any:
    """An object whose keys pass ``key`` and values pass ``value``; a bad entry is named
    ``{name}.{key}`` (``config.domains.lite``)."""

    def check(name: str, raw: Any) -> dict[str, Any]:
        obj = json_object(name, raw)
        if len(obj) > max_items:
            raise ValidationError(name, f"`{name}` must have at most {max_items} entries.")
        return {key(f"{name} key", k): value(f"{name}.{k}", v) for k, v in obj.items()}

    return check


def _number(low: float, high: float) -> Any:
    """A JSON number (integer or fraction, not a boolean) in ``low``..``high``."""

    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(name, f"`{name}` must be a number, not {_kind_of(value)}.")
        if value != value or not low <= value <= high:
            raise ValidationError(
                name, f"`{name}` must be a number from {low:g} to {high:g}, not {value}."
            )
        return value

    return check


def _kind_of(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


REASONING_BUDGET_MAX = 1_000_000  # thinking tokens; Gemini also takes -1 (dynamic)
SAFETY_SETTINGS_MAX = 32
TOKEN_TTL_MAX_S = 30 * 86400
_budget_name = string(1, 32, no_space=True)
_url_path = string(1, 256, no_space=True)


def _spark_path(name: str, value: Any) -> str:
    """A WebSocket path of Spark's API such as ``/v3.5/chat``."""
    text = str(_url_path(name, value))
    if not text.startswith("/"):
        raise ValidationError(name, f"`{name}` must be a path starting with `/`, not {text!r}.")
    return text


def _spark_domain(name: str, value: Any) -> list[str]:
    """``[path, domain]``: the WebSocket path (``/v4.0/chat``) and the ``domain`` sent."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValidationError(
            name,
            f'`{name}` must be an array [path, domain] such as ["/v4.0/chat", "4.0Ultra"].',
        )
    path = str(_url_path(f"{name}[0]", value[0]))
    return [path, str(string(1, 128, no_space=True)(f"{name}[1]", value[1]))]


def _safety_settings(name: str, value: Any) -> list[dict[str, Any]]:
    """Gemini ``safetySettings``: ``[{"category": "HARM_CATEGORY_…", "threshold": "BLOCK_…"}]``,
    sent as given."""
    if not isinstance(value, list | tuple):
        raise ValidationError(name, f"`{name}` must be an array, not {_kind_of(value)}.")
    if len(value) > SAFETY_SETTINGS_MAX:
        raise ValidationError(name, f"`{name}` must list at most {SAFETY_SETTINGS_MAX} items.")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        entry = json_object(f"{name}[{i}]", item)
        for part in ("category", "threshold"):
            if part not in entry:
                raise ValidationError(
                    f"{name}[{i}].{part}",
                    f'`{name}[{i}]` needs `{part}`, e.g. {{"category": '
                    '"HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}.',
                )
            entry[part] = string(1, 64, no_space=True)(f"{name}[{i}].{part}", entry[part])
        out.append(entry)
    return out


_CONFIG_KEYS: dict[str, Any] = {  # known provider extras, checked when present
    "proxy": _proxy,
    "headers": string_map(string(1, 128, no_space=True), string(0, 4096)),
    "api_version": string(1, 64, no_space=True),
    "deployments": string_map(string(1, 128), string(1, 128, no_space=True)),
    "anthropic_version": string(1, 64, no_space=True),
    "anthropic_beta": one_of_types(
        string(1, 256), string_list(0, string(1, 128)), expected="a string or an array of strings"
    ),
    "default_max_tokens": integer(1),
    # routing (docs/admin-api.md "Channel routing fields")
    "groups": string_list(0, string(1, 64, no_space=True), max_items=CHANNEL_GROUPS_MAX),
    "timeouts": _timeouts,
    "max_concurrency": integer(1),
    "key_concurrency": integer(1),
    "queue_timeout": _seconds(0, QUEUE_TIMEOUT_MAX_S, low_exclusive=False),
    "queue_size": integer(0, QUEUE_SIZE_MAX),
    "test_model": string(1, 128, no_space=True),
    # Gemini / Vertex AI (providers/gemini*.py); reasoning_budgets also Anthropic
    "project": string(1, 128, no_space=True),
    "location": string(1, 64, no_space=True),
    "reasoning_budgets": _mapping(_budget_name, integer(-1, REASONING_BUDGET_MAX)),
    "include_thoughts": boolean,
    "safety_settings": _safety_settings,
    # Baidu (providers/baidu.py)
    "endpoints": _mapping(string(1, 128), string(1, 128, no_space=True)),
    "auth_url": http_url(),
    # Tencent Hunyuan (providers/tencent.py)
    "region": string(1, 64, no_space=True),
    "enable_enhancement": boolean,
    # iFlytek Spark WebSocket (providers/spark_ws.py)
    "domains": _mapping(string(1, 128), _spark_domain),
    "path": _spark_path,
    "system_role": boolean,
    # openai_compat profiles (providers/openai_compat.py, vendor_quirks.py)
    "appid": one_of_types(
        string(1, 128, no_space=True), integer(0), expected="a string or a non-negative integer"
    ),
    "fixed_temperature": _mapping(string(1, 128), _number(0, 2)),
    "token_ttl": _seconds(0, TOKEN_TTL_MAX_S, low_exclusive=True),
}


def _config(name: str, value: Any) -> dict[str, Any]:
    obj = json_object(name, value)
    for key, check in _CONFIG_KEYS.items():
        if key in obj:
            obj[key] = check(f"{name}.{key}", obj[key])
    return obj


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
        "config": Field(_config, default={}),
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
