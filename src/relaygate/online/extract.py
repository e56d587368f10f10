"""A page's text for ``online`` search. :func:`decode_body` turns a fetched body into text
(BOM, header charset, ``<meta>`` charset, UTF-8). :func:`main_text` keeps the article and drops
navigation, adverts, footers and scripts (trafilatura, offline: it never downloads);
plain text passes through tidied. :func:`extract_async` runs it in a worker thread so
the parsing never blocks the event loop. The output is capped (:data:`MAX_TEXT_CHARS`).
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import re

import trafilatura

__all__ = ["MAX_INPUT_CHARS", "MAX_TEXT_CHARS", "decode_body", "extract_async", "main_text"]

log = logging.getLogger("relaygate.online")

MAX_TEXT_CHARS = 20_000  # the main text kept; rank.py trims further to the token budget
MAX_INPUT_CHARS = 4_000_000  # a larger document is cut before parsing
_PLAIN = "text/plain"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANKS = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= limit * 0.9:  # end on a word boundary when one is close
        cut = cut[:space]
    return cut.rstrip() + "…"


def main_text(
    html: str, url: str, *, content_type: str = "text/html", max_chars: int = MAX_TEXT_CHARS
) -> str:
    """The main text of ``html`` (fetched from ``url``), at most ``max_chars`` long;
    ``""`` when there is none. ``text/plain`` content is only tidied and capped. When
    trafilatura finds no article (a very short page), the page's visible text is used."""
    if not html or max_chars <= 0:
        return ""
    doc = html[:MAX_INPUT_CHARS]
    if content_type == _PLAIN:
        return _clip(_tidy(doc), max_chars)
    text: str | None = None
    try:
        text = trafilatura.extract(
            doc,
            url=url or None,
            output_format="txt",
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
            deduplicate=True,
        )
        if not text:
            text = trafilatura.html2txt(doc)
    except Exception as exc:  # a document lxml cannot take: no text rather than an error
        log.debug("main text extraction failed: %s", type(exc).__name__)
        return ""
    return _clip(_tidy(text or ""), max_chars)


async def extract_async(
    html: str, url: str, *, content_type: str = "text/html", max_chars: int = MAX_TEXT_CHARS
) -> str:
    """:func:`main_text` in a worker thread."""
    return await asyncio.to_thread(
        main_text, html, url, content_type=content_type, max_chars=max_chars
    )


_GB = "gb18030"
_ALIASES = {  # WHATWG: these labels mean the wider encoding
    "gb2312": _GB,
    "gbk": _GB,
    "x-gbk": _GB,
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}
_META_CHARSET = re.compile(
    rb"<meta[^>]{0,512}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]{1,40})", re.I
)


_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "utf-7"}
)


def _codec(label: str | None) -> str | None:
    """A Python codec for a charset label; ``None`` for unknown labels and for codecs
    that are not charsets (base64, zlib, unicode-escape, …)."""
    if not label:
        return None
    name = _ALIASES.get(label.strip().lower(), label.strip().lower())
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return name


def decode_body(
    body: bytes, charset: str | None, content_type: str, *, complete: bool
) -> tuple[str, str]:
    """``(text, encoding)``: the BOM, else the header's charset, else (HTML) a ``<meta>``
    charset in the first 4 KiB, else UTF-8; undecodable bytes become U+FFFD. A body cut
    short (``complete=False``) loses a trailing partial character, not a U+FFFD."""
    if body.startswith(codecs.BOM_UTF8):
        enc: str | None = "utf-8-sig"
    elif body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        enc = "utf-16"
    else:
        enc = _codec(charset)
    if enc is None and content_type != "text/plain":
        m = _META_CHARSET.search(body[:4096])
        enc = _codec(m.group(1).decode("ascii")) if m else None
    enc = enc or "utf-8"
    decoder = codecs.getincrementaldecoder(enc)(errors="replace")
    return decoder.decode(body, final=complete), enc
