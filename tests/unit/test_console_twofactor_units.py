"""The two-factor helpers of ``console/totp.py`` on their own: the set-up's QR code (an SVG
``data:`` URI that decodes to the URI given) and the recovery codes' form (alphabet, length,
how they are shown and read back), and what the sign-in step takes as a code."""

from __future__ import annotations

import pytest

from integration import qr_kit  # the tests' QR reader (zxing-cpp)
from relaygate.console import totp


def test_qr_code_is_an_svg_data_uri_of_the_uri() -> None:
    uri = totp.provisioning_uri(totp.new_secret(), "alice.b-c")
    data = totp.qr_svg_uri(uri)
    assert data.startswith("data:image/svg+xml;base64,")
    svg = qr_kit.svg_of(data)
    assert svg.attrib["width"] == svg.attrib["height"]
    assert qr_kit.decode(data) == uri
    other = totp.provisioning_uri(totp.new_secret(), "alice.b-c")
    assert qr_kit.decode(totp.qr_svg_uri(other)) == other != uri


def test_recovery_codes_are_random_in_the_unambiguous_alphabet() -> None:
    codes = {totp.new_recovery_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == totp.RECOVERY_LENGTH
        assert set(code) <= set(totp.RECOVERY_ALPHABET)
    assert not set("01ilo") & set(totp.RECOVERY_ALPHABET)
    assert len(set(totp.RECOVERY_ALPHABET)) == len(totp.RECOVERY_ALPHABET) == 31


def test_recovery_codes_are_shown_dashed_and_read_back_loosely() -> None:
    code = "abcdefghjk"
    shown = totp.format_recovery_code(code)
    assert shown == "abcde-fghjk"
    for typed in (shown, code, "ABCDE-FGHJK", " abcde fghjk ", "ab cde-fg hjk", "abcde\u3000fghjk"):
        assert totp.read_recovery_code(typed) == code, typed
    for bad in ("abcde-fghj", "abcde-fghjkm", "abcde-fgh1k", "abcde-fghok", "ａbcde-fghjk", ""):
        assert totp.read_recovery_code(bad) is None, bad


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("123456", ("totp", "123456")),
        (" 123 456 ", ("totp", "123456")),
        ("abcde-fghjk", ("recovery", "abcdefghjk")),
        ("2345678923", ("recovery", "2345678923")),  # ten digits: a recovery code
        ("12345", None),
        ("1234567", None),
        ("１２３４５６", None),  # full-width digits are not ASCII
        ("abcde-fghjk" + " " * 60, None),  # too long to be typed
        ("", None),
    ],
)
def test_the_sign_in_step_reads_either_kind(typed: str, read: tuple[str, str] | None) -> None:
    assert totp.read_code(typed) == read
