// Redeem a code: money on the balance, or a package.
import { api } from "../api.js";
import { clear, field, h, message } from "../dom.js";
import { errorText, t } from "../i18n.js";

export async function render(ctx, root) {
  const code = h("input", { name: "code", autocomplete: "off", required: true, maxlength: 64, "data-testid": "redeem-code" });
  const out = h("div");
  const form = h("form", { class: "stack", "data-testid": "redeem-form" },
    field(t("redeem.code"), code),
    h("button", { type: "submit", "data-testid": "redeem-submit" }, t("redeem.submit")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(out);
    try {
      const r = await api("POST", "/redeem", { code: code.value });
      const text = r.credited === "plan"
        ? t("redeem.gotPlan", { plan: r.package ? r.package.plan_name : "" })
        : t("redeem.gotMoney", { amount: r.amount, balance: r.balance });
      out.append(message("ok", text, "redeem-ok"));
      form.reset();
    } catch (err) {
      out.append(message("error", errorText(err), "redeem-error"));
    }
  });
  root.append(h("h1", {}, t("nav.redeem")), h("div", { class: "card" }, form, out));
}
