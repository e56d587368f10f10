"""The models of ``relaygate serve --demo``: which built-in emulator serves each, the emulator
model it maps to, its demo price, and the kind of request it shows (for the banner and the
README).

The OpenAI emulator checks some requests by model name (``dall-e-3`` sizes and qualities,
``whisper-1`` duration usage, ``tts-1`` speech, ``sora-2`` videos), so those demo models map
to the emulator's real names through the channel's ``model_mapping``; the others are served
under their own names. Prices are in CNY and use the fields of docs/billing.md ("Media, audio,
video and training prices"), at about OpenAI's list prices (``RELAYGATE_USD_RATE`` 7.2) so
the balance visibly goes down as the demo is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEMO_KINDS", "DEMO_MODELS", "DemoModel", "demo_price_row"]


@dataclass(frozen=True, slots=True)
class DemoModel:
    """One demo model: ``provider`` is the emulator (and channel) serving it, ``price`` the
    price row's price fields (tokens per 1K), ``upstream`` the emulator's model name when its
    checks depend on it."""

    name: str
    provider: str
    price: Mapping[str, Any]
    upstream: str | None = None
    description: str = ""
    context_window: int | None = None


def _tokens(inp: str, out: str, **more: Any) -> dict[str, Any]:
    return {"input": inp, "output": out, **more}


def _media(**fields: Any) -> dict[str, Any]:
    """A price billed by what the request measures, not by tokens."""
    return {"input": "0", "output": "0", **fields}


DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel("emulator-gpt", "openai", _tokens("0.005", "0.015"), None,
              "Chat, and the model of assistants and runs.", 128000),
    DemoModel("emulator-embedding", "openai", _tokens("0.0005", "0"), None, "Embeddings.",
              128000),
    DemoModel("emulator-claude", "anthropic", _tokens("0.02", "0.1"), None,
              "Chat through the Anthropic Messages API.", 128000),
    DemoModel("emulator-instruct", "openai", _tokens("0.01", "0.015"), "gpt-3.5-turbo-instruct",
              "Legacy text completions."),
    DemoModel("emulator-moderation", "openai", _tokens("0", "0"), "omni-moderation-latest",
              "Moderations (free, as OpenAI's)."),
    DemoModel("emulator-image", "openai",
              _media(per_image="0.29", image_prices={
                  "hd": "0.58", "1792x1024": "0.58", "1024x1792": "0.58",
                  "1792x1024/hd": "0.86", "1024x1792/hd": "0.86",
              }),
              "dall-e-3", "Image generation, per image by size and quality."),
    DemoModel("emulator-whisper", "openai", _media(per_second="0.00072"), "whisper-1",
              "Transcriptions and translations, per second of audio."),
    DemoModel("emulator-tts", "openai", _media(per_character="0.000108"), "tts-1",
              "Speech, per input character."),
    DemoModel("emulator-rerank", "openai", _tokens("0.0005", "0"), None,
              "Rerank (Jina/Cohere style), per input token."),
    DemoModel("emulator-video", "openai", _media(per_second="0.72"), "sora-2",
              "Videos, per second of video."),
    DemoModel("emulator-ft", "openai", _tokens("0.0011", "0.0043", training="0.0216"),
              "gpt-4o-mini-2024-07-18", "A fine-tuning base model, per training token."),
)  # fmt: skip

#: (kind, demo model, endpoint to try it) — one line each in the banner
DEMO_KINDS: tuple[tuple[str, str, str], ...] = (
    ("chat", "emulator-gpt, emulator-claude", "POST /chat/completions"),
    ("embeddings", "emulator-embedding", "POST /embeddings"),
    ("completions", "emulator-instruct", "POST /completions"),
    ("moderations", "emulator-moderation", "POST /moderations"),
    ("images", "emulator-image", "POST /images/generations"),
    ("transcription", "emulator-whisper", "POST /audio/transcriptions, /audio/translations"),
    ("speech", "emulator-tts", "POST /audio/speech"),
    ("rerank", "emulator-rerank", "POST /rerank"),
    ("videos", "emulator-video", "POST /videos"),
    ("fine-tuning", "emulator-ft", "POST /files, then /fine_tuning/jobs"),
    ("assistants", "emulator-gpt", "POST /assistants, /threads/runs"),
)


def demo_price_row(model: DemoModel) -> dict[str, Any]:
    """The stored price row of a demo model (``svc.repo.prices.upsert``)."""
    return {
        "model": model.name,
        "provider": "relaygate-emulator",
        "currency": "CNY",
        "per": "1k",
        **model.price,
        "context_window": model.context_window,
        "description": f"Built-in emulator (canned answers), priced for the demo. "
        f"{model.description}".strip(),
        "source": "relaygate demo",
    }
