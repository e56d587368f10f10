"""The one validation of administrative writes (``relaygate.services.validation``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relaygate.errors import InvalidRequest
from relaygate.services.fields import ValidationError
from relaygate.services.validation import (
    check_key_status_change,
    parse_id,
    validate_channel_create,
    validate_channel_patch,
    validate_key_create,
    validate_key_patch,
    validate_log_query,
    validate_user_create,
    validate_user_patch,
)

CHANNEL = {"name": "c", "base_url": "https://api.example.com/v1/", "models": ["m"]}


def refused(fn: Any, *args: Any, field: str | None, match: str = "", **kw: Any) -> str:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kw)
    assert info.value.field == field and info.value.param == field
    assert isinstance(info.value, InvalidRequest)  # rendered as a 4xx JSON error
    if match:
        assert match in info.value.message, info.value.message
    return info.value.message


# ---- users ---------------------------------------------------------------------------------
def test_user_create_defaults_and_bounds() -> None:
    assert validate_user_create({"username": "zoe"}) == {
        "username": "zoe",
        "role": "user",
        "status": "active",
        "group_name": "default",
        "rpm_limit": None,
        "tpm_limit": None,
        "concurrency_limit": None,
    }
    refused(validate_user_create, {}, field="username", match="required")
    refused(validate_user_create, {"username": ""}, field="username", match="empty")
    refused(validate_user_create, {"username": "x" * 65}, field="username", match="64")
    refused(validate_user_create, {"username": 5}, field="username", match="string")
    refused(validate_user_create, {"username": "a\nb"}, field="username")
    refused(validate_user_create, {"username": "z", "role": "root"}, field="role")
    refused(validate_user_create, ["zoe"], field=None, match="object")


def test_user_patch() -> None:
    assert validate_user_patch({"status": "disabled"}) == {"status": "disabled"}
    refused(validate_user_patch, {"status": "weird"}, field="status")
    refused(validate_user_patch, {}, field=None, match="Nothing to change")
    refused(validate_user_patch, {"username": "new"}, field="username", match="cannot be changed")
    msg = refused(validate_user_patch, {"nickname": "x", "age": 3}, field="nickname")
    assert "`nickname`" in msg and "`age`" in msg  # every unknown field named


# ---- keys ----------------------------------------------------------------------------------
def test_key_create_normalizes() -> None:
    future = datetime.now(UTC) + timedelta(days=1)
    out = validate_key_create(
        {"user_id": 3, "models": ["a", "b"], "expires_at": future.isoformat(), "rpm_limit": 5}
    )
    assert out == {
        "user_id": 3,
        "name": "",
        "kind": "api",
        "models": ["a", "b"],
        "expires_at": future,
        "rpm_limit": 5,
        "concurrency_limit": None,
        "tpm_limit": None,
        "spend_limit": None,
        "ip_allow": None,
    }
    naive = validate_key_create({"username": "z", "expires_at": "2999-01-01T00:00:00"})
    assert naive["expires_at"] == datetime(2999, 1, 1, tzinfo=UTC)  # no offset: UTC


@pytest.mark.parametrize(
    ("body", "field", "match"),
    [
        ({"user_id": 1, "expires_at": "2000-01-01T00:00:00Z"}, "expires_at", "future"),
        ({"user_id": 1, "expires_at": "tomorrow"}, "expires_at", "ISO-8601"),
        ({"user_id": 1, "expires_at": 12}, "expires_at", "ISO-8601"),
        ({"user_id": 1, "models": []}, "models", "at least one model"),
        ({"user_id": 1, "models": ["ok", ""]}, "models[1]", "empty"),
        ({"user_id": 1, "models": "gpt-4o"}, "models", "array"),
        ({"user_id": 1, "models": [1]}, "models[0]", "string"),
        ({"user_id": 1, "rpm_limit": 0}, "rpm_limit", ">= 1"),
        ({"user_id": 1, "rpm_limit": "5"}, "rpm_limit", "integer"),
        ({"user_id": 1, "concurrency_limit": True}, "concurrency_limit", "boolean"),
        ({"user_id": 1, "concurrency_limit": 2**40}, "concurrency_limit", "integer"),
        ({"user_id": "1"}, "user_id", "integer"),
        ({"user_id": 1, "username": "z"}, "username", "one"),
        ({}, "user_id", "user_id"),
        ({"user_id": 1, "kind": "root"}, "kind", "one of"),
        ({"user_id": 1, "name": 5}, "name", "string"),
        ({"user_id": 1, "name": "x" * 129}, "name", "128"),
        ({"user_id": 1, "status": "revoked"}, "status", "active"),
        ({"user_id": 1, "colour": "red"}, "colour", "Unknown"),
    ],
)
def test_key_create_refusals(body: dict[str, Any], field: str, match: str) -> None:
    refused(validate_key_create, body, field=field, match=match)


def test_key_patch() -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert validate_key_patch({"expires_at": past})["expires_at"] < datetime.now(UTC)
    assert validate_key_patch({"models": None, "expires_at": None}) == {
        "models": None,
        "expires_at": None,
    }
    refused(validate_key_patch, {"models": 5}, field="models", match="array")
    refused(validate_key_patch, {"status": "gone"}, field="status")
    refused(validate_key_patch, {"kind": "admin"}, field="kind", match="cannot be changed")
    refused(validate_key_patch, {"user_id": 2}, field="user_id", match="cannot be changed")


def test_revoked_is_final() -> None:
    check_key_status_change("active", "disabled")
    check_key_status_change("disabled", "active")
    check_key_status_change("active", "revoked")
    check_key_status_change("revoked", "revoked")
    for new in ("active", "disabled"):
        refused(check_key_status_change, "revoked", new, field="status", match="revoked")


# ---- channels ------------------------------------------------------------------------------
def test_channel_create_normalizes() -> None:
    out = validate_channel_create({**CHANNEL, "api_key": "sk-1"})
    assert out == {
        "name": "c",
        "provider": "openai_compat",
        "profile": "openai",
        "base_url": "https://api.example.com/v1",
        "keys": ["sk-1"],
        "models": ["m"],
        "model_mapping": {},
        "priority": 0,
        "weight": 1,
        "status": "enabled",
        "config": {},
    }
    # no key at all is fine (a local Ollama); the provider names the profile
    assert validate_channel_create(CHANNEL)["keys"] == []
    assert validate_channel_create({**CHANNEL, "provider": "anthropic"})["profile"] == "anthropic"
    assert validate_channel_create({**CHANNEL, "priority": -5})["priority"] == -5
    for proxy in ("", "http://u:p@127.0.0.1:3128"):  # "" = direct even with HTTPS_PROXY set
        out = validate_channel_create({**CHANNEL, "config": {"proxy": proxy}})
        assert out["config"]["proxy"] == proxy


@pytest.mark.parametrize(
    ("change", "field", "match"),
    [
        ({"model_mapping": [1]}, "model_mapping", "object"),
        ({"model_mapping": {"a": 1}}, "model_mapping['a']", "string"),
        ({"model_mapping": {"a": ""}}, "model_mapping['a']", "empty"),
        ({"priority": "high"}, "priority", "integer"),
        ({"priority": True}, "priority", "boolean"),
        ({"priority": 1.5}, "priority", "integer"),
        ({"weight": -1}, "weight", ">= 0"),
        ({"weight": None}, "weight", "integer"),
        ({"config": []}, "config", "object"),
        ({"config": {"api_version": 5}}, "config.api_version", "string"),
        ({"config": {"deployments": {"m": 1}}}, "config.deployments['m']", "string"),
        ({"config": {"headers": {"X-A": 1}}}, "config.headers['X-A']", "string"),
        ({"config": {"default_max_tokens": 0}}, "config.default_max_tokens", ">= 1"),
        ({"config": {"proxy": 3128}}, "config.proxy", "string"),
        ({"config": {"proxy": "socks5://h:1080"}}, "config.proxy", "http://"),
        ({"config": {"proxy": "http://h:99999"}}, "config.proxy", "port"),
        ({"config": {"proxy": "http://h:0"}}, "config.proxy", "port"),
        ({"keys": [""]}, "keys[0]", "empty"),
        ({"keys": "sk-1"}, "keys", "array"),
        ({"keys": ["sk 1"]}, "keys[0]", "whitespace"),
        ({"api_key": ""}, "api_key", "empty"),
        ({"api_key": "a", "keys": ["b"]}, "api_key", "not both"),
        ({"base_url": "ftp://x"}, "base_url", "http"),
        ({"base_url": "https://"}, "base_url", "host"),
        ({"base_url": "x" * 600}, "base_url", "512"),
        ({"base_url": 5}, "base_url", "string"),
        ({"models": []}, "models", "at least 1"),
        ({"models": ["a", "a"]}, "models", "twice"),
        ({"models": None}, "models", "array"),
        ({"name": ""}, "name", "empty"),
        ({"name": None}, "name", "string"),
        ({"status": "on"}, "status", "one of"),
        ({"provider": "nope"}, "provider", "one of"),
        ({"profile": "nope"}, "profile", "Unknown profile"),
        ({"provider": "anthropic", "profile": "openai"}, "profile", "Unknown profile"),
        ({"provider": "gemini", "profile": "openai"}, "profile", "known: gemini, vertex"),
        ({"is_emulator": True}, "is_emulator", "Unknown"),
    ],
)
def test_channel_create_refusals(change: dict[str, Any], field: str, match: str) -> None:
    refused(validate_channel_create, {**CHANNEL, **change}, field=field, match=match)


def test_channel_create_required_fields() -> None:
    for name in ("name", "base_url", "models"):
        body = {k: v for k, v in CHANNEL.items() if k != name}
        refused(validate_channel_create, body, field=name, match="required")


def test_channel_patch() -> None:
    assert validate_channel_patch({"keys": []}, provider="openai_compat") == {"keys": []}
    assert validate_channel_patch({"profile": "azure"}, provider="openai_compat") == {
        "profile": "azure"
    }
    refused(
        validate_channel_patch, {"priority": "high"}, provider="openai_compat", field="priority"
    )
    refused(validate_channel_patch, {"profile": "azure"}, provider="anthropic", field="profile")
    refused(
        validate_channel_patch,
        {"provider": "anthropic"},
        provider="openai_compat",
        field="provider",
        match="cannot be changed",
    )
    refused(validate_channel_patch, {}, provider="openai_compat", field=None)


# ---- ids and the log query -----------------------------------------------------------------
def test_ids_and_log_query() -> None:
    assert parse_id("key_id", "12") == 12 and parse_id("key_id", 12) == 12
    for bad in ("abc", "-1", "0", "1.5", "", True, None, 2**40):
        refused(parse_id, "key_id", bad, field="key_id")
    assert validate_log_query({}) == (100, None)
    assert validate_log_query({"limit": "1000", "user_id": "7"}) == (1000, 7)
    for bad in ("-1", "0", "1001", "abc", "", "1e3"):
        refused(validate_log_query, {"limit": bad}, field="limit", match="1 to 1000")
    refused(validate_log_query, {"user_id": "me"}, field="user_id")


# ---- config keys of the native providers and vendor profiles (issue 12) ---------------------
GOOD_PROVIDER_CONFIG: dict[str, tuple[Any, Any]] = {  # key: (given, stored)
    "project": ("my-project-1", "my-project-1"),
    "location": ("us-east5", "us-east5"),
    "reasoning_budgets": (
        {"high": 32768, "none": 0, "low": -1},
        {"high": 32768, "none": 0, "low": -1},
    ),
    "include_thoughts": (True, True),
    "safety_settings": (
        [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
        [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
    ),
    "endpoints": ({"ERNIE-4.0-8K": "completions_pro"}, {"ERNIE-4.0-8K": "completions_pro"}),
    "auth_url": ("https://aip.baidubce.com/", "https://aip.baidubce.com"),
    "region": ("ap-guangzhou", "ap-guangzhou"),
    "enable_enhancement": (False, False),
    "domains": ({"4.0Ultra": ["/v4.0/chat", "4.0Ultra"]}, {"4.0Ultra": ["/v4.0/chat", "4.0Ultra"]}),
    "path": ("/v3.5/chat", "/v3.5/chat"),
    "system_role": (False, False),
    "appid": ("app-123", "app-123"),
    "fixed_temperature": ({"kimi-k2": 1, "kimi-k2.5": 0.6}, {"kimi-k2": 1, "kimi-k2.5": 0.6}),
    "token_ttl": (600, 600),
}


@pytest.mark.parametrize("key", sorted(GOOD_PROVIDER_CONFIG))
def test_provider_config_key_accepted(key: str) -> None:
    given, stored = GOOD_PROVIDER_CONFIG[key]
    out = validate_channel_create({**CHANNEL, "config": {key: given}})
    assert out["config"] == {key: stored}
    patched = validate_channel_patch({"config": {key: given}}, provider="openai_compat")
    assert patched["config"] == {key: stored}


def test_provider_config_other_good_values() -> None:
    ok = {
        "appid": 12345,
        "token_ttl": 0.5,
        "fixed_temperature": {"m": 0, "n": 2},
        "auth_url": "http://127.0.0.1:9000",
        "domains": {"x": ["v1.1/chat", "lite"]},  # the adaptor adds the leading /
        "safety_settings": [
            {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF", "method": "SEVERITY"}
        ],
        "reasoning_budgets": {},
        "endpoints": {},
    }
    assert validate_channel_create({**CHANNEL, "config": ok})["config"] == ok
    # unknown keys are still stored as given (a provider extra not yet known here)
    assert validate_channel_create({**CHANNEL, "config": {"x_new": [1]}})["config"] == {
        "x_new": [1]
    }


@pytest.mark.parametrize(
    ("config", "field", "match"),
    [
        ({"project": 5}, "config.project", "string"),
        ({"project": ""}, "config.project", "empty"),
        ({"project": "a b"}, "config.project", "whitespace"),
        ({"location": ["us"]}, "config.location", "string"),
        ({"location": "us central"}, "config.location", "whitespace"),
        ({"reasoning_budgets": [1024]}, "config.reasoning_budgets", "object"),
        ({"reasoning_budgets": {"high": "lots"}}, "config.reasoning_budgets.high", "integer"),
        ({"reasoning_budgets": {"high": 1.5}}, "config.reasoning_budgets.high", "integer"),
        ({"reasoning_budgets": {"high": True}}, "config.reasoning_budgets.high", "integer"),
        ({"reasoning_budgets": {"high": -2}}, "config.reasoning_budgets.high", "-1 to"),
        ({"reasoning_budgets": {"high": 10**7}}, "config.reasoning_budgets.high", "-1 to"),
        ({"reasoning_budgets": {"": 1}}, "config.reasoning_budgets key", "empty"),
        ({"include_thoughts": "yes"}, "config.include_thoughts", "true or false"),
        ({"include_thoughts": 1}, "config.include_thoughts", "true or false"),
        ({"safety_settings": {"category": "x"}}, "config.safety_settings", "array"),
        ({"safety_settings": ["BLOCK_NONE"]}, "config.safety_settings[0]", "object"),
        (
            {"safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT"}]},
            "config.safety_settings[0].threshold",
            "needs `threshold`",
        ),
        (
            {"safety_settings": [{"category": 3, "threshold": "OFF"}]},
            "config.safety_settings[0].category",
            "string",
        ),
        (
            {"safety_settings": [{"category": "c", "threshold": "OFF"}] * 33},
            "config.safety_settings",
            "at most 32",
        ),
        ({"endpoints": ["completions_pro"]}, "config.endpoints", "object"),
        ({"endpoints": {"ERNIE-4.0-8K": 7}}, "config.endpoints.ERNIE-4.0-8K", "string"),
        ({"endpoints": {"ERNIE-4.0-8K": ""}}, "config.endpoints.ERNIE-4.0-8K", "empty"),
        ({"endpoints": {"m": "a b"}}, "config.endpoints.m", "whitespace"),
        ({"auth_url": 1}, "config.auth_url", "string"),
        ({"auth_url": "ftp://aip.baidubce.com"}, "config.auth_url", "http"),
        ({"auth_url": "https://"}, "config.auth_url", "host"),
        ({"region": 1}, "config.region", "string"),
        ({"region": "ap guangzhou"}, "config.region", "whitespace"),
        ({"region": "ap\n"}, "config.region", "control characters"),
        ({"enable_enhancement": "false"}, "config.enable_enhancement", "true or false"),
        ({"domains": ["lite"]}, "config.domains", "object"),
        ({"domains": {"lite": "/v1.1/chat"}}, "config.domains.lite", "[path, domain]"),
        ({"domains": {"lite": ["/v1.1/chat"]}}, "config.domains.lite", "[path, domain]"),
        ({"domains": {"lite": ["/v1.1/chat", 1]}}, "config.domains.lite[1]", "string"),
        ({"domains": {"lite": [None, "lite"]}}, "config.domains.lite[0]", "string"),
        ({"domains": {"lite": ["/a b", "lite"]}}, "config.domains.lite[0]", "whitespace"),
        ({"path": 3.5}, "config.path", "string"),
        ({"path": "v3.5/chat"}, "config.path", "starting with `/`"),
        ({"system_role": "true"}, "config.system_role", "true or false"),
        ({"appid": True}, "config.appid", "a string or a non-negative integer"),
        ({"appid": ""}, "config.appid", "a string or a non-negative integer"),
        ({"appid": -1}, "config.appid", "a string or a non-negative integer"),
        ({"appid": ["a"]}, "config.appid", "a string or a non-negative integer"),
        ({"fixed_temperature": 1}, "config.fixed_temperature", "object"),
        ({"fixed_temperature": {"kimi-k2": "1"}}, "config.fixed_temperature.kimi-k2", "number"),
        ({"fixed_temperature": {"kimi-k2": True}}, "config.fixed_temperature.kimi-k2", "number"),
        ({"fixed_temperature": {"kimi-k2": -0.1}}, "config.fixed_temperature.kimi-k2", "0 to 2"),
        ({"fixed_temperature": {"kimi-k2": 3}}, "config.fixed_temperature.kimi-k2", "0 to 2"),
        ({"fixed_temperature": {"": 1}}, "config.fixed_temperature key", "empty"),
        ({"token_ttl": "3600"}, "config.token_ttl", "number of seconds"),
        ({"token_ttl": 0}, "config.token_ttl", "> 0"),
        ({"token_ttl": -5}, "config.token_ttl", "> 0"),
        ({"token_ttl": 10**9}, "config.token_ttl", "<= 2.592e+06"),
        ({"token_ttl": True}, "config.token_ttl", "number of seconds"),
    ],
)
def test_provider_config_key_refused(config: dict[str, Any], field: str, match: str) -> None:
    refused(validate_channel_create, {**CHANNEL, "config": config}, field=field, match=match)
    refused(
        validate_channel_patch,
        {"config": config},
        provider="openai_compat",
        field=field,
        match=match,
    )
