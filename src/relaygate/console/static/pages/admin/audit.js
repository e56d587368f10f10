// Admin: the admin audit log — who did what (method, path, status, the names of the fields
// sent, never their values), through the console or the admin API; newest first, paged,
// filtered by the acting admin.
import { adminApi } from "../../api.js";
import { clear, field, formatTime, h } from "../../dom.js";
import { t } from "../../i18n.js";
import { attempt, badge, button, input, muted, table } from "./acc-kit.js";

export async function render(ctx, root) {
  const actor = input("audit-filter-actor", { maxlength: 64, placeholder: t("adminAudit.actorHint") });
  const path = input("audit-filter-path", { maxlength: 256, placeholder: "/console/api/admin/users" });
  const body = h("tbody");
  const out = h("div");
  const more = button(t("adminAcc.more"), "audit-more", () => load(false), "secondary");
  more.hidden = true;
  let before = null;
  let seq = 0;  // a newer load wins over an older one still in flight

  async function actorId(text) {
    if (/^\d+$/.test(text)) return text;
    const found = (await adminApi("GET", `/users?q=${encodeURIComponent(text)}&limit=50`)).data;
    const user = found.find((u) => u.username.toLowerCase() === text.toLowerCase());
    if (!user) throw new Error(t("adminPlans.noSuchUser", { name: text }));
    return String(user.id);
  }

  async function load(reset) {
    const ticket = ++seq;
    const got = await attempt(out, async () => {
      const q = new URLSearchParams({ limit: "50" });
      if (actor.value.trim()) q.set("actor_id", await actorId(actor.value.trim()));
      if (path.value.trim()) q.set("path", path.value.trim());
      if (!reset && before) q.set("before", String(before));
      return adminApi("GET", `/audit?${q}`);
    }, "");
    if (!got || ticket !== seq) return;
    if (reset) clear(body);
    body.append(...got.data.map((a) => h("tr", { "data-testid": "audit-row" },
      h("td", {}, formatTime(a.created_at)),
      h("td", { "data-testid": "audit-actor" }, a.actor || String(a.actor_id ?? "—")),
      h("td", {}, t(`adminAudit.via.${a.via}`)),
      h("td", { "data-testid": "audit-method" }, a.method),
      h("td", { "data-testid": "audit-path" }, a.path),
      h("td", {}, badge(a.status < 400 ? "ok" : "error", String(a.status))),
      h("td", { "data-testid": "audit-fields" }, a.fields.join(", ") || "—"),
      h("td", {}, a.ip || "—"))));
    before = got.has_more && got.data.length ? got.data[got.data.length - 1].id : null;
    more.hidden = !before;
    if (reset && !got.data.length) out.append(muted(t("adminAudit.none"), "audit-none"));
  }

  const form = h("form", { class: "row", "data-testid": "audit-filter" },
    field(t("adminAudit.actor"), actor), field(t("adminAudit.path"), path),
    h("button", { type: "submit", "data-testid": "audit-apply" }, t("adminAcc.filter")));
  form.addEventListener("submit", (e) => { e.preventDefault(); load(true); });
  root.append(h("h1", {}, t("nav.adminAudit")), muted(t("adminAudit.intro")),
    h("div", { class: "card" }, form),
    h("div", { class: "card" }, out,
      table("audit-table", [t("adminAcc.time"), t("adminAudit.actor"), t("adminAudit.viaLabel"), t("adminAudit.method"),
        t("adminAudit.path"), t("common.status"), t("adminAudit.fields"), t("adminAudit.ip")], body), more));
  await load(true);
}
