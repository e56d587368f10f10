"""Two-factor set-up's QR code and recovery codes (console/totp.py, console/accounts.py,
storage/console_recovery.py) against a real gateway on loopback, httpx as the browser: the
QR code is a well-formed SVG that decodes to the ``otpauth://`` URI; enabling two-factor
answers 10 recovery codes once; a code signs in once and not twice; wrong codes count
towards the sign-in limits like wrong TOTP codes; new codes void the old ones; turning
two-factor off deletes them; the database and the log hold no code in clear. The store on
SQLite and PostgreSQL at the end."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pyotp
import pytest
import qr_kit
from gateway import Gateway, fresh_pg_database
from test_console_api import Browser, _error, _fresh_step

PASSWORD = "recovery pass 1"
CODE_RE = re.compile(r"[23456789abcdefghjkmnpqrstuvwxyz]{5}-[23456789abcdefghjkmnpqrstuvwxyz]{5}")


def _name() -> str:
    return f"r{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        Path(tmp_path_factory.mktemp("console-recovery")),
        {"RELAYGATE_CONSOLE_SIGNIN_USER_LIMIT": "3", "RELAYGATE_CONSOLE_SIGNUP_IP_LIMIT": "100"},
    ).start()
    try:
        yield g
    finally:
        g.stop()


def _db(gw: Gateway) -> sqlite3.Connection:
    return sqlite3.connect(Path(gw.env["RELAYGATE_DATA_DIR"]) / "relaygate.db")


def _rows(gw: Gateway, user_id: int) -> list[tuple[str, str | None]]:
    with _db(gw) as db:
        return list(
            db.execute(
                "SELECT code_hash, used_at FROM console_recovery_codes WHERE user_id = ?",
                (user_id,),
            )
        )


class TwoFactorUser:
    """A signed-up user with two-factor on: its browser, TOTP secret and recovery codes."""

    def __init__(self, gw: Gateway) -> None:
        self.name = _name()
        self.browser = Browser(gw)
        assert self.browser.sign_up(self.name, PASSWORD).status_code == 201
        self.id = int(self.browser.load_me()["user"]["id"])
        self.setup: dict[str, Any] = self.browser.call("POST", "/totp/setup").json()["data"]
        self.secret = self.setup["secret"]
        self.t0 = _fresh_step()
        r = self.browser.call(
            "POST", "/totp/enable", {"code": pyotp.TOTP(self.secret).at(self.t0 - 30)}
        )
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data["totp_enabled"] is True
        self.codes: list[str] = data["recovery_codes"]

    def left(self) -> int:
        r = self.browser.call("GET", "/totp/recovery-codes")
        assert r.status_code == 200, r.text
        return int(r.json()["data"]["left"])

    def close(self) -> None:
        self.browser.close()


@pytest.fixture
def user(gw: Gateway) -> Iterator[TwoFactorUser]:
    u = TwoFactorUser(gw)
    try:
        yield u
    finally:
        u.close()


def _ticket(gw: Gateway, name: str) -> tuple[Browser, str]:
    """A new browser past the password step: it and the sign-in's ticket."""
    b = Browser(gw)
    r = b.sign_in(name, PASSWORD)
    assert r.status_code == 200, r.text
    step = r.json()["data"]
    assert step["totp_required"] is True
    return b, str(step["ticket"])


def _second_step(gw: Gateway, name: str, code: str) -> Any:
    b, ticket = _ticket(gw, name)
    try:
        return b.call("POST", "/sign-in/totp", {"ticket": ticket, "code": code})
    finally:
        b.close()


def _no_code_in_clear(gw: Gateway, codes: list[str], sqlite: bool = True) -> None:
    """Neither the log nor (``sqlite``) the database files with SQLite's WAL hold a code,
    dashed or not, in any case."""
    data = Path(gw.env["RELAYGATE_DATA_DIR"])
    blobs = [gw.logs().lower().encode()]
    if sqlite:
        blobs += [p.read_bytes().lower() for p in data.glob("relaygate.db*")]
        assert len(blobs) >= 2
    for code in codes:
        for form in (code, code.replace("-", "")):
            for blob in blobs:
                assert form.encode() not in blob, form


