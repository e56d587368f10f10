"""CPU of one streamed chunk in relaygate's own code, without the network: the paced
benchmark mock's stream (role, 50 tokens, finish, usage, ``[DONE]``) through
``SSEDecoder``, the ``openai_compat`` stream translator and the billing ``StreamMeter``,
as ``relay/chat.py`` does (docs/performance.md, "Paced streams: where the per-chunk CPU
went"). Each stage is timed alone (best of ``--rounds``) and then all three together.
Compare revisions by pointing ``PYTHONPATH`` at another ``src/``:

    .venv/bin/python bench/chunk_path.py
    PYTHONPATH=/tmp/old_ab/src .venv/bin/python bench/chunk_path.py
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import mock_upstream
from relaygate.billing.tokens import StreamMeter, count_text
from relaygate.providers.base import Target
from relaygate.providers.openai_compat import OpenAICompatAdaptor
from relaygate.relay.sse import SSEDecoder


def best(rounds: int, streams: int, events: int, one: Callable[[], None]) -> float:
    """Best µs per event over ``rounds`` of ``streams`` calls of ``one`` (one stream)."""
    out = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(streams):
            one()
        out = min(out, (time.perf_counter() - began) / streams / events * 1e6)
    return out


def main(streams: int, rounds: int, tokens: int, profile: str) -> None:
    frames = mock_upstream.build_stream_events("gpt-4o-mini", tokens, 12, True)
    raw = [f[f.index(b"\r\n") + 2 : -2] for f in frames]  # without the HTTP chunk framing
    events = [ev for chunk in raw for ev in SSEDecoder().feed(chunk)]
    adaptor = OpenAICompatAdaptor()
    target = Target(1, "openai_compat", profile, "http://127.0.0.1", "k", "gpt-4o-mini")
    payloads: list[bytes] = []
    tr = adaptor.chat_stream(target, True)
    for ev, data in events:
        payloads.extend(tr.feed(ev, data))
    payloads.extend(tr.finish())
    count_text("warm up the tokenizer")
    n = len(raw)

    def decode() -> None:
        dec = SSEDecoder()
        for chunk in raw:
            dec.feed(chunk)

    def translate() -> None:
        tr = adaptor.chat_stream(target, True)
        for ev, data in events:
            tr.feed(ev, data)
        tr.finish()

    def meter() -> None:
        m = StreamMeter()
        for p in payloads:
            m.feed(p)

    def together() -> None:
        dec = SSEDecoder()
        tr = adaptor.chat_stream(target, True)
        m = StreamMeter()
        for chunk in raw:
            for ev, data in dec.feed(chunk):
                for p in tr.feed(ev, data):
                    m.feed(p)
        for p in tr.finish():
            m.feed(p)

    print(f"µs per event ({n} events per stream, profile {profile}, best of {rounds}):")
    for name, fn in (
        ("SSEDecoder.feed", decode),
        ("translator feed+finish", translate),
        ("StreamMeter.feed", meter),
        ("all three", together),
    ):
        print(f"  {name:24s} {best(rounds, streams, n, fn):6.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--streams", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=50)
    ap.add_argument("--profile", default="openai")
    a = ap.parse_args()
    main(a.streams, a.rounds, a.tokens, a.profile)
