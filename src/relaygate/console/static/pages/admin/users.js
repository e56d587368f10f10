// Admin: users. Search by name (or id), paged; open one user to adjust the balance with a
// reason (ledger kind adjust or topup), disable/enable, change role and group, set a
// console password (their sessions end), turn off two-factor sign-in for a user who lost
// the authenticator and the recovery codes, and see or revoke their keys (hint only).
import { adminApi } from "../../api.js";
import { clear, field, formatTime, h } from "../../dom.js";
import { t } from "../../i18n.js";
import { attempt, badge, button, input, muted, select, table } from "./acc-kit.js";

const PAGE = 50;

function userRow(u, open) {
  return h("tr", { "data-testid": `user-row-${u.id}` },
    h("td", {}, String(u.id)),
    h("td", { "data-testid": "user-name" }, u.username),
    h("td", { "data-testid": "user-balance" }, u.balance ?? "—"),
    h("td", {}, u.group_name),
    h("td", {}, t(`adminUsers.role.${u.role}`)),
    h("td", {}, badge(u.status === "active" ? "active" : "revoked", t(`adminUsers.status.${u.status}`))),
    h("td", {}, button(t("adminUsers.manage"), `user-open-${u.id}`, () => open(u), "secondary")));
}

function balanceCard(u, refresh) {
  const amount = input("adjust-amount", { inputmode: "decimal", placeholder: t("adminUsers.amountHint") });
  const reason = input("adjust-reason", { maxlength: 256, required: true });
  const kind = select("adjust-kind", [["adjust", t("adminUsers.kind.adjust")], ["topup", t("adminUsers.kind.topup")]], "adjust");
  const out = h("div");
  const ledgerBox = h("div");
  const now = h("span", { "data-testid": "detail-balance" }, u.balance ?? "");

  async function loadLedger() {
    const page = await adminApi("GET", `/users/${u.id}/ledger?limit=10`);
    now.textContent = page.balance;
    clear(ledgerBox);
    if (!page.data.length) return ledgerBox.append(muted(t("adminUsers.noLedger")));
    ledgerBox.append(table("ledger-table",
      [t("adminAcc.time"), t("adminUsers.kind"), t("adminUsers.amount"), t("adminUsers.after"), t("adminUsers.reason"), t("adminUsers.actor")],
      page.data.map((e) => h("tr", {},
        h("td", {}, formatTime(e.created_at)), h("td", {}, e.kind), h("td", {}, e.amount),
        h("td", {}, e.balance_after), h("td", {}, e.reason || ""), h("td", {}, e.actor || "")))));
  }

  const form = h("form", { class: "stack", "data-testid": "adjust-form" },
    h("div", { class: "row" }, field(t("adminUsers.amount"), amount), field(t("adminUsers.kind"), kind)),
    field(t("adminUsers.reason"), reason),
    h("div", { class: "row" }, h("button", { type: "submit", "data-testid": "adjust-submit" }, t("adminUsers.adjust"))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const done = await attempt(out, () => adminApi("POST", `/users/${u.id}/balance`,
      { amount: amount.value.trim(), reason: reason.value, kind: kind.value }),
      (r) => t("adminUsers.adjusted", { balance: r.data.balance }), "adjust-ok");
    if (done) {
      form.reset();
      await loadLedger();
      refresh();
    }
  });
  const card = h("div", { class: "card" },
    h("h2", {}, t("adminUsers.balance"), ": ", now), form, out,
    h("h2", {}, t("adminUsers.ledger")), ledgerBox);
  return { card, loadLedger };
}

function accountCard(u, refresh, reopen) {
  const out = h("div");
  const role = select("user-role", [["user", t("adminUsers.role.user")], ["admin", t("adminUsers.role.admin")]], u.role);
  const group = input("user-group", { value: u.group_name, maxlength: 32 });
  const save = button(t("adminAcc.save"), "user-save", () => attempt(out,
    async () => { Object.assign(u, (await adminApi("PATCH", `/users/${u.id}`, { role: role.value, group_name: group.value.trim() })).data); refresh(); },
    t("adminAcc.saved"), "user-save-ok"));
  const next = u.status === "active" ? "disabled" : "active";
  const toggle = button(next === "disabled" ? t("adminUsers.disable") : t("adminUsers.enable"), "user-toggle-status",
    async () => {
      if (next === "disabled" && !confirm(t("adminUsers.disableConfirm", { name: u.username }))) return;
      const r = await attempt(out, () => adminApi("PATCH", `/users/${u.id}`, { status: next }), "");
      if (r) {
        refresh();
        reopen({ ...u, ...r.data });
      }
    }, next === "disabled" ? "danger" : "secondary");
  const password = input("user-password", { type: "password", autocomplete: "new-password", minlength: 8, maxlength: 128 });
  const pwOut = h("div");
  const setPw = button(t("adminUsers.setPassword"), "user-password-submit", async () => {
    const r = await attempt(pwOut, () => adminApi("POST", `/users/${u.id}/console-password`, { password: password.value }),
      (x) => t("adminUsers.passwordSet", { n: x.data.sessions_ended }), "password-ok");
    if (r) password.value = "";
  });
  return h("div", { class: "card" },
    h("h2", {}, t("adminUsers.account")),
    h("div", { class: "row" }, field(t("adminUsers.role"), role), field(t("adminUsers.group"), group), save, toggle),
    out,
    h("h2", {}, t("adminUsers.consolePassword")),
    muted(t("adminUsers.passwordHint")),
    h("div", { class: "row" }, field(t("adminUsers.newPassword"), password), setPw),
    pwOut);
}

