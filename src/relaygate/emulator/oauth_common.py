"""What the two sign-in emulators (``oidc.py``, ``github_oauth.py``) do alike in the
authorization code flow: the redirect back to the client, the one-use code with its expiry,
the PKCE S256 check and the token request's form; and their command line. Each provider's
own checks, error shapes and answers stay in its module."""

from __future__ import annotations

import argparse
import base64
import hashlib
import time
from collections.abc import Mapping
from typing import Protocol, TypeVar
from urllib.parse import urlencode, urlsplit

from aiohttp import web

__all__ = [
    "client_args",
    "form_params",
    "pkce_matches",
    "redeem",
    "redirect_back",
    "without_secret",
]


class _Code(Protocol):
    used: bool
    expires: float  # time.monotonic()


G = TypeVar("G", bound=_Code)


def redirect_back(uri: str, params: dict[str, str], query: Mapping[str, str]) -> web.Response:
    """A 302 to the client's ``redirect_uri`` with ``params`` (and the request's ``state``)."""
    if "state" in query:
        params["state"] = query["state"]
    sep = "&" if urlsplit(uri).query else "?"
    return web.Response(status=302, headers={"Location": uri + sep + urlencode(params)})


def redeem(grants: Mapping[str, G], code: str) -> G | None:
    """The grant of ``code``, now used; None when it is unknown, used or expired. A grant
    is used once, even when a later check of the request fails."""
    grant = grants.get(code)
    if grant is None or grant.used or grant.expires < time.monotonic():
        return None
    grant.used = True
    return grant


def pkce_matches(challenge: str, verifier: str) -> bool:
    """Whether ``verifier`` is the one of the S256 ``challenge``."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge


async def form_params(request: web.Request) -> dict[str, str]:
    """The request's form fields (``application/x-www-form-urlencoded`` or multipart)."""
    return {k: str(v) for k, v in (await request.post()).items()}


def without_secret(params: Mapping[str, str]) -> dict[str, str]:
    """``params`` to log: never the client secret."""
    return {k: v for k, v in params.items() if k != "client_secret"}


def client_args(
    description: str, *, port: int, client_id: str, argv: list[str] | None
) -> argparse.Namespace:
    """The command line of ``python -m`` an emulator: ``--host``, ``--port`` and the
    client it accepts (``--client-id``, ``--client-secret``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--client-id", default=client_id)
    parser.add_argument("--client-secret", default="emulator-secret")
    return parser.parse_args(argv)
