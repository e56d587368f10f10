"""A counts plan's per-model multipliers on the console's admin plans page, in a real browser
(Debian's Chromium driven by Playwright, as in test_console_admin_browser.py): an admin sets
gpt-4o-mini to 3 counts per request, changes it to 4, sees it after a reload, and a request
of a user holding a package of the plan (through the openai SDK, against the OpenAI
emulator) uses 4 counts while a model without a multiplier uses 1; wrong values are refused
in the page, the API's refusal is shown, a removed multiplier is gone after a reload and
its model back at 1 count; the page fits a 390 px screen.

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``)."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from console_kit import PHONE, Servers, make_admin, no_horizontal_overflow, open_page, sign_up

from integration.gateway import Gateway

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture(scope="module")
def gateway(servers: Servers) -> Gateway:
    return servers.openai_gateway("plan-multipliers-e2e", models=("gpt-4o-mini", "gpt-4o"))


def _admin_page(gw: Gateway, browser: Any, username: str, **context: Any) -> tuple[Any, Any]:
    ctx, page = open_page(browser, gw, **context)
    sign_up(page, username, "an admin password")
    make_admin(gw, page, username, shows="nav-admin-plans")
    page.goto("/console#/admin/plans")
    expect(page.get_by_test_id("page-admin-plans")).to_be_visible()
    return ctx, page


def _stored(gw: Gateway, pid: int) -> Any:
    return gw.admin("GET", f"/plans/{pid}")["data"]["model_multipliers"]


def _used(gw: Gateway, uid: int, package_id: int, want: int) -> None:
    """The package's used counts reach ``want`` (the log writer commits every 0.5 s)."""
    deadline = time.monotonic() + 10
    while True:
        pkgs = gw.admin("GET", f"/users/{uid}/packages")["data"]
        used = next(p["used"] for p in pkgs if p["id"] == package_id)
        if used == want:
            return
        assert time.monotonic() < deadline and used < want, (used, want)
        time.sleep(0.2)


def _ask(client: Any, model: str) -> None:
    done = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello there"}]
    )
    assert done.choices[0].message.content


def _set(page: Any, model: str, value: str) -> None:
    page.get_by_test_id("mult-model").fill(model)
    page.get_by_test_id("mult-value").fill(value)
    page.get_by_test_id("mult-save").click()


