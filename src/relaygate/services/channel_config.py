"""Checks of a channel's ``config`` object (admin API and CLI, through
``services/validation.py``): every key an adaptor or the router reads is type- and
range-checked when present, and the error names the field (``config.domains.lite[1]``).
Unknown keys are kept: a provider may read keys this list does not know yet
(docs/configuration.md, "Channel config")."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from relaygate.providers.surfaces import SURFACES
from relaygate.services.fields import (
    ValidationError,
    boolean,
    http_url,
    integer,
    json_object,
    one_of_types,
    string,
    string_list,
    string_map,
)
from relaygate.services.shaping_rules import shaping_rules

__all__ = [
    "CHANNEL_GROUPS_MAX",
    "QUEUE_SIZE_MAX",
    "QUEUE_TIMEOUT_MAX_S",
    "TIMEOUT_MAX_S",
    "channel_config",
]

TIMEOUT_MAX_S = 3600  # config.timeouts.*: seconds
QUEUE_TIMEOUT_MAX_S = 60
QUEUE_SIZE_MAX = 10_000
CHANNEL_GROUPS_MAX = 64


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


def _surfaces(name: str, value: Any) -> list[str]:
    """The API surfaces a channel serves beyond chat and embeddings, replacing its
    profile's list (``providers/surfaces.py``; docs/api-surface.md)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(name, f"`{name}` must be an array of surface names.")
    unknown = [v for v in value if v not in SURFACES]
    if unknown:
        raise ValidationError(
            name, f"Unknown surface `{unknown[0][:64]}` in `{name}`; known: {', '.join(SURFACES)}."
        )
    return sorted(set(value))


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
    "surfaces": _surfaces,
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
    # request shaping, any provider (services/shaping*.py; docs/request-shaping.md)
    "shaping": shaping_rules,
}


def channel_config(name: str, value: Any) -> dict[str, Any]:
    """A channel's ``config`` object with every known key checked (unknown keys kept)."""
    obj = json_object(name, value)
    for key, check in _CONFIG_KEYS.items():
        if key in obj:
            obj[key] = check(f"{name}.{key}", obj[key])
    return obj