# ---- the QR code -------------------------------------------------------------------------------
def test_setup_answers_a_qr_code_of_the_uri(gw: Gateway) -> None:
    b = Browser(gw)
    try:
        assert b.sign_up(_name(), PASSWORD).status_code == 201
        setup = b.call("POST", "/totp/setup").json()["data"]
        assert setup["uri"].startswith("otpauth://totp/") and setup["secret"] in setup["uri"]
        svg = qr_kit.svg_of(setup["qr_svg"])  # well-formed XML, an <svg> root
        paths = list(svg.iter(qr_kit.SVG_NS + "path"))
        assert paths and all(p.attrib.get("d") for p in paths)
        assert not [e for e in svg.iter() if e.tag.endswith("script")]
        assert not [k for e in svg.iter() for k in e.attrib if k.lower().startswith("on")]
        assert qr_kit.decode(setup["qr_svg"]) == setup["uri"]
        # a new set-up draws a new secret, and so another code
        again = b.call("POST", "/totp/setup").json()["data"]
        assert again["secret"] != setup["secret"] and again["qr_svg"] != setup["qr_svg"]
        assert qr_kit.decode(again["qr_svg"]) == again["uri"]
        # the page may show it: the console's policy allows data: images, not inline scripts
        csp = b.call("GET", "/config").headers["content-security-policy"]
        assert "img-src 'self' data:" in csp and "script-src 'self';" in csp
        assert setup["secret"] not in gw.logs() and "svg" not in gw.logs().lower()
    finally:
        b.close()


# ---- recovery codes ------------------------------------------------------------------------------
def test_enable_answers_ten_codes_stored_hashed(gw: Gateway, user: TwoFactorUser) -> None:
    codes = user.codes
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(CODE_RE.fullmatch(c) for c in codes), codes
    status = user.browser.call("GET", "/totp/recovery-codes").json()["data"]
    assert status["totp_enabled"] is True and status["total"] == 10 and status["left"] == 10
    assert status["created_at"]
    rows = _rows(gw, user.id)
    assert len(rows) == 10 and all(used is None for _, used in rows)
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h, _ in rows)
    # the answer that showed them is not stored anywhere the user could get it again
    me = user.browser.load_me()
    assert "recovery_codes" not in me and me["totp_enabled"] is True
    _no_code_in_clear(gw, codes)


def test_a_recovery_code_signs_in_once(gw: Gateway, user: TwoFactorUser) -> None:
    first, second = user.codes[0], user.codes[1]
    other, ticket = _ticket(gw, user.name)
    try:
        _error(other.call("GET", "/me"), 401)
        r = other.call("POST", "/sign-in/totp", {"ticket": ticket, "code": first})
        assert r.status_code == 200, r.text
        assert "rg_session=" in r.headers["set-cookie"]
        assert other.load_me()["user"]["username"] == user.name
    finally:
        other.close()
    assert user.left() == 9
    used = [u for _, u in _rows(gw, user.id) if u is not None]
    assert len(used) == 1  # marked with the time it was used
    # the same code again: refused, and counted on the ticket
    _error(_second_step(gw, user.name, first), 401, "invalid_code")
    # how it is typed does not matter: upper case, spaces, no dash
    typed = " ".join(second.replace("-", "").upper())
    r = _second_step(gw, user.name, typed)
    assert r.status_code == 200, r.text
    assert user.left() == 8
    # a TOTP code still works beside them
    assert _second_step(gw, user.name, pyotp.TOTP(user.secret).at(user.t0)).status_code == 200
    _no_code_in_clear(gw, user.codes)
    assert "console recovery code used" in gw.logs()


def test_malformed_codes_are_refused_without_using_anything(
    gw: Gateway, user: TwoFactorUser
) -> None:
    b, ticket = _ticket(gw, user.name)
    try:
        for bad in ("12345", "1234567", "abcde-fghij", "0000000000", "x" * 65, 1234567890, None):
            r = b.call("POST", "/sign-in/totp", {"ticket": ticket, "code": bad})
            _error(r, 400)
    finally:
        b.close()
    assert user.left() == 10


