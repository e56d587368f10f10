"""The compiled word lists: one Aho–Corasick automaton (``ahocorasick-rs``) over every
listed word, normalised (``normalize.py``), with the entries of each word kept beside it
and filtered by the user group at scan time (docs/safety.md, "Matching").

Matching is overlapping (``MatchKind.Standard`` with ``overlapping=True``), so every
occurrence of every listed word is found, including words inside or across other words.

The whole-token rule, for ASCII letters and digits only (CJK has no word boundaries):

- a listed word of at most :data:`SHORT_WORD` ASCII letters/digits matches whole tokens
  only: ``ass`` is found in ``ass`` and ``a s s`` but not in ``class`` (new-api #6657);
- a hit that spans a removed separator (``f u c k``) must start and end on token
  boundaries too, otherwise normalisation would join words (``top or not`` holds
  ``porn``, ``has expired`` holds ``sex``).

A token boundary lies between two normalised characters unless both are ASCII letters or
digits with no separator removed between them. No word is read across a run of more than
``normalize.BREAK`` removed characters. The start and end of the text are
boundaries. A stream scan does not know the next character yet: a hit whose end check
depends on it is *deferred* (the stream guard holds it until it knows).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

import ahocorasick_rs

from relaygate.safety.base import SafetyHit, WordEntry
from relaygate.safety.normalize import Normalizer, NormMap, get_normalizer, index_map

__all__ = ["SHORT_WORD", "CompiledPolicy", "Found", "compile_policy", "mask_text"]

#: ASCII words up to this many characters match whole tokens only
SHORT_WORD = 3

_ALNUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyz")


@dataclass(slots=True)
class Found:
    """What one scan found (``CompiledPolicy.find``): decided ``hits`` with their
    normalised ends; ``deferred`` hits that wait for the next character (their start
    must be held); ``open_starts``: normalised starts of candidates refused only because
    a letter follows directly (a stream must not cut there, or the released text would
    end on the word); ``norm``, the normalised text, and ``nmap`` when anything was
    found."""

    hits: list[tuple[SafetyHit, int]] = field(default_factory=list)
    deferred: list[tuple[SafetyHit, int, int]] = field(default_factory=list)
    refused_at: list[tuple[int, int]] = field(default_factory=list)  # (ns, ne) candidates
    nmap: NormMap | None = None
    norm: str = ""


def _boundary(norm: str, gap: list[bool], k: int) -> bool:
    """Is there a token boundary before normalised character ``k`` (0 < k < len)?"""
    return gap[k] or norm[k - 1] not in _ALNUM or norm[k] not in _ALNUM


class CompiledPolicy:
    """An immutable compiled policy (the :class:`~relaygate.safety.base.Policy`)."""

    __slots__ = (
        "_ac",
        "_entries",
        "_short",
        "max_len",
        "normalizer",
        "revision",
        "skipped",
        "words",
    )

    def __init__(
        self,
        revision: int,
        normalizer: Normalizer,
        words: list[str],
        entries: list[tuple[WordEntry, ...]],
        skipped: int,
    ) -> None:
        self.revision = revision
        self.normalizer = normalizer
        self.words = words
        self._entries = entries
        self._short = [len(w) <= SHORT_WORD and all(c in _ALNUM for c in w) for w in words]
        self.max_len = max((len(w) for w in words), default=0)
        self.skipped = skipped  # listed words that normalise to nothing (only separators)
        self._ac = (
            ahocorasick_rs.AhoCorasick(
                words,
                matchkind=ahocorasick_rs.MatchKind.Standard,
                store_patterns=False,
                implementation=ahocorasick_rs.Implementation.DFA
                if len(words) <= 20_000
                else ahocorasick_rs.Implementation.ContiguousNFA,
            )
            if words
            else None
        )

    def __len__(self) -> int:
        return len(self.words)

    def normalize(self, text: str) -> str:
        return self.normalizer(text)

    def scan(self, text: str, group: str) -> list[SafetyHit]:
        """Every hit in a whole text (its end is the end of the text)."""
        if self._ac is None or not text:
            return []
        return [hit for hit, _ in self.find(text, group, final=True).hits]

    def find(self, text: str, group: str, *, final: bool, skip: int = 0) -> Found:
        """Scan ``text`` (a stream guard's window when ``final`` is false: the character
        after the text is not known yet). ``skip``: the window's first normalised
        characters were released already (kept as context for the token rule); a
        candidate starting there is not a hit of this window."""
        found = Found()
        ac = self._ac
        if ac is None or not text:
            return found
        norm = self.normalizer(text)
        found.norm = norm
        matches = ac.find_matches_as_indexes(norm, overlapping=True)
        if not matches:
            return found
        nmap = index_map(self.normalizer, text)
        found.nmap = nmap
        gap = nmap.gap
        breaks = nmap.breaks
        n = len(norm)
        entries = self._entries
        short = self._short
        for p, ns, ne in matches:
            if breaks:
                b = bisect_right(breaks, ns)
                if b < len(breaks) and breaks[b] < ne:
                    continue  # a long run of removed characters inside: not one word
            rule = short[p]
            if not rule:
                rule = any(gap[ns + 1 : ne])
            wait = False
            if rule:
                if ns > 0 and not _boundary(norm, gap, ns):
                    continue
                if ne < n:
                    if not _boundary(norm, gap, ne):
                        found.refused_at.append((ns, ne))
                        continue
                elif not final and not gap[n] and norm[ne - 1] in _ALNUM:
                    wait = True
            if ns < skip:
                continue
            start = nmap.starts[ns]
            end = nmap.ends[ne - 1]
            for e in entries[p]:
                if e.groups and group not in e.groups:
                    continue
                hit = SafetyHit(
                    word=e.word,
                    list_id=e.list_id,
                    list_name=e.list_name,
                    category=e.category,
                    action=e.action,
                    start=start,
                    end=end,
                )
                if wait:
                    found.deferred.append((hit, ns, ne))
                else:
                    found.hits.append((hit, ne))
        return found


def compile_policy(entries: list[WordEntry], revision: int, *, t2s: bool) -> CompiledPolicy:
    """Compile the lists: each word normalised like the texts, one automaton pattern per
    distinct normalised word, the entries (lists, categories, actions, groups) beside it.
    A word that normalises to nothing (only separators) cannot match and is skipped."""
    normalizer = get_normalizer(t2s)
    index: dict[str, int] = {}
    words: list[str] = []
    per_word: list[list[WordEntry]] = []
    seen: set[tuple[str, int, str, tuple[str, ...]]] = set()
    skipped = 0
    for entry in entries:
        norm = normalizer(entry.word)
        if not norm:
            skipped += 1
            continue
        key = (norm, entry.list_id, entry.action, entry.groups)
        if key in seen:
            continue  # the same word twice in one list (different spellings)
        seen.add(key)
        i = index.get(norm)
        if i is None:
            i = index[norm] = len(words)
            words.append(norm)
            per_word.append([])
        per_word[i].append(entry)
    return CompiledPolicy(revision, normalizer, words, [tuple(e) for e in per_word], skipped)


def mask_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping spans merged (touching ones stay apart), in order."""
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s < merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def mask_text(text: str, spans: list[tuple[int, int]], mask: str) -> str:
    """``text`` with each (merged) span replaced by ``mask``, or by as many ``*`` as the
    span has characters when ``mask`` is ``"*"``."""
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for s, e in mask_spans(spans):
        out.append(text[pos:s])
        out.append("*" * (e - s) if mask == "*" else mask)
        pos = e
    out.append(text[pos:])
    return "".join(out)
