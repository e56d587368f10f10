"""Billing through the running gateway: exact charges for stream and non-stream
requests, locally counted usage when the upstream sends none, exhaustion errors,
packages, and the balance endpoints' shapes that real clients read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer, Knobs

# CNY per 1M tokens: 2 units per input token, 8 per output token (1 unit = 1e-6 CNY)
IN_PRICE, OUT_PRICE = 2, 8


@pytest.fixture(scope="module")
def up() -> Iterator[EmulatorServer]:
    srv = EmulatorServer("openai", knobs=Knobs(api_key="sk-up"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: EmulatorServer) -> Iterator[Gateway]:
    g = Gateway(Path(tmp_path_factory.mktemp("billing"))).start()
    try:
        g.create_channel(
            name="up",
            provider="openai_compat",
            profile="openai",
            base_url=up.base_url,
            keys=["sk-up"],
            models=["bill-chat", "bill-free", "bill-pkg"],
        )
        for model in ("bill-chat", "bill-pkg"):
            g.admin(
                "POST",
                "/prices",
                {
                    "model": model,
                    "currency": "CNY",
                    "per": "1m",
                    "input": str(IN_PRICE),
                    "output": str(OUT_PRICE),
                    "force": True,
                },
            )
        yield g
    finally:
        g.stop()


@pytest.fixture(autouse=True)
def _knobs(up: EmulatorServer) -> None:
    up.reset(knobs=True, stats=False)


def _client(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=gw.base_url, max_retries=0)


def _user(gw: Gateway, name: str, balance: str | None = "10") -> tuple[int, str]:
    uid = gw.create_user(name, balance=balance)
    return uid, gw.create_key(uid, name=name)


def _settled(gw: Gateway, uid: int, expect_change_from: int | None = None) -> dict[str, Any]:
    """The user's balance once the request-log writer has committed (polls ~3 s)."""
    deadline = time.monotonic() + 5
    bal = gw.balance(uid)
    while time.monotonic() < deadline:
        if expect_change_from is None or bal["balance_units"] != expect_change_from:
            break
        time.sleep(0.1)
        bal = gw.balance(uid)
    return bal


def _cost(prompt: int, completion: int) -> int:
    return prompt * IN_PRICE + completion * OUT_PRICE


def test_non_stream_charge_is_exact_to_the_unit(gw: Gateway) -> None:
    uid, key = _user(gw, "bill-ns")
    start = gw.balance(uid)["balance_units"]
    assert start == 10_000_000
    r = _client(gw, key).chat.completions.create(
        model="bill-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=50
    )
    assert r.usage is not None
    expected = _cost(r.usage.prompt_tokens, r.usage.completion_tokens)
    assert expected > 0
    bal = _settled(gw, uid, start)
    assert bal["balance_units"] == start - expected
    ledger = gw.admin("GET", f"/users/{uid}/ledger")["data"]
    charge = ledger[0]
    assert charge["kind"] == "charge"
    assert charge["amount_units"] == -expected
    assert charge["balance_after_units"] == start - expected
    assert charge["request_id"]


