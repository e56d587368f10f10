"""The types the safety modules share: a listed :class:`WordEntry`, a :class:`SafetyHit`,
the compiled :class:`Policy` interface, the :class:`AuditSink` and the
:class:`SafetySettings` of the operator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from relaygate.context import RelayContext

__all__ = [
    "ACTIONS",
    "AuditSink",
    "Policy",
    "PolicyHolder",
    "SafetyHit",
    "SafetySettings",
    "WordEntry",
]

#: what a listed word does when found: refuse / end the answer, replace it, or only log it
ACTIONS = ("block", "mask", "log")


@dataclass(frozen=True, slots=True)
class WordEntry:
    """One listed word, as the lists store it (already validated)."""

    word: str
    list_id: int
    list_name: str
    category: str
    action: str  # one of ACTIONS
    groups: tuple[str, ...] = ()  # user groups the list applies to; () = every group


@dataclass(frozen=True, slots=True)
class SafetyHit:
    """A listed word found in a text: offsets ``start``/``end`` are in the ORIGINAL text
    (before normalisation), so a mask replaces exactly what the client would have seen."""

    word: str
    list_id: int
    list_name: str
    category: str
    action: str
    start: int
    end: int


class Policy(Protocol):
    """The compiled lists (``safety/matcher.py``), immutable; a new one replaces it whole."""

    revision: int
    max_len: int  # the longest listed word, in normalised characters (the hold-back window)

    def scan(self, text: str, group: str) -> list[SafetyHit]:
        """Every hit of the lists that apply to ``group`` in ``text``."""
        ...


class PolicyHolder(Protocol):
    """Where the filter reads the current policy (swapped atomically on reload)."""

    @property
    def policy(self) -> Policy | None: ...


class AuditSink(Protocol):
    def record(self, ctx: RelayContext, hits: list[SafetyHit], where: str, text: str) -> None:
        """Queue an audit row per hit (who, which list, an excerpt around it from
        ``text``); ``where``: prompt | answer | stream | reasoning | tool | search |
        moderation. Never blocks, never raises."""
        ...


@dataclass(slots=True)
class SafetySettings:
    """``RELAYGATE_SAFETY_*`` (docs/safety.md)."""

    enabled: bool = True  # off: no list is loaded, no text is checked
    check_input: bool = True
    check_output: bool = True
    t2s: bool = False  # match traditional Chinese as simplified (OpenCC)
    notice: str = "（内容已被过滤）"  # the last text a blocked stream sends
    mask: str = "***"  # what a masked word becomes (its length is kept when it is "*")
    moderation_model: str = ""  # a /v1/moderations model run beside the upstream call
    moderation_timeout: float = 3.0
