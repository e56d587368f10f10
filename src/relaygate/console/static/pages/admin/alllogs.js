// Admin: every user's request logs, filtered by user (name or id), key, model, channel,
// status and time, newest first, paged by cursor; the same filters export CSV (streamed).
import { adminApi, adminUrl, modelNames } from "../../api.js";
import { clear, field, formatTime, h } from "../../dom.js";
import { t } from "../../i18n.js";
import { attempt, badge, button, input, isoOrNull, muted, select, table } from "./acc-kit.js";

function row(r) {
  return h("tr", { "data-testid": "all-log-row" },
    h("td", {}, formatTime(r.created_at)),
    h("td", { "data-testid": "all-log-user" }, r.user_id ?? "—"),
    h("td", {}, r.key_id ?? "—"),
    h("td", { "data-testid": "all-log-model" }, r.model || "—"),
    h("td", {}, r.channel_id ?? "—"),
    h("td", {}, r.endpoint),
    h("td", {}, badge(r.status < 400 ? "ok" : "error", String(r.status)), r.error_code ? ` ${r.error_code}` : ""),
    h("td", {}, String(r.prompt_tokens)),
    h("td", {}, String(r.completion_tokens)),
    h("td", { "data-testid": "all-log-cost" }, r.cost),
    h("td", {}, `${r.latency_ms} ms`));
}

// A user typed by name becomes its id (the log filter takes ids).
async function userId(text) {
  if (/^\d+$/.test(text)) return text;
  const found = (await adminApi("GET", `/users?q=${encodeURIComponent(text)}&limit=50`)).data;
  const user = found.find((u) => u.username.toLowerCase() === text.toLowerCase());
  if (!user) throw new Error(t("adminPlans.noSuchUser", { name: text }));
  return String(user.id);
}

export async function render(ctx, root) {
  const models = await modelNames();
  const user = input("all-log-filter-user", { maxlength: 64, placeholder: t("adminLogs.userHint") });
  const key = input("all-log-filter-key", { inputmode: "numeric" });
  const model = input("all-log-filter-model", { list: "all-log-models", maxlength: 128 });
  const channel = input("all-log-filter-channel", { inputmode: "numeric" });
  const status = select("all-log-filter-status", [["", t("adminLogs.anyStatus")], ["ok", t("adminLogs.ok")], ["error", t("adminLogs.error")]], "");
  const start = input("all-log-filter-start", { type: "datetime-local" });
  const end = input("all-log-filter-end", { type: "datetime-local" });
  const datalist = h("datalist", { id: "all-log-models" }, models.map((m) => h("option", { value: m })));
  const body = h("tbody");
  const out = h("div");
  const more = button(t("adminAcc.more"), "all-log-more", () => load(false), "secondary");
  more.hidden = true;
  const exportLink = h("a", { href: adminUrl("/logs.csv"), download: "request-logs.csv", "data-testid": "all-log-export" }, t("adminLogs.export"));
  let cursor = null;
  let seq = 0;  // a newer load wins over an older one still in flight
  let filters = new URLSearchParams();

  async function readFilters() {
    const f = new URLSearchParams();
    if (user.value.trim()) f.set("user_id", await userId(user.value.trim()));
    if (key.value.trim()) f.set("key_id", key.value.trim());
    if (model.value.trim()) f.set("model", model.value.trim());
    if (channel.value.trim()) f.set("channel_id", channel.value.trim());
    if (status.value) f.set("status", status.value);
    if (start.value) f.set("start", isoOrNull(start.value));
    if (end.value) f.set("end", isoOrNull(end.value));
    return f;
  }

  async function load(reset) {
    const ticket = ++seq;
    const got = await attempt(out, async () => {
      if (reset) filters = await readFilters();
      const q = new URLSearchParams(filters);
      q.set("limit", "50");
      if (!reset && cursor) q.set("cursor", cursor);
      return adminApi("GET", `/logs?${q}`);
    }, "");
    if (!got || ticket !== seq) return;
    exportLink.href = adminUrl(`/logs.csv${filters.toString() ? `?${filters}` : ""}`);
    if (reset) clear(body);
    body.append(...got.data.map(row));
    cursor = got.next_cursor;
    more.hidden = !cursor;
    if (reset && !got.data.length) out.append(muted(t("adminLogs.none"), "all-log-none"));
  }

  const form = h("form", { class: "stack", "data-testid": "all-log-filter" },
    h("div", { class: "row" }, field(t("adminLogs.user"), user), field(t("adminLogs.key"), key),
      field(t("adminLogs.model"), model), field(t("adminLogs.channel"), channel)),
    h("div", { class: "row" }, field(t("common.status"), status), field(t("adminLogs.start"), start), field(t("adminLogs.end"), end)),
    datalist,
    h("div", { class: "row" }, h("button", { type: "submit", "data-testid": "all-log-apply" }, t("adminAcc.filter")), exportLink));
  form.addEventListener("submit", (e) => { e.preventDefault(); load(true); });

  root.append(h("h1", {}, t("nav.adminLogs")),
    h("div", { class: "card" }, form),
    h("div", { class: "card" }, out,
      table("all-log-table", [t("adminAcc.time"), t("adminLogs.user"), t("adminLogs.key"), t("adminLogs.model"),
        t("adminLogs.channel"), t("adminLogs.endpoint"), t("common.status"), t("adminLogs.prompt"),
        t("adminLogs.completion"), t("adminLogs.cost"), t("adminLogs.latency")], body), more));
  await load(true);
}
