"""Validation of model routes (``services/routes.py``), the channel routing fields
(``services/validation.py``) and the channel checks that need more than the write
(``services/channel_checks.py``): pure functions, no gateway, no database."""

from __future__ import annotations

from typing import Any

import pytest

from relaygate.errors import InvalidRequest
from relaygate.services.channel_checks import ChannelShape, check_host_resolves, check_weights
from relaygate.services.fields import ValidationError
from relaygate.services.routes import (
    check_route,
    find_cycle,
    validate_route_create,
    validate_route_patch,
)
from relaygate.services.validation import (
    split_force,
    validate_channel_create,
    validate_channel_patch,
)

CHANNEL = {"name": "c", "base_url": "https://api.example.com/v1", "models": ["m"]}


def refused(fn: Any, *args: Any, field: str | None, match: str = "", **kw: Any) -> str:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kw)
    assert info.value.field == field and info.value.param == field
    assert isinstance(info.value, InvalidRequest)
    if match:
        assert match in info.value.message, info.value.message
    return info.value.message


# ---- route fields ---------------------------------------------------------------------------
def test_route_create_defaults_and_force() -> None:
    assert validate_route_create({"name": "gpt-3.5-turbo-16k", "fallbacks": ["a", "b"]}) == (
        {
            "name": "gpt-3.5-turbo-16k",
            "fallbacks": ["a", "b"],
            "hedge_after_ms": None,
            "description": "",
            "shaping": None,
        },
        False,
    )
    fields, force = validate_route_create({"name": "Qwen/Qwen3-8B", "force": True})
    assert fields["name"] == "Qwen/Qwen3-8B" and fields["fallbacks"] == [] and force is True


@pytest.mark.parametrize(
    ("body", "field", "match"),
    [
        ({}, "name", "required"),
        ({"name": ""}, "name", "empty"),
        ({"name": "a" * 129}, "name", "128"),
        ({"name": "my model"}, "name", "whitespace"),
        ({"name": 5}, "name", "string"),
        ({"name": "a", "fallbacks": "b"}, "fallbacks", "array"),
        ({"name": "a", "fallbacks": ["b", "b"]}, "fallbacks", "twice"),
        ({"name": "a", "fallbacks": [""]}, "fallbacks[0]", "empty"),
        ({"name": "a", "fallbacks": ["ok", 3]}, "fallbacks[1]", "string"),
        ({"name": "a", "fallbacks": [f"m{i}" for i in range(17)]}, "fallbacks", "at most 16"),
        ({"name": "a", "hedge_after_ms": 49}, "hedge_after_ms", "50 to 60000"),
        ({"name": "a", "hedge_after_ms": 60001}, "hedge_after_ms", "50 to 60000"),
        ({"name": "a", "hedge_after_ms": 1.5}, "hedge_after_ms", "integer"),
        ({"name": "a", "hedge_after_ms": True}, "hedge_after_ms", "integer"),
        ({"name": "a", "description": "x" * 513}, "description", "512"),
        ({"name": "a", "force": "yes"}, "force", "true or false"),
        ({"name": "a", "colour": "red"}, "colour", "Unknown field"),
    ],
)
def test_route_create_refusals(body: dict[str, Any], field: str, match: str) -> None:
    refused(validate_route_create, body, field=field, match=match)


def test_route_patch() -> None:
    assert validate_route_patch({"hedge_after_ms": None}) == ({"hedge_after_ms": None}, False)
    assert validate_route_patch({"fallbacks": ["x"], "force": True}) == ({"fallbacks": ["x"]}, True)
    refused(validate_route_patch, {"name": "b"}, field="name", match="cannot be changed")
    refused(validate_route_patch, {"force": True}, field=None, match="Nothing to change")
    refused(validate_route_patch, {"weight": 1}, field="weight", match="Unknown field")
    assert validate_route_patch({"hedge_after_ms": 50})[0] == {"hedge_after_ms": 50}
    assert validate_route_patch({"hedge_after_ms": 60000})[0] == {"hedge_after_ms": 60000}


