"""A run's settings (``Config``) and the per-round rows it collects (``Report``).

Both are what ``--json`` saves and ``--from-json`` reads back.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Config:
    quick: bool
    rounds: int
    seconds: float
    connections: int
    streams: int
    overload_inflight: int
    soak_minutes: float
    workers: list[int]
    litellm: bool
    client: str = "raw"
    timeout_s: float = 60.0


@dataclass
class Report:
    cfg: Config
    started: str
    # scenario -> system -> list of per-round dicts
    data: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, scenario: str, system: str, value: dict[str, Any]) -> None:
        self.data.setdefault(scenario, {}).setdefault(system, []).append(value)

    def med(self, scenario: str, system: str, key: str) -> float:
        vals = [num(r.get(key)) for r in self.data.get(scenario, {}).get(system, [])]
        clean = [v for v in vals if not math.isnan(v)]
        return statistics.median(clean) if clean else math.nan

    def med_added(self, scenario: str, system: str, key: str) -> float:
        """Median over rounds of (system - direct) in the same round."""
        gw = self.data.get(scenario, {}).get(system, [])
        base = self.data.get(scenario, {}).get("direct", [])
        diffs = [num(g.get(key)) - num(b.get(key)) for g, b in zip(gw, base, strict=False)]
        clean = [d for d in diffs if not math.isnan(d)]
        return statistics.median(clean) if clean else math.nan


def num(v: Any) -> float:
    """A number from a result row (None, missing or non-numeric -> NaN)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return math.nan
    return float(v)
