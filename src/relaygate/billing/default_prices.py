"""The shipped default price catalogue: list prices of the mainstream models, so a new
installation bills sensibly at once.

Each row has the shape of a ``prices`` table row (``storage/tables.py``): decimal strings
in the vendor's own currency and unit, as the vendor's pricing page lists them, and the
``source`` page they were taken from. A row the operator stores for the same model (admin
API ``/admin/api/prices``) replaces the default; the defaults themselves change only with
a new release of relaygate, dated by :data:`DEFAULTS_AS_OF`.

What the defaults cannot express, and how each row resolves it (said in its ``source``):

* time-of-day prices (DeepSeek's peak and off-peak hours): the **peak** price;
* prompt-length tiers (Gemini Pro over 200K tokens, Claude Haiku 5.5 over 100K, Qwen and
  GLM bands): the price of the **first band**;
* thinking/non-thinking output prices (Qwen Plus/Turbo): the non-thinking price;
* separate text and image input prices (GPT Image): the image input price (text prompts
  are the small part);
* per-second video prices by resolution (Sora 2 Pro): the 720p price.

Media rows (images, audio, video, moderation, rerank, fine-tuning) use the fields of
``billing/media.py``: ``per_image`` and ``image_prices`` (by size and quality),
``per_second`` (audio or video), ``per_character`` (the price of one character of speech
input) and ``training`` (per 1M training tokens). Models that OpenAI has shut down keep
their last listed price, for upstreams that still serve them.

Rows whose ``source`` says "not re-checked" are the last list price we know, not checked
against the vendor's page on :data:`DEFAULTS_AS_OF`; verify them before relying on them.
A missing ``cached_input`` bills cache reads at the input price (never below cost).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULTS_AS_OF", "DEFAULT_GROUPS", "DEFAULT_MODELS", "DEFAULT_PRICES"]

DEFAULTS_AS_OF = "2026-11-28"

_OPENAI = "https://platform.openai.com/docs/pricing"
_OPENAI_LEGACY = (
    _OPENAI + " (legacy model: no longer on the page's main table; last listed price, "
    "not re-checked)"
)
_ANTHROPIC = "https://platform.claude.com/docs/en/about-claude/pricing"
_GEMINI = "https://ai.google.dev/gemini-api/docs/pricing"
_DEEPSEEK = "https://api-docs.deepseek.com/zh-cn/quick_start/pricing"
_QWEN = "https://help.aliyun.com/zh/model-studio/models"
_GLM = "https://docs.bigmodel.cn/cn/guide/start/pricing"
_MOONSHOT = "https://platform.moonshot.cn/docs/pricing/chat"
_DOUBAO = "https://www.volcengine.com/docs/82379/1544106"
_ERNIE = "https://cloud.baidu.com/doc/qianfan-docs/s/Jm8r1826a"
_HUNYUAN = "https://cloud.tencent.com/document/product/1729/97731"
_MINIMAX = "https://platform.minimaxi.com/docs/guides/pricing"
_UNCHECKED = " (not re-checked on " + DEFAULTS_AS_OF + "; verify)"
_OPENAI_MODEL = "https://developers.openai.com/api/docs/models/"
_SHUT_DOWN = " (shut down by OpenAI; last listed price)"
_FINE_TUNING = _OPENAI + " (fine-tuning training price per 1M tokens" + _UNCHECKED + ")"


def _media(
    model: str, description: str, source: str, provider: str = "openai", **prices: Any
) -> dict[str, Any]:
    """A row of a model billed by images, seconds or characters (token prices 0)."""
    return _row(model, provider, "USD", "0", "0", description=description, source=source,
                **prices)  # fmt: skip


_DALL_E_3 = {
    "1024x1024/standard": "0.04", "1024x1792/standard": "0.08", "1792x1024/standard": "0.08",
    "1024x1024/hd": "0.08", "1024x1792/hd": "0.12", "1792x1024/hd": "0.12",
    "1024x1792": "0.08", "1792x1024": "0.08", "hd": "0.08",
}  # fmt: skip
_GPT_IMAGE_1 = {
    "1024x1024/low": "0.011", "1024x1024/medium": "0.042", "1024x1024/high": "0.167",
    "1024x1536/low": "0.016", "1024x1536/medium": "0.063", "1024x1536/high": "0.25",
    "1536x1024/low": "0.016", "1536x1024/medium": "0.063", "1536x1024/high": "0.25",
    "low": "0.011", "medium": "0.042", "high": "0.167",
    "1024x1536": "0.25", "1536x1024": "0.25",
}  # fmt: skip


def _row(
    model: str,
    provider: str,
    currency: str,
    input: str,
    output: str,
    cached: str | None = None,
    *,
    write_5m: str | None = None,
    write_1h: str | None = None,
    context: int | None = None,
    max_output: int | None = None,
    description: str,
    source: str,
    per: str = "1m",
    per_image: str | None = None,
    image_prices: dict[str, str] | None = None,
    per_second: str | None = None,
    per_character: str | None = None,
    training: str | None = None,
    audio_input: str | None = None,
    audio_output: str | None = None,
) -> dict[str, Any]:
    return {
        "model": model,
        "provider": provider,
        "currency": currency,
        "per": per,
        "input": input,
        "output": output,
        "cached_input": cached,
        "cache_write_5m": write_5m,
        "cache_write_1h": write_1h,
        "per_request": None,
        "per_image": per_image,
        "per_second": per_second,
        "per_character": per_character,
        "training": training,
        "audio_input": audio_input,
        "audio_output": audio_output,
        "image_prices": image_prices,
        "context_window": context,
        "max_output": max_output,
        "description": description,
        "source": source,
    }


def _claude(
    model: str,
    input: str,
    output: str,
    read: str,
    write_5m: str,
    write_1h: str,
    context: int,
    max_output: int,
    description: str,
    note: str = "",
) -> dict[str, Any]:
    return _row(
        model,
        "anthropic",
        "USD",
        input,
        output,
        read,
        write_5m=write_5m,
        write_1h=write_1h,
        context=context,
        max_output=max_output,
        description=description,
        source=_ANTHROPIC + note,
    )


# fmt: off
DEFAULT_PRICES: tuple[dict[str, Any], ...] = (
    # ---- OpenAI (USD per 1M tokens) -------------------------------------------------------
    _row("gpt-5", "openai", "USD", "1.25", "10", "0.125", context=400_000, max_output=128_000,
         description="OpenAI GPT-5: reasoning model for coding and agentic tasks.",
         source=_OPENAI + _UNCHECKED),
    _row("gpt-5-mini", "openai", "USD", "0.25", "2", "0.025", context=400_000,
         max_output=128_000, description="OpenAI GPT-5 mini: faster, cheaper GPT-5.",
         source=_OPENAI + _UNCHECKED),
    _row("gpt-5-nano", "openai", "USD", "0.05", "0.4", "0.005", context=400_000,
         max_output=128_000, description="OpenAI GPT-5 nano: the smallest GPT-5.",
         source=_OPENAI + _UNCHECKED),
    _row("gpt-4.1", "openai", "USD", "2", "8", "0.5", context=1_047_576, max_output=32_768,
         description="OpenAI GPT-4.1: long-context general model.", source=_OPENAI_LEGACY),
    _row("gpt-4.1-mini", "openai", "USD", "0.4", "1.6", "0.1", context=1_047_576,
         max_output=32_768, description="OpenAI GPT-4.1 mini.", source=_OPENAI_LEGACY),
    _row("gpt-4.1-nano", "openai", "USD", "0.1", "0.4", "0.025", context=1_047_576,
         max_output=32_768, description="OpenAI GPT-4.1 nano: classification and routing.",
         source=_OPENAI_LEGACY),
    _row("gpt-4o", "openai", "USD", "2.5", "10", "1.25", context=128_000, max_output=16_384,
         description="OpenAI GPT-4o: multimodal general model.", source=_OPENAI_LEGACY),
    _row("gpt-4o-mini", "openai", "USD", "0.15", "0.6", "0.075", context=128_000,
         max_output=16_384, description="OpenAI GPT-4o mini: fast and inexpensive.",
         source=_OPENAI_LEGACY),
    _row("o3", "openai", "USD", "2", "8", "0.5", context=200_000, max_output=100_000,
         description="OpenAI o3: reasoning model (reasoning tokens billed as output).",
         source=_OPENAI_LEGACY),
    _row("o4-mini", "openai", "USD", "1.1", "4.4", "0.275", context=200_000,
         max_output=100_000, description="OpenAI o4-mini: small reasoning model.",
         source=_OPENAI_LEGACY),
    _row("gpt-3.5-turbo", "openai", "USD", "0.5", "1.5", context=16_385, max_output=4_096,
         description="OpenAI GPT-3.5 Turbo (legacy).", source=_OPENAI_LEGACY),
    _row("text-embedding-3-small", "openai", "USD", "0.02", "0", context=8_191,
         description="OpenAI embeddings, 1536 dimensions.", source=_OPENAI),
    _row("text-embedding-3-large", "openai", "USD", "0.13", "0", context=8_191,
         description="OpenAI embeddings, 3072 dimensions.", source=_OPENAI),
    # ---- OpenAI completions (legacy /v1/completions) and moderations (free) ---------------
    _row("gpt-3.5-turbo-instruct", "openai", "USD", "1.5", "2", context=4_096,
         max_output=4_096, description="OpenAI GPT-3.5 Turbo Instruct (legacy completions).",
         source=_OPENAI_MODEL + "gpt-3.5-turbo-instruct"),
    _row("davinci-002", "openai", "USD", "2", "2", max_output=16_384,
         description="OpenAI davinci-002 base model (legacy completions).",
         source=_OPENAI_MODEL + "davinci-002"),
    _row("babbage-002", "openai", "USD", "0.4", "0.4", max_output=16_384,
         description="OpenAI babbage-002 base model (legacy completions).",
         source=_OPENAI_MODEL + "babbage-002" + _UNCHECKED),
    _row("omni-moderation-latest", "openai", "USD", "0", "0",
         description="OpenAI moderation (text and images): free.",
         source=_OPENAI_MODEL + "omni-moderation-latest"),
    _row("text-moderation-latest", "openai", "USD", "0", "0",
         description="OpenAI text moderation (legacy): free.",
         source=_OPENAI_MODEL + "text-moderation-latest" + _UNCHECKED),
    # ---- OpenAI images (USD per image by size and quality) --------------------------------
    _media("dall-e-2", "OpenAI DALL·E 2 images, per image by size.", _OPENAI_LEGACY,
           per_image="0.02", image_prices={"256x256": "0.016", "512x512": "0.018",
                                           "1024x1024": "0.02"}),
    _media("dall-e-3", "OpenAI DALL·E 3 images, per image by size and quality.",
           _OPENAI_MODEL + "dall-e-3" + _SHUT_DOWN + _UNCHECKED, per_image="0.04",
           image_prices=_DALL_E_3),
    _row("gpt-image-1", "openai", "USD", "10", "40", "2.5",
         description="OpenAI GPT Image 1: billed by its token usage; per image by quality "
         "when no usage is reported.", per_image="0.167", image_prices=_GPT_IMAGE_1,
         source=_OPENAI_MODEL + "gpt-image-1" + _SHUT_DOWN + " (input at the image-input "
         "price; text input is 5, cached 1.25)"),
    # ---- OpenAI audio: transcription per second or by tokens, speech per character ---------
    _media("whisper-1", "OpenAI Whisper transcription and translation, per second.",
           _OPENAI_MODEL + "whisper-1 ($0.006 per minute)", per_second="0.0001"),
    _row("gpt-4o-transcribe", "openai", "USD", "2.5", "10",
         description="OpenAI GPT-4o Transcribe: billed by audio and text tokens.",
         source=_OPENAI_MODEL + "gpt-4o-transcribe"),
    _row("gpt-4o-mini-transcribe", "openai", "USD", "1.25", "5",
         description="OpenAI GPT-4o mini Transcribe: billed by audio and text tokens.",
         source=_OPENAI_MODEL + "gpt-4o-mini-transcribe"),
    _media("tts-1", "OpenAI TTS-1 speech, per input character.",
           _OPENAI_MODEL + "tts-1 ($15 per 1M characters)", per_character="0.000015"),
    _media("tts-1-hd", "OpenAI TTS-1 HD speech, per input character.",
           _OPENAI_MODEL + "tts-1-hd ($30 per 1M characters)", per_character="0.00003"),
    _row("gpt-4o-mini-tts", "openai", "USD", "0.6", "12",
         description="OpenAI GPT-4o mini TTS: text input and audio output tokens; per "
         "character when no usage is reported.", per_character="0.000016",
         source=_OPENAI_MODEL + "gpt-4o-mini-tts (per character: about $16 per 1M, from "
         "OpenAI's estimate of $0.015 per minute" + _UNCHECKED + ")"),
    # ---- OpenAI realtime (text and audio tokens) ------------------------------------------
    _row("gpt-realtime", "openai", "USD", "4", "16", "0.4", audio_input="32",
         audio_output="64", context=32_000, max_output=4_096,
         description="OpenAI GPT Realtime (/v1/realtime): text and audio tokens.",
         source=_OPENAI_MODEL + "gpt-realtime" + _UNCHECKED),
    _row("gpt-realtime-mini", "openai", "USD", "0.6", "2.4", "0.06", audio_input="10",
         audio_output="20", context=32_000, max_output=4_096,
         description="OpenAI GPT Realtime mini (/v1/realtime): text and audio tokens.",
         source=_OPENAI_MODEL + "gpt-realtime-mini" + _UNCHECKED),
    # ---- OpenAI video (USD per second) -----------------------------------------------------
    _media("sora-2", "OpenAI Sora 2 video, per second.", _OPENAI_MODEL + "sora-2" + _SHUT_DOWN,
           per_second="0.1"),
    _media("sora-2-pro", "OpenAI Sora 2 Pro video, per second (720p).",
           _OPENAI_MODEL + "sora-2-pro" + _SHUT_DOWN + " (1024x1792 and 1792x1024 cost $0.50 "
           "per second: set a higher price if you serve them)" + _UNCHECKED,
           per_second="0.3"),
    # ---- OpenAI fine-tuning (base snapshot prices, plus training per 1M tokens) -------------
    _row("gpt-4o-mini-2024-07-18", "openai", "USD", "0.15", "0.6", "0.075", context=128_000,
         max_output=16_384, training="3",
         description="OpenAI GPT-4o mini snapshot: chat, and fine-tuning training.",
         source=_FINE_TUNING),
    _row("gpt-4.1-mini-2025-04-14", "openai", "USD", "0.4", "1.6", "0.1", context=1_047_576,
         max_output=32_768, training="5",
         description="OpenAI GPT-4.1 mini snapshot: chat, and fine-tuning training.",
         source=_FINE_TUNING),
    # ---- rerank (per 1M input tokens) -------------------------------------------------------
    _row("jina-reranker-v2-base-multilingual", "jina", "USD", "0.05", "0", context=1_024,
         description="Jina Reranker v2, multilingual.",
         source="https://jina.ai/reranker (paid token balance, shared by all Jina models"
         + _UNCHECKED + ")"),
    _row("BAAI/bge-reranker-v2-m3", "siliconflow", "USD", "0.01", "0", context=8_192,
         description="BAAI bge-reranker-v2-m3, multilingual reranker.",
         source="https://opencode.ai/data/baai/bge-reranker-v2-m3 (a third-party listing; "
         "SiliconFlow may serve it free" + _UNCHECKED + ")"),
    _row("gte-rerank", "qwen", "CNY", "0.8", "0", context=30_000,
         description="Alibaba gte-rerank text reranker (DashScope).",
         source="https://help.aliyun.com/en/model-studio/gte-rerank-v2 (price of gte-rerank-v2, "
         "the current name)"),
    # ---- Anthropic (USD per 1M tokens; cache writes 5m/1h, cache reads) -------------------
    _claude("claude-opus-5-5", "4", "20", "0.2", "5", "8", 1_000_000, 128_000,
            "Anthropic Claude Opus 5.5: long-running agentic coding and knowledge work."),
    _claude("claude-sonnet-5-5", "2", "10", "0.1", "2.5", "4", 1_000_000, 128_000,
            "Anthropic Claude Sonnet 5.5: speed and intelligence combined.",
            " (cache reads 0.10 since 2026-10-07)"),
    _claude("claude-haiku-5-5", "0.1", "0.5", "0.01", "0.125", "0.2", 1_000_000, 128_000,
            "Anthropic Claude Haiku 5.5: the fastest Claude.",
            " (prompts up to 100K tokens; Anthropic bills longer prompts 5x: set a "
            "higher price if your traffic has them)"),
    _claude("claude-opus-5", "5", "25", "0.5", "6.25", "10", 1_000_000, 128_000,
            "Anthropic Claude Opus 5 (legacy)."),
    _claude("claude-sonnet-5", "2", "10", "0.2", "2.5", "4", 1_000_000, 128_000,
            "Anthropic Claude Sonnet 5 (legacy)."),
    _claude("claude-sonnet-4-6", "3", "15", "0.3", "3.75", "6", 1_000_000, 128_000,
            "Anthropic Claude Sonnet 4.6 (legacy)."),
    _claude("claude-sonnet-4-5", "3", "15", "0.3", "3.75", "6", 200_000, 64_000,
            "Anthropic Claude Sonnet 4.5 (legacy).", _UNCHECKED),
    _claude("claude-opus-4-5", "5", "25", "0.5", "6.25", "10", 200_000, 64_000,
            "Anthropic Claude Opus 4.5 (legacy).", _UNCHECKED),
    _claude("claude-haiku-4-5", "1", "5", "0.1", "1.25", "2", 200_000, 64_000,
            "Anthropic Claude Haiku 4.5 (legacy)."),
    # ---- Google Gemini (USD per 1M tokens; prompts up to 200K tokens) ---------------------
    _row("gemini-2.5-pro", "google", "USD", "1.25", "10", "0.125", context=1_048_576,
         max_output=65_536, description="Google Gemini 2.5 Pro: thinking model.",
         source=_GEMINI + " (prompts up to 200K tokens; longer ones cost 2x; cached price"
         + _UNCHECKED + ")"),
    _row("gemini-2.5-flash", "google", "USD", "0.3", "2.5", "0.03", context=1_048_576,
         max_output=65_536, description="Google Gemini 2.5 Flash: fast thinking model.",
         source=_GEMINI + " (text/image/video input; cached price" + _UNCHECKED + ")"),
    _row("gemini-2.5-flash-lite", "google", "USD", "0.1", "0.4", "0.01", context=1_048_576,
         max_output=65_536, description="Google Gemini 2.5 Flash-Lite: lowest cost Gemini.",
         source=_GEMINI + " (input and cached price" + _UNCHECKED + ")"),
    _row("gemini-2.0-flash", "google", "USD", "0.1", "0.4", "0.025", context=1_048_576,
         max_output=8_192, description="Google Gemini 2.0 Flash.", source=_GEMINI + _UNCHECKED),
    # ---- DeepSeek (CNY per 1M tokens; peak-hour prices, off-peak is half) -----------------
    _row("deepseek-flash", "deepseek", "CNY", "2", "8", "0.04", context=1_000_000,
         max_output=384_000, description="DeepSeek V4.1 Flash: thinking and non-thinking.",
         source=_DEEPSEEK + " (peak-hour price; off-peak is half)"),
    _row("deepseek-v4-pro", "deepseek", "CNY", "9", "27", "0.3", context=1_000_000,
         max_output=384_000, description="DeepSeek V4 Pro: flagship reasoning model.",
         source=_DEEPSEEK + " (peak-hour price; off-peak is half)"),
    _row("deepseek-chat", "deepseek", "CNY", "2", "8", "0.04", context=1_000_000,
         max_output=384_000, description="DeepSeek chat (legacy name, served by V4.1 Flash).",
         source=_DEEPSEEK + " (legacy alias billed at the Flash peak price)"),
    _row("deepseek-reasoner", "deepseek", "CNY", "2", "8", "0.04", context=1_000_000,
         max_output=384_000,
         description="DeepSeek reasoner (legacy name, served by V4.1 Flash, thinking).",
         source=_DEEPSEEK + " (legacy alias billed at the Flash peak price" + _UNCHECKED + ")"),
    # ---- Alibaba Qwen (CNY per 1M tokens) -------------------------------------------------
    _row("qwen3-max", "qwen", "CNY", "2.5", "10", context=262_144, max_output=65_536,
         description="Alibaba Qwen3-Max: flagship Qwen.",
         source=_QWEN + " (0-32K input band; longer prompts cost more" + _UNCHECKED + ")"),
    _row("qwen-max", "qwen", "CNY", "2.4", "9.6", context=32_768, max_output=8_192,
         description="Alibaba Qwen-Max: strongest Qwen 2.5 model.", source=_QWEN),
    _row("qwen-plus", "qwen", "CNY", "0.8", "2", context=131_072, max_output=16_384,
         description="Alibaba Qwen-Plus: balanced quality, speed and cost.",
         source=_QWEN + " (non-thinking output price; first input band)"),
    _row("qwen-turbo", "qwen", "CNY", "0.3", "0.6", context=1_000_000, max_output=16_384,
         description="Alibaba Qwen-Turbo: fast and inexpensive.",
         source=_QWEN + " (non-thinking output price)"),
    # ---- Zhipu GLM (CNY per 1M tokens) ----------------------------------------------------
    _row("glm-5.3", "zhipu", "CNY", "8", "28", "2", context=1_000_000,
         description="Zhipu GLM-5.3: flagship GLM.", source=_GLM),
    _row("glm-5.3-flash", "zhipu", "CNY", "0.8", "2.8", "0.23", context=1_000_000,
         description="Zhipu GLM-5.3-Flash: multimodal, low cost.",
         source=_GLM + " (list price; the 50% offer ended 2026-09-09)"),
    _row("glm-4-plus", "zhipu", "CNY", "5", "5", context=128_000, max_output=4_096,
         description="Zhipu GLM-4-Plus.", source=_GLM),
    _row("glm-4-air", "zhipu", "CNY", "0.5", "0.5", context=128_000, max_output=16_384,
         description="Zhipu GLM-4-Air (250414).", source=_GLM + _UNCHECKED),
    _row("glm-4-flash", "zhipu", "CNY", "0", "0", context=128_000, max_output=16_384,
         description="Zhipu GLM-4-Flash: free model.", source=_GLM + _UNCHECKED),
    # ---- Moonshot Kimi (CNY per 1M tokens) ------------------------------------------------
    _row("moonshot-v1-8k", "moonshot", "CNY", "2", "10", context=8_192,
         description="Moonshot v1, 8K context.", source=_MOONSHOT + _UNCHECKED),
    _row("moonshot-v1-32k", "moonshot", "CNY", "5", "20", context=32_768,
         description="Moonshot v1, 32K context.", source=_MOONSHOT + _UNCHECKED),
    _row("moonshot-v1-128k", "moonshot", "CNY", "10", "30", context=131_072,
         description="Moonshot v1, 128K context.", source=_MOONSHOT + _UNCHECKED),
    # ---- ByteDance Doubao, Baidu ERNIE, Tencent Hunyuan, MiniMax (CNY per 1M tokens) ------
    _row("doubao-1.5-pro-32k", "doubao", "CNY", "0.8", "2", context=32_768, max_output=8_192,
         description="ByteDance Doubao 1.5 Pro, 32K context.", source=_DOUBAO + _UNCHECKED),
    _row("doubao-1.5-lite-32k", "doubao", "CNY", "0.3", "0.6", context=32_768,
         max_output=8_192, description="ByteDance Doubao 1.5 Lite, 32K context.",
         source=_DOUBAO + _UNCHECKED),
    _row("ernie-4.5-turbo-128k", "ernie", "CNY", "0.8", "3.2", context=131_072,
         description="Baidu ERNIE 4.5 Turbo, 128K context.", source=_ERNIE + _UNCHECKED),
    _row("hunyuan-turbos-latest", "hunyuan", "CNY", "0.8", "2",
         description="Tencent Hunyuan TurboS.", source=_HUNYUAN + _UNCHECKED),
    _row("MiniMax-M2", "minimax", "CNY", "2.1", "8.4", "0.21", context=204_800,
         description="MiniMax M2: agentic and coding model.", source=_MINIMAX + _UNCHECKED),
)
# fmt: on

#: price groups (user tiers); a group without a row has multiplier 1
DEFAULT_GROUPS: tuple[dict[str, Any], ...] = (
    {"name": "default", "multiplier": "1", "description": "List price."},
)

DEFAULT_MODELS: frozenset[str] = frozenset(row["model"] for row in DEFAULT_PRICES)
