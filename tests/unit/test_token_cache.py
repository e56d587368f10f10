"""The token cache resolves short-lived upstream tokens over a real HTTP token
endpoint: one exchange for concurrent requests, reuse until shortly before expiry,
local JWTs computed once, channels without tokens skipped."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from relaygate.errors import RelayError, UpstreamError
from relaygate.providers.base import Target, UpstreamRequest
from relaygate.routing.tokens import TokenCache
from relaygate.settings import Settings
from relaygate.transport.factory import create_transport


class OAuthAdaptor:
    """A TokenSource shaped like Baidu's OAuth exchange (``access_token``, ``expires_in``)."""

    name = "oauth_test"

    def __init__(self, url: str) -> None:
        self.url = url

    def token_request(self, target: Target) -> UpstreamRequest | None:
        if not target.api_key:
            return None
        return UpstreamRequest(
            self.url, {"Content-Type": "application/json"}, orjson.dumps({"k": target.api_key})
        )

    def token_response(self, target: Target, status: int, raw: bytes) -> tuple[str, float]:
        if status != 200:
            raise UpstreamError("token exchange failed")
        obj = orjson.loads(raw)
        return obj["access_token"], float(obj["expires_in"])

    # the rest of the adaptor interface is not used here
    def __getattr__(self, name: str) -> Any:  # pragma: no cover
        raise AttributeError(name)


def target(key: str = "ak.sk", channel: int = 1) -> Target:
    return Target(channel, "oauth_test", "x", "http://unused", key, "m")


async def test_exchange_once_reuse_and_renew() -> None:
    calls = 0
    fail = False

    async def token(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        if fail:
            return web.json_response({"error": "invalid_client"}, status=401)
        body = await request.json()
        return web.json_response({"access_token": f"tok-{body['k']}-{calls}", "expires_in": 3600})

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    transport = create_transport(Settings())
    await transport.start()
    try:
        clock = [1000.0]
        cache = TokenCache(transport, clock=lambda: clock[0])
        ad = OAuthAdaptor(f"http://127.0.0.1:{port}/oauth/token")
        got = await asyncio.gather(*(cache.resolve(ad, target()) for _ in range(5)))  # type: ignore[arg-type]
        assert {t.token for t in got} == {"tok-ak.sk-1"} and calls == 1  # one exchange
        assert (await cache.resolve(ad, target())).token == "tok-ak.sk-1"  # type: ignore[arg-type]
        assert calls == 1
        # close to expiry: renewed
        clock[0] += 3600
        assert (await cache.resolve(ad, target())).token == "tok-ak.sk-2"  # type: ignore[arg-type]
        # a failed exchange is the upstream's error, and nothing is cached
        fail = True
        try:
            await cache.resolve(ad, target(channel=2))  # type: ignore[arg-type]
            raise AssertionError("expected an upstream error")
        except RelayError as err:
            assert isinstance(err, UpstreamError)
        # a target that needs no token is passed through
        assert (await cache.resolve(ad, target(key=""))).token is None  # type: ignore[arg-type]
    finally:
        await transport.close()
        await runner.cleanup()


async def test_local_jwt_is_computed_once_per_validity() -> None:
    from relaygate.providers.openai_compat import OpenAICompatAdaptor

    cache = TokenCache(create_transport(Settings()))
    ad = OpenAICompatAdaptor()
    from relaygate.providers.profiles import PROFILES

    jwt_profile = next((n for n, p in PROFILES.items() if p.auth == "zhipu_jwt"), None)
    assert jwt_profile is not None
    glm = Target(7, "openai_compat", jwt_profile, "http://x", "myid.mysecret", "glm-4")
    a = await cache.resolve(ad, glm)
    b = await cache.resolve(ad, glm)
    assert a.token and a.token.count(".") == 2 and a.token == b.token
    plain = Target(8, "openai_compat", "openai", "http://x", "sk-1", "gpt")
    assert (await cache.resolve(ad, plain)).token is None
