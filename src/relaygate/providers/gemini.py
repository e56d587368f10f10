"""Google Gemini native adaptor: the Generative Language API and Vertex AI. No I/O.

Profiles (the channel's ``profile``):

* ``gemini`` — the Generative Language API with an API key (``x-goog-api-key``):
  ``{base}/v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``,
  ``:batchEmbedContents``; ``GET {base}/v1beta/models`` lists the models.
* ``vertex`` — Vertex AI, ``Authorization: Bearer``:
  ``{base}/{api_version}/projects/{project}/locations/{location}/publishers/google/
  models/{model}:generateContent`` (embeddings: ``:predict``). The key is a
  service-account key file (then this adaptor is a ``TokenSource``: the relay
  exchanges a signed JWT for an access token and caches it, ``google_auth.py``) or an
  access token used as is.

Channel ``config`` keys: ``api_version`` (``v1beta`` for ``gemini``, ``v1`` for
``vertex``), ``project`` (Vertex; default: the key file's ``project_id``),
``location`` (Vertex, default ``us-central1``), ``reasoning_budgets``
(``reasoning_effort`` → ``thinkingBudget`` overrides), ``include_thoughts`` (ask for
thought summaries even without ``reasoning_effort``), ``safety_settings`` (sent as
``safetySettings``). Request conversion: ``gemini_request.py``; answers, streams
and errors: ``gemini_stream.py``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import orjson

from relaygate.errors import InvalidRequest, RelayError, UpstreamError
from relaygate.providers.base import (
    Target,
    UpstreamRequest,
    Usage,
    parse_json_object,
)
from relaygate.providers.gemini_request import build_generate_request
from relaygate.providers.gemini_stream import (
    GeminiStreamTranslator,
    finish_reason,
    google_error,
    message_parts,
    usage_from_gemini,
)
from relaygate.providers.google_auth import (
    google_token_request,
    google_token_response,
    service_account,
)
from relaygate.providers.legacy_functions import to_function_call_message

__all__ = ["DEFAULT_GEMINI_BASE", "GeminiAdaptor", "google_error_from_body", "vertex_url"]

DEFAULT_GEMINI_BASE = "https://generativelanguage.googleapis.com"
DEFAULT_LOCATION = "us-central1"


def _config_str(target: Target, key: str, default: str) -> str:
    value = target.config.get(key)
    return value if isinstance(value, str) and value else default


def _model_name(model: str) -> str:
    return model[len("models/") :] if model.startswith("models/") else model


def vertex_url(target: Target, publisher: str, method: str) -> str:
    """``{base}/{version}/projects/{p}/locations/{l}/publishers/{publisher}/models/{m}:{method}``."""
    project = target.config.get("project")
    if not isinstance(project, str) or not project:
        sa = service_account(target.api_key) if target.api_key else None
        project = sa.project_id if sa is not None else ""
    if not project:
        raise UpstreamError(
            "This Vertex AI channel names no project (config.project).", code="upstream_error"
        )
    location = _config_str(target, "location", DEFAULT_LOCATION)
    version = _config_str(target, "api_version", "v1")
    return (
        f"{target.base_url.rstrip('/')}/{version}/projects/{quote(project, safe='')}"
        f"/locations/{quote(location, safe='')}/publishers/{publisher}/models/"
        f"{quote(_model_name(target.upstream_model), safe='@.-_')}:{method}"
    )


def _gemini_url(target: Target, method: str) -> str:
    base = target.base_url.rstrip("/")
    version = _config_str(target, "api_version", "v1beta")
    versioned = base.endswith(("/v1beta", "/v1", "/v1alpha"))
    version_path = base if versioned else f"{base}/{version}"
    model = quote(_model_name(target.upstream_model), safe="@.-_")
    return f"{version_path}/models/{model}:{method}"


def google_error_from_body(status: int, raw: bytes, secrets: tuple[str, ...]) -> RelayError:
    obj: Any = None
    stripped = raw.strip()
    if stripped[:1] in (b"{", b"["):
        try:
            obj = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            obj = None
    if obj is None:
        text = stripped[:300].decode("utf-8", "replace")
        obj = {"error": {"message": "" if not text or text.startswith("<") else text}}
    return google_error(status, obj, secrets)


class GeminiAdaptor:
    name = "gemini"
    profiles = ("gemini", "vertex")

    # ------------------------------------------------------------ plumbing

    def _url(self, target: Target, method: str) -> str:
        if target.profile == "vertex":
            return vertex_url(target, "google", method)
        return _gemini_url(target, method)

    def _headers(self, target: Target) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if target.profile == "vertex" or target.token:
            credential = target.token or target.api_key
            if credential:
                headers["authorization"] = "Bearer " + credential
        elif target.api_key:
            headers["x-goog-api-key"] = target.api_key
        return headers

    def _secrets(self, target: Target) -> tuple[str, ...]:
        return (target.api_key, target.token or "")

    # ------------------------------------------------------------ tokens

    def token_request(self, target: Target) -> UpstreamRequest | None:
        if target.profile != "vertex" or not target.api_key:
            return None
        return google_token_request(target.api_key)

    def token_response(self, target: Target, status: int, raw: bytes) -> tuple[str, float]:
        return google_token_response(status, raw, self._secrets(target))

    # ------------------------------------------------------------ chat

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        payload, legacy = build_generate_request(target, body)
        if stream:
            url = self._url(target, "streamGenerateContent") + "?alt=sse"
        else:
            url = self._url(target, "generateContent")
        headers = self._headers(target)
        if stream:
            headers["accept"] = "text/event-stream"
        return UpstreamRequest(
            url=url, headers=headers, body=orjson.dumps(payload), legacy_functions=legacy
        )

    def chat_response(
        self, target: Target, raw: bytes, *, legacy_functions: bool = False
    ) -> tuple[dict[str, Any], Usage | None]:
        obj = parse_json_object(raw)
        if isinstance(obj.get("error"), dict):
            raise google_error(None, obj, self._secrets(target))
        raw_usage = obj.get("usageMetadata")
        usage = usage_from_gemini(raw_usage) if isinstance(raw_usage, dict) else None
        choices: list[dict[str, Any]] = []
        candidates = obj.get("candidates")
        for k, cand in enumerate(candidates if isinstance(candidates, list) else ()):
            if not isinstance(cand, dict):
                continue
            content = cand.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            text, reasoning, calls, any_text = message_parts(parts)
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text if any_text or not calls else None,
            }
            if calls:
                message["tool_calls"] = calls
            if reasoning:
                message["reasoning_content"] = reasoning
            index = cand.get("index")
            choice = {
                "index": index if isinstance(index, int) else k,
                "message": message,
                "finish_reason": finish_reason(cand.get("finishReason"), bool(calls)),
            }
            if legacy_functions:
                to_function_call_message(choice)
            choices.append(choice)
        if not choices:
            feedback = obj.get("promptFeedback")
            if not (isinstance(feedback, dict) and feedback.get("blockReason")):
                raise UpstreamError("The upstream provider returned no candidates.")
            # a blocked prompt: a filtered completion, not an error (docs/providers.md)
            choices.append(
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ""},
                    "finish_reason": "content_filter",
                }
            )
        rid = obj.get("responseId")
        version = obj.get("modelVersion")
        result: dict[str, Any] = {
            "id": "chatcmpl-" + (rid if isinstance(rid, str) and rid else "gemini"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": version if isinstance(version, str) and version else target.upstream_model,
            "choices": choices,
        }
        if usage is not None:
            result["usage"] = usage.to_openai()
        return result, usage

    def chat_stream(
        self, target: Target, include_usage: bool, *, legacy_functions: bool = False
    ) -> GeminiStreamTranslator:
        return GeminiStreamTranslator(target, include_usage, legacy_functions)

    # ------------------------------------------------------------ embeddings

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest:
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidRequest(
                "Gemini embeddings take `input` as a string or an array of strings "
                "(token arrays are not supported).",
                param="input",
            )
        dims = body.get("dimensions")
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
            raise InvalidRequest("`dimensions` must be a positive integer.", param="dimensions")
        payload: dict[str, Any]
        if target.profile == "vertex":
            payload = {"instances": [{"content": t} for t in texts]}
            if dims is not None:
                payload["parameters"] = {"outputDimensionality": dims}
            url = vertex_url(target, "google", "predict")
        else:
            model = "models/" + _model_name(target.upstream_model)
            requests: list[dict[str, Any]] = []
            for t in texts:
                item: dict[str, Any] = {"model": model, "content": {"parts": [{"text": t}]}}
                if dims is not None:
                    item["outputDimensionality"] = dims
                requests.append(item)
            payload = {"requests": requests}
            url = _gemini_url(target, "batchEmbedContents")
        return UpstreamRequest(url=url, headers=self._headers(target), body=orjson.dumps(payload))

    def embeddings_response(
        self, target: Target, raw: bytes
    ) -> tuple[dict[str, Any], Usage | None]:
        obj = parse_json_object(raw)
        if isinstance(obj.get("error"), dict):
            raise google_error(None, obj, self._secrets(target))
        vectors: list[Any] = []
        counted = 0
        if target.profile == "vertex":
            for pred in obj.get("predictions") or ():
                emb = pred.get("embeddings") if isinstance(pred, dict) else None
                if not isinstance(emb, dict):
                    raise UpstreamError("The upstream provider returned malformed embeddings.")
                vectors.append(emb.get("values"))
                stats = emb.get("statistics")
                if isinstance(stats, dict) and isinstance(stats.get("token_count"), int | float):
                    counted += int(stats["token_count"])
        else:
            for emb in obj.get("embeddings") or ():
                vectors.append(emb.get("values") if isinstance(emb, dict) else None)
        if not vectors or not all(isinstance(v, list) for v in vectors):
            raise UpstreamError("The upstream provider returned malformed embeddings.")
        result: dict[str, Any] = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
            "model": target.upstream_model,
        }
        if not counted:
            return result, None  # batchEmbedContents reports none: the relay counts the input
        result["usage"] = {"prompt_tokens": counted, "total_tokens": counted}
        return result, Usage(prompt_tokens=counted, total_tokens=counted)

    # ------------------------------------------------------------ models, errors

    def models_request(self, target: Target) -> UpstreamRequest | None:
        if target.profile == "vertex":
            return None  # Vertex lists publisher models elsewhere; not offered
        base = target.base_url.rstrip("/")
        if not base.endswith(("/v1beta", "/v1", "/v1alpha")):
            base += "/" + _config_str(target, "api_version", "v1beta")
        headers = self._headers(target)
        del headers["content-type"]
        return UpstreamRequest(
            url=base + "/models?pageSize=1000", headers=headers, body=b"", method="GET"
        )

    def models_response(self, target: Target, status: int, raw: bytes) -> list[str]:
        if status >= 400:
            raise self.error(target, status, raw)
        obj = parse_json_object(raw)
        out: list[str] = []
        for model in obj.get("models") or ():
            name = model.get("name") if isinstance(model, dict) else None
            if isinstance(name, str) and name:
                out.append(_model_name(name))
        return out

    def error(self, target: Target, status: int, raw: bytes) -> RelayError:
        return google_error_from_body(status, raw, self._secrets(target))
