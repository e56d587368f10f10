"""Content safety on and off (issue 16, docs/benchmarks.md "Content safety on and off"):
relaygate instances that differ only in their content-safety setup, measured in alternating
rounds on one worker each, against the same mock upstreams.

    .venv/bin/python bench/safety_ab.py [--rounds 5] [--seconds 4] [--words 10000,100000]

Variants (each its own ``relaygate serve``, its own copy of the benchmark's data dir):

- ``off``: ``RELAYGATE_SAFETY=0`` (no list loaded, no filter installed);
- ``on-empty``: safety on, no list (the word-list filter is out of the chain);
- ``on-10k``, ``on-100k``, …: one ``block`` list of N random CJK and ASCII words (2–8
  characters, ``bench/safety_match.py``) that occur neither in the prompt nor in the mock's
  answer, so nothing is blocked and every prompt, answer and stream chunk pays the full scan
  and hold-back window;
- ``on-100k+mask`` (``--mask``): the largest list plus a ``mask`` list holding ``tok5``,
  which every answer of the mock holds: each answer is masked once and audited.

Per round, in an order that alternates (forward, then backward): ``wrk`` throughput at 64
connections and p50 at one connection, unary and streamed (the ``fast`` mock: no latency, 10
chunks); then, at one connection with a small client, the time to the first SSE ``data:``
bytes and to the first non-empty ``content`` delta, on the ``fast`` mock and on the ``paced``
mock (one chunk every 20 ms: there the hold-back window shows as time). Prints every round,
the medians and min–max over rounds, and the ratios to ``off``; ``--json`` saves them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).parent))

import loadgen
import systems
from procs import log
from safety_match import random_word

PROMPT = "Say hello."  # bench/clients.py chat_body's default
MASKED = "tok5"  # in every answer of bench/mock_upstream.py ("tok0 tok1 … tok9 ")


def clean_words(n: int, seed: int) -> list[str]:
    """``n`` distinct random words none of which the benchmark's texts hold."""
    from relaygate.safety.base import WordEntry
    from relaygate.safety.matcher import compile_policy

    rng = random.Random(seed)
    words: dict[str, None] = {}
    while len(words) < n:
        words[random_word(rng)] = None
    out = list(words)
    probe = compile_policy([WordEntry(w, 1, "l", "bench", "block") for w in out], 1, t2s=False)
    texts = [PROMPT, "".join(f"tok{i} " for i in range(50)), "gpt-4o-mini"]
    bad = {h.word for t in texts for h in probe.scan(t, "default")}
    return [w for w in out if w not in bad]


async def add_list(data_dir: Path, name: str, action: str, words: list[str]) -> None:
    """A word list written straight into a data dir's database, before the server starts."""
    from relaygate.services.safety import SafetyService
    from relaygate.settings import Settings
    from relaygate.storage.db import create_engine
    from relaygate.storage.safety import SafetyStore

    old = os.environ.get("RELAYGATE_DATA_DIR")
    os.environ["RELAYGATE_DATA_DIR"] = str(data_dir)
    try:
        settings = Settings.from_env()
    finally:
        if old is None:
            del os.environ["RELAYGATE_DATA_DIR"]
        else:
            os.environ["RELAYGATE_DATA_DIR"] = old
    engine = create_engine(settings.resolved_database_url())
    try:
        svc = SafetyService(SafetyStore(engine))
        await svc.create_list({"name": name, "category": "bench", "action": action, "words": words})
    finally:
        await engine.dispose()


async def first_bytes(url: str, key: str, model: str, n: int) -> dict[str, float]:
    """p50 over ``n`` streams at one connection: ms to the first ``data:`` bytes and to the
    first non-empty content delta (the connection is dropped then)."""
    body = orjson.dumps(
        {"model": model, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    )
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    data_ms: list[float] = []
    content_ms: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for _ in range(n):
            t0 = time.perf_counter()
            t_data = t_content = float("nan")
            resp = await http.post(url + "/chat/completions", data=body, headers=headers)
            try:
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status}: {await resp.text()}")
                async for line in resp.content:
                    if not line.startswith(b"data: "):
                        continue
                    if t_data != t_data:
                        t_data = (time.perf_counter() - t0) * 1000
                    if line.startswith(b"data: [DONE]"):
                        break
                    obj = orjson.loads(line[6:])
                    choices = obj.get("choices") or []
                    if choices and (choices[0].get("delta") or {}).get("content"):
                        t_content = (time.perf_counter() - t0) * 1000
                        break
            finally:
                resp.close()  # drop the connection: the gateway cancels the upstream call
            data_ms.append(t_data)
            content_ms.append(t_content)
    return {
        "data_p50_ms": statistics.median(data_ms),
        "content_p50_ms": statistics.median(content_ms),
    }


async def check_variant(s: systems.System, name: str, listed: str | None) -> None:
    """The filter is really on: a listed word in a prompt is refused; the mask variant masks."""
    url = s.urls["fast"] + "/chat/completions"
    headers = {"Authorization": f"Bearer {s.api_key}"}
    async with aiohttp.ClientSession() as http:
        if listed is not None:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": listed}]}
            async with http.post(url, json=body, headers=headers) as r:
                assert r.status == 402, (name, r.status, await r.text())
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}
        async with http.post(url, json=body, headers=headers) as r:
            text = (await r.json())["choices"][0]["message"]["content"]
            assert r.status == 200, (name, r.status)
            assert (MASKED in text) != name.endswith("+mask"), (name, text)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


