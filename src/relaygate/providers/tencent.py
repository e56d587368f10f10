"""Tencent Hunyuan native adaptor: TencentCloud API 3.0, ``TC3-HMAC-SHA256`` signed
(``docs/providers.md``, "Tencent Hunyuan native"). No I/O of its own.

* Channel key ``SecretId|SecretKey`` (an ``AppId|SecretId|SecretKey`` triple is
  accepted; the AppId is not needed to sign).
* ``POST {base_url}/`` with ``X-TC-Action`` (``ChatCompletions`` / ``GetEmbedding``),
  ``X-TC-Version: 2023-09-01``, ``X-TC-Timestamp``, ``X-TC-Region`` (``config.region``,
  sent when set) and the signed ``Authorization`` (``providers/tc3.py``; the host is the
  base URL's, sent as the ``Host`` header so the signed and the sent host agree).
* Bodies are PascalCase (``Model``, ``Messages`` with ``Role``/``Content``, ``Stream``,
  ``Temperature``, ``TopP``, ``Tools``/``ToolChoice``, ``EnableEnhancement`` — off unless
  ``config.enable_enhancement`` or the client's ``enable_enhancement`` says otherwise).
* Answers are wrapped in ``{"Response": {…}}``; errors come with HTTP 200 as
  ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``. Stream events are
  unwrapped (``{"Choices": [{"Delta", "FinishReason"}], "Usage"}``) and end with the
  event whose ``FinishReason`` is not empty (no ``[DONE]``).

Signing needs the time: the adaptor takes a ``clock`` (default ``time.time``), so tests
pass a fixed one.

Where things are: the key, the bodies and the signed request in
``providers/tencent_request.py``; answers in ``providers/tencent_answer.py``; the stream
translator in ``providers/tencent_stream.py``; ``Response.Error`` mapping in
``providers/tencent_errors.py``. This module holds the adaptor and re-exports the
public names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from relaygate.errors import RelayError
from relaygate.providers.base import Target, UpstreamRequest, Usage
from relaygate.providers.tencent_answer import chat_answer, embeddings_answer
from relaygate.providers.tencent_errors import error_body, tencent_error, tencent_secrets, unwrap
from relaygate.providers.tencent_request import (
    SERVICE,
    VERSION,
    build_chat_body,
    credentials,
    embeddings_payload,
    signed_request,
)
from relaygate.providers.tencent_stream import TencentStreamTranslator

__all__ = [
    "SERVICE",
    "VERSION",
    "TencentAdaptor",
    "TencentStreamTranslator",
    "build_chat_body",
    "credentials",
    "tencent_error",
]


class TencentAdaptor:
    name = "tencent"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def _request(self, target: Target, action: str, payload: dict[str, Any]) -> UpstreamRequest:
        return signed_request(target, action, payload, int(self._clock()))

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        payload, legacy = build_chat_body(target, body, stream)
        ureq = self._request(target, "ChatCompletions", payload)
        ureq.legacy_functions = legacy
        return ureq

    def chat_response(
        self, target: Target, raw: bytes, *, legacy_functions: bool = False
    ) -> tuple[dict[str, Any], Usage | None]:
        return chat_answer(unwrap(target, raw), target.upstream_model, legacy_functions)

    def chat_stream(
        self, target: Target, include_usage: bool, *, legacy_functions: bool = False
    ) -> TencentStreamTranslator:
        return TencentStreamTranslator(
            target, include_usage, legacy_functions, tencent_secrets(target)
        )

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest:
        return self._request(target, "GetEmbedding", embeddings_payload(body))

    def embeddings_response(
        self, target: Target, raw: bytes
    ) -> tuple[dict[str, Any], Usage | None]:
        return embeddings_answer(unwrap(target, raw), target.upstream_model)

    def error(self, target: Target, status: int, raw: bytes) -> RelayError:
        return error_body(target, status, raw)
