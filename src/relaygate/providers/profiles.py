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
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
        Profile("deepseek", "DeepSeek", embeddings=False),
        Profile(
            "moonshot",
            "Moonshot (Kimi)",
            param_renames={"max_completion_tokens": "max_tokens"},
            embeddings=False,
        ),
        Profile("qwen", "Alibaba Qwen (DashScope compatible mode)"),
        Profile("glm", "Zhipu GLM (v4)"),
        Profile("glm_jwt", "Zhipu GLM (v4, signed JWT credential)", auth="zhipu_jwt"),
        Profile("doubao", "ByteDance Doubao (Ark)"),
        Profile("hunyuan", "Tencent Hunyuan (OpenAI-compatible)"),
        Profile("qianfan", "Baidu Qianfan v2"),
        Profile("ollama", "Ollama (/v1)", reasoning_field="reasoning"),
        Profile("openrouter", "OpenRouter", reasoning_field="reasoning"),
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
