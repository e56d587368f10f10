"""Main-text extraction for online search (relaygate.online.extract) on literal HTML."""

from __future__ import annotations

import asyncio
import threading

from relaygate.online import extract
from relaygate.online.extract import MAX_TEXT_CHARS, extract_async, main_text

NEWS = """<!doctype html>
<html><head><title>Gateway release notes</title>
<script>var tracking = "should never appear";</script>
<style>body { color: red }</style></head>
<body>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/pricing">Pricing</a></li>
<li><a href="/careers">Careers</a></li><li><a href="/login">Log in</a></li></ul></nav></header>
<aside class="sidebar"><div class="ad">Sponsored: best VPN deals, click here now</div>
<ul><li><a href="/p/1">Popular post one</a></li><li><a href="/p/2">Popular post two</a></li></ul></aside>
<main><article>
<h1>Version 2 routes around failing channels</h1>
<p>The new release keeps a health score for every upstream channel and routes requests
away from channels whose recent error rate is high. Operators can see the score in the
admin console and reset it by hand when a provider recovers.</p>
<p>Retries now respect the client's deadline: the gateway stops trying further channels
once the remaining time is shorter than the channel's typical latency, and it reports
the attempts in the request log.</p>
<p>Streaming answers are metered chunk by chunk, so a stream cut by a disconnect is still
billed for what was delivered and nothing more.</p>
</article></main>
<footer><p>© 2026 Example Corp. All rights reserved. Privacy policy. Terms of use.</p></footer>
</body></html>"""

CHINESE = """<html lang="zh"><head><meta charset="utf-8"><title>网关发布说明</title></head>
<body><div class="nav"><a href="/">首页</a> | <a href="/about">关于我们</a> | <a href="/ads">广告合作</a></div>
<div class="content"><h1>新版本支持联网搜索</h1>
<p>新版本的网关支持联网搜索：请求可以要求最新的网页结果，网关先搜索，再把编号的来源放在对话之前，并在回答中返回引用。</p>
<p>运营者可以选择搜索后端，包括本地全文索引、SearXNG 以及其他服务。抓取网页时会拒绝私有地址和回环地址，防止服务器端请求伪造。</p>
<p>如果搜索后端超时或失败，请求会在没有搜索结果的情况下继续回答，并在响应中说明原因。</p>
</div><div class="footer">版权所有 © 2026 备案号 京ICP备00000000号</div></body></html>"""


def test_article_kept_and_boilerplate_dropped() -> None:
    text = main_text(NEWS, "https://example.com/news/v2")
    assert "keeps a health score for every upstream channel" in text
    assert "Retries now respect the client's deadline" in text
    assert "metered chunk by chunk" in text
    for junk in ("should never appear", "color: red", "Careers", "Log in", "best VPN deals"):
        assert junk not in text, junk
    assert "<p>" not in text and "<a " not in text


def test_chinese_page() -> None:
    text = main_text(CHINESE, "https://example.cn/notes")
    assert "网关支持联网搜索" in text
    assert "防止服务器端请求伪造" in text
    assert "广告合作" not in text
    assert "京ICP备" not in text


def test_plain_text_passes_through_tidied() -> None:
    plain = "Line one\r\n\r\n\r\n\r\nLine   two\twith\x00 control\x07 chars  "
    assert main_text(plain, "https://x.test/a.txt", content_type="text/plain") == (
        "Line one\n\nLine two with control chars"
    )
    # markup in a text/plain page is text, not markup
    assert main_text("<b>bold</b>", "", content_type="text/plain") == "<b>bold</b>"


def test_short_page_falls_back_to_its_visible_text() -> None:
    assert main_text("<html><body><p>Tiny page.</p></body></html>", "") == "Tiny page."


def test_output_capped() -> None:
    para = "<p>" + "word " * 400 + "</p>"
    html = f"<html><body><article>{para * 40}</article></body></html>"
    text = main_text(html, "https://example.com/long")
    assert len(text) <= MAX_TEXT_CHARS and text.endswith("…")
    assert len(main_text(html, "", max_chars=500)) <= 500
    plain = main_text("x" * 50_000, "", content_type="text/plain", max_chars=100)
    assert len(plain) == 100 and plain.endswith("…")


def test_hostile_inputs_give_text_or_nothing() -> None:
    for html in (
        "",
        "   ",
        "<",
        "<<<>>>",
        "\x00\x01\x02",
        "<html>" * 10_000,
        "<div>" * 5_000 + "deep" + "</div>" * 5_000,
        "<?xml version='1.0' encoding='utf-8'?><rss><channel><item>x</item></channel></rss>",
        "<html><body><script>" + "a" * 100_000 + "</script></body></html>",
    ):
        out = main_text(html, "not a url at all")
        assert isinstance(out, str) and len(out) <= MAX_TEXT_CHARS
        assert "aaaa" not in out
    assert main_text(NEWS, "", max_chars=0) == ""


async def test_extract_async_runs_off_the_event_loop(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real = extract.main_text

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(extract, "main_text", spy)
    texts = await asyncio.gather(
        extract_async(NEWS, "https://example.com/news/v2"),
        extract_async(CHINESE, "https://example.cn/notes"),
        extract_async("plain words", "", content_type="text/plain"),
    )
    assert "health score" in texts[0] and "联网搜索" in texts[1] and texts[2] == "plain words"
    assert len(seen) == 3 and loop_thread not in seen
