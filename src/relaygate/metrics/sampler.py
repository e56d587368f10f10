"""Gauges sampled from the worker every ``RELAYGATE_METRICS_INTERVAL`` seconds (and by
the worker a scrape reaches, just before it answers): queue depths, in-flight requests,
channel health and circuits; counts the worker keeps as plain integers (shed requests,
request-log rows lost) are carried into counters by their increase.

Sampling writes each worker's values into prometheus_client's per-process files in
multiprocess mode, so a scrape of any worker sees the others' last samples."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from relaygate.metrics.instruments import Instruments
from relaygate.metrics.labels import Labels
from relaygate.metrics.view import WorkerView

__all__ = ["CIRCUIT_STATES", "Sampler"]

log = logging.getLogger("relaygate.metrics")

#: ``Breakers.states()`` names -> the circuit gauge's value
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}


class Sampler:
    def __init__(
        self,
        inst: Instruments,
        view: WorkerView,
        labels: Labels,
        interval: float,
        *,
        removable: bool = True,
        flush: Callable[[], None] = lambda: None,
    ) -> None:
        self._inst = inst
        #: the per-request observations held since the last sample (observe.py)
        self._flush = flush
        #: series can be removed (not in multiprocess mode, where prometheus_client cannot:
        #: a deleted channel's series keep their last values until the node restarts)
        self._removable = removable
        self._view = view
        self._labels = labels
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._shed = 0
        self._dropped = 0
        self._channels: set[str] = set()

    def sample(self) -> None:
        """Flush the requests observed since the last time and set every sampled gauge
        (memory only, in multiprocess mode the worker's own files: no await)."""
        self._flush()
        v, inst = self._view, self._inst
        inst.workers.set(1)
        inst.inflight.set(v.inflight)
        log_writer = v.usage_log
        inst.log_backlog.set(log_writer.backlog if log_writer is not None else 0)
        if log_writer is not None and log_writer.dropped > self._dropped:
            inst.log_dropped.inc(log_writer.dropped - self._dropped)
            self._dropped = log_writer.dropped
        safety = v.safety
        inst.audit_backlog.set(safety.audit.backlog if safety is not None else 0)
        if v.shed > self._shed:
            inst.shed.inc(v.shed - self._shed)
            self._shed = v.shed
        self._sample_channels()

    def _sample_channels(self) -> None:
        v, inst = self._view, self._inst
        worst: dict[int, int] = {}
        for c in v.breakers.states():
            state = CIRCUIT_STATES.get(str(c["state"]), 0)
            cid = int(c["channel_id"])
            worst[cid] = max(worst.get(cid, 0), state)
        names = self._labels.channels()
        seen: set[str] = set()
        for ch in v.catalog.all_channels():
            name = names.get(ch.id, f"#{ch.id}")
            seen.add(name)
            circuit = worst.get(ch.id, 0)
            keys_ok = not ch.keys or bool(v.health.usable_keys(ch))
            healthy = ch.status == "enabled" and keys_ok and circuit < CIRCUIT_STATES["open"]
            inst.channel_healthy.labels(name).set(1 if healthy else 0)
            inst.circuit.labels(name).set(circuit)
        if self._removable:
            for gone in self._channels - seen:  # deleted or renamed since the last sample
                inst.channel_healthy.remove(gone)
                inst.circuit.remove(gone)
        self._channels = seen

    def start(self) -> None:
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.sample()
            except Exception:  # a sample must never stop the loop
                log.warning("sampling the metrics failed", exc_info=True)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._flush()  # the last requests of a worker that stops
