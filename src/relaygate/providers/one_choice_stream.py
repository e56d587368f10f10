"""The common part of stream translators whose upstream sends one choice per event and
names the answer on its first event (Baidu ERNIE v1, Tencent Hunyuan): the translator
state, reading an event as a JSON object, taking the id and creation time from the
first event, emitting chunks (``base.chunk_prefix``/``chunk_payload``) and the trailing
usage chunk. Subclasses add ``feed``."""

from __future__ import annotations

import time
from typing import Any

import orjson

from relaygate.errors import RelayError, UpstreamError
from relaygate.providers.base import Target, Usage, chunk_payload, chunk_prefix, usage_chunk

__all__ = ["OneChoiceStream"]


class OneChoiceStream:
    """State and emitting shared by one-choice stream translators (see the module)."""

    __slots__ = (
        "_created",
        "_id",
        "_include_usage",
        "_legacy",
        "_model",
        "_prefix",
        "_secrets",
        "_started",
        "done",
        "error",
        "usage",
    )

    def __init__(
        self,
        target: Target,
        include_usage: bool,
        legacy: bool,
        secrets: tuple[str, ...],
        chunk_id: str,
    ) -> None:
        self.usage: Usage | None = None
        self.error: RelayError | None = None
        self.done = False
        self._include_usage = include_usage
        self._legacy = legacy
        self._model = target.upstream_model
        self._secrets = secrets
        self._id = chunk_id
        self._created = 0
        self._prefix: bytes | None = None
        self._started = False

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> bytes:
        prefix = self._prefix
        if prefix is None:
            prefix = self._prefix = chunk_prefix(self._id, self._created, self._model)
        return chunk_payload(prefix, delta, finish)

    def _load(self, data: bytes) -> dict[str, Any] | None:
        """The event as a JSON object; ``None`` for anything else (malformed JSON also
        sets ``error``)."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.error = UpstreamError("The upstream provider sent a malformed stream event.")
            return None
        return obj if isinstance(obj, dict) else None

    def _begin(self, rid: Any, created: Any) -> None:
        """The first event: the chunk id ``chatcmpl-{rid}`` and its creation time."""
        self._started = True
        if isinstance(rid, str) and rid:
            self._id = f"chatcmpl-{rid}"
        self._created = created if isinstance(created, int) else int(time.time())

    def _emit(self, delta: dict[str, Any], finish: str | None) -> list[bytes]:
        """The chunk of one event, if it says anything: a ``finish`` ends the stream
        (``done``), and is ``function_call`` for ``tool_calls`` in the legacy shape."""
        if finish is not None:
            self.done = True
            if self._legacy and finish == "tool_calls":
                finish = "function_call"
        elif not delta:
            return []
        return [self._chunk(delta, finish)]

    def finish(self) -> list[bytes]:
        if self._include_usage and self.usage is not None:
            return [usage_chunk(self._id, self._model, self._created, self.usage)]
        return []
