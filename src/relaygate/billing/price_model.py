"""One model's price: :class:`ModelPrice` (integer units) and :func:`compile_price`, which
turns a stored or shipped price row (decimal strings as entered) into it.

Token prices (``input``, ``output``, ``cached_input``, ``cache_write_5m``,
``cache_write_1h``, ``training``, and ``audio_input`` / ``audio_output``: realtime audio
tokens) are entered per ``1k`` or ``1m`` tokens and compiled to units per 1M tokens;
``per_request``, ``per_image`` and ``per_second`` to units per request, image and second;
``per_character`` (the price of one character) to units per 1M characters;
``image_prices`` to units per image under normalised keys (``billing/media.py``). A price
in the other currency is converted at ``RELAYGATE_USD_RATE``; every value is rounded
half-up to the unit once, here, never at charge time. ``billing/prices.py`` re-exports
these names and holds the cost arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

from relaygate.billing.money import UNITS

__all__ = [
    "CURRENCIES",
    "IMAGE_PRICES_MAX",
    "PER",
    "PRICE_FIELDS",
    "QUALITIES",
    "TOKEN_PRICE_FIELDS",
    "UNIT_PRICE_FIELDS",
    "ModelPrice",
    "check_rate",
    "compile_price",
    "image_price_key",
    "image_quality",
    "image_size",
    "price_decimal",
]

CURRENCIES = ("CNY", "USD")
PER = ("1k", "1m")
#: per-token prices (per ``per`` tokens; ``training``: fine-tuning training tokens) and the
#: per-request/-image/-second/-character prices (``image_prices`` is compiled apart)
TOKEN_PRICE_FIELDS = (
    "input",
    "output",
    "cached_input",
    "cache_write_5m",
    "cache_write_1h",
    "training",
    "audio_input",
    "audio_output",
)
UNIT_PRICE_FIELDS = ("per_request", "per_image", "per_second", "per_character")
PRICE_FIELDS = TOKEN_PRICE_FIELDS + UNIT_PRICE_FIELDS

_PER_1M = 1_000_000


#: quality words an image price key may name (OpenAI's DALL·E and GPT Image values)
QUALITIES = ("standard", "hd", "low", "medium", "high", "auto")
#: the most entries one model's ``image_prices`` may hold
IMAGE_PRICES_MAX = 50

_SIZE = re.compile(r"[1-9][0-9]{1,4}x[1-9][0-9]{1,4}")


def image_size(text: str) -> str:
    """A ``WIDTHxHEIGHT`` size in lower case, or ``""`` for anything else (``auto``)."""
    size = text.strip().lower()
    return size if _SIZE.fullmatch(size) else ""


def image_quality(text: str) -> str:
    quality = text.strip().lower()
    return quality if quality in QUALITIES else ""


def image_price_key(key: str) -> str:
    """An ``image_prices`` key normalised (lower case, no spaces): ``"SIZE/QUALITY"``,
    ``"SIZE"`` or ``"QUALITY"``, with a size like ``1024x1792`` and a quality among
    :data:`QUALITIES`. ``ValueError`` (saying what is expected) for anything else."""
    text = key.strip().lower() if isinstance(key, str) else ""
    size, slash, quality = text.partition("/")
    if slash:
        ok = image_size(size) != "" and image_quality(quality) != ""
    else:
        ok = image_size(text) != "" or image_quality(text) != ""
    if not ok:
        raise ValueError(
            f"{key!r} is not an image price key: use a size like 1024x1792, a quality "
            f"({', '.join(QUALITIES)}), or both as SIZE/QUALITY (e.g. 1024x1792/hd)"
        )
    return text


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's prices in units of the operator currency.

    Token prices (``training`` too) are per 1M tokens; ``per_request``, ``per_image`` and
    ``per_second`` are per request, image and second; ``per_character`` is per 1M
    characters; ``image_prices`` maps normalised keys (``"1024x1792/hd"``, ``"1024x1024"``,
    ``"high"``) to units per image. ``currency``, ``per`` and ``listed`` keep the price as
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
    per_character: int = 0  # units per 1M characters
    training: int = 0  # units per 1M training tokens
    #: units per 1M audio input/output tokens; None (a price built by hand): ``input``/``output``
    audio_input: int | None = None
    audio_output: int | None = None
    image_prices: tuple[tuple[str, int], ...] = ()  # (key, units per image)
    context_window: int | None = None
    max_output: int | None = None
    description: str = ""
    currency: str = "CNY"
    per: str = "1m"
    listed: tuple[tuple[str, str], ...] = ()  # (field, decimal string) as entered
    source: str = ""
    origin: str = "default"  # "default" (shipped) or "db" (set by the operator)


def price_decimal(value: Any, field: str) -> Decimal:
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

    Token prices become units per 1M tokens, the others units per request/image/second
    (per 1M characters for ``per_character``), each rounded half-up to the unit.
    ``cached_input`` defaults to ``input``; ``cache_write_5m`` to ``input`` and
    ``cache_write_1h`` to the 5-minute price (so an operator who sets only the 5-minute
    write price is not billed the cheaper input price for 1-hour writes); ``audio_input``
    and ``audio_output`` default to ``input`` and ``output`` (audio tokens billed as
    text). ``ValueError`` names the field of a row that cannot be compiled."""
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
        dec = price_decimal(value, f"{model}: {name}")
        listed.append((name, format(dec, "f")))
        if name in TOKEN_PRICE_FIELDS:
            units[name] = _to_units(dec, token_factor)
        else:
            units[name] = _to_units(dec, factor * _PER_1M if name == "per_character" else factor)
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
        per_character=units["per_character"] or 0,
        training=units["training"] or 0,
        audio_input=inp if units["audio_input"] is None else units["audio_input"],
        audio_output=out if units["audio_output"] is None else units["audio_output"],
        image_prices=_image_prices(model, row.get("image_prices"), factor),
        context_window=_opt_int(row.get("context_window")),
        max_output=_opt_int(row.get("max_output")),
        description=str(row.get("description") or ""),
        currency=entered,
        per=per,
        listed=tuple(listed),
        source=str(row.get("source") or ""),
        origin=origin,
    )


def _image_prices(model: str, raw: Any, factor: Decimal) -> tuple[tuple[str, int], ...]:
    """``image_prices`` (an object of key → decimal per image) as (key, units) pairs."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ValueError(f"{model}: image_prices must be an object of key -> price per image")
    if len(raw) > IMAGE_PRICES_MAX:
        raise ValueError(f"{model}: image_prices has more than {IMAGE_PRICES_MAX} entries")
    out: dict[str, int] = {}
    for key, value in raw.items():
        try:
            name = image_price_key(key)
        except ValueError as exc:
            raise ValueError(f"{model}: image_prices: {exc}") from None
        if name in out:
            raise ValueError(f"{model}: image_prices names {name!r} twice")
        out[name] = _to_units(price_decimal(value, f"{model}: image_prices[{key!r}]"), factor)
    return tuple(out.items())


def _opt_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
