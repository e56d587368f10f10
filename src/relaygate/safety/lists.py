"""Word lists: validating entries, the import and export formats, and :class:`ListHolder`,
the :class:`~relaygate.safety.base.PolicyHolder` that keeps the compiled policy of this
worker in step with the database (docs/safety.md).

Entries are plain words, matched after normalisation (``safety/normalize.py``). Patterns
(regular expressions) are not accepted: a word is literal text, so there is no pattern that
could backtrack catastrophically, and the Aho–Corasick matcher scans in linear time whatever
the lists hold. A list with any invalid entry is refused whole, with a message naming the
entries (the first 20), and nothing is saved.

Formats (``txt``, ``csv``, ``json``), the same for import and export:

* ``txt``: one word per line; blank lines and lines starting with ``#`` are skipped (a word
  that starts with ``#`` is written ``\\#…``); surrounding whitespace is trimmed.
* ``csv``: ``word[,category][,action]`` per row (RFC 4180 quoting; an empty category or
  action means the list's); a first row ``word,category,action`` is a header; rows starting
  with ``#`` are comments.
* ``json``: an array of words (strings or ``{"word", "category"?, "action"?}``), or an
  object with such an array in ``words`` (what export writes, with the list's settings
  beside it; import reads only ``words``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from relaygate.errors import InvalidRequest
from relaygate.safety.base import ACTIONS, Policy, WordEntry
from relaygate.storage.safety import SafetyListRecord, SafetyStore, StoredWord

__all__ = [
    "FORMATS",
    "MAX_ENTRIES",
    "MAX_WORD_LEN",
    "Compile",
    "ListHolder",
    "ListRefused",
    "WordCheck",
    "check_words",
    "export_words",
    "parse_words",
]

log = logging.getLogger("relaygate.safety")

FORMATS = ("txt", "csv", "json")
MAX_WORD_LEN = 100  # characters of a word as entered
MAX_CATEGORY_LEN = 64
MAX_ENTRIES = 500_000  # words in one import
_SHOWN = 20  # invalid entries named in a refusal

#: ``compile_policy(entries, revision, *, t2s)`` of ``safety/matcher.py``
Compile = Callable[..., Policy]
#: (text as entered, category or None, action or None, where it was: "line 3", "entry 2")
Raw = tuple[Any, Any, Any, str]


class ListRefused(InvalidRequest):
    """A list (or an import) with invalid entries: nothing was saved."""

    default_code = "invalid_word_list"


def _fallback_normalize(text: str) -> str:
    """What a word is matched as, when ``safety/normalize.py`` is not there: NFKC, case
    folded, without format (zero-width), separator and punctuation characters."""
    out = []
    for ch in unicodedata.normalize("NFKC", text).casefold():
        if unicodedata.category(ch)[0] in "LNMS":
            out.append(ch)
    return "".join(out)


def _normalizer() -> Callable[[str], str]:
    """The matcher's own normalisation (``safety/normalize.py``), without t2s: a word
    that is empty once normalised could never be found."""
    try:
        from relaygate.safety.normalize import get_normalizer
    except ImportError:  # pragma: no cover - the normaliser ships with the matcher
        return _fallback_normalize
    return get_normalizer(False)


def _build_tables(t2s: bool) -> None:
    try:
        from relaygate.safety.normalize import get_normalizer
    except ImportError:  # pragma: no cover
        return
    get_normalizer(False)
    if t2s:
        get_normalizer(True)


@dataclass(slots=True)
class WordCheck:
    """Valid, distinct words to store, and the entries skipped as duplicates (the same
    word, or one that normalises to a word already given)."""

    words: list[StoredWord]
    duplicates: list[str]


class _Invalid(str):
    """An entry the format already found wrong (a CSV row with four columns): its reason."""


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _problem(word: Any, category: Any, action: Any) -> str | None:
    if isinstance(word, _Invalid):
        return str(word)
    if not isinstance(word, str):
        return f"a word must be a string, not {type(word).__name__}"
    if not word.strip():
        return "empty word" if not word else "whitespace-only word"
    if len(word.strip()) > MAX_WORD_LEN:
        return f"longer than {MAX_WORD_LEN} characters: {_show(word)}"
    if any(unicodedata.category(c) == "Cc" for c in word):
        return f"control characters in {_show(word)}"
    if category is not None and (
        not isinstance(category, str)
        or len(category) > MAX_CATEGORY_LEN
        or any(unicodedata.category(c) == "Cc" for c in category)
    ):
        return f"category must be text of at most {MAX_CATEGORY_LEN} characters: {category!r}"
    if action is not None and action not in ACTIONS:
        return f"action must be one of {', '.join(ACTIONS)}, not {action!r}"
    return None


def check_words(raw: Iterable[Raw]) -> WordCheck:
    """Every entry checked; :class:`ListRefused` naming the invalid ones (first 20) if any.
    Words are trimmed; an empty category or action is the list's (None)."""
    norm = _normalizer()
    problems: list[str] = []
    words: list[StoredWord] = []
    dups: list[str] = []
    seen: set[str] = set()
    count = 0
    for word, category, action, where in raw:
        count += 1
        if count > MAX_ENTRIES:
            raise ListRefused(f"An import holds at most {MAX_ENTRIES} words; nothing was saved.")
        category = category.strip() if isinstance(category, str) else category
        action = action.strip().lower() if isinstance(action, str) else action
        category, action = category or None, action or None
        why = _problem(word, category, action)
        if why is None:
            word = word.strip()
            key = norm(word)
            if not key:
                why = f"{_show(word)} has nothing left to match once normalised"
            elif key in seen:
                dups.append(word)
                continue
            else:
                seen.add(key)
                words.append((word, category, action))
                continue
        problems.append(f"{where}: {why}")
    if problems:
        shown = "; ".join(problems[:_SHOWN])
        more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise ListRefused(
            f"{len(problems)} invalid entr{'y' if len(problems) == 1 else 'ies'}, nothing was "
            f"saved: {shown}{more}. Words are plain text (no patterns), 1 to {MAX_WORD_LEN} "
            "characters, without control characters."
        )
    return WordCheck(words, dups)


