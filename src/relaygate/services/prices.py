"""``PriceService``: validated writes of the price catalogue and the price groups.

Used by the admin API (``api/admin_prices.py``). Each write is validated completely before
anything is stored, and a bulk import is all-or-nothing: every row is checked first (the
error names the failing row, ``prices[3].input``), then all rows are written in one
transaction. Prices are exact decimal strings, stored as entered (normalised:
``"0.50"`` → ``"0.5"``); ``billing/prices.py`` compiles them to units.

What is refused, each with an error naming the field: negative, non-numeric, NaN/infinite
prices, prices over 10^9 or with more than 10 decimals, a currency other than CNY/USD, a
unit other than ``1k``/``1m``, unknown fields, and a price for a model that no channel
lists and the default catalogue does not know (a typo, most likely) unless the body says
``"force": true``. ``image_prices`` must be an object of at most 50 entries whose keys are
a size (``1024x1792``), a quality (``standard``, ``hd``, ``low``, ``medium``, ``high``,
``auto``) or ``SIZE/QUALITY``, each value a price per image like the others; keys are stored
in lower case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from relaygate.billing.default_prices import DEFAULT_GROUPS, DEFAULT_MODELS, DEFAULT_PRICES
from relaygate.billing.media import IMAGE_PRICES_MAX, image_price_key
from relaygate.billing.money import to_decimal
from relaygate.billing.prices import (
    CURRENCIES,
    PER,
    PRICE_FIELDS,
    TOKEN_PRICE_FIELDS,
    UNIT_PRICE_FIELDS,
    compile_price,
    format_character_price,
    format_price,
)
from relaygate.billing.stage import FEE_NAMES
from relaygate.errors import InvalidRequest, NotFound
from relaygate.services.admin import ConflictError
from relaygate.services.fields import (
    Field,
    Schema,
    ValidationError,
    boolean,
    integer,
    nullable,
    string,
)
from relaygate.services.validation import GROUP_RE
from relaygate.storage.base import Conflict
from relaygate.storage.prices import PRICE_COLUMNS
from relaygate.storage.repo import Repository

__all__ = [
    "BULK_MAX",
    "GROUP",
    "MAX_PRICE",
    "MULTIPLIER_MAX",
    "PRICE",
    "PriceService",
    "price_value",
]

MAX_PRICE = Decimal(10) ** 9  # per 1K/1M tokens, request, image or second
PRICE_DECIMALS = 10
MULTIPLIER_MAX = Decimal(100)
MULTIPLIER_DECIMALS = 6
CONTEXT_MAX = 10**8
BULK_MAX = 5000  # rows in one import

_DEFAULTS: dict[str, dict[str, Any]] = {row["model"]: row for row in DEFAULT_PRICES}


def _decimals(dec: Decimal) -> int:
    exponent = dec.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def price_value(name: str, value: Any) -> str:
    """A price: a non-negative decimal (JSON number or string) up to 10^9 with at most 10
    decimals, as a normalised decimal string (``"0.50"`` → ``"0.5"``)."""
    try:
        dec = to_decimal(value, name)
    except InvalidRequest as exc:
        raise ValidationError(name, exc.message) from None
    if dec < 0:
        raise ValidationError(name, f"`{name}` must not be negative (got {value!r}).")
    if dec > MAX_PRICE:
        raise ValidationError(name, f"`{name}` is too large (at most 10^9, got {value!r}).")
    if _decimals(dec) > PRICE_DECIMALS:
        raise ValidationError(
            name, f"`{name}` has more than {PRICE_DECIMALS} decimals (got {value!r})."
        )
    return "0" if dec == 0 else format(dec.normalize(), "f")


def _multiplier(name: str, value: Any) -> str:
    try:
        dec = to_decimal(value, name)
    except InvalidRequest as exc:
        raise ValidationError(name, exc.message) from None
    if not 0 < dec <= MULTIPLIER_MAX:
        raise ValidationError(
            name, f"`{name}` must be greater than 0 and at most 100 (got {value!r})."
        )
    if _decimals(dec) > MULTIPLIER_DECIMALS:
        raise ValidationError(
            name, f"`{name}` has more than {MULTIPLIER_DECIMALS} decimals (got {value!r})."
        )
    return format(dec.normalize(), "f")


def _upper_choice(*values: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        text = value.strip().upper() if isinstance(value, str) else value
        if text not in values:
            known = ", ".join(f"'{v}'" for v in values)
            raise ValidationError(name, f"`{name}` must be one of {known}, not {value!r}.")
        return str(text)

    return check


def _lower_choice(*values: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in values:
            known = ", ".join(f"'{v}'" for v in values)
            raise ValidationError(name, f"`{name}` must be one of {known}, not {value!r}.")
        return str(text)

    return check


def _image_prices(name: str, value: Any) -> dict[str, str]:
    """``{"1024x1792/hd": "0.12", "1024x1024": "0.04", "high": "0.167"}``: normalised keys
    (``billing/media.py``) to normalised prices per image."""
    if not isinstance(value, dict):
        raise ValidationError(
            name,
            f'`{name}` must be an object of prices per image, e.g. {{"1024x1792/hd": "0.12", '
            f'"1024x1024": "0.04", "high": "0.167"}}, not {type(value).__name__}.',
        )
    if len(value) > IMAGE_PRICES_MAX:
        raise ValidationError(name, f"`{name}` may hold at most {IMAGE_PRICES_MAX} entries.")
    out: dict[str, str] = {}
    for key, price in value.items():
        try:
            norm = image_price_key(key)
        except ValueError as exc:
            raise ValidationError(name, f"`{name}`: {exc}.") from None
        if norm in out:
            raise ValidationError(name, f"`{name}` names {norm!r} twice.")
        out[norm] = price_value(f"{name}.{norm}", price)
    return out


def _group_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or GROUP_RE.fullmatch(value) is None:
        raise ValidationError(
            name,
            f'`{name}` must be 1-32 characters of a-z, 0-9, `_` and `-` (e.g. "vip"), '
            f"not {value!r}.",
        )
    return value


_optional_price = Field(nullable(price_value), default=None)
_size = Field(nullable(integer(1, CONTEXT_MAX)), default=None)

#: a price row; ``force`` is not stored (it allows a model nothing else knows)
PRICE = Schema(
    "price",
    {
        "model": Field(string(1, 128, no_space=True), required=True, patchable=False),
        "provider": Field(string(0, 64), default=""),
        "currency": Field(_upper_choice(*CURRENCIES), default="CNY"),
        "per": Field(_lower_choice(*PER), default="1m"),
        "input": Field(price_value, required=True),
        "output": Field(price_value, required=True),
        **{name: _optional_price for name in TOKEN_PRICE_FIELDS[2:] + UNIT_PRICE_FIELDS},
        "image_prices": Field(nullable(_image_prices), default=None),
        "context_window": _size,
        "max_output": _size,
        "description": Field(string(0, 2000), default=""),
        "source": Field(string(0, 256), default=""),
        "force": Field(boolean, default=False, patchable=False),
    },
)

GROUP = Schema(
    "price group",
    {
        "name": Field(_group_name, required=True, patchable=False),
        "multiplier": Field(_multiplier, required=True),
        "description": Field(string(0, 256), default=""),
    },
)


class PriceService:
    """Price catalogue administration. ``known_model(name)`` says whether a channel lists
    the model (``Catalog.is_known``); ``currency`` and ``usd_rate`` are the operator's
    (``RELAYGATE_CURRENCY``, ``RELAYGATE_USD_RATE``), used to show converted prices and as
    the currency of a price that does not name one."""

    def __init__(
        self,
        repo: Repository,
        known_model: Callable[[str], bool] = lambda _name: False,
        *,
        currency: str = "CNY",
        usd_rate: str | Decimal = "7.2",
    ) -> None:
        self.repo = repo
        self.known_model = known_model
        self.currency = currency.strip().upper()
        self.usd_rate = Decimal(str(usd_rate))

    # ---- reading -------------------------------------------------------------------
    async def list_prices(self) -> list[dict[str, Any]]:
        """The effective catalogue: stored rows and the defaults they do not replace."""
        stored = {row["model"]: row for row in await self.repo.prices.list()}
        rows = [self.public(row, "db") for row in stored.values()]
        rows += [self.public(row, "default") for m, row in _DEFAULTS.items() if m not in stored]
        return sorted(rows, key=lambda r: (r["provider"], str(r["model"]).lower()))

    async def get_price(self, model: str) -> dict[str, Any]:
        row = await self.repo.prices.get(model)
        if row is not None:
            return self.public(row, "db")
        if model in _DEFAULTS:
            return self.public(_DEFAULTS[model], "default")
        raise NotFound(f"No price for the model {model!r}.", param="model")

    def public(self, row: Mapping[str, Any], origin: str) -> dict[str, Any]:
        """A price row as the admin API shows it: as entered, plus what billing uses
        (converted to the operator currency, per 1M tokens)."""
        out: dict[str, Any] = {name: row.get(name) for name in PRICE_COLUMNS}
        updated = row.get("updated_at")
        out["updated_at"] = updated.isoformat() if updated is not None else None
        out["origin"] = origin
        try:
            price = compile_price(row, self.currency, self.usd_rate, origin=origin)
        except (ValueError, KeyError) as exc:  # a row edited by hand in the database
            out["billed"] = None
            out["error"] = str(exc)
            return out
        # token prices per 1M tokens, the others per request/image/second/character
        billed: dict[str, Any] = {"currency": self.currency, "per": "1m"}
        for name in PRICE_FIELDS:
            units = getattr(price, name)
            if name == "per_character":
                billed[name] = format_character_price(units)
            else:
                billed[name] = format_price(units, "1m")
        billed["image_prices"] = {k: format_price(u, "1m") for k, u in price.image_prices}
        out["billed"] = billed
        return out

    # ---- writing -------------------------------------------------------------------
    async def upsert_price(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace the price of ``body["model"]``."""
        fields = await self._checked(body, stored=None)
        await self._write([fields])
        return await self.get_price(fields["model"])

    async def patch_price(self, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Change some fields of a model's price. A model priced only by the defaults gets
        a stored row: the default with the change."""
        changes = PRICE.patch(body)
        stored = await self.repo.prices.get(model)
        base = stored if stored is not None else _DEFAULTS.get(model)
        if base is None:
            raise NotFound(
                f"No price for the model {model!r}; create it with POST /admin/api/prices.",
                param="model",
            )
        merged = {name: base.get(name) for name in PRICE_COLUMNS} | changes
        fields = PRICE.create(_without_none(merged))
        del fields["force"]  # not a column (a stored or default model needs no force)
        await self._write([fields])
        return await self.get_price(model)

    async def import_prices(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``{"prices": [...], "force": false}``: every row checked, then all written in one
        transaction, or none. Each row may also carry its own ``force``."""
        if not isinstance(body, Mapping):
            raise ValidationError(None, "The request body must be a JSON object.")
        unknown = [k for k in body if k not in ("prices", "force")]
        if unknown:
            names = ", ".join(f"`{k}`" for k in unknown)
            raise ValidationError(
                unknown[0], f"Unknown field(s) for a price import: {names}. Known: force, prices."
            )
        force = boolean("force", body.get("force", False))
        items = body.get("prices")
        if not isinstance(items, list) or not items:
            raise ValidationError("prices", "`prices` must be a non-empty array of price rows.")
        if len(items) > BULK_MAX:
            raise ValidationError("prices", f"`prices` may hold at most {BULK_MAX} rows.")
        stored = {row["model"]: row for row in await self.repo.prices.list()}
        seen: dict[str, int] = {}
        rows: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            where = f"prices[{i}]"
            if not isinstance(item, Mapping):
                raise ValidationError(where, f"`{where}` must be a price object.")
            if force and "force" not in item:
                item = {**item, "force": True}
            try:
                fields = await self._checked(item, stored=stored)
            except ValidationError as exc:
                param = f"{where}.{exc.field}" if exc.field else where
                label = item.get("model") if isinstance(item.get("model"), str) else None
                row_name = f"{where} ({label})" if label else where
                raise ValidationError(param, f"{row_name}: {exc.message}") from None
            first = seen.setdefault(fields["model"], i)
            if first != i:
                raise ValidationError(
                    f"{where}.model",
                    f"{where}: the model {fields['model']!r} is also at prices[{first}].",
                )
            rows.append(fields)
        await self._write(rows)
        return [await self.get_price(row["model"]) for row in rows]

    async def delete_price(self, model: str) -> None:
        """Remove a stored price; a model in the defaults falls back to its default."""
        if not await self.repo.prices.delete(model):
            hint = (
                " (the shipped default stays: change it with PATCH)" if model in _DEFAULTS else ""
            )
            raise NotFound(f"No stored price for the model {model!r}{hint}.", param="model")

    async def _checked(
        self, body: Mapping[str, Any], stored: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        if isinstance(body, Mapping) and "currency" not in body:
            body = {**body, "currency": self.currency}  # the operator's, when not named
        fields = PRICE.create(body)
        force = fields.pop("force")
        model = fields["model"]
        if (
            not force
            and model not in DEFAULT_MODELS
            and model not in FEE_NAMES
            and not self.known_model(model)
        ):
            exists = model in stored if stored is not None else await self._stored(model)
            if not exists:
                raise ValidationError(
                    "model",
                    f"No channel lists the model {model!r} and the default catalogue does "
                    'not know it; check the name, or send "force": true to price it anyway.',
                )
        return fields

    async def _stored(self, model: str) -> bool:
        return await self.repo.prices.get(model) is not None

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            await self.repo.prices.upsert_many(rows)
        except Conflict as exc:
            raise ConflictError(str(exc)) from exc

    # ---- groups --------------------------------------------------------------------
    async def list_groups(self) -> list[dict[str, Any]]:
        stored = {g["name"]: {**g, "origin": "db"} for g in await self.repo.prices.list_groups()}
        for g in DEFAULT_GROUPS:
            stored.setdefault(g["name"], {**g, "origin": "default"})
        return [stored[name] for name in sorted(stored)]

    async def upsert_group(self, body: Mapping[str, Any]) -> dict[str, Any]:
        fields = GROUP.create(body)
        try:
            await self.repo.prices.upsert_group(fields)
        except Conflict as exc:
            raise ConflictError(str(exc)) from exc
        return {**fields, "origin": "db"}

    async def delete_group(self, name: str) -> None:
        if not await self.repo.prices.delete_group(name):
            raise NotFound(f"No stored price group named {name!r}.", param="name")


def _without_none(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as create input: absent optional prices are left out (defaults
    fill them in), so ``None`` never reaches a checker that wants a value."""
    return {k: v for k, v in row.items() if v is not None}
