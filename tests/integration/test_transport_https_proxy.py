"""The real gateway process reaches an HTTPS upstream (the OpenAI emulator on TLS, signed by a
test CA given in RELAYGATE_CA_BUNDLE) through an HTTP CONNECT proxy named in HTTPS_PROXY.

The backend is whatever RELAYGATE_HTTP_CLIENT says (CI runs the integration suite once with
``fast`` and once with ``aiohttp``)."""

from __future__ import annotations

from pathlib import Path

import openai
from gateway import Gateway

from unit.transport_kit import UPSTREAM_KEY, ConnectProxy, LoopbackCA, TLSEmulator


async def test_gateway_uses_ca_bundle_and_environment_proxy(tmp_path: Path) -> None:
    ca = LoopbackCA(tmp_path)
    emu = await TLSEmulator(ca.server_context(), chunks=3).start()
    proxy = await ConnectProxy(auth="gw:s3cret").start()
    (tmp_path / "gw").mkdir()
    gw = Gateway(
        tmp_path / "gw",
        {
            "RELAYGATE_CA_BUNDLE": str(ca.ca_path),
            "HTTPS_PROXY": f"http://gw:s3cret@127.0.0.1:{proxy.port}",
            "NO_PROXY": "",
        },
    )
    try:
        gw.start()
        uid = gw.create_user("tls")
        gw.create_channel(
            name="tls-openai",
            provider="openai_compat",
            profile="openai",
            base_url=f"https://localhost:{emu.port}/v1",
            keys=[UPSTREAM_KEY],
            models=["gpt-4o-mini"],
        )
        key = gw.create_key(uid, name="k")
        client = openai.AsyncOpenAI(api_key=key, base_url=gw.base_url, max_retries=0)
        messages = [{"role": "user", "content": "hello"}]
        r = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
        assert r.choices[0].message.content
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
        )
        parts = [c.choices[0].delta.content async for c in stream if c.choices]
        assert "".join(p for p in parts if p) == r.choices[0].message.content
        await client.close()
    finally:
        gw.stop()
        await proxy.stop()
        await emu.stop()
    assert proxy.connects and set(proxy.connects) == {f"localhost:{emu.port}"}
    assert len(emu.peers) == len(proxy.connects)  # every upstream connection came by the proxy
    assert all(b"Proxy-Authorization: Basic Z3c6czNjcmV0\r\n" in h for h in proxy.heads)


async def test_channel_proxy_and_direct_override(tmp_path: Path) -> None:
    """A channel's `config.proxy` is used for its calls; `""` connects directly even when
    HTTPS_PROXY is set (the environment proxy here would refuse: wrong credentials)."""
    ca = LoopbackCA(tmp_path)
    emu = await TLSEmulator(ca.server_context(), chunks=2).start()
    chan_proxy = await ConnectProxy(auth="ch:pw").start()
    env_proxy = await ConnectProxy(auth="env:other").start()
    (tmp_path / "gw").mkdir()
    gw = Gateway(
        tmp_path / "gw",
        {
            "RELAYGATE_CA_BUNDLE": str(ca.ca_path),
            "HTTPS_PROXY": f"http://wrong:creds@127.0.0.1:{env_proxy.port}",
            "NO_PROXY": "",
        },
    )
    base = f"https://localhost:{emu.port}/v1"
    try:
        gw.start()
        uid = gw.create_user("px")
        gw.create_channel(
            name="via-channel-proxy",
            base_url=base,
            keys=[UPSTREAM_KEY],
            models=["m-proxied"],
            config={"proxy": f"http://ch:pw@127.0.0.1:{chan_proxy.port}"},
        )
        gw.create_channel(
            name="direct",
            base_url=base,
            keys=[UPSTREAM_KEY],
            models=["m-direct"],
            config={"proxy": ""},
        )
        key = gw.create_key(uid, name="k")
        client = openai.AsyncOpenAI(api_key=key, base_url=gw.base_url, max_retries=0)
        messages = [{"role": "user", "content": "hello"}]
        for model in ("m-proxied", "m-direct"):
            r = await client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
            assert r.choices[0].message.content
        await client.close()
    finally:
        gw.stop()
        await chan_proxy.stop()
        await env_proxy.stop()
        await emu.stop()
    assert len(chan_proxy.connects) == 1  # the proxied channel went through its own proxy
    assert env_proxy.connects == []  # the direct channel did not use the environment's
    assert len(emu.peers) == 2
