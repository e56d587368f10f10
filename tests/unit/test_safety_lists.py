"""Word-list validation, the import formats and their export, the audit excerpt and the
RELAYGATE_SAFETY_* settings (``relaygate.safety.lists``, ``audit``, ``config``)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from relaygate.safety.audit import EXCERPT_CHARS, excerpt
from relaygate.safety.config import safety_settings
from relaygate.safety.lists import (
    MAX_WORD_LEN,
    ListRefused,
    check_words,
    entries_of,
    export_words,
    parse_words,
)
from relaygate.storage.safety import SafetyListRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LIST = SafetyListRecord(1, "porn", "sexual", "block", None, True, "", NOW, NOW)


def words(body: str | bytes, fmt: str = "txt") -> list[tuple[str, str | None, str | None]]:
    raw = body.encode() if isinstance(body, str) else body
    return parse_words(raw, fmt).words


def refused(body: str | bytes, fmt: str = "txt") -> str:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(ListRefused) as info:
        parse_words(raw, fmt)
    assert info.value.code == "invalid_word_list"
    return info.value.message


def test_txt_lines_comments_and_blank_lines() -> None:
    body = "# a comment\n\n  敏感词  \r\nbad word\n\\#hashtag\n   \n"
    assert words(body) == [
        ("敏感词", None, None),
        ("bad word", None, None),
        ("#hashtag", None, None),
    ]


def test_txt_bom_and_non_utf8() -> None:
    assert words("\ufeffword\n".encode()) == [("word", None, None)]
    assert "not UTF-8" in refused(b"ok\n\xff\xfe bad\n")


def test_duplicates_are_skipped_and_reported() -> None:
    check = parse_words("abc\nabc\nＡＢＣ\na b c\nother\n".encode(), "txt")
    assert [w for w, _, _ in check.words] == ["abc", "other"]
    assert check.duplicates == ["abc", "ＡＢＣ", "a b c"]


def test_invalid_entries_are_named_first_20() -> None:
    long_word = "x" * (MAX_WORD_LEN + 1)
    msg = refused(f"ok\n{long_word}\nbell\x07\n\u200b\u200b\n")
    assert msg.startswith("3 invalid entries, nothing was saved")
    assert f"line 2: longer than {MAX_WORD_LEN} characters" in msg
    assert "line 3: control characters" in msg
    assert "line 4:" in msg and "nothing left to match" in msg
    assert "no patterns" in msg
    many = "\n".join("\x01" for _ in range(30))
    msg = refused(many)
    assert msg.startswith("30 invalid entries") and "and 10 more" in msg
    assert "line 20:" in msg and "line 21:" not in msg


def test_exactly_100_characters_is_accepted() -> None:
    assert words("y" * MAX_WORD_LEN) == [("y" * MAX_WORD_LEN, None, None)]


def test_csv_columns_header_and_quotes() -> None:
    body = 'word,category,action\n"a, b",violence,mask\nplain\nlogged,,log\n# comment,x\n'
    assert words(body, "csv") == [
        ("a, b", "violence", "mask"),
        ("plain", None, None),
        ("logged", None, "log"),
    ]
    msg = refused("w,c,block,extra\nx,c,explode\n", "csv")
    assert "line 1: more than 3 columns" in msg
    assert "line 2: action must be one of block, mask, log" in msg


def test_json_shapes() -> None:
    doc = ["one", {"word": "two", "category": "c", "action": "mask"}]
    assert words(orjson.dumps(doc), "json") == [("one", None, None), ("two", "c", "mask")]
    assert words(orjson.dumps({"name": "x", "words": ["three"]}), "json") == [("three", None, None)]
    msg = refused(orjson.dumps(["", "  ", 5, {"word": "w", "regex": ".*"}]), "json")
    assert "entry 0: empty word" in msg
    assert "entry 1: whitespace-only word" in msg
    assert "entry 2: a word must be a string, not int" in msg
    assert "entry 3: unknown field(s) regex" in msg
    assert "not valid JSON" in refused(b"[oops", "json")
    assert "array of words" in refused(b'{"words": 3}', "json")


def test_unknown_format() -> None:
    with pytest.raises(Exception, match="format must be one of txt, csv, json"):
        parse_words(b"x", "xml")


@pytest.mark.parametrize("fmt", ["txt", "csv", "json"])
def test_export_import_round_trip(fmt: str) -> None:
    stored = [("#tag", None, None), ('a, "quoted" word', None, None), ("敏感", None, None)]
    if fmt != "txt":  # txt carries words only
        stored.append(("masked", "violence", "mask"))
    body, kind = export_words(LIST, stored, fmt)
    assert kind.split(";")[0] in ("text/plain", "text/csv", "application/json")
    assert parse_words(body, fmt).words == stored


def test_check_words_entries_and_groups() -> None:
    check = check_words([("w", "", "", "x"), ("v", "cat", "MASK", "y")])
    assert check.words == [("w", None, None), ("v", "cat", "mask")]
    lst = SafetyListRecord(7, "l", "base", "log", ("vip",), True, "", NOW, NOW)
    got = entries_of([lst], [(7, "w", None, None), (7, "v", "cat", "mask"), (8, "z", None, None)])
    assert [(e.word, e.category, e.action, e.groups) for e in got] == [
        ("w", "base", "log", ("vip",)),
        ("v", "cat", "mask", ("vip",)),
    ]


def test_excerpt_keeps_the_hit_in_the_middle() -> None:
    text = "a" * 500 + "HIT" + "b" * 500
    got = excerpt(text, 500, 503)
    assert len(got) <= EXCERPT_CHARS and "HIT" in got
    assert got.startswith("…") and got.endswith("…")
    assert excerpt("short HIT text", 6, 9) == "short HIT text"
    assert excerpt("HIT" + "c" * 400, 0, 3).startswith("HIT")
    huge = excerpt("z" * 1000, 0, 1000)
    assert len(huge) <= EXCERPT_CHARS


def test_settings_from_the_environment() -> None:
    s = safety_settings({})
    assert s.enabled and s.check_input and s.check_output and not s.t2s
    s = safety_settings(
        {
            "RELAYGATE_SAFETY": "0",
            "RELAYGATE_SAFETY_OUTPUT": "off",
            "RELAYGATE_SAFETY_T2S": "1",
            "RELAYGATE_SAFETY_NOTICE": "",
            "RELAYGATE_SAFETY_MASK": "*",
            "RELAYGATE_SAFETY_MODERATION_MODEL": "omni-moderation-latest",
            "RELAYGATE_SAFETY_MODERATION_TIMEOUT": "0.5",
        }
    )
    assert not s.enabled and not s.check_output and s.t2s and s.notice == "" and s.mask == "*"
    assert s.moderation_model == "omni-moderation-latest" and s.moderation_timeout == 0.5
    for env, match in [
        ({"RELAYGATE_SAFETY": "maybe"}, "RELAYGATE_SAFETY must be 1 or 0"),
        ({"RELAYGATE_SAFETY_MASK": ""}, "RELAYGATE_SAFETY_MASK must not be empty"),
        ({"RELAYGATE_SAFETY_MODERATION_TIMEOUT": "x"}, "must be a number"),
        ({"RELAYGATE_SAFETY_MODERATION_TIMEOUT": "100"}, "between"),
        ({"RELAYGATE_SAFETY_MODERATION_MODEL": "a b"}, "not a model name"),
    ]:
        with pytest.raises(ValueError, match=match):
            safety_settings(env)