def test_admin_sets_changes_and_removes_a_multiplier_and_a_request_uses_it(
    gateway: Gateway, browser: Any
) -> None:
    gw = gateway
    pid = gw.admin("POST", "/plans", {"name": "chat-20", "kind": "counts", "quota": 20})["data"][
        "id"
    ]
    credit = gw.admin("POST", "/plans", {"name": "monthly-5", "kind": "credit", "quota": "5"})
    ctx, page = _admin_page(gw, browser, "mult_admin")

    # --- the list: counts plans only, every model at 1 count ---
    expect(page.get_by_test_id(f"plan-mults-{pid}")).to_have_text("每次请求 1 次")
    expect(page.get_by_test_id(f"plan-mults-{credit['data']['id']}")).to_have_text("—")
    expect(page.get_by_test_id(f"plan-mult-{credit['data']['id']}")).to_have_count(0)
    page.get_by_test_id(f"plan-mult-{pid}").click()
    expect(page.get_by_test_id("mult-title")).to_have_text("按模型计次倍率：chat-20")
    expect(page.get_by_test_id("mult-empty")).to_be_visible()
    offered = page.locator("#mult-models option").evaluate_all("els => els.map(e => e.value)")
    assert {"gpt-4o-mini", "gpt-4o"} <= set(offered), offered

    # --- wrong input refused in the page, nothing sent ---
    error = page.get_by_test_id("mult-saved-error")
    for bad in ("0", "-1", "2.5", "abc", "1e3", "1000001"):
        _set(page, "gpt-4o-mini", bad)
        expect(error).to_have_text("倍率必须是 1 到 1000000 之间的整数次数。")
    _set(page, "gpt 4o", "2")
    expect(error).to_contain_text("不能包含空格")
    _set(page, "", "2")
    expect(error).to_have_text("请输入模型名。")
    assert _stored(gw, pid) == {}

    # --- set, then change ---
    _set(page, "gpt-4o-mini", "3")
    expect(page.get_by_test_id("mult-saved")).to_have_text("已保存：gpt-4o-mini 每次请求扣 3 次。")
    expect(page.get_by_test_id("mult-count-gpt-4o-mini")).to_have_text("3 次")
    assert _stored(gw, pid) == {"gpt-4o-mini": 3}
    page.get_by_test_id("mult-edit-gpt-4o-mini").click()
    expect(page.get_by_test_id("mult-model")).to_have_value("gpt-4o-mini")
    expect(page.get_by_test_id("mult-value")).to_have_value("3")
    page.get_by_test_id("mult-value").fill("4")
    page.get_by_test_id("mult-save").click()
    expect(page.get_by_test_id("mult-count-gpt-4o-mini")).to_have_text("4 次")
    expect(page.get_by_test_id(f"plan-mults-{pid}")).to_have_text("gpt-4o-mini ×4")
    assert _stored(gw, pid) == {"gpt-4o-mini": 4}
    # a name the catalogue does not know is saved (the plan covers every model), with a note
    _set(page, "my-own-model", "2")
    expect(page.get_by_test_id("mult-saved")).to_contain_text("价格目录里没有 my-own-model")
    expect(page.get_by_test_id(f"plan-mults-{pid}")).to_have_text("gpt-4o-mini ×4, my-own-model ×2")
    page.get_by_test_id("mult-remove-my-own-model").click()  # confirmed
    expect(page.get_by_test_id("mult-saved")).to_have_text("已移除：my-own-model 每次请求扣 1 次。")
    expect(page.get_by_test_id("mult-row-my-own-model")).to_have_count(0)
    assert _stored(gw, pid) == {"gpt-4o-mini": 4}

    # --- after a reload ---
    page.reload()
    expect(page.get_by_test_id(f"plan-mults-{pid}")).to_have_text("gpt-4o-mini ×4")
    page.get_by_test_id(f"plan-mult-{pid}").click()
    expect(page.get_by_test_id("mult-count-gpt-4o-mini")).to_have_text("4 次")

    # --- a user holding a package of the plan: gpt-4o-mini uses 4 counts, gpt-4o 1 ---
    uid = gw.create_user("counts_user", balance=None)
    package = gw.admin("POST", f"/users/{uid}/packages", {"plan_id": pid})["data"]
    client = openai.OpenAI(
        base_url=gw.base_url, api_key=gw.create_key(uid, name="sdk"), max_retries=0
    )
    _ask(client, "gpt-4o-mini")
    _used(gw, uid, package["id"], 4)
    _ask(client, "gpt-4o")
    _used(gw, uid, package["id"], 5)
    assert gw.balance(uid)["balance_units"] == 0  # the package paid, not the balance

    # --- the API's refusal is shown: the plan's models were narrowed since the page loaded ---
    gw.admin("PATCH", f"/plans/{pid}", {"models": ["gpt-4o-mini", "gpt-4o"]})
    _set(page, "o1", "2")
    expect(error).to_contain_text("'o1', which is not in the plan's `models`")
    assert _stored(gw, pid) == {"gpt-4o-mini": 4}

    # --- removed: gone after a reload, and the model back at 1 count ---
    page.get_by_test_id("mult-remove-gpt-4o-mini").click()
    expect(page.get_by_test_id("mult-empty")).to_be_visible()
    expect(page.get_by_test_id(f"plan-mults-{pid}")).to_have_text("每次请求 1 次")
    assert _stored(gw, pid) == {}
    page.reload()
    expect(page.get_by_test_id(f"plan-mults-{pid}")).to_have_text("每次请求 1 次")
    page.get_by_test_id(f"plan-mult-{pid}").click()
    expect(page.get_by_test_id("mult-empty")).to_be_visible()
    _ask(client, "gpt-4o-mini")
    _used(gw, uid, package["id"], 6)

    # --- English ---
    page.get_by_test_id("language").select_option("en")
    page.get_by_test_id(f"plan-mult-{pid}").click()
    expect(page.get_by_test_id("mult-title")).to_have_text("Per-model multipliers: chat-20")
    _set(page, "gpt-4o", "0")
    expect(error).to_have_text("The multiplier must be a whole number of counts from 1 to 1000000.")
    assert page.errors == []
    ctx.close()


def test_the_multipliers_fit_a_phone_screen(gateway: Gateway, browser: Any) -> None:
    gw = gateway
    long_name = "a-rather-long-model-name-from-some-provider-2026-11-29"
    pid = gw.admin(
        "POST",
        "/plans",
        {
            "name": "phone-plan",
            "kind": "counts",
            "quota": 5,
            "model_multipliers": {long_name: 7, "gpt-4o": 2, "gpt-4o-mini": 3, "o1": 9},
        },
    )["data"]["id"]
    ctx, page = _admin_page(gw, browser, "mult_phone_admin", **PHONE)
    expect(page.get_by_test_id(f"plan-mults-{pid}")).to_contain_text("+1")
    page.wait_for_load_state("networkidle")
    no_horizontal_overflow(page, "plans list")
    page.get_by_test_id(f"plan-mult-{pid}").click()
    expect(page.get_by_test_id(f"mult-count-{long_name}")).to_have_text("7 次")
    no_horizontal_overflow(page, "multipliers")
    _set(page, "gpt-4o", "0")
    expect(page.get_by_test_id("mult-saved-error")).to_be_visible()
    no_horizontal_overflow(page, "multipliers error")
    assert page.errors == []
    ctx.close()
