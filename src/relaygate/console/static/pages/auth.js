// Sign in (with the TOTP step when two-factor is on) and sign up; the buttons of the
// external sign-in providers (GitHub, OpenID Connect), whose flow comes back here with
// #/sign-in?error=<code> or, for a two-factor account, #/sign-in?totp=oauth.
import { api } from "../api.js";
import { field, h, message } from "../dom.js";
import { errorText, t } from "../i18n.js";

function submitting(form, busy) {
  for (const el of form.querySelectorAll("button, input")) el.disabled = busy;
}

// The TOTP step: after a password (the ticket is in the answer) or after an external
// provider (the ticket is in an HttpOnly cookie, sent to /oauth/totp). A recovery code is
// accepted in the same field; "Use a recovery code" switches the field to letters.
function totpStep(ctx, ticket, box) {
  const code = h("input", { name: "code", inputmode: "numeric", autocomplete: "one-time-code",
    maxlength: 6, required: true, "data-testid": "totp-code" });
  const label = h("span", {}, t("auth.totpCode"));
  let recovery = false;
  const toggle = h("button", { type: "button", class: "secondary", "data-testid": "totp-use-recovery" },
    t("twofactor.useRecovery"));
  toggle.addEventListener("click", () => {
    recovery = !recovery;
    code.setAttribute("inputmode", recovery ? "text" : "numeric");
    code.setAttribute("autocomplete", recovery ? "off" : "one-time-code");
    code.setAttribute("maxlength", recovery ? "16" : "6");
    code.setAttribute("autocapitalize", "off");
    code.value = "";
    label.textContent = recovery ? t("twofactor.recoveryCode") : t("auth.totpCode");
    toggle.textContent = recovery ? t("twofactor.useApp") : t("twofactor.useRecovery");
    code.focus();
  });
  const form = h("form", { class: "stack", "data-testid": "totp-form" },
    h("p", {}, ticket ? t("auth.totpPrompt") : t("oauth.totpPrompt")),
    h("p", { class: "muted", "data-testid": "totp-recovery-hint" }, t("twofactor.signinHint")),
    h("label", {}, label, code),
    h("button", { type: "submit", "data-testid": "totp-submit" }, t("auth.verify")),
    toggle);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submitting(form, true);
    try {
      if (ticket) await api("POST", "/sign-in/totp", { ticket, code: code.value });
      else await api("POST", "/oauth/totp", { code: code.value });
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

function hashParams() {
  return new URLSearchParams(location.hash.split("?")[1] || "");
}

function providerButtons(ctx) {
  const providers = ctx.state.config.oauth_providers || [];
  if (!providers.length) return null;
  return h("div", { class: "stack", "data-testid": "oauth-providers" },
    h("p", { class: "muted" }, t("oauth.or")),
    providers.map((p) => h("button", {
      type: "button", class: "secondary", "data-testid": `oauth-${p.id}`,
      onclick: () => location.assign(`/console/api/oauth/${encodeURIComponent(p.id)}/start`),
    }, t("oauth.signInWith", { name: p.name }))));
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
  const params = hashParams();
  const failed = params.get("error");
  if (failed && /^[a-z_]{1,64}$/.test(failed)) {
    form.prepend(message("error", errorText({ code: failed, message: t("oauth.failed", { code: failed }) }),
      "oauth-error"));
  }
  if (params.has("error") || params.has("totp")) history.replaceState(null, "", "#/sign-in");
  if (!signup && params.get("totp") === "oauth") totpStep(ctx, null, box);
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
    h("div", { class: "card" }, h("h2", {}, signup ? t("auth.signUp") : t("auth.signIn")), box,
      signup && !ctx.state.config.signup ? null : providerButtons(ctx), other));
}
