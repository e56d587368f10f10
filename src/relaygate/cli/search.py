"""``relaygate search-index``: the local full-text index of the ``local`` search backend
(``online/local_index.py``, docs/online.md) — load an operator's documents (a directory
or file of .md, .txt, .html, .json or .jsonl), count, search, clear. The index file is
``RELAYGATE_SEARCH_LOCAL_DB`` or ``search.db`` in the data directory; workers read it
as it is, so loading needs no restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from relaygate.cli.base import main
from relaygate.online.config import online_settings
from relaygate.online.local_index import LocalIndex
from relaygate.settings import Settings

__all__ = ["search_index"]

T = TypeVar("T")


def _index_path() -> Path:
    settings = Settings.from_env()
    local = online_settings().local_db
    return Path(local) if local else Path(settings.data_dir) / "search.db"


def _with_index(fn: Callable[[LocalIndex], Awaitable[T]]) -> T:
    async def go() -> T:
        path = _index_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        index = LocalIndex(path)
        try:
            return await fn(index)
        finally:
            await index.close()

    return asyncio.run(go())


@main.group("search-index")
def search_index() -> None:
    """The local search index (the `local` online-search backend)."""


@search_index.command("load")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--replace", is_flag=True, help="Empty the index first.")
def load(path: Path, replace: bool) -> None:
    """Add the documents under PATH (a file or a directory)."""

    async def go(index: LocalIndex) -> tuple[int, int]:
        if replace:
            await index.clear()
        added = await index.load_path(path)
        return added, await index.count()

    try:
        added, total = _with_index(go)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"loaded {added} document(s); the index holds {total} ({_index_path()})")


@search_index.command("count")
def count() -> None:
    """How many documents the index holds."""
    click.echo(str(_with_index(lambda index: index.count())))


@search_index.command("search")
@click.argument("query")
@click.option("-k", default=5, show_default=True, type=click.IntRange(1, 50))
def search(query: str, k: int) -> None:
    """Search the index as an online request would."""
    for n, hit in enumerate(_with_index(lambda index: index.search(query, k=k)), 1):
        click.echo(f"[{n}] {hit.title}\n    {hit.url}\n    {hit.snippet}")


@search_index.command("clear")
@click.confirmation_option(prompt="Remove every document from the local index?")
def clear() -> None:
    """Remove every document."""
    _with_index(lambda index: index.clear())
    click.echo("the local index is empty")
