"""Structured (JSON-lines) logging, written by a background thread so a slow
stderr never blocks the event loop. Keys and message content are never logged:
handlers log ids, and ``RELAYGATE_LOG_CONTENT`` is the only switch that adds content."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import time
from typing import Any

import orjson

__all__ = ["setup_logging"]

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


_listener: logging.handlers.QueueListener | None = None


def setup_logging(level: str = "INFO") -> None:
    global _listener
    root = logging.getLogger()
    if _listener is not None:
        root.setLevel(level)
        return
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter())
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    root.handlers[:] = [logging.handlers.QueueHandler(q)]
    root.setLevel(level)
    _listener = logging.handlers.QueueListener(q, stream, respect_handler_level=False)
    _listener.start()
    atexit.register(_listener.stop)
    for noisy in ("uvicorn.access", "aiosqlite", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
