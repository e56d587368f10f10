"""safety/normalize.py: the normal form (width, case, accents, invisible characters,
separators, traditional → simplified) and the index map back to the original text."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.safety.normalize import BREAK, get_normalizer, index_map

N = get_normalizer(False)
T = get_normalizer(True)


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("f u c k", "fuck"),
        ("F.U.C.K", "fuck"),
        ("f_u-c|k/", "fuck"),
        ("ｆｕｃｋ", "fuck"),  # full-width
        ("ＦＵＣＫ", "fuck"),
        ("fück", "fuck"),  # precomposed accent
        ("fu\u0308ck", "fuck"),  # combining accent
        ("f\u0336u\u0336c\u0336k", "fuck"),  # strike-through marks
        ("𝐟𝐮𝐜𝐤", "fuck"),  # mathematical bold
        ("ﬁne", "fine"),  # ligature: one character, two normalised
        ("敏\u200b感", "敏感"),  # zero-width space
        ("敏\u200d感\ufeff", "敏感"),  # zero-width joiner, BOM
        ("敏\u00ad感", "敏感"),  # soft hyphen
        ("敏\u2060\u2063感", "敏感"),  # word joiner, invisible separator
        ("敏\ufe0f感", "敏感"),  # variation selector
        ("敏 感", "敏感"),
        ("敏\u3000感", "敏感"),  # ideographic space
        ("敏*感", "敏感"),
        ("敏·感", "敏感"),
        ("敏，感。", "敏感"),  # ideographic punctuation
        ("敏😀感", "敏感"),  # emoji (a symbol) between
        ("敏\n\t感", "敏感"),
        ("Straße", "strasse"),  # casefold
        ("", ""),
        ("   ", ""),
    ],
)
def test_normal_form(text: str, normal: str) -> None:
    assert N(text) == normal


def test_traditional_to_simplified_is_optional() -> None:
    assert N("臺灣 敏感詞") == "臺灣敏感詞"
    assert T("臺灣 敏感詞") == "台湾敏感词"
    assert T("ＡＢＣ 發") == "abc发"


def test_japanese_voicing_and_hangul_are_kept() -> None:
    assert N("がん") == "がん"  # not folded to かん
    assert N("한국어") == "한국어"


def test_index_map_points_back_to_the_original() -> None:
    text = "a ﬁ\u200bb,c"
    m = index_map(N, text)
    assert N(text) == "afibc"
    assert m.starts == [0, 2, 2, 4, 6]
    assert m.ends == [1, 3, 3, 5, 7]
    # a separator (not the zero-width space) was removed before "f" and before "c"
    assert m.gap == [False, True, False, False, True, False]


_ALPHABET = st.sampled_from([*"abcXYZ敏感詞 .*\u200b\u3000ｆﬁ😀é", "e\u0301"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=30).map("".join))
def test_normalisation_is_per_character(text: str) -> None:
    """The normal form of a text is the concatenation of its characters' normal forms,
    so a stream window normalises like the whole text, however it was cut, and the
    index map has one entry per normalised character."""
    assert N(text) == "".join(N(c) for c in text)
    assert T(text) == "".join(T(c) for c in text)
    m = index_map(N, text)
    assert len(m.starts) == len(N(text)) == len(m.ends) == len(m.gap) - 1
    for k, (s, e) in enumerate(zip(m.starts, m.ends, strict=True)):
        assert N(text[s:e]).startswith(N(text)[k]) or N(text)[k] in N(text[s:e])


def _reference_map(text: str) -> tuple[list[int], list[bool]]:
    """The index map, one character at a time (what index_map must equal)."""
    starts: list[int] = []
    gap: list[bool] = []
    pending = False
    run = 0
    for i, ch in enumerate(text):
        out = N(ch)
        if not out:
            pending = pending or (unicodedata.category(ch)[0] in "ZPSC" and not _invisible(ch))
            run += 1
            continue
        for _ in out:
            starts.append(i)
            gap.append(pending or run > BREAK)
            pending = False
            run = 0
    gap.append(pending or run > BREAK)
    return starts, gap


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cf", "Me", "Mn") or ch in "\u115f\u1160\u3164\uffa0"


_MAP_ALPHABET = st.sampled_from(
    [
        *"ab 敏感\u200b\u00ad\u3000.,ﬁ㎏😀\ufe0f\x00\x01\x02\n",
        *("\U000e0100", "\U0001d41f", "e\u0301", "\u200b" * 33, " " * 20),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_MAP_ALPHABET, max_size=40).map("".join))
def test_index_map_equals_the_per_character_reference(text: str) -> None:
    m = index_map(N, text)
    starts, gap = _reference_map(text)
    assert m.starts == starts
    assert m.ends == [s + 1 for s in starts]
    assert m.gap == gap
    # a break is a run of more than BREAK removed characters
    at = [*m.starts, len(text)]
    assert all(at[k] - (at[k - 1] + 1 if k else 0) > BREAK for k in m.breaks)


def test_the_table_kept_between_processes_is_the_table_built() -> None:
    """The cached translate table (a file read by the next process) equals a fresh build,
    and a damaged file is rebuilt rather than trusted."""
    from relaygate.safety import normalize

    built = normalize._build_base_table()
    normalize._base_table.cache_clear()
    assert normalize._base_table() == built  # written (or read) through the cache file
    path = normalize._cache_file()
    assert path is not None and path.exists()
    normalize._base_table.cache_clear()
    assert normalize._base_table() == built  # read back from the file
    path.write_bytes(b"{not json")
    normalize._base_table.cache_clear()
    assert normalize._base_table() == built  # damaged: built again
