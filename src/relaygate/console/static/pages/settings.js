// Account settings: change the password, turn two-factor sign-in (TOTP) on or off.
import { api } from "../api.js";
import { clear, field, h, message } from "../dom.js";
import { errorText, t } from "../i18n.js";

function passwordCard() {
  const current = h("input", { type: "password", autocomplete: "current-password", required: true });
  const next = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: 8, maxlength: 128 });
  const out = h("div");
  const form = h("form", { class: "stack" },
    field(t("settings.currentPassword"), current), field(t("settings.newPassword"), next),
    h("button", { type: "submit" }, t("settings.changePassword")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(out);
    try {
      await api("POST", "/password", { current_password: current.value, new_password: next.value });
      out.append(message("ok", t("settings.passwordChanged")));
      form.reset();
    } catch (err) {
      out.append(message("error", errorText(err)));
    }
  });
  return h("div", { class: "card" }, h("h2", {}, t("settings.password")), form, out);
}

function totpCard(ctx, rerender) {
  const out = h("div");
  const card = h("div", { class: "card", "data-testid": "totp-card" }, h("h2", {}, t("settings.totp")));
  if (ctx.state.me.totp_enabled) {
    const password = h("input", { type: "password", autocomplete: "current-password", required: true });
    const code = h("input", { inputmode: "numeric", maxlength: 6, required: true });
    const form = h("form", { class: "stack" }, h("p", {}, t("settings.totpOn")),
      field(t("auth.password"), password), field(t("auth.totpCode"), code),
      h("button", { type: "submit", class: "danger" }, t("settings.totpDisable")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await api("POST", "/totp/disable", { password: password.value, code: code.value });
        await ctx.refreshMe();
        rerender();
      } catch (err) {
        clear(out).append(message("error", errorText(err)));
      }
    });
    card.append(form, out);
    return card;
  }
  const start = h("button", { type: "button", "data-testid": "totp-setup" }, t("settings.totpStart"));
  start.addEventListener("click", async () => {
    try {
      const setup = await api("POST", "/totp/setup");
      const code = h("input", { inputmode: "numeric", maxlength: 6, required: true, "data-testid": "totp-confirm-code" });
      const form = h("form", { class: "stack" },
        h("p", {}, t("settings.totpScan")),
        h("div", { class: "secret", "data-testid": "totp-secret" }, setup.secret),
        h("p", { class: "muted" }, setup.uri),
        field(t("auth.totpCode"), code),
        h("button", { type: "submit" }, t("settings.totpConfirm")));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        try {
          await api("POST", "/totp/enable", { code: code.value });
          await ctx.refreshMe();
          rerender();
        } catch (err) {
          clear(out).append(message("error", errorText(err)));
        }
      });
      start.replaceWith(form);
    } catch (err) {
      clear(out).append(message("error", errorText(err)));
    }
  });
  card.append(h("p", {}, t("settings.totpOff")), start, out);
  return card;
}

export async function render(ctx, root) {
  const rerender = () => { clear(root); render(ctx, root); };
  root.append(h("h1", {}, t("nav.settings")), passwordCard(), totpCard(ctx, rerender));
}