# ---- formats --------------------------------------------------------------------------
def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ListRefused(
            f"The import is not UTF-8 text (byte {exc.start}); nothing was saved."
        ) from None


def _txt(text: str) -> list[Raw]:
    out: list[Raw] = []
    for n, line in enumerate(text.split("\n"), 1):
        word = line.rstrip("\r").strip(" \t")
        if not word.strip() or word.startswith("#"):
            continue
        if word.startswith("\\#"):
            word = word[1:]
        out.append((word, None, None, f"line {n}"))
    return out


def _csv(text: str) -> list[Raw]:
    out: list[Raw] = []
    # a comment is a line whose text starts with "#" (a word starting with "#" is quoted);
    # it stays an empty line so that the rows keep their line numbers
    lines = ["" if line.lstrip().startswith("#") else line for line in text.split("\n")]
    try:
        rows = list(csv.reader(io.StringIO("\n".join(lines), newline="")))
    except csv.Error as exc:
        raise ListRefused(f"The CSV import cannot be read: {exc}; nothing was saved.") from None
    for n, row in enumerate(rows, 1):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        header = [c.strip().lower() for c in row] == ["word", "category", "action"][: len(row)]
        if n == 1 and header:
            continue
        if len(row) > 3:
            out.append(
                (_Invalid("more than 3 columns (word,category,action)"), None, None, f"line {n}")
            )
            continue
        row = row + [""] * (3 - len(row))
        out.append((row[0], row[1], row[2], f"line {n}"))
    return out


def _json(body: bytes) -> list[Raw]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ListRefused("The JSON import is not valid JSON; nothing was saved.") from None
    if isinstance(doc, dict):
        doc = doc.get("words")
    if not isinstance(doc, list):
        raise ListRefused(
            'The JSON import must be an array of words or an object with a "words" array.'
        )
    out: list[Raw] = []
    for i, item in enumerate(doc):
        where = f"entry {i}"
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"word", "category", "action"})
            if unknown:
                out.append((_Invalid(f"unknown field(s) {', '.join(unknown)}"), None, None, where))
                continue
            out.append((item.get("word"), item.get("category"), item.get("action"), where))
        else:
            out.append((item, None, None, where))
    return out


def parse_words(body: bytes, fmt: str) -> WordCheck:
    """An import body in ``fmt`` checked whole (:class:`ListRefused` when anything is
    wrong)."""
    if fmt == "json":
        raw = _json(body)
    elif fmt == "csv":
        raw = _csv(_text(body))
    elif fmt == "txt":
        raw = _txt(_text(body))
    else:
        raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    return check_words(raw)


