"""Console accounts: sign-up, sign-in (password, then a TOTP code or a recovery code when
two-factor is on), server-side sessions, sign-out, TOTP set-up (with its QR code) and
removal, recovery codes, password changes.

A session id is 32 random bytes (URL-safe base64) given to the browser in the ``rg_session``
cookie; the database holds only its HMAC (``Secrets.hash_key``), so a copy of the database
opens no session. The CSRF token of a session is the HMAC of ``"csrf:" + id``: the browser
learns it from ``GET /console/api/me`` and sends it back in ``X-CSRF-Token``.

Sign-in attempts are counted through the shared state (every worker and node sees the same
counts): every attempt per client address, failed attempts per username. When the shared
state does not answer, the limits are skipped (logged), like the model API's limits.
A recovery code given at the TOTP step is counted exactly like a TOTP code.

Recovery codes: 10 one-time codes made when two-factor is turned on (and again on request),
shown once; each works once in place of a TOTP code. Only their HMAC is stored
(``console/recovery.py``).
"""

from __future__ import annotations

import logging
import re
import secrets as pysecrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from relaygate.console import passwords, totp
from relaygate.console import recovery as recovery_codes
from relaygate.console.config import ConsoleSettings
from relaygate.errors import AuthError, InvalidRequest, PolicyError, RateLimited
from relaygate.sharedstate.base import SharedState, SharedStateError
from relaygate.storage.base import Conflict, now
from relaygate.storage.console import ConsoleStore, Credentials, SessionRow
from relaygate.storage.console_recovery import RecoveryCodeStore, RecoveryStatus
from relaygate.storage.crypto import Secrets
from relaygate.storage.records import UserRecord
from relaygate.storage.users import UserStore

__all__ = ["Accounts", "Current", "Issued", "SignIn", "check_password", "check_username"]

log = logging.getLogger("relaygate.console")

USERNAME_RE = re.compile(r"[\w.-]{3,32}")
TICKET_ATTEMPTS = 5  # wrong codes on one sign-in ticket before it is void
TOUCH_EVERY = 60.0  # seconds: a session's last_seen_at is written at most this often
SIGNUP_WINDOW = 3600.0
PURGE_EVERY = 3600.0  # seconds: how often a worker deletes ended sessions and tickets


@dataclass(frozen=True, slots=True)
class Issued:
    """A new session: the plain id (for the cookie, never stored) and when it ends."""

    session_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SignIn:
    """A sign-in's outcome: a session, or a ticket for the TOTP step."""

    user: UserRecord
    issued: Issued | None = None
    ticket: str | None = None


@dataclass(frozen=True, slots=True)
class Current:
    """The signed-in user of a request and its session."""

    user: UserRecord
    session: SessionRow
    session_id: str


def check_username(value: Any) -> str:
    if not isinstance(value, str) or USERNAME_RE.fullmatch(value) is None:
        raise InvalidRequest(
            "`username` must be 3-32 letters, digits, `_`, `.` or `-`.", param="username"
        )
    return value


def check_password(value: Any, name: str = "password") -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"`{name}` must be a string.", param=name)
    problem = passwords.password_problem(value, name)
    if problem is not None:
        raise InvalidRequest(problem, param=name)
    return value


