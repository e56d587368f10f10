"""The local full-text index: documents the operator loads (intranet pages, manuals, the
demo's notes about relaygate) in a SQLite FTS5 table, searched with bm25 ranking.

Text goes in with every CJK character set apart by zero-width spaces, so FTS5's
``unicode61`` tokenizer sees each one as a token; a query's CJK runs become bigram phrases
(``网关`` → ``"网 关"``) plus their single characters (the CJK unigram+bigram scheme: a
short question like ``是什么`` still finds the documents holding its characters, while the
bigrams rank documents with the exact words first), other words become quoted terms, all
joined with OR: documents matching more terms rank higher, and no user text can be read as
FTS5 syntax. Snippets come
from FTS5 ``snippet()`` with the zero-width spaces taken out again. The stdlib ``sqlite3``
runs in a worker thread, one connection guarded by a lock. Files are read by
:mod:`relaygate.online.local_docs`.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from relaygate.online.base import Hit, SearchFailed
from relaygate.online.local_docs import Document, read_path

__all__ = ["Document", "LocalIndex", "fts_query"]

_CJK = (
    "\u3040-\u30ff"  # kana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # ideographs
    "\u3100-\u312f\u31a0-\u31bf"  # bopomofo
    "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"  # hangul
    "\U00020000-\U0002ffff"
)
_CJK_CHAR = re.compile(f"[{_CJK}]")
_TERMS = re.compile(f"(?P<cjk>[{_CJK}]+)|(?P<word>[^\\W_{_CJK}]+)")
_ZWSP = "\u200b"
_MAX_TERMS = 48
_MAX_TERM_CHARS = 64
_MAX_QUERY_CHARS = 2000
_SNIPPET_TOKENS = 40
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "you",
        "your",
    }
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    published TEXT,
    lang TEXT,
    host TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS docs_fts USING fts5(
    title, body, tokenize = 'porter unicode61 remove_diacritics 2'
);
"""


def _spaced(text: str) -> str:
    """``text`` with each CJK character between zero-width spaces (one token each)."""
    return _CJK_CHAR.sub(lambda m: _ZWSP + m.group(0) + _ZWSP, text)


