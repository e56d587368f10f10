"""Media, audio, video and training prices: exact costs of images (by size and quality),
seconds, characters and training tokens with the group multiplier and one rounding; the
image price lookup order; compiling and validating the new fields; the shipped defaults."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import pytest

from relaygate.billing.media import (
    IMAGE_PRICES_MAX,
    Measure,
    image_price_key,
    image_unit_price,
    media_cost,
)
from relaygate.billing.prices import (
    ModelPrice,
    PriceTable,
    compile_price,
    format_character_price,
    token_cost,
)
from relaygate.providers.base import Usage
from relaygate.services.fields import ValidationError
from relaygate.services.prices import PRICE, PriceService

RATE = Decimal("7.2")
DEFAULTS = PriceTable.build()  # CNY operator, 7.2 CNY per USD


def default(model: str) -> ModelPrice:
    p = DEFAULTS.get(model)
    assert p is not None, model
    return p


def price(**row: Any) -> ModelPrice:
    base: dict[str, Any] = {"model": "m", "currency": "CNY", "input": "0", "output": "0"}
    return compile_price({**base, **row}, "CNY", RATE)


# ---- exact costs with the shipped defaults (USD prices, CNY operator) -----------------------
def test_dall_e_3_hd_wide_two_images_with_and_without_a_group_multiplier() -> None:
    p = default("dall-e-3")
    m = Measure(images=2, size="1792x1024", quality="hd")
    assert image_unit_price(p, "1792x1024", "hd") == 864_000  # $0.12 x 7.2 = 0.864 yuan
    assert media_cost(p, m) == 1_728_000
    assert media_cost(p, m, (3, 2)) == 2_592_000  # x 1.5, exact


def test_whisper_bills_per_millisecond_exactly() -> None:
    p = default("whisper-1")  # $0.006/min = $0.0001/s = 720 units per second
    assert p.per_second == 720
    assert media_cost(p, Measure(milliseconds=61_500)) == 44_280  # 61.5 s x 720
    assert media_cost(p, Measure(milliseconds=61_501)) == 44_281  # 44,280.72 rounded up
    assert media_cost(p, Measure(milliseconds=61_500), (3, 2)) == 66_420


def test_tts_bills_per_character() -> None:
    p = default("tts-1")  # $15 per 1M characters = 108 yuan per 1M = 108 units per char
    assert p.per_character == 108_000_000
    assert media_cost(p, Measure(characters=1_234)) == 133_272
    assert media_cost(default("tts-1-hd"), Measure(characters=1_234)) == 266_544


def test_sora_bills_per_second_of_video() -> None:
    assert media_cost(default("sora-2"), Measure(milliseconds=8_000)) == 5_760_000  # $0.80
    assert media_cost(default("sora-2-pro"), Measure(milliseconds=8_000)) == 17_280_000


def test_fine_tuning_training_tokens_per_1m() -> None:
    p = default("gpt-4o-mini-2024-07-18")  # $3 per 1M training tokens
    assert p.training == 21_600_000
    assert media_cost(p, Measure(training_tokens=1_000_000)) == 21_600_000
    assert media_cost(p, Measure(training_tokens=1_000_000), (3, 2)) == 32_400_000
    assert media_cost(p, Measure(training_tokens=1)) == 22  # 21.6 units rounded up once
    # the snapshot's chat requests bill at the base model's token prices
    assert token_cost(p, Usage(prompt_tokens=1_000_000)) == 1_080_000


def test_parts_add_up_before_the_single_rounding() -> None:
    p = price(per_second="0.000001", per_character="0.0000001", per_image="0.000001")
    # 1 ms at 1 unit/s = 0.001; 3 characters at 0.1 unit = 0.3; 1 image = 1 unit
    assert media_cost(p, Measure(milliseconds=1)) == 1
    assert media_cost(p, Measure(characters=3)) == 1
    assert media_cost(p, Measure(characters=15)) == 2  # 1.5 -> 2
    assert media_cost(p, Measure(images=1, characters=5, milliseconds=500)) == 2  # 1.5005 -> 2
    assert media_cost(p, Measure(characters=10), (1, 3)) == 1  # 1/3 -> 1


def test_nothing_or_negative_quantities_cost_nothing_and_per_request_is_left_out() -> None:
    p = price(per_request="1", per_image="0.5", per_second="1", per_character="1", training="1")
    assert media_cost(p, Measure()) == 0
    assert media_cost(p, Measure(images=-2, milliseconds=-5, characters=-1)) == 0
    assert media_cost(p, Measure(images=1)) == 500_000  # no per_request in here
    assert token_cost(p, Usage()) == 1_000_000  # token_cost adds it, once per request


def test_gpt_image_1_bills_tokens_and_has_per_image_fallbacks() -> None:
    p = default("gpt-image-1")
    assert (p.input, p.output) == (72_000_000, 288_000_000)  # $10 / $40 per 1M
    assert image_unit_price(p, "1024x1024", "low") == 79_200  # $0.011
    assert image_unit_price(p, "1024x1024", "high") == 1_202_400  # $0.167
    assert image_unit_price(p, "1536x1024", "medium") == 453_600  # $0.063
    assert image_unit_price(p, "", "medium") == 302_400  # quality only: the 1024x1024 price
    assert image_unit_price(p, "1536x1024", "auto") == 1_800_000  # size only: high, $0.25
    assert image_unit_price(p, "auto", "auto") == p.per_image == 1_202_400


def test_dall_e_2_by_size_and_the_default_size() -> None:
    p = default("dall-e-2")
    assert image_unit_price(p, "256x256", "") == 115_200  # $0.016
    assert image_unit_price(p, "512x512", "standard") == 129_600  # no size/quality entry
    assert image_unit_price(p, "", "") == 144_000  # per_image, $0.02 (1024x1024)


# ---- lookup order ---------------------------------------------------------------------------
LOOKUP = price(
    per_image="0.004",
    image_prices={"1024x1024/hd": "0.001", "1024x1024": "0.002", "hd": "0.003"},
)


@pytest.mark.parametrize(
    ("size", "quality", "units"),
    [
        ("1024x1024", "hd", 1_000),  # size/quality
        ("1024x1024", "standard", 2_000),  # then size
        ("512x512", "hd", 3_000),  # then quality
        ("512x512", "standard", 4_000),  # then per_image
        ("", "", 4_000),
        ("auto", "hd", 3_000),  # a size that is not WxH is unknown
        (" 1024X1024 ", "HD", 1_000),  # case and spaces do not matter
        ("", "1024x1024", 4_000),  # a size given as the quality is not a size lookup
        ("1024x1024", "ultra", 2_000),  # an unknown quality is skipped
    ],
)
def test_image_price_lookup_order(size: str, quality: str, units: int) -> None:
    assert image_unit_price(LOOKUP, size, quality) == units


def test_a_model_without_image_prices_uses_per_image() -> None:
    assert image_unit_price(price(per_image="0.01"), "1024x1024", "hd") == 10_000


# ---- compiling ------------------------------------------------------------------------------
def test_new_fields_compile_in_the_operator_currency() -> None:
    p = compile_price(
        {
            "model": "m", "currency": "USD", "per": "1k", "input": "0", "output": "0",
            "per_character": "0.000015", "training": "0.003",
            "image_prices": {"1024X1792/HD": "0.12", "low": 0.011},
        },
        "CNY",
        RATE,
    )  # fmt: skip
    assert p.per_character == 108_000_000  # units per 1M characters
    assert p.training == 21_600_000  # $0.003 per 1K = $3 per 1M
    assert p.image_prices == (("1024x1792/hd", 864_000), ("low", 79_200))
    assert format_character_price(p.per_character) == "0.000108"
    # a USD operator keeps a sub-unit character price exact: 0.1 unit per character
    q = compile_price({"model": "m", "input": "0", "output": "0", "per_character": "0.00000072"},
                      "USD", RATE)  # fmt: skip
    assert q.per_character == 100_000
    assert media_cost(q, Measure(characters=10)) == 1


@pytest.mark.parametrize(
    ("image_prices", "message"),
    [
        ({"huge": "1"}, "not an image price key"),
        ({"1024x1024/ultra": "1"}, "not an image price key"),
        ({"auto/hd": "1"}, "not an image price key"),
        ({"1024x1024/hd/x": "1"}, "not an image price key"),
        ({"HD": "1", "hd": "2"}, "twice"),
        ({"hd": "-1"}, "must be a finite number >= 0"),
        ({"hd": "abc"}, "not a decimal number"),
        ("0.04", "must be an object"),
        ({f"{i + 10}x{i + 10}": "1" for i in range(IMAGE_PRICES_MAX + 1)}, "more than 50"),
    ],
)
def test_bad_image_prices_in_a_stored_row_are_refused(image_prices: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        price(model="pic", image_prices=image_prices)
    assert "pic" in str(err.value)


def test_a_broken_media_row_is_skipped_and_the_default_kept() -> None:
    rows = [{"model": "dall-e-3", "input": "0", "output": "0", "image_prices": {"x": "1"}}]
    table = PriceTable.build(rows)
    p = table.get("dall-e-3")
    assert p is not None and p.origin == "default" and len(table.errors) == 1


@pytest.mark.parametrize(
    ("key", "normalised"),
    [("1024x1792/hd", "1024x1792/hd"), (" 1024X1024 ", "1024x1024"), ("High", "high"),
     ("auto", "auto"), ("256x256/standard", "256x256/standard")],
)  # fmt: skip
def test_image_price_keys_are_normalised(key: str, normalised: str) -> None:
    assert image_price_key(key) == normalised


# ---- admin validation (services/prices.py) ----------------------------------------------------
def body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": "0", "output": "0", **fields}


def test_admin_fields_are_validated_and_normalised() -> None:
    row = PRICE.create(
        body(per_character="0.0000150", training=3, image_prices={"1024X1792/HD": 0.12})
    )
    assert row["per_character"] == "0.000015" and row["training"] == "3"
    assert row["image_prices"] == {"1024x1792/hd": "0.12"}
    assert PRICE.create(body())["image_prices"] is None
    assert PRICE.patch({"image_prices": None}) == {"image_prices": None}


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"image_prices": {"huge": "1"}}, "image_prices", "size like 1024x1792"),
        ({"image_prices": {"hd": -1}}, "image_prices.hd", "must not be negative"),
        ({"image_prices": {"hd": "1e10"}}, "image_prices.hd", "too large"),
        ({"image_prices": {"Hd": "1", "hD": "2"}}, "image_prices", "twice"),
        ({"image_prices": ["hd", "1"]}, "image_prices", "must be an object"),
        ({"image_prices": {f"{i + 10}x10": "1" for i in range(51)}}, "image_prices", "at most 50"),
        ({"per_character": "-0.1"}, "per_character", "must not be negative"),
        ({"training": "abc"}, "training", "must be a number"),
        ({"per_character": "0.00000000001"}, "per_character", "more than 10 decimals"),
    ],
)
def test_bad_admin_input_names_the_field(fields: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err:
        PRICE.create(body(**fields))
    assert err.value.field == param


def test_admin_view_shows_what_was_entered_and_what_billing_uses() -> None:
    svc = PriceService(cast(Any, None), currency="CNY", usd_rate="7.2")
    row = PRICE.create(
        body(currency="USD", per_character="0.000015", training="3", per_second="0.1",
             image_prices={"1792x1024/hd": "0.12"})
    )  # fmt: skip
    del row["force"]
    shown = svc.public(row, "db")
    assert shown["image_prices"] == {"1792x1024/hd": "0.12"} and shown["training"] == "3"
    billed = shown["billed"]
    assert billed["per_character"] == "0.000108"  # yuan per character
    assert billed["training"] == "21.6"  # yuan per 1M tokens
    assert billed["per_second"] == "0.72"
    assert billed["image_prices"] == {"1792x1024/hd": "0.864"}


# ---- defaults and the public catalogue --------------------------------------------------------
def test_media_defaults_load_with_sources() -> None:
    assert DEFAULTS.errors == ()
    for model in (
        "gpt-3.5-turbo-instruct", "davinci-002", "babbage-002", "omni-moderation-latest",
        "text-moderation-latest", "dall-e-2", "dall-e-3", "gpt-image-1", "whisper-1",
        "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "tts-1", "tts-1-hd", "gpt-4o-mini-tts",
        "sora-2", "sora-2-pro", "gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14",
        "jina-reranker-v2-base-multilingual", "BAAI/bge-reranker-v2-m3", "gte-rerank",
    ):  # fmt: skip
        p = default(model)
        assert p.source.startswith("https://"), model
    free = default("omni-moderation-latest")
    assert token_cost(free, Usage(prompt_tokens=10_000)) == 0
    assert default("gte-rerank").input == 800_000  # 0.8 yuan per 1M, entered in CNY
    assert default("gpt-4.1-mini-2025-04-14").training == 36_000_000  # $5 per 1M
    tts = default("gpt-4o-mini-tts")  # tokens when reported, characters otherwise
    assert tts.output == 86_400_000 and tts.per_character == 115_200_000


def test_catalogue_lists_media_prices_only_for_models_that_have_them() -> None:
    rows = {r["model"]: r for r in DEFAULTS.catalogue()}
    assert rows["dall-e-3"]["image_price"] == "0.288"
    assert rows["dall-e-3"]["image_prices"]["1024x1792/hd"] == "0.864"
    assert rows["whisper-1"]["second_price"] == "0.00072"
    assert rows["tts-1"]["character_price"] == "0.000108"
    assert rows["gpt-4o-mini-2024-07-18"]["training_price"] == "0.0216"  # per 1K tokens
    assert DEFAULTS.catalogue(per="1m")[0]["per"] == "1m"
    plain = rows["gpt-4o-mini"]
    assert not {"image_price", "image_prices", "second_price", "character_price"} & set(plain)
    assert "training_price" not in plain and "request_price" not in plain
