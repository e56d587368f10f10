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
    normalize_usage,
    parse_json_object,
)
from relaygate.providers.legacy_functions import (
    LegacyStream,
    to_function_call_message,
    upgrade_legacy_functions,
)
from relaygate.providers.model_list import ids_from_data
from relaygate.providers.profiles import Profile, get_profile
from relaygate.providers.surfaces import SurfaceCall, channel_surfaces, surface_request
from relaygate.providers.vendor_quirks import (
    body_error,
    fill_chunk,
    fill_completion,
    fix_service_tier,
    has_body_error,
    has_usage_value,
    normalize_reasoning,
    odd_service_tier,
    only_finish,
    shape_request,
    zero_usage,
)
from relaygate.providers.zhipu_jwt import zhipu_jwt

__all__ = ["OpenAICompatAdaptor", "normalize_reasoning"]


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
        credential = target.token or target.api_key
        if profile.auth == "api-key":
            headers["api-key"] = credential
        elif credential:
            headers["Authorization"] = "Bearer " + credential
        appid = target.config.get("appid")
        if profile.appid_header and isinstance(appid, str | int) and appid != "":
            headers[profile.appid_header] = str(appid)
        extra = target.config.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        return headers

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        profile = self._profile(target)
        legacy = False
        if not profile.native_functions:
            body, legacy = upgrade_legacy_functions(body)
        out = dict(body)
        out["model"] = target.upstream_model
        for src, dst in profile.param_renames.items():
            if src in out:
                value = out.pop(src)
                out.setdefault(dst, value)
        for name in profile.drop_params:
            out.pop(name, None)
        shape_request(profile, target, out)
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
            legacy_functions=legacy,
        )

    def local_token(self, target: Target, now: float) -> tuple[str, float] | None:
        """Zhipu's signed JWT for profiles with ``auth = "zhipu_jwt"`` (``LocalTokenSource``)."""
        if self._profile(target).auth != "zhipu_jwt":
            return None
        ttl = target.config.get("token_ttl")
        seconds = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else 3600.0
        return zhipu_jwt(target.api_key, now, seconds), seconds

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

    def surfaces(self, target: Target) -> frozenset[str]:
        """The API surfaces beyond chat and embeddings this channel serves."""
        return channel_surfaces(target.profile, target.config)

    def surface_request(self, target: Target, call: SurfaceCall) -> UpstreamRequest:
        profile = self._profile(target)
        return surface_request(profile, target, call, self._headers(profile, target))

    def models_request(self, target: Target) -> UpstreamRequest | None:
        """``GET {base}/models`` (``ModelLister``); Azure deployments are not listed there."""
        profile = self._profile(target)
        if profile.url_style == "azure":
            return None
        return UpstreamRequest(
            self._url(profile, target, "/models"),
            self._headers(profile, target),
            b"",
            method="GET",
        )

    def models_response(self, target: Target, status: int, raw: bytes) -> list[str]:
        return ids_from_data(raw)

    # ---- responses -------------------------------------------------------
    def chat_response(
        self, target: Target, raw: bytes, *, legacy_functions: bool = False
    ) -> tuple[dict[str, Any], Usage | None]:
        obj = parse_json_object(raw)
        if "error" in obj and "choices" not in obj:
            raise self._error_obj(target, 502, obj)
        failed = body_error(obj, (target.api_key, target.base_url))
        if failed is not None:
            raise failed  # MiniMax / Spark: an error inside an HTTP 200 body
        fix_service_tier(obj)
        profile = self._profile(target)
        if profile.fill_missing:
            fill_completion(obj, target.upstream_model, int(time.time()))
        legacy = legacy_functions
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            msg = choice.get("message")
            if isinstance(msg, dict):
                normalize_reasoning(msg, profile.reasoning_field)
            if legacy:
                to_function_call_message(choice)
        raw_usage = obj.get("usage")
        usage = None
        if isinstance(raw_usage, dict) and not zero_usage(raw_usage):
            obj["usage"] = normalize_usage(raw_usage)
            usage = Usage.from_openai(obj["usage"])
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

    def chat_stream(
        self, target: Target, include_usage: bool, *, legacy_functions: bool = False
    ) -> OpenAIStreamTranslator:
        legacy = legacy_functions
        return OpenAIStreamTranslator(self._profile(target), target, include_usage, legacy)

    # ---- errors -----------------------------------------------------------
    def error(self, target: Target, status: int, raw: bytes) -> RelayError:
        try:
            obj = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            obj = {}
        return self._error_obj(target, status, obj if isinstance(obj, dict) else {})

    def _error_obj(self, target: Target, status: int, obj: dict[str, Any]) -> RelayError:
        failed = body_error(obj, (target.api_key, target.base_url))
        if failed is not None:
            return failed
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


