"""Audio token prices (``audio_input``, ``audio_output``): compiled like the other token
prices, defaulting to the text prices, validated by the admin schema, and the cost of a
realtime response with audio tokens to the unit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from relaygate.billing.prices import (
    ModelPrice,
    PriceTable,
    compile_price,
    media_prices,
    token_cost,
)
from relaygate.providers.base import Usage
from relaygate.services.fields import ValidationError
from relaygate.services.prices import PRICE

RATE = Decimal("7.2")
# the API reference's response.done usage: 132 in (64 cached, 13 audio), 121 out (91 audio)
USAGE = Usage(
    prompt_tokens=132,
    completion_tokens=121,
    total_tokens=253,
    cached_tokens=64,
    audio_prompt_tokens=13,
    audio_completion_tokens=91,
)


def price(**row: Any) -> ModelPrice:
    base: dict[str, Any] = {"model": "m", "currency": "CNY", "per": "1m"}
    return compile_price({**base, **row}, "CNY", RATE)


def test_audio_prices_compile_per_1k_and_1m_and_default_to_the_text_prices() -> None:
    p = price(per="1k", input="0.004", output="0.016", audio_input="0.032", audio_output="0.064")
    assert (p.audio_input, p.audio_output) == (32_000_000, 64_000_000)
    q = price(input="4", output="16")
    assert (q.audio_input, q.audio_output) == (q.input, q.output) == (4_000_000, 16_000_000)
    usd = compile_price(
        {"model": "m", "currency": "USD", "input": "4", "output": "16", "audio_input": "32"},
        "CNY",
        RATE,
    )
    assert usd.audio_input == 230_400_000 and usd.audio_output == usd.output == 115_200_000


def test_cost_with_audio_tokens_to_the_unit() -> None:
    p = price(input="4", output="16", cached_input="0.4", audio_input="32", audio_output="64")
    # fresh input 132-64 = 68: 55 text at 4, 13 audio at 32; 64 cached at 0.4;
    # output 121: 30 text at 16, 91 audio at 64 (units per 1M tokens, one ceil at the end)
    # 55*4e6 + 13*32e6 + 64*0.4e6 + 30*16e6 + 91*64e6 = 6_965_600_000 -> 6965.6 -> 6966
    assert token_cost(p, USAGE) == 6966
    # group multiplier 3/2: 6_965_600_000 * 3 / (1e6 * 2) = 10448.4 -> 10449
    assert token_cost(p, USAGE, (3, 2)) == 10449


def test_without_audio_prices_audio_tokens_cost_the_text_prices() -> None:
    p = price(input="4", output="16", cached_input="0.4")
    # 68*4e6 + 64*0.4e6 + 121*16e6 = 2_233_600_000 -> 2233.6 -> 2234 (as before audio prices)
    assert token_cost(p, USAGE) == 2234
    no_audio = Usage(prompt_tokens=132, completion_tokens=121, cached_tokens=64)
    assert token_cost(p, no_audio) == 2234
    # a price built by hand (audio None) bills audio as text too
    hand = ModelPrice("m", "", 4_000_000, 16_000_000, 400_000, 4_000_000, 4_000_000)
    assert token_cost(hand, USAGE) == 2234


def test_audio_counts_beyond_the_totals_are_capped_and_never_negative() -> None:
    p = price(input="1", output="1", audio_input="10", audio_output="10")
    over = Usage(prompt_tokens=10, completion_tokens=5, cached_tokens=4,
                 audio_prompt_tokens=50, audio_completion_tokens=50)  # fmt: skip
    # audio input at most the 6 fresh tokens, audio output at most the 5 output tokens
    assert token_cost(p, over) == -(-(6 * 10_000_000 + 4 * 1_000_000 + 5 * 10_000_000) // 10**6)
    negative = Usage(prompt_tokens=10, completion_tokens=5,
                     audio_prompt_tokens=-7, audio_completion_tokens=-7)  # fmt: skip
    assert token_cost(p, negative) == 15


def test_cheaper_audio_price_lowers_the_cost_exactly() -> None:
    p = price(input="10", output="10", audio_input="1", audio_output="2")
    usage = Usage(prompt_tokens=3, completion_tokens=3,
                  audio_prompt_tokens=3, audio_completion_tokens=1)  # fmt: skip
    # 3*1e6 + 2*10e6 + 1*2e6 = 25_000_000 -> 25 units
    assert token_cost(p, usage) == 25


def test_admin_schema_accepts_and_refuses_audio_prices() -> None:
    row = PRICE.create({"model": "m", "input": "4", "output": "16", "audio_input": "32",
                        "audio_output": "64"})  # fmt: skip
    assert (row["audio_input"], row["audio_output"]) == ("32", "64")
    assert PRICE.create({"model": "m", "input": "4", "output": "16"})["audio_input"] is None
    for bad in ("-1", "abc", "NaN", [], {"a": 1}):
        with pytest.raises(ValidationError) as err:
            PRICE.create({"model": "m", "input": "4", "output": "16", "audio_output": bad})
        assert err.value.field == "audio_output"


def test_catalogue_shows_audio_prices_only_when_they_differ() -> None:
    table = PriceTable.build(
        [{"model": "rt", "input": "4", "output": "16", "audio_input": "32", "audio_output": "64"},
         {"model": "plain", "input": "4", "output": "16"}],
        defaults=(),
    )  # fmt: skip
    rt, plain = table.get("rt"), table.get("plain")
    assert rt is not None and plain is not None
    assert media_prices(rt, "1m") == {"audio_input_price": "32", "audio_output_price": "64"}
    assert media_prices(plain, "1m") == {}


def test_the_shipped_realtime_defaults_have_audio_prices() -> None:
    table = PriceTable.build(currency="USD")
    p = table.get("gpt-realtime")
    assert p is not None
    assert (p.input, p.output, p.audio_input, p.audio_output) == (
        4_000_000, 16_000_000, 32_000_000, 64_000_000
    )  # fmt: skip


def test_a_model_priced_only_for_audio_is_not_free() -> None:
    from relaygate.billing.stage import _charges_anything

    assert _charges_anything(price(input="0", output="0", audio_output="64"))
    assert not _charges_anything(price(input="0", output="0"))
