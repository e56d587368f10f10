"""What a dead worker's spool says about its streams that were cut.

While a stream runs, its worker spools one full *provisional* row (``LOG_COLUMNS`` plus
the ``PROVISIONAL`` marker) and then small *updates* (``(UPDATE, log_uid, completion
tokens, cost, counts)``) as chunks are delivered (docs/billing.md). Neither is written as
it is read back. :class:`OrphanStreams` keeps, per stream of a dead worker, its last
state, and the log_uids that did get a final row; once the dead worker's segments are
drained, :meth:`pending` are the streams to charge for what they delivered. A living
worker's own provisional lines are skipped.
"""

from __future__ import annotations

from relaygate.requestlog.spool import UPDATE
from relaygate.storage.repo import LOG_COLUMNS, LogRow

__all__ = ["OrphanStreams"]

_UID = LOG_COLUMNS.index("log_uid")
_COMPLETION = LOG_COLUMNS.index("completion_tokens")
_COST = LOG_COLUMNS.index("cost")
_COUNTS = LOG_COLUMNS.index("counts")
_PROVISIONAL_LEN = len(LOG_COLUMNS) + 1
_UPDATE_LEN = 5  # an update; request-log rows have 14 fields or more


class OrphanStreams:
    def __init__(self) -> None:
        self.provisional: dict[str, LogRow] = {}  # log_uid -> the stream's last state
        self.finals: set[str] = set()  # log_uids that have a final row

    def set_aside(self, rows: list[LogRow], claimed: bool) -> list[LogRow]:
        """The rows to write from a batch read back from a spool file; provisional rows
        and updates are taken out (kept when the file is a dead worker's: ``claimed``)."""
        if not any(len(r) == _PROVISIONAL_LEN or len(r) == _UPDATE_LEN for r in rows):
            if claimed:
                self.finals.update(r[_UID] for r in rows if len(r) > _UID and r[_UID])
            return rows
        final: list[LogRow] = []
        held = self.provisional
        for r in rows:
            if len(r) == _PROVISIONAL_LEN:
                if claimed:
                    held[r[_UID]] = r[:-1]
            elif len(r) == _UPDATE_LEN and r[0] == UPDATE:
                base = held.get(r[1]) if claimed else None
                if base is not None:
                    row = list(base)
                    row[_COMPLETION], row[_COST], row[_COUNTS] = r[2], r[3], r[4]
                    held[r[1]] = tuple(row)
            else:
                final.append(r)
                if claimed and len(r) > _UID and r[_UID]:
                    self.finals.add(r[_UID])
        return final

    def pending(self) -> list[LogRow]:
        """The last state of every cut stream that never got a final row."""
        return [r for uid, r in self.provisional.items() if uid not in self.finals]

    def clear(self) -> None:
        self.provisional.clear()
        self.finals.clear()
