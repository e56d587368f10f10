"""The worker's :class:`~relaygate.online.stage.OnlineStage` from the operator's settings:
the backend (``online/backends.py``), the page fetcher when fetching is on
(``online/fetch.py``), and the ranking under the token budget (``online/rank.py``)."""

from __future__ import annotations

from pathlib import Path

from relaygate.billing.tokens import count_text
from relaygate.online.backends import make_backend
from relaygate.online.base import Hit, OnlineSettings
from relaygate.online.config import online_settings
from relaygate.online.stage import Fetch, OnlineStage

__all__ = ["build_online"]


def build_online(data_dir: Path, settings: OnlineSettings | None = None) -> OnlineStage:
    """The stage (its backend may be None: online requests are answered without search
    and say so). Raises ValueError naming a wrong setting."""
    s = settings if settings is not None else online_settings()
    backend = make_backend(s, data_dir)
    if backend is None:
        return OnlineStage(s, None, rank=lambda hits, k: hits[:k])
    from relaygate.online.rank import prepare_sources

    budget = s.budget_tokens

    def rank(hits: list[Hit], k: int) -> list[Hit]:
        return prepare_sources(hits, budget_tokens=budget, count_tokens=count_text, max_results=k)

    fetch: Fetch | None = None
    if s.fetch:
        from relaygate.online.fetch import PageFetcher

        fetcher = PageFetcher(s)
        fetch = fetcher.fetch_many
    return OnlineStage(s, backend, rank=rank, fetch=fetch)