# ---- route rules that need the rest of the configuration -------------------------------------
def test_find_cycle_shows_the_path() -> None:
    assert find_cycle("a", {"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle("a", {"a": ["x", "b"], "b": ["b2"], "b2": ["b"]}) == ["b", "b2", "b"]
    assert find_cycle("a", {"a": ["b", "c"], "b": ["c"], "c": []}) is None  # a diamond
    assert find_cycle("a", {"a": ["m1", "m2"]}) is None  # plain models end the chain


def test_check_route_accepts_chains_and_aliases() -> None:
    served = {"gpt-3.5-turbo-1106", "gpt-3.5-turbo-0613", "m"}
    check_route(
        "gpt-3.5-turbo-16k", ["gpt-3.5-turbo-1106", "gpt-3.5-turbo-0613"], routes={}, served=served
    )
    check_route("m", [], routes={}, served=served)  # hedging only, on served channels
    check_route("alias", ["other-alias"], routes={"other-alias": ["m"]}, served=served)
    check_route("x", ["typo"], routes={}, served=served, force=True)


def test_self_alias_refused() -> None:
    msg = refused(check_route, "a", ["m", "a"], routes={}, served={"m"}, field="fallbacks")
    assert "`fallbacks[1]`" in msg and "names itself" in msg


def test_cycle_refused_with_path() -> None:
    routes = {"b": ["c"], "c": ["a"]}
    msg = refused(check_route, "a", ["b"], routes=routes, served=set(), field="fallbacks")
    assert "a → b → c → a" in msg
    # force does not allow a cycle
    refused(check_route, "a", ["b"], routes=routes, served=set(), force=True, field="fallbacks")
    # a stored entry for the route itself is replaced by the new fallbacks
    check_route("a", ["m"], routes={"a": ["b"], "b": ["a"]}, served={"m"})


def test_unknown_fallback_refused_unless_forced() -> None:
    msg = refused(check_route, "a", ["m", "mx"], routes={}, served={"m"}, field="fallbacks")
    assert "`fallbacks[1]` is 'mx'" in msg and '"force": true' in msg
    check_route("a", ["m", "mx"], routes={}, served={"m"}, force=True)


def test_route_that_serves_nothing_refused() -> None:
    msg = refused(check_route, "ghost", [], routes={}, served={"m"}, field="fallbacks")
    assert "serve nothing" in msg
    # force is about unknown names; an empty alias stays refused
    refused(check_route, "ghost", [], routes={}, served={"m"}, force=True, field="fallbacks")


# ---- channel routing fields -------------------------------------------------------------------
def test_channel_routing_fields_accepted() -> None:
    config = {
        "groups": ["default", "vip"],
        "timeouts": {"connect": 2, "first_byte": 30.5, "idle": 3600},
        "max_concurrency": 8,
        "key_concurrency": 2,
        "queue_timeout": 0,
        "queue_size": 10000,
        "test_model": "gpt-4o-mini",
    }
    out = validate_channel_create({**CHANNEL, "weight": 0, "config": config})
    assert out["config"] == config and out["weight"] == 0
    assert validate_channel_create({**CHANNEL, "config": {"groups": []}})["config"]["groups"] == []
    assert validate_channel_patch({"config": {"queue_timeout": 60}}, provider="openai_compat")


@pytest.mark.parametrize(
    ("config", "field", "match"),
    [
        ({"groups": "vip"}, "config.groups", "array"),
        ({"groups": ["vip", "vip"]}, "config.groups", "twice"),
        ({"groups": [""]}, "config.groups[0]", "empty"),
        ({"groups": ["a b"]}, "config.groups[0]", "whitespace"),
        ({"groups": ["x" * 65]}, "config.groups[0]", "64"),
        ({"groups": [f"g{i}" for i in range(65)]}, "config.groups", "at most 64"),
        ({"timeouts": 5}, "config.timeouts", "object"),
        ({"timeouts": {"connect": 0}}, "config.timeouts.connect", "> 0"),
        ({"timeouts": {"idle": 3601}}, "config.timeouts.idle", "<= 3600"),
        ({"timeouts": {"first_byte": "5"}}, "config.timeouts.first_byte", "number"),
        ({"timeouts": {"first_byte": True}}, "config.timeouts.first_byte", "number"),
        ({"timeouts": {"read": 5}}, "config.timeouts.read", "Unknown key `read`"),
        ({"max_concurrency": 0}, "config.max_concurrency", ">= 1"),
        ({"key_concurrency": 1.5}, "config.key_concurrency", "integer"),
        ({"queue_timeout": -1}, "config.queue_timeout", ">= 0"),
        ({"queue_timeout": 61}, "config.queue_timeout", "<= 60"),
        ({"queue_size": 10001}, "config.queue_size", "0 to 10000"),
        ({"queue_size": -1}, "config.queue_size", "0 to 10000"),
        ({"test_model": ""}, "config.test_model", "empty"),
        ({"test_model": "x" * 129}, "config.test_model", "128"),
    ],
)
def test_channel_routing_field_refusals(config: dict[str, Any], field: str, match: str) -> None:
    refused(validate_channel_create, {**CHANNEL, "config": config}, field=field, match=match)
    refused(validate_channel_patch, {"config": config}, provider="openai_compat", field=field)


def test_channel_status_auto_disabled_is_the_gateways() -> None:
    msg = refused(
        validate_channel_patch,
        {"status": "auto_disabled"},
        provider="openai_compat",
        field="status",
    )
    assert "set by the gateway" in msg
    assert validate_channel_patch({"status": "enabled"}, provider="openai_compat") == {
        "status": "enabled"
    }


def test_split_force() -> None:
    assert split_force({"name": "c", "force": True}) == ({"name": "c"}, True)
    assert split_force({"name": "c"}) == ({"name": "c"}, False)
    refused(split_force, {"force": 1}, field="force")


# ---- weights and DNS --------------------------------------------------------------------------
def test_weight_zero_everywhere_refused() -> None:
    a = ChannelShape("a", "enabled", 0, ("m", "n"))
    b = ChannelShape("b", "enabled", 0, ("m",))
    c = ChannelShape("c", "enabled", 3, ("n",))
    msg = refused(check_weights, [a, b, c], {"m", "n"}, "weight", field="weight")
    assert "`m` has weight 0 ('a', 'b')" in msg and "none would get traffic" in msg
    check_weights([a, c], {"n"}, "weight")  # n has a weighted channel
    check_weights([a, ChannelShape("b", "disabled", 0, ("m",))], {"x"}, None)  # untouched model
    # a disabled weighted channel does not count
    d = ChannelShape("d", "disabled", 5, ("m",))
    refused(check_weights, [a, d], {"m"}, "status", field="status")
    check_weights([ChannelShape("a", "disabled", 0, ("m",))], {"m"}, None)  # none enabled


async def test_dns_check() -> None:
    no_env: dict[str, str] = {}
    with pytest.raises(ValidationError) as info:
        await check_host_resolves("http://no-such-host.invalid/v1", {}, force=False, environ=no_env)
    assert info.value.field == "base_url"
    assert "'no-such-host.invalid'" in info.value.message
    assert '"force": true' in info.value.message
    # skipped: force, a channel proxy, a proxy in the environment
    await check_host_resolves("http://no-such-host.invalid", {}, force=True, environ=no_env)
    await check_host_resolves(
        "http://no-such-host.invalid",
        {"proxy": "http://127.0.0.1:3128"},
        force=False,
        environ=no_env,
    )
    env = {"HTTPS_PROXY": "http://127.0.0.1:3128"}
    await check_host_resolves("https://no-such-host.invalid", {}, force=False, environ=env)
    # ... but not when the channel asks for a direct connection
    with pytest.raises(ValidationError, match="no-such-host"):
        await check_host_resolves(
            "https://no-such-host.invalid", {"proxy": ""}, force=False, environ=env
        )
    await check_host_resolves("http://127.0.0.1:9", {}, force=False, environ=no_env)
    await check_host_resolves("http://localhost:9", {}, force=False, environ=no_env)
