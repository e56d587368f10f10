// Balance, usage this month and the packages with what is left of them.
import { api } from "../api.js";
import { formatTime, h } from "../dom.js";
import { t } from "../i18n.js";

function stat(label, value, testid) {
  return h("div", { class: "card stat" },
    h("div", { class: "label" }, label),
    h("div", { class: "value", "data-testid": testid }, value));
}

function remaining(p) {
  if (p.remaining === null || p.remaining === undefined) return t("dash.unlimited");
  return p.kind === "counts" ? t("dash.countsLeft", { n: p.remaining }) : String(p.remaining);
}

export async function render(ctx, root) {
  const acc = await api("GET", "/account");
  const cur = acc.currency;
  root.append(
    h("h1", {}, t("nav.dashboard")),
    h("div", { class: "grid" },
      stat(t("dash.balance"), `${acc.balance} ${cur}`, "balance"),
      stat(t("dash.usedThisMonth"), `${acc.usage_this_month.cost} ${cur}`, "used-month"),
      stat(t("dash.packages"), String(acc.packages.length), "package-count")),
  );
  const card = h("div", { class: "card" }, h("h2", {}, t("dash.packages")));
  if (!acc.packages.length) {
    card.append(h("p", { class: "muted", "data-testid": "no-packages" }, t("dash.noPackages")));
  } else {
    card.append(h("div", { class: "table-wrap" }, h("table", { "data-testid": "packages" },
      h("thead", {}, h("tr", {},
        [t("dash.plan"), t("dash.kind"), t("dash.remaining"), t("dash.periodEnd"), t("dash.expires"), t("common.status")]
          .map((x) => h("th", {}, x)))),
      h("tbody", {}, acc.packages.map((p) => h("tr", {},
        h("td", {}, p.plan_name),
        h("td", {}, t(`dash.kind.${p.kind}`)),
        h("td", {}, remaining(p)),
        h("td", {}, formatTime(p.period_end)),
        h("td", {}, p.expires_at ? formatTime(p.expires_at) : t("dash.never")),
        h("td", {}, h("span", { class: `badge ${p.status}` }, p.status))))))));
  }
  root.append(card,
    h("p", {}, h("a", { href: "#/keys" }, t("dash.toKeys")), " · ",
      h("a", { href: "#/quickstart" }, t("nav.quickstart"))));
}
