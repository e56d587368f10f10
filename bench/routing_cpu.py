"""Routing CPU per request (issue 11: "routing among three candidates with breakers on adds
no more than 20 µs of CPU per request"; figures in docs/performance.md).

Builds the routing objects the way ``app.py`` does, over a real ``Repository`` on a
temporary SQLite database: a ``Catalog`` (loaded from the database), a ``Router`` whose
``usable_keys`` is a real ``RejectedKeys`` (as ``ChannelHealth`` wires it), and ``Breakers``
on the in-process shared state. One model is served by three channels with two upstream
keys each, in one of two layouts:

* ``one tier``: one priority, weights 3 / 2 / 1 (weighted random order);
* ``two tiers``: two channels at priority 10 (weights 2 / 1), one at priority 0.

Circuits: ``healthy`` (no circuit tracks anything, the common case: ``breakers.open`` is
empty) or ``breakers on`` (one channel's circuit open for the model, another's tracking
a failure, so every request goes through ``admit``).

One timed request is what the relay does for routing (``relay/pipeline.py``,
``relay/attempt.py``): ``affinity_key(...)`` from the headers and body, then
``router.candidates(model, key, group, affinity)``, then for candidates in order
``breakers.admit`` until one is admitted (only when ``breakers.open`` is non-empty, as the
attempt loop does), ``router.policy`` and ``router.target`` for it, and
``breakers.success`` (only when ``breakers.tracking``). Timed with
``time.process_time_ns`` over ``--iterations`` requests, ``--rounds`` times; the table gives
the best and the median round, in µs of CPU per request, with and without an affinity key
(a ``X-Session-Id`` header).

    .venv/bin/python bench/routing_cpu.py
    .venv/bin/python bench/routing_cpu.py --iterations 200000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relaygate.catalog import Catalog
from relaygate.routing.breakers import OPEN, Breakers
from relaygate.routing.order import affinity_key
from relaygate.routing.rejected import RejectedKeys
from relaygate.routing.router import Router
from relaygate.services.admin import AdminService
from relaygate.settings import Settings
from relaygate.sharedstate.memory import InProcessState
from relaygate.storage.crypto import Secrets
from relaygate.storage.db import create_engine, migrate
from relaygate.storage.records import KeyRecord
from relaygate.storage.repo import Repository

MODEL = "bench-model"
LAYOUTS: dict[str, list[tuple[int, int]]] = {  # (priority, weight) of the three channels
    "one tier": [(0, 3), (0, 2), (0, 1)],
    "two tiers": [(10, 2), (10, 1), (0, 1)],
}


async def build(
    workdir: Path, layout: list[tuple[int, int]], tag: str
) -> tuple[Catalog, KeyRecord, list[int], Any]:
    """A database with a user, a key and three channels for MODEL; its loaded catalog."""
    engine = create_engine(f"sqlite+aiosqlite:///{workdir / f'{tag}.db'}")
    await migrate(engine)
    secrets = Secrets("bench-secret")
    repo = Repository(engine, secrets)
    svc = AdminService(repo)
    user = await svc.create_user({"username": "bench"})
    _, plain = await svc.create_key({"user_id": user.id, "name": "bench"})
    ids = []
    for i, (priority, weight) in enumerate(layout):
        ch = await svc.create_channel(
            {
                "name": f"ch-{i}",
                "provider": "openai_compat",
                "base_url": "http://127.0.0.1:9/v1",
                "keys": [f"sk-{i}-a", f"sk-{i}-b"],
                "models": [MODEL],
                "priority": priority,
                "weight": weight,
                "force": True,
            }
        )
        ids.append(ch.id)
    catalog = Catalog(repo)
    await catalog.load()
    key, _ = catalog.authenticate(secrets.hash_key(plain))
    return catalog, key, ids, engine


def _checker(breakers: Breakers, ids: list[int], circuits: str) -> Callable[[], None]:
    def check() -> None:
        states = {(s["channel_id"], s["state"]) for s in breakers.states()}
        if circuits == "breakers on":
            assert states == {(ids[0], "open"), (ids[1], "closed")}, states
        else:
            assert not states and not breakers.open, states

    return check


def request_fn(
    router: Router,
    breakers: Breakers,
    key: KeyRecord,
    headers: dict[bytes, bytes],
    body: dict[str, Any],
) -> Callable[[], None]:
    """One request's routing work, as the relay does it."""
    mode = router.affinity
    candidates = router.candidates
    target = router.target
    policy = router.policy
    admit = breakers.admit

    def one() -> None:
        affinity = affinity_key(mode, headers, body, key.id)
        cands = candidates(MODEL, key, "default", affinity)
        for ch, model in cands:
            if breakers.open and admit(ch.id, model) == OPEN:
                continue
            policy(ch)
            target(ch, model, affinity)
            if breakers.tracking:
                breakers.success(ch.id, model)
            return
        raise AssertionError("no candidate admitted")

    return one


