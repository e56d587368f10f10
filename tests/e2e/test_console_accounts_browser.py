"""The console's admin account pages in a real browser (Debian's Chromium driven by
Playwright, as in test_console_browser.py): an admin finds a user, adds to their balance
with a reason (the user's dashboard shows it), generates redemption codes, exports them as
CSV, and the user redeems one; sets a console password for a user made by the admin API,
who then signs in; adds a word to a content-policy list and the test box shows the hit;
filters the logs of every user; the audit page lists those actions; the pages fit a
phone-sized screen.

Skipped only when /usr/bin/chromium is missing (``apt-get install -y chromium``)."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from console_kit import (
    PHONE,
    Servers,
    make_admin,
    no_horizontal_overflow,
    open_page,
    sign_up,
    user_id,
)

from integration.gateway import Gateway

expect = pytest.importorskip("playwright.sync_api").expect
PAGES = (
    "/admin/users",
    "/admin/plans",
    "/admin/codes",
    "/admin/safety",
    "/admin/logs",
    "/admin/audit",
)


@pytest.fixture(scope="module")
def gateway(servers: Servers) -> Gateway:
    return servers.openai_gateway("console-accounts-e2e")


def _signed_up(gw: Gateway, browser: Any, username: str, **context: Any) -> tuple[Any, Any]:
    """A new console user (through the sign-up page), with page errors on ``page.errors``."""
    ctx, page = open_page(browser, gw, accept_downloads=True, **context)
    sign_up(page, username, "a good password 1")
    return ctx, page


def _admin(gw: Gateway, browser: Any, username: str, **context: Any) -> tuple[Any, Any]:
    """Signed up, then made admin through the admin API (as the admin bridge's tests do)."""
    ctx, page = _signed_up(gw, browser, username, **context)
    make_admin(gw, page, username, shows="nav-admin-users")
    return ctx, page


def test_an_admin_manages_users_codes_policy_and_sees_the_audit(
    gateway: Gateway, browser: Any
) -> None:
    gw = gateway
    actx, admin = _admin(gw, browser, "acc_admin")
    uctx, user = _signed_up(gw, browser, "acc_customer")
    uid = user_id(gw, "acc_customer")

    # --- the nav shows the account pages in Chinese ---
    expect(admin.get_by_test_id("nav-admin-users")).to_have_text("用户管理")
    expect(admin.get_by_test_id("nav-admin-audit")).to_have_text("操作审计")

    # --- find the user, add to the balance with a reason ---
    admin.get_by_test_id("nav-admin-users").click()
    expect(admin.get_by_test_id("page-admin-users")).to_be_visible()
    admin.get_by_test_id("user-search").fill("ACC_CUSTOMER")
    admin.get_by_test_id("user-search-submit").click()
    row = admin.get_by_test_id(f"user-row-{uid}")
    expect(row).to_be_visible()
    expect(admin.get_by_test_id("user-table").locator("tbody tr")).to_have_count(1)
    expect(row.get_by_test_id("user-balance")).to_have_text("0.0000")
    admin.get_by_test_id(f"user-open-{uid}").click()
    expect(admin.get_by_test_id("detail-name")).to_contain_text("acc_customer")
    admin.get_by_test_id("adjust-amount").fill("12.5")
    admin.get_by_test_id("adjust-submit").click()  # no reason: the browser refuses
    expect(admin.get_by_test_id("adjust-ok")).to_have_count(0)
    admin.get_by_test_id("adjust-reason").fill("补偿工单 #42")
    admin.get_by_test_id("adjust-submit").click()
    expect(admin.get_by_test_id("adjust-ok")).to_contain_text("12.5")
    expect(admin.get_by_test_id("ledger-table")).to_contain_text("补偿工单 #42")
    expect(admin.get_by_test_id("ledger-table")).to_contain_text("acc_admin")
    expect(row.get_by_test_id("user-balance")).to_have_text("12.5000")
    user.reload()
    expect(user.get_by_test_id("balance")).to_contain_text("12.5")

    # the user's keys: shown by hint only, revocable
    key = gw.create_key(uid, name="laptop")
    admin.get_by_test_id(f"user-open-{uid}").click()
    keys = admin.get_by_test_id("user-keys")
    expect(keys).to_contain_text("laptop")
    assert key not in admin.content()
    kid = int(gw.admin("GET", f"/keys?user_id={uid}")["data"][0]["id"])
    admin.get_by_test_id(f"user-key-revoke-{kid}").click()
    expect(admin.get_by_test_id(f"user-key-{kid}")).to_contain_text("revoked")
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()

    # --- a console password for a user the admin API made ---
    made = int(gw.admin("POST", "/users", {"username": "acc_cli_user"})["data"]["id"])
    admin.get_by_test_id("user-search").fill("acc_cli")
    admin.get_by_test_id("user-search-submit").click()
    admin.get_by_test_id(f"user-open-{made}").click()
    admin.get_by_test_id("user-password").fill("set by the admin 7")
    admin.get_by_test_id("user-password-submit").click()
    expect(admin.get_by_test_id("password-ok")).to_be_visible()
    expect(admin.get_by_test_id("user-password")).to_have_value("")
    assert "set by the admin 7" not in admin.content()
    cli_ctx = browser.new_context(base_url=gw.base)
    cli_page = cli_ctx.new_page()
    cli_page.goto("/console#/sign-in")
    cli_page.get_by_test_id("username").fill("acc_cli_user")
    cli_page.get_by_test_id("password").fill("set by the admin 7")
    cli_page.get_by_test_id("submit").click()
    expect(cli_page.get_by_test_id("whoami")).to_have_text("acc_cli_user")
    cli_ctx.close()

    # --- generate codes, export them, the user redeems one ---
    admin.get_by_test_id("nav-admin-codes").click()
    expect(admin.get_by_test_id("page-admin-codes")).to_be_visible()
    admin.get_by_test_id("code-count").fill("3")
    admin.get_by_test_id("code-amount").fill("2")
    admin.get_by_test_id("code-batch").fill("e2e-batch")
    admin.get_by_test_id("code-generate").click()
    expect(admin.get_by_test_id("codes-generated")).to_be_visible()
    codes = admin.get_by_test_id("codes-new").inner_text().split()
    assert len(codes) == 3 and all(c.startswith("RG") for c in codes), codes
    expect(admin.get_by_test_id("code-row")).to_have_count(3)
    listed = admin.get_by_test_id("code-table").inner_text()
    assert not any(c in listed for c in codes)  # the list shows codes shortened
    with admin.expect_download() as download:
        admin.get_by_test_id("codes-export-new").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(r["code"] for r in rows) == sorted(codes)
    assert {r["status"] for r in rows} == {"unused"}

    user.get_by_test_id("nav-redeem").click()
    user.get_by_test_id("redeem-code").fill(codes[0])
    user.get_by_test_id("redeem-submit").click()
    expect(user.get_by_test_id("redeem-ok")).to_be_visible()
    user.get_by_test_id("nav-dashboard").click()
    expect(user.get_by_test_id("balance")).to_contain_text("14.5")

    # a request of the user's, for the logs
    key2 = gw.create_key(uid, name="second")
    client = openai.OpenAI(base_url=gw.base_url, api_key=key2, max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content

    admin.get_by_test_id("code-filter-status").select_option("used")
    admin.get_by_test_id("code-filter").click()
    expect(admin.get_by_test_id("code-row")).to_have_count(1)
    expect(admin.get_by_test_id("code-status")).to_have_text("已使用")
    with admin.expect_download() as download:
        admin.get_by_test_id("codes-export").click()
    again = Path(download.value.path()).read_text()
    assert codes[0] in again

    # --- content policy: a list, a word, the test box shows the hit ---
    admin.get_by_test_id("nav-admin-safety").click()
    expect(admin.get_by_test_id("page-admin-safety")).to_be_visible()
    admin.get_by_test_id("safety-name").fill("e2e-words")
    admin.get_by_test_id("safety-category").fill("测试")
    admin.get_by_test_id("safety-action").select_option("block")
    admin.get_by_test_id("safety-save").click()
    expect(admin.get_by_test_id("safety-saved")).to_be_visible()
    lists = gw.admin("GET", "/safety/lists")["data"]
    lid = next(x["id"] for x in lists if x["name"] == "e2e-words")
    admin.get_by_test_id(f"safety-words-{lid}").click()
    expect(admin.get_by_test_id("safety-no-words")).to_be_visible()
    admin.get_by_test_id("safety-add-words").fill("违禁词甲\nforbiddenword")
    admin.get_by_test_id("safety-add").click()
    expect(admin.get_by_test_id("safety-added")).to_be_visible()
    expect(admin.get_by_test_id("safety-word")).to_have_count(2)
    expect(
        admin.get_by_test_id(f"safety-list-{lid}").get_by_test_id("safety-list-count")
    ).to_have_text("2")
    admin.get_by_test_id("safety-test-text").fill("这段话里有违禁词甲。")
    deadline = time.monotonic() + 10  # the worker compiles the saved lists in a thread
    while True:
        admin.get_by_test_id("safety-test-submit").click()
        expect(admin.get_by_test_id("safety-test-summary")).to_be_visible()
        if admin.get_by_test_id("safety-hit").count() or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    expect(admin.get_by_test_id("safety-hit")).to_have_count(1)
    expect(admin.get_by_test_id("safety-hit")).to_contain_text("违禁词甲")
    expect(admin.get_by_test_id("safety-test-summary")).to_contain_text("拦截")
    # the user's request with the word is refused; the hit shows in the audit of hits
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "说一下违禁词甲"}]
        )
    deadline = time.monotonic() + 10  # hits are written in background batches
    while True:
        admin.get_by_test_id("safety-audit-refresh").click()
        admin.wait_for_load_state("networkidle")
        if admin.get_by_test_id("safety-audit-row").count() or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    expect(admin.get_by_test_id("safety-audit-row").first).to_contain_text("违禁词甲")
    with admin.expect_download() as download:
        admin.get_by_test_id("safety-export-txt").click()
    assert "forbiddenword" in Path(download.value.path()).read_text()
    # a CSV file: the first column under the `word` header, quoted cells too
    admin.get_by_test_id("safety-import-file").set_input_files(
        files=[
            {
                "name": "more.csv",
                "mimeType": "text/csv",
                "buffer": '\ufeffword,category\n"comma, word",x\nthird word\nforbiddenword\n'.encode(),
            }
        ]
    )
    expect(admin.get_by_test_id("safety-added")).to_contain_text("2")
    expect(admin.get_by_test_id("safety-word")).to_have_count(4)
    expect(admin.get_by_test_id("safety-word-table")).to_contain_text("comma, word")
    admin.get_by_test_id("safety-remove-1").click()
    expect(admin.get_by_test_id("safety-word")).to_have_count(3)
    assert "forbiddenword" not in admin.get_by_test_id("safety-word-table").inner_text()

    # --- all logs: the user's refused request, filtered by name ---
    admin.get_by_test_id("nav-admin-logs").click()
    expect(admin.get_by_test_id("all-log-row").first).to_be_visible()
    admin.get_by_test_id("all-log-filter-user").fill("acc_customer")
    admin.get_by_test_id("all-log-apply").click()
    expect(admin.get_by_test_id("all-log-row").first).to_be_visible()
    expect(admin.get_by_test_id("all-log-user").filter(has_not_text=str(uid))).to_have_count(0)
    assert all(
        t.strip() == str(uid) for t in admin.get_by_test_id("all-log-user").all_inner_texts()
    )
    with admin.expect_download() as download:
        admin.get_by_test_id("all-log-export").click()
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert exported and {r["user_id"] for r in exported} == {str(uid)}
    admin.get_by_test_id("all-log-filter-user").fill("nobody_by_that_name")
    admin.get_by_test_id("all-log-apply").click()
    expect(admin.get_by_test_id("msg-error")).to_contain_text("nobody_by_that_name")

    # --- the audit page lists these actions ---
    admin.get_by_test_id("nav-admin-audit").click()
    expect(admin.get_by_test_id("page-admin-audit")).to_be_visible()
    expect(admin.get_by_test_id("audit-row").first).to_be_visible()
    admin.get_by_test_id("audit-filter-actor").fill("acc_admin")
    admin.get_by_test_id("audit-apply").click()
    # the page first lists everyone's actions; wait for the filtered list
    others = admin.get_by_test_id("audit-actor").filter(has_not_text="acc_admin")
    expect(others).to_have_count(0)
    admin.wait_for_load_state("networkidle")
    paths = admin.get_by_test_id("audit-path").all_inner_texts()
    base = "/console/api/admin"
    for wanted in (
        f"{base}/users/{uid}/balance",
        f"{base}/keys/{kid}",
        f"{base}/users/{made}/console-password",
        f"{base}/codes",
        f"{base}/safety/lists",
        f"{base}/safety/lists/{lid}/words",
    ):
        assert wanted in paths, (wanted, paths)
    assert set(admin.get_by_test_id("audit-actor").all_inner_texts()) == {"acc_admin"}
    page_text = admin.get_by_test_id("audit-table").inner_text()
    assert "set by the admin 7" not in page_text and "补偿工单" not in page_text
    assert "password" in page_text and "reason" in page_text  # field names only

    # --- English ---
    admin.get_by_test_id("language").select_option("en")
    expect(admin.get_by_test_id("nav-admin-users")).to_have_text("Users")
    expect(admin.get_by_test_id("nav-admin-codes")).to_have_text("Redemption codes")
    assert admin.errors == [] and user.errors == []
    uctx.close()
    actx.close()


