"""The channel-type catalogue (providers/catalogue.py) cannot drift from the code: every
entry names a registered adaptor and a profile the channel validation accepts, ids are
unique, and the parts of a key are named."""

from __future__ import annotations

import pytest

from relaygate.errors import UpstreamError
from relaygate.providers import PROVIDERS
from relaygate.providers.catalogue import CHANNEL_TYPES, channel_type
from relaygate.providers.model_list import ids_from_data
from relaygate.services.validation import validate_channel_create

IDS = [t.id for t in CHANNEL_TYPES]


def test_ids_are_unique_and_found() -> None:
    assert len(IDS) == len(set(IDS))
    for t in CHANNEL_TYPES:
        assert channel_type(t.id) is t
    assert channel_type("nope") is None


@pytest.mark.parametrize("type_id", IDS)
def test_each_type_is_a_channel_the_gateway_accepts(type_id: str) -> None:
    t = channel_type(type_id)
    assert t is not None
    assert t.provider in PROVIDERS, t.provider
    assert t.key_parts and all(p.strip() for p in t.key_parts)
    assert t.label and t.label_zh
    # a channel made from the entry's defaults passes the admin API's validation
    body = {
        "name": f"cat-{t.id}",
        "provider": t.provider,
        "profile": t.profile,
        "base_url": t.base_url or "https://example.invalid/v1",
        "keys": ["|".join(f"part{i}" for i in range(len(t.key_parts)))],
        "models": list(t.models) or ["some-model"],
    }
    out = validate_channel_create(body)
    assert out["profile"] == t.profile
    public = t.to_public()
    assert public["key_format"] == "|".join(t.key_parts)


def test_catalogue_covers_the_issue_providers() -> None:
    wanted = {
        "gemini", "vertex", "qwen", "glm", "qianfan", "spark", "moonshot", "deepseek",
        "hunyuan", "doubao", "minimax", "xai", "groq", "openrouter", "ollama", "llamacpp",
        "generic", "baidu", "spark_ws", "tencent", "glm_jwt",
    }  # fmt: skip
    assert wanted <= set(IDS)


def test_model_list_ids() -> None:
    raw = b'{"object":"list","data":[{"id":"a"},{"id":"b"},{"id":"a"},{"x":1},{"id":""},7]}'
    assert ids_from_data(raw) == ["a", "b"]
    with pytest.raises(UpstreamError):
        ids_from_data(b'{"models":[]}')
    with pytest.raises(UpstreamError):
        ids_from_data(b"<html>")


def test_embeddings_flag_matches_the_profile() -> None:
    from relaygate.providers.profiles import PROFILES

    for t in CHANNEL_TYPES:
        if t.provider == "openai_compat":
            assert t.has_embeddings == PROFILES[t.profile].embeddings, t.id
            assert t.to_public()["embeddings"] == PROFILES[t.profile].embeddings