async def main(a: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="relaygate-safety-ab-"))
    log(f"logs in {work}")
    mocks, urls = await systems.start_mocks(work)
    base = await asyncio.to_thread(systems.setup_relaygate, work, urls)
    sizes = [int(x) for x in a.words.split(",") if x]
    variants: list[tuple[str, tuple[Path, str], dict[str, str], str | None]] = [
        ("off", base, {"RELAYGATE_SAFETY": "0"}, None),
        ("on-empty", base, {}, None),
    ]
    biggest: tuple[Path, str] | None = None
    for n in sizes:
        words = await asyncio.to_thread(clean_words, n, a.seed)
        tdir = Path(tempfile.mkdtemp(prefix=f"template-{n}-", dir=work))
        shutil.copytree(base[0], tdir, dirs_exist_ok=True)
        await add_list(tdir, f"bench-{n}", "block", words)
        label = f"on-{n // 1000}k" if n % 1000 == 0 else f"on-{n}"
        variants.append((label, (tdir, base[1]), {}, words[0]))
        biggest = (tdir, base[1])
        log(f"{label}: {len(words)} words")
    if a.mask and biggest is not None:
        tdir = Path(tempfile.mkdtemp(prefix="template-mask-", dir=work))
        shutil.copytree(biggest[0], tdir, dirs_exist_ok=True)
        await add_list(tdir, "bench-mask", "mask", [MASKED])
        variants.append((variants[-1][0] + "+mask", (tdir, base[1]), {}, variants[-1][3]))
    servers: dict[str, systems.System] = {}
    res: dict[str, dict[str, list[float]]] = {}
    try:
        for name, tpl, env, listed in variants:
            servers[name] = await systems.start_relaygate(
                work, tpl, urls, 1, name=name, extra_env=env
            )
            await check_variant(servers[name], name, listed)
            res[name] = {}
        for s in servers.values():
            for stream in (False, True):
                loadgen.run_wrk(s.target("fast", stream), 64, 2.0)  # warm up
            await s.quiesce()
        names = list(servers)
        for r in range(a.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                s = servers[name]
                row: dict[str, float] = {}
                for stream, tag in ((False, "unary"), (True, "stream")):
                    w = loadgen.run_wrk(s.target("fast", stream), 64, a.seconds)
                    await s.quiesce()
                    one = loadgen.run_wrk(s.target("fast", stream), 1, a.seconds / 2)
                    await s.quiesce()
                    if w.errors or one.errors:
                        log(f"{name} {tag}: {w.errors + one.errors} errors")
                    row[f"{tag}_rps"] = w.rps
                    row[f"{tag}_p50_ms"] = one.p50_ms
                for profile in ("fast", "paced"):
                    fb = await first_bytes(
                        s.urls[profile], s.api_key or "", s.models[profile], a.ttft_requests
                    )
                    row[f"{profile}_data_ms"] = fb["data_p50_ms"]
                    row[f"{profile}_content_ms"] = fb["content_p50_ms"]
                    await s.quiesce()
                for k, v in row.items():
                    res[name].setdefault(k, []).append(v)
                print(
                    f"round {r + 1} {name:>14}: unary {row['unary_rps']:6.0f} req/s "
                    f"p50 {row['unary_p50_ms']:.3f} ms | stream {row['stream_rps']:6.0f} req/s "
                    f"p50 {row['stream_p50_ms']:.3f} ms | first content fast "
                    f"{row['fast_content_ms']:.2f} ms, paced {row['paced_content_ms']:.1f} ms",
                    flush=True,
                )
    finally:
        for s in servers.values():
            if s.proc is not None:
                s.proc.stop()
        for p in mocks.values():
            p.stop()
    print()
    keys = list(next(iter(res.values())))
    print("median (min–max) over rounds; ratio = median / median of off")
    for k in keys:
        ref = statistics.median(res["off"][k])
        cells = []
        for name in res:
            vals = res[name][k]
            fmt = "{:.0f}" if k.endswith("rps") else "{:.3f}"
            cells.append(
                f"{name}: {fmt.format(statistics.median(vals))} "
                f"({fmt.format(min(vals))}–{fmt.format(max(vals))}) "
                f"×{statistics.median(vals) / ref:.3f}"
            )
        print(f"{k:>18}: " + " | ".join(cells))
    if a.json:
        data = orjson.dumps({"args": vars(a), "rounds": res}, option=orjson.OPT_INDENT_2)
        await asyncio.to_thread(Path(a.json).write_bytes, data)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0, help="per wrk run at 64 connections")
    ap.add_argument("--words", default="10000,100000", help="list sizes, comma-separated")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ttft-requests", type=int, default=20, help="streams per first-byte p50")
    ap.add_argument("--no-mask", dest="mask", action="store_false", help="skip the mask variant")
    ap.add_argument("--json", default=None, help="save every round here")
    asyncio.run(main(ap.parse_args()))
