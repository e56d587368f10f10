"""The price catalogue: per-model prices compiled to integer units, and what a request costs.

Prices are stored as decimal strings (``tables.prices``), per ``1k`` or ``1m`` tokens, in
``CNY`` or ``USD``. :func:`compile_price` (``billing/price_model.py``, re-exported here with
:class:`ModelPrice`) converts each one once, when the table is loaded,
to **units of the operator currency per one million tokens** (``billing/money.py``: one
unit is 10^-6 of the currency). A price in the other currency is converted at
``RELAYGATE_USD_RATE`` (CNY per USD; a CNY price under a USD operator is divided by it).
Per-request, per-image and per-second prices become units per request, image and second;
a per-character price (speech input) units per **1M characters**, and a training price
(fine-tuning) units per 1M tokens like the other token prices.
The result is rounded half-up to the unit, so the resolution of a token price is
10^-6 currency per 1M tokens (10^-9 per 1K tokens): 0.0005 yuan per 1K tokens is exactly
500,000 units per 1M tokens, and one token of it costs 0.5 unit before the final rounding.

:func:`token_cost` is the hot path: a handful of integer operations and one rounding up
(ceil) at the end, so a price of a fraction of a fen per 1K tokens never rounds a request
down to nothing::

    fresh = prompt - cached - cache_write_5m - cache_write_1h        (never below 0)
    audio_in = min(audio_prompt, fresh); audio_out = min(audio_completion, completion)
    numerator = (fresh - audio_in) * input + audio_in * audio_input
              + cached * cached_input
              + cache_write_5m * cache_write_5m_price + cache_write_1h * cache_write_1h_price
              + (completion - audio_out) * output + audio_out * audio_output
    cost = ceil(numerator * m / (1_000_000 * d)) + ceil(per_request * m / d)

where ``m/d`` is the user's group multiplier. What images, seconds, characters and training
tokens cost is :func:`relaygate.billing.media.media_cost` (same arithmetic; it leaves
``per_request`` to this function). Token counts follow OpenAI's convention
(:class:`~relaygate.providers.base.Usage`): ``prompt_tokens`` includes cache reads and
writes, which is why they are subtracted from it, and ``completion_tokens`` includes
reasoning tokens, which are therefore billed at the output price once and never added
again. Audio tokens (realtime: ``input_token_details.audio_tokens`` and
``output_token_details.audio_tokens``) are likewise inside the prompt and completion counts:
the fresh (uncached) audio input tokens are billed at ``audio_input`` instead of ``input``,
the audio output tokens at ``audio_output`` instead of ``output``; both prices default to
the text prices. Cached audio tokens are cache reads like any other (``cached_input``).

:class:`PriceTable` is the in-memory view the hot path reads: the shipped defaults
(``billing/default_prices.py``) overlaid by the rows in the database (a stored row for a
model replaces its default), and the group multipliers (a missing group is 1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from relaygate.billing.default_prices import DEFAULT_GROUPS, DEFAULT_PRICES
from relaygate.billing.price_model import (
    CURRENCIES,
    PER,
    PRICE_FIELDS,
    TOKEN_PRICE_FIELDS,
    UNIT_PRICE_FIELDS,
    ModelPrice,
    check_rate,
    compile_price,
    price_decimal,
)
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
    "format_character_price",
    "format_price",
    "media_prices",
    "parse_multiplier",
    "token_cost",
]

log = logging.getLogger("relaygate.billing")

_ONE = (1, 1)
_PER_1M = 1_000_000


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
    fresh = fresh if fresh > 0 else 0
    completion = completion if completion > 0 else 0
    numerator = (
        fresh * price.input
        + cached * price.cached_input
        + write_5m * price.cache_write_5m
        + write_1h * price.cache_write_1h
        + completion * price.output
    )
    audio_in = min(usage.audio_prompt_tokens, fresh)
    if audio_in > 0:
        rate = price.audio_input
        numerator += audio_in * ((price.input if rate is None else rate) - price.input)
    audio_out = min(usage.audio_completion_tokens, completion)
    if audio_out > 0:
        rate = price.audio_output
        numerator += audio_out * ((price.output if rate is None else rate) - price.output)
    num, den = mult
    cost = -(-numerator * num // (_PER_1M * den))
    if price.per_request:
        cost += -(-price.per_request * num // den)
    return cost


def parse_multiplier(value: Any) -> tuple[int, int]:
    """A group multiplier (decimal string) as an exact fraction ``(num, den)``;
    ``ValueError`` unless 0 < m <= 100."""
    dec = price_decimal(value, "multiplier")
    if dec <= 0 or dec > 100:
        raise ValueError(f"multiplier: {value!r} must be > 0 and <= 100")
    frac = Fraction(dec)
    return frac.numerator, frac.denominator


def _format(units: int, scale: int) -> str:
    return format(Decimal(units).scaleb(-scale).normalize(), "f") if units else "0"


def format_price(units_per_1m: int, per: str = "1k") -> str:
    """Units per 1M tokens as an exact decimal string of currency per ``per`` tokens:
    500000 → ``"0.0005"`` per 1k, ``"0.5"`` per 1m. With ``per="1m"`` it also shows a
    per-request/-image/-second price (units per item) as currency per item."""
    return _format(units_per_1m, 9 if per == "1k" else 6)


def format_character_price(units_per_1m_chars: int) -> str:
    """A compiled ``per_character`` price (units per 1M characters) as an exact decimal
    string of currency per character: 108000000 → ``"0.000108"``."""
    return _format(units_per_1m_chars, 12)


def media_prices(p: ModelPrice, per: str = "1k") -> dict[str, Any]:
    """The media prices ``p`` has (only those set): ``training_price`` per ``per`` tokens,
    ``audio_input_price`` and ``audio_output_price`` per ``per`` tokens (when they differ
    from the text prices),
    ``request_price``, ``image_price``, ``image_prices`` (per image), ``second_price`` and
    ``character_price`` in currency per request, image, second and character."""
    out: dict[str, Any] = {}
    if p.training:
        out["training_price"] = format_price(p.training, per)
    for name, units in (
        ("request_price", p.per_request),
        ("image_price", p.per_image),
        ("second_price", p.per_second),
    ):
        if units:
            out[name] = format_price(units, "1m")
    if p.image_prices:
        out["image_prices"] = {key: format_price(u, "1m") for key, u in p.image_prices}
    if p.per_character:
        out["character_price"] = format_character_price(p.per_character)
    audio: tuple[tuple[str, int | None, int], ...] = (
        ("audio_input_price", p.audio_input, p.input),
        ("audio_output_price", p.audio_output, p.output),
    )
    for name, rate, text in audio:
        if rate is not None and rate != text:
            out[name] = format_price(rate, per)
    return out


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
                    **media_prices(p, per),
                }
            )
        return out
