"""The content-safety filter with a fixed word list, loaded through ``RELAYGATE_FILTERS``
for tests/integration/test_safety_filter.py: an in-memory policy holder and an audit sink
that appends one JSON line per hit to the file named by ``RG_SAFETY_AUDIT`` (the gateway
runs in another process; the test reads the file)."""

from __future__ import annotations

import json
import os

from relaygate.context import RelayContext
from relaygate.filters.safety import SafetyFilter
from relaygate.safety.base import SafetyHit, SafetySettings, WordEntry
from relaygate.safety.matcher import CompiledPolicy, compile_policy

WORDS = [
    ("敏感词", "politics", "block"),
    ("forbiddenword", "violence", "block"),
    ("maskme", "privacy", "mask"),
    ("电话号码", "privacy", "mask"),
    ("watchword", "watch", "log"),
]


class StaticHolder:
    def __init__(self, policy: CompiledPolicy) -> None:
        self._policy = policy

    @property
    def policy(self) -> CompiledPolicy:
        return self._policy


class FileAudit:
    def record(self, ctx: RelayContext, hits: list[SafetyHit], where: str, text: str) -> None:
        path = os.environ.get("RG_SAFETY_AUDIT")
        if not path:
            return
        with open(path, "a", encoding="utf-8") as f:
            for h in hits:
                row = {
                    "rid": ctx.request_id,
                    "word": h.word,
                    "category": h.category,
                    "action": h.action,
                    "where": where,
                    "excerpt": text[h.start : h.end],
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def make() -> SafetyFilter:
    entries = [WordEntry(w, i + 1, f"list-{c}", c, a) for i, (w, c, a) in enumerate(WORDS)]
    policy = compile_policy(entries, 1, t2s=True)
    return SafetyFilter(StaticHolder(policy), FileAudit(), SafetySettings(t2s=True))
