"""Money as integers: every balance, price and charge is a whole number of *units*.

One unit is one millionth of the operator's currency (``RELAYGATE_CURRENCY``, CNY by
default): 1 yuan = 1,000,000 units, 1 fen = 10,000 units. Prices are kept per million
tokens in units, so a price of 0.0005 yuan per 1K tokens (500,000 units per 1M tokens)
is exact, and a request's token cost is rounded up to the unit only once, at the end
(``billing/prices.py``). No float ever holds money. See docs/billing.md.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from relaygate.errors import InvalidRequest

__all__ = ["MAX_AMOUNT", "UNITS", "format_amount", "parse_amount", "to_decimal"]

UNITS = 1_000_000  # units per currency unit (yuan or dollar)
DECIMALS = 6  # an amount may have at most this many decimals
MAX_AMOUNT = 10**12 * UNITS  # largest amount accepted anywhere (one trillion)


def to_decimal(value: Any, field: str) -> Decimal:
    """A JSON/CLI value as an exact decimal, or a clear error naming ``field``. Floats
    are taken by their shortest repr (``0.1`` is ``Decimal("0.1")``, not its binary)."""
    if isinstance(value, bool) or value is None:
        raise InvalidRequest(f"`{field}` must be a number, e.g. 12.5.", param=field)
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > 40:
        raise InvalidRequest(f"`{field}` must be a number, e.g. 12.5.", param=field)
    try:
        dec = Decimal(value.strip())
    except InvalidOperation:
        raise InvalidRequest(f"`{field}` must be a number, e.g. 12.5.", param=field) from None
    if not dec.is_finite():
        raise InvalidRequest(f"`{field}` must be a finite number.", param=field)
    return dec


def parse_amount(value: Any, field: str = "amount", *, allow_negative: bool = False) -> int:
    """An amount of currency (``"12.5"``, ``12.5``, ``12``) as units. Refused with a
    clear error: non-numbers, NaN/infinity, more than six decimals (it would not be
    exact), magnitudes over 10^12, and negative values unless ``allow_negative``."""
    dec = to_decimal(value, field)
    exponent = dec.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and exponent < -DECIMALS
        and dec != dec.quantize(Decimal(1).scaleb(-DECIMALS))
    ):
        raise InvalidRequest(
            f"`{field}` has more than {DECIMALS} decimals; amounts are exact to 0.000001.",
            param=field,
        )
    units = int(dec * UNITS)
    if units < 0 and not allow_negative:
        raise InvalidRequest(f"`{field}` must not be negative.", param=field)
    if abs(units) > MAX_AMOUNT:
        raise InvalidRequest(f"`{field}` is too large (at most 10^12).", param=field)
    return units


def format_amount(units: int, decimals: int = 4) -> str:
    """Units as a decimal string with ``decimals`` places, truncated toward zero
    (a balance is never shown larger than it is): 111865800 → ``"111.8658"``."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), UNITS)
    if decimals <= 0:
        return f"{sign}{whole}"
    frac_text = f"{frac:06d}"[:decimals].ljust(decimals, "0")
    return f"{sign}{whole}.{frac_text}"
