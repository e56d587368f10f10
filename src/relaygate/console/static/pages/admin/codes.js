// Admin: redemption codes. Generate a batch (money or a plan, count, expiry); the codes are
// shown in full only right after generating and in the batch's CSV export (what operators
// hand out); the list shows each code shortened, with its status, and can disable an unused
// code.
import { adminApi, adminUrl } from "../../api.js";
import { clear, field, formatTime, h } from "../../dom.js";
import { t } from "../../i18n.js";
import { attempt, badge, button, input, isoOrNull, muted, select, table } from "./acc-kit.js";

const PAGE = 100;
const STATUSES = ["unused", "used", "disabled", "expired"];

function short(code) {
  return code.length > 10 ? `${code.slice(0, 5)}…${code.slice(-4)}` : code;
}

function exportLink(batch, testid) {
  return h("a", { href: adminUrl(`/codes.csv?batch=${encodeURIComponent(batch)}`), download: "",
    "data-testid": testid }, t("adminCodes.export"));
}

function generated(r) {
  const all = r.codes.join("\n");
  const copy = button(t("adminCodes.copy"), "codes-copy", async () => {
    try {
      await navigator.clipboard.writeText(all);
      copy.textContent = t("adminCodes.copied");
    } catch {
      copy.textContent = t("adminCodes.copyManually");
    }
  }, "secondary");
  return h("div", { class: "card", "data-testid": "codes-generated" },
    h("h2", {}, t("adminCodes.made", { n: r.count, batch: r.batch })),
    muted(t("adminCodes.shownHere")),
    h("div", { class: "secret", "data-testid": "codes-new" }, r.codes.map((c) => h("div", {}, c))),
    h("div", { class: "row" }, copy, exportLink(r.batch, "codes-export-new")));
}

export async function render(ctx, root) {
  const made = h("div");
  const out = h("div");
  const count = input("code-count", { type: "number", min: 1, max: 10000, value: "10" });
  const type = select("code-type", [["money", t("adminCodes.money")], ["plan", t("adminCodes.plan")]], "money");
  const amount = input("code-amount", { inputmode: "decimal", placeholder: "10" });
  const plan = h("select", { "data-testid": "code-plan" });
  const batch = input("code-batch", { maxlength: 64, placeholder: t("adminCodes.batchHint") });
  const prefix = input("code-prefix", { maxlength: 8, value: "RG" });
  const expires = input("code-expires", { type: "datetime-local" });
  const amountField = field(t("adminCodes.amount"), amount);
  const planField = field(t("adminCodes.plan"), plan);
  planField.hidden = true;
  type.addEventListener("change", () => {
    amountField.hidden = type.value !== "money";
    planField.hidden = type.value !== "plan";
  });

  const form = h("form", { class: "stack", "data-testid": "code-form" },
    h("div", { class: "row" }, field(t("adminCodes.count"), count), field(t("adminCodes.type"), type), amountField, planField),
    h("div", { class: "row" }, field(t("adminCodes.batch"), batch), field(t("adminCodes.prefix"), prefix),
      field(t("adminCodes.expires"), expires)),
    h("div", { class: "row" }, h("button", { type: "submit", "data-testid": "code-generate" }, t("adminCodes.generate"))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(made);
    const b = { count: Number(count.value), prefix: prefix.value.trim() || "RG" };
    if (type.value === "money") b.amount = amount.value.trim();
    else b.plan_id = Number(plan.value);
    if (batch.value.trim()) b.batch = batch.value.trim();
    const exp = isoOrNull(expires.value);
    if (exp) b.expires_at = exp;
    const r = await attempt(out, () => adminApi("POST", "/codes", b), "");
    if (r) {
      made.append(generated(r.data));
      filterBatch.value = r.data.batch;
      await load(true);
    }
  });

  // the list
  const filterBatch = input("code-filter-batch", { maxlength: 64 });
  const filterStatus = select("code-filter-status", [["", t("adminCodes.anyStatus")], ...STATUSES.map((s) => [s, t(`adminCodes.status.${s}`)])], "");
  const listOut = h("div");
  const body = h("tbody");
  const more = button(t("adminAcc.more"), "code-more", () => load(false), "secondary");
  more.hidden = true;
  const exportBox = h("span");
  let before = null;
  let seq = 0;  // a newer load wins over an older one still in flight

  async function disable(c) {
    if (await attempt(listOut, () => adminApi("PATCH", `/codes/${c.id}`, { status: "disabled" }), "")) await load(true);
  }

  function row(c) {
    return h("tr", { "data-testid": "code-row" },
      h("td", { class: "secret-hint", "data-testid": "code-short" }, short(c.code)),
      h("td", {}, c.plan_id ? t("adminCodes.planN", { id: c.plan_id }) : c.amount),
      h("td", {}, c.batch),
      h("td", { "data-testid": "code-status" }, badge(c.status === "unused" ? "active" : c.status === "used" ? "ok" : "revoked", t(`adminCodes.status.${c.status}`))),
      h("td", {}, c.expires_at ? formatTime(c.expires_at) : "—"),
      h("td", {}, c.used_by ?? "—"),
      h("td", {}, c.used_at ? formatTime(c.used_at) : "—"),
      h("td", {}, c.status === "unused" ? button(t("adminCodes.disable"), `code-disable-${c.id}`, () => disable(c), "danger") : ""));
  }

  async function load(reset) {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (filterBatch.value.trim()) params.set("batch", filterBatch.value.trim());
    if (filterStatus.value) params.set("status", filterStatus.value);
    if (!reset && before) params.set("before_id", String(before));
    clear(exportBox);
    if (params.has("batch")) exportBox.append(exportLink(params.get("batch"), "codes-export"));
    const ticket = ++seq;
    const got = await attempt(listOut, () => adminApi("GET", `/codes?${params}`), "");
    if (!got || ticket !== seq) return;
    if (reset) clear(body);
    body.append(...got.data.map(row));
    before = got.data.length === PAGE ? got.data[got.data.length - 1].id : null;
    more.hidden = !before;
    if (reset && !got.data.length) listOut.append(muted(t("adminCodes.none"), "codes-none"));
  }

  const filter = h("form", { class: "row", "data-testid": "code-filter-form" },
    field(t("adminCodes.batch"), filterBatch), field(t("common.status"), filterStatus),
    h("button", { type: "submit", "data-testid": "code-filter" }, t("adminAcc.filter")), exportBox);
  filter.addEventListener("submit", (e) => { e.preventDefault(); load(true); });

  const plans = await adminApi("GET", "/plans").catch(() => ({ data: [] }));
  plan.append(...plans.data.filter((p) => p.status === "active").map((p) => h("option", { value: p.id }, p.name)));

  root.append(h("h1", {}, t("nav.adminCodes")),
    h("div", { class: "card" }, h("h2", {}, t("adminCodes.new")), form, out),
    made,
    h("div", { class: "card" }, h("h2", {}, t("adminCodes.list")), muted(t("adminCodes.exportHint")), filter, listOut,
      table("code-table", [t("adminCodes.code"), t("adminCodes.value"), t("adminCodes.batch"), t("common.status"),
        t("adminCodes.expires"), t("adminCodes.usedBy"), t("adminCodes.usedAt"), ""], body), more));
  await load(true);
}
