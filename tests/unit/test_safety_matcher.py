"""safety/matcher.py: the compiled policy — overlapping hits with original offsets,
groups, the whole-token rule, masks, and bypass attempts (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.safety.base import WordEntry
from relaygate.safety.matcher import compile_policy, mask_text


def entry(
    word: str, action: str = "block", groups: tuple[str, ...] = (), list_id: int = 1
) -> WordEntry:
    return WordEntry(word, list_id, f"list{list_id}", f"cat{list_id}", action, groups)


def found(policy: object, text: str, group: str = "default") -> list[tuple[str, int, int]]:
    hits = policy.scan(text, group)  # type: ignore[attr-defined]
    return sorted((h.word, h.start, h.end) for h in hits)


def test_empty_policy() -> None:
    policy = compile_policy([], 1, t2s=False)
    assert policy.max_len == 0
    assert policy.scan("anything at all", "default") == []


def test_offsets_are_in_the_original_text() -> None:
    policy = compile_policy([entry("敏感"), entry("Fuck")], 3, t2s=False)
    assert policy.revision == 3
    text = "前 敏\u200b 感 后 ｆ.u.c.k!"
    hits = found(policy, text)
    assert hits == [("Fuck", 9, 16), ("敏感", 2, 6)]
    assert text[2:6] == "敏\u200b 感"
    assert text[9:16] == "ｆ.u.c.k"


def test_overlapping_words_are_all_found() -> None:
    policy = compile_policy([entry("敏感"), entry("敏感词"), entry("感词")], 1, t2s=False)
    assert found(policy, "这是敏感词") == [("感词", 3, 5), ("敏感", 2, 4), ("敏感词", 2, 5)]
    assert policy.max_len == 3


def test_groups_filter_at_scan_time() -> None:
    policy = compile_policy(
        [entry("vip", groups=("free",), list_id=1), entry("vip", "log", list_id=2)], 1, t2s=False
    )
    assert [(h.list_id, h.action) for h in policy.scan("a vip b", "free")] == [
        (1, "block"),
        (2, "log"),
    ]
    assert [(h.list_id, h.action) for h in policy.scan("a vip b", "paid")] == [(2, "log")]


def test_short_ascii_words_match_whole_tokens_only() -> None:
    policy = compile_policy([entry("ass")], 1, t2s=False)
    assert found(policy, "the class assets passed") == []  # new-api #6657
    assert found(policy, "the ass!") == [("ass", 4, 7)]
    assert found(policy, "a s s") == [("ass", 0, 5)]
    assert found(policy, "ASS") == [("ass", 0, 3)]
    assert found(policy, "ａｓｓ") == [("ass", 0, 3)]
    assert found(policy, "敏ass感") == [("ass", 1, 4)]  # CJK around it is a boundary


def test_hits_across_separators_need_token_boundaries() -> None:
    policy = compile_policy([entry("porn"), entry("sex"), entry("fuck")], 1, t2s=False)
    assert found(policy, "top or not") == []
    assert found(policy, "it has expired") == []
    assert found(policy, "mother f u c k e r") == [("fuck", 7, 14)]
    assert found(policy, "motherfucker") == [("fuck", 6, 10)]  # long words: substrings


def test_traditional_words_match_simplified_text_and_back() -> None:
    policy = compile_policy([entry("敏感詞")], 1, t2s=True)
    assert found(policy, "有敏感词") == [("敏感詞", 1, 4)]
    assert found(policy, "有敏感詞") == [("敏感詞", 1, 4)]
    plain = compile_policy([entry("敏感詞")], 1, t2s=False)
    assert found(plain, "有敏感词") == []


def test_words_of_only_separators_are_skipped_and_duplicates_merged() -> None:
    policy = compile_policy(
        [entry("***"), entry("敏感"), entry("敏 感"), entry("ＳＥＸ")], 1, t2s=False
    )
    assert policy.skipped == 1
    assert len(policy) == 2
    assert len(policy.scan("敏感", "default")) == 1


def test_mask_text() -> None:
    assert mask_text("abcdef", [(1, 3), (2, 4)], "*") == "a***ef"  # overlapping: merged
    assert mask_text("abcdef", [(1, 3), (3, 5)], "[x]") == "a[x][x]f"  # touching: apart
    assert mask_text("abc", [], "*") == "abc"


CJK_WORDS = ["敏感", "违禁词", "暴力内容", "赌博"]
ASCII_WORDS = ["badword", "porn", "kill"]
SEPARATORS = [
    " ",
    ".",
    "*",
    "_",
    "-",
    "|",
    "/",
    "·",
    "\u3000",
    "、",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\u00ad",
]
WIDE = {c: chr(ord(c) + 0xFEE0) for c in "abcdefghijklmnopqrstuvwxyz"}


@st.composite
def disguised(draw: st.DrawFn) -> tuple[str, str]:
    word = draw(st.sampled_from(CJK_WORDS + ASCII_WORDS))
    out = []
    for i, ch in enumerate(word):
        if draw(st.booleans()):
            ch = WIDE.get(ch, ch)
        if draw(st.booleans()):
            ch = ch.upper()
        out.append(ch)
        if i < len(word) - 1:
            out.append("".join(draw(st.lists(st.sampled_from(SEPARATORS), max_size=3))))
    return word, "".join(out)


@settings(max_examples=300, deadline=None)
@given(
    disguised(),
    st.sampled_from(["", "前文 ", "start: ", "中文"]),
    st.sampled_from(["", " 后文", "!", "。"]),
)
def test_bypass_attempts_are_caught(case: tuple[str, str], before: str, after: str) -> None:
    word, disguise = case
    policy = compile_policy([entry(w) for w in CJK_WORDS + ASCII_WORDS], 1, t2s=False)
    text = before + disguise + after
    hits = policy.scan(text, "anyone")
    assert [h.word for h in hits] == [word]
    assert text[hits[0].start : hits[0].end] == disguise.strip("".join(SEPARATORS))
