"""Text normalisation for the word lists (docs/safety.md, "Normalisation").

Every character maps to zero or more characters through one precomputed table, so a text
is normalised with a single ``str.translate`` call (C speed; this runs on every stream
chunk):

- NFKC per character (full-width → half-width, compatibility forms, ligatures), then
  ``casefold``;
- Latin, Greek and Cyrillic letters lose their accents (``ü`` → ``u``; the combining
  diacritical marks of the NFKD form are dropped), so a decomposed and a precomposed
  accent match alike;
- invisible characters are removed: format characters (zero-width space/joiners U+200B–
  U+200F, U+2060–U+2064, U+FEFF, soft hyphen, bidi controls), variation selectors,
  enclosing marks, the combining diacritical blocks, Hangul fillers;
- separators are removed: whitespace, controls, every punctuation and symbol character
  (``* . _ - | / ·``, ideographic space and punctuation, emoji), so ``f u c k``,
  ``f.u.c.k``, ``敏 感`` and ``敏*感`` all read as one word. Removing them everywhere (not
  only between letters) gives the same matches: a word never starts or ends with one.
  Across ASCII words this would join ``has expired`` into ``hasexpired``; the matcher
  therefore accepts a hit that spans a removed separator only on whole ASCII tokens
  (``matcher.py``);
- optionally traditional → simplified Chinese, character by character (OpenCC ``t2s``
  table, read once; per character so the result never depends on where a stream was cut).

The index map back to the original text (:func:`index_map`) is only built when the
automaton found something, which is rare.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import orjson

__all__ = ["BREAK", "NormMap", "Normalizer", "get_normalizer", "index_map"]

#: a run of more than this many removed characters (spaces, punctuation, invisible
#: characters) ends a word: no listed word is read across it, and a stream window holding
#: one is released (so a long run of whitespace never grows the window)
BREAK = 32

#: removed: they change nothing visible and are used to split a word
_INVISIBLE_RANGES = (
    (0x0300, 0x036F),  # combining diacritical marks
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),  # combining marks for symbols
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFE20, 0xFE2F),  # combining half marks
    (0xE0100, 0xE01EF),  # variation selectors supplement
    (0x115F, 0x1160),  # Hangul fillers
    (0x3164, 0x3164),
    (0xFFA0, 0xFFA0),
)
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SEPARATOR_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf"})
_SEPARATOR_CATEGORIES |= {"Po", "Sm", "Sc", "Sk", "So"}
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Me"})


def _accentless(ch: str) -> bool:
    """Scripts whose accents are stripped (their NFKD marks are diacritics)."""
    cp = ord(ch)
    return cp < 0x0530 or 0x1E00 <= cp < 0x2000


def _invisible(cp: int) -> bool:
    if unicodedata.category(chr(cp)) in _INVISIBLE_CATEGORIES:
        return True
    return any(lo <= cp <= hi for lo, hi in _INVISIBLE_RANGES)


def _clean(out: str) -> str:
    """Drop the invisible characters and separators a normalised form may contain."""
    return "".join(
        c
        for c in out
        if not _invisible(ord(c)) and unicodedata.category(c) not in _SEPARATOR_CATEGORIES
    )


def _normal_form(ch: str) -> str:
    out = unicodedata.normalize("NFKC", ch).casefold()
    out = unicodedata.normalize("NFKC", out)
    if any(_accentless(c) for c in out):
        out = unicodedata.normalize("NFKD", out)
        out = _clean(out)
        out = unicodedata.normalize("NFC", out) if out else out
    return _clean(out)


def _cache_file() -> Path | None:
    """Where the built table is kept between processes: a private directory of this user
    under the temporary directory, named after this module's source, the Unicode data and
    the Python version (so any change builds it again). None when that directory is not
    safely ours (another user made it, or others may write to it)."""
    key = hashlib.sha256(
        Path(__file__).read_bytes() + unicodedata.unidata_version.encode() + sys.version.encode()
    ).hexdigest()[:24]
    folder = Path(tempfile.gettempdir()) / f"relaygate-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.stat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return folder / f"normalize-{key}.json"


@cache
def _base_table() -> dict[int, str | None]:
    """The translate table: code point → replacement ("" or None: removed). Code points
    not in it are kept as they are (most CJK ideographs, lower-case ASCII). Building it
    walks every code point (about 2 s of CPU), so the result is kept in a file that the
    next process reads in milliseconds (:func:`_cache_file`)."""
    path = _cache_file()
    if path is not None:
        try:
            raw = orjson.loads(path.read_bytes())
            return {int(cp): out for cp, out in raw.items()}
        except (OSError, ValueError, AttributeError):
            pass  # missing or damaged: build it
    table = _build_base_table()
    if path is not None:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(orjson.dumps({str(cp): out for cp, out in table.items()}))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
    return table


def _build_base_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    category = unicodedata.category
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue  # surrogates never reach here in a str from JSON
        ch = chr(cp)
        cat = category(ch)
        if cat == "Cn" or cat == "Co":
            continue  # unassigned / private use: kept
        if cat in _SEPARATOR_CATEGORIES or _invisible(cp):
            table[cp] = None
            continue
        if cat == "Lo" and 0x3400 <= cp <= 0x9FFF:
            continue  # CJK ideographs: NFKC leaves them
        out = _normal_form(ch)
        if out != ch:
            table[cp] = out or None
    return table


@cache
def _t2s_chars() -> dict[str, str]:
    """Traditional → simplified, one character at a time (OpenCC's ``t2s`` dictionary)."""
    import opencc  # a runtime dependency; imported only when t2s is switched on

    conv = opencc.OpenCC("t2s")
    cjk = [chr(cp) for cp in range(0x3400, 0x9FFF + 1)]
    cjk += [chr(cp) for cp in range(0xF900, 0xFAFF + 1)]  # compatibility ideographs
    cjk += [chr(cp) for cp in range(0x20000, 0x2FA1F + 1)]  # extension B.. and supplement
    # OpenCC converts phrases; separated by a newline each character stands alone
    converted = conv.convert("\n".join(cjk)).split("\n")
    out: dict[str, str] = {}
    if len(converted) != len(cjk):  # never seen; fall back to one call per character
        converted = [conv.convert(c) for c in cjk]
    for src, dst in zip(cjk, converted, strict=True):
        if dst != src and len(dst) == 1:
            out[src] = dst
    return out


@cache
def _t2s_table() -> dict[int, str | None]:
    base = _base_table()
    t2s = _t2s_chars()
    table = dict(base)
    for cp, out in base.items():  # a compatibility form that becomes a traditional character
        if out:
            conv = "".join(t2s.get(c, c) for c in out)
            if conv != out:
                table[cp] = conv
    for src, dst in t2s.items():
        cp = ord(src)
        if cp in base:
            continue
        table[cp] = dst
    return table


@cache
def _bmp_chars() -> tuple[str, ...]:
    return tuple(chr(cp) for cp in range(0x10000))


@dataclass(frozen=True, slots=True)
class NormMap:
    """Where each normalised character came from: ``starts[k]``/``ends[k]`` are the
    original offsets of the character that produced normalised character ``k``;
    ``gap[k]`` says a separator (not merely an invisible character) was removed between
    normalised characters ``k-1`` and ``k``, or a run of more than :data:`BREAK` removed
    characters; ``gap[len]`` is for the end of the text. ``breaks``: the ``k`` (in order)
    after such a long run: no word is read across one."""

    starts: list[int]
    ends: list[int]
    gap: list[bool]
    breaks: list[int]


class Normalizer:
    """One translate table (with or without traditional → simplified).

    ``str.translate`` with a dict looks each character up as an int key; a list indexed
    by code point is about twice as fast, so the Basic Multilingual Plane has one (65,536
    one-character strings, ~5 MB, shared by the two tables) and the dict serves texts
    with characters beyond it (emoji, CJK extension B…)."""

    __slots__ = ("bmp", "lens", "t2s", "table")

    def __init__(self, t2s: bool) -> None:
        self.t2s = t2s
        self.table = _t2s_table() if t2s else _base_table()
        bmp: list[str | None] = list(_bmp_chars())
        for cp, out in self.table.items():
            if cp <= 0xFFFF:
                bmp[cp] = out or None
        self.bmp = bmp
        #: how many normalised characters each BMP character becomes (0: removed)
        self.lens = bytes(len(c) if c else 0 for c in bmp)

    def __call__(self, text: str) -> str:
        out = text.translate(self.bmp)  # characters beyond the list are left as they are
        if out.isascii() or _ASTRAL.search(out) is None:
            return out
        return text.translate(self.table)

    def out_len(self, ch: str) -> int:
        """How many normalised characters ``ch`` becomes."""
        cp = ord(ch)
        if cp not in self.table:
            return 1
        out = self.table[cp]
        return len(out) if out else 0

    def is_separator(self, ch: str) -> bool:
        return unicodedata.category(ch) in _SEPARATOR_CATEGORIES


@cache
def get_normalizer(t2s: bool) -> Normalizer:
    """The shared normaliser (its table is built once per process, ~1 s, on first use)."""
    return Normalizer(t2s)


@cache
def _marks() -> tuple[list[str], dict[int, str]]:
    """Translate tables that keep a text's length and mark each removed separator
    ``\x02``, each other removed character ``\x00`` and each character that becomes
    several ``\x01`` (the same in both tables: t2s maps one character to one)."""
    table = _base_table()
    marks: dict[int, str] = {}
    for cp, out in table.items():
        if not out:
            sep = unicodedata.category(chr(cp)) in _SEPARATOR_CATEGORIES
            marks[cp] = "\x02" if sep else "\x00"
        elif len(out) > 1:
            marks[cp] = "\x01"
    for cp in (0, 1, 2):  # the marks themselves (controls: removed separators)
        marks[cp] = "\x02"
    bmp = list(_bmp_chars())
    for cp, mark in marks.items():
        if cp <= 0xFFFF:
            bmp[cp] = mark
    return bmp, marks


_RUNS = re.compile("[\x00\x02]+|\x01")


def index_map(norm: Normalizer, text: str) -> NormMap:
    """The index map of ``text`` (see :class:`NormMap`), built from the runs of removed
    characters (and the rare characters that become several); used only on hits."""
    bmp, marks = _marks()
    marked = text.translate(bmp)
    if not marked.isascii() and _ASTRAL.search(marked) is not None:
        marked = text.translate(marks)
    table = norm.table
    starts: list[int] = []
    gaps: list[int] = []
    breaks: list[int] = []
    pos = 0
    for m in _RUNS.finditer(marked):
        a, b = m.span()
        if a > pos:
            starts.extend(range(pos, a))
        if marked[a] == "\x01":  # one character, several normalised ones
            out = table.get(ord(text[a])) or ""
            starts.extend([a] * len(out))
        elif b - a > BREAK:
            gaps.append(len(starts))
            breaks.append(len(starts))
        elif "\x02" in m.group():
            gaps.append(len(starts))
        pos = b
    starts.extend(range(pos, len(text)))
    gap = [False] * (len(starts) + 1)
    for k in gaps:
        gap[k] = True
    return NormMap(starts, [s + 1 for s in starts], gap, breaks)
