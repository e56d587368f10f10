"""One observation per finished request, at the point its request-log row is recorded
(``relay/pipeline.py`` ``record``): never per chunk, no lock held across an await.

The label children are kept in dicts keyed by the raw values, so a request costs a few
dict look-ups and the counter and histogram updates themselves."""

from __future__ import annotations

import time
from typing import Any

from relaygate.catalog import Catalog
from relaygate.context import RelayContext
from relaygate.metrics.instruments import Instruments
from relaygate.metrics.labels import Labels

__all__ = ["RequestObserver"]


class RequestObserver:
    __slots__ = (
        "_by_model",
        "_catalog",
        "_currency",
        "_inst",
        "_requests",
        "_rev",
        "_streams",
        "labels",
    )

    def __init__(self, inst: Instruments, catalog: Catalog, currency: str) -> None:
        self._inst = inst
        self._catalog = catalog
        self._currency = currency
        self.labels = Labels(catalog)
        self._rev = -1
        # the children, keyed by label values (bounded), dropped when the configuration
        # changes (a channel renamed, a model added): label values come from it
        #: (endpoint, model, channel id, status, code) -> the requests counter's child
        self._requests: dict[tuple[str, str, int | None, int, str], Any] = {}
        #: (endpoint, model, stream) -> the duration histogram's child
        self._streams: dict[tuple[str, str, bool], Any] = {}
        #: model -> (ttft, prompt tokens, completion tokens, cost, failovers) children
        self._by_model: dict[str, tuple[Any, Any, Any, Any, Any]] = {}

    def observe(self, ctx: RelayContext) -> None:
        """Count ``ctx``: its row is being recorded (the answer's last bytes are next)."""
        now = time.perf_counter()
        if self._catalog.revision != self._rev:
            self._rev = self._catalog.revision
            self._requests, self._streams, self._by_model = {}, {}, {}
        labels = self.labels
        model = labels.model(ctx.model)
        target = ctx.target
        channel_id = target.channel_id if target is not None else None
        status = ctx.logged_status
        code = labels.code(ctx.error_code)
        endpoint = ctx.endpoint
        key = (endpoint, model, channel_id, status, code)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self._inst.requests.labels(
                endpoint, model, labels.channel(channel_id), str(status), code
            )
        child.inc()
        skey = (endpoint, model, ctx.stream)
        hist = self._streams.get(skey)
        if hist is None:
            hist = self._streams[skey] = self._inst.duration.labels(
                endpoint, model, "true" if ctx.stream else "false"
            )
        hist.observe(now - ctx.started)
        per = self._by_model.get(model)
        if per is None:
            per = self._by_model[model] = self._model_children(model)
        first = ctx.first_byte_at
        if ctx.stream and first is not None:
            per[0].observe(first - ctx.started)
        usage = ctx.usage
        if usage is not None:
            if usage.prompt_tokens > 0:
                per[1].inc(usage.prompt_tokens)
            if usage.completion_tokens > 0:
                per[2].inc(usage.completion_tokens)
        if ctx.cost > 0:
            per[3].inc(ctx.cost)
        if ctx.attempts:
            self._attempts(ctx, per[4])

    def _model_children(self, model: str) -> tuple[Any, Any, Any, Any, Any]:
        inst = self._inst
        return (
            inst.ttft.labels(model),
            inst.tokens.labels(model, "prompt"),
            inst.tokens.labels(model, "completion"),
            inst.cost.labels(model, self._currency),
            inst.failovers.labels(model),
        )

    def _attempts(self, ctx: RelayContext, failovers: Any) -> None:
        """The attempt chain (kept only when an attempt failed)."""
        attempts = ctx.attempts or []
        for a in attempts:
            if a.error_code is not None:
                self._inst.failed_attempts.labels(
                    self.labels.channel(a.channel_id), self.labels.code(a.error_code)
                ).inc()
        if len(attempts) > 1:
            failovers.inc()
