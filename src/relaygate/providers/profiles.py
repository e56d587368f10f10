"""Profiles of the OpenAI-compatible adaptor: vendors are data, not classes.

Add a vendor by adding a :class:`Profile` to ``PROFILES`` (see
``docs/adding-a-provider.md``). Fields:

* ``auth``: ``bearer`` (``Authorization: Bearer``), ``api-key`` (Azure) or
  ``zhipu_jwt`` (Bearer with a locally signed JWT, see ``zhipu_jwt.py``; the key
  itself is sent until the relay resolves tokens).
* ``url_style``: ``plain`` (``{base}{path}``), ``azure`` (deployment URL with
  ``api-version``) or ``azure_v1`` (``{base}/openai/v1{path}``).
* ``stream_usage``: whether upstream understands ``stream_options.include_usage``.
* ``param_renames`` / ``drop_params``: request rewrites.
* ``reasoning_field``: a vendor-specific name for reasoning text, renamed to
  ``reasoning_content`` on the way out. ``reasoning`` and ``reasoning_details``
  are handled for every profile; ``None`` = nothing else.
* ``native_functions``: the upstream still accepts the legacy ``functions`` /
  ``function_call`` fields; otherwise they are translated to ``tools``.
* ``embeddings``: whether the vendor serves ``/embeddings``.
* ``temperature_range``: ``(low, high)`` the vendor accepts; a client value outside
  it is clamped. ``fixed_temperature``: ``(model-name prefix, value)`` pairs for
  models that take only that temperature (Kimi's reasoning models: 1); a channel's
  ``config.fixed_temperature`` (``{prefix: value}``) adds to or overrides them.
* ``n_choices``: ``pass`` (the vendor understands ``n``) or ``reject`` (it answers one
  choice only: ``n > 1`` is refused with a 400 naming ``n``, ``n: 1`` is removed).
* ``tool_choice_required``: ``pass``, ``nudge`` (the vendor lacks ``"required"``: it
  becomes ``"auto"`` plus a closing user message asking for a tool, as LiteLLM does
  for Moonshot) or ``reject`` (400 naming ``tool_choice``).
* ``request_defaults``: fields set on every chat request unless the client sent them
  (MiniMax ``reasoning_split: true``).
* ``fill_missing``: the vendor omits OpenAI fields strict clients need (iFlytek Spark:
  ``id``/``object``/``model``/``finish_reason``, ``tool_calls`` as one object); the
  adaptor fills them in (``vendor_quirks.py``).
* ``appid_header``: header that carries the channel's ``config.appid`` (Qianfan: ``appid``).
* ``errors_in_body``: the vendor reports failures inside HTTP 200 bodies and stream chunks
  (MiniMax ``base_resp``, Spark ``code``); stream chunks are searched for them. (Whole
  non-stream bodies are checked for every profile: that costs two dict lookups.)
* ``closing_frame``: the vendor ends a stream with a whole ``chat.completion`` frame and
  sends ``role: ""`` deltas (MiniMax): the frame is dropped (its usage kept), the empty
  roles removed. Off for other profiles, because each check is a search of every chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROFILES", "Profile", "get_profile"]


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    label: str
    auth: str = "bearer"
    url_style: str = "plain"
    chat_path: str = "/chat/completions"
    embeddings_path: str = "/embeddings"
    stream_usage: bool = True
    param_renames: dict[str, str] = field(default_factory=dict)
    drop_params: tuple[str, ...] = ()
    reasoning_field: str | None = None
    native_functions: bool = False
    embeddings: bool = True
    default_api_version: str = ""
    temperature_range: tuple[float, float] | None = None
    fixed_temperature: tuple[tuple[str, float], ...] = ()
    n_choices: str = "pass"
    tool_choice_required: str = "pass"
    request_defaults: dict[str, Any] = field(default_factory=dict)
    fill_missing: bool = False
    appid_header: str | None = None
    errors_in_body: bool = False
    closing_frame: bool = False


#: vendors without ``max_completion_tokens``: OpenAI's newer name becomes ``max_tokens``
_MAX_TOKENS = {"max_completion_tokens": "max_tokens"}


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("openai", "OpenAI", native_functions=True),
        Profile(
            "azure",
            "Azure OpenAI",
            auth="api-key",
            url_style="azure",
            default_api_version="2024-10-21",
            native_functions=True,
        ),
        Profile(
            "azure_v1",
            "Azure OpenAI (v1 API)",
            auth="api-key",
            url_style="azure_v1",
            native_functions=True,
        ),
        Profile("deepseek", "DeepSeek", embeddings=False, param_renames=_MAX_TOKENS),
        Profile(
            "moonshot",
            "Moonshot (Kimi)",
            param_renames=_MAX_TOKENS,
            embeddings=False,
            temperature_range=(0.0, 1.0),
            fixed_temperature=(("kimi-k2.5", 1.0), ("kimi-k2.6", 1.0), ("kimi-k2-thinking", 1.0)),
            tool_choice_required="nudge",
        ),
        Profile("qwen", "Alibaba Qwen (DashScope compatible mode)", param_renames=_MAX_TOKENS),
        Profile(
            "glm",
            "Zhipu GLM (v4)",
            param_renames=_MAX_TOKENS,
            temperature_range=(0.0, 1.0),
            n_choices="reject",
            tool_choice_required="nudge",
        ),
        Profile(
            "glm_jwt",
            "Zhipu GLM (v4, signed JWT credential)",
            auth="zhipu_jwt",
            param_renames=_MAX_TOKENS,
            temperature_range=(0.0, 1.0),
            n_choices="reject",
            tool_choice_required="nudge",
        ),
        Profile("doubao", "ByteDance Doubao (Ark)"),
        Profile("hunyuan", "Tencent Hunyuan (OpenAI-compatible)", param_renames=_MAX_TOKENS),
        Profile("qianfan", "Baidu Qianfan v2", appid_header="appid"),
        Profile(
            "spark",
            "iFlytek Spark (HTTP, OpenAI-compatible)",
            param_renames=_MAX_TOKENS,
            embeddings=False,
            n_choices="reject",
            fill_missing=True,
            errors_in_body=True,
        ),
        Profile(
            "minimax",
            "MiniMax (OpenAI-compatible)",
            param_renames={"max_tokens": "max_completion_tokens"},
            embeddings=False,
            temperature_range=(0.01, 1.0),
            n_choices="reject",
            request_defaults={"reasoning_split": True},
            errors_in_body=True,
            closing_frame=True,
        ),
        Profile("xai", "xAI (Grok)", embeddings=False),
        Profile("groq", "Groq", embeddings=False, n_choices="reject"),
        Profile("ollama", "Ollama (/v1)", reasoning_field="reasoning", param_renames=_MAX_TOKENS),
        Profile("llamacpp", "llama.cpp server (/v1)"),
        Profile("openrouter", "OpenRouter", reasoning_field="reasoning", param_renames=_MAX_TOKENS),
        Profile("generic", "Any OpenAI-compatible server"),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}"
        ) from None