def test_stream_charge_is_exact_with_include_usage(gw: Gateway) -> None:
    uid, key = _user(gw, "bill-st")
    start = gw.balance(uid)["balance_units"]
    stream = _client(gw, key).chat.completions.create(
        model="bill-chat",
        messages=[{"role": "user", "content": "hello there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
    assert usage is not None
    bal = _settled(gw, uid, start)
    assert bal["balance_units"] == start - _cost(usage.prompt_tokens, usage.completion_tokens)


def test_stream_without_upstream_usage_is_counted_locally(gw: Gateway, up: EmulatorServer) -> None:
    """llama.cpp-style upstream: no usage in the stream. The client that asked for
    include_usage still gets a usage chunk, and the charge is the local count."""
    up.configure(usage="never")
    uid, key = _user(gw, "bill-nousage")
    start = gw.balance(uid)["balance_units"]
    stream = _client(gw, key).chat.completions.create(
        model="bill-chat",
        messages=[{"role": "user", "content": "count me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage is not None:
            usage = chunk.usage
    assert text
    assert usage is not None, "the gateway must add the usage chunk the client asked for"
    assert usage.completion_tokens > 0 and usage.prompt_tokens > 0
    bal = _settled(gw, uid, start)
    assert bal["balance_units"] == start - _cost(usage.prompt_tokens, usage.completion_tokens)


def test_unpriced_model_is_not_charged(gw: Gateway) -> None:
    uid, key = _user(gw, "bill-free", balance=None)
    r = _client(gw, key).chat.completions.create(
        model="bill-free", messages=[{"role": "user", "content": "hi"}]
    )
    assert r.choices[0].message.content
    assert gw.balance(uid)["balance_units"] == 0


def test_exhausted_balance_is_403_insufficient_quota_and_no_upstream_call(
    gw: Gateway, up: EmulatorServer
) -> None:
    uid, key = _user(gw, "bill-broke", balance=None)
    before = up.stats.snapshot(with_requests=False)["requests"]
    with pytest.raises(openai.PermissionDeniedError) as info:
        _client(gw, key).chat.completions.create(
            model="bill-chat", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 403
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "insufficient_quota"
    assert up.stats.snapshot(with_requests=False)["requests"] == before  # no upstream call
    # a balance that covers the answer but not the worst case asked for is refused too
    gw.top_up(uid, "0.001")  # 1000 units
    with pytest.raises(openai.PermissionDeniedError):
        _client(gw, key).chat.completions.create(
            model="bill-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=10_000
        )
    r = _client(gw, key).chat.completions.create(
        model="bill-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=20
    )
    assert r.usage is not None
    assert gw.balance(uid)["free_units"] >= 0


def test_key_spending_cap(gw: Gateway) -> None:
    uid = gw.create_user("bill-cap", balance="10")
    key = gw.create_key(uid, name="capped", spend_limit="0.0001")  # 100 units
    with pytest.raises(openai.PermissionDeniedError) as info:
        _client(gw, key).chat.completions.create(
            model="bill-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=100
        )
    assert "spending cap" in str(info.value)


def test_counts_package_is_used_before_the_balance(gw: Gateway) -> None:
    uid, key = _user(gw, "bill-counts", balance=None)
    plan = gw.admin(
        "POST",
        "/plans",
        {"name": "chat-3", "kind": "counts", "quota": 4, "model_multipliers": {"bill-pkg": 2}},
    )["data"]
    gw.admin("POST", f"/users/{uid}/packages", {"plan_id": plan["id"]})
    c = _client(gw, key)
    for _ in range(2):  # 2 counts each: the package covers two requests
        r = c.chat.completions.create(
            model="bill-pkg", messages=[{"role": "user", "content": "hi"}]
        )
        assert r.choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as info:  # exhausted, no balance
        c.chat.completions.create(model="bill-pkg", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 403
    time.sleep(1.0)
    pkgs = gw.admin("GET", f"/users/{uid}/packages")["data"]
    assert pkgs[0]["used"] == 4
    assert gw.balance(uid)["balance_units"] == 0
    logs = gw.admin("GET", f"/logs?user_id={uid}")["data"]
    paid = [row for row in logs if row.get("billing") == "counts"]
    assert len(paid) == 2, logs
    assert all(row["counts"] == 2 and row["cost_units"] == 0 for row in paid), paid


def test_unlimited_plan_charges_nothing(gw: Gateway) -> None:
    uid, key = _user(gw, "bill-unl", balance=None)
    plan = gw.admin("POST", "/plans", {"name": "unl", "kind": "unlimited", "period_days": 30})[
        "data"
    ]
    gw.admin("POST", f"/users/{uid}/packages", {"plan_id": plan["id"]})
    for _ in range(3):
        r = _client(gw, key).chat.completions.create(
            model="bill-chat", messages=[{"role": "user", "content": "hi"}]
        )
        assert r.choices[0].message.content
    assert gw.balance(uid)["balance_units"] == 0


# ---- balance endpoints: the shapes clients read -------------------------------------------
def test_credit_grants_shape_and_decrease(gw: Gateway) -> None:
    _, key = _user(gw, "bill-cg", balance="111.8658")
    h = {"Authorization": f"Bearer {key}"}
    for method in ("GET", "POST"):
        r = httpx.request(method, gw.base + "/v1/dashboard/billing/credit_grants", headers=h)
        assert r.status_code == 200
        body = r.json()
        assert body["code"] == 0 and body["msg"] == "ok"
        assert body["object"] == "credit_summary"
        assert body["grants"] == {"available_amount": "111.8658"}
        assert body["total_available"] == 111.8658
    _client(gw, key).chat.completions.create(
        model="bill-chat", messages=[{"role": "user", "content": "hi"}]
    )
    after = httpx.get(gw.base + "/v1/dashboard/billing/credit_grants", headers=h).json()
    assert after["grants"]["available_amount"] < "111.8658"  # charged at once (same worker)


def test_nextchat_subscription_and_usage_shapes(gw: Gateway) -> None:
    uid, key = _user(gw, "bill-nc", balance="5")
    h = {"Authorization": f"Bearer {key}"}
    _client(gw, key).chat.completions.create(
        model="bill-chat", messages=[{"role": "user", "content": "hi"}]
    )
    for prefix in ("", "/v1"):
        sub = httpx.get(gw.base + prefix + "/dashboard/billing/subscription", headers=h)
        assert sub.status_code == 200
        s = sub.json()
        assert s["object"] == "billing_subscription"
        assert s["hard_limit_usd"] == pytest.approx(5.0, abs=0.001)
        use = httpx.get(
            gw.base + prefix + "/dashboard/billing/usage",
            params={  # what NextChat sends: first of the month .. tomorrow
                "start_date": date.today().replace(day=1).isoformat(),
                "end_date": (date.today() + timedelta(days=1)).isoformat(),
            },
            headers=h,
        )
        assert use.status_code == 200
        u = use.json()
        assert u["object"] == "list"
        assert u["total_usage"] > 0  # hundredths: NextChat shows round(x)/100
        bal = gw.balance(uid)["balance_units"]
        assert u["total_usage"] == pytest.approx((5_000_000 - bal) / 10_000)
    bad = httpx.get(
        gw.base + "/dashboard/billing/usage", params={"start_date": "yesterday"}, headers=h
    )
    assert bad.status_code == 403 and bad.json()["error"]["param"] == "start_date"
    assert httpx.get(gw.base + "/dashboard/billing/usage").status_code == 401


def test_account_endpoint(gw: Gateway) -> None:
    _, key = _user(gw, "bill-acct", balance="3")
    r = httpx.get(gw.base + "/v1/account", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    a = r.json()
    assert a["balance"] == "3.0000" and a["balance_units"] == 3_000_000
    assert a["currency"] == "CNY"
    assert a["packages"] == []
    assert a["usage_this_month"]["cost_units"] == 0


def test_credit_package_pays_before_the_balance(gw: Gateway) -> None:
    uid, key = _user(gw, "bill-credit", balance="1")
    plan = gw.admin("POST", "/plans", {"name": "monthly-credit", "kind": "credit", "quota": "0.5"})[
        "data"
    ]
    gw.admin("POST", f"/users/{uid}/packages", {"plan_id": plan["id"]})
    r = _client(gw, key).chat.completions.create(
        model="bill-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=50
    )
    assert r.usage is not None
    cost = _cost(r.usage.prompt_tokens, r.usage.completion_tokens)
    deadline = time.monotonic() + 5
    used = 0
    while time.monotonic() < deadline:
        used = gw.admin("GET", f"/users/{uid}/packages")["data"][0]["used_units"]
        if used:
            break
        time.sleep(0.1)
    assert used == cost  # credit used, to the unit
    assert gw.balance(uid)["balance_units"] == 1_000_000  # the balance is untouched
    logs = gw.admin("GET", f"/logs?user_id={uid}")["data"]
    assert logs[0]["billing"] == "credit" and logs[0]["cost_units"] == 0


def test_stream_cut_by_the_client_is_billed_for_what_was_delivered(
    gw: Gateway, up: EmulatorServer
) -> None:
    """new-api charged aborted streams in full: here a client that leaves after a few
    chunks pays the prompt and the chunks it was sent, counted as they were delivered."""
    up.configure(chunks=40, chunk_interval_ms=50)
    uid, key = _user(gw, "bill-cut")
    start = gw.balance(uid)["balance_units"]
    body = {
        "model": "bill-chat",
        "stream": True,
        "messages": [{"role": "user", "content": "a long answer please"}],
        "max_tokens": 500,
    }
    seen = 0
    with httpx.stream(
        "POST",
        gw.base_url + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and '"content"' in line:
                seen += 1
            if seen >= 5:
                break
    bal = _settled(gw, uid, start)
    charged = start - bal["balance_units"]
    assert charged > 0
    logs = gw.admin("GET", f"/logs?user_id={uid}")["data"]
    row = logs[0]
    assert row["status"] == 499
    assert row["cost_units"] == charged
    # far less than the 40-chunk answer: at most the chunks written before the cancel
    assert row["completion_tokens"] < 40
    assert charged == _cost(row["prompt_tokens"], row["completion_tokens"])


def test_an_upstream_that_breaks_mid_stream_bills_what_was_delivered(
    gw: Gateway, up: EmulatorServer
) -> None:
    """After the first byte no other channel can take over: the client gets a clean
    error event and [DONE], and pays for the chunks it was sent (issue 11, item 6)."""
    up.configure(chunks=20, cut_after=6)
    uid, key = _user(gw, "bill-broken")
    start = gw.balance(uid)["balance_units"]
    body = {
        "model": "bill-chat",
        "stream": True,
        "messages": [{"role": "user", "content": "a long answer please"}],
        "max_tokens": 500,
    }
    r = httpx.post(
        gw.base_url + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 200
    events = [e for e in r.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert orjson.loads(events[-2][len("data: ") :])["error"]["code"] == "upstream_error"
    delivered = sum(1 for e in events if '"content"' in e)
    assert delivered >= 6
    bal = _settled(gw, uid, start)
    charged = start - bal["balance_units"]
    row = gw.admin("GET", f"/logs?user_id={uid}")["data"][0]
    assert row["status"] == 502 and row["error_code"] == "upstream_error"
    assert 0 < row["completion_tokens"] < 20 * 3
    assert charged == row["cost_units"] == _cost(row["prompt_tokens"], row["completion_tokens"])


def test_embeddings_are_charged_for_their_input(gw: Gateway) -> None:
    gw.admin(
        "POST",
        "/prices",
        {
            "model": "bill-embed",
            "currency": "CNY",
            "per": "1m",
            "input": "3",
            "output": "0",
            "force": True,
        },
    )
    gw.admin(
        "PATCH",
        f"/channels/{gw.admin('GET', '/channels')['data'][0]['id']}",
        {"models": ["bill-chat", "bill-free", "bill-pkg", "bill-embed"]},
    )
    uid, key = _user(gw, "bill-emb")
    start = gw.balance(uid)["balance_units"]
    r = _client(gw, key).embeddings.create(model="bill-embed", input=["one", "two words"])
    assert r.usage.prompt_tokens > 0
    bal = _settled(gw, uid, start)
    assert bal["balance_units"] == start - 3 * r.usage.prompt_tokens


def test_unlimited_plan_fair_use_limit(gw: Gateway) -> None:
    uid, key = _user(gw, "bill-fair", balance=None)
    plan = gw.admin("POST", "/plans", {"name": "fair", "kind": "unlimited", "rpm_limit": 2})["data"]
    gw.admin("POST", f"/users/{uid}/packages", {"plan_id": plan["id"]})
    c = _client(gw, key)
    for _ in range(2):
        c.chat.completions.create(model="bill-chat", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="bill-chat", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers.get("retry-after")
    assert gw.balance(uid)["balance_units"] == 0


def test_account_api_logs_ledger_and_redeem(gw: Gateway) -> None:
    uid, key = _user(gw, "bill-self", balance="2")
    other_uid, other_key = _user(gw, "bill-other", balance="2")
    h = {"Authorization": f"Bearer {key}"}
    _client(gw, key).chat.completions.create(
        model="bill-chat", messages=[{"role": "user", "content": "mine"}]
    )
    _client(gw, other_key).chat.completions.create(
        model="bill-chat", messages=[{"role": "user", "content": "theirs"}]
    )
    time.sleep(1.0)
    logs = httpx.get(gw.base + "/v1/account/logs", headers=h).json()
    assert logs["data"] and all(row["user_id"] == uid for row in logs["data"])
    peek = httpx.get(gw.base + "/v1/account/logs", params={"user_id": other_uid}, headers=h)
    assert peek.status_code == 403  # a user never sees another user's rows
    csv_text = httpx.get(gw.base + "/v1/account/logs.csv", headers=h).text
    assert csv_text.splitlines()[0].startswith(("request_id", "id", "created_at"))
    assert len(csv_text.splitlines()) == 1 + len(logs["data"])
    ledger = httpx.get(gw.base + "/v1/account/ledger", headers=h).json()["data"]
    assert [e["kind"] for e in ledger][:1] == ["charge"] and ledger[-1]["kind"] in (
        "adjust",
        "topup",
    )
    assert httpx.get(gw.base + "/v1/account/ledger?limit=0", headers=h).status_code == 403
    huge = httpx.get(gw.base + "/v1/account/ledger?before_id=" + "9" * 30, headers=h)
    assert huge.status_code == 403 and huge.json()["error"]["param"] == "before_id"
    daily = httpx.get(gw.base + "/v1/account/usage/daily", headers=h)
    assert daily.status_code == 200

    codes = gw.admin("POST", "/codes", {"count": 1, "amount": "1.5", "batch": "t"})["data"]
    code = codes["codes"][0]
    before = gw.balance(uid)["balance_units"]
    ok = httpx.post(gw.base + "/v1/account/redeem", json={"code": code}, headers=h)
    assert ok.status_code == 200, ok.text
    assert gw.balance(uid)["balance_units"] == before + 1_500_000
    again = httpx.post(gw.base + "/v1/account/redeem", json={"code": code}, headers=h)
    assert again.status_code == 403 and again.json()["error"]["code"] == "code_used"
    bad = httpx.post(gw.base + "/v1/account/redeem", json={"code": 12}, headers=h)
    assert bad.status_code == 403
    assert httpx.get(gw.base + "/v1/account/redeem", headers=h).status_code == 405


def test_group_multiplier_scales_the_charge(gw: Gateway) -> None:
    gw.admin("POST", "/price-groups", {"name": "vip", "multiplier": "0.5"})
    uid, key = _user(gw, "bill-vip")
    gw.admin("PATCH", f"/users/{uid}", {"group_name": "vip"})
    time.sleep(0.6)  # the worker's configuration refresh
    start = gw.balance(uid)["balance_units"]
    r = _client(gw, key).chat.completions.create(
        model="bill-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=50
    )
    assert r.usage is not None
    full = _cost(r.usage.prompt_tokens, r.usage.completion_tokens)
    bal = _settled(gw, uid, start)
    assert bal["balance_units"] == start - -(-full // 2)  # half, rounded up once
