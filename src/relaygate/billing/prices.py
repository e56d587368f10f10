"""The price catalogue: per-model prices compiled to integer units, and what a request costs.

Prices are stored as decimal strings (``tables.prices``), per ``1k`` or ``1m`` tokens, in
``CNY`` or ``USD``. :func:`compile_price` converts each one once, when the table is loaded,
to **units of the operator currency per one million tokens** (``billing/money.py``: one
unit is 10^-6 of the currency). A price in the other currency is converted at
``RELAYGATE_USD_RATE`` (CNY per USD; a CNY price under a USD operator is divided by it).
The result is rounded half-up to the unit, so the resolution of a token price is
10^-6 currency per 1M tokens (10^-9 per 1K tokens): 0.0005 yuan per 1K tokens is exactly
500,000 units per 1M tokens, and one token of it costs 0.5 unit before the final rounding.

:func:`token_cost` is the hot path: a handful of integer operations and one rounding up
(ceil) at the end, so a price of a fraction of a fen per 1K tokens never rounds a request
down to nothing::

    fresh = prompt - cached - cache_write_5m - cache_write_1h        (never below 0)
    numerator = fresh * input + cached * cached_input
              + cache_write_5m * cache_write_5m_price + cache_write_1h * cache_write_1h_price
              + completion * output
    cost = ceil(numerator * m / (1_000_000 * d)) + ceil(per_request * m / d)

where ``m/d`` is the user's group multiplier. Token counts follow OpenAI's convention
(:class:`~relaygate.providers.base.Usage`): ``prompt_tokens`` includes cache reads and
writes, which is why they are subtracted from it, and ``completion_tokens`` includes
reasoning tokens, which are therefore billed at the output price once and never added
again.

:class:`PriceTable` is the in-memory view the hot path reads: the shipped defaults
(``billing/default_prices.py``) overlaid by the rows in the database (a stored row for a
model replaces its default), and the group multipliers (a missing group is 1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from relaygate.billing.default_prices import DEFAULT_GROUPS, DEFAULT_PRICES
from relaygate.billing.money import UNITS
from relaygate.providers.base import Usage

if TYPE_CHECKING:
    from relaygate.storage.prices import PriceStore

__all__ = [
    "CURRENCIES",
    "PER",
    "PRICE_FIELDS",
    "TOKEN_PRICE_FIELDS",
    "UNIT_PRICE_FIELDS",
    "ModelPrice",
    "PriceTable",
    "check_rate",
    "compile_price",
    "format_price",
    "media_cost",
    "parse_multiplier",
    "token_cost",
]

log = logging.getLogger("relaygate.billing")

CURRENCIES = ("CNY", "USD")
PER = ("1k", "1m")
#: per-token prices (per ``per`` tokens) and the per-request/-image/-second prices
TOKEN_PRICE_FIELDS = ("input", "output", "cached_input", "cache_write_5m", "cache_write_1h")
UNIT_PRICE_FIELDS = ("per_request", "per_image", "per_second")
PRICE_FIELDS = TOKEN_PRICE_FIELDS + UNIT_PRICE_FIELDS

_ONE = (1, 1)
_PER_1M = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's prices in units of the operator currency.

    Token prices are per 1M tokens; ``per_request``, ``per_image`` and ``per_second`` are
    per request, image and second. ``currency``, ``per`` and ``listed`` keep the price as
    it was entered (for display); billing never reads them."""

    model: str
    provider: str
    input: int
    output: int
    cached_input: int
    cache_write_5m: int
    cache_write_1h: int
    per_request: int = 0
    per_image: int = 0
    per_second: int = 0
    context_window: int | None = None
    max_output: int | None = None
    description: str = ""
    currency: str = "CNY"
    per: str = "1m"
    listed: tuple[tuple[str, str], ...] = ()  # (field, decimal string) as entered
    source: str = ""
    origin: str = "default"  # "default" (shipped) or "db" (set by the operator)


def _decimal(value: Any, field: str) -> Decimal:
    try:
        dec = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{field}: {value!r} is not a decimal number") from None
    if not dec.is_finite() or dec < 0:
        raise ValueError(f"{field}: {value!r} must be a finite number >= 0")
    return dec


def _to_units(dec: Decimal, factor: Decimal) -> int:
    with localcontext() as ctx:
        ctx.prec = 60
        return int((dec * factor).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _currency_factor(entered: str, operator: str, usd_rate: Decimal) -> Decimal:
    """Operator currency per unit of ``entered`` currency."""
    if entered == operator:
        return Decimal(1)
    if entered == "USD" and operator == "CNY":
        return usd_rate
    if entered == "CNY" and operator == "USD":
        with localcontext() as ctx:
            ctx.prec = 60
            return Decimal(1) / usd_rate
    raise ValueError(
        f"currency: cannot convert {entered} to the operator currency {operator} "
        f"(prices are in {' or '.join(CURRENCIES)}; RELAYGATE_CURRENCY must be one of them)"
    )


def check_rate(usd_rate: Decimal | str) -> Decimal:
    """``RELAYGATE_USD_RATE`` as a positive decimal, or ``ValueError``."""
    try:
        rate = Decimal(str(usd_rate).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"RELAYGATE_USD_RATE must be a number, not {usd_rate!r}") from None
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"RELAYGATE_USD_RATE must be a positive number, not {usd_rate!r}")
    return rate


