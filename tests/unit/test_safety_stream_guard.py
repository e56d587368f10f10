"""safety/stream_guard.py and the stream side of filters/safety.py: for any answer and
any chunking (hypothesis), a blocked word never reaches the client (not even as pieces
that form it once normalised), a masked stream equals the whole-text mask, and every hit
is reported exactly once."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaygate.context import RelayContext
from relaygate.filters.safety import SafetyFilter
from relaygate.safety.base import SafetyHit, SafetySettings, WordEntry
from relaygate.safety.matcher import CompiledPolicy, compile_policy, mask_text
from relaygate.safety.stream_guard import FieldGuard
from relaygate.stages import FilterChain, StopStream

CJK_WORDS = ["敏感", "敏感词", "感词", "违禁内容", "赌"]
ASCII_WORDS = ["ass", "badword", "porn", "xy"]
WORDS = CJK_WORDS + ASCII_WORDS
FILLER = [*"敏感词违禁内容赌博的了 abcdxyporsw.,*_-|/·\u3000。\u200b\u200dＡｓ😀", "e\u0301"]
SEPS = [" ", ".", "*", "\u200b", "\u3000", "·", "-"]


def policy_for(action: str) -> CompiledPolicy:
    return compile_policy([WordEntry(w, 1, "l", "c", action) for w in WORDS], 1, t2s=False)


POLICIES = {a: policy_for(a) for a in ("block", "mask", "log")}


@st.composite
def answers(draw: st.DrawFn) -> str:
    """Filler with listed words dropped in, some spaced out with separators."""
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            word = draw(st.sampled_from(WORDS))
            if draw(st.booleans()):
                seps = st.lists(st.sampled_from(SEPS), max_size=2).map("".join)
                word = "".join(c + draw(seps) for c in word[:-1]) + word[-1]
            parts.append(word)
        elif draw(st.integers(0, 5)) == 0:  # a long run: words end there
            parts.append(draw(st.sampled_from([" ", "\u200b", "。"])) * draw(st.integers(30, 40)))
        else:
            parts.append("".join(draw(st.lists(st.sampled_from(FILLER), max_size=8))))
    return "".join(parts)


@st.composite
def chunkings(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=12)))
    pieces, last = [], 0
    for c in cuts:
        pieces.append(text[last:c])
        last = c
    pieces.append(text[last:])
    return pieces


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(answers())
    return text, draw(chunkings(text))


def run(
    policy: CompiledPolicy, pieces: list[str], mask: str = "***"
) -> tuple[str, list[SafetyHit], bool]:
    guard = FieldGuard(policy, "default", mask)
    out: list[str] = []
    hits: list[SafetyHit] = []
    for piece in [*pieces, None]:
        step = guard.feed(piece) if piece is not None else guard.flush()
        out.append(step.released)
        hits += [_shift(h, step.offset) for h in step.hits]
        if step.blocked is not None:
            return "".join(out), hits, True
    return "".join(out), hits, False


def _shift(h: SafetyHit, by: int) -> SafetyHit:
    return SafetyHit(h.word, h.list_id, h.list_name, h.category, h.action, h.start + by, h.end + by)


def keys(hits: list[SafetyHit]) -> list[tuple[str, int, int]]:
    return sorted((h.word, h.start, h.end) for h in hits)


FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(cases())
def test_block_never_releases_a_listed_word(case: tuple[str, list[str]]) -> None:
    text, pieces = case
    policy = POLICIES["block"]
    released, _, blocked = run(policy, pieces)
    whole = policy.scan(text, "default")
    assert blocked == bool(whole)
    assert policy.scan(released, "default") == []  # normalised: no word from pieces
    norm = policy.normalize(released)
    assert not any(w in norm for w in CJK_WORDS)
    if not whole:
        assert released == text
    else:  # what went out is the text before the first word, at most
        first = min(h.start for h in whole)
        assert text.startswith(released)
        assert len(released) <= first


@FAST
@given(cases(), st.sampled_from(["*", "***", "[已屏蔽]"]))
def test_mask_equals_the_whole_text_mask(case: tuple[str, list[str]], mask: str) -> None:
    text, pieces = case
    policy = POLICIES["mask"]
    released, hits, blocked = run(policy, pieces, mask)
    whole = policy.scan(text, "default")
    assert not blocked
    assert released == mask_text(text, [(h.start, h.end) for h in whole], mask)
    assert keys(hits) == keys(whole)


@FAST
@given(cases())
def test_log_passes_everything_and_reports_each_hit_once(case: tuple[str, list[str]]) -> None:
    text, pieces = case
    policy = POLICIES["log"]
    released, hits, _ = run(policy, pieces)
    assert released == text
    assert keys(hits) == keys(policy.scan(text, "default"))


def test_hold_back_is_the_window_only() -> None:
    policy = POLICIES["log"]  # max_len 7 ("badword"): 6 normalised characters held
    guard = FieldGuard(policy, "default", "*")
    assert guard.feed("这是一段很长的回答").released == "这是一"
    assert guard.held == "段很长的回答"
    assert guard.feed("，").released == ""  # a separator: held with what it follows
    assert guard.feed("好").released == "段"
    assert guard.flush().released == "很长的回答，好"


def test_whole_token_decided_when_the_next_character_comes() -> None:
    policy = POLICIES["block"]
    guard = FieldGuard(policy, "default", "*")
    assert guard.feed("It is a class").released == "It is "
    step = guard.feed("y act")  # "classy": not the word "ass"
    assert step.blocked is None
    guard2 = FieldGuard(policy, "default", "*")
    guard2.feed("an ass")
    assert guard2.feed(" here").blocked is not None


# -- the filter's stream hooks, through FilterChain as the relay calls them -----------


class Holder:
    def __init__(self, policy: CompiledPolicy | None) -> None:
        self.policy = policy


class Audit:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def record(self, ctx: RelayContext, hits: list[SafetyHit], where: str, text: str) -> None:
        self.rows += [(h.word, where, text[h.start : h.end]) for h in hits]


def chunk(delta: dict[str, Any], index: int = 0, finish: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        }
    )


def texts(payloads: list[bytes], key: str = "content") -> str:
    out = []
    for p in payloads:
        for c in orjson.loads(p)["choices"]:
            v = c["delta"].get(key)
            if isinstance(v, str):
                out.append(v)
    return "".join(out)


def chain_for(action: str, audit: Audit) -> FilterChain:
    return FilterChain([SafetyFilter(Holder(POLICIES[action]), audit, SafetySettings())])


def test_filter_blocks_a_word_split_across_chunks() -> None:
    audit = Audit()
    chain = chain_for("block", audit)
    ctx = RelayContext("r1", "chat")
    sent = chain.on_chunks(ctx, [chunk({"role": "assistant", "content": "好的，这是敏"})])
    with pytest.raises(StopStream) as stop:
        chain.on_chunks(ctx, [chunk({"content": "\u200b感的话"})])
    final = [orjson.loads(c.raw) for c in stop.value.final]
    assert final[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert final[-1]["choices"][0]["delta"]["content"] == SafetySettings().notice
    assert "敏" not in texts(sent)
    assert audit.rows == [("敏感", "stream", "敏\u200b感")]


def test_filter_masks_reasoning_and_tool_arguments_and_flushes_at_finish() -> None:
    audit = Audit()
    chain = chain_for("mask", audit)
    ctx = RelayContext("r1", "chat")
    out = chain.on_chunks(ctx, [chunk({"reasoning_content": "想想 por"})])
    out += chain.on_chunks(ctx, [chunk({"reasoning_content": "n 吧"})])
    call = {
        "index": 0,
        "id": "t",
        "type": "function",
        "function": {"name": "f", "arguments": '{"q":"赌'},
    }
    out += chain.on_chunks(ctx, [chunk({"tool_calls": [call]})])
    out += chain.on_chunks(ctx, [chunk({}, finish="tool_calls")])
    out += chain.on_end(ctx)
    assert texts(out, "reasoning_content") == "想想 *** 吧"
    args = "".join(
        tc["function"].get("arguments", "")
        for p in out
        for c in orjson.loads(p)["choices"]
        for tc in c["delta"].get("tool_calls", [])
    )
    assert args == '{"q":"***'
    assert sorted(w for w, _, _ in audit.rows) == ["porn", "赌"]


def test_filter_keeps_choices_apart() -> None:
    chain = chain_for("block", Audit())
    ctx = RelayContext("r1", "chat")
    out = chain.on_chunks(
        ctx, [chunk({"content": "敏"}, index=0), chunk({"content": "感"}, index=1)]
    )
    out += chain.on_chunks(
        ctx, [chunk({"content": "好"}, 0, "stop"), chunk({"content": "好"}, 1, "stop")]
    )
    assert texts(out) == "敏好感好"


def test_a_long_run_of_spaces_does_not_grow_the_window() -> None:
    guard = FieldGuard(POLICIES["block"], "default", "*")
    out = [guard.feed("开始 b")]
    out += [guard.feed(" ") for _ in range(10_000)]
    assert len(guard.held) <= 40
    out += [guard.feed("adword"), guard.flush()]  # not one word across the run
    assert all(s.blocked is None for s in out)
    assert "".join(s.released for s in out) == "开始 b" + " " * 10_000 + "adword"
    spaced = FieldGuard(POLICIES["block"], "default", "*")
    spaced.feed("b" + " " * 30)
    assert spaced.feed("adword!").blocked is not None  # 30 spaces: still one word


def test_filter_is_inert_without_a_policy() -> None:
    chain = FilterChain([SafetyFilter(Holder(None), Audit(), SafetySettings())])
    ctx = RelayContext("r1", "chat")
    raw = chunk({"content": "敏感"})
    assert chain.on_chunks(ctx, [raw]) == [raw]
    assert chain.on_end(ctx) == []


def test_filter_releases_text_sent_after_a_finish_at_the_end() -> None:
    chain = chain_for("mask", Audit())
    ctx = RelayContext("r1", "chat")
    out = chain.on_chunks(ctx, [chunk({"content": "first part"}, 0, "stop")])
    out += chain.on_chunks(ctx, [chunk({"content": "late porn text"})])
    out += chain.on_end(ctx)
    assert texts(out) == "first partlate *** text"