def run_once(fn: Callable[[], None], iterations: int) -> float:
    """µs of CPU per call over ``iterations`` calls."""
    t0 = time.process_time_ns()
    for _ in range(iterations):
        fn()
    return (time.process_time_ns() - t0) / iterations / 1000


def timed(fn: Callable[[], None], iterations: int, rounds: int) -> tuple[float, float]:
    """(best, median) µs of CPU per call over ``rounds`` rounds of ``iterations`` calls."""
    per = [run_once(fn, iterations) for _ in range(rounds)]
    return min(per), statistics.median(per)


def loop_floor(iterations: int) -> float:
    """µs per iteration of an empty call in the same loop (the harness)."""

    def nothing() -> None:
        return None

    return timed(nothing, iterations, 3)[0]


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    # the open circuit stays open for the whole run (no probe may close it), and the
    # tracking one keeps its failure (a window without failures would forget it)
    day = 86_400.0
    settings = dataclasses.replace(
        Settings.from_env(), breaker_cooldown=day, breaker_max_cooldown=day, breaker_window=day
    )
    logging.getLogger("relaygate.routing").setLevel(logging.ERROR)  # "circuit opened"
    workdir = Path(tempfile.mkdtemp(prefix="relaygate-routing-cpu-"))
    cases: list[tuple[str, str, str, Callable[[], None], Callable[[], None]]] = []
    built = []
    for tag, layout in LAYOUTS.items():
        catalog, key, ids, engine = await build(workdir, layout, tag.replace(" ", "-"))
        built.append((catalog, engine))
        for circuits in ("healthy", "breakers on"):
            shared = InProcessState()
            router = Router(catalog, "conversation")
            router.usable_keys = RejectedKeys(catalog, shared).usable_keys
            breakers = Breakers(shared, settings)
            if circuits == "breakers on":
                for _ in range(settings.breaker_failures):  # a run of failures: open
                    breakers.failure(ids[0], MODEL)
                breakers.failure(ids[1], MODEL)  # tracked, still closed
                assert breakers.open and breakers.tracking
            check = _checker(breakers, ids, circuits)
            check()
            for label, headers in (
                ("no", {}),
                ("yes", {b"x-session-id": b"conversation-4f1c2a"}),
            ):
                fn = request_fn(router, breakers, key, headers, {"model": MODEL})
                cases.append((tag, circuits, label, fn, check))
    # rounds interleave the cases (A B C … A B C …): drift on a shared VM hits them alike
    per: list[list[float]] = [[] for _ in cases]
    for _, _, _, fn, _ in cases:
        run_once(fn, min(args.iterations, 20_000))  # warm-up
    gc.collect()
    for r in range(args.rounds):
        for i, (_, _, _, fn, check) in enumerate(cases):
            per[i].append(run_once(fn, args.iterations))
            check()  # the circuits are as set up (open stays open, nothing closed)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    rows = [
        (tag, circuits, label, min(p), statistics.median(p))
        for (tag, circuits, label, _, _), p in zip(cases, per, strict=True)
    ]
    for catalog, engine in built:
        await catalog.stop()
        await engine.dispose()
    floor = loop_floor(args.iterations)
    print("| layout (3 channels, 2 keys each) | circuits | affinity key | best µs | median µs |")
    print("|---|---|---|---|---|")
    for tag, circuits, label, best, median in rows:
        print(f"| {tag} | {circuits} | {label} | {best:.2f} | {median:.2f} |")
    print()
    print(
        f"CPU per request (`time.process_time_ns`), {args.iterations:,} requests × "
        f"{args.rounds} rounds; the harness's own loop and call cost {floor:.2f} µs "
        "(included above). Python " + sys.version.split()[0]
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