def compile_price(
    row: Mapping[str, Any], currency: str, usd_rate: Decimal, *, origin: str = "db"
) -> ModelPrice:
    """A stored (or shipped) price row as :class:`ModelPrice` in units of ``currency``.

    Token prices become units per 1M tokens, the others units per request/image/second,
    each rounded half-up to the unit. ``cached_input`` defaults to ``input``;
    ``cache_write_5m`` to ``input`` and ``cache_write_1h`` to the 5-minute price (so an
    operator who sets only the 5-minute write price is not billed the cheaper input price
    for 1-hour writes). ``ValueError`` names the field of a row that cannot be compiled."""
    model = str(row["model"])
    entered = str(row.get("currency") or "CNY").upper()
    per = str(row.get("per") or "1m").lower()
    if per not in PER:
        raise ValueError(f"{model}: per must be one of {', '.join(PER)}, not {per!r}")
    factor = _currency_factor(entered, currency, usd_rate) * UNITS
    token_factor = factor * (1000 if per == "1k" else 1)
    listed: list[tuple[str, str]] = []
    units: dict[str, int | None] = {}
    for name in PRICE_FIELDS:
        value = row.get(name)
        if value is None or value == "":
            units[name] = None
            continue
        dec = _decimal(value, f"{model}: {name}")
        listed.append((name, format(dec, "f")))
        units[name] = _to_units(dec, token_factor if name in TOKEN_PRICE_FIELDS else factor)
    if units["input"] is None or units["output"] is None:
        raise ValueError(f"{model}: input and output prices are required")
    inp, out = units["input"], units["output"]
    assert inp is not None and out is not None
    write_5m = units["cache_write_5m"]
    write_5m = inp if write_5m is None else write_5m
    write_1h = units["cache_write_1h"]
    cached = units["cached_input"]
    return ModelPrice(
        model=model,
        provider=str(row.get("provider") or ""),
        input=inp,
        output=out,
        cached_input=inp if cached is None else cached,
        cache_write_5m=write_5m,
        cache_write_1h=write_5m if write_1h is None else write_1h,
        per_request=units["per_request"] or 0,
        per_image=units["per_image"] or 0,
        per_second=units["per_second"] or 0,
        context_window=_opt_int(row.get("context_window")),
        max_output=_opt_int(row.get("max_output")),
        description=str(row.get("description") or ""),
        currency=entered,
        per=per,
        listed=tuple(listed),
        source=str(row.get("source") or ""),
        origin=origin,
    )


