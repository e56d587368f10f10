"""prometheus_client's multiprocess mode for ``relaygate serve --workers N`` (N > 1).

A scrape reaches one worker of the node; each worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and the worker a scrape reaches reads them all
(:mod:`relaygate.metrics.exposition`). ``serve`` gives the node a fresh private directory
(:func:`prepare_dir`) before the workers start, and removes it when it stops (:func:`remove_dir`).
Gauges of workers that are gone drop out: a worker marks itself dead when it stops, and
the worker a scrape reaches marks every worker whose process no longer exists
(:func:`sweep_dead`; a worker killed with SIGKILL never stopped)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import MutableMapping
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

from relaygate.metrics.config import MULTIPROC_ENV

__all__ = ["mark_dead", "prepare_dir", "remove_dir", "sweep_dead"]

_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")
#: the parent of every node's directory, under the data directory
PARENT = "metrics-multiproc"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def prepare_dir(
    data_dir: Path, workers: int, env: MutableMapping[str, str] | None = None
) -> Path | None:
    """For ``workers`` > 1: a fresh directory ``<data dir>/metrics-multiproc/<pid>`` (this
    process's, mode 0700), set as ``PROMETHEUS_MULTIPROC_DIR`` for the workers; the
    directories of nodes that are gone are removed. One worker: the variable is unset
    (the worker keeps a plain registry) and None is returned."""
    env = os.environ if env is None else env
    if workers <= 1:
        env.pop(MULTIPROC_ENV, None)
        return None
    parent = data_dir.resolve() / PARENT
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.iterdir():  # left by a node that was killed
        if old.name.isdigit() and not _alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    path = parent / str(os.getpid())
    shutil.rmtree(path, ignore_errors=True)  # a previous process with this pid
    path.mkdir(mode=0o700)
    env[MULTIPROC_ENV] = str(path)
    return path


def remove_dir(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def mark_dead(pid: int, path: str) -> None:
    """Drop ``pid``'s live gauges (its counters and histograms stay: they only add up)."""
    with contextlib.suppress(OSError):
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def sweep_dead(path: str) -> int:
    """Mark every worker whose process is gone; how many were."""
    try:
        names = os.listdir(path)
    except OSError:
        return 0
    pids = {int(m.group(1)) for n in names if (m := _LIVE_FILE.fullmatch(n))}
    dead = [pid for pid in pids if not _alive(pid)]
    for pid in dead:
        mark_dead(pid, path)
    return len(dead)
