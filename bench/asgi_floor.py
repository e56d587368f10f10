"""The floor of a Python ASGI server: uvicorn (uvloop + httptools, as relaygate runs it)
with a raw ASGI app that reads the request and answers a canned chat completion of the
mock's size. No upstream call, no parsing, no auth.

It is a reference point for the throughput scenario, not a system under test: it shows
what one worker of *any* gateway built on this server stack can serve at most on this
machine, so "relaygate ÷ direct-to-mock" can be read against "bare ASGI ÷ direct-to-mock".

    python bench/asgi_floor.py --port 18010 [--workers 1]
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

Message = MutableMapping[str, Any]

BODY = orjson.dumps(
    {
        "id": "chatcmpl-floor",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(f"tok{i}" for i in range(10))},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 16, "completion_tokens": 10, "total_tokens": 26},
    }
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            done = msg["type"] == "lifespan.shutdown"
            await send({"type": msg["type"] + ".complete"})
            if done:
                return
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the whole request body, as any gateway must
        msg = await receive()
        more = msg.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args()
    uvicorn.run(
        "asgi_floor:app",
        host=a.host,
        port=a.port,
        workers=a.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        app_dir=str(__import__("pathlib").Path(__file__).parent),
    )


if __name__ == "__main__":
    main()
