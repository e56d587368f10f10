"""providers/surfaces.py: the upstream request the OpenAI-compatible adaptor makes for a
call on the rest of OpenAI's API surface, and which channels serve which surfaces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from relaygate.providers.base import Target
from relaygate.providers.openai_compat import OpenAICompatAdaptor
from relaygate.providers.profiles import PROFILES, get_profile
from relaygate.providers.surfaces import (
    MODEL_SURFACES,
    OBJECT_SURFACES,
    PROFILE_SURFACES,
    SURFACES,
    SurfaceCall,
    channel_serves,
    channel_surfaces,
    surface_request,
)

ADAPTOR = OpenAICompatAdaptor()


def target(profile: str, model: str = "up-model", **config: Any) -> Target:
    return Target(
        channel_id=1,
        provider="openai_compat",
        profile=profile,
        base_url="http://127.0.0.1:9/v1"
        if profile not in ("azure", "azure_v1")
        else "https://r.example",
        api_key="sk-up",
        upstream_model=model,
        config=config,
    )


async def _chunks() -> AsyncIterator[bytes]:
    yield b"--b\r\n"


# ---- URLs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("profile", "path", "query", "url"),
    [
        ("openai", "/files", b"", "http://127.0.0.1:9/v1/files"),
        (
            "openai",
            "/files",
            b"purpose=batch&limit=2",
            "http://127.0.0.1:9/v1/files?purpose=batch&limit=2",
        ),
        ("generic", "/completions", b"", "http://127.0.0.1:9/v1/completions"),
        ("generic", "/rerank", b"a=1", "http://127.0.0.1:9/v1/rerank?a=1"),
        (
            "azure_v1",
            "/files/file-1/content",
            b"",
            "https://r.example/openai/v1/files/file-1/content",
        ),
        ("azure_v1", "/batches", b"limit=5", "https://r.example/openai/v1/batches?limit=5"),
        (
            "azure",
            "/images/generations",
            b"",
            "https://r.example/openai/deployments/up-model/images/generations?api-version=2024-10-21",
        ),
        (
            "azure",
            "/audio/transcriptions",
            b"timestamp=1",
            "https://r.example/openai/deployments/up-model/audio/transcriptions"
            "?api-version=2024-10-21&timestamp=1",
        ),
    ],
)
def test_urls(profile: str, path: str, query: bytes, url: str) -> None:
    ureq = ADAPTOR.surface_request(target(profile), SurfaceCall("POST", path, query, json={}))
    assert ureq.url == url


def test_azure_deployment_and_api_version_from_config() -> None:
    t = target(
        "azure", "gpt-4o", api_version="2025-01-01-preview", deployments={"gpt-4o": "dep-4o"}
    )
    ureq = ADAPTOR.surface_request(t, SurfaceCall("GET", "/completions", b"x=%20y"))
    assert ureq.url == (
        "https://r.example/openai/deployments/dep-4o/completions?api-version=2025-01-01-preview&x=%20y"
    )
    # a model without a deployment entry is its own deployment name
    t = target("azure", "dall-e-3", deployments={"gpt-4o": "dep-4o"})
    ureq = ADAPTOR.surface_request(t, SurfaceCall("POST", "/images/generations", json={}))
    assert "/deployments/dall-e-3/images/generations?api-version=2024-10-21" in ureq.url


# ---- headers -------------------------------------------------------------------------------
def test_auth_headers_by_profile() -> None:
    call = SurfaceCall("GET", "/files")
    assert ADAPTOR.surface_request(target("openai"), call).headers == {
        "Authorization": "Bearer sk-up"
    }
    assert ADAPTOR.surface_request(target("azure"), call).headers == {"api-key": "sk-up"}
    assert ADAPTOR.surface_request(target("azure_v1"), call).headers == {"api-key": "sk-up"}
    extra = ADAPTOR.surface_request(target("generic", headers={"X-Org": "o1"}), call).headers
    assert extra == {"Authorization": "Bearer sk-up", "X-Org": "o1"}


def test_json_body_gets_the_upstream_model() -> None:
    body = {"model": "client-model", "prompt": "hi", "n": 2}
    ureq = ADAPTOR.surface_request(target("openai"), SurfaceCall("POST", "/completions", json=body))
    assert orjson.loads(ureq.body) == {"model": "up-model", "prompt": "hi", "n": 2}
    assert body["model"] == "client-model"  # the caller's body is not changed (retries)
    assert ureq.headers["Content-Type"] == "application/json" and ureq.method == "POST"
    assert ureq.stream_body is None


def test_json_body_model_left_alone() -> None:
    body = {"model": "client-model", "input": "x"}
    call = SurfaceCall("POST", "/moderations", json=body, set_model=False)
    assert orjson.loads(ADAPTOR.surface_request(target("openai"), call).body) == body
    no_model = {"purpose": "batch"}  # no model field: none is added
    call = SurfaceCall("POST", "/vector_stores", json=no_model)
    ureq = ADAPTOR.surface_request(target("openai"), call)
    assert orjson.loads(ureq.body) == no_model
    empty = SurfaceCall("POST", "/threads", json={})
    assert ADAPTOR.surface_request(target("openai"), empty).body == b"{}"


def test_streamed_body() -> None:
    call = SurfaceCall(
        "POST",
        "/files",
        stream=_chunks,
        content_type="multipart/form-data; boundary=b",
        length=12345,
    )
    ureq = ADAPTOR.surface_request(target("azure_v1"), call)
    assert ureq.body == b"" and ureq.stream_body is _chunks
    assert ureq.headers["Content-Type"] == "multipart/form-data; boundary=b"
    assert ureq.headers["Content-Length"] == "12345"
    assert ureq.headers["api-key"] == "sk-up"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_no_body(method: str) -> None:
    ureq = ADAPTOR.surface_request(target("openai"), SurfaceCall(method, "/files/file-1"))
    assert ureq.method == method and ureq.body == b"" and ureq.stream_body is None
    assert "Content-Type" not in ureq.headers and "Content-Length" not in ureq.headers


def test_passed_headers() -> None:
    call = SurfaceCall("POST", "/threads", json={}, headers=(("OpenAI-Beta", "assistants=v2"),))
    ureq = ADAPTOR.surface_request(target("openai"), call)
    assert ureq.headers["OpenAI-Beta"] == "assistants=v2"
    assert ureq.headers["Authorization"] == "Bearer sk-up"
    get = SurfaceCall("GET", "/assistants/asst_1", headers=(("OpenAI-Beta", "assistants=v2"),))
    assert ADAPTOR.surface_request(target("azure"), get).headers == {
        "api-key": "sk-up",
        "OpenAI-Beta": "assistants=v2",
    }


def test_surface_request_directly_does_not_change_the_given_headers() -> None:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer k"}
    ureq = surface_request(
        get_profile("openai"), target("openai"), SurfaceCall("GET", "/files"), headers
    )
    assert "Content-Type" not in ureq.headers
    assert headers == {"Content-Type": "application/json", "Authorization": "Bearer k"}


# ---- which channels serve what -------------------------------------------------------------
def test_surface_names() -> None:
    assert set(SURFACES) == set(MODEL_SURFACES) | set(OBJECT_SURFACES)
    assert len(SURFACES) == len(set(SURFACES))
    for name, served in PROFILE_SURFACES.items():
        assert name in PROFILES, name
        assert served <= set(SURFACES), name
    assert "rerank" not in PROFILE_SURFACES["openai"]
    assert PROFILE_SURFACES["generic"] == frozenset(SURFACES)


def test_channel_surfaces_from_profile_or_config() -> None:
    assert channel_surfaces("openai", {}) == PROFILE_SURFACES["openai"]
    assert channel_surfaces("azure", {"surfaces": None}) == frozenset(
        {"completions", "images", "audio"}
    )
    assert channel_surfaces("deepseek", {}) == frozenset()  # a profile without a list
    assert channel_surfaces("no-such-profile", {}) == frozenset()
    assert channel_surfaces("openai", {"surfaces": ["rerank"]}) == frozenset({"rerank"})
    assert channel_surfaces("openai", {"surfaces": []}) == frozenset()
    assert channel_surfaces("deepseek", {"surfaces": ["files", 3]}) == frozenset({"files"})
    assert ADAPTOR.surfaces(target("groq")) == frozenset({"audio", "files", "batches"})


def test_channel_serves() -> None:
    assert channel_serves("openai_compat", "openai", {}, "files")
    assert not channel_serves("openai_compat", "openai", {}, "rerank")
    assert channel_serves("openai_compat", "openai", {"surfaces": ["rerank"]}, "rerank")
    assert not channel_serves("openai_compat", "openai", {"surfaces": ["rerank"]}, "files")
    for provider in ("anthropic", "gemini", "baidu", "tencent", "spark_ws"):
        assert not channel_serves(provider, "generic", {}, "files")
        assert not channel_serves(provider, "openai", {"surfaces": list(SURFACES)}, "completions")
