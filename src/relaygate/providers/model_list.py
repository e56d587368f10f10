"""Reading a provider's model list (model discovery, ``providers/base.py`` ``ModelLister``).

OpenAI's ``GET /models`` and Anthropic's ``GET /v1/models`` answer the same shape,
``{"data": [{"id": …}, …]}``; vendors that copy OpenAI's API (DeepSeek, Qwen compatible
mode, Moonshot, xAI, Groq, OpenRouter, Ollama ``/v1``, llama.cpp) do too.
"""

from __future__ import annotations

from relaygate.errors import UpstreamError
from relaygate.providers.base import parse_json_object

__all__ = ["MAX_MODELS", "ids_from_data"]

#: more ids than this in one answer is not a model list a channel should hold
MAX_MODELS = 5000


def ids_from_data(raw: bytes) -> list[str]:
    """The ``id`` of every item of ``data``, in the upstream's order, without duplicates."""
    obj = parse_json_object(raw)
    data = obj.get("data")
    if not isinstance(data, list):
        raise UpstreamError("The upstream provider's model list has no `data` array.")
    seen: dict[str, None] = {}
    for item in data:
        model_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(model_id, str) and model_id.strip() and len(model_id) <= 128:
            seen.setdefault(model_id.strip(), None)
        if len(seen) >= MAX_MODELS:
            break
    return list(seen)
