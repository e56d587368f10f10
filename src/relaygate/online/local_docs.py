"""Reading documents for the local index from files: :class:`Document` and :func:`read_path`.

* ``.md``: optional front matter (``---`` lines of ``key: value``: url, title,
  published/date, lang); the title is the front matter's, else the first ``# `` heading,
  else the file name.
* ``.txt``: the first non-empty line is the title.
* ``.html``/``.htm``: ``<title>``, ``<html lang>``, ``<link rel="canonical">``; the text is
  what is left outside ``script``/``style``/``head``/``nav`` (a plain reader: the fetch
  stage's extractor is for web pages).
* ``.json``: an object or a list of objects; ``.jsonl``: one object a line. Fields: url,
  title, text (or content/body), published, lang.

A document without its own url gets ``local://<path relative to the loaded root>`` (with
``#n`` for the n-th object of a JSON file). A file that cannot be read raises
:class:`ValueError` naming it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

__all__ = ["SUFFIXES", "Document", "read_file", "read_path"]

SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".json", ".jsonl")
MAX_FILE_BYTES = 20 * 1024 * 1024
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_HEADING = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.M)


@dataclass(slots=True)
class Document:
    """One document of the local index."""

    url: str
    title: str
    text: str
    published: str | None = None
    lang: str | None = None


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    m = _FRONT.match(text)
    if not m:
        return {}, text
    meta: dict[str, str] = {}
    for line in m.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta, text[m.end() :]


def _markdown(text: str, url: str, stem: str) -> Document:
    meta, body = _front_matter(text)
    heading = _HEADING.search(body)
    title = meta.get("title") or (heading.group(1).strip() if heading else stem)
    return Document(
        url=meta.get("url") or url,
        title=title,
        text=body.strip(),
        published=meta.get("published") or meta.get("date") or None,
        lang=meta.get("lang") or meta.get("language") or None,
    )


def _plain(text: str, url: str, stem: str) -> Document:
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return Document(url=url, title=first[:200] or stem, text=text.strip())


class _HTMLText(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "nav", "noscript", "template", "svg"})
    _BLOCK = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr",
                        "section", "article", "pre", "blockquote", "table"})  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.lang = ""
        self.canonical = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "html" and a.get("lang"):
            self.lang = a["lang"]
        elif tag == "link" and a.get("rel", "").lower() == "canonical" and a.get("href"):
            self.canonical = a["href"]
        elif tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def _html(text: str, url: str, stem: str) -> Document:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", ln).strip() for ln in "".join(parser.parts).split("\n"))
    body = "\n".join(ln for ln in lines if ln)
    canonical = parser.canonical if parser.canonical.startswith(("http://", "https://")) else ""
    return Document(
        url=canonical or url,
        title=" ".join(parser.title.split()) or stem,
        text=body,
        lang=parser.lang or None,
    )


def _from_object(obj: Any, url: str, where: str) -> Document:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: a document must be a JSON object")
    text = obj.get("text", obj.get("content", obj.get("body")))
    if not isinstance(text, str):
        raise ValueError(f"{where}: a document needs a string text (or content/body)")
    own = obj.get("url")
    title = obj.get("title")
    published = obj.get("published", obj.get("date"))
    lang = obj.get("lang")
    return Document(
        url=own if isinstance(own, str) and own else url,
        title=title if isinstance(title, str) else "",
        text=text,
        published=published if isinstance(published, str) else None,
        lang=lang if isinstance(lang, str) else None,
    )


def read_file(path: Path, rel: str) -> list[Document]:
    """The documents in one file; ``rel`` is its path relative to the loaded root."""
    suffix = path.suffix.lower()
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{rel}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{rel}: not UTF-8 text") from None
    url = "local://" + rel
    if suffix in (".md", ".markdown"):
        return [_markdown(text, url, path.stem)]
    if suffix == ".txt":
        return [_plain(text, url, path.stem)]
    if suffix in (".html", ".htm"):
        return [_html(text, url, path.stem)]
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{rel}: not valid JSON (line {exc.lineno})") from None
        if isinstance(data, list):
            return [_from_object(o, f"{url}#{i}", f"{rel}[{i}]") for i, o in enumerate(data)]
        return [_from_object(data, url, rel)]
    if suffix == ".jsonl":
        docs: list[Document] = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{rel}: line {n} is not valid JSON") from None
            docs.append(_from_object(obj, f"{url}#{n}", f"{rel}:{n}"))
        return docs
    raise ValueError(f"{rel}: not a document type the index reads ({', '.join(SUFFIXES)})")


def read_path(path: Path) -> list[Document]:
    """Every document under ``path`` (a file, or a directory read recursively in name
    order, hidden files and folders skipped)."""
    if not path.exists():
        raise ValueError(f"{path}: no such file or directory")
    if path.is_file():
        return read_file(path, path.name)
    docs: list[Document] = []
    for file in sorted(path.rglob("*")):
        rel = file.relative_to(path)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if file.is_file() and file.suffix.lower() in SUFFIXES:
            docs.extend(read_file(file, rel.as_posix()))
    return docs