def _given(value: Any, name: str, max_len: int) -> str:
    """A sign-in field: a non-empty string of at most ``max_len`` characters."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"`{name}` is required (a string).", param=name)
    if len(value) > max_len:
        raise InvalidRequest(f"`{name}` is longer than {max_len} characters.", param=name)
    return value


def _code(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("`code` is required: the 6-digit code of your app.", param="code")
    code = "".join(value.split())
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        raise InvalidRequest("`code` must be the 6 digits your app shows.", param="code")
    return code


def _second_factor(value: Any) -> tuple[str, str]:
    """What the TOTP step and turning two-factor off accept in ``code``."""
    found = totp.read_code(value) if isinstance(value, str) else None
    if found is None:
        raise InvalidRequest(
            "`code` must be the 6 digits your app shows, or one of your recovery codes.",
            param="code",
        )
    return found


def _limited(wait: float, what: str) -> RateLimited:
    seconds = max(1, int(wait + 0.999))
    err = RateLimited(f"Too many {what}; try again in {seconds} s.", code="too_many_attempts")
    err.retry_after = seconds
    return err


class Accounts:
    def __init__(
        self,
        store: ConsoleStore,
        users: UserStore,
        secrets: Secrets,
        shared: SharedState,
        cfg: ConsoleSettings,
    ) -> None:
        self.store = store
        self.users = users
        self.secrets = secrets
        self.shared = shared
        self.cfg = cfg
        self.recovery = RecoveryCodeStore(store.engine)
        self._purged_at = 0.0

    # ---- tokens ------------------------------------------------------------------------
    def csrf_token(self, session_id: str) -> str:
        return self.secrets.hash_key("csrf:" + session_id)

    def _hash(self, session_id: str) -> str:
        return self.secrets.hash_key("session:" + session_id)

    async def _issue(self, user_id: int, kind: str, ttl: float, ip: str, ua: str) -> Issued:
        await self._purge()
        sid = pysecrets.token_urlsafe(32)
        expires = now() + timedelta(seconds=ttl)
        await self.store.create_session(
            self._hash(sid), user_id, kind=kind, expires_at=expires, ip=ip, user_agent=ua
        )
        return Issued(sid, expires)

    async def _purge(self) -> None:
        """Delete ended sessions and tickets, at most once per :data:`PURGE_EVERY` per
        worker (a session presented after its end is deleted at once anyway)."""
        mono = time.monotonic()
        if self._purged_at and mono - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = mono
        try:
            removed = await self.store.purge_expired(now())
        except Exception:
            log.warning("purging ended console sessions failed", exc_info=True)
            return
        if removed:
            log.info("ended console sessions purged", extra={"sessions": removed})

    # ---- rate limits -------------------------------------------------------------------
    async def _hit(self, key: str, limit: int, window: float, what: str) -> None:
        try:
            wait = await self.shared.hit_window(key, limit, window)
        except SharedStateError:
            log.warning("console rate limit skipped: shared state unavailable", exc_info=True)
            return
        if wait is not None:
            raise _limited(wait, what)

    async def _undo(self, key: str) -> None:
        try:
            await self.shared.undo_hit(key)
        except SharedStateError:
            log.warning("console rate limit: undo failed", exc_info=True)

    # ---- sign-up and sign-in -------------------------------------------------------------
    async def sign_up(self, body: dict[str, Any], ip: str, ua: str) -> tuple[UserRecord, Issued]:
        if not self.cfg.signup:
            raise PolicyError(
                "Sign-up is turned off on this gateway; ask the operator for an account.",
                code="signup_disabled",
            )
        _only(body, ("username", "password"))
        username = check_username(body.get("username"))
        password = check_password(body.get("password"))
        await self._hit(
            f"console:signup:ip:{ip}", self.cfg.signup_ip_limit, SIGNUP_WINDOW, "sign-ups"
        )
        taken = InvalidRequest(
            f"The username {username!r} is taken; choose another.",
            code="username_taken",
            param="username",
            status=409,
        )
        if await self.store.username_taken(username):
            raise taken
        hashed = await passwords.hash_password(password)
        try:
            user = await self.store.create_account(username, hashed)
        except Conflict:
            raise taken from None
        log.info("console sign-up", extra={"user_id": user.id, "ip": ip})
        return user, await self._issue(user.id, "session", self.cfg.session_ttl, ip, ua)

    async def sign_in(self, body: dict[str, Any], ip: str, ua: str) -> SignIn:
        _only(body, ("username", "password"))
        username = _given(body.get("username"), "username", 64)
        password = _given(body.get("password"), "password", passwords.MAX_PASSWORD)
        cfg = self.cfg
        await self._hit(
            f"console:signin:ip:{ip}", cfg.signin_ip_limit, cfg.signin_window, "sign-in attempts"
        )
        user_key = f"console:signin:user:{username.lower()}"
        await self._hit(
            user_key, cfg.signin_user_limit, cfg.signin_window, "failed sign-ins for this user"
        )
        user, creds = await self.store.user_and_credentials(username)
        ok, rehash = await passwords.verify_password(
            creds.password_hash if creds else None, password
        )
        if not ok or user is None or creds is None:
            log.info(
                "console sign-in failed",
                extra={"user_id": user.id if user else None, "ip": ip},
            )
            raise AuthError("Wrong username or password.", code="invalid_credentials")
        await self._undo(user_key)  # a success is not a failed attempt
        if user.status != "active":
            raise PolicyError("This account is disabled.", code="account_disabled")
        if rehash:
            await self.store.set_password(user.id, await passwords.hash_password(password))
        log.info(
            "console sign-in", extra={"user_id": user.id, "ip": ip, "totp": creds.totp_enabled}
        )
        if creds.totp_enabled:
            ticket = await self._issue(user.id, "totp", cfg.totp_ticket_ttl, ip, ua)
            return SignIn(user, ticket=ticket.session_id)
        return SignIn(user, issued=await self._issue(user.id, "session", cfg.session_ttl, ip, ua))

    async def sign_in_external(self, user: UserRecord, ip: str, ua: str) -> SignIn:
        """A sign-in an external provider vouched for (``console/oauth.py``): a session,
        or a ticket for the TOTP step when two-factor is on, as after a right password."""
        if user.status != "active":
            raise PolicyError("This account is disabled.", code="account_disabled")
        creds = await self.store.credentials(user.id)
        log.info("console external sign-in", extra={"user_id": user.id, "ip": ip})
        if creds is not None and creds.totp_enabled:
            ticket = await self._issue(user.id, "totp", self.cfg.totp_ticket_ttl, ip, ua)
            return SignIn(user, ticket=ticket.session_id)
        return SignIn(
            user, issued=await self._issue(user.id, "session", self.cfg.session_ttl, ip, ua)
        )

    async def sign_in_totp(
        self, body: dict[str, Any], ip: str, ua: str
    ) -> tuple[UserRecord, Issued]:
        _only(body, ("ticket", "code"))
        ticket = _given(body.get("ticket"), "ticket", 128)
        kind, code = _second_factor(body.get("code"))
        expired = AuthError(
            "This sign-in has expired; enter your username and password again.",
            code="ticket_expired",
        )
        id_hash = self._hash(ticket)
        row = await self.store.session(id_hash)
        if row is None or row.kind != "totp" or row.expires_at <= now():
            raise expired
        user = await self.users.get(user_id=row.user_id)
        creds = await self.store.credentials(row.user_id)
        if user is None or creds is None or not creds.totp_enabled or creds.totp_secret is None:
            await self.store.delete_session(id_hash)
            raise expired
        user_key = f"console:signin:user:{user.username.lower()}"
        cfg = self.cfg
        await self._hit(
            user_key, cfg.signin_user_limit, cfg.signin_window, "failed sign-ins for this user"
        )
        if not await self._second_factor_ok(user.id, creds, kind, code):
            if await self.store.count_attempt(id_hash) >= TICKET_ATTEMPTS:
                await self.store.delete_session(id_hash)
                raise AuthError(
                    "Too many wrong codes; sign in again with your password.",
                    code="ticket_expired",
                )
            raise AuthError("Wrong or already used code.", code="invalid_code", param="code")
        await self._undo(user_key)
        await self.store.delete_session(id_hash)
        if user.status != "active":
            raise PolicyError("This account is disabled.", code="account_disabled")
        return user, await self._issue(user.id, "session", cfg.session_ttl, ip, ua)

    # ---- sessions ------------------------------------------------------------------------
    async def current(self, session_id: str | None) -> Current | None:
        """The session's user, or None (no cookie, unknown, expired, idle too long, or the
        user disabled). An ended session's row is deleted."""
        if not session_id or len(session_id) > 128:
            return None
        id_hash = self._hash(session_id)
        row = await self.store.session(id_hash)
        if row is None or row.kind != "session":
            return None
        at = now()
        idle = timedelta(seconds=self.cfg.session_idle)
        if row.expires_at <= at or row.last_seen_at + idle <= at:
            await self.store.delete_session(id_hash)
            return None
        user = await self.users.get(user_id=row.user_id)
        if user is None or user.status != "active":
            return None
        if (at - row.last_seen_at).total_seconds() >= TOUCH_EVERY:
            await self.store.touch_session(id_hash, at)
        return Current(user, row, session_id)

    async def sign_out(self, session_id: str) -> None:
        await self.store.delete_session(self._hash(session_id))

    # ---- password and two-factor -------------------------------------------------------------
    async def _check_own_password(self, user: UserRecord, password: Any, name: str) -> None:
        given = _given(password, name, passwords.MAX_PASSWORD)
        creds = await self.store.credentials(user.id)
        key = f"console:signin:user:{user.username.lower()}"
        cfg = self.cfg
        await self._hit(key, cfg.signin_user_limit, cfg.signin_window, "wrong passwords")
        ok, _ = await passwords.verify_password(creds.password_hash if creds else None, given)
        if not ok:
            raise AuthError("The password is wrong.", code="invalid_credentials", param=name)
        await self._undo(key)

    async def change_password(self, cur: Current, body: dict[str, Any]) -> int:
        """Set a new password; every other session of the user ends. Returns how many."""
        _only(body, ("current_password", "new_password"))
        new = check_password(body.get("new_password"), "new_password")
        await self._check_own_password(cur.user, body.get("current_password"), "current_password")
        await self.store.set_password(cur.user.id, await passwords.hash_password(new))
        log.info("console password changed", extra={"user_id": cur.user.id})
        return await self.store.delete_user_sessions(cur.user.id, keep=cur.session.id_hash)

    def _decrypt(self, token: str) -> str:
        return self.secrets.decrypt_keys(token)[0]

    async def totp_status(self, user_id: int) -> bool:
        creds = await self.store.credentials(user_id)
        return bool(creds and creds.totp_enabled)

    async def totp_setup(self, cur: Current) -> dict[str, str]:
        """A new secret to enter in an authenticator app; two-factor is on only once a
        code from it is confirmed (:meth:`totp_enable`)."""
        creds = await self.store.credentials(cur.user.id)
        if creds is None:
            raise PolicyError("This account has no console password.", code="no_password")
        if creds.totp_enabled:
            raise InvalidRequest(
                "Two-factor sign-in is already on; turn it off first.",
                code="totp_enabled",
                status=409,
            )
        secret = totp.new_secret()
        await self.store.update_totp(cur.user.id, totp_pending=self.secrets.encrypt_keys([secret]))
        uri = totp.provisioning_uri(secret, cur.user.username)
        return {"secret": secret, "uri": uri, "qr_svg": totp.qr_svg_uri(uri)}

    async def totp_enable(self, cur: Current, body: dict[str, Any]) -> list[str]:
        """Turn two-factor on once a code of the pending secret matches; the answer is the
        new recovery codes (``xxxxx-xxxxx``), shown this once."""
        _only(body, ("code",))
        code = _code(body.get("code"))
        creds = await self.store.credentials(cur.user.id)
        if creds is None or creds.totp_pending is None:
            raise InvalidRequest(
                "Start the set-up first (POST /console/api/totp/setup).", code="totp_not_set_up"
            )
        secret = self._decrypt(creds.totp_pending)
        step = totp.matching_step(secret, code)
        if step is None:
            raise InvalidRequest(
                "The code does not match; check the app's clock and try the next code.",
                code="invalid_code",
                param="code",
            )
        codes, hashes = recovery_codes.new_codes(self.secrets, cur.user.id)
        if not await self.store.enable_totp(cur.user.id, creds.totp_pending, step, hashes):
            raise InvalidRequest(
                "Two-factor sign-in was just turned on or set up again; reload the page.",
                code="totp_not_set_up",
                status=409,
            )
        log.info("console two-factor on", extra={"user_id": cur.user.id})
        return codes

    async def totp_disable(self, cur: Current, body: dict[str, Any]) -> None:
        """Turn two-factor off (the password and a TOTP code or a recovery code: a user
        who lost the phone can turn it off, then set up a new one); the recovery codes are
        deleted."""
        _only(body, ("password", "code"))
        kind, code = _second_factor(body.get("code"))
        await self._check_own_password(cur.user, body.get("password"), "password")
        creds = await self._enabled(cur.user.id)
        await self._check_own_code(cur.user, creds, kind, code)
        await self.store.disable_totp(cur.user.id)
        log.info("console two-factor off", extra={"user_id": cur.user.id})

    # ---- recovery codes ----------------------------------------------------------------
    async def _enabled(self, user_id: int) -> Credentials:
        creds = await self.store.credentials(user_id)
        if creds is None or not creds.totp_enabled or creds.totp_secret is None:
            raise InvalidRequest("Two-factor sign-in is not on.", code="totp_not_enabled")
        return creds

    async def _second_factor_ok(
        self, user_id: int, creds: Credentials, kind: str, code: str
    ) -> bool:
        """Whether ``code`` is a TOTP code of a step not used yet, or an unused recovery
        code; either is used up by this call when it is right."""
        if kind == "recovery":
            stored = recovery_codes.code_hash(self.secrets, user_id, code)
            if not await self.recovery.use(user_id, stored, now()):
                return False
            left = (await self.recovery.status(user_id)).left
            log.info("console recovery code used", extra={"user_id": user_id, "left": left})
            return True
        assert creds.totp_secret is not None
        step = totp.matching_step(self._decrypt(creds.totp_secret), code)
        return step is not None and await self.store.claim_totp_step(user_id, step)

    async def _check_own_code(
        self, user: UserRecord, creds: Credentials, kind: str, code: str
    ) -> None:
        """A signed-in user's second factor, counted like a sign-in's when wrong."""
        key = f"console:signin:user:{user.username.lower()}"
        cfg = self.cfg
        await self._hit(key, cfg.signin_user_limit, cfg.signin_window, "wrong codes")
        if not await self._second_factor_ok(user.id, creds, kind, code):
            raise AuthError("Wrong or already used code.", code="invalid_code", param="code")
        await self._undo(key)

    async def recovery_status(self, user_id: int) -> RecoveryStatus:
        return await self.recovery.status(user_id)

    async def regenerate_recovery(self, cur: Current, body: dict[str, Any]) -> list[str]:
        """New recovery codes in place of all the old ones, used or not; needs the current
        password or a TOTP code (``{"password"}`` or ``{"code"}``), counted by the sign-in
        limits when wrong."""
        _only(body, ("password", "code"))
        if ("password" in body) == ("code" in body):
            raise InvalidRequest(
                "Give your current `password` or a `code` of your app (one of them).",
                param="password",
            )
        creds = await self._enabled(cur.user.id)
        if "password" in body:
            await self._check_own_password(cur.user, body.get("password"), "password")
        else:
            await self._check_own_code(cur.user, creds, "totp", _code(body.get("code")))
        codes, hashes = recovery_codes.new_codes(self.secrets, cur.user.id)
        await self.recovery.replace(cur.user.id, hashes, now())
        log.info("console recovery codes made again", extra={"user_id": cur.user.id})
        return codes


def _only(body: dict[str, Any], known: tuple[str, ...]) -> None:
    for name in body:
        if name not in known:
            raise InvalidRequest(
                f"Unknown field `{name}`; expected {', '.join(known)}.", param=str(name)[:64]
            )
