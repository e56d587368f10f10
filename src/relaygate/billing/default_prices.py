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
* thinking/non-thinking output prices (Qwen Plus/Turbo): the non-thinking price.

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
        "per_image": None,
        "per_second": None,
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
