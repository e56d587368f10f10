"""The provider registry built from one list, and the token-source hook."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from click.testing import CliRunner

from relaygate.cli import main
from relaygate.errors import UpstreamError
from relaygate.providers import PROVIDERS
from relaygate.providers.base import LocalTokenSource, Target, TokenSource, UpstreamRequest
from relaygate.providers.openai_compat import OpenAICompatAdaptor
from relaygate.providers.registry import ADAPTORS, AdaptorRegistry
from relaygate.providers.zhipu_jwt import zhipu_jwt


def test_one_list_feeds_registry_providers_and_cli() -> None:
    names = tuple(cls.name for cls in ADAPTORS)
    assert names == PROVIDERS and names[:2] == ("openai_compat", "anthropic")
    assert "gemini" in names
    assert AdaptorRegistry().names() == sorted(names)
    help_text = CliRunner().invoke(main, ["channel", "create", "--help"]).output
    for name in names:
        assert name in help_text


class SampleOAuthAdaptor(OpenAICompatAdaptor):
    """A Baidu-style provider: API key + secret exchanged for an access token."""

    name = "sample_oauth"

    def token_request(self, target: Target) -> UpstreamRequest | None:
        client_id, _, secret = target.api_key.partition(":")
        return UpstreamRequest(
            "https://auth.example/oauth/2.0/token?grant_type=client_credentials"
            f"&client_id={client_id}&client_secret={secret}",
            {},
            b"",
        )

    def token_response(self, target: Target, status: int, raw: bytes) -> tuple[str, float]:
        obj: Any = orjson.loads(raw)
        if status != 200 or "access_token" not in obj:
            raise UpstreamError("token exchange failed", code="upstream_auth_failed")
        return str(obj["access_token"]), float(obj["expires_in"])


def target(profile: str = "openai", key: str = "id1.c2VjcmV0") -> Target:
    return Target(1, "openai_compat", profile, "https://up.example/v1", key, "m")


def test_a_new_adaptor_in_the_list_is_served_with_its_token_hook() -> None:
    reg = AdaptorRegistry((*ADAPTORS, SampleOAuthAdaptor))
    adaptor = reg.get("sample_oauth")
    source = reg.token_source("sample_oauth")
    assert isinstance(source, TokenSource) and source is adaptor
    t = target(key="ak:sk")
    req = source.token_request(t)
    assert req is not None
    query = parse_qs(urlsplit(req.url).query)
    assert query["client_id"] == ["ak"] and query["client_secret"] == ["sk"]
    token, ttl = source.token_response(t, 200, b'{"access_token":"24.abc","expires_in":2592000}')
    assert (token, ttl) == ("24.abc", 2592000.0)
    with pytest.raises(UpstreamError):
        source.token_response(t, 200, b'{"error":"invalid_client"}')
    # the relay hands the token back on the target; the adaptor sends it, not the key
    sent = adaptor.chat_request(
        dataclasses.replace(t, token=token), {"messages": [{"role": "user", "content": "x"}]}, False
    )
    assert sent.headers["Authorization"] == "Bearer 24.abc"
    # Anthropic's hook (Claude on Vertex) asks for no token on its plain profile
    anthropic = reg.token_source("anthropic")
    assert isinstance(anthropic, TokenSource)
    assert (
        anthropic.token_request(Target(1, "anthropic", "anthropic", "https://x", "k", "m")) is None
    )
    with pytest.raises(ValueError):
        AdaptorRegistry((OpenAICompatAdaptor, OpenAICompatAdaptor))


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_zhipu_jwt_signed_as_documented() -> None:
    token = zhipu_jwt("id1.c2VjcmV0", now=1_700_000_000.5, ttl_seconds=210)
    head, payload, sig = token.split(".")
    assert json.loads(_b64(head)) == {"alg": "HS256", "sign_type": "SIGN"}
    assert json.loads(_b64(payload)) == {
        "api_key": "id1",
        "exp": 1_700_000_000_500 + 210_000,
        "timestamp": 1_700_000_000_500,
    }
    want = hmac.new(b"c2VjcmV0", f"{head}.{payload}".encode(), hashlib.sha256).digest()
    assert _b64(sig) == want
    with pytest.raises(UpstreamError):
        zhipu_jwt("no-dot-key", now=0, ttl_seconds=60)


def test_glm_jwt_profile_is_a_local_token_source() -> None:
    a = OpenAICompatAdaptor()
    assert isinstance(a, LocalTokenSource)
    assert a.local_token(target("glm"), now=1000.0) is None  # plain Bearer key
    got = a.local_token(target("glm_jwt"), now=1000.0)
    assert got is not None
    token, ttl = got
    assert ttl == 3600.0 and json.loads(_b64(token.split(".")[1]))["exp"] == 1000_000 + 3600_000
