"""Runtime settings: four gateway settings an admin may change without a restart
(docs/configuration.md, "Runtime settings").

=====================  =====================================  ==============================
field                  environment variable (the default)     what it changes
=====================  =====================================  ==============================
envelope               RELAYGATE_ENVELOPE                     ``code``/``msg`` in JSON bodies
openai_status_codes    RELAYGATE_OPENAI_STATUS_CODES          OpenAI's error statuses
console_signup         RELAYGATE_CONSOLE_SIGNUP               console sign-up (and first
                                                              external sign-in) allowed
usd_rate               RELAYGATE_USD_RATE                     CNY per USD for prices
=====================  =====================================  ==============================

An override is a row of ``runtime_settings`` (``storage/runtime_settings.py``), written with
the ``config`` revision bump. Every worker applies the overrides to its one ``Settings``
object when its catalog (re)loads (:meth:`RuntimeSettings.reload` is a catalog listener,
registered before the price table's, so prices are rebuilt at the new rate): the hot path
keeps reading plain attributes of ``state.settings``, no database. Removing an override
(``null`` in a PATCH) brings back the environment's value.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.services.fields import ValidationError
from relaygate.settings import Settings
from relaygate.storage.runtime_settings import Override, RuntimeSettingsStore

__all__ = [
    "FIELDS",
    "RuntimeSettings",
    "check_changes",
    "check_rate",
    "env_defaults",
    "runtime_for",
]

log = logging.getLogger("relaygate.settings")

#: field -> the environment variable that gives its default
FIELDS: dict[str, str] = {
    "envelope": "RELAYGATE_ENVELOPE",
    "openai_status_codes": "RELAYGATE_OPENAI_STATUS_CODES",
    "console_signup": "RELAYGATE_CONSOLE_SIGNUP",
    "usd_rate": "RELAYGATE_USD_RATE",
}
_FLAGS = ("envelope", "openai_status_codes", "console_signup")
MAX_RATE = Decimal(1_000_000)
RATE_DECIMALS = 8


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def env_defaults(settings: Settings) -> dict[str, Any]:
    """The values the environment gives (before any override), as the API shows them."""
    return {
        "envelope": settings.envelope,
        "openai_status_codes": settings.openai_status_codes,
        "console_signup": _env_flag("RELAYGATE_CONSOLE_SIGNUP", True),
        "usd_rate": settings.usd_rate,
    }


def check_rate(raw: Any) -> str:
    """An exchange rate: a decimal string (or a whole number), positive, at most
    :data:`MAX_RATE` and :data:`RATE_DECIMALS` decimal places; returned normalised."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ValidationError(
            "usd_rate", '`usd_rate` must be a decimal number in a string, e.g. "7.2".'
        )
    text = str(raw).strip()
    if not text or len(text) > 32:
        raise ValidationError("usd_rate", '`usd_rate` must be a decimal number, e.g. "7.2".')
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise ValidationError(
            "usd_rate", f"`usd_rate` must be a decimal number, not {text[:32]!r}."
        ) from None
    if not rate.is_finite() or rate <= 0 or rate > MAX_RATE:
        raise ValidationError(
            "usd_rate", f"`usd_rate` must be a positive number up to {MAX_RATE}, not {text!r}."
        )
    exponent = rate.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -RATE_DECIMALS:
        raise ValidationError(
            "usd_rate", f"`usd_rate` has at most {RATE_DECIMALS} decimal places, not {text!r}."
        )
    out = format(rate, "f")
    if "." in out:
        out = out.rstrip("0").rstrip(".")
    return out


def check_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    """A PATCH body checked whole: known fields only, at least one; ``null`` resets a field
    to its environment value. Nothing is saved when any field is wrong."""
    if not body:
        raise ValidationError(None, f"Name at least one setting to change: {', '.join(FIELDS)}.")
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name not in FIELDS:
            raise ValidationError(
                str(name)[:64],
                f"Unknown setting `{str(name)[:64]}`; expected one of {', '.join(FIELDS)}.",
            )
        if value is None:
            out[name] = None
        elif name in _FLAGS:
            if not isinstance(value, bool):
                raise ValidationError(name, f"`{name}` must be true, false or null.")
            out[name] = value
        else:
            out[name] = check_rate(value)
    return out


class RuntimeSettings:
    """Applies the stored overrides to a worker's ``Settings`` (in place)."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        on_envelope: Callable[[bool], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = RuntimeSettingsStore(engine)
        self.defaults = env_defaults(settings)
        self.on_envelope = on_envelope  # code outside the app that renders errors (the edge)
        self.applied: dict[str, Any] = {}
        _workers[id(settings)] = self

    async def reload(self, _revision: int = 0) -> None:
        """A catalog listener: read the overrides and apply them."""
        self.apply(await self.store.all())

    def apply(self, overrides: Mapping[str, Override]) -> None:
        s, d = self.settings, self.defaults
        values: dict[str, Any] = {}
        for name in FIELDS:
            found = overrides.get(name)
            value = d[name] if found is None else found.value
            try:  # a row written by an older or broken hand: the default, logged
                value = check_changes({name: value})[name]
            except ValidationError:
                log.warning("ignoring a bad runtime setting", extra={"setting": name})
                value = d[name]
            values[name] = value
        s.envelope = bool(values["envelope"])
        s.openai_status_codes = bool(values["openai_status_codes"])
        s.usd_rate = str(values["usd_rate"])
        signup = overrides.get("console_signup")
        s.console_signup = None if signup is None else bool(values["console_signup"])
        if self.on_envelope is not None:
            self.on_envelope(s.envelope)
        if values != self.applied:
            if self.applied:
                log.info("runtime settings applied", extra={"settings": values})
            self.applied = values

    def view(self, overrides: Mapping[str, Override]) -> list[dict[str, Any]]:
        """Every field: its current value, the environment's default and the override."""
        out = []
        for name, env in FIELDS.items():
            found = overrides.get(name)
            out.append(
                {
                    "name": name,
                    "env": env,
                    "value": self.defaults[name] if found is None else found.value,
                    "default": self.defaults[name],
                    "overridden": found is not None,
                    "updated_at": found.updated_at.isoformat()
                    if found and found.updated_at
                    else None,
                    "updated_by": found.updated_by if found else None,
                }
            )
        return out


#: id(the worker's Settings) -> its applier (one per worker process; the admin API finds it)
_workers: dict[int, RuntimeSettings] = {}


def runtime_for(settings: Settings, engine: AsyncEngine) -> RuntimeSettings:
    """The applier of ``settings`` (made now when the app registered none: its values are
    then the environment's)."""
    found = _workers.get(id(settings))
    if found is not None and found.settings is settings:
        return found
    return RuntimeSettings(settings, engine)
