"""The configuration file: a TOML file whose keys are the ``RELAYGATE_*`` settings.

A key is a setting's name without ``RELAYGATE_``, in lower case (``max_inflight = 512``). A
table is a shorthand for a prefix: ``[console]`` ``signup = true`` is ``console_signup``
(nested tables and dotted keys join the same way, with ``_``). The file's values go into the
process environment with ``setdefault`` before any setting is read, so every reader stays as
it is, a variable that is set (even to an empty string) beats the file, and worker processes
inherit the values. ``KEYS`` is the one list of settings: validation, ``relaygate config
example`` and the check's effective values all come from it (docs/configuration.md).

Imports nothing of relaygate.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import os
import stat
import tomllib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "CONFIG_ENV",
    "KEYS",
    "ConfigError",
    "Key",
    "Loaded",
    "apply",
    "effective",
    "example",
    "load",
    "masked",
]

#: the variable naming the file (``relaygate serve --config`` sets the same)
CONFIG_ENV = "RELAYGATE_CONFIG"

Kind = Literal["bool", "int", "float", "str", "list", "number"]
Value = bool | int | float | str | list[str]


@dataclass(frozen=True, slots=True)
class Key:
    name: str  # lower case, without RELAYGATE_
    kind: Kind  # bool: true/false; list: an array of strings (or one comma-separated string)
    default: Value
    note: str = ""
    secret: bool = False  # masked by `config check`; the world-readable warning
    url: bool = False  # may carry a password (masked; counts as a secret when it does)
    legacy: bool = False  # an older name: accepted, shown in the example without a value

    @property
    def env(self) -> str:
        return "RELAYGATE_" + self.name.upper()


def _k(name: str, kind: Kind, default: Value, note: str = "", **flags: bool) -> Key:
    return Key(name, kind, default, note, **flags)


#: (section title, keys); the section only orders the example
SECTIONS: tuple[tuple[str, tuple[Key, ...]], ...] = (
    (
        "Storage and secrets",
        (
            _k("data_dir", "str", "data", "SQLite database, secret.key, spool"),
            _k("database_url", "str", "", "empty: SQLite at <data_dir>/relaygate.db", url=True),
            _k("secret_key", "str", "", "empty: read or create <data_dir>/secret.key", secret=True),
            _k("log_database_url", "str", "", "request rows elsewhere (empty: main db)", url=True),
            _k("log_retention_days", "int", 0, "0: keep request rows forever"),
            _k("redis_url", "str", "", "shared state across workers and nodes", url=True),
            _k("redis_prefix", "str", "rg:"),
            _k("local_limit_share", "float", 0.0, "0: 1 / workers"),
        ),
    ),
    (
        "Client answers",
        (
            _k("envelope", "bool", True, "code/msg in non-streaming JSON answers"),
            _k("envelope_formats", "list", ["openai", "responses"]),
            _k("openai_status_codes", "bool", False),
            _k("cors_origins", "list", ["*"], "[]: no browser origin"),
            _k("trust_request_id", "bool", True),
        ),
    ),
    (
        "Client-side limits",
        (
            _k("max_body_bytes", "int", 16 * 1024 * 1024),
            _k("max_upload_bytes", "int", 512 * 1024 * 1024),
            _k("max_header_bytes", "int", 64 * 1024),
            _k("max_headers", "int", 100),
            _k("header_timeout", "float", 10.0),
            _k("body_timeout", "float", 30.0),
            _k("max_inflight", "int", 1024, "per worker"),
            _k("drain_seconds", "float", 30.0),
            _k("sse_keepalive", "float", 15.0, "0: off"),
        ),
    ),
    (
        "Upstreams",
        (
            _k("connect_timeout", "float", 10.0),
            _k("first_byte_timeout", "float", 120.0),
            _k("read_timeout", "float", 300.0),
            _k("total_timeout", "float", 1800.0, "0: off"),
            _k("max_upstream_body_bytes", "int", 64 * 1024 * 1024),
            _k("http_client", "str", "fast", "fast | aiohttp"),
            _k("ca_bundle", "str", "", "empty: SSL_CERT_FILE, else the system store"),
            _k("filters", "list", [], "extra filters, module:factory"),
        ),
    ),
    (
        "Routing and channel health",
        (
            _k("max_attempts", "int", 3),
            _k("retry_budget", "float", 60.0),
            _k("retry_after_max", "float", 5.0),
            _k("breaker_failures", "int", 5),
            _k("breaker_rate", "float", 0.5),
            _k("breaker_min_requests", "int", 20),
            _k("breaker_window", "float", 30.0),
            _k("breaker_cooldown", "float", 10.0),
            _k("breaker_max_cooldown", "float", 300.0),
            _k("breaker_sync", "float", 0.5),
            _k("affinity", "str", "conversation", "off | conversation | key"),
            _k("channel_test_timeout", "float", 15.0),
            _k("channel_test_interval", "float", 60.0, "0: off"),
            _k("key_reject_ttl", "float", 600.0),
            _k("refresh_interval", "float", 2.0),
        ),
    ),
    (
        "Accounts and billing",
        (
            _k("api_key_prefix", "str", "zk-"),
            _k("key_prefix", "str", "", "older name of api_key_prefix", legacy=True),
            _k("personal_key_prefix", "str", "zp-"),
            _k("personal_concurrency", "int", 2),
            _k("billing", "bool", True),
            _k("currency", "str", "CNY", "CNY | USD"),
            _k("usd_rate", "number", "7.2", "CNY per USD"),
            _k("default_max_output", "int", 4096),
            _k("lease_units", "int", 10_000_000),
            _k("tokenizer", "str", "cl100k_base", "cl100k_base | o200k_base"),
        ),
    ),
    (
        "Logs and metrics",
        (
            _k("log_level", "str", "INFO"),
            _k("log_content", "bool", False),
            _k("log_requests", "bool", True),
            _k("metrics", "bool", True),
            _k("metrics_token", "str", "", "empty: /metrics needs no token", secret=True),
            _k("metrics_interval", "float", 2.0),
            _k("ready_timeout", "float", 1.0),
            _k("ready_cache", "float", 1.0),
            _k("ready_backlog", "int", 50000),
        ),
    ),
    (
        "Console (docs/console.md)",
        (
            _k("console_signup", "bool", True),
            _k("console_secure_cookies", "bool", False),
            _k("console_session_ttl", "float", 7 * 86400.0),
            _k("console_session_idle", "float", 86400.0),
            _k("console_signin_ip_limit", "int", 30),
            _k("console_signin_user_limit", "int", 5),
            _k("console_signin_window", "float", 900.0),
            _k("console_signup_ip_limit", "int", 10),
            _k("console_max_keys", "int", 100),
            _k("console_public_url", "str", ""),
            _k("console_oidc_issuer", "str", ""),
            _k("console_oidc_client_id", "str", ""),
            _k("console_oidc_client_secret", "str", "", secret=True),
            _k("console_oidc_name", "str", "OpenID Connect"),
            _k("console_oidc_scopes", "str", "openid profile email"),
            _k("console_github_client_id", "str", ""),
            _k("console_github_client_secret", "str", "", secret=True),
            _k("console_github_url", "str", "https://github.com"),
            _k("console_github_api_url", "str", "https://api.github.com"),
        ),
    ),
    (
        "Online search (docs/online.md)",
        (
            _k(
                "search_backend",
                "str",
                "off",
                "off | local | searxng | tavily | bocha | google | ddgs",
            ),
            _k("search_url", "str", ""),
            _k("search_key", "str", "", secret=True),
            _k("search_cx", "str", ""),
            _k("search_results", "int", 5),
            _k("search_timeout", "float", 5.0),
            _k("search_fetch", "bool", False),
            _k("search_fetch_timeout", "float", 3.0),
            _k("search_fetch_max_bytes", "int", 2 * 1024 * 1024),
            _k("search_allow_private", "bool", False),
            _k("search_budget_tokens", "int", 3000),
            _k("search_notice", "bool", True),
            _k("search_always", "list", [], "models that are always online"),
            _k("search_rewrite_model", "str", ""),
            _k("search_local_db", "str", "", "empty: <data_dir>/search.db"),
            _k("search_ddgs_proxy", "str", "", url=True),
            _k("search_ddgs_backend", "str", "", "empty: auto"),
            _k("search_tavily_depth", "str", "", "basic | advanced (empty: basic)"),
        ),
    ),
    (
        "Content safety (docs/safety.md)",
        (
            _k("safety", "bool", True),
            _k("safety_input", "bool", True),
            _k("safety_output", "bool", True),
            _k("safety_t2s", "bool", False),
            _k("safety_notice", "str", "（内容已被过滤）"),
            _k("safety_mask", "str", "***"),
            _k("safety_moderation_model", "str", ""),
            _k("safety_moderation_timeout", "float", 3.0),
        ),
    ),
)

KEYS: dict[str, Key] = {k.name: k for _, keys in SECTIONS for k in keys}

#: names that look like settings but have no place in the file
NOT_IN_FILE = {
    "workers": "the number of workers is `relaygate serve --workers N`",
    "config": "a configuration file cannot name another one",
}


class ConfigError(Exception):
    """The file cannot be used; the message names the file and, when there is one, the key."""


@dataclass(slots=True)
class Loaded:
    path: Path
    values: dict[str, str]  # RELAYGATE_* -> the string the environment readers expect
    secrets: list[str] = field(default_factory=list)  # keys holding a secret
    warnings: list[str] = field(default_factory=list)


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.date | datetime.time):
        return "a date or time"
    return type(value).__name__


_EXPECTED = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "list": "an array of strings (or one comma-separated string)",
    "number": "a number or a string holding one",
}


def _text(key: Key, value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _convert(key: Key, value: object) -> str:
    """``value`` as the environment string, or ValueError saying what was expected."""
    wrong = ValueError(f"must be {_EXPECTED[key.kind]}, not {_type_name(value)}")
    if key.kind == "bool":
        if not isinstance(value, bool):
            raise wrong
        return "1" if value else "0"
    if key.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return str(value)
    if key.kind in ("float", "number"):
        if key.kind == "number" and isinstance(value, str):
            return _text(key, value.strip())
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number, not {value}")
        return str(value)
    if key.kind == "list":
        if isinstance(value, str):
            return _text(key, value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong
        if any("," in v for v in value):
            raise ValueError("an item of the array must not contain a comma")
        return _text(key, ",".join(value))
    if not isinstance(value, str):
        raise wrong
    return _text(key, value)


def _holds_secret(key: Key, text: str) -> bool:
    if key.secret:
        return bool(text)
    if key.url:
        try:
            return bool(urlsplit(text).password)
        except ValueError:
            return False
    return False


def _suggest(name: str) -> str:
    plain = name.lower().removeprefix("relaygate_")
    if plain in KEYS and plain != name:
        return f"; did you mean {plain!r}? (keys are lower case, without RELAYGATE_)"
    close = difflib.get_close_matches(plain, list(KEYS), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _is_prefix(name: str) -> bool:
    return any(k.startswith(name + "_") for k in KEYS)


def _flatten(
    table: Mapping[str, object], prefix: str, where: str, out: dict[str, tuple[str, object]]
) -> None:
    """``out``: setting name -> (the key as written, its value)."""
    for raw, value in table.items():
        written = f"{where}.{raw}" if where else raw
        name = f"{prefix}_{raw}" if prefix else raw
        if isinstance(value, dict) and _is_prefix(name):
            _flatten(value, name, written, out)
            continue
        if name in NOT_IN_FILE:
            raise ConfigError(f"key {written!r} is not a file setting: {NOT_IN_FILE[name]}")
        if name not in KEYS:
            kind = "table" if isinstance(value, dict) else "key"
            raise ConfigError(f"unknown {kind} {written!r}{_suggest(name)}")
        if name in out:
            raise ConfigError(f"key {written!r} sets {name!r} again (first as {out[name][0]!r})")
        out[name] = (written, value)


def load(path: str | os.PathLike[str]) -> Loaded:
    """Read and check the file; ConfigError names what is wrong."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"configuration file {p}: not found") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file {p}: is a directory") from None
    except OSError as exc:
        raise ConfigError(f"configuration file {p}: cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"configuration file {p}: not UTF-8 (byte {exc.start} of the file)"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {p}: invalid TOML: {exc}") from None
    flat: dict[str, tuple[str, object]] = {}
    try:
        _flatten(data, "", "", flat)
    except ConfigError as exc:
        raise ConfigError(f"configuration file {p}: {exc}") from None
    loaded = Loaded(path=p, values={})
    for name, (written, value) in flat.items():
        key = KEYS[name]
        try:
            text_value = _convert(key, value)
        except ValueError as exc:
            raise ConfigError(f"configuration file {p}: key {written!r} {exc}") from None
        loaded.values[key.env] = text_value
        if _holds_secret(key, text_value):
            loaded.secrets.append(name)
    if loaded.secrets:
        try:
            mode = p.stat().st_mode
        except OSError:
            mode = 0
        if mode & stat.S_IROTH:
            loaded.warnings.append(
                f"configuration file {p} is readable by every user of this machine and holds "
                f"{', '.join(loaded.secrets)}: make it private (chmod 600 {p})"
            )
    return loaded


