"""prometheus_client's multiprocess mode as ``serve --workers N`` sets it up
(``metrics/multiproc.py``): the node's fresh private directory, the directories of dead
nodes removed, and the live gauges of a worker that died without saying so (SIGKILL)
dropped by the sweep while its counters still count. Workers are real processes here:
prometheus_client picks its value class when it is first imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from relaygate.metrics.config import MULTIPROC_ENV
from relaygate.metrics.multiproc import PARENT, prepare_dir, remove_dir, sweep_dead

WORKER = """
import os, sys
from relaygate.metrics.instruments import Instruments
inst = Instruments(None)
inst.workers.set(1)
inst.inflight.set(int(sys.argv[1]))
inst.shed.inc(2)
print(os.getpid(), flush=True)
"""


def dead_pid() -> int:
    """The pid of a process that ran and is gone."""
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    return int(out.stdout)


def run_worker(path: Path, inflight: int) -> int:
    env = {**os.environ, MULTIPROC_ENV: str(path)}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(inflight)], env=env, capture_output=True, check=True
    )
    return int(out.stdout)


def collect(path: Path) -> dict[str, float]:
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(path))  # type: ignore[no-untyped-call]
    return {
        s.name: s.value
        for f in text_string_to_metric_families(generate_latest(reg).decode())
        for s in f.samples
    }


def test_prepare_dir(tmp_path: Path) -> None:
    env: dict[str, str] = {MULTIPROC_ENV: "/somewhere/else"}
    assert prepare_dir(tmp_path, 1, env) is None and MULTIPROC_ENV not in env
    stale = tmp_path / PARENT / str(dead_pid())
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"x")
    live = tmp_path / PARENT / "1"  # pid 1 is always there: another node, kept
    live.mkdir()
    path = prepare_dir(tmp_path, 2, env)
    assert path == (tmp_path / PARENT / str(os.getpid())).resolve()
    assert env[MULTIPROC_ENV] == str(path)
    assert path.is_dir() and not any(path.iterdir())
    assert (path.stat().st_mode & 0o777) == 0o700
    assert not stale.exists() and live.exists()
    (path / "counter_5.db").write_bytes(b"old")
    assert prepare_dir(tmp_path, 2, env) == path and not any(path.iterdir())  # fresh again
    remove_dir(path)
    assert not path.exists()


def test_dead_workers_gauges_drop_out_their_counters_stay(tmp_path: Path) -> None:
    first = run_worker(tmp_path, 3)
    second = run_worker(tmp_path, 4)
    assert first != second
    before = collect(tmp_path)  # both exited without marking themselves dead
    assert before["relaygate_workers"] == 2 and before["relaygate_inflight_requests"] == 7
    assert before["relaygate_shed_requests_total"] == 4
    assert sweep_dead(str(tmp_path)) == 2
    after = collect(tmp_path)
    assert after.get("relaygate_workers", 0) == 0
    assert after.get("relaygate_inflight_requests", 0) == 0
    assert after["relaygate_shed_requests_total"] == 4
    assert after["relaygate_build_info"] == 1
    assert sweep_dead(str(tmp_path)) == 0
