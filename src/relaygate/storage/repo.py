"""``Repository``: one handle on the database for the rest of relaygate.

It holds one store per table (``users``, ``keys``, ``channels``, ``model_routes``, …), the
snapshot query the catalog reloads from, and the request-log table access. Storage only
stores: it checks no field values. Administrative writes go through ``relaygate.services``
(which validates every field first) and reach the stores as ``repo.users``, ``repo.keys``,
``repo.channels`` and ``repo.model_routes``.

Every configuration write bumps the ``config`` revision in the same transaction, so every
worker (and node) reloads its in-memory snapshot (see ``relaygate.catalog``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import Conflict
from relaygate.storage.channels import ChannelStore
from relaygate.storage.charges import apply_charges
from relaygate.storage.crypto import Secrets
from relaygate.storage.keys import KeyStore
from relaygate.storage.leases import LeaseStore
from relaygate.storage.ledger import LedgerStore
from relaygate.storage.model_routes import ModelRouteStore
from relaygate.storage.objects import ObjectStore
from relaygate.storage.prices import PriceStore
from relaygate.storage.request_logs import (
    LOG_COLUMNS,
    LogRow,
    complete_rows,
    insert_request_logs,
    list_request_logs,
)
from relaygate.storage.safety import SafetyStore
from relaygate.storage.snapshot import Snapshot, load_snapshot
from relaygate.storage.users import UserStore

__all__ = ["LOG_COLUMNS", "Conflict", "LogRow", "Repository", "Snapshot"]


class Repository:
    """``engine``: the main database. ``log_engine``: where ``request_logs`` and
    ``usage_daily`` live (``RELAYGATE_LOG_DATABASE_URL``; default the main engine); the
    request-log writer and the usage reports use it (docs/usage-reports.md)."""

    def __init__(
        self, engine: AsyncEngine, secrets: Secrets, *, log_engine: AsyncEngine | None = None
    ) -> None:
        self.engine = engine
        self.log_engine = log_engine or engine
        self.secrets = secrets
        self.users = UserStore(engine)
        self.keys = KeyStore(engine, secrets)
        self.channels = ChannelStore(engine, secrets)
        self.ledger = LedgerStore(engine)
        self.prices = PriceStore(engine)
        self.leases = LeaseStore(engine)
        self.model_routes = ModelRouteStore(engine)
        self.objects = ObjectStore(engine)
        self.safety = SafetyStore(engine)  # word lists and the audit (docs/safety.md)

    # ---- revision and snapshot (catalog) -----------------------------------
    async def revision(self) -> int:
        async with self.engine.connect() as conn:
            return await revisions.current(conn)

    async def snapshot(self) -> Snapshot:
        return await load_snapshot(self.engine, self.secrets)

    # ---- request logs (storage/request_logs.py) ------------------------------------
    async def insert_request_logs(self, rows: Sequence[LogRow]) -> None:
        """Commit request-log rows and the charges they carry (``storage/charges.py``)
        in one transaction: a batch is charged exactly when its rows are written."""
        if not rows:
            return
        rows = complete_rows(rows)
        if self.log_engine is not self.engine:
            # two databases, two transactions: charges first, then the rows. Both are
            # idempotent (ledger ref / log_uid = the row's log_uid), so a batch retried or
            # replayed after a failure between them is charged once and logged once.
            async with self.engine.begin() as conn:
                await apply_charges(conn, rows)
            await insert_request_logs(self.log_engine, rows)
            return
        async with self.engine.begin() as conn:
            await apply_charges(conn, rows)
            await insert_request_logs(self.engine, rows, conn)

    async def list_request_logs(
        self, limit: int = 100, user_id: int | None = None
    ) -> list[dict[str, Any]]:
        return await list_request_logs(self.log_engine, limit, user_id)

    async def dispose(self) -> None:
        """Close both engines' connection pools."""
        await self.engine.dispose()
        if self.log_engine is not self.engine:
            await self.log_engine.dispose()