def test_wrong_recovery_codes_count_towards_the_limits(gw: Gateway, user: TwoFactorUser) -> None:
    """RELAYGATE_CONSOLE_SIGNIN_USER_LIMIT=3: one wrong TOTP code and two wrong recovery
    codes, then even a right recovery code waits (and is not used up)."""
    wrong_totp = "000000" if pyotp.TOTP(user.secret).now() != "000000" else "111111"
    wrong_recovery = "22222-22222"
    assert wrong_recovery not in user.codes
    b, ticket = _ticket(gw, user.name)
    try:
        for code in (wrong_totp, wrong_recovery, wrong_recovery):
            r = b.call("POST", "/sign-in/totp", {"ticket": ticket, "code": code})
            _error(r, 401, "invalid_code")
        r = b.call("POST", "/sign-in/totp", {"ticket": ticket, "code": user.codes[0]})
        _error(r, 429, "too_many_attempts")
        assert int(r.headers["retry-after"]) >= 1
        _error(b.call("GET", "/me"), 401)
    finally:
        b.close()
    assert user.left() == 10
    assert all(used is None for _, used in _rows(gw, user.id))


def test_five_wrong_codes_void_the_ticket(tmp_path: Path) -> None:
    """With the per-user limit out of the way, the ticket's own count (5) applies to
    recovery codes too."""
    g = Gateway(tmp_path, {"RELAYGATE_CONSOLE_SIGNIN_USER_LIMIT": "50"}).start()
    u = TwoFactorUser(g)
    try:
        b, ticket = _ticket(g, u.name)
        for n in range(5):
            r = b.call("POST", "/sign-in/totp", {"ticket": ticket, "code": f"{n + 2}" * 10})
            _error(r, 401, "invalid_code" if n < 4 else "ticket_expired")
        r = b.call("POST", "/sign-in/totp", {"ticket": ticket, "code": u.codes[0]})
        _error(r, 401, "ticket_expired")  # the right code no longer helps this ticket
        b.close()
        assert u.left() == 10
    finally:
        u.close()
        g.stop()


