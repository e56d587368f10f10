"""Google service-account keys: the RS256 JWT assertion, the token exchange as data."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import orjson
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from relaygate.errors import UpstreamError
from relaygate.providers.anthropic import AnthropicAdaptor
from relaygate.providers.base import Target, TokenSource
from relaygate.providers.gemini import GeminiAdaptor
from relaygate.providers.google_auth import (
    google_token_request,
    google_token_response,
    service_account,
    sign_jwt,
)

PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = PRIVATE.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()
SA = {
    "type": "service_account",
    "project_id": "proj-1",
    "private_key_id": "kid-1",
    "private_key": PEM,
    "client_email": "relay@proj-1.iam.gserviceaccount.com",
    "token_uri": "https://oauth2.example.test/token",
}
KEY = json.dumps(SA, indent=2)


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_jwt_is_signed_rs256_and_verifiable() -> None:
    sa = service_account(KEY)
    assert sa is not None and sa.project_id == "proj-1"
    jwt = sign_jwt(sa, 1_700_000_000.5)
    head, claims, sig = jwt.split(".")
    assert orjson.loads(b64url(head)) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    assert orjson.loads(b64url(claims)) == {
        "iss": "relay@proj-1.iam.gserviceaccount.com",
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": "https://oauth2.example.test/token",
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
    }
    # verifies with the public key (raises otherwise) ...
    PRIVATE.public_key().verify(
        b64url(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    # ... and not with another one
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(InvalidSignature):
        other.verify(b64url(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())


def test_token_request_is_the_jwt_bearer_grant() -> None:
    req = google_token_request(KEY, now=1_700_000_000)
    assert req is not None
    assert req.url == "https://oauth2.example.test/token" and req.method == "POST"
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(req.body.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert form["assertion"][0].count(".") == 2
    # a base64-encoded key file works the same; a plain access token needs no exchange
    b64 = base64.b64encode(json.dumps(SA).encode()).decode()
    assert google_token_request(b64, now=1) is not None
    assert google_token_request("ya29.a0AfH6SMB-plain-token") is None
    assert google_token_request("AIzaSyD-an-api-key") is None


def test_broken_key_file_is_the_channels_fault() -> None:
    broken = json.dumps(
        {
            **SA,
            "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
            "client_email": "x" * 200,
        }
    )
    with pytest.raises(UpstreamError) as exc:
        google_token_request(broken)
    assert exc.value.code == "upstream_auth_failed"


def test_token_response() -> None:
    raw = b'{"access_token":"ya29.c.abc","expires_in":3599,"token_type":"Bearer"}'
    assert google_token_response(200, raw, ()) == ("ya29.c.abc", 3599.0)
    with pytest.raises(UpstreamError) as exc:
        google_token_response(
            400, b'{"error":"invalid_grant","error_description":"Invalid JWT Signature."}', ()
        )
    assert exc.value.code == "upstream_auth_failed" and "Invalid JWT Signature" in str(exc.value)
    with pytest.raises(UpstreamError) as exc:
        google_token_response(503, b"", ())
    assert exc.value.code == "upstream_error"


def test_adaptors_are_token_sources_only_for_vertex() -> None:
    for adaptor, provider in ((GeminiAdaptor(), "gemini"), (AnthropicAdaptor(), "anthropic")):
        assert isinstance(adaptor, TokenSource)
        vertex = Target(1, provider, "vertex", "https://x", KEY, "m", {"project": "p"})
        req = adaptor.token_request(vertex)
        assert req is not None and req.url == "https://oauth2.example.test/token"
        assert adaptor.token_response(vertex, 200, b'{"access_token":"t","expires_in":60}') == (
            "t",
            60.0,
        )
        plain = Target(1, provider, provider, "https://x", KEY, "m")
        assert adaptor.token_request(plain) is None