def _opt_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def token_cost(price: ModelPrice, usage: Usage, mult: tuple[int, int] = _ONE) -> int:
    """What ``usage`` costs at ``price`` times the group multiplier ``mult`` (numerator,
    denominator), in units, rounded up once (see the module docstring). Reasoning tokens
    are inside ``completion_tokens`` and billed there; negative counts count as zero."""
    prompt = usage.prompt_tokens
    cached = usage.cached_tokens
    write_5m = usage.cache_write_tokens
    write_1h = usage.cache_write_1h_tokens
    completion = usage.completion_tokens
    cached = cached if cached > 0 else 0
    write_5m = write_5m if write_5m > 0 else 0
    write_1h = write_1h if write_1h > 0 else 0
    fresh = prompt - cached - write_5m - write_1h
    numerator = (
        (fresh if fresh > 0 else 0) * price.input
        + cached * price.cached_input
        + write_5m * price.cache_write_5m
        + write_1h * price.cache_write_1h
        + (completion if completion > 0 else 0) * price.output
    )
    num, den = mult
    cost = -(-numerator * num // (_PER_1M * den))
    if price.per_request:
        cost += -(-price.per_request * num // den)
    return cost


def media_cost(
    price: ModelPrice, images: int = 0, seconds: int = 0, mult: tuple[int, int] = _ONE
) -> int:
    """Units for ``images`` images and ``seconds`` seconds of media (image, audio and
    video endpoints), times the group multiplier, rounded up once."""
    units = max(images, 0) * price.per_image + max(seconds, 0) * price.per_second
    num, den = mult
    return -(-units * num // den)


def parse_multiplier(value: Any) -> tuple[int, int]:
    """A group multiplier (decimal string) as an exact fraction ``(num, den)``;
    ``ValueError`` unless 0 < m <= 100."""
    dec = _decimal(value, "multiplier")
    if dec <= 0 or dec > 100:
        raise ValueError(f"multiplier: {value!r} must be > 0 and <= 100")
    frac = Fraction(dec)
    return frac.numerator, frac.denominator


def format_price(units_per_1m: int, per: str = "1k") -> str:
    """Units per 1M tokens as an exact decimal string of currency per ``per`` tokens:
    500000 → ``"0.0005"`` per 1k, ``"0.5"`` per 1m."""
    scale = 9 if per == "1k" else 6
    dec = Decimal(units_per_1m).scaleb(-scale)
    return format(dec.normalize(), "f") if units_per_1m else "0"


class PriceTable:
    """Prices and group multipliers of one configuration revision, for the hot path."""

    __slots__ = ("_groups", "_prices", "currency", "errors", "revision", "usd_rate")

    def __init__(
        self,
        prices: Mapping[str, ModelPrice],
        groups: Mapping[str, tuple[int, int]],
        *,
        currency: str = "CNY",
        usd_rate: Decimal = Decimal("7.2"),
        revision: int = -1,
        errors: Iterable[str] = (),
    ) -> None:
        self._prices = dict(prices)
        self._groups = dict(groups)
        self.currency = currency
        self.usd_rate = usd_rate
        #: the ``config`` revision this table was built at (-1: not from the database)
        self.revision = revision
        #: stored rows that could not be compiled (and were skipped), for the operator
        self.errors = tuple(errors)

    # ---- building ------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        rows: Iterable[Mapping[str, Any]] = (),
        group_rows: Iterable[Mapping[str, Any]] = (),
        *,
        currency: str = "CNY",
        usd_rate: Decimal | str = "7.2",
        revision: int = -1,
        defaults: Iterable[Mapping[str, Any]] = DEFAULT_PRICES,
        default_groups: Iterable[Mapping[str, Any]] = DEFAULT_GROUPS,
    ) -> PriceTable:
        """The defaults overlaid by ``rows`` (a row replaces its model's default).

        A row that cannot be compiled (edited by hand in the database) is skipped with a
        warning, keeping the default if there is one; a bad ``currency`` or ``usd_rate``
        setting raises ``ValueError`` (the worker must not start billing nonsense)."""
        currency = currency.strip().upper()
        if currency not in CURRENCIES:
            raise ValueError(f"RELAYGATE_CURRENCY must be CNY or USD, not {currency!r}")
        rate = check_rate(usd_rate)
        prices: dict[str, ModelPrice] = {}
        errors: list[str] = []
        for origin, source in (("default", defaults), ("db", rows)):
            for row in source:
                try:
                    price = compile_price(row, currency, rate, origin=origin)
                except (ValueError, KeyError) as exc:
                    errors.append(str(exc))
                    log.warning("price row skipped", extra={"error": str(exc)})
                    continue
                prices[price.model] = price
        groups: dict[str, tuple[int, int]] = {}
        for group_source in (default_groups, group_rows):
            for row in group_source:
                try:
                    groups[str(row["name"])] = parse_multiplier(row.get("multiplier", "1"))
                except (ValueError, KeyError) as exc:
                    errors.append(f"group {row.get('name')!r}: {exc}")
                    log.warning("price group skipped", extra={"error": str(exc)})
        return cls(
            prices, groups, currency=currency, usd_rate=rate, revision=revision, errors=errors
        )

    @classmethod
    async def load(
        cls,
        store: PriceStore,
        *,
        currency: str = "CNY",
        usd_rate: Decimal | str = "7.2",
        revision: int = -1,
    ) -> PriceTable:
        """Built from the database rows (``repo.prices``) over the defaults."""
        rows = await store.list()
        groups = await store.list_groups()
        return cls.build(rows, groups, currency=currency, usd_rate=usd_rate, revision=revision)

    def update_from(self, other: PriceTable) -> None:
        """Take ``other``'s prices in place, so every holder of this table (the billing
        stage, the public catalogue) sees a reload at once."""
        self._prices, self._groups = other._prices, other._groups
        self.currency, self.usd_rate = other.currency, other.usd_rate
        self.revision, self.errors = other.revision, other.errors

    # ---- hot path ------------------------------------------------------------------
    def get(self, model: str) -> ModelPrice | None:
        return self._prices.get(model)

    def multiplier(self, group: str) -> tuple[int, int]:
        """The group's multiplier as ``(numerator, denominator)``; 1 for a group without one."""
        return self._groups.get(group, _ONE)

    def __contains__(self, model: object) -> bool:
        return model in self._prices

    def __len__(self) -> int:
        return len(self._prices)

    def models(self) -> list[str]:
        return sorted(self._prices)

    # ---- display ---------------------------------------------------------------------
    def catalogue(
        self, served: Callable[[str], bool] | None = None, per: str = "1k"
    ) -> list[dict[str, Any]]:
        """The public catalogue rows (seed 000's 模型说明 table), by provider and model: prices
        in the operator currency per ``per`` tokens as exact decimal strings. ``served``
        keeps only the models it accepts (those an enabled channel serves)."""
        if per not in PER:
            raise ValueError(f"per must be one of {', '.join(PER)}")
        out: list[dict[str, Any]] = []
        for p in sorted(self._prices.values(), key=lambda p: (p.provider, p.model.lower())):
            if served is not None and not served(p.model):
                continue
            out.append(
                {
                    "model": p.model,
                    "provider": p.provider,
                    "input_price": format_price(p.input, per),
                    "output_price": format_price(p.output, per),
                    "cached_input_price": format_price(p.cached_input, per),
                    "per": per,
                    "context_window": p.context_window,
                    "max_output": p.max_output,
                    "description": p.description,
                }
            )
        return out
