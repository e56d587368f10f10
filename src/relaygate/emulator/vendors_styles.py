"""The OpenAI-compatible vendors' wire styles: :class:`Style` (what one vendor does
differently from OpenAI: path prefix, models, where usage goes, the reasoning field, whole or
fragmented tool calls, SSE framing, error bodies, embeddings, the parameter rules it enforces)
and :data:`STYLES`, one per vendor, read by the emulator in ``emulator/vendors.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["STYLES", "Style"]


@dataclass(frozen=True, slots=True)
class Style:
    name: str
    prefix: str
    models: tuple[str, ...]
    #: include_usage | finish_chunk (GLM) | in_choice (Moonshot) | final_frame (MiniMax)
    #: | last_content (Spark) | groq | openrouter
    usage: str = "include_usage"
    #: reasoning_content | reasoning | openrouter | minimax | hidden (counted, no text)
    reasoning: str = "reasoning_content"
    reasons: tuple[str, ...] = ()  # model-name parts of reasoning models
    tools: str = "fragmented"  # fragmented | whole | object (Spark: one object, no id)
    data_prefix: bytes = b"data: "
    event_head: bytes = b""  # a comment line inside each event (DashScope)
    errors: str = "openai"  # openai | glm | minimax | spark
    embeddings: bool = False
    usage_outside: bool = False  # xAI: reasoning tokens outside completion_tokens
    max_temperature: float | None = None
    fixed_temperature: tuple[tuple[str, float], ...] = ()
    rejects_required: bool = False  # 400 for tool_choice "required"
    one_choice: bool = False  # 400 for n > 1
    choice_extra: dict[str, Any] = field(default_factory=dict)


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            "qwen",
            "/compatible-mode/v1",
            ("qwen-plus", "qwen3-32b", "text-embedding-v3"),
            reasons=("qwen3", "qwq"),
            event_head=b":HTTP_STATUS/200\n",
            embeddings=True,
        ),
        Style(
            "glm",
            "/api/paas/v4",
            ("glm-4-flash", "glm-4.7-flash", "embedding-3"),
            usage="finish_chunk",
            reasons=("glm-4.5", "glm-4.6", "glm-4.7", "glm-z1"),
            tools="whole",
            errors="glm",
            embeddings=True,
            max_temperature=1.0,
            rejects_required=True,
        ),
        Style(
            "qianfan",
            "/v2",
            ("ernie-4.0-8k", "deepseek-r1", "embedding-v1"),
            reasons=("deepseek-r1", "x1"),
            embeddings=True,
            choice_extra={"flag": 0, "is_end": False, "need_clear_history": False},
        ),
        Style(
            "spark",
            "/v1",
            ("lite", "generalv3.5", "4.0Ultra"),
            usage="last_content",
            tools="object",
            data_prefix=b"data:",
            errors="spark",
            one_choice=True,
        ),
        Style(
            "moonshot",
            "/v1",
            ("moonshot-v1-8k", "kimi-k2-0905-preview", "kimi-k2-thinking"),
            usage="in_choice",
            reasons=("thinking", "kimi-k2.5", "kimi-k2.6"),
            max_temperature=1.0,
            fixed_temperature=(("kimi-k2.5", 1.0), ("kimi-k2.6", 1.0), ("kimi-k2-thinking", 1.0)),
            rejects_required=True,
        ),
        Style(
            "hunyuan",
            "/v1",
            ("hunyuan-turbos-latest", "hunyuan-t1-latest", "hunyuan-embedding"),
            reasons=("hunyuan-t1",),
            embeddings=True,
        ),
        Style(
            "doubao",
            "/api/v3",
            ("doubao-1-5-pro-32k-250115", "doubao-seed-1-6-250615", "doubao-embedding-text-240715"),
            reasons=("seed", "thinking"),
            embeddings=True,
        ),
        Style(
            "minimax",
            "/v1",
            ("MiniMax-M2", "MiniMax-Text-01"),
            usage="final_frame",
            reasoning="minimax",
            reasons=("MiniMax-M",),
            errors="minimax",
            max_temperature=1.0,
            one_choice=True,
        ),
        Style(
            "xai",
            "/v1",
            ("grok-4-fast", "grok-3"),
            reasoning="hidden",
            reasons=("grok-4",),
            tools="whole",
            usage_outside=True,
        ),
        Style(
            "groq",
            "/openai/v1",
            ("moonshotai/kimi-k2-instruct-0905", "openai/gpt-oss-20b"),
            usage="groq",
            reasoning="reasoning",
            reasons=("gpt-oss", "qwen3"),
            tools="whole",
            one_choice=True,
        ),
        Style(
            "openrouter",
            "/api/v1",
            ("z-ai/glm-5-turbo", "openai/gpt-4o-mini"),
            usage="openrouter",
            reasoning="openrouter",
            reasons=("glm", "grok", "r1", "thinking"),
            embeddings=True,
        ),
        Style(
            "ollama",
            "/v1",
            ("llama3.2", "qwen3:8b", "nomic-embed-text"),
            reasoning="reasoning",
            reasons=("qwen3", "deepseek-r1", "gpt-oss"),
            tools="whole",
            embeddings=True,
        ),
        Style(
            "llamacpp",
            "/v1",
            ("openai/gpt-oss-20b",),
            reasons=("gpt-oss",),
            embeddings=True,
        ),
    )
}
