"""Figures against targets: the report's summary table (each figure, relaygate vs direct and
vs LiteLLM, the target and whether it is met) and the ``--quick`` regression guards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from results import Report
from systems import PACED_INTERVAL_MS

# Targets from the issue (the ones checked in the report).
TARGET_ADDED_P50_MS = 0.5
TARGET_ADDED_P99_MS = 1.5
TARGET_TTFT_P50_MS = 1.0
TARGET_VS_LITELLM_RPS = 20.0
TARGET_VS_DIRECT_RPS = 0.25
TARGET_STREAMS = 512
TARGET_ADMITTED_OK = 0.999
TARGET_SHED_MS = 5.0
TARGET_RSS_VS_LITELLM = 0.25


def f(x: float | None, digits: int = 2, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.{digits}f}{unit}"


def pct(x: float, digits: int = 1) -> str:
    return "—" if math.isnan(x) else f"{x * 100:.{digits}f}%"


def ratio(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b


def check(value: float, pred: Callable[[float], bool]) -> bool | None:
    return None if math.isnan(value) else pred(value)


def _va(value: float, added: float, digits: int) -> str:
    """'value (+added)' or a dash."""
    if math.isnan(value):
        return "—"
    return f"{f(value, digits)} ({_signed(added, digits)})"


def _signed(x: float, digits: int = 2) -> str:
    return "—" if math.isnan(x) else f"{x:+.{digits}f}"


def _x(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.1f}×"


def _times(other: float, ours: float, word: str) -> str:
    """'N× <word>' when ours is smaller than other (both positive)."""
    if math.isnan(other) or math.isnan(ours) or ours <= 0 or other <= 0:
        return "—"
    return f"{other / ours:.1f}× {word}"


@dataclass
class Row:
    figure: str
    direct: str
    relaygate: str
    litellm: str
    vs_direct: str
    vs_litellm: str
    target: str
    ok: bool | None


def summary_rows(rep: Report) -> list[Row]:
    m, ma = rep.med, rep.med_added
    rows: list[Row] = []

    # added latency, non-stream
    for q, tgt in (("p50", TARGET_ADDED_P50_MS), ("p99", TARGET_ADDED_P99_MS)):
        d = m("latency", "direct", q)
        rg, ll = m("latency", "relaygate", q), m("latency", "litellm", q)
        arg, all_ = ma("latency", "relaygate", q), ma("latency", "litellm", q)
        rows.append(
            Row(
                f"latency c=1 non-stream {q} (ms)",
                f(d, 3),
                _va(rg, arg, 3),
                _va(ll, all_, 3),
                f"{_signed(arg, 3)} ms",
                _times(all_, arg, "less added"),
                f"added ≤ {tgt} ms",
                None if math.isnan(arg) else arg <= tgt,
            )
        )
    # TTFT
    for q in ("p50", "p99"):
        k = f"ttft_{q}"
        d, rg, ll = m("ttft", "direct", k), m("ttft", "relaygate", k), m("ttft", "litellm", k)
        arg, all_ = ma("ttft", "relaygate", k), ma("ttft", "litellm", k)
        rows.append(
            Row(
                f"stream TTFT c=1 {q} (ms)",
                f(d, 3),
                _va(rg, arg, 3),
                _va(ll, all_, 3),
                f"{_signed(arg, 3)} ms",
                _times(all_, arg, "less added"),
                f"added ≤ {TARGET_TTFT_P50_MS} ms" if q == "p50" else "—",
                check(arg, lambda v: v <= TARGET_TTFT_P50_MS) if q == "p50" else None,
            )
        )
    # gaps
    for q in ("gap_p50", "gap_p99") if "gaps" in rep.data else ():
        d, rg, ll = m("gaps", "direct", q), m("gaps", "relaygate", q), m("gaps", "litellm", q)
        arg, all_ = ma("gaps", "relaygate", q), ma("gaps", "litellm", q)
        rows.append(
            Row(
                f"gap between chunks {q[4:]} (ms, {PACED_INTERVAL_MS:.0f} ms pacing)",
                f(d, 2),
                _va(rg, arg, 2),
                _va(ll, all_, 2),
                f"{_signed(arg)} ms",
                "—",
                "—",
                None,
            )
        )
    # throughput
    for w in rep.cfg.workers:
        k = f"throughput_w{w}"
        d, rg, ll = m(k, "direct", "rps"), m(k, "relaygate", "rps"), m(k, "litellm", "rps")
        vd, vl = ratio(rg, d), ratio(rg, ll)
        ok_parts = [check(vd, lambda v: v >= TARGET_VS_DIRECT_RPS)]
        if rep.cfg.litellm:
            ok_parts.append(check(vl, lambda v: v >= TARGET_VS_LITELLM_RPS))
        ok = None if any(p is None for p in ok_parts) else all(p for p in ok_parts if p is not None)
        rows.append(
            Row(
                f"throughput {w} worker{'s' if w > 1 else ''} (req/s, c={rep.cfg.connections})",
                f(d, 0),
                f(rg, 0),
                f(ll, 0),
                pct(vd),
                _x(vl),
                f"≥ {TARGET_VS_DIRECT_RPS:.0%} of direct, ≥ {TARGET_VS_LITELLM_RPS:.0f}× LiteLLM",
                ok,
            )
        )
        fl = m(k, "asgi-floor", "rps")
        if not math.isnan(fl):
            rows.append(
                Row(
                    f"reference: bare ASGI app on the same server, {w} worker(s) (req/s)",
                    f(d, 0),
                    f(fl, 0),
                    "—",
                    pct(ratio(fl, d)),
                    "—",
                    f"no target: relaygate serves {pct(ratio(rg, fl))} of it",
                    None,
                )
            )
    # streams held
    n = rep.cfg.streams
    st = {s: m("streams", s, "stalled") for s in ("direct", "relaygate", "litellm")}
    okn = {s: m("streams", s, "ok") for s in st}
    rows.append(
        Row(
            f"{n} concurrent paced streams: stalled or failed (median of rounds)",
            f(st["direct"], 0),
            f(st["relaygate"], 0),
            f(st["litellm"], 0),
            "—",
            "—",
            f"0 stalls at ≥ {TARGET_STREAMS} streams"
            + ("" if n >= TARGET_STREAMS else f" (not checked: only {n} run)"),
            check(st["relaygate"], lambda v: v == 0) if n >= TARGET_STREAMS else None,
        )
    )
    rows.append(
        Row(
            "… streams completed per round",
            f(okn["direct"], 0),
            f(okn["relaygate"], 0),
            f(okn["litellm"], 0),
            "—",
            "—",
            "—",
            None,
        )
    )
    # overload
    ov = rep.extra.get("overload", {})
    adm = {s: m("overload", s, "admitted_success") for s in ("direct", "relaygate", "litellm")}
    rows.append(
        Row(
            "overload 2× capacity: admitted requests that succeeded",
            pct(adm["direct"], 2),
            pct(adm["relaygate"], 2),
            pct(adm["litellm"], 2),
            "—",
            "—",
            f"≥ {TARGET_ADMITTED_OK:.1%}",
            check(adm["relaygate"], lambda v: v >= TARGET_ADMITTED_OK),
        )
    )
    shed = {s: m("overload", s, "shed_p99") for s in ("direct", "relaygate", "litellm")}
    frac = {s: m("overload", s, "shed_frac") for s in ("direct", "relaygate", "litellm")}
    rows.append(
        Row(
            "overload: shed responses p99 (ms) [share shed]",
            f"{f(shed['direct'], 2)} [{pct(frac['direct'])}]",
            f"{f(shed['relaygate'], 2)} [{pct(frac['relaygate'])}]",
            f"{f(shed['litellm'], 2)} [{pct(frac['litellm'])}]",
            "—",
            "—",
            f"≤ {TARGET_SHED_MS:g} ms",
            check(shed["relaygate"], lambda v: v <= TARGET_SHED_MS),
        )
    )
    rec = {s: m("overload", s, "recovery_ms") for s in ("direct", "relaygate", "litellm")}
    rows.append(
        Row(
            "overload: recovery after load stops (ms)",
            f(rec["direct"], 0),
            f(rec["relaygate"], 0),
            f(rec["litellm"], 0),
            "—",
            "—",
            "—",
            None,
        )
    )
    if ov:
        rows.append(
            Row(
                "… offered rate (req/s)",
                f(ov["rates"].get("direct"), 0),
                f(ov["rates"].get("relaygate"), 0),
                f(ov["rates"].get("litellm"), 0),
                "—",
                "—",
                "2× each system's capacity",
                None,
            )
        )
    # memory
    w0 = rep.cfg.workers[0]
    idle_rg, idle_ll = m(f"idle_w{w0}", "relaygate", "rss"), m(f"idle_w{w0}", "litellm", "rss")
    r_idle = ratio(idle_rg, idle_ll)
    rows.append(
        Row(
            f"RSS idle, {w0} worker (MiB)",
            "—",
            f(idle_rg, 1),
            f(idle_ll, 1),
            "—",
            pct(r_idle, 0),
            f"≤ {TARGET_RSS_VS_LITELLM:.0%} of LiteLLM",
            check(r_idle, lambda v: v <= TARGET_RSS_VS_LITELLM) if rep.cfg.litellm else None,
        )
    )
    for w in rep.cfg.workers[1:]:
        i_rg, i_ll = m(f"idle_w{w}", "relaygate", "rss"), m(f"idle_w{w}", "litellm", "rss")
        r_i = ratio(i_rg, i_ll)
        rows.append(
            Row(
                f"RSS idle, {w} workers (MiB)",
                "—",
                f(i_rg, 1),
                f(i_ll, 1),
                "—",
                pct(r_i, 0),
                f"≤ {TARGET_RSS_VS_LITELLM:.0%} of LiteLLM",
                check(r_i, lambda v: v <= TARGET_RSS_VS_LITELLM) if rep.cfg.litellm else None,
            )
        )
    s_rg, s_ll = m("streams", "relaygate", "rss_peak"), m("streams", "litellm", "rss_peak")
    r_st = ratio(s_rg, s_ll)
    rows.append(
        Row(
            f"RSS peak with {n} open streams (MiB)",
            "—",
            f(s_rg, 1),
            f(s_ll, 1),
            "—",
            pct(r_st, 0),
            f"≤ {TARGET_RSS_VS_LITELLM:.0%} of LiteLLM",
            check(r_st, lambda v: v <= TARGET_RSS_VS_LITELLM) if rep.cfg.litellm else None,
        )
    )
    if "soak" in rep.data:
        sl_rg, sl_ll = (
            m("soak", "relaygate", "slope_2nd_half"),
            m("soak", "litellm", "slope_2nd_half"),
        )
        rows.append(
            Row(
                f"RSS growth over {rep.cfg.soak_minutes:g} min soak, 2nd half (MiB/min)",
                "—",
                f(sl_rg, 2),
                f(sl_ll, 2),
                "—",
                "—",
                "flat (≤ 1 MiB/min)",
                check(sl_rg, lambda v: v <= 1.0),
            )
        )
    return rows


# ------------------------------------------------------------------------------------------------
# Quick-mode regression guard
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guard:
    min_rps_vs_direct: float
    max_added_p50_ms: float
    max_added_ttft_p50_ms: float
    min_admitted_success: float


def guard_failures(rep: Report, g: Guard) -> list[str]:
    fails: list[str] = []
    m, ma = rep.med, rep.med_added

    def need(name: str, value: float, ok: bool) -> None:
        if math.isnan(value) or not ok:
            fails.append(f"{name} = {value:.4g}")

    v = ma("latency", "relaygate", "p50")
    need(f"added latency p50 ms (max {g.max_added_p50_ms})", v, v <= g.max_added_p50_ms)
    v = ma("ttft", "relaygate", "ttft_p50")
    need(f"added TTFT p50 ms (max {g.max_added_ttft_p50_ms})", v, v <= g.max_added_ttft_p50_ms)
    w = rep.cfg.workers[0]
    v = ratio(m(f"throughput_w{w}", "relaygate", "rps"), m(f"throughput_w{w}", "direct", "rps"))
    need(f"throughput relaygate/direct (min {g.min_rps_vs_direct})", v, v >= g.min_rps_vs_direct)
    for key in ("latency", "ttft", f"throughput_w{w}"):
        v = m(key, "relaygate", "errors")
        need(f"{key} errors (must be 0)", v, v == 0)
    v = m("streams", "relaygate", "stalled")
    need(f"{rep.cfg.streams} paced streams stalled (must be 0)", v, v == 0)
    v = float(rep.extra.get("crashes", {}).get("relaygate", 0))
    need("relaygate crashes (must be 0)", v, v == 0)
    v = m("overload", "relaygate", "admitted_success")
    need(
        f"overload admitted success (min {g.min_admitted_success})", v, v >= g.min_admitted_success
    )
    return fails