_FINISH_KEY = b'"finish_reason":'
_USAGE_KEY = b'"usage"'


def _usage_value(data: bytes) -> bool:
    """``has_usage_value``, with OpenAI's ``"usage":null`` (on every chunk of a stream that
    asked for usage) answered without its scan."""
    i = data.find(_USAGE_KEY)
    if i == -1:
        return False
    if data.startswith(b'"usage":null', i) and data.find(_USAGE_KEY, i + 12) == -1:
        return False
    return has_usage_value(data)


def _has_finish_reason(data: bytes) -> bool:
    """``"finish_reason":"`` or ``"finish_reason": "`` is in the chunk (a string value)."""
    i = data.find(_FINISH_KEY)
    while i != -1:
        i += len(_FINISH_KEY)
        if data.startswith(b'"', i) or data.startswith(b' "', i):
            return True
        i = data.find(_FINISH_KEY, i)
    return False


class OpenAIStreamTranslator:
    """Passes upstream chunks through as bytes; parses only what it must.

    * usage, wherever the upstream puts it (a ``choices: []`` chunk, the finish
      chunk as GLM/OpenRouter/Vercel do, inside ``choices[0]`` as Moonshot does,
      on every chunk), is recorded (the last one wins), removed from chunks that
      carry choices, and sent exactly once, in OpenAI's shape, as the final
      ``choices: []`` chunk from :meth:`finish`, only if the client asked;
    * a finish chunk repeated only to carry usage (OpenRouter) is dropped;
    * reasoning under ``reasoning`` or ``reasoning_details[].text`` (or the
      profile's own name) reaches the client as ``reasoning_content``;
    * Azure's identity-less filter chunk (``"object":""``) is dropped — it breaks
      strict clients;
    * with ``legacy``, ``delta.tool_calls`` become ``delta.function_call``;
    * ``{"error": …}`` inside the stream becomes ``self.error``, and so do MiniMax's
      ``base_resp`` and Spark's ``code`` failures (``vendor_quirks.body_error``);
    * MiniMax's closing ``object: "chat.completion"`` frame (the whole message again) is
      dropped, its usage kept; all-zero usage placeholders are ignored; ``role: ""``
      is removed;
    * with the profile's ``fill_missing`` (Spark) chunks get ``id``/``object``/``model``,
      ``tool_calls`` objects become lists, and a finish chunk is added before ``[DONE]``
      when the upstream sent none.
    """

    __slots__ = (
        "_body_errors",
        "_closing",
        "_created",
        "_fill",
        "_finished",
        "_id",
        "_include_usage",
        "_legacy",
        "_model",
        "_profile",
        "_rename",
        "_rename_key",
        "_target",
        "_tools",
        "_usage_raw",
        "_usage_sent",
        "done",
        "error",
        "usage",
    )

    def __init__(
        self, profile: Profile, target: Target, include_usage: bool, legacy: bool = False
    ) -> None:
        self._profile = profile
        self._target = target
        self._include_usage = include_usage
        self._rename = profile.reasoning_field
        self._rename_key = (profile.reasoning_field or "").encode()
        self._legacy = LegacyStream() if legacy else None
        self._fill = profile.fill_missing
        self._body_errors = profile.errors_in_body
        self._closing = profile.closing_frame
        self._tools = False
        self._finished = False
        self._id = ""
        self._created = 0
        self._model = target.upstream_model
        self._usage_raw: dict[str, Any] | None = None
        self._usage_sent = False
        self.usage: Usage | None = None
        self.error: RelayError | None = None
        self.done = False

    def _needs_parse(self, data: bytes) -> bool:
        # bytes.find, not ``in``: ``x in data`` first tries ``x`` as an integer and clears
        # the TypeError, ~80 ns more per search (this runs on every chunk of every stream)
        find = data.find
        return (
            not self._id
            or self._fill
            or _usage_value(data)
            or find(b'"error"', 0, 16) != -1
            or find(b'"choices":[]') != -1
            or find(b'"object":""') != -1
            or (self._body_errors and has_body_error(data))
            or (self._closing and find(b'"role":""') != -1)
            or (
                find(b'"reasoning') != -1  # one search for the two names in most chunks
                and (find(b'"reasoning"') != -1 or find(b'"reasoning_details"') != -1)
            )
            or (self._rename is not None and find(self._rename_key) != -1)
            or (self._legacy is not None and find(b'"tool_calls"') != -1)
        )

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if data == b"[DONE]":
            self.done = True
            if self._fill and not self._finished and self._id:
                self._finished = True  # Spark: no finish_reason anywhere
                return [self._finish_chunk("tool_calls" if self._tools else "stop")]
            return []
        if self._closing and (
            b'"object":"chat.completion"' in data or b'"object": "chat.completion"' in data
        ):
            return self._final_frame(data)
        if not self._finished and _has_finish_reason(data):
            self._finished = True  # noted before parsing: a repeat is recognised below
            repeat = False
        else:
            repeat = self._finished
        odd_tier = odd_service_tier(data)
        if not self._needs_parse(data) and not odd_tier:
            return [data]
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []  # not JSON: nothing a client could use
        if not isinstance(obj, dict):
            return []
        if "error" in obj and "choices" not in obj:
            self._stream_error(obj["error"])
            return []
        failed = body_error(obj, (self._target.api_key, self._target.base_url))
        if failed is not None:
            self.error = failed
            return []
        fix_service_tier(obj)
        if self._fill:
            sid = obj.get("sid") or "relaygate"
            ident = self._id or f"chatcmpl-{sid}"
            now = self._created or int(time.time())
            self._tools = fill_chunk(obj, ident, self._model, now) or self._tools
        if not self._id and obj.get("id"):
            self._id = str(obj["id"])
            self._model = str(obj.get("model") or self._model)
            created = obj.get("created")
            self._created = created if isinstance(created, int) else 0
        choices = obj.get("choices")
        usage = obj.get("usage")
        if not isinstance(usage, dict) and isinstance(choices, list) and choices:
            first = choices[0]
            if isinstance(first, dict) and isinstance(first.get("usage"), dict):
                usage = first.pop("usage")  # Moonshot: inside the choice
        zero = isinstance(usage, dict) and zero_usage(usage)
        if zero:
            usage = None  # MiniMax's per-chunk placeholder
        if isinstance(usage, dict):
            self._usage_raw = normalize_usage(usage)
            self.usage = Usage.from_openai(self._usage_raw)
        if not choices:
            if obj.get("object") == "" or not obj.get("id") or zero:
                return []  # Azure prompt-filter chunk
            if isinstance(usage, dict):
                # the upstream's usage chunk: passed on at once when the client asked (not
                # held until [DONE]: that delayed the stream's last event by one upstream
                # pause), normalised; finish() then adds none
                if not self._include_usage or self._usage_sent:
                    return []
                self._usage_sent = True
                obj["usage"] = self._usage_raw
                return [orjson.dumps(obj)]
            return [orjson.dumps(obj)]
        if "usage" in obj:
            obj["usage"] = None  # usage goes only in the final choices: [] chunk
            if repeat and isinstance(usage, dict) and only_finish(choices):
                return []  # a finish chunk repeated to carry usage (OpenRouter)
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if delta.get("role") == "":
                    del delta["role"]  # MiniMax
                normalize_reasoning(delta, self._rename)
            if self._legacy is not None:
                self._legacy.choice(choice)
        return [orjson.dumps(obj)]

    def _final_frame(self, data: bytes) -> list[bytes]:
        """MiniMax's closing ``chat.completion`` frame: its usage, never its text again."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(obj, dict):
            return []
        failed = body_error(obj, (self._target.api_key, self._target.base_url))
        if failed is not None:
            self.error = failed
            return []
        usage = obj.get("usage")
        if isinstance(usage, dict) and not zero_usage(usage):
            self._usage_raw = normalize_usage(usage)
            self.usage = Usage.from_openai(self._usage_raw)
        if self._finished:
            return []
        self._finished = True
        choices = obj.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else {}
        reason = first.get("finish_reason") if isinstance(first, dict) else None
        if not self._id and obj.get("id"):
            self._id = str(obj["id"])
        return [self._finish_chunk(str(reason or "stop"))]

    def _finish_chunk(self, reason: str) -> bytes:
        choice = {"index": 0, "delta": {}, "finish_reason": reason}
        return orjson.dumps(
            {
                "id": self._id or "chatcmpl-relaygate",
                "object": "chat.completion.chunk",
                "created": self._created or int(time.time()),
                "model": self._model,
                "choices": [choice],
            }
        )

    def _stream_error(self, err: Any) -> None:
        message = str(err.get("message") or "") if isinstance(err, dict) else str(err)
        code = err.get("code") if isinstance(err, dict) else None
        self.error = error_from_status(
            500,
            message,
            upstream_code=str(code) if code else None,
            secrets=(self._target.api_key, self._target.base_url),
        )
        if message:
            self.error.message = f"The upstream provider failed mid-stream: {self.error.message}"

    def finish(self) -> list[bytes]:
        if not self._include_usage or self._usage_raw is None or self._usage_sent:
            return []
        return [
            orjson.dumps(
                {
                    "id": self._id or "chatcmpl-relaygate",
                    "object": "chat.completion.chunk",
                    "created": self._created or int(time.time()),
                    "model": self._model,
                    "choices": [],
                    "usage": self._usage_raw,
                }
            )
        ]
