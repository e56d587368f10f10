"""Baidu ERNIE v1 (wenxinworkshop) error bodies → the error hierarchy.

Baidu reports failures inside the body, usually with HTTP 200:
``{"error_code": 110, "error_msg": "Access token invalid or no longer valid"}``.
The codes are the Qianfan SDK's ``APIErrorCode`` list (``docs/providers.md``):

* 110 / 111 (access token invalid / expired) → ``upstream_token_expired``: the relay
  drops the cached token and retries once with a fresh one (``routing/tokens.py``
  ``TOKEN_EXPIRED``, ``relay/attempt.py``);
* 4, 17, 18, 19, 336501, 336502 (request, daily, QPS, total, RPM, TPM limits) → 429;
* 336001, 336002, 336003, 336104, 336105 (invalid argument / JSON / parameter) → 400;
* 336100 (server high load) → 502, retried on another channel;
* anything else → 502.
"""

from __future__ import annotations

from typing import Any

from relaygate.errors import RelayError, UpstreamError
from relaygate.providers.base import error_from_status

__all__ = ["TOKEN_EXPIRED", "baidu_error", "is_baidu_error"]

#: the error code the relay retries with a fresh token (``routing/tokens.py`` TOKEN_EXPIRED)
TOKEN_EXPIRED = "upstream_token_expired"

_TOKEN = frozenset((110, 111))
_RATE = frozenset((4, 17, 18, 19, 336501, 336502))
_INVALID = frozenset((336001, 336002, 336003, 336104, 336105))
_OVERLOADED = 336100


def is_baidu_error(obj: dict[str, Any]) -> bool:
    code = obj.get("error_code")
    return isinstance(code, int) and not isinstance(code, bool) and code != 0


def baidu_error(obj: dict[str, Any], secrets: tuple[str, ...]) -> RelayError:
    """The error for a body with a non-zero ``error_code`` (an answer the upstream gave:
    ``upstream_status`` is set to 200, the status Baidu sends such bodies with)."""
    code = obj.get("error_code")
    message = obj.get("error_msg")
    text = message if isinstance(message, str) else ""
    err: RelayError
    if code in _TOKEN:
        err = UpstreamError(
            "The upstream provider's access token is invalid or expired.", code=TOKEN_EXPIRED
        )
    elif code in _RATE:
        err = error_from_status(
            429, f"{text} (Baidu error {code})", upstream_code=None, secrets=secrets
        )
    elif code in _INVALID:
        err = error_from_status(
            400, f"{text} (Baidu error {code})", upstream_code=None, secrets=secrets
        )
    elif code == _OVERLOADED:
        err = UpstreamError("The upstream provider is overloaded; retry shortly.")
    else:
        err = UpstreamError(f"The upstream provider failed (Baidu error {code}).")
    err.upstream_status = 200
    return err