def fts_query(text: str) -> str | None:
    """A safe FTS5 MATCH expression for user ``text``, None when nothing is searchable.

    Only letters and digits survive (quotes, ``*``, ``-``, parentheses, ``AND``/``NEAR``
    as operators cannot); each term is a quoted string, CJK runs become bigram phrases
    and single characters (these last, so the term cap drops them first).
    """
    text = unicodedata.normalize("NFKC", text[:_MAX_QUERY_CHARS]).lower()
    words: list[str] = []
    grams: list[str] = []
    chars: list[str] = []
    for m in _TERMS.finditer(text):
        if m.group("cjk"):
            run = m.group("cjk")
            grams.extend(f'"{run[i]} {run[i + 1]}"' for i in range(len(run) - 1))
            chars.extend(f'"{c}"' for c in run)
        else:
            words.append(m.group("word")[:_MAX_TERM_CHARS])
    kept = [w for w in words if w not in _STOPWORDS] or words
    terms = [f'"{w}"' for w in kept] + grams + chars
    unique = list(dict.fromkeys(terms))[:_MAX_TERMS]
    return " OR ".join(unique) if unique else None


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _iso(value: Any) -> str | None:
    """An ISO date(-time) string for ``published``, None when it cannot be read."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str) or not value.strip():
        return None
    raw = value.strip()
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        try:
            return date.fromisoformat(raw[:10]).isoformat()
        except ValueError:
            return None
    return parsed.isoformat() if len(raw) > 10 else parsed.date().isoformat()


def _document(item: Document | Mapping[str, Any]) -> Document:
    if isinstance(item, Document):
        return item
    if not isinstance(item, Mapping):
        raise ValueError("a document is a Document or a mapping with url, title and text")
    text = item.get("text", item.get("content", item.get("body")))
    url = item.get("url")
    if not isinstance(text, str) or not isinstance(url, str) or not url:
        raise ValueError("a document needs a string url and a string text")
    title = item.get("title")
    lang = item.get("lang")
    return Document(
        url=url,
        title=title if isinstance(title, str) else "",
        text=text,
        published=_iso(item.get("published")),
        lang=lang if isinstance(lang, str) else None,
    )


class LocalIndex:
    """A SQLite FTS5 index at ``path`` (``":memory:"`` for a throwaway one)."""

    name = "local"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    # -- the connection (worker thread) ------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0)
            try:
                if self.path != ":memory:":
                    db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db

    async def _run(self, fn: Any, *args: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                return fn(self._conn(), *args)

        return await asyncio.to_thread(locked)

    # -- writing -------------------------------------------------------------------------
    @staticmethod
    def _add(db: sqlite3.Connection, docs: list[Document]) -> int:
        with db:
            for doc in docs:
                title = doc.title.strip() or doc.text.strip().split("\n", 1)[0][:200]
                lang = doc.lang.strip().lower() if doc.lang else None
                row = db.execute(
                    "INSERT INTO docs (url, title, text, published, lang, host) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(url) DO UPDATE SET "
                    "title = excluded.title, text = excluded.text, "
                    "published = excluded.published, lang = excluded.lang, host = excluded.host "
                    "RETURNING id",
                    (doc.url, title, doc.text, _iso(doc.published), lang, _host(doc.url)),
                ).fetchone()
                rowid = int(row[0])
                db.execute("DELETE FROM docs_fts WHERE rowid = ?", (rowid,))
                db.execute(
                    "INSERT INTO docs_fts (rowid, title, body) VALUES (?, ?, ?)",
                    (rowid, _spaced(title), _spaced(doc.text)),
                )
        return len(docs)

    async def add(self, docs: Iterable[Document | Mapping[str, Any]]) -> int:
        """Add (or replace, by url) documents; returns how many were written."""
        items = [_document(d) for d in docs]
        if not items:
            return 0
        return int(await self._run(self._add, items))

    async def load_path(self, path: str | Path) -> int:
        """Load a file or a directory of ``.md/.txt/.html/.json/.jsonl`` documents; a file
        that cannot be read stops the load (ValueError naming it) before anything is
        written."""
        docs = await asyncio.to_thread(read_path, Path(path))
        return await self.add(docs)

    async def count(self) -> int:
        return int(
            await self._run(lambda db: db.execute("SELECT count(*) FROM docs").fetchone()[0])
        )

    async def clear(self) -> None:
        def wipe(db: sqlite3.Connection) -> None:
            with db:
                db.execute("DELETE FROM docs")
                db.execute("DELETE FROM docs_fts")

        await self._run(wipe)

    # -- searching -----------------------------------------------------------------------
    @staticmethod
    def _search(
        db: sqlite3.Connection,
        match: str,
        k: int,
        lang: str | None,
        recency_days: int | None,
        domains: tuple[str, ...],
    ) -> list[Hit]:
        sql = [
            "SELECT d.url, d.title, d.text, d.published, "
            f"snippet(docs_fts, 1, '', '', '…', {_SNIPPET_TOKENS}), bm25(docs_fts, 4.0, 1.0) "
            "FROM docs_fts JOIN docs d ON d.id = docs_fts.rowid WHERE docs_fts MATCH ?"
        ]
        args: list[Any] = [match]
        if lang:
            primary = lang.strip().lower().split("-")[0]
            sql.append(
                "AND (d.lang IS NULL OR d.lang = '' OR d.lang = ? OR d.lang LIKE ? ESCAPE '\\')"
            )
            args += [primary, _like_escape(primary) + "-%"]
        if recency_days is not None and recency_days > 0:
            since = (datetime.now(UTC) - timedelta(days=recency_days)).date().isoformat()
            sql.append("AND d.published IS NOT NULL AND d.published >= ?")
            args.append(since)
        sites = [d.strip().lower().strip(".") for d in domains if d.strip().strip(".")]
        if sites:
            ors = " OR ".join("d.host = ? OR d.host LIKE ? ESCAPE '\\'" for _ in sites)
            sql.append(f"AND ({ors})")
            for site in sites:
                args += [site, "%." + _like_escape(site)]
        sql.append("ORDER BY 6 LIMIT ?")
        args.append(k)
        hits: list[Hit] = []
        for url, title, text, published, snip, rank in db.execute(" ".join(sql), args):
            snippet = snip.replace(_ZWSP, "").strip() or text[:300]
            hits.append(
                Hit(
                    url=url,
                    title=title,
                    snippet=snippet,
                    source="local",
                    published=published,
                    score=-float(rank),
                    text=text,
                )
            )
        return hits

    async def search(
        self,
        query: str,
        *,
        k: int,
        lang: str | None = None,
        recency_days: int | None = None,
        domains: tuple[str, ...] = (),
    ) -> list[Hit]:
        """Up to ``k`` documents for ``query``, best bm25 first; an empty or
        punctuation-only query has no hits. A file SQLite cannot read is SearchFailed."""
        match = fts_query(query) if isinstance(query, str) else None
        if match is None or k <= 0:
            return []
        try:
            hits: list[Hit] = await self._run(
                self._search, match, min(k, 100), lang, recency_days, tuple(domains)
            )
        except sqlite3.Error as exc:  # a damaged or locked file: the request goes on without
            raise SearchFailed(f"local: the index cannot be read ({exc})") from None
        return hits

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()

        if self._db is not None:
            await self._run(shut)
            self._db = None
