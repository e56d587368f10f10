"""Both transport backends over HTTPS on loopback, with a test certificate authority."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from transport_kit import BACKENDS, LoopbackCA, TLSEmulator, chat, open_transport

from relaygate.errors import UpstreamError
from relaygate.settings import Settings


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LoopbackCA:
    return LoopbackCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
async def emulator(ca: LoopbackCA) -> AsyncIterator[TLSEmulator]:
    emu = await TLSEmulator(ca.server_context(), chunks=3).start()
    yield emu
    await emu.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_https_json_and_sse_reuse_one_tls_connection(
    backend: str, ca: LoopbackCA, emulator: TLSEmulator
) -> None:
    async with open_transport(backend, ca_bundle=str(ca.ca_path)) as t:
        for _ in range(2):
            async with t.request(chat(emulator.url()), stream=False) as resp:
                assert resp.status == 200
                body = orjson.loads(await resp.read())
            assert body["object"] == "chat.completion"
            assert body["choices"][0]["message"]["content"]
            async with t.request(chat(emulator.url(), stream=True), stream=True) as resp:
                assert resp.status == 200
                assert (resp.header("content-type") or "").startswith("text/event-stream")
                raw = b"".join([c async for c in resp.chunks()])
            frames = [f for f in raw.split(b"\n\n") if f.startswith(b"data: ")]
            assert frames[-1] == b"data: [DONE]"
            assert len(frames) >= 4  # role, 3 content chunks, …, [DONE]
    assert len(emulator.peers) == 1  # four exchanges, one TLS connection


@pytest.mark.parametrize("backend", BACKENDS)
async def test_https_by_host_name(backend: str, ca: LoopbackCA, emulator: TLSEmulator) -> None:
    async with (
        open_transport(backend, ca_bundle=str(ca.ca_path)) as t,
        t.request(chat(emulator.url("localhost")), stream=False) as resp,
    ):
        assert resp.status == 200
        assert b"chat.completion" in await resp.read()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_untrusted_certificate_is_refused(backend: str, emulator: TLSEmulator) -> None:
    """Default settings: the system store, which does not hold the test CA."""
    async with open_transport(backend) as t:
        with pytest.raises(UpstreamError) as info:
            async with t.request(chat(emulator.url()), stream=False):
                pass
    assert info.value.http_status(False) == 502
    assert "TLS certificate could not be verified" in info.value.message
    assert emulator.core.stats.snapshot(with_requests=False)["requests"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_certificate_of_another_ca_is_refused(
    backend: str, ca: LoopbackCA, tmp_path: Path
) -> None:
    other = LoopbackCA(tmp_path)  # the server's CA is not the one we trust
    emu = await TLSEmulator(other.server_context()).start()
    try:
        async with open_transport(backend, ca_bundle=str(ca.ca_path)) as t:
            with pytest.raises(UpstreamError, match="TLS certificate could not be verified"):
                async with t.request(chat(emu.url()), stream=False):
                    pass
    finally:
        await emu.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_certificate_for_another_host_is_refused(backend: str, ca: LoopbackCA) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.ca.issue_cert("upstream.example").configure_cert(ctx)
    emu = await TLSEmulator(ctx).start()
    try:
        async with open_transport(backend, ca_bundle=str(ca.ca_path)) as t:
            with pytest.raises(UpstreamError) as info:
                async with t.request(chat(emu.url()), stream=False):
                    pass
        assert "TLS certificate could not be verified" in info.value.message
        assert "mismatch" in info.value.message.lower()
    finally:
        await emu.stop()


def test_ca_bundle_setting_and_ssl_cert_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYGATE_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert Settings.from_env().ca_bundle == ""
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/corp-ca.pem")
    assert Settings.from_env().ca_bundle == "/etc/corp-ca.pem"
    monkeypatch.setenv("RELAYGATE_CA_BUNDLE", "/etc/relaygate-ca.pem")
    assert Settings.from_env().ca_bundle == "/etc/relaygate-ca.pem"


async def test_missing_ca_bundle_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        async with open_transport("fast", ca_bundle=str(tmp_path / "nope.pem")):
            pass