// Two-factor: on or off (and the recovery codes left), and the admin's reset. One's own is
// turned off on the account settings page (with a code), so there is no button for it.
function twoFactorCard(u, ctx) {
  const shown = h("p", { "data-testid": "user-2fa-state" });
  const out = h("div");
  const own = Boolean(ctx && ctx.state && ctx.state.me && ctx.state.me.user && ctx.state.me.user.id === u.id);
  const reset = button(t("adminUsers.twoFactorReset"), "user-2fa-reset", async () => {
    if (!confirm(t("adminUsers.twoFactorConfirm", { name: u.username }))) return;
    const r = await attempt(out, () => adminApi("DELETE", `/users/${u.id}/console-two-factor`),
      (x) => x.data.was_on
        ? t("adminUsers.twoFactorDone", { codes: x.data.recovery_codes_deleted, n: x.data.sessions_ended })
        : t("adminUsers.twoFactorWasOff"), "user-2fa-ok");
    if (r) await load();
  }, "danger");
  reset.hidden = true;
  async function load() {
    const r = await attempt(shown, () => adminApi("GET", `/users/${u.id}/console-two-factor`), "");
    if (!r) return;
    const on = r.data.two_factor_enabled;
    shown.replaceChildren(on
      ? badge("active", t("adminUsers.twoFactorOn", { n: r.data.recovery_codes_left }))
      : badge("revoked", t("adminUsers.twoFactorOff")));
    reset.hidden = !on || own;
  }
  const card = h("div", { class: "card", "data-testid": "user-2fa" },
    h("h2", {}, t("adminUsers.twoFactor")), shown,
    muted(own ? t("adminUsers.twoFactorOwn") : t("adminUsers.twoFactorHint")),
    h("div", { class: "row" }, reset), out);
  return { card, load };
}

function keysCard(u) {
  const box = h("div");
  const out = h("div");
  async function load() {
    const keys = (await adminApi("GET", `/keys?user_id=${u.id}`)).data;
    clear(box);
    if (!keys.length) return box.append(muted(t("adminUsers.noKeys"), "user-no-keys"));
    box.append(table("user-keys",
      [t("adminUsers.keyName"), t("adminUsers.keyHint"), t("adminUsers.keyKind"), t("common.status"), t("adminAcc.created"), ""],
      keys.map((k) => h("tr", { "data-testid": `user-key-${k.id}` },
        h("td", {}, k.name || "—"), h("td", { class: "secret-hint" }, k.key_hint), h("td", {}, k.kind),
        h("td", {}, badge(k.status)), h("td", {}, formatTime(k.created_at)),
        h("td", {}, k.status === "revoked" ? "" : button(t("adminUsers.revoke"), `user-key-revoke-${k.id}`, async () => {
          if (!confirm(t("adminUsers.revokeConfirm", { name: k.name || k.key_hint }))) return;
          if (await attempt(out, () => adminApi("PATCH", `/keys/${k.id}`, { status: "revoked" }), "")) await load();
        }, "danger"))))));
  }
  return { card: h("div", { class: "card" }, h("h2", {}, t("adminUsers.keys")), out, box), load };
}

export async function render(ctx, root) {
  const q = input("user-search", { type: "search", maxlength: 64, placeholder: t("adminUsers.searchHint") });
  const body = h("tbody");
  const status = h("div");
  const more = button(t("adminAcc.more"), "user-more", () => load(false), "secondary");
  more.hidden = true;
  const detail = h("div", { "data-testid": "user-detail" });
  let after = null;
  let seq = 0;  // a newer load wins over an older one still in flight

  async function load(reset) {
    const params = new URLSearchParams({ limit: String(PAGE), balance: "1" });
    if (q.value.trim()) params.set("q", q.value.trim());
    if (!reset && after) params.set("after_id", String(after));
    const ticket = ++seq;
    const page = await attempt(status, () => adminApi("GET", `/users?${params}`), "");
    if (!page || ticket !== seq) return;
    if (reset) clear(body);
    body.append(...page.data.map((u) => userRow(u, open)));
    after = page.next_after_id;
    more.hidden = !page.has_more;
    if (reset && !page.data.length) status.append(muted(t("adminUsers.none"), "users-none"));
  }

  async function open(u) {
    clear(detail);
    const refresh = () => load(true);
    const bal = balanceCard(u, refresh);
    const keys = keysCard(u);
    const twoFactor = twoFactorCard(u, ctx);
    detail.append(h("h2", { "data-testid": "detail-name" }, t("adminUsers.detail", { name: u.username, id: u.id })),
      bal.card, accountCard(u, refresh, open), twoFactor.card, keys.card);
    await Promise.all([bal.loadLedger(), keys.load(), twoFactor.load()]);
    detail.scrollIntoView({ block: "start" });
  }

  const form = h("form", { class: "row", "data-testid": "user-search-form" },
    field(t("adminUsers.search"), q), h("button", { type: "submit", "data-testid": "user-search-submit" }, t("adminUsers.find")));
  form.addEventListener("submit", (e) => { e.preventDefault(); clear(detail); load(true); });
  root.append(h("h1", {}, t("nav.adminUsers")),
    h("div", { class: "card" }, form, status,
      table("user-table", [t("adminAcc.id"), t("adminUsers.name"), t("adminUsers.balance"), t("adminUsers.group"),
        t("adminUsers.role"), t("common.status"), ""], body), more),
    detail);
  await load(true);
}
