"""Baidu ERNIE v1 adaptor: the legacy wenxinworkshop protocol (``docs/providers.md``,
"Baidu ERNIE v1"). No I/O of its own.

* Channel key ``API_KEY|SECRET_KEY``. The adaptor is a ``TokenSource``: the relay
  (``routing/tokens.py``) exchanges the pair at
  ``POST {auth_url}/oauth/2.0/token?grant_type=client_credentials&client_id=…&client_secret=…``
  for an ``access_token`` and caches it until shortly before ``expires_in``.
* Chat: ``POST {base_url}/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/{endpoint}?access_token=…``;
  embeddings: ``…/wenxinworkshop/embeddings/{endpoint}``. The endpoint comes from the
  channel's ``config.endpoints`` (``{model: endpoint}``), else from :data:`ENDPOINTS`,
  else the model name in lower case.
* Errors arrive inside HTTP 200 bodies (``error_code``): ``providers/baidu_errors.py``.

Channel ``config`` keys: ``auth_url`` (default ``https://aip.baidubce.com``) and
``endpoints``. Request conversion: ``providers/baidu_request.py``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import orjson

from relaygate.errors import InvalidRequest, RelayError, UpstreamError
from relaygate.providers.baidu_errors import baidu_error, is_baidu_error
from relaygate.providers.baidu_request import build_chat_body
from relaygate.providers.base import (
    Target,
    UpstreamRequest,
    Usage,
    embeddings_list,
    error_from_status,
    parse_json_object,
)
from relaygate.providers.legacy_functions import to_function_call_message
from relaygate.providers.one_choice_stream import OneChoiceStream

__all__ = ["AUTH_URL", "ENDPOINTS", "BaiduAdaptor", "BaiduStreamTranslator"]

AUTH_URL = "https://aip.baidubce.com"
_PREFIX = "/rpc/2.0/ai_custom/v1/wenxinworkshop"

#: model → wenxinworkshop endpoint, from one-api ``relay/adaptor/baidu/adaptor.go``
#: (``docs/providers.md``); a channel's ``config.endpoints`` adds or overrides entries
ENDPOINTS: dict[str, str] = {
    "ERNIE-4.0-8K": "completions_pro",
    "ERNIE-4.0": "completions_pro",
    "ERNIE-Bot-4": "completions_pro",
    "ERNIE-3.5-8K": "completions",
    "ERNIE-Bot": "completions",
    "ERNIE-3.5-8K-0205": "ernie-3.5-8k-0205",
    "ERNIE-3.5-8K-1222": "ernie-3.5-8k-1222",
    "ERNIE-3.5-4K-0205": "ernie-3.5-4k-0205",
    "ERNIE-Bot-8K": "ernie_bot_8k",
    "ERNIE-Bot-turbo": "eb-instant",
    "ERNIE-Lite-8K-0922": "eb-instant",
    "ERNIE-Lite-8K": "ernie-lite-8k",
    "ERNIE-Lite-8K-0308": "ernie-lite-8k",
    "ERNIE-Speed": "ernie_speed",
    "ERNIE-Speed-8K": "ernie_speed",
    "ERNIE-Speed-128K": "ernie-speed-128k",
    "ERNIE-Tiny-8K": "ernie-tiny-8k",
    "BLOOMZ-7B": "bloomz_7b1",
    "Embedding-V1": "embedding-v1",
    "bge-large-zh": "bge_large_zh",
    "bge-large-en": "bge_large_en",
    "tao-8k": "tao_8k",
}

_FINISH = {
    "normal": "stop",
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "function_call": "tool_calls",
}


def endpoint(target: Target) -> str:
    configured = target.config.get("endpoints")
    model = target.upstream_model
    if isinstance(configured, dict):
        found = configured.get(model)
        if isinstance(found, str) and found:
            return found
    return ENDPOINTS.get(model) or model.lower()


def _credentials(target: Target) -> tuple[str, str]:
    ak, sep, sk = target.api_key.partition("|")
    if not sep or not ak or not sk:
        raise UpstreamError(
            "This Baidu channel's key must be API_KEY|SECRET_KEY; the operator has to fix it.",
            code="upstream_auth_failed",
        )
    return ak, sk


def _url(target: Target, kind: str) -> str:
    token = target.token
    if not token:
        raise UpstreamError("No Baidu access token was resolved for this channel.")
    base = target.base_url.rstrip("/")
    path = f"{_PREFIX}/{kind}/{quote(endpoint(target), safe='-_.')}"
    return f"{base}{path}?access_token={quote(token, safe='')}"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_baidu(raw: Any) -> Usage | None:
    """Baidu's ``usage``; completion = total − prompt when a total is given (stream
    chunks report a per-chunk ``completion_tokens`` but a cumulative total)."""
    if not isinstance(raw, dict):
        return None
    prompt = _int(raw.get("prompt_tokens"))
    total = _int(raw.get("total_tokens"))
    completion = total - prompt if total >= prompt and total else _int(raw.get("completion_tokens"))
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def finish_reason(raw: Any, has_call: bool) -> str:
    if has_call:
        return "tool_calls"
    return _FINISH.get(raw, "stop") if isinstance(raw, str) else "stop"


def _tool_call(call: dict[str, Any], call_id: str) -> dict[str, Any]:
    args = call.get("arguments")
    return {
        "id": call_id,
        "type": "function",
        "function": {
            "name": call.get("name") if isinstance(call.get("name"), str) else "",
            "arguments": args if isinstance(args, str) else orjson.dumps(args or {}).decode(),
        },
    }


class BaiduAdaptor:
    name = "baidu"

    # ------------------------------------------------------------ token source
    def token_request(self, target: Target) -> UpstreamRequest | None:
        ak, sk = _credentials(target)
        base = str(target.config.get("auth_url") or AUTH_URL).rstrip("/")
        url = (
            f"{base}/oauth/2.0/token?grant_type=client_credentials"
            f"&client_id={quote(ak, safe='')}&client_secret={quote(sk, safe='')}"
        )
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        return UpstreamRequest(url, headers, b"")

    def token_response(self, target: Target, status: int, raw: bytes) -> tuple[str, float]:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            token = obj.get("access_token")
            if isinstance(token, str) and token and status < 400:
                expires = obj.get("expires_in")
                if (
                    isinstance(expires, int | float)
                    and not isinstance(expires, bool)
                    and expires > 0
                ):
                    return token, float(expires)
                return token, 2592000.0
            if isinstance(obj.get("error"), str) or status in (400, 401, 403):
                return self._auth_failed()
        if status >= 500:
            raise UpstreamError(f"The upstream token endpoint failed (HTTP {status}).")
        return self._auth_failed()

    @staticmethod
    def _auth_failed() -> tuple[str, float]:
        raise UpstreamError(
            "The upstream provider rejected this gateway channel's credentials; "
            "the operator has to fix the channel.",
            code="upstream_auth_failed",
        )

    # ------------------------------------------------------------ chat
    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        payload, legacy = build_chat_body(body, stream)
        headers = {"Content-Type": "application/json"}
        if stream:
            headers["Accept"] = "text/event-stream"
        return UpstreamRequest(
            _url(target, "chat"), headers, orjson.dumps(payload), legacy_functions=legacy
        )

    def chat_response(
        self, target: Target, raw: bytes, *, legacy_functions: bool = False
    ) -> tuple[dict[str, Any], Usage | None]:
        obj = parse_json_object(raw)
        if is_baidu_error(obj):
            raise baidu_error(obj, self._secrets(target))
        result = obj.get("result")
        call = obj.get("function_call")
        rid = obj.get("id") if isinstance(obj.get("id"), str) else "baidu"
        message: dict[str, Any] = {
            "role": "assistant",
            "content": result if isinstance(result, str) else "",
        }
        has_call = isinstance(call, dict)
        if isinstance(call, dict):
            message["tool_calls"] = [_tool_call(call, f"call_{rid}")]
        usage = usage_from_baidu(obj.get("usage"))
        created = obj.get("created")
        choice = {
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(obj.get("finish_reason"), has_call),
            "logprobs": None,
        }
        if legacy_functions:
            to_function_call_message(choice)
        out: dict[str, Any] = {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion",
            "created": created if isinstance(created, int) else int(time.time()),
            "model": target.upstream_model,
            "choices": [choice],
        }
        if usage is not None:
            out["usage"] = usage.to_openai()
        return out, usage

    def chat_stream(
        self, target: Target, include_usage: bool, *, legacy_functions: bool = False
    ) -> BaiduStreamTranslator:
        return BaiduStreamTranslator(target, include_usage, legacy_functions)

    # ------------------------------------------------------------ embeddings
    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest:
        items = body.get("input")
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
            raise InvalidRequest(
                "Baidu embeddings take `input` as a string or an array of strings.", param="input"
            )
        payload: dict[str, Any] = {"input": items}
        user = body.get("user")
        if isinstance(user, str) and user:
            payload["user_id"] = user
        return UpstreamRequest(
            _url(target, "embeddings"), {"Content-Type": "application/json"}, orjson.dumps(payload)
        )

    def embeddings_response(
        self, target: Target, raw: bytes
    ) -> tuple[dict[str, Any], Usage | None]:
        obj = parse_json_object(raw)
        if is_baidu_error(obj):
            raise baidu_error(obj, self._secrets(target))
        data = obj.get("data")
        if not isinstance(data, list):
            raise UpstreamError("The upstream provider returned an unexpected response.")
        usage = usage_from_baidu(obj.get("usage"))
        out = embeddings_list(data, target.upstream_model, usage, index="index", vector="embedding")
        return out, usage

    # ------------------------------------------------------------ errors
    def error(self, target: Target, status: int, raw: bytes) -> RelayError:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and is_baidu_error(obj):
            return baidu_error(obj, self._secrets(target))
        message = ""
        if isinstance(obj, dict):
            for key in ("error_msg", "error_description", "message"):
                if isinstance(obj.get(key), str):
                    message = obj[key]
                    break
        return error_from_status(status, message, upstream_code=None, secrets=self._secrets(target))

    @staticmethod
    def _secrets(target: Target) -> tuple[str, ...]:
        ak, _, sk = target.api_key.partition("|")
        return tuple(s for s in (target.api_key, ak, sk, target.token or "") if s)


class BaiduStreamTranslator(OneChoiceStream):
    """ERNIE v1 SSE (``data: {…"result":…,"is_end":…,"usage":…}``, no ``[DONE]``) →
    OpenAI chunk payloads. ``is_end: true`` ends the stream (sets ``done``); usage is
    on every chunk (the last one counts); an ``error_code`` event sets ``error``."""

    __slots__ = ()

    def __init__(self, target: Target, include_usage: bool, legacy: bool = False) -> None:
        super().__init__(
            target, include_usage, legacy, BaiduAdaptor._secrets(target), "chatcmpl-baidu"
        )

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if self.done:
            return []
        obj = self._load(data)
        if obj is None:
            return []
        if is_baidu_error(obj):
            self.error = baidu_error(obj, self._secrets)
            return []
        first = not self._started
        if first:
            self._begin(obj.get("id"), obj.get("created"))
        usage = usage_from_baidu(obj.get("usage"))
        if usage is not None:
            self.usage = usage
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        result = obj.get("result")
        if isinstance(result, str) and result:
            delta["content"] = result
        call = obj.get("function_call")
        has_call = isinstance(call, dict)
        if isinstance(call, dict):
            tc = _tool_call(call, f"call_{self._id.removeprefix('chatcmpl-')}")
            if self._legacy:
                delta["function_call"] = tc["function"]
            else:
                delta["tool_calls"] = [{"index": 0, **tc}]
        finish = None
        if obj.get("is_end") is True:
            finish = finish_reason(obj.get("finish_reason"), has_call)
        return self._emit(delta, finish)
