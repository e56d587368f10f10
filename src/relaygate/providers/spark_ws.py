"""iFlytek Spark over WebSocket, the legacy native protocol (spec ``providers.md`` §8a).
No I/O of its own: ``chat_request`` returns the HMAC-signed ``wss://`` URL and the one
request frame; ``transport/websocket.py`` connects, sends the frame and hands the
answer frames back (a stream: one SSE event per frame; ``read()``: the frames joined by
``\\n``), which this adaptor turns into OpenAI objects and chunks.

Channel: key ``APPID|APISecret|APIKey``; base URL ``wss://spark-api.xf-yun.com`` (an
``https://``/``http://`` base URL is taken as ``wss://``/``ws://``, so a base URL the
channel validation accepts works). ``config`` keys:

* ``domains``: ``{model: [path, domain]}``, overriding the built-in table :data:`DOMAINS`;
  a model in neither goes to ``config.path`` (default ``/v3.5/chat``) with the model
  name as the ``domain``;
* ``system_role``: whether the model takes ``role: "system"`` messages (default: true for
  the ``generalv3.5``, ``max-32k`` and ``4.0Ultra`` domains, folded into the first user
  message for the others).

Conversions (documented choices):

* system/developer messages → one ``system`` text first, or folded (above);
* content parts → their text joined (images are refused: the chat API is text only);
* ``tools`` (and legacy ``functions``) → ``payload.functions.text``; ``tool_choice:
  "none"`` sends no functions; an assistant's ``tool_calls`` and ``role: "tool"`` results
  have no place in Spark's history, so they are folded into text the model can read —
  ``[function call] name(arguments)`` on the assistant turn and ``[function result]
  name: content`` as a user turn — and consecutive turns of one role are merged;
* ``temperature`` is clamped into Spark's (0, 1]; ``max_tokens`` (or
  ``max_completion_tokens``) and ``top_k`` are passed on; ``user`` becomes ``header.uid``.

Answers: ``header.code != 0`` is an error (:func:`spark_error`); the content-moderation
codes 10013/10014/10019 end the answer with ``finish_reason: "content_filter"`` (what
OpenAI does for filtered output, and what the Anthropic adaptor does with a refusal)
instead of an error: the text received so far is kept. ``header.status == 2`` is the last
frame; its ``payload.usage.text`` is the usage. A ``function_call`` becomes one tool call
(``finish_reason: "tool_calls"``).

Where things are: the key, the route, the signed URL and the request frame in
``providers/spark_ws_request.py``; frame parsing and the stream translator in
``providers/spark_ws_stream.py``; error codes in ``providers/spark_ws_errors.py``. This
module holds the adaptor and re-exports the public names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from relaygate.errors import NotImplementedByProvider, RelayError, UpstreamError
from relaygate.providers.base import Target, UpstreamRequest, Usage
from relaygate.providers.legacy_functions import (
    to_function_call_message,
    upgrade_legacy_functions,
)
from relaygate.providers.spark_ws_errors import (
    MODERATION,
    spark_error,
    spark_secrets,
    upgrade_error,
)
from relaygate.providers.spark_ws_request import (
    DEFAULT_BASE_URL,
    DOMAINS,
    build_frame,
    credentials,
    route,
    sign_url,
)
from relaygate.providers.spark_ws_stream import Frame, SparkWSStream, tool_call

__all__ = [
    "DEFAULT_BASE_URL",
    "DOMAINS",
    "SparkWSAdaptor",
    "SparkWSStream",
    "sign_url",
    "spark_error",
]

_NO_EMBEDDINGS = "iFlytek Spark (WebSocket) has no embeddings API."


class SparkWSAdaptor:
    """iFlytek Spark over WebSocket. ``clock`` (seconds since the epoch) signs the URL:
    a seam for deterministic tests."""

    name = "spark_ws"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        app_id, secret, key = credentials(target)
        body, legacy = upgrade_legacy_functions(body)
        path, domain = route(target)
        frame = build_frame(target, body, domain, app_id)
        url = sign_url(target.base_url or DEFAULT_BASE_URL, path, key, secret, self._clock())
        return UpstreamRequest(
            url=url, headers={}, body=frame, method="GET", legacy_functions=legacy
        )

    def chat_response(
        self, target: Target, raw: bytes, *, legacy_functions: bool = False
    ) -> tuple[dict[str, Any], Usage | None]:
        secrets = spark_secrets(target)
        texts: list[str] = []
        sid = ""
        function: dict[str, Any] | None = None
        usage: Usage | None = None
        finish: str | None = None
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            frame = Frame(line)
            sid = sid or frame.sid
            if frame.code and frame.code not in MODERATION:
                raise spark_error(frame.code, frame.message, secrets)
            texts.append(frame.content)
            if frame.function is not None:
                function = frame.function
            if frame.code:
                finish = "content_filter"
                break
            if frame.last:
                usage = frame.usage
                finish = "tool_calls" if function is not None else "stop"
                break
        if finish is None:
            raise UpstreamError("The upstream provider's answer ended before it was complete.")
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
        if function is not None:
            message["tool_calls"] = [tool_call(function, sid)]
            if not message["content"]:
                message["content"] = None
        result: dict[str, Any] = {
            "id": "chatcmpl-" + (sid or "spark"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": target.upstream_model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }
        if usage is not None:
            result["usage"] = usage.to_openai()
        if legacy_functions:
            to_function_call_message(result["choices"][0])
        return result, usage

    def chat_stream(
        self, target: Target, include_usage: bool, *, legacy_functions: bool = False
    ) -> SparkWSStream:
        return SparkWSStream(target, include_usage, legacy_functions)

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest:
        raise NotImplementedByProvider(_NO_EMBEDDINGS)

    def embeddings_response(
        self, target: Target, raw: bytes
    ) -> tuple[dict[str, Any], Usage | None]:
        raise NotImplementedByProvider(_NO_EMBEDDINGS)

    def error(self, target: Target, status: int, raw: bytes) -> RelayError:
        """A refused WebSocket upgrade or a non-2xx answer (``spark_ws_errors.upgrade_error``)."""
        return upgrade_error(target, status, raw)
