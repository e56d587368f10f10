"""The local full-text index (online/local_index.py, online/local_docs.py): FTS5 query
escaping against hostile text, Chinese (and Japanese/Korean) search, bm25 ranking,
snippets, filters, upserts, and loading files of every supported kind."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relaygate.online.base import SearchFailed
from relaygate.online.local_index import Document, LocalIndex, fts_query

TODAY = datetime.now(UTC).date()

DOCS = [
    Document(
        url="https://docs.example.org/routing",
        title="Routing",
        text="The router orders channels by priority, then by weight. Routing keeps "
        "failing channels aside with circuits.",
        published=(TODAY - timedelta(days=40)).isoformat(),
        lang="en",
    ),
    Document(
        url="https://docs.example.org/search",
        title="Online search",
        text="relaygate searches the web when a request asks for online answers, and "
        "returns url_citation annotations. The search backend may be SearXNG.",
        published=(TODAY - timedelta(days=2)).isoformat(),
        lang="en",
    ),
    Document(
        url="https://zh.example.cn/gateway",
        title="大模型网关",
        text="relaygate 是一个兼容 OpenAI 的大模型网关，支持联网搜索、路由和计费。",
        published=(TODAY - timedelta(days=1)).isoformat(),
        lang="zh-CN",
    ),
    Document(
        url="https://zh.example.cn/billing",
        title="计费说明",
        text="网关按令牌计费，每次联网搜索另收搜索费。",
        lang="zh",
    ),
    Document(
        url="https://ja.example.jp/doc",
        title="検索",
        text="ゲートウェイはウェブ検索の結果を引用します。",
        lang="ja",
    ),
    Document(
        url="https://ko.example.kr/doc",
        title="검색",
        text="게이트웨이는 웹 검색 결과를 인용합니다.",
        lang="ko",
    ),
    Document(
        url="https://sub.blog.example.net/post",
        title="C++ and AND/OR operators",
        text='Operators such as AND, OR, NOT, NEAR and "quotes" (parentheses) * - ^ are '
        "plain words here. Email me at someone@example.net about C++.",
    ),
]


@pytest.fixture
async def index() -> AsyncIterator[LocalIndex]:
    ix = LocalIndex(":memory:")
    assert await ix.add(DOCS) == len(DOCS)
    yield ix
    await ix.close()


# -- escaping -----------------------------------------------------------------------------

HOSTILE = [
    '"',
    '""',
    "'",
    "AND",
    "OR",
    "NOT",
    "a AND",
    "AND OR NOT",
    "NEAR(a b, 3)",
    "*",
    "rout*",
    "-router",
    "router -",
    "(",
    ")",
    "((routing",
    "title:routing",
    "body : x",
    "{title}: routing",
    "^routing",
    "col1 + col2",
    "routing OR",
    '"unterminated',
    "\\",
    "\x00",
    "\u202e",
    "%",
    "_",
    "'; DROP TABLE docs; --",
    "🙂🙂🙂",
    "a" * 5000,
    " ".join(["word"] * 500),
    "\n\t\r",
]


@pytest.mark.parametrize("query", HOSTILE)
async def test_hostile_queries_never_raise(index: LocalIndex, query: str) -> None:
    hits = await index.search(query, k=5)
    assert isinstance(hits, list)
    assert await index.count() == len(DOCS)  # nothing dropped


def test_fts_query_shapes() -> None:
    assert fts_query("") is None
    assert fts_query("   ") is None
    assert fts_query('"()*-^:') is None
    assert fts_query("routing") == '"routing"'
    assert fts_query('rout* -x "y"') == '"rout" OR "x" OR "y"'
    assert fts_query("网关") == '"网 关" OR "网" OR "关"'
    assert fts_query("大模型网关") == (
        '"大 模" OR "模 型" OR "型 网" OR "网 关" OR "大" OR "模" OR "型" OR "网" OR "关"'
    )
    assert fts_query("x 网关 y") == '"x" OR "y" OR "网 关" OR "网" OR "关"'
    assert fts_query("搜") == '"搜"'
    assert fts_query("what is the router") == '"router"'  # stopwords dropped
    assert fts_query("the is") == '"the" OR "is"'  # unless nothing else is left
    many = fts_query(" ".join(f"w{i}" for i in range(200)))
    assert many is not None and many.count(" OR ") == 47  # at most 48 terms


def test_every_fts_query_is_valid_fts5_syntax() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    for q in [*HOSTILE, "大模型 网关", "C++ & Rust", "a_b", "ｆｕｌｌｗｉｄｔｈ"]:
        match = fts_query(q)
        if match is not None:
            db.execute("SELECT * FROM t WHERE t MATCH ?", (match,)).fetchall()


async def test_operators_are_plain_words(index: LocalIndex) -> None:
    hits = await index.search("NEAR", k=5)
    assert [h.url for h in hits] == ["https://sub.blog.example.net/post"]
    hits = await index.search('"quotes" (parentheses)', k=5)
    assert hits[0].url == "https://sub.blog.example.net/post"


async def test_empty_query_is_no_hits(index: LocalIndex) -> None:
    assert await index.search("", k=5) == []
    assert await index.search("  \n", k=5) == []
    assert await index.search("?!", k=5) == []
    assert await index.search("routing", k=0) == []


# -- CJK ----------------------------------------------------------------------------------


async def test_chinese_words_are_found(index: LocalIndex) -> None:
    hits = await index.search("网关", k=5)
    assert {h.url for h in hits} == {
        "https://zh.example.cn/gateway",
        "https://zh.example.cn/billing",
    }
    hits = await index.search("联网搜索", k=5)
    assert hits[0].url in {"https://zh.example.cn/gateway", "https://zh.example.cn/billing"}
    hits = await index.search("计费", k=5)
    assert hits[0].url == "https://zh.example.cn/billing"  # in the title and the text
    assert [h.url for h in await index.search("大模型网关是什么", k=1)] == [
        "https://zh.example.cn/gateway"
    ]


async def test_chinese_snippet_has_no_inserted_spaces(index: LocalIndex) -> None:
    hits = await index.search("大模型", k=1)
    assert "大模型网关" in hits[0].snippet
    assert "\u200b" not in hits[0].snippet
    assert hits[0].title == "大模型网关"
    assert hits[0].text.startswith("relaygate 是一个")


async def test_single_character_and_mixed_queries(index: LocalIndex) -> None:
    assert any(h.url == "https://zh.example.cn/billing" for h in await index.search("费", k=5))
    hits = await index.search("relaygate 网关", k=5)
    assert hits[0].url == "https://zh.example.cn/gateway"  # both terms match there


async def test_japanese_and_korean(index: LocalIndex) -> None:
    # 索 is also in the Chinese documents' 搜索: they come after, on that one character
    assert (await index.search("検索", k=5))[0].url == "https://ja.example.jp/doc"
    assert [h.url for h in await index.search("검색", k=5)] == ["https://ko.example.kr/doc"]


async def test_exact_words_rank_before_scattered_characters(index: LocalIndex) -> None:
    await index.add([Document("https://x.example/scattered", "关于", "关于网络的说明。网络。关。")])
    urls = [h.url for h in await index.search("网关", k=5)]
    assert urls[-1] == "https://x.example/scattered"  # 网 and 关, never adjacent
    assert set(urls[:2]) == {"https://zh.example.cn/gateway", "https://zh.example.cn/billing"}


async def test_short_chinese_question_prefers_chinese_documents(index: LocalIndex) -> None:
    hits = await index.search("relaygate 是什么", k=3)
    assert hits[0].url == "https://zh.example.cn/gateway"


# -- ranking, snippets, filters -----------------------------------------------------------


async def test_bm25_ranking(index: LocalIndex) -> None:
    hits = await index.search("routing channels", k=5)
    assert hits[0].url == "https://docs.example.org/routing"
    assert all(h.score is not None for h in hits)
    assert [h.score for h in hits] == sorted((h.score or 0.0 for h in hits), reverse=True)
    # the title weighs more than the text
    hits = await index.search("search", k=5)
    assert hits[0].url == "https://docs.example.org/search"


async def test_stemming(index: LocalIndex) -> None:
    hits = await index.search("searching", k=5)
    assert hits and hits[0].url == "https://docs.example.org/search"


async def test_snippet_is_from_the_text(index: LocalIndex) -> None:
    hits = await index.search("circuits", k=1)
    assert "circuits" in hits[0].snippet
    assert hits[0].source == "local"
    assert hits[0].published == (TODAY - timedelta(days=40)).isoformat()


async def test_k_limits(index: LocalIndex) -> None:
    assert len(await index.search("relaygate OR routing OR 网关", k=2)) == 2


async def test_recency_filter(index: LocalIndex) -> None:
    urls = {h.url for h in await index.search("routing search", k=9, recency_days=7)}
    assert "https://docs.example.org/search" in urls
    assert "https://docs.example.org/routing" not in urls  # 40 days old
    # undated documents are left out when recency is asked for
    assert await index.search("计费", k=5, recency_days=30) == [
        h for h in await index.search("计费", k=5, recency_days=30) if h.published
    ]


async def test_language_filter(index: LocalIndex) -> None:
    zh = {h.url for h in await index.search("relaygate", k=9, lang="zh")}
    assert zh == {"https://zh.example.cn/gateway"}
    en = {h.url for h in await index.search("relaygate", k=9, lang="en-US")}
    assert en == {"https://docs.example.org/search"}
    # documents without a language match any
    assert await index.search("NEAR", k=5, lang="fr")


async def test_domain_filter(index: LocalIndex) -> None:
    hits = await index.search("relaygate", k=9, domains=("example.cn",))
    assert [h.url for h in hits] == ["https://zh.example.cn/gateway"]
    hits = await index.search("operators", k=9, domains=("blog.example.net",))
    assert [h.url for h in hits] == ["https://sub.blog.example.net/post"]
    assert await index.search("operators", k=9, domains=("log.example.net",)) == []
    assert await index.search("operators", k=9, domains=("%",)) == []


# -- writing ------------------------------------------------------------------------------


async def test_upsert_by_url_and_clear(index: LocalIndex) -> None:
    await index.add([{"url": "https://docs.example.org/routing", "title": "R", "text": "zebra"}])
    assert await index.count() == len(DOCS)
    assert [h.url for h in await index.search("zebra", k=5)] == ["https://docs.example.org/routing"]
    assert await index.search("circuits", k=5) == []  # the old text is gone from the index
    await index.clear()
    assert await index.count() == 0
    assert await index.search("zebra", k=5) == []


async def test_add_refuses_bad_documents(index: LocalIndex) -> None:
    with pytest.raises(ValueError, match="url"):
        await index.add([{"title": "no url", "text": "x"}])
    with pytest.raises(ValueError):
        await index.add([{"url": "u", "text": 5}])
    with pytest.raises(ValueError):
        await index.add(["just a string"])  # type: ignore[list-item]
    assert await index.add([]) == 0


async def test_missing_title_uses_first_line(tmp_path: Path) -> None:
    ix = LocalIndex(tmp_path / "sub" / "search.db")
    await ix.add([{"url": "u1", "text": "First line here\nmore text", "published": "bad date"}])
    hits = await ix.search("more", k=1)
    assert hits[0].title == "First line here" and hits[0].published is None
    await ix.close()
    again = LocalIndex(tmp_path / "sub" / "search.db")  # persisted on disk
    assert await again.count() == 1
    await again.close()


# -- loading files ------------------------------------------------------------------------


def _tree(root: Path) -> None:
    (root / "guide").mkdir(parents=True)
    (root / "guide" / "start.md").write_text(
        "Intro line\n\n# Getting started\n\nInstall relaygate and run serve.\n", encoding="utf-8"
    )
    (root / "guide" / "front.md").write_text(
        '---\nurl: https://intra.example/front\ntitle: "Front matter"\npublished: 2026-01-02\n'
        "lang: de\n---\n# Ignored heading\nKonfiguration des Gateways.\n",
        encoding="utf-8",
    )
    (root / "notes.txt").write_text("\n\nPlain notes\nabout quotas and keys\n", encoding="utf-8")
    (root / "page.html").write_text(
        '<html lang="zh"><head><title>网页 标题</title><style>.x{}</style>'
        '<link rel="canonical" href="https://intra.example/page"></head>'
        "<body><nav>menu menu</nav><h1>网关</h1><p>联网搜索 &amp; 引用</p>"
        "<script>var secret=1;</script></body></html>",
        encoding="utf-8",
    )
    (root / "many.json").write_text(
        json.dumps(
            [
                {"url": "https://intra.example/a", "title": "A", "text": "alpha document"},
                {"title": "B", "content": "beta document", "date": "2026-03-04"},
            ]
        ),
        encoding="utf-8",
    )
    (root / "one.json").write_text(json.dumps({"title": "One", "body": "gamma"}), encoding="utf-8")
    (root / "lines.jsonl").write_text(
        '{"title": "L1", "text": "delta line"}\n\n{"url": "https://intra.example/l2", "text": "epsilon"}\n',
        encoding="utf-8",
    )
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.md").write_text("# Secret\nhidden text", encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG")


async def test_load_path_reads_every_kind(tmp_path: Path) -> None:
    _tree(tmp_path / "docs")
    ix = LocalIndex(":memory:")
    assert await ix.load_path(tmp_path / "docs") == 9
    by_url = {h.url: h for q in ("relaygate", "Konfiguration", "quotas", "网关", "alpha",
                                 "beta", "gamma", "delta", "epsilon") for h in await ix.search(q, k=3)}  # fmt: skip
    start = by_url["local://guide/start.md"]
    assert start.title == "Getting started"
    front = by_url["https://intra.example/front"]
    assert front.title == "Front matter" and front.published == "2026-01-02"
    assert "---" not in front.text
    assert by_url["local://notes.txt"].title == "Plain notes"
    page = by_url["https://intra.example/page"]
    assert page.title == "网页 标题" and "var secret" not in page.text and "menu" not in page.text
    assert "联网搜索 & 引用" in page.text
    assert by_url["https://intra.example/a"].title == "A"
    assert by_url["local://many.json#1"].published == "2026-03-04"
    assert "local://one.json" in by_url
    assert "local://lines.jsonl#1" in by_url and "https://intra.example/l2" in by_url
    assert await ix.search("hidden", k=5) == []
    assert await ix.search("Konfiguration", k=5, lang="de")
    await ix.close()


async def test_load_single_file(tmp_path: Path) -> None:
    _tree(tmp_path)
    ix = LocalIndex(":memory:")
    assert await ix.load_path(tmp_path / "guide" / "start.md") == 1
    assert [h.url for h in await ix.search("install", k=5)] == ["local://start.md"]
    await ix.close()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", "{not json", "bad.json: not valid JSON"),
        ("bad.jsonl", '{"text": "ok"}\n[1, 2', "bad.jsonl: line 2"),
        ("nontext.json", '{"text": 5}', "string text"),
        ("list.json", "[1]", "JSON object"),
        ("latin1.txt", b"caf\xe9", "not UTF-8"),
        ("doc.pdf", "x", "not a document type"),
    ],
)
async def test_load_path_errors_name_the_file(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    ix = LocalIndex(":memory:")
    with pytest.raises(ValueError, match=message):
        await ix.load_path(path)
    assert await ix.count() == 0
    await ix.close()


async def test_bad_file_in_a_directory_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\ntext", encoding="utf-8")
    (tmp_path / "b.json").write_text("[", encoding="utf-8")
    ix = LocalIndex(":memory:")
    with pytest.raises(ValueError, match=r"b\.json"):
        await ix.load_path(tmp_path)
    assert await ix.count() == 0
    with pytest.raises(ValueError, match="no such file"):
        await ix.load_path(tmp_path / "missing")
    await ix.close()


async def test_a_damaged_file_is_search_failed(tmp_path: Path) -> None:
    path = tmp_path / "search.db"
    path.write_bytes(b"this is not a database" * 100)
    ix = LocalIndex(path)
    with pytest.raises(SearchFailed) as info:
        await ix.search("routing", k=3)
    assert info.value.kind == "error" and str(info.value).startswith("local: ")
    await ix.close()
