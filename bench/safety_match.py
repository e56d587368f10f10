"""The content-safety matcher's speed (issue 16, docs/safety.md): 100,000 random listed
words (CJK and ASCII, 2–8 characters), then

- compile time (normalising the words and building the automaton), with and without
  traditional → simplified;
- one scan of a 64-character window (what a stream chunk costs) — a clean window, and one
  holding a listed word (the index map is built then);
- one scan of a 200,000-character text;
- the stream guard over a 200,000-character answer fed in 4-character chunks (per chunk).

    .venv/bin/python bench/safety_match.py [--words 100000] [--seed 1]

Prints medians of repeated runs (the first process-wide table build is reported apart).
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import time

from relaygate.safety.base import WordEntry
from relaygate.safety.matcher import compile_policy
from relaygate.safety.normalize import get_normalizer
from relaygate.safety.stream_guard import FieldGuard

CJK = [chr(cp) for cp in range(0x4E00, 0x9FA5)]
ASCII = string.ascii_lowercase


def random_word(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return "".join(rng.choice(CJK) for _ in range(rng.randint(2, 6)))
    return "".join(rng.choice(ASCII) for _ in range(rng.randint(4, 8)))


def random_text(rng: random.Random, n: int) -> str:
    """Mostly CJK prose with punctuation, some ASCII words and spaces."""
    common = CJK[:3000]  # a smaller alphabet, like real text
    out: list[str] = []
    size = 0
    while size < n:
        r = rng.random()
        if r < 0.8:
            piece = "".join(rng.choice(common) for _ in range(rng.randint(3, 12)))
            piece += rng.choice("，。、；！？")
        else:
            piece = " " + "".join(rng.choice(ASCII) for _ in range(rng.randint(2, 9))) + " "
        out.append(piece)
        size += len(piece)
    return "".join(out)[:n]


def timed(fn: object, repeat: int, number: int) -> float:
    """Median seconds per call."""
    assert callable(fn)
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - t) / number)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--words", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    t = time.perf_counter()
    get_normalizer(False)
    print(f"normalisation table, first build:     {time.perf_counter() - t:8.3f} s")
    t = time.perf_counter()
    get_normalizer(True)
    print(f"t2s table (OpenCC), first build:       {time.perf_counter() - t:8.3f} s")

    words = {random_word(rng) for _ in range(args.words)}
    entries = [
        WordEntry(w, 1 + i % 5, f"list{i % 5}", "cat", ("block", "mask", "log")[i % 3])
        for i, w in enumerate(sorted(words))
    ]
    for t2s in (False, True):
        t = time.perf_counter()
        policy = compile_policy(entries, 1, t2s=t2s)
        label = "compile" + (" (t2s)" if t2s else "")
        print(f"{label:<14} {len(entries):>7} words:        {time.perf_counter() - t:8.3f} s")
    policy = compile_policy(entries, 1, t2s=False)
    print(f"max_len (hold-back window + 1):        {policy.max_len:8d} chars")

    text = random_text(rng, 200_000)
    clean = next(
        text[i : i + 64] for i in range(0, len(text), 64) if not policy.scan(text[i : i + 64], "g")
    )
    word = sorted(words)[0]
    dirty = clean[:30] + word + clean[30 : 64 - len(word)]
    norm = policy.normalizer

    def report(label: str, value: float, unit: str) -> None:
        print(f"{label:<38} {value:8.2f} {unit}")

    report("normalise 64 chars:", timed(lambda: norm(clean), 5, 20000) * 1e6, "µs")
    report(
        "scan 64-char window, clean:", timed(lambda: policy.scan(clean, "g"), 5, 20000) * 1e6, "µs"
    )
    report(
        "scan 64-char window, one hit:", timed(lambda: policy.scan(dirty, "g"), 5, 5000) * 1e6, "µs"
    )
    hits = policy.scan(text, "g")
    full = timed(lambda: policy.scan(text, "g"), 3, 3)
    report(f"scan 200,000 chars ({len(hits)} hits):", full * 1e3, "ms")
    clean_text = text
    for h in sorted(hits, key=lambda h: -h.start):  # a clean answer: the per-chunk floor
        clean_text = clean_text[: h.start] + clean_text[h.end :]
    masking = compile_policy(
        [WordEntry(e.word, 1, "l", "c", "mask") for e in entries], 1, t2s=False
    )

    def stream(p: object, answer: str) -> int:
        assert isinstance(p, type(policy))
        guard = FieldGuard(p, "g", "***")
        n = 0
        for i in range(0, len(answer), 4):
            guard.feed(answer[i : i + 4])
            n += 1
        guard.flush()
        return n

    for label, pol, answer in (("clean", policy, clean_text), ("masking", masking, text)):
        chunks = len(answer) // 4
        per = timed(lambda p=pol, a=answer: stream(p, a), 3, 1) / chunks  # type: ignore[misc]
        report(f"stream guard, 4-char chunks, {label}:", per * 1e6, "µs per chunk")
    filter_chunks(policy, clean_text[:40_000], report)


def filter_chunks(policy: object, answer: str, report: object) -> None:
    """The whole chunk hook as the relay runs it: parse the payload, feed the window,
    re-encode the chunk (``FilterChain.on_chunks``), against no filter at all."""
    import orjson

    from relaygate.context import RelayContext
    from relaygate.filters.safety import SafetyFilter
    from relaygate.safety.base import SafetySettings
    from relaygate.stages import FilterChain

    class Holder:
        def __init__(self, p: object) -> None:
            self.policy = p

    class Audit:
        def record(self, *args: object) -> None:
            return None

    assert callable(report)
    payloads = [
        orjson.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": answer[i : i + 4]}}],
            }
        )
        for i in range(0, len(answer), 4)
    ]
    on = FilterChain([SafetyFilter(Holder(policy), Audit(), SafetySettings())])  # type: ignore[arg-type]

    def run() -> None:
        ctx = RelayContext("r", "chat")
        for p in payloads:
            on.on_chunks(ctx, [p])
        on.on_end(ctx)

    per = timed(run, 3, 1) / len(payloads)
    report("filter hook (parse+window+encode):", per * 1e6, "µs per chunk")


if __name__ == "__main__":
    main()
