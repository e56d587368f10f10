"""Every process using one database must hash keys and encrypt upstream keys with the same
secret (``RELAYGATE_SECRET_KEY``, or ``<data dir>/secret.key`` when unset). A second node
started without the first one's secret would generate its own: every key would be "invalid"
there, and it could not read the channels' upstream keys.

So the database remembers a fingerprint of the secret (a row ``secret:<16 hex>`` in
``revisions``: an HMAC of a fixed text under the secret, which reveals nothing about it),
written by the first process that starts on it; a process whose secret does not match
refuses to start and says why (docs/deployment.md).
"""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage.crypto import Secrets
from relaygate.storage.tables import revisions

__all__ = ["SecretMismatch", "check_secret"]

PREFIX = "secret:"


class SecretMismatch(RuntimeError):
    """This process's secret is not the one the database was set up with."""


async def check_secret(engine: AsyncEngine, secrets: Secrets) -> None:
    mine = PREFIX + secrets.fingerprint()
    for _ in range(2):  # a node starting at the same moment may insert first: look again
        try:
            async with engine.begin() as conn:
                query = select(revisions.c.name).where(revisions.c.name.like(PREFIX + "%"))
                names = (await conn.scalars(query)).all()
                if mine in names:
                    return
                if names:
                    raise SecretMismatch(
                        "This database was set up by a gateway with a different secret key. "
                        "Every node and worker using one database must share "
                        "RELAYGATE_SECRET_KEY (or the same data/secret.key): copy the first "
                        "node's secret to this one (see docs/deployment.md)."
                    )
                await conn.execute(insert(revisions).values(name=mine, value=1))
            return
        except IntegrityError:
            continue
    raise SecretMismatch("Could not record the secret key's fingerprint in the database.")
