"""TencentCloud API 3.0 request signing, ``TC3-HMAC-SHA256`` (pure functions).

The documented steps (Tencent Cloud "Signature v3"), for a JSON POST to ``/``:

1. canonical request::

       POST\\n/\\n\\n
       content-type:{content type}\\nhost:{host}\\nx-tc-action:{action, lower case}\\n\\n
       content-type;host;x-tc-action\\n
       {sha256 hex of the body}

2. string to sign: ``TC3-HMAC-SHA256\\n{timestamp}\\n{date}/{service}/tc3_request\\n``
   ``{sha256 hex of the canonical request}``, ``date`` the UTC day of the timestamp
   (``YYYY-MM-DD``) and ``service`` the product (``hunyuan``);
3. key chain: ``HMAC("TC3" + SecretKey, date)`` → ``HMAC(·, service)`` →
   ``HMAC(·, "tc3_request")``; the signature is the hex HMAC of the string to sign;
4. ``Authorization: TC3-HMAC-SHA256 Credential={SecretId}/{date}/{service}/tc3_request,
   SignedHeaders=content-type;host;x-tc-action, Signature={signature}``.

Used by the Hunyuan adaptor (``providers/tencent.py``) and its emulator, which
recomputes the signature to check it. ``tests/unit/test_tencent_adaptor.py`` checks
these functions against the worked example Tencent publishes.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

__all__ = [
    "ALGORITHM",
    "SIGNED_HEADERS",
    "authorization",
    "canonical_request",
    "credential_date",
    "sign",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "TC3-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host;x-tc-action"


def credential_date(timestamp: int) -> str:
    """The UTC day of ``timestamp`` as the credential scope names it (``2019-02-25``)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def canonical_request(host: str, action: str, body: bytes, content_type: str) -> str:
    return (
        f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n"
        f"x-tc-action:{action.lower()}\n\n{SIGNED_HEADERS}\n" + hashlib.sha256(body).hexdigest()
    )


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    scope = f"{credential_date(timestamp)}/{service}/tc3_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    return _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")


def sign(key: bytes, to_sign: str) -> str:
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(
    secret_id: str,
    secret_key: str,
    *,
    service: str,
    host: str,
    action: str,
    body: bytes,
    timestamp: int,
    content_type: str = "application/json",
) -> str:
    """The ``Authorization`` header value for one request."""
    date = credential_date(timestamp)
    to_sign = string_to_sign(
        timestamp, service, canonical_request(host, action, body, content_type)
    )
    signature = sign(signing_key(secret_key, date, service), to_sign)
    return (
        f"{ALGORITHM} Credential={secret_id}/{date}/{service}/tc3_request, "
        f"SignedHeaders={SIGNED_HEADERS}, Signature={signature}"
    )
