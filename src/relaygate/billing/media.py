"""What a non-token request costs: images, audio and video seconds, speech characters and
fine-tuning training tokens (docs/billing.md, "Media, audio, video and training prices").

:class:`Measure` is what a request consumed (at settlement) or may consume (the worst case,
at reservation). :func:`media_cost` prices it at a ``ModelPrice`` (``billing/price_model.py``)
with the same integer arithmetic as ``token_cost``: every part is brought to a common
denominator, the group multiplier ``m/d`` is applied exactly, and the sum is rounded up
once, at the end::

    numerator = images × image_unit_price × 10^9      (units per image)
              + milliseconds × per_second × 10^6       (units per second)
              + characters × per_character × 10^3      (units per 1M characters)
              + training_tokens × training × 10^3      (units per 1M tokens)
    cost = ceil(numerator × m / (10^9 × d))

``per_request`` is not part of it: ``token_cost`` adds it (once per request), so a caller
adds ``token_cost(price, usage)`` (zero usage for a purely media request) and
``media_cost(price, measure)``, passing each quantity once: a speech request whose upstream
reports token usage is billed by its tokens and leaves ``characters`` at 0.

Per-image prices can depend on the image's size and quality (``image_prices``, keys
``"SIZE/QUALITY"``, ``"SIZE"`` or ``"QUALITY"``); :func:`image_unit_price` looks them up in
that order and falls back to ``per_image``. This module also holds the key rules shared by
the price compiler and the admin validation (:func:`image_price_key`).
"""

from __future__ import annotations

from dataclasses import dataclass

from relaygate.billing.price_model import (
    IMAGE_PRICES_MAX,
    QUALITIES,
    ModelPrice,
    image_price_key,
    image_quality,
    image_size,
)

__all__ = [
    "IMAGE_PRICES_MAX",
    "QUALITIES",
    "Measure",
    "image_price_key",
    "image_unit_price",
    "media_cost",
]

_ONE = (1, 1)
_IMAGE_SCALE = 1_000_000_000  # the common denominator (units per image x 10^9)
_MS_SCALE = 1_000_000  # per_second (units per second) x ms / 1000, over 10^9
_PER_1M_SCALE = 1_000  # units per 1M (characters or tokens) over 10^9


@dataclass(slots=True, frozen=True)
class Measure:
    """What a non-token request consumed (or, before the call, may consume)."""

    images: int = 0
    size: str = ""  # e.g. "1024x1024" ("" = unknown/default)
    quality: str = ""  # "standard" | "hd" | "low" | "medium" | "high" | "auto" | ""
    milliseconds: int = 0  # audio (in or out) or video duration
    characters: int = 0  # speech input characters
    training_tokens: int = 0


def image_unit_price(price: ModelPrice, size: str, quality: str) -> int:
    """Units per image of ``size`` and ``quality``: the ``"size/quality"`` entry of
    ``image_prices``, else the ``"size"`` entry, else the ``"quality"`` entry, else
    ``per_image``. A size that is not ``WIDTHxHEIGHT`` (``auto``, ``""``) or a quality not
    in :data:`QUALITIES` counts as unknown and skips the entries that need it."""
    table = price.image_prices
    if table:
        s, q = image_size(size), image_quality(quality)
        for key in (f"{s}/{q}" if s and q else "", s, q):
            if key:
                for name, units in table:
                    if name == key:
                        return units
    return price.per_image


def media_cost(price: ModelPrice, m: Measure, mult: tuple[int, int] = _ONE) -> int:
    """Units for what ``m`` measures at ``price``, times the group multiplier ``mult``
    (numerator, denominator), rounded up once (see the module docstring). Negative
    quantities count as zero; ``per_request`` is not included (``token_cost`` adds it)."""
    numerator = 0
    if m.images > 0:
        numerator += m.images * image_unit_price(price, m.size, m.quality) * _IMAGE_SCALE
    if m.milliseconds > 0:
        numerator += m.milliseconds * price.per_second * _MS_SCALE
    if m.characters > 0:
        numerator += m.characters * price.per_character * _PER_1M_SCALE
    if m.training_tokens > 0:
        numerator += m.training_tokens * price.training * _PER_1M_SCALE
    num, den = mult
    return -(-numerator * num // (_IMAGE_SCALE * den))
