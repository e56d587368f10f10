"""The channel-type catalogue: every kind of upstream an operator can add, as data.

One entry per choice an operator makes in "add a channel" (the console's form, later):
which adaptor and profile it uses, what the key is made of, which ``config`` keys it
reads, the default base URL, the models it usually serves and whether its models can be
fetched (``POST /admin/api/channels/{id}/discover-models``). ``GET
/admin/api/channel-types`` serves it with the default prices of those models
(``billing/default_prices.py``). ``docs/providers.md`` describes each provider in prose.

``tests/unit/test_channel_catalogue.py`` checks that every entry names an adaptor and a
profile the channel validation accepts, so the catalogue cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relaygate.providers.profiles import PROFILES

__all__ = ["CHANNEL_TYPES", "ChannelType", "ConfigField", "channel_type"]


@dataclass(frozen=True, slots=True)
class ConfigField:
    name: str  # key in the channel's ``config``
    description: str
    required: bool = False
    example: Any = None

    def to_public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "required": self.required,
            "example": self.example,
        }


@dataclass(frozen=True, slots=True)
class ChannelType:
    id: str  # what the console offers; unique
    label: str
    label_zh: str
    provider: str  # adaptor name (channel.provider)
    profile: str  # channel.profile
    base_url: str  # default; "" = the operator must give one
    #: the parts of one channel key, joined by ``|`` in the stored key, in this order
    key_parts: tuple[str, ...]
    models: tuple[str, ...] = ()
    config: tuple[ConfigField, ...] = ()
    #: a native provider's embeddings API; for ``openai_compat`` the profile says
    #: (:attr:`has_embeddings`)
    embeddings: bool = False
    discovery: bool = False  # the provider lists its models
    docs: str = ""  # the vendor's API documentation
    notes: str = ""

    @property
    def has_embeddings(self) -> bool:
        if self.provider == "openai_compat":
            return PROFILES[self.profile].embeddings
        return self.embeddings

    @property
    def key_format(self) -> str:
        return "|".join(self.key_parts)

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "label_zh": self.label_zh,
            "provider": self.provider,
            "profile": self.profile,
            "base_url": self.base_url,
            "key_parts": list(self.key_parts),
            "key_format": self.key_format,
            "config": [c.to_public() for c in self.config],
            "models": list(self.models),
            "embeddings": self.has_embeddings,
            "discovery": self.discovery,
            "docs": self.docs,
            "notes": self.notes,
        }


_PROXY = ConfigField(
    "proxy", "HTTP(S) proxy for this channel's upstream calls.", example="http://10.0.0.2:3128"
)
_HEADERS = ConfigField(
    "headers", "Extra HTTP headers sent with every call.", example={"X-Team": "a"}
)
_KEY = ("API key",)
_VERTEX = (
    ConfigField(
        "project", "Google Cloud project id (default: the key file's project_id).", example="p-1"
    ),
    ConfigField("location", "Vertex AI region (default us-central1).", example="us-east5"),
    ConfigField("api_version", "v1 (default) or v1beta1.", example="v1"),
)
_GEMINI = (
    ConfigField("api_version", "API version of the path (default v1beta on the Gemini API)."),
    ConfigField(
        "reasoning_budgets",
        "reasoning_effort → thinkingBudget overrides.",
        example={"high": 32768},
    ),
    ConfigField("include_thoughts", "Ask for thought summaries (reasoning_content).", example=True),
    ConfigField("safety_settings", "Gemini safetySettings sent with every request."),
)

# fmt: off
CHANNEL_TYPES: tuple[ChannelType, ...] = (
    ChannelType(
        "openai", "OpenAI", "OpenAI", "openai_compat", "openai", "https://api.openai.com/v1", _KEY,
        ("gpt-5", "gpt-5-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "o4-mini",
         "text-embedding-3-small", "text-embedding-3-large"),
        (ConfigField("headers", "Extra headers, e.g. OpenAI-Organization / OpenAI-Project."),),
        discovery=True, docs="https://platform.openai.com/docs/api-reference",
    ),
    ChannelType(
        "azure", "Azure OpenAI (deployments)", "Azure OpenAI（部署）", "openai_compat", "azure",
        "", _KEY, ("gpt-4o", "gpt-4o-mini"),
        (ConfigField("deployments", "Model name → deployment name.", example={"gpt-4o": "prod-4o"}),
         ConfigField("api_version", "api-version query parameter.", example="2024-10-21")),
        docs="https://learn.microsoft.com/azure/ai-services/openai/reference",
        notes="Base URL: https://{resource}.openai.azure.com.",
    ),
    ChannelType(
        "azure_v1", "Azure OpenAI (v1 API)", "Azure OpenAI（v1 接口）", "openai_compat", "azure_v1",
        "", _KEY, ("gpt-4o", "gpt-4o-mini", "o4-mini"),
        notes="Base URL: https://{resource}.openai.azure.com; the model goes in the body.",
    ),
    ChannelType(
        "anthropic", "Anthropic Claude", "Anthropic Claude", "anthropic", "anthropic",
        "https://api.anthropic.com", _KEY,
        ("claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5"),
        (ConfigField("anthropic_version", "anthropic-version header.", example="2023-06-01"),
         ConfigField("anthropic_beta", "anthropic-beta header values."),
         ConfigField("default_max_tokens", "max_tokens when the client gives none.", example=4096)),
        discovery=True, docs="https://docs.claude.com/en/api/messages",
    ),
    ChannelType(
        "vertex_anthropic", "Claude on Google Vertex AI", "Google Vertex AI 上的 Claude",
        "anthropic", "vertex", "https://us-east5-aiplatform.googleapis.com",
        ("service-account JSON or access token",),
        ("claude-sonnet-4-5", "claude-3-7-sonnet@20250219"),
        (*_VERTEX, ConfigField("anthropic_version", "Default vertex-2023-10-16."),
         ConfigField("anthropic_beta", "anthropic-beta values, sent in the body.")),
        docs="https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude",
        notes="Base URL: https://{location}-aiplatform.googleapis.com.",
    ),
    ChannelType(
        "gemini", "Google Gemini", "Google Gemini", "gemini", "gemini",
        "https://generativelanguage.googleapis.com", _KEY,
        ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-3-pro-preview",
         "gemini-2.0-flash", "text-embedding-004"),
        _GEMINI, embeddings=True, discovery=True, docs="https://ai.google.dev/api",
    ),
    ChannelType(
        "vertex", "Gemini on Google Vertex AI", "Google Vertex AI 上的 Gemini", "gemini", "vertex",
        "https://us-central1-aiplatform.googleapis.com", ("service-account JSON or access token",),
        ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"),
        (*_VERTEX, *_GEMINI[1:]), embeddings=True,
        docs="https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest",
        notes="Base URL: https://{location}-aiplatform.googleapis.com.",
    ),
    ChannelType(
        "deepseek", "DeepSeek", "深度求索 DeepSeek", "openai_compat", "deepseek",
        "https://api.deepseek.com", _KEY, ("deepseek-chat", "deepseek-reasoner"),
        discovery=True, docs="https://api-docs.deepseek.com",
    ),
    ChannelType(
        "qwen", "Alibaba Qwen (DashScope compatible mode)", "阿里通义千问（百炼兼容模式）",
        "openai_compat", "qwen", "https://dashscope.aliyuncs.com/compatible-mode/v1", _KEY,
        ("qwen3-max", "qwen-max", "qwen-plus", "qwen-turbo", "qwen3-32b", "text-embedding-v3"),
        discovery=True,
        docs="https://help.aliyun.com/zh/model-studio/compatibility-of-openai-with-dashscope",
    ),
    ChannelType(
        "glm", "Zhipu GLM", "智谱 GLM", "openai_compat", "glm",
        "https://open.bigmodel.cn/api/paas/v4", ("API key (id.secret)",),
        ("glm-5.3", "glm-5.3-flash", "glm-4-plus", "glm-4-air", "glm-4-flash", "embedding-3"),
        docs="https://docs.bigmodel.cn/api-reference",
    ),
    ChannelType(
        "glm_jwt", "Zhipu GLM (signed JWT)", "智谱 GLM（JWT 签名）", "openai_compat", "glm_jwt",
        "https://open.bigmodel.cn/api/paas/v4", ("API key (id.secret)",),
        ("glm-4-plus", "glm-4-air", "glm-4-flash"),
        (ConfigField("token_ttl", "JWT lifetime in seconds.", example=3600),),
        notes="The key is signed into a short-lived JWT instead of being sent.",
    ),
    ChannelType(
        "qianfan", "Baidu Qianfan v2", "百度千帆 v2", "openai_compat", "qianfan",
        "https://qianfan.baidubce.com/v2", ("API key (bce-v3/…)",),
        ("ernie-4.5-turbo-128k", "ernie-4.0-8k", "ernie-3.5-8k", "ernie-speed-128k",
         "deepseek-v3", "deepseek-r1", "embedding-v1"),
        (ConfigField("appid", "Qianfan application id (sent as the appid header)."),),
        docs="https://cloud.baidu.com/doc/qianfan-api/s/3m7of64lb",
    ),
    ChannelType(
        "baidu", "Baidu ERNIE v1 (wenxinworkshop)", "百度文心一言 v1（千帆旧版）", "baidu", "baidu",
        "https://aip.baidubce.com", ("API key", "Secret key"),
        ("ERNIE-4.0-8K", "ERNIE-3.5-8K", "ERNIE-Speed-128K", "ERNIE-Lite-8K", "ERNIE-Tiny-8K",
         "Embedding-V1", "bge-large-zh", "tao-8k"),
        (ConfigField("endpoints", "Model → wenxinworkshop endpoint, for models not built in.",
                     example={"ERNIE-4.0-8K": "completions_pro"}),
         ConfigField("auth_url", "OAuth token endpoint base.", example="https://aip.baidubce.com")),
        embeddings=True,
        notes="The key pair is exchanged for an access token, cached until expiry.",
    ),
    ChannelType(
        "spark", "iFlytek Spark (HTTP)", "讯飞星火（HTTP）", "openai_compat", "spark",
        "https://spark-api-open.xf-yun.com/v1", ("APIPassword",),
        ("lite", "generalv3", "pro-128k", "generalv3.5", "max-32k", "4.0Ultra"),
        docs="https://www.xfyun.cn/doc/spark/HTTP%E8%B0%83%E7%94%A8%E6%96%87%E6%A1%A3.html",
    ),
    ChannelType(
        "spark_ws", "iFlytek Spark (WebSocket)", "讯飞星火（WebSocket）", "spark_ws", "spark_ws",
        "https://spark-api.xf-yun.com", ("APPID", "APISecret", "APIKey"),
        ("lite", "generalv3", "pro-128k", "generalv3.5", "max-32k", "4.0Ultra"),
        (ConfigField("domains", "Model → [path, domain], for models not built in.",
                     example={"4.0Ultra": ["/v4.0/chat", "4.0Ultra"]}),
         ConfigField("path", "Path for a model in neither table (default /v3.5/chat)."),
         ConfigField("system_role", "Keep role system (else folded into the first turn).")),
        docs="https://www.xfyun.cn/doc/spark/Web.html",
        notes="The base URL's https:// is used as wss:// (http:// as ws://).",
    ),
    ChannelType(
        "moonshot", "Moonshot Kimi", "月之暗面 Kimi", "openai_compat", "moonshot",
        "https://api.moonshot.cn/v1", _KEY,
        ("kimi-k2-0905-preview", "kimi-k2-thinking", "moonshot-v1-8k", "moonshot-v1-32k",
         "moonshot-v1-128k"),
        (ConfigField("fixed_temperature", "Model-name prefix → the only temperature it takes.",
                     example={"kimi-k2.6": 1}),),
        discovery=True, docs="https://platform.moonshot.cn/docs/api/chat",
    ),
    ChannelType(
        "hunyuan", "Tencent Hunyuan (OpenAI-compatible)", "腾讯混元（OpenAI 兼容）",
        "openai_compat", "hunyuan", "https://api.hunyuan.cloud.tencent.com/v1", _KEY,
        ("hunyuan-turbos-latest", "hunyuan-t1-latest", "hunyuan-lite", "hunyuan-embedding"),
        docs="https://cloud.tencent.com/document/product/1729/111007",
    ),
    ChannelType(
        "tencent", "Tencent Hunyuan (TencentCloud API 3.0)", "腾讯混元（云 API 3.0）",
        "tencent", "tencent", "https://hunyuan.tencentcloudapi.com", ("SecretId", "SecretKey"),
        ("hunyuan-turbos-latest", "hunyuan-lite", "hunyuan-embedding"),
        (ConfigField("region", "X-TC-Region.", example="ap-guangzhou"),
         ConfigField("enable_enhancement", "EnableEnhancement (default false).", example=False)),
        embeddings=True, docs="https://cloud.tencent.com/document/product/1729/105701",
        notes="Requests are signed with TC3-HMAC-SHA256; an AppId may lead the key "
              "(AppId|SecretId|SecretKey).",
    ),
    ChannelType(
        "doubao", "ByteDance Doubao (Volcengine Ark)", "字节豆包（火山方舟）", "openai_compat",
        "doubao", "https://ark.cn-beijing.volces.com/api/v3", _KEY,
        ("doubao-seed-1-6-250615", "doubao-1.5-pro-32k", "doubao-1.5-lite-32k",
         "doubao-embedding-text-240715"),
        docs="https://www.volcengine.com/docs/82379/1298454",
        notes="A model may be an inference endpoint id (ep-…); map it with model_mapping.",
    ),
    ChannelType(
        "minimax", "MiniMax", "MiniMax 稀宇", "openai_compat", "minimax",
        "https://api.minimaxi.com/v1", _KEY, ("MiniMax-M2", "MiniMax-Text-01"),
        docs="https://platform.minimaxi.com/docs/api-reference/text-openai-api",
    ),
    ChannelType(
        "xai", "xAI Grok", "xAI Grok", "openai_compat", "xai", "https://api.x.ai/v1", _KEY,
        ("grok-4", "grok-4-fast", "grok-3-mini", "grok-code-fast-1"), discovery=True, docs="https://docs.x.ai/api",
    ),
    ChannelType(
        "groq", "Groq", "Groq", "openai_compat", "groq", "https://api.groq.com/openai/v1", _KEY,
        ("llama-3.3-70b-versatile", "moonshotai/kimi-k2-instruct-0905", "openai/gpt-oss-20b"),
        discovery=True,
        docs="https://console.groq.com/docs/api-reference",
    ),
    ChannelType(
        "openrouter", "OpenRouter", "OpenRouter", "openai_compat", "openrouter",
        "https://openrouter.ai/api/v1", _KEY,
        ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5", "google/gemini-2.5-flash"),
        discovery=True, docs="https://openrouter.ai/docs/api-reference/overview",
    ),
    ChannelType(
        "ollama", "Ollama", "Ollama", "openai_compat", "ollama", "http://127.0.0.1:11434/v1",
        ("API key (any; Ollama ignores it)",), ("llama3.2", "qwen3:8b", "nomic-embed-text"),
        discovery=True, docs="https://github.com/ollama/ollama/blob/main/docs/openai.md",
    ),
    ChannelType(
        "llamacpp", "llama.cpp server", "llama.cpp 服务", "openai_compat", "llamacpp",
        "http://127.0.0.1:8080/v1", ("API key (if the server sets --api-key)",), (),
        discovery=True,
        docs="https://github.com/ggml-org/llama.cpp/tree/master/tools/server",
    ),
    ChannelType(
        "generic", "Any OpenAI-compatible server", "任意 OpenAI 兼容服务", "openai_compat",
        "generic", "", _KEY, (), (_PROXY, _HEADERS), discovery=True,
    ),
)
# fmt: on

_BY_ID = {t.id: t for t in CHANNEL_TYPES}


def channel_type(type_id: str) -> ChannelType | None:
    return _BY_ID.get(type_id)
