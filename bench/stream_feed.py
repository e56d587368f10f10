"""CPU of the OpenAI-compatible stream path without the network: the benchmark mock's
streamed answer (role, N tokens, finish, usage, ``[DONE]``) fed through ``SSEDecoder`` and
the ``openai_compat`` stream translator, as ``relay/chat.py`` does (docs/performance.md,
"Providers (issue 12)"). Compare revisions by pointing ``PYTHONPATH`` at another ``src/``:

    .venv/bin/python bench/stream_feed.py
    PYTHONPATH=/tmp/old/src .venv/bin/python bench/stream_feed.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import mock_upstream
from relaygate.providers.base import Target
from relaygate.providers.openai_compat import OpenAICompatAdaptor
from relaygate.relay.sse import SSEDecoder


def main(streams: int, rounds: int, tokens: int, profile: str) -> None:
    frames = mock_upstream.build_stream_events("gpt-4o-mini", tokens, 12, True)
    raw = [f[f.index(b"\r\n") + 2 : -2] for f in frames]  # without the HTTP chunk framing
    adaptor = OpenAICompatAdaptor()
    target = Target(1, "openai_compat", profile, "http://127.0.0.1", "k", "gpt-4o-mini")
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(streams):
            tr = adaptor.chat_stream(target, True)
            dec = SSEDecoder()
            for chunk in raw:
                for ev, data in dec.feed(chunk):
                    tr.feed(ev, data)
            tr.finish()
        best = min(best, (time.perf_counter() - began) / streams * 1e6)
    print(f"{best:.2f} µs per stream of {len(raw)} events (profile {profile}, best of {rounds})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--streams", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--profile", default="openai")
    a = ap.parse_args()
    main(a.streams, a.rounds, a.tokens, a.profile)
