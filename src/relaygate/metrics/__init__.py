"""Prometheus metrics and the readiness report (docs/metrics.md).

``runtime.py`` ``Metrics`` is what a worker holds (``AppState.metrics``): ``observe(ctx)``
once per finished request, ``render()`` for ``GET /metrics``, ``readiness`` for
``/readyz``. ``instruments.py`` names every metric; ``observe.py`` and ``sampler.py`` fill
them; ``labels.py`` keeps label values bounded; ``multiproc.py`` is the several-worker mode;
``config.py`` reads ``RELAYGATE_METRICS*`` and ``RELAYGATE_READY_*``.
"""

from relaygate.metrics.config import MetricsConfig, metrics_config
from relaygate.metrics.runtime import CONTENT_TYPE, Metrics

__all__ = ["CONTENT_TYPE", "Metrics", "MetricsConfig", "metrics_config"]
