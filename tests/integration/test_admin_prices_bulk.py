"""The bulk price import as the console's prices page sends it (PUT /console/api/admin/prices
through the admin bridge, a signed-in admin with CSRF), against a real gateway: hostile pastes
are refused with a JSON error naming the row and field, and nothing of a refused import is
written; a good import is billed at once. (The admin API's own import tests are in
test_prices_api.py; this one is about what a browser can send.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway import Gateway
from test_console_api import Browser, _name


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Browser]]:
    gw = Gateway(Path(tmp_path_factory.mktemp("prices-bulk"))).start()
    b = Browser(gw)
    try:
        assert b.sign_up(_name("adm")).status_code == 201
        uid = b.load_me()["user"]["id"]
        gw.admin("PATCH", f"/users/{uid}", {"role": "admin"})
        b.load_me()
        yield gw, b
    finally:
        b.close()
        gw.stop()


def _catalogue(b: Browser) -> list[dict[str, Any]]:
    r = b.call("GET", "/admin/prices")
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["data"]
    return sorted(rows, key=lambda p: str(p["model"]))


def _row(model: str, **over: Any) -> dict[str, Any]:
    return {
        "model": model,
        "provider": "acme",
        "currency": "CNY",
        "input": "1",
        "output": "2",
        "force": True,
        **over,
    }


GOOD = [_row("bulk-a"), _row("bulk-b", input="0.5", per="1k")]

# (body, the param the error must name)
HOSTILE: list[tuple[Any, str]] = [
    ({"prices": [*GOOD, _row("bulk-c", input="NaN")]}, "prices[2].input"),
    ({"prices": [*GOOD, _row("bulk-c", input="1e400")]}, "prices[2].input"),
    ({"prices": [*GOOD, _row("bulk-c", input="-0.1")]}, "prices[2].input"),
    ({"prices": [*GOOD, _row("bulk-c", input="0x10")]}, "prices[2].input"),
    ({"prices": [*GOOD, _row("bulk-c", input="0." + "1" * 40)]}, "prices[2].input"),
    ({"prices": [*GOOD, _row("bulk-c", output=None)]}, "prices[2].output"),
    ({"prices": [*GOOD, _row("bulk c")]}, "prices[2].model"),
    ({"prices": [*GOOD, _row("x" * 129)]}, "prices[2].model"),
    ({"prices": [*GOOD, _row("bulk\x00c")]}, "prices[2].model"),
    ({"prices": [*GOOD, _row("bulk-c", currency="EUR")]}, "prices[2].currency"),
    ({"prices": [*GOOD, _row("bulk-c", per="1g")]}, "prices[2].per"),
    ({"prices": [*GOOD, _row("bulk-c", context_window=-1)]}, "prices[2].context_window"),
    (
        {"prices": [*GOOD, _row("bulk-c", image_prices={"9x9/ultra": "1"})]},
        "prices[2].image_prices",
    ),
    ({"prices": [*GOOD, _row("bulk-c", drop="table")]}, "prices[2].drop"),
    ({"prices": [*GOOD, _row("bulk-a")]}, "prices[2].model"),  # the same model twice
    ({"prices": [*GOOD, _row("bulk-typo", force=False)]}, "prices[2].model"),  # no channel
    ({"prices": [*GOOD, [1, 2]]}, "prices[2]"),
    ({"prices": [*GOOD, "bulk-c,acme,CNY,1m,1,2"]}, "prices[2]"),
    ({"prices": []}, "prices"),
    ({"prices": {"bulk-a": GOOD[0]}}, "prices"),
    ({"prices": [_row(f"bulk-{i}") for i in range(5001)]}, "prices"),
    ({"prices": GOOD, "mode": "replace"}, "mode"),
    ({"prices": GOOD, "force": "yes"}, "force"),
]


@pytest.mark.parametrize(("body", "param"), HOSTILE, ids=[p for _, p in HOSTILE])
def test_a_hostile_import_is_refused_whole(
    admin: tuple[Gateway, Browser], body: Any, param: str
) -> None:
    _gw, b = admin
    before = _catalogue(b)
    r = b.call("PUT", "/admin/prices", body)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["param"] == param, err
    assert err["message"]
    assert _catalogue(b) == before  # nothing of it was written


def test_bodies_a_page_should_never_send_get_json_errors(admin: tuple[Gateway, Browser]) -> None:
    _gw, b = admin
    before = _catalogue(b)
    headers = {"Content-Type": "application/json", "X-CSRF-Token": b.csrf}
    cases = [
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than any parser follows
        b'{"prices": ['
        + b",".join([b'{"model": "big", "input": "1", "output": "2"}'] * 40_000)
        + b"]}",  # over the body limit (1 MiB in these tests)
        b'{"prices": [{"model": "bulk-a", "input": "1", "output": "2"}',  # cut short
        b"\xff\xfe not json",
        b"[]",  # not an object
    ]
    for raw in cases:
        r = b.http.request("PUT", "/console/api/admin/prices", content=raw, headers=headers)
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("application/json"), r.text[:300]
        assert r.json()["error"]["message"]
    # without the CSRF token the bridge refuses before the admin API sees it
    r = b.http.request("PUT", "/console/api/admin/prices", json={"prices": GOOD})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    assert _catalogue(b) == before


def test_a_good_import_is_written_whole_and_audited(admin: tuple[Gateway, Browser]) -> None:
    gw, b = admin
    refused = b.call("PUT", "/admin/prices", {"prices": []})
    assert refused.status_code >= 400
    # a full-width digit and a JSON number are read as decimals and stored in ASCII
    wide = _row("bulk-w", input="１", output=1.5)
    r = b.call("PUT", "/admin/prices", {"prices": [*GOOD, wide]})
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 3
    rows = {p["model"]: p for p in _catalogue(b)}
    assert (rows["bulk-w"]["input"], rows["bulk-w"]["output"]) == ("1", "1.5")
    assert rows["bulk-a"]["origin"] == "db" and rows["bulk-a"]["billed"]["input"] == "1"
    # 0.5 CNY per 1K tokens is 500 CNY per 1M tokens
    assert rows["bulk-b"]["billed"]["input"] == "500"
    audit = gw.admin("GET", "/audit?path=/console/api/admin/prices")["data"]
    assert audit and audit[0]["method"] == "PUT" and audit[0]["status"] == 200
    assert audit[0]["fields"] == ["prices"]
    assert audit[1]["method"] == "PUT" and audit[1]["status"] == refused.status_code