def test_new_codes_void_the_old_ones(gw: Gateway, user: TwoFactorUser) -> None:
    b = user.browser
    _error(b.call("POST", "/totp/recovery-codes", {}), 400)
    _error(b.call("POST", "/totp/recovery-codes", {"password": PASSWORD, "code": "123456"}), 400)
    _error(b.call("POST", "/totp/recovery-codes", {"code": user.codes[0]}), 400)
    _error(b.call("POST", "/totp/recovery-codes", {"secret": "x"}), 400)
    _error(
        b.call("POST", "/totp/recovery-codes", {"password": "not the one"}),
        401,
        "invalid_credentials",
    )
    assert user.left() == 10
    # no CSRF token, no new codes
    r = b.http.post("/console/api/totp/recovery-codes", json={"password": PASSWORD})
    assert r.status_code == 403, r.text

    r = b.call("POST", "/totp/recovery-codes", {"password": PASSWORD})
    assert r.status_code == 200, r.text
    fresh: list[str] = r.json()["data"]["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(user.codes)
    assert all(CODE_RE.fullmatch(c) for c in fresh)
    assert user.left() == 10 and len(_rows(gw, user.id)) == 10
    _error(_second_step(gw, user.name, user.codes[0]), 401, "invalid_code")
    assert _second_step(gw, user.name, fresh[0]).status_code == 200
    assert user.left() == 9

    # with a TOTP code instead of the password (the wrong password and the old code made
    # two of the three failures RELAYGATE_CONSOLE_SIGNIN_USER_LIMIT allows: no more here)
    r = b.call("POST", "/totp/recovery-codes", {"code": pyotp.TOTP(user.secret).at(user.t0)})
    assert r.status_code == 200, r.text
    third: list[str] = r.json()["data"]["recovery_codes"]
    assert not set(third) & set(fresh)
    assert user.left() == 10
    _error(_second_step(gw, user.name, fresh[1]), 401, "invalid_code")
    _no_code_in_clear(gw, [*user.codes, *fresh, *third])


def test_turning_two_factor_off_deletes_the_codes(gw: Gateway, user: TwoFactorUser) -> None:
    """(A wrong password and a wrong code here are two of the three failures
    RELAYGATE_CONSOLE_SIGNIN_USER_LIMIT allows, so the rest of the test makes none.)"""
    b = user.browser
    old_hashes = {h for h, _ in _rows(gw, user.id)}
    # a recovery code may stand in for the app's code here too (a lost phone)
    _error(
        b.call("POST", "/totp/disable", {"password": "wrong one", "code": user.codes[0]}),
        401,
        "invalid_credentials",
    )
    _error(
        b.call("POST", "/totp/disable", {"password": PASSWORD, "code": "22222-22222"}),
        401,
        "invalid_code",
    )
    assert b.load_me()["totp_enabled"] is True
    r = b.call("POST", "/totp/disable", {"password": PASSWORD, "code": user.codes[0]})
    assert r.status_code == 200, r.text
    assert b.load_me()["totp_enabled"] is False
    assert _rows(gw, user.id) == []
    status = b.call("GET", "/totp/recovery-codes").json()["data"]
    assert status == {"totp_enabled": False, "total": 0, "left": 0, "created_at": None}
    _error(b.call("POST", "/totp/recovery-codes", {"password": PASSWORD}), 400, "totp_not_enabled")
    # signing in needs the password only now; turning it on again makes new codes
    other = Browser(gw)
    try:
        r = other.sign_in(user.name, PASSWORD)
        assert r.status_code == 200 and r.json()["data"]["totp_required"] is False
    finally:
        other.close()
    setup = b.call("POST", "/totp/setup").json()["data"]
    t0 = _fresh_step()
    r = b.call("POST", "/totp/enable", {"code": pyotp.TOTP(setup["secret"]).at(t0)})
    assert r.status_code == 200, r.text
    again: list[str] = r.json()["data"]["recovery_codes"]
    assert len(again) == 10 and not set(again) & set(user.codes)
    rows = _rows(gw, user.id)
    assert len(rows) == 10 and old_hashes.isdisjoint(h for h, _ in rows)
    assert _second_step(gw, user.name, again[0]).status_code == 200


def test_wrong_codes_when_turning_off_count_towards_the_limits(
    gw: Gateway, user: TwoFactorUser
) -> None:
    """With the right password, wrong codes (of the app or recovery codes) are counted like
    a sign-in's: the third failure of RELAYGATE_CONSOLE_SIGNIN_USER_LIMIT=3 is the last."""
    b = user.browser
    wrong_totp = "000000" if pyotp.TOTP(user.secret).now() != "000000" else "111111"
    for code in ("22222-22222", wrong_totp, "33333-33333"):
        r = b.call("POST", "/totp/disable", {"password": PASSWORD, "code": code})
        _error(r, 401, "invalid_code")
    r = b.call("POST", "/totp/disable", {"password": PASSWORD, "code": user.codes[0]})
    _error(r, 429, "too_many_attempts")
    assert b.load_me()["totp_enabled"] is True and user.left() == 10


def test_recovery_codes_need_a_session(gw: Gateway) -> None:
    b = Browser(gw)
    try:
        _error(b.call("GET", "/totp/recovery-codes"), 401, "not_signed_in")
        _error(b.call("POST", "/totp/recovery-codes", {"password": "x"}), 401, "not_signed_in")
        assert b.sign_up(_name(), PASSWORD).status_code == 201
        status = b.call("GET", "/totp/recovery-codes").json()["data"]
        assert status["totp_enabled"] is False and status["left"] == 0
        _error(b.call("POST", "/totp/recovery-codes", {"password": PASSWORD}), 400)
    finally:
        b.close()


# ---- a gateway on PostgreSQL --------------------------------------------------------------------
def _pg_rows(url: str, user_id: int) -> list[tuple[str, Any]]:
    async def run() -> list[tuple[str, Any]]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT code_hash, used_at FROM console_recovery_codes WHERE user_id = $1",
                user_id,
            )
        finally:
            await conn.close()
        return [(r["code_hash"], r["used_at"]) for r in rows]

    return asyncio.run(run())


