"""The server edge: what happens to a connection before the ASGI app sees a request.

- ``edge/protocol.py``: ``EdgeProtocol``, uvicorn's httptools protocol with limits on the
  request head (size, header count, time) and close-delimited streams for HTTP/1.0 clients;
  ``relaygate serve`` runs uvicorn with it.
- ``edge/gzip.py``: ``gzip_send``, an ASGI ``send`` wrapper that gzips large non-streamed
  JSON answers for clients that accept gzip.

See ``docs/limits-and-timeouts.md``.
"""
