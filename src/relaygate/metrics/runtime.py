"""A worker's metrics: the instruments, the per-request observer, the gauge sampler, the
readiness report, and the text a scrape gets (``GET /metrics``, docs/metrics.md)."""

from __future__ import annotations

import asyncio
import os

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from relaygate.context import RelayContext
from relaygate.metrics.config import MULTIPROC_ENV, MetricsConfig
from relaygate.metrics.instruments import Instruments
from relaygate.metrics.multiproc import mark_dead, sweep_dead
from relaygate.metrics.observe import RequestObserver
from relaygate.metrics.readiness import Readiness
from relaygate.metrics.sampler import Sampler
from relaygate.metrics.view import WorkerView

__all__ = ["CONTENT_TYPE", "Metrics"]

#: the classic text format every Prometheus reads (the names need no UTF-8 escaping)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _no_observation(ctx: RelayContext) -> None:
    return None


class Metrics:
    """Built once per worker after start-up (``app.py``). With ``RELAYGATE_METRICS=0``
    only the readiness report works: nothing is observed and ``/metrics`` is 404."""

    def __init__(self, cfg: MetricsConfig, view: WorkerView) -> None:
        self.config = cfg
        self.readiness = Readiness(view, cfg)
        self.enabled = cfg.enabled
        #: the directory of multiprocess mode (``serve --workers N``), else None
        self.multiproc_dir = os.environ.get(MULTIPROC_ENV) or None
        self.registry: CollectorRegistry | None = None
        self.instruments: Instruments | None = None
        self._sampler: Sampler | None = None
        #: the request path's one call (``relay/pipeline.py`` ``record``)
        self.observe = _no_observation
        if not cfg.enabled:
            return
        if self.multiproc_dir is None:
            self.registry = CollectorRegistry()
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        inst = Instruments(self.registry)
        self.instruments = inst
        observer = RequestObserver(inst, view.catalog, view.settings.currency)
        self.observe = observer.observe
        self._sampler = Sampler(
            inst,
            view,
            observer.labels,
            cfg.interval,
            removable=self.multiproc_dir is None,
            flush=observer.flush,
        )

    def start(self) -> None:
        if self._sampler is not None:
            self._sampler.start()

    async def render(self) -> bytes:
        """The exposition of this worker (one worker) or of every worker of the node."""
        if self._sampler is not None:
            self._sampler.sample()  # this worker's requests and gauges as of now
        if self.registry is not None:
            return generate_latest(self.registry)
        path = self.multiproc_dir
        assert path is not None
        # reads every worker's files: off the event loop
        return await asyncio.to_thread(_collect, path)

    async def close(self) -> None:
        if self._sampler is not None:
            await self._sampler.close()
        if self.multiproc_dir is not None and self.enabled:
            mark_dead(os.getpid(), self.multiproc_dir)


def _collect(path: str) -> bytes:
    sweep_dead(path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