def test_recovery_codes_on_postgresql(tmp_path: Path) -> None:
    with fresh_pg_database("rg_recovery_") as url:
        g = Gateway(tmp_path, {"RELAYGATE_DATABASE_URL": url}).start()
        u = TwoFactorUser(g)
        try:
            rows = _pg_rows(url, u.id)
            assert len(rows) == 10 and all(used is None for _, used in rows)
            hashes = {h for h, _ in rows}
            assert not {c.replace("-", "") for c in u.codes} & hashes
            assert _second_step(g, u.name, u.codes[0]).status_code == 200
            _error(_second_step(g, u.name, u.codes[0]), 401, "invalid_code")
            assert u.left() == 9
            assert len([used for _, used in _pg_rows(url, u.id) if used is not None]) == 1
            r = u.browser.call("POST", "/totp/recovery-codes", {"password": PASSWORD})
            assert r.status_code == 200, r.text
            fresh = r.json()["data"]["recovery_codes"]
            assert {h for h, _ in _pg_rows(url, u.id)}.isdisjoint(hashes)
            _error(_second_step(g, u.name, u.codes[1]), 401, "invalid_code")
            r = u.browser.call("POST", "/totp/disable", {"password": PASSWORD, "code": fresh[0]})
            assert r.status_code == 200, r.text
            assert _pg_rows(url, u.id) == []
            _no_code_in_clear(g, [*u.codes, *fresh], sqlite=False)
        finally:
            u.close()
            g.stop()


# ---- the store on SQLite and PostgreSQL ----------------------------------------------------------
async def test_recovery_store(repo: Any) -> None:
    from sqlalchemy import delete, func, select

    from relaygate.storage.base import now
    from relaygate.storage.console import ConsoleStore
    from relaygate.storage.console_recovery import RecoveryCodeStore, console_recovery_codes
    from relaygate.storage.tables import users

    store = ConsoleStore(repo.engine)
    codes = RecoveryCodeStore(repo.engine)
    user = await store.create_account(_name(), "$argon2id$stand-in")
    other = await store.create_account(_name(), "$argon2id$stand-in")
    empty = await codes.status(user.id)
    assert (empty.total, empty.left, empty.created_at) == (0, 0, None)

    await store.update_totp(user.id, totp_pending="pending-token")
    assert not await store.enable_totp(user.id, "another-token", 7, ["a" * 64])
    assert (await codes.status(user.id)).total == 0  # nothing written
    assert await store.enable_totp(user.id, "pending-token", 7, [f"{n:064x}" for n in range(10)])
    creds = await store.credentials(user.id)
    assert creds is not None and creds.totp_enabled and creds.totp_secret == "pending-token"
    assert creds.totp_pending is None and creds.totp_last_step == 7
    assert not await store.enable_totp(user.id, "pending-token", 8, ["b" * 64])  # already on
    status = await codes.status(user.id)
    assert (status.total, status.left) == (10, 10) and status.created_at is not None
    assert status.created_at.tzinfo is not None

    assert await codes.use(user.id, f"{3:064x}", now())
    assert not await codes.use(user.id, f"{3:064x}", now())  # once
    assert not await codes.use(other.id, f"{4:064x}", now())  # another user's code
    assert not await codes.use(user.id, "f" * 64, now())
    assert (await codes.status(user.id)).left == 9

    await codes.replace(user.id, ["c" * 64, "d" * 64], now())
    assert not await codes.use(user.id, f"{4:064x}", now())  # replaced
    status = await codes.status(user.id)
    assert (status.total, status.left) == (2, 2)

    await codes.replace(other.id, ["c" * 64], now())  # the same hash for another user
    await store.disable_totp(user.id)
    creds = await store.credentials(user.id)
    assert creds is not None and not creds.totp_enabled and creds.totp_secret is None
    assert (await codes.status(user.id)).total == 0
    assert (await codes.status(other.id)).total == 1
    async with repo.engine.begin() as conn:
        await conn.execute(delete(users).where(users.c.id == other.id))
    async with repo.engine.connect() as conn:
        left = await conn.scalar(select(func.count()).select_from(console_recovery_codes))
    assert left == 0  # ON DELETE CASCADE
    assert await codes.delete(user.id) == 0
