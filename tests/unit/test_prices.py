"""Price catalogue: compiling stored prices to units, conversions and rounding, the cost of
a request to the unit (cached input, cache writes, reasoning, multipliers), the table's
overlay of stored rows on the defaults and the public catalogue rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from relaygate.billing.default_prices import (
    DEFAULT_MODELS,
    DEFAULT_PRICES,
    DEFAULTS_AS_OF,
)
from relaygate.billing.prices import (
    ModelPrice,
    PriceTable,
    compile_price,
    format_price,
    parse_multiplier,
    token_cost,
)
from relaygate.providers.base import Usage

RATE = Decimal("7.2")


def price(**row: Any) -> ModelPrice:
    base: dict[str, Any] = {"model": "m", "currency": "CNY", "per": "1m", "output": "0"}
    return compile_price({**base, **row}, "CNY", RATE)


# ---- compiling ------------------------------------------------------------------------
def test_cny_per_1k_is_units_per_1m_exactly() -> None:
    p = price(per="1k", input="0.0005", output="0.002")
    assert (p.input, p.output) == (500_000, 2_000_000)


def test_usd_converts_at_the_operator_rate() -> None:
    p = compile_price(
        {"model": "gpt-4o-mini", "currency": "USD", "input": "0.15", "output": "0.6"},
        "CNY",
        RATE,
    )
    assert (p.input, p.output) == (1_080_000, 4_320_000)  # 1.08 and 4.32 yuan per 1M
    assert p.currency == "USD" and dict(p.listed) == {"input": "0.15", "output": "0.6"}


def test_cny_under_a_usd_operator_divides_by_the_rate_rounding_half_up() -> None:
    exact = compile_price({"model": "m", "input": "7.2", "output": "1"}, "USD", RATE)
    assert exact.input == 1_000_000  # 7.2 yuan = 1 dollar per 1M
    assert exact.output == 138_889  # 1 / 7.2 = 0.1388888… dollars: half-up to the unit


@pytest.mark.parametrize(
    ("per", "value", "units"),
    [
        ("1m", "0.0000005", 1),  # half a unit rounds up
        ("1m", "0.00000049", 0),  # below half a unit rounds down
        ("1k", "0.0000000005", 1),  # 0.5 unit per 1M
        ("1k", "0.0000000004", 0),
        ("1m", "0", 0),
    ],
)
def test_rounding_is_half_up_to_the_unit_per_1m_tokens(per: str, value: str, units: int) -> None:
    assert price(per=per, input=value).input == units


def test_unset_cache_prices_fall_back_to_input_and_the_5m_write_price() -> None:
    p = price(input="2")
    assert p.cached_input == p.cache_write_5m == p.cache_write_1h == 2_000_000
    p = price(input="2", cache_write_5m="2.5")
    assert (p.cache_write_5m, p.cache_write_1h) == (2_500_000, 2_500_000)
    p = price(input="2", cached_input="0.2", cache_write_5m="2.5", cache_write_1h="4")
    assert (p.cached_input, p.cache_write_5m, p.cache_write_1h) == (
        200_000,
        2_500_000,
        4_000_000,
    )


def test_unit_prices_are_per_request_image_and_second_not_per_tokens() -> None:
    p = compile_price(
        {
            "model": "img",
            "currency": "USD",
            "per": "1k",
            "input": "0",
            "output": "0",
            "per_request": "0.01",
            "per_image": "0.04",
            "per_second": "0.006",
        },
        "CNY",
        RATE,
    )
    assert (p.per_request, p.per_image, p.per_second) == (72_000, 288_000, 43_200)


@pytest.mark.parametrize(
    "row",
    [
        {"model": "m", "input": "-1", "output": "1"},
        {"model": "m", "input": "abc", "output": "1"},
        {"model": "m", "input": "NaN", "output": "1"},
        {"model": "m", "input": "1"},  # no output price
        {"model": "m", "input": "1", "output": "1", "per": "1g"},
        {"model": "m", "input": "1", "output": "1", "currency": "EUR"},
    ],
)
def test_rows_that_cannot_be_compiled_are_refused(row: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="m"):
        compile_price(row, "CNY", RATE)


# ---- cost of a request ----------------------------------------------------------------
def test_a_fraction_of_a_fen_per_1k_tokens_never_rounds_to_zero() -> None:
    p = price(per="1k", input="0.0005", output="0.0005")
    assert token_cost(p, Usage(prompt_tokens=1)) == 1  # 0.5 unit → 1 unit
    assert token_cost(p, Usage(prompt_tokens=1, completion_tokens=1)) == 1  # 1 unit exactly
    assert token_cost(p, Usage(prompt_tokens=3)) == 2  # 1.5 → 2
    assert token_cost(p, Usage()) == 0


def test_one_rounding_at_the_end_not_one_per_part() -> None:
    p = price(input="0.5", output="0.4")  # 500000 and 400000 units per 1M
    assert token_cost(p, Usage(prompt_tokens=1, completion_tokens=1)) == 1  # 0.9 → 1, not 2


def test_cost_to_the_unit_of_a_usd_model() -> None:
    p = compile_price(
        {"model": "gpt-4o-mini", "currency": "USD", "input": "0.15", "output": "0.6"},
        "CNY",
        RATE,
    )
    usage = Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500)
    # 1000 × 0.00108/1K + 500 × 0.00432/1K = 0.00324 yuan
    assert token_cost(p, usage) == 3240


def test_cached_input_is_billed_at_the_cached_price_and_not_again_as_input() -> None:
    p = price(input="2", cached_input="0.5", output="8")
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=800)
    assert token_cost(p, usage) == (200 * 2_000_000 + 800 * 500_000) // 1_000_000 == 800


def test_anthropic_cache_writes_are_billed_at_their_5m_and_1h_prices() -> None:
    p = compile_price(
        {
            "model": "claude-sonnet-5-5",
            "currency": "USD",
            "input": "2",
            "output": "10",
            "cached_input": "0.1",
            "cache_write_5m": "2.5",
            "cache_write_1h": "4",
        },
        "CNY",
        RATE,
    )
    usage = Usage(
        prompt_tokens=10_000,  # everything, as Usage counts it
        completion_tokens=500,
        cached_tokens=2000,
        cache_write_tokens=3000,
        cache_write_1h_tokens=1000,
    )
    expected = (
        4000 * 14_400_000  # fresh input
        + 2000 * 720_000  # cache reads
        + 3000 * 18_000_000  # 5-minute writes
        + 1000 * 28_800_000  # 1-hour writes
        + 500 * 72_000_000  # output
    ) // 1_000_000
    assert token_cost(p, usage) == expected == 177_840


def test_reasoning_tokens_are_inside_completion_tokens_and_not_counted_twice() -> None:
    p = price(input="1", output="4")
    plain = Usage(prompt_tokens=100, completion_tokens=1000)
    thinking = Usage(prompt_tokens=100, completion_tokens=1000, reasoning_tokens=600)
    assert token_cost(p, thinking) == token_cost(p, plain) == 4100
    # a provider that reports reasoning apart from completion: normalised into it first
    raw = {"prompt_tokens": 100, "completion_tokens": 400, "total_tokens": 1100}
    raw["completion_tokens_details"] = {"reasoning_tokens": 600}  # type: ignore[assignment]
    assert token_cost(p, Usage.from_openai(raw)) == 4100


def test_negative_or_inconsistent_counts_never_make_a_cost_negative() -> None:
    p = price(input="1", cached_input="0.1", output="4")
    assert token_cost(p, Usage(prompt_tokens=-5, completion_tokens=-7)) == 0
    # more cached than prompt: the cached tokens are billed, fresh input is zero (not negative)
    assert token_cost(p, Usage(prompt_tokens=10, cached_tokens=20_000_000)) == 2_000_000
    assert token_cost(p, Usage(prompt_tokens=10, cached_tokens=-3)) == 10  # 10 fresh tokens


def test_group_multiplier_applies_before_the_single_rounding() -> None:
    p = price(per="1k", input="0.0005", output="0")
    assert parse_multiplier("0.8") == (4, 5)
    assert token_cost(p, Usage(prompt_tokens=1), (4, 5)) == 1  # 0.4 unit → 1
    assert token_cost(p, Usage(prompt_tokens=10_000), (4, 5)) == 4000  # 5000 × 0.8
    assert token_cost(p, Usage(prompt_tokens=10_000), (3, 2)) == 7500


def test_per_request_price_is_added_with_the_multiplier() -> None:
    p = price(input="0", per_request="0.01")
    assert token_cost(p, Usage()) == 10_000
    assert token_cost(p, Usage(), (3, 2)) == 15_000
    assert token_cost(p, Usage(), (1, 3)) == 3334  # 3333.33… rounded up


@pytest.mark.parametrize("bad", ["0", "-1", "100.5", "abc", "inf"])
def test_multipliers_out_of_range_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="multiplier"):
        parse_multiplier(bad)


# ---- the table ------------------------------------------------------------------------
def test_the_shipped_defaults_compile_and_are_dated_with_sources() -> None:
    table = PriceTable.build()
    assert table.errors == ()
    assert len(table) == len(DEFAULT_PRICES) == len(DEFAULT_MODELS)
    assert DEFAULTS_AS_OF.startswith("2026-")
    for row in DEFAULT_PRICES:
        assert row["source"].startswith("https://"), row["model"]
        assert len(row["source"]) <= 256 and row["description"], row["model"]
    for model in ("gpt-4o-mini", "claude-sonnet-5-5", "deepseek-chat", "qwen-plus"):
        assert model in table
    claude = table.get("claude-sonnet-5-5")
    assert claude is not None and claude.cache_write_1h > claude.cache_write_5m > claude.input


def test_stored_rows_replace_their_defaults_and_groups_default_to_one() -> None:
    rows = [
        {"model": "gpt-4o-mini", "currency": "CNY", "per": "1k", "input": "0.001", "output": "1"},
        {"model": "my-model", "input": "1", "output": "2"},
    ]
    table = PriceTable.build(rows, [{"name": "vip", "multiplier": "0.85"}])
    p = table.get("gpt-4o-mini")
    assert p is not None and p.input == 1_000_000 and p.origin == "db"
    assert table.get("my-model") is not None and table.get("nope") is None
    assert table.multiplier("vip") == (17, 20)
    assert table.multiplier("default") == (1, 1) and table.multiplier("unknown") == (1, 1)


def test_a_broken_stored_row_is_skipped_and_its_default_kept() -> None:
    rows = [{"model": "gpt-4o-mini", "input": "oops", "output": "1"}]
    table = PriceTable.build(rows, [{"name": "bad", "multiplier": "0"}])
    p = table.get("gpt-4o-mini")
    assert p is not None and p.origin == "default" and p.input == 1_080_000
    assert len(table.errors) == 2 and table.multiplier("bad") == (1, 1)


@pytest.mark.parametrize(
    ("currency", "rate"), [("EUR", "7.2"), ("CNY", "0"), ("CNY", "-1"), ("USD", "x")]
)
def test_bad_currency_settings_refuse_to_build(currency: str, rate: str) -> None:
    with pytest.raises(ValueError, match="RELAYGATE_"):
        PriceTable.build(currency=currency, usd_rate=rate)


def test_a_usd_operator_converts_cny_defaults() -> None:
    table = PriceTable.build(currency="USD", usd_rate="7.2")
    p = table.get("deepseek-flash")  # 2 yuan per 1M
    assert p is not None and p.input == 277_778  # 0.2777… dollars per 1M
    q = table.get("gpt-4o-mini")
    assert q is not None and q.input == 150_000


def test_catalogue_rows_in_operator_currency_per_1k_and_per_1m() -> None:
    table = PriceTable.build(defaults=(), rows=[
        {"model": "b", "provider": "x", "currency": "USD", "input": "0.15", "output": "0.6",
         "cached_input": "0.075", "context_window": 128000, "max_output": 16384,
         "description": "B"},
        {"model": "a", "provider": "x", "per": "1k", "input": "0.0005", "output": "0.002"},
    ])  # fmt: skip
    rows = table.catalogue()
    assert [r["model"] for r in rows] == ["a", "b"]
    assert rows[1] == {
        "model": "b",
        "provider": "x",
        "input_price": "0.00108",
        "output_price": "0.00432",
        "cached_input_price": "0.00054",
        "per": "1k",
        "context_window": 128000,
        "max_output": 16384,
        "description": "B",
    }
    assert rows[0]["input_price"] == "0.0005" and rows[0]["context_window"] is None
    per_m = table.catalogue(per="1m")
    assert per_m[1]["input_price"] == "1.08" and per_m[1]["per"] == "1m"
    assert [r["model"] for r in table.catalogue(lambda m: m == "b")] == ["b"]


@pytest.mark.parametrize(
    ("units", "per", "text"),
    [(500_000, "1k", "0.0005"), (500_000, "1m", "0.5"), (0, "1k", "0"),
     (10_000_000_000, "1k", "10"), (1, "1k", "0.000000001"), (72_000_000, "1m", "72")],
)  # fmt: skip
def test_format_price_is_exact(units: int, per: str, text: str) -> None:
    assert format_price(units, per) == text


def test_update_from_swaps_prices_in_place_for_every_holder() -> None:
    table = PriceTable.build(defaults=(), rows=[{"model": "m", "input": "1", "output": "1"}])
    holder = table
    table.update_from(
        PriceTable.build(
            defaults=(), rows=[{"model": "m", "input": "2", "output": "1"}], revision=5
        )
    )
    p = holder.get("m")
    assert p is not None and p.input == 2_000_000 and holder.revision == 5