def test_plans_are_created_edited_and_granted(gateway: Gateway, browser: Any) -> None:
    gw = gateway
    ctx, admin = _admin(gw, browser, "plan_admin")
    uctx, user = _signed_up(gw, browser, "plan_customer")
    admin.goto("/console#/admin/plans")
    expect(admin.get_by_test_id("page-admin-plans")).to_be_visible()
    admin.get_by_test_id("plan-name").fill("入门包")
    admin.get_by_test_id("plan-kind").select_option("counts")
    admin.get_by_test_id("plan-quota").fill("100")
    admin.get_by_test_id("plan-save").click()
    expect(admin.get_by_test_id("plan-saved")).to_be_visible()
    pid = next(p["id"] for p in gw.admin("GET", "/plans")["data"] if p["name"] == "入门包")
    expect(admin.get_by_test_id(f"plan-row-{pid}")).to_contain_text("100")
    admin.get_by_test_id(f"plan-edit-{pid}").click()
    expect(admin.get_by_test_id("plan-quota")).to_have_value("100")
    admin.get_by_test_id("plan-quota").fill("250")
    admin.get_by_test_id("plan-save").click()
    expect(admin.get_by_test_id(f"plan-row-{pid}")).to_contain_text("250")
    # a bad value: the server's error is shown, nothing changes
    admin.get_by_test_id(f"plan-edit-{pid}").click()
    admin.get_by_test_id("plan-quota").fill("-5")
    admin.get_by_test_id("plan-save").click()
    expect(admin.get_by_test_id("plan-saved-error")).to_be_visible()
    assert gw.admin("GET", f"/plans/{pid}")["data"]["quota"] == 250
    admin.get_by_test_id("plan-cancel").click()

    admin.get_by_test_id("grant-user").fill("plan_customer")
    admin.get_by_test_id("grant-plan").select_option(str(pid))
    admin.get_by_test_id("grant-submit").click()
    expect(admin.get_by_test_id("grant-ok")).to_contain_text("入门包")
    user.reload()
    expect(user.get_by_test_id("packages")).to_contain_text("入门包")
    admin.get_by_test_id("grant-user").fill("no_such_customer")
    admin.get_by_test_id("grant-submit").click()
    expect(admin.get_by_test_id("grant-ok-error")).to_contain_text("no_such_customer")
    # a plan in use is retired rather than deleted
    admin.get_by_test_id(f"plan-delete-{pid}").click()
    expect(admin.get_by_test_id("plan-deleted")).to_contain_text("下架")
    assert gw.admin("GET", f"/plans/{pid}")["data"]["status"] == "retired"
    assert admin.errors == []
    uctx.close()
    ctx.close()


def test_the_account_pages_fit_a_phone_screen(gateway: Gateway, browser: Any) -> None:
    ctx, page = _admin(gateway, browser, "phone_acc_admin", **PHONE)
    for path in PAGES:
        page.goto(f"/console#{path}")
        expect(page.get_by_test_id(f"page-{path[1:].replace('/', '-')}")).to_be_visible()
        page.wait_for_load_state("networkidle")
        no_horizontal_overflow(page, path)
    # a user's detail, and the generated codes, on the phone too
    page.goto("/console#/admin/users")
    page.get_by_test_id("user-search").fill("phone_acc_admin")
    page.get_by_test_id("user-search-submit").click()
    page.locator("[data-testid^=user-open-]").first.click()
    expect(page.get_by_test_id("adjust-form")).to_be_visible()
    page.wait_for_load_state("networkidle")
    no_horizontal_overflow(page, "user detail")
    page.goto("/console#/admin/codes")
    page.get_by_test_id("code-count").fill("2")
    page.get_by_test_id("code-amount").fill("1")
    page.get_by_test_id("code-generate").click()
    expect(page.get_by_test_id("codes-generated")).to_be_visible()
    no_horizontal_overflow(page, "generated codes")
    assert page.errors == []
    ctx.close()
