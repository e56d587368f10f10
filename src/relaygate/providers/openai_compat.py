"""The profile-driven OpenAI-compatible adaptor (OpenAI, Azure, DeepSeek, and the
many vendors that expose OpenAI-style endpoints).

Requests and responses pass through almost untouched: unknown fields such as
``reasoning_content`` survive in both directions. Stream chunks are forwarded as
the upstream's own bytes; only chunks that carry usage, an error or a vendor
quirk are parsed.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from relaygate.errors import NotImplementedByProvider, RelayError, UpstreamError
from relaygate.providers.base import (
    Target,
    UpstreamRequest,
    Usage,
    error_from_status,
    parse_json_object,
    usage_chunk,
)
from relaygate.providers.profiles import Profile, get_profile

__all__ = ["OpenAICompatAdaptor"]

#: ``service_tier`` values the OpenAI schema allows; vendors send others (Groq:
#: ``on_demand``) which make strict clients reject the whole response.
SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority", "fast"})
_TIER_KEY = b'"service_tier":'


def _fix_service_tier(obj: dict[str, Any]) -> None:
    tier = obj.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        del obj["service_tier"]


def _odd_service_tier(data: bytes) -> bool:
    i = data.find(_TIER_KEY)
    if i == -1:
        return False
    rest = data[i + len(_TIER_KEY) :].lstrip()
    if rest.startswith(b"null"):
        return False
    if not rest.startswith(b'"'):
        return True
    end = rest.find(b'"', 1)
    return rest[1:end].decode("utf-8", "replace") not in SERVICE_TIERS


class OpenAICompatAdaptor:
    name = "openai_compat"

    def _profile(self, target: Target) -> Profile:
        return get_profile(target.profile)

    # ---- requests -------------------------------------------------------
    def _url(self, profile: Profile, target: Target, path: str) -> str:
        base = target.base_url
        if profile.url_style == "azure":
            deployments = target.config.get("deployments") or {}
            deployment = deployments.get(target.upstream_model, target.upstream_model)
            version = target.config.get("api_version") or profile.default_api_version
            return f"{base}/openai/deployments/{deployment}{path}?api-version={version}"
        if profile.url_style == "azure_v1":
            return f"{base}/openai/v1{path}"
        return base + path

    def _headers(self, profile: Profile, target: Target) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if profile.auth == "api-key":
            headers["api-key"] = target.api_key
        elif target.api_key:
            headers["Authorization"] = "Bearer " + target.api_key
        extra = target.config.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        return headers

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        profile = self._profile(target)
        out = dict(body)
        out["model"] = target.upstream_model
        for src, dst in profile.param_renames.items():
            if src in out:
                value = out.pop(src)
                out.setdefault(dst, value)
        for name in profile.drop_params:
            out.pop(name, None)
        if stream:
            out["stream"] = True
            if profile.stream_usage:
                opts = dict(out.get("stream_options") or {})
                opts["include_usage"] = True  # always ask: billing needs it
                out["stream_options"] = opts
            else:
                out.pop("stream_options", None)
        else:
            out.pop("stream", None)
            out.pop("stream_options", None)
        return UpstreamRequest(
            self._url(profile, target, profile.chat_path),
            self._headers(profile, target),
            orjson.dumps(out),
        )

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest:
        profile = self._profile(target)
        if not profile.embeddings:
            raise NotImplementedByProvider(
                f"{profile.label} has no embeddings API; "
                "route embeddings models to another channel."
            )
        out = dict(body)
        out["model"] = target.upstream_model
        out["encoding_format"] = "float"  # we encode base64 ourselves (providers.md §0.1)
        return UpstreamRequest(
            self._url(profile, target, profile.embeddings_path),
            self._headers(profile, target),
            orjson.dumps(out),
        )

    # ---- responses -------------------------------------------------------
    def chat_response(self, target: Target, raw: bytes) -> tuple[dict[str, Any], Usage | None]:
        obj = parse_json_object(raw)
        if "error" in obj and "choices" not in obj:
            raise self._error_obj(target, 502, obj)
        _fix_service_tier(obj)
        profile = self._profile(target)
        if profile.reasoning_field:
            for choice in obj.get("choices") or ():
                msg = choice.get("message") if isinstance(choice, dict) else None
                if isinstance(msg, dict) and profile.reasoning_field in msg:
                    msg.setdefault("reasoning_content", msg.pop(profile.reasoning_field))
        raw_usage = obj.get("usage")
        usage = Usage.from_openai(raw_usage) if isinstance(raw_usage, dict) else None
        return obj, usage

    def embeddings_response(
        self, target: Target, raw: bytes
    ) -> tuple[dict[str, Any], Usage | None]:
        obj = parse_json_object(raw)
        if not isinstance(obj.get("data"), list):
            raise UpstreamError("The upstream provider returned an unexpected embeddings response.")
        raw_usage = obj.get("usage")
        usage = Usage.from_openai(raw_usage) if isinstance(raw_usage, dict) else None
        return obj, usage

    def chat_stream(self, target: Target, include_usage: bool) -> OpenAIStreamTranslator:
        return OpenAIStreamTranslator(self._profile(target), target, include_usage)

    # ---- errors -----------------------------------------------------------
    def error(self, target: Target, status: int, raw: bytes) -> RelayError:
        try:
            obj = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            obj = {}
        return self._error_obj(target, status, obj if isinstance(obj, dict) else {})

    def _error_obj(self, target: Target, status: int, obj: dict[str, Any]) -> RelayError:
        err = obj.get("error")
        message = ""
        code: str | None = None
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            raw_code = err.get("code") or err.get("type")
            code = str(raw_code) if raw_code is not None else None
        elif isinstance(err, str):
            message = err
        return error_from_status(
            status, message, upstream_code=code, secrets=(target.api_key, target.base_url)
        )


class OpenAIStreamTranslator:
    """Passes upstream chunks through as bytes; parses only what it must.

    * the trailing ``choices: []`` usage chunk is forwarded as it arrives if the
      client asked for usage, and dropped otherwise (its figures are kept);
    * usage placed on the finish chunk (GLM) or inside ``choices[0]`` (Moonshot)
      is recorded, and one standard usage chunk is synthesised for clients that
      asked;
    * Azure's identity-less filter chunk (``"object":""``) is dropped — it breaks
      strict clients;
    * ``{"error": …}`` inside the stream becomes ``self.error``.
    """

    __slots__ = (
        "_id",
        "_include_usage",
        "_model",
        "_profile",
        "_rename",
        "_target",
        "_usage_sent",
        "done",
        "error",
        "usage",
    )

    def __init__(self, profile: Profile, target: Target, include_usage: bool) -> None:
        self._profile = profile
        self._target = target
        self._include_usage = include_usage
        self._rename = profile.reasoning_field
        self._usage_sent = False
        self._id = ""
        self._model = target.upstream_model
        self.usage: Usage | None = None
        self.error: RelayError | None = None
        self.done = False

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if data == b"[DONE]":
            self.done = True
            return []
        needs_parse = (
            (b'"usage"' in data and _has_usage_value(data))
            or b'"error"' in data[:16]
            or b'"choices":[]' in data
            or b'"object":""' in data
            or not self._id
        )
        if self._rename is not None and self._rename.encode() in data:
            needs_parse = True
        odd_tier = _odd_service_tier(data)
        if not needs_parse and not odd_tier:
            return [data]
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []  # not JSON: nothing a client could use
        if not isinstance(obj, dict):
            return []
        if "error" in obj and "choices" not in obj:
            err = obj["error"]
            message = str(err.get("message") or "") if isinstance(err, dict) else str(err)
            code = err.get("code") if isinstance(err, dict) else None
            self.error = error_from_status(
                500,
                message,
                upstream_code=str(code) if code else None,
                secrets=(self._target.api_key, self._target.base_url),
            )
            if message:
                self.error.message = (
                    f"The upstream provider failed mid-stream: {self.error.message}"
                )
            return []
        if odd_tier:
            _fix_service_tier(obj)
            data = orjson.dumps(obj)
        if not self._id and obj.get("id"):
            self._id = str(obj["id"])
            self._model = str(obj.get("model") or self._model)
        choices = obj.get("choices")
        usage = obj.get("usage")
        if not isinstance(usage, dict) and isinstance(choices, list) and choices:
            first = choices[0]
            if isinstance(first, dict) and isinstance(first.get("usage"), dict):
                usage = first.pop("usage")  # Moonshot: hoist
                obj["usage"] = usage
        if isinstance(usage, dict):
            self.usage = Usage.from_openai(usage)
        if not choices:
            if obj.get("object") == "" or not obj.get("id"):
                return []  # Azure prompt-filter chunk
            if isinstance(usage, dict):
                # the standard usage chunk: exactly one reaches a client that asked for it
                if self._include_usage and not self._usage_sent:
                    self._usage_sent = True
                    return [data]
                return []
        if self._rename is not None and isinstance(choices, list):
            for choice in choices:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and self._rename in delta:
                    delta.setdefault("reasoning_content", delta.pop(self._rename))
            return [orjson.dumps(obj)]
        if not self._include_usage and isinstance(usage, dict):
            obj["usage"] = None
            return [orjson.dumps(obj)]
        return [data]

    def finish(self) -> list[bytes]:
        if not self._include_usage or self.usage is None or self._usage_sent:
            return []
        return [
            usage_chunk(self._id or "chatcmpl-relaygate", self._model, int(time.time()), self.usage)
        ]


def _has_usage_value(data: bytes) -> bool:
    i = data.find(b'"usage"')
    while i != -1:
        j = i + 7
        n = len(data)
        while j < n and data[j] in b" :":
            j += 1
        if j < n and data[j] == 0x7B:  # '{'
            return True
        i = data.find(b'"usage"', j)
    return False
