// Sign in (with the TOTP step when two-factor is on) and sign up.
import { api } from "../api.js";
import { field, h, message } from "../dom.js";
import { errorText, t } from "../i18n.js";

function submitting(form, busy) {
  for (const el of form.querySelectorAll("button, input")) el.disabled = busy;
}

function totpStep(ctx, ticket, box) {
  const code = h("input", { name: "code", inputmode: "numeric", autocomplete: "one-time-code",
    maxlength: 6, required: true, "data-testid": "totp-code" });
  const form = h("form", { class: "stack", "data-testid": "totp-form" },
    h("p", {}, t("auth.totpPrompt")),
    field(t("auth.totpCode"), code),
    h("button", { type: "submit" }, t("auth.verify")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submitting(form, true);
    try {
      await api("POST", "/sign-in/totp", { ticket, code: code.value });
      await ctx.refreshMe();
      ctx.go("/");
    } catch (err) {
      form.prepend(message("error", errorText(err)));
      submitting(form, false);
    }
  });
  box.replaceChildren(form);
  code.focus();
}

export async function render(ctx, mode, languageSwitch) {
  const signup = mode === "signup";
  const username = h("input", { name: "username", autocomplete: "username", required: true,
    maxlength: signup ? 32 : 64, "data-testid": "username" });
  const password = h("input", { name: "password", type: "password", required: true,
    autocomplete: signup ? "new-password" : "current-password", maxlength: 128, "data-testid": "password" });
  const box = h("div");
  const form = h("form", { class: "stack", "data-testid": signup ? "signup-form" : "signin-form" },
    field(t("auth.username"), username),
    field(t("auth.password"), password),
    signup ? h("p", { class: "muted" }, t("auth.passwordRule")) : null,
    h("button", { type: "submit", "data-testid": "submit" }, signup ? t("auth.signUp") : t("auth.signIn")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const old of form.querySelectorAll(".msg")) old.remove();
    submitting(form, true);
    try {
      const body = { username: username.value.trim(), password: password.value };
      if (signup) {
        await api("POST", "/sign-up", body);
      } else {
        const result = await api("POST", "/sign-in", body);
        if (result.totp_required) return totpStep(ctx, result.ticket, box);
      }
      await ctx.refreshMe();
      ctx.go("/");
    } catch (err) {
      form.prepend(message("error", errorText(err)));
      submitting(form, false);
    }
  });
  box.append(form);
  const other = signup
    ? h("p", {}, t("auth.haveAccount"), " ", h("a", { href: "#/sign-in" }, t("auth.signIn")))
    : ctx.state.config.signup
      ? h("p", {}, t("auth.noAccount"), " ", h("a", { href: "#/sign-up", "data-testid": "to-signup" }, t("auth.signUp")))
      : h("p", { class: "muted" }, t("auth.signupClosed"));
  if (signup && !ctx.state.config.signup) {
    box.replaceChildren(message("error", t("auth.signupClosed")));
  }
  return h("div", { class: "auth" },
    h("div", { class: "row" }, h("h1", {}, "relaygate"), languageSwitch),
    h("div", { class: "card" }, h("h2", {}, signup ? t("auth.signUp") : t("auth.signIn")), box, other));
}
