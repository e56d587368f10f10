"""One observation per finished request (``metrics/observe.py``) on a real registry: what
each metric counts for a unary answer, a stream, a failover, a refused request; label
children cached by label value, so a flood of made-up model names adds one series and no
memory; the sampler's gauges from real breakers and channel health."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from metrics_kit import channel, worker
from prometheus_client import CollectorRegistry

from relaygate.context import Attempt, RelayContext
from relaygate.metrics.instruments import DURATION_BUCKETS, Instruments
from relaygate.metrics.observe import RequestObserver, _Hist
from relaygate.metrics.sampler import Sampler
from relaygate.providers.base import Target, Usage


def target(channel_id: int, model: str) -> Target:
    return Target(channel_id, "openai_compat", "openai", "http://127.0.0.1:9/v1", "k", model)


def ctx(model: str | None, **fields: object) -> RelayContext:
    c = RelayContext("req", "chat")
    c.model = model
    for name, value in fields.items():
        setattr(c, name, value)
    return c


async def test_what_one_request_counts(tmp_path: Path) -> None:
    async with worker(tmp_path) as w:
        ch = await w.admin.create_channel(channel("up", ["gpt-x"]))
        other = await w.admin.create_channel(channel("backup", ["gpt-x"]))
        await w.catalog.load()
        reg = CollectorRegistry()
        obs = RequestObserver(Instruments(reg), w.catalog, "CNY")
        began = time.perf_counter() - 0.2
        unary = ctx("gpt-x", target=target(ch.id, "gpt-x"), usage=Usage(10, 5, 15), cost=1234)
        unary.started = began
        obs.observe(unary)
        stream = ctx("gpt-x", target=target(ch.id, "gpt-x"), usage=Usage(7, 3, 10), stream=True)
        stream.started, stream.first_byte_at, stream.cost = began, began + 0.05, 66
        obs.observe(stream)
        failover = ctx("gpt-x", target=target(other.id, "gpt-x"), usage=Usage(1, 1, 2))
        failover.attempts = [
            Attempt(ch.id, "gpt-x", 500, 3, error_code="upstream_error"),
            Attempt(other.id, "gpt-x", 200, 4),
        ]
        obs.observe(failover)
        refused = ctx("made-up-model", status=403, error_code="model_not_found")
        obs.observe(refused)
        gone = ctx("gpt-x", target=target(ch.id, "gpt-x"), client_disconnected=True)
        obs.observe(gone)
        assert reg.get_sample_value(
            "relaygate_tokens_total", {"model": "gpt-x", "kind": "prompt"}
        ) in (
            None,
            0,
        )  # held until the flush (the sampler's tick, a scrape, the worker's stop)
        obs.flush()

        def v(name: str, **labels: str) -> float:
            got = reg.get_sample_value(name, labels)
            return 0.0 if got is None else got

        ok = {"endpoint": "chat", "model": "gpt-x", "status": "200", "code": ""}
        assert v("relaygate_requests_total", **ok, channel="up") == 2
        assert v("relaygate_requests_total", **ok, channel="backup") == 1
        assert v("relaygate_requests_total", **{**ok, "status": "499"}, channel="up") == 1
        assert (
            v(
                "relaygate_requests_total",
                endpoint="chat",
                model="unknown",
                channel="",
                status="403",
                code="model_not_found",
            )
            == 1
        )
        dur = "relaygate_request_duration_seconds"
        assert v(dur + "_count", endpoint="chat", model="gpt-x", stream="false") == 3
        assert v(dur + "_count", endpoint="chat", model="gpt-x", stream="true") == 1
        assert v(dur + "_sum", endpoint="chat", model="gpt-x", stream="true") >= 0.2
        # 0.2 s falls in the 0.25 bucket, not the 0.1 one
        assert v(dur + "_bucket", endpoint="chat", model="gpt-x", stream="true", le="0.1") == 0
        assert v(dur + "_bucket", endpoint="chat", model="gpt-x", stream="true", le="0.25") == 1
        ttft = "relaygate_time_to_first_token_seconds"
        assert v(ttft + "_count", model="gpt-x") == 1  # streams only
        assert abs(v(ttft + "_sum", model="gpt-x") - 0.05) < 1e-9
        assert v("relaygate_tokens_total", model="gpt-x", kind="prompt") == 18
        assert v("relaygate_tokens_total", model="gpt-x", kind="completion") == 9
        assert v("relaygate_cost_units_total", model="gpt-x", currency="CNY") == 1300
        assert (
            v("relaygate_upstream_failed_attempts_total", channel="up", code="upstream_error") == 1
        )
        assert v("relaygate_failovers_total", model="gpt-x") == 1


async def test_made_up_models_add_one_series_and_no_memory(tmp_path: Path) -> None:
    async with worker(tmp_path) as w:
        await w.admin.create_channel(channel("up", ["gpt-x"]))
        await w.catalog.load()
        reg = CollectorRegistry()
        obs = RequestObserver(Instruments(reg), w.catalog, "CNY")
        for i in range(5000):
            obs.observe(ctx(f"attacker-{i}", status=403, error_code="model_not_found"))
        obs.flush()
        series = [
            s
            for m in reg.collect()
            if m.name == "relaygate_requests"
            for s in m.samples
            if s.name == "relaygate_requests_total"
        ]
        assert len(series) == 1 and series[0].value == 5000
        assert len(obs._requests) == 1 and len(obs._by_model) == 1 and len(obs._streams) == 1


async def test_observation_is_cheap(tmp_path: Path) -> None:
    """A budget far above what it costs (a few µs), to catch a slow path, not to time."""
    async with worker(tmp_path) as w:
        ch = await w.admin.create_channel(channel("up", ["gpt-x"]))
        await w.catalog.load()
        obs = RequestObserver(Instruments(CollectorRegistry()), w.catalog, "CNY")
        c = ctx("gpt-x", target=target(ch.id, "gpt-x"), usage=Usage(10, 5, 15), cost=10)
        c.stream, c.first_byte_at = True, c.started
        obs.observe(c)
        n = 20_000
        began = time.perf_counter()
        for _ in range(n):
            obs.observe(c)
        per = (time.perf_counter() - began) / n
        assert per < 200e-6, per


def test_flushed_histograms_equal_observed_ones() -> None:
    """The flush writes the library's histogram values itself: it must give what
    ``observe`` gives, bucket by bucket (boundary values included)."""
    direct, flushed = CollectorRegistry(), CollectorRegistry()
    h1 = Instruments(direct).duration.labels("chat", "m", "false")
    h2 = _Hist(Instruments(flushed).duration.labels("chat", "m", "false"))
    rnd = random.Random(7)
    values = [*DURATION_BUCKETS, 0.0, 1e-9, 299.999, 300.0001, 1e6]
    values += [rnd.uniform(0, 400) for _ in range(500)]
    for x in values:
        h1.observe(x)
        h2.add(x)
    h2.flush()
    h2.flush()  # nothing twice

    def samples(reg: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("le", "")): s.value
            for m in reg.collect()
            if m.name == "relaygate_request_duration_seconds"
            for s in m.samples
            if not s.name.endswith("_created")
        }

    got, want = samples(flushed), samples(direct)
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12), k


async def test_sampler_reads_circuits_keys_and_queues(tmp_path: Path) -> None:
    async with worker(tmp_path) as w:
        a = await w.admin.create_channel(channel("a", ["gpt-x"]))
        b = await w.admin.create_channel(channel("b", ["gpt-x"], keys=("sk-only",)))
        c = await w.admin.create_channel(channel("c", ["gpt-x"]))
        await w.admin.update_channel(c.id, {"status": "disabled"})
        await w.catalog.load()
        reg = CollectorRegistry()
        inst = Instruments(reg)
        obs = RequestObserver(inst, w.catalog, "CNY")
        sampler = Sampler(inst, w, obs.labels, 60.0)
        for _ in range(w.settings.breaker_failures):
            w.breakers.failure(a.id, "gpt-x", channel_wide=True)
        await w.health.rejected.add(b.id, "sk-only")
        w.inflight, w.shed = 3, 5
        sampler.sample()

        def v(name: str, **labels: str) -> float | None:
            return reg.get_sample_value(name, labels)

        assert v("relaygate_channel_circuit_state", channel="a") == 2
        assert v("relaygate_channel_healthy", channel="a") == 0
        assert v("relaygate_channel_healthy", channel="b") == 0  # its only key is refused
        assert v("relaygate_channel_circuit_state", channel="b") == 0
        assert v("relaygate_channel_healthy", channel="c") == 0  # disabled
        assert v("relaygate_inflight_requests") == 3
        assert v("relaygate_shed_requests_total") == 5
        w.shed = 7
        sampler.sample()
        assert v("relaygate_shed_requests_total") == 7  # the increase, not the total again
        assert v("relaygate_request_log_backlog_rows") == 0
        assert v("relaygate_safety_audit_backlog_rows") == 0
        assert v("relaygate_workers") == 1
        # a deleted channel's series go with it
        await w.repo.channels.delete(c.id)
        await w.catalog.load()
        sampler.sample()
        assert v("relaygate_channel_healthy", channel="c") is None
        assert v("relaygate_channel_healthy", channel="a") == 0
