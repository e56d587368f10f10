"""One observation per finished request, at the point its request-log row is recorded
(``relay/pipeline.py`` ``record``): never per chunk, no lock held across an await.

The request path only adds to plain dicts (a few look-ups and additions, ~2 µs); the
prometheus_client values are updated by :meth:`RequestObserver.flush`, which the sampler
runs every ``RELAYGATE_METRICS_INTERVAL`` seconds, a scrape runs before it answers, and
the worker runs when it stops. A library update costs ~1 µs per value in one process and
~3.5 µs in multiprocess mode (a locked write to a memory-mapped file), six to eight of
them per request; flushed, that is paid once per interval and label set instead. The
label children are cached by label value (bounded; dropped when the configuration
changes: label values come from it)."""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import Any

from relaygate.catalog import Catalog
from relaygate.context import RelayContext
from relaygate.metrics.instruments import Instruments
from relaygate.metrics.labels import Labels

__all__ = ["RequestObserver"]


class _Hist:
    """Observations of one histogram child not yet flushed: the sum and the count per
    bucket (``bounds`` are the child's upper bounds, ``+Inf`` last)."""

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds: list[float] = list(child._upper_bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def add(self, value: float) -> None:
        self.total += value
        self.counts[bisect_left(self.bounds, value)] += 1

    def flush(self) -> None:
        """Into the child exactly as ``observe`` would have put them (its ``_sum`` and
        per-bucket values; the test suite checks this equals ``observe``)."""
        counts = self.counts
        if not any(counts):
            return
        child = self.child
        child._sum.inc(self.total)
        for i, n in enumerate(counts):
            if n:
                child._buckets[i].inc(n)
                counts[i] = 0
        self.total = 0.0


class _Per:
    """The children of one model: first-token histogram, tokens, cost, failovers."""

    __slots__ = ("completion", "cost", "failovers", "prompt", "ttft")

    def __init__(self, inst: Instruments, model: str, currency: str) -> None:
        self.ttft = _Hist(inst.ttft.labels(model))
        self.prompt = inst.tokens.labels(model, "prompt")
        self.completion = inst.tokens.labels(model, "completion")
        self.cost = inst.cost.labels(model, currency)
        self.failovers = inst.failovers.labels(model)


class RequestObserver:
    __slots__ = (
        "_by_model",
        "_catalog",
        "_currency",
        "_hists",
        "_incs",
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
        #: (endpoint, model, channel id, status, code) -> the requests counter's child
        self._requests: dict[tuple[str, str, int | None, int, str], Any] = {}
        #: (endpoint, model, stream) -> the duration histogram's pending observations
        self._streams: dict[tuple[str, str, bool], _Hist] = {}
        self._by_model: dict[str, _Per] = {}
        #: what the request path added since the last flush
        self._incs: dict[Any, float] = {}  # counter child -> amount
        self._hists: set[_Hist] = set()  # histograms holding observations

    def observe(self, ctx: RelayContext) -> None:
        """Count ``ctx``: its row is being recorded (the answer's last bytes are next)."""
        now = time.perf_counter()
        if self._catalog.revision != self._rev:
            self._new_revision()
        labels = self.labels
        incs = self._incs
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
        incs[child] = incs.get(child, 0) + 1
        skey = (endpoint, model, ctx.stream)
        hist = self._streams.get(skey)
        if hist is None:
            hist = self._streams[skey] = _Hist(
                self._inst.duration.labels(endpoint, model, "true" if ctx.stream else "false")
            )
        hist.add(now - ctx.started)
        self._hists.add(hist)
        per = self._by_model.get(model)
        if per is None:
            per = self._by_model[model] = _Per(self._inst, model, self._currency)
        first = ctx.first_byte_at
        if ctx.stream and first is not None:
            per.ttft.add(first - ctx.started)
            self._hists.add(per.ttft)
        usage = ctx.usage
        if usage is not None:
            if usage.prompt_tokens > 0:
                incs[per.prompt] = incs.get(per.prompt, 0) + usage.prompt_tokens
            if usage.completion_tokens > 0:
                incs[per.completion] = incs.get(per.completion, 0) + usage.completion_tokens
        if ctx.cost > 0:
            incs[per.cost] = incs.get(per.cost, 0) + ctx.cost
        if ctx.attempts:
            self._attempts(ctx, per)

    def _attempts(self, ctx: RelayContext, per: _Per) -> None:
        """The attempt chain (kept only when an attempt failed)."""
        attempts = ctx.attempts or []
        incs = self._incs
        for a in attempts:
            if a.error_code is not None:
                child = self._inst.failed_attempts.labels(
                    self.labels.channel(a.channel_id), self.labels.code(a.error_code)
                )
                incs[child] = incs.get(child, 0) + 1
        if len(attempts) > 1:
            incs[per.failovers] = incs.get(per.failovers, 0) + 1

    def _new_revision(self) -> None:
        """The configuration changed: what is pending goes out under the old labels, the
        children are looked up again."""
        self.flush()
        self._rev = self._catalog.revision
        self._requests, self._streams, self._by_model = {}, {}, {}

    def flush(self) -> None:
        """Move what the request path added into the metrics (no await: atomic for the
        event loop)."""
        incs, self._incs = self._incs, {}
        for child, amount in incs.items():
            child.inc(amount)
        hists, self._hists = self._hists, set()
        for hist in hists:
            hist.flush()