def export_words(lst: SafetyListRecord, words: Sequence[StoredWord], fmt: str) -> tuple[bytes, str]:
    """The list's words in ``fmt``: (body, content type)."""
    if fmt == "txt":
        lines = [f"# {lst.name}: {len(words)} words (relaygate safety list export)"]
        lines += ["\\" + w if w.startswith("#") else w for w, _, _ in words]
        return ("\n".join(lines) + "\n").encode(), "text/plain; charset=utf-8"
    if fmt == "csv":
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\n")
        quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow(["word", "category", "action"])
        for w, c, a in words:  # "#…" quoted: a bare one reads as a comment
            (quoted if w.startswith("#") else writer).writerow([w, c or "", a or ""])
        return buf.getvalue().encode(), "text/csv; charset=utf-8"
    if fmt == "json":
        items: list[Any] = [
            w if c is None and a is None else {"word": w, "category": c, "action": a}
            for w, c, a in words
        ]
        doc = {**lst.to_public(), "words": items}
        return orjson.dumps(doc), "application/json"
    raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}.")


# ---- the holder -----------------------------------------------------------------------
def entries_of(
    lists: Sequence[SafetyListRecord], words: Iterable[tuple[int, str, str | None, str | None]]
) -> list[WordEntry]:
    """The enabled lists' words as :class:`WordEntry` (a word's own category and action
    before its list's)."""
    by_id = {lst.id: lst for lst in lists}
    out = []
    for list_id, word, category, action in words:
        lst = by_id.get(list_id)
        if lst is None:
            continue
        out.append(
            WordEntry(
                word=word,
                list_id=lst.id,
                list_name=lst.name,
                category=category or lst.category,
                action=action or lst.action,
                groups=lst.groups or (),
            )
        )
    return out


class ListHolder:
    """This worker's compiled policy (``policy``; None while no enabled list holds a word).

    :meth:`load` reads every enabled list and compiles it in a thread (100,000 words take a
    noticeable fraction of a second), then swaps the policy in one assignment, so a request
    sees the old policy or the new one, never a mix. :meth:`config_changed` is a catalog
    listener: after each configuration reload it compares the ``safety`` revision (one
    small query) and reloads only when the lists changed. A failed reload is logged and the
    old policy stays in use."""

    def __init__(self, store: SafetyStore, compile_policy: Compile, *, t2s: bool = False) -> None:
        self._store = store
        self._compile = compile_policy
        self._t2s = t2s
        self._policy: Policy | None = None
        self.revision = -1  # the safety revision loaded (-1: none yet)
        self.words = 0  # entries in the policy
        self._lock = asyncio.Lock()
        self._warm: asyncio.Task[None] | None = None
        #: called with the new policy after every swap (``SafetyRuntime.pick_chain``)
        self.on_swap: Callable[[Policy | None], None] | None = None

    @property
    def policy(self) -> Policy | None:
        return self._policy

    def _warm_up(self) -> None:
        """Build the normalisation tables in a thread now (about 2 s of CPU for every
        Unicode code point): otherwise the first list written would pay it, on this
        worker's event loop (validation) or before its policy swaps in (compilation)."""
        if self._warm is None:
            self._warm = asyncio.get_running_loop().create_task(
                asyncio.to_thread(_build_tables, self._t2s)
            )

    async def load(self) -> None:
        """Read and compile the enabled lists now (raises on failure)."""
        async with self._lock:
            await self._load()

    async def _load(self) -> None:
        self._warm_up()
        rev, lists, words = await self._store.enabled_words()
        entries = entries_of(lists, words)
        policy = (
            await asyncio.to_thread(self._compile, entries, rev, t2s=self._t2s) if entries else None
        )
        self._policy, self.revision, self.words = policy, rev, len(entries)
        if self.on_swap is not None:
            self.on_swap(policy)
        log.info("safety lists loaded", extra={"revision": rev, "words": len(entries)})

    async def config_changed(self, _config_revision: int = 0) -> None:
        """Reload when the word lists changed; never raises (the old policy stays)."""
        try:
            async with self._lock:
                if await self._store.revision() != self.revision:
                    await self._load()
        except Exception:
            log.warning("reloading the safety lists failed; the last policy stays", exc_info=True)
