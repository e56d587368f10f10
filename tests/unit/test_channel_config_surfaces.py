"""A channel's ``config.surfaces`` (services/channel_config.py): the API surfaces it serves
beyond chat and embeddings, checked on create and on patch."""

from __future__ import annotations

from typing import Any

import pytest

from relaygate.providers.surfaces import SURFACES, channel_surfaces
from relaygate.services.channel_config import channel_config
from relaygate.services.fields import ValidationError
from relaygate.services.validation import validate_channel_create, validate_channel_patch

CHANNEL = {"name": "c", "base_url": "https://api.example.com/v1/", "models": ["m"]}


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (["files", "audio"], ["audio", "files"]),
        (["rerank", "rerank", "images", "rerank"], ["images", "rerank"]),
        ([], []),
        (list(reversed(SURFACES)), sorted(SURFACES)),
    ],
)
def test_surfaces_kept_sorted_and_deduplicated(given: list[str], stored: list[str]) -> None:
    out = validate_channel_create({**CHANNEL, "config": {"surfaces": given}})
    assert out["config"] == {"surfaces": stored}
    patched = validate_channel_patch({"config": {"surfaces": given}}, provider="openai_compat")
    assert patched["config"] == {"surfaces": stored}
    # what is stored is what the router reads
    assert channel_surfaces("deepseek", out["config"]) == frozenset(stored)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("files", "must be an array of surface names"),
        ({"files": True}, "must be an array of surface names"),
        (None, "must be an array of surface names"),
        (["files", 3], "must be an array of surface names"),
        ([["files"]], "must be an array of surface names"),
        (["files", "chat"], "Unknown surface `chat`"),
        (["Files"], "Unknown surface `Files`"),
        (["embeddings"], "Unknown surface `embeddings`"),
        (["x" * 500], "Unknown surface `" + "x" * 64 + "`"),
    ],
)
def test_surfaces_refused(value: Any, match: str) -> None:
    for check in (
        lambda: validate_channel_create({**CHANNEL, "config": {"surfaces": value}}),
        lambda: validate_channel_patch({"config": {"surfaces": value}}, provider="openai_compat"),
    ):
        with pytest.raises(ValidationError) as info:
            check()
        err = info.value
        assert err.field == "config.surfaces" and err.param == "config.surfaces"
        assert match in err.message, err.message
        assert "`config.surfaces`" in err.message or "known: " in err.message
        assert err.http_status(True) == 400


def test_unknown_surface_message_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError) as info:
        channel_config("config", {"surfaces": ["speech"]})
    assert "known: " + ", ".join(SURFACES) in info.value.message
    with pytest.raises(ValidationError) as long:
        channel_config("config", {"surfaces": ["x" * 500]})
    assert "x" * 65 not in long.value.message  # the bad name is cut short