def apply(loaded: Loaded, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Put the file's values into the environment where no variable is set; the names set."""
    env = os.environ if environ is None else environ
    applied = []
    for name, value in loaded.values.items():
        if name not in env:
            env[name] = value
            applied.append(name)
    return applied


def masked(key: Key, value: str) -> str:
    """``value`` as ``config check`` shows it: secrets hidden, URL passwords too."""
    if key.secret:
        return "********" if value else ""
    if key.url and value:
        try:
            parts = urlsplit(value)
            if parts.password:
                host = parts.netloc.rsplit("@", 1)[1]
                user = parts.username or ""
                return parts._replace(netloc=f"{user}:********@{host}").geturl()
        except ValueError:
            return "********"
    return value


def effective(
    loaded: Loaded | None, environ: Mapping[str, str] | None = None
) -> list[tuple[Key, str, str]]:
    """Every key's (key, value as a string, source: env | file | default), not masked."""
    env = os.environ if environ is None else environ
    rows = []
    for key in KEYS.values():
        if key.env in env:
            rows.append((key, env[key.env], "env"))
        elif loaded is not None and key.env in loaded.values:
            rows.append((key, loaded.values[key.env], "file"))
        elif not key.legacy:
            rows.append((key, _convert(key, key.default), "default"))
    return rows


def _toml(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def example() -> str:
    """A file with every key commented out at its default (``relaygate config example``)."""
    lines = [
        "# relaygate configuration file (TOML): `relaygate serve --config PATH`, RELAYGATE_CONFIG.",
        "# Keys are the RELAYGATE_* settings in lower case, without the prefix; every key below",
        "# is at its default. An environment variable that is set beats the file.",
        "# The meaning of each: docs/configuration.md.",
    ]
    for title, keys in SECTIONS:
        lines += ["", f"## {title}"]
        for key in keys:
            if key.legacy:
                lines.append(f"## {key.name}: {key.note}")
                continue
            note = f"  # {key.note}" if key.note else ""
            lines.append(f"# {key.name} = {_toml(key.default)}{note}")
    return "\n".join(lines) + "\n"
