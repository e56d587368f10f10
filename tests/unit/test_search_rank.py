"""Ranking and trimming of online-search hits (relaygate.online.rank): literal fixtures,
the gateway's real token counter (relaygate.billing.tokens.count_text), and a property
test: the sources never cost more than the budget and never repeat a URL."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.billing.tokens import count_text
from relaygate.online.base import Hit
from relaygate.online.rank import (
    normalise_url,
    order_hits,
    prepare_sources,
    source_cost,
    trim_to_tokens,
)

LONG = " ".join(f"Sentence {i} says something about the gateway's routing." for i in range(400))


def hit(url: str, text: str = "", snippet: str = "snip", source: str = "b", **kw: object) -> Hit:
    return Hit(
        url=url, title=kw.pop("title", "Title"), snippet=snippet, source=source, text=text, **kw
    )  # type: ignore[arg-type]


def total(hits: list[Hit]) -> int:
    return sum(source_cost(h, count_text) for h in hits)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("HTTPS://Example.COM/a", "https://example.com/a"),
        ("https://example.com/a/", "https://example.com/a"),
        ("https://example.com/", "https://example.com"),
        ("https://example.com/a#section-2", "https://example.com/a"),
        ("https://example.com/a?utm_source=x&id=3&UTM_Medium=y", "https://example.com/a?id=3"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://user:pw@example.com/a", "https://example.com/a"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://[2001:DB8::1]/a/", "https://[2001:db8::1]/a"),
    ],
)
def test_same_url(a: str, b: str) -> None:
    assert normalise_url(a) == normalise_url(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.com/a", "https://example.com/A"),  # paths are case-sensitive
        ("https://example.com/a?id=1", "https://example.com/a?id=2"),
        ("https://example.com:8443/a", "https://example.com/a"),
        ("http://example.com/a", "https://example.com/a"),
    ],
)
def test_different_url(a: str, b: str) -> None:
    assert normalise_url(a) != normalise_url(b)


def test_normalise_never_raises() -> None:
    for url in ("", "::::", "http://[bad", "http://x:99999/", "\x00", "a" * 10_000):
        assert isinstance(normalise_url(url), str)


def test_order_is_the_backend_order_then_score() -> None:
    hits = [
        hit("https://a.test/1", source="x", score=0.2),
        hit("https://a.test/2", source="x", score=0.9),
        hit("https://b.test/1", source="y", score=0.5),
        hit("https://b.test/2", source="y"),
        hit("https://c.test/1", source="z", score=float("nan")),
    ]
    got = [h.url for h in order_hits(hits)]
    # rank 0 of each backend first (by score: y 0.5, x 0.2, z without one), then rank 1
    assert got == [
        "https://b.test/1",
        "https://a.test/1",
        "https://c.test/1",
        "https://a.test/2",
        "https://b.test/2",
    ]
    one_backend = [hit(f"https://a.test/{i}", score=s) for i, s in enumerate([0.1, 0.9, 0.5])]
    assert order_hits(one_backend) == one_backend


def test_dedupe_keeps_the_first_and_takes_fetched_text() -> None:
    hits = [
        hit("https://example.com/a?utm_source=feed", snippet="first"),
        hit("https://EXAMPLE.com/a/", text="the fetched page text", snippet="second"),
        hit("https://example.com/b"),
    ]
    out = prepare_sources(hits, budget_tokens=1000, count_tokens=count_text)
    assert [h.url for h in out] == [
        "https://example.com/a?utm_source=feed",
        "https://example.com/b",
    ]
    assert out[0].text == "the fetched page text"
    assert hits[0].text == ""  # the inputs are not changed


def test_empty_hits_dropped() -> None:
    hits = [
        hit("https://a.test/", text="", snippet=""),
        hit("https://b.test/", text="  \n ", snippet="   "),
        hit("", snippet="no url"),
        hit("https://c.test/", snippet="kept"),
    ]
    out = prepare_sources(hits, budget_tokens=500, count_tokens=count_text)
    assert [(h.url, h.text) for h in out] == [("https://c.test/", "kept")]


def test_text_preferred_to_snippet_and_max_results() -> None:
    hits = [hit(f"https://a.test/{i}", text=f"page {i}" if i % 2 else "") for i in range(10)]
    out = prepare_sources(hits, budget_tokens=2000, count_tokens=count_text, max_results=4)
    assert [h.text for h in out] == ["snip", "page 1", "snip", "page 3"]


def test_budget_shared_fairly() -> None:
    hits = [
        hit("https://a.test/long1", text=LONG),
        hit("https://a.test/short", text="A short answer."),
        hit("https://a.test/long2", text=LONG),
    ]
    out = prepare_sources(hits, budget_tokens=600, count_tokens=count_text)
    assert len(out) == 3 and total(out) <= 600
    assert out[1].text == "A short answer."  # needs little: gets all of it
    a, c = (count_text(h.text) for h in (out[0], out[2]))
    assert abs(a - c) <= 2 and a > 200  # the long ones split the rest
    assert out[0].text.endswith("…")


def test_tight_budget_drops_the_lowest_ranked() -> None:
    hits = [hit(f"https://a.test/{i}", text=LONG) for i in range(5)]
    out = prepare_sources(hits, budget_tokens=90, count_tokens=count_text)
    assert 1 <= len(out) < 5
    assert [h.url for h in out] == [f"https://a.test/{i}" for i in range(len(out))]
    assert total(out) <= 90
    assert prepare_sources(hits, budget_tokens=5, count_tokens=count_text) == []
    assert prepare_sources(hits, budget_tokens=0, count_tokens=count_text) == []
    assert prepare_sources(hits, budget_tokens=-3, count_tokens=count_text) == []
    assert prepare_sources(hits, budget_tokens=900, count_tokens=count_text, max_results=0) == []


def test_huge_titles_are_cut() -> None:
    out = prepare_sources(
        [hit("https://a.test/", title="T" * 100_000, text="body")],
        budget_tokens=400,
        count_tokens=count_text,
    )
    assert len(out) == 1 and len(out[0].title) <= 300


def test_trim_to_tokens() -> None:
    assert trim_to_tokens("short", 10, count_text) == "short"
    cut = trim_to_tokens(LONG, 50, count_text)
    assert count_text(cut) <= 50 and cut.endswith("…") and LONG.startswith(cut[:-1].rstrip())
    assert trim_to_tokens(LONG, 0, count_text) == ""
    assert trim_to_tokens("", 5, count_text) == ""
    zh = "网关支持联网搜索，抓取网页时会拒绝私有地址。" * 50
    assert count_text(trim_to_tokens(zh, 30, count_text)) <= 30


# --- property ---------------------------------------------------------------------

_HOSTS = ["example.com", "EXAMPLE.com", "docs.test", "b.test"]
_urls = st.builds(
    lambda scheme, host, path, slash, frag, utm: (
        f"{scheme}://{host}/{path}{'/' if slash else ''}"
        + ("?utm_source=x" if utm else "")
        + ("#f" if frag else "")
    ),
    st.sampled_from(["https", "HTTPS"]),
    st.sampled_from(_HOSTS),
    st.sampled_from(["", "a", "b", "a/b"]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
_words = st.lists(
    st.sampled_from(["a", "bc", " ", "xyz", "网关", "搜索", "\n", ".", "é", "routing ", "token "]),
    max_size=200,
).map("".join)
_hits = st.builds(
    Hit,
    url=_urls,
    title=st.text(max_size=60),
    snippet=_words,
    source=st.sampled_from(["x", "y"]),
    published=st.none() | st.just("2026-11-28"),
    score=st.none() | st.floats(allow_nan=True),
    text=_words,
)


@settings(max_examples=200, deadline=None)
@given(
    hits=st.lists(_hits, max_size=12),
    budget=st.integers(min_value=-5, max_value=1500),
    max_results=st.integers(min_value=0, max_value=8),
)
def test_sources_fit_the_budget_without_duplicates(
    hits: list[Hit], budget: int, max_results: int
) -> None:
    out = prepare_sources(
        hits, budget_tokens=budget, count_tokens=count_text, max_results=max_results
    )
    assert total(out) <= max(budget, 0)
    keys = [normalise_url(h.url) for h in out]
    assert len(keys) == len(set(keys))
    assert len(out) <= max_results
    assert all(h.text.strip() and h.url for h in out)
    assert {h.url for h in out} <= {h.url.strip() for h in hits}
