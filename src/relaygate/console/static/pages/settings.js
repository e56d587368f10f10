// Account settings: change the password, turn two-factor sign-in (TOTP) on or off (the
// set-up shows a QR code of the otpauth:// URI and the secret for typing by hand), the
// recovery codes: shown once when made, how many are left, made again; and the linked
// sign-in identities (GitHub, OpenID Connect): link one (the provider's flow comes back
// here with #/settings?link=<result> or ?link_error=<code>) or unlink it.
import { api } from "../api.js";
import { clear, field, formatTime, h, message } from "../dom.js";
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

// Recovery codes just made (on turning two-factor on, or made again): shown once, with
// copy and download; "I have saved them" lets the card go back to its usual state.
function savedCodes(ctx, codes, done) {
  const text = [t("twofactor.fileHeader", { user: ctx.state.me.user.username }), "", ...codes, ""].join("\n");
  const copy = h("button", { type: "button", class: "secondary", "data-testid": "recovery-copy" }, t("twofactor.copy"));
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(codes.join("\n"));
      copy.textContent = t("twofactor.copied");
    } catch {
      copy.textContent = t("twofactor.copyManually");
    }
  });
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  const download = h("a", { href: url, download: "relaygate-recovery-codes.txt",
    "data-testid": "recovery-download" }, t("twofactor.download"));
  const ok = h("button", { type: "button", "data-testid": "recovery-done" }, t("twofactor.done"));
  ok.addEventListener("click", () => { URL.revokeObjectURL(url); done(); });
  return h("div", { class: "card", "data-testid": "recovery-codes" },
    h("h2", {}, t("twofactor.savedTitle")),
    message("ok", t("twofactor.shownOnce")),
    h("div", { class: "secret codes", "data-testid": "recovery-list" }, codes.map((c) => h("div", {}, c))),
    h("div", { class: "row" }, copy, download, ok));
}

// How many recovery codes are left, and the form that makes new ones (the current
// password, or a 6-digit code of the app: a password is never 6 digits).
async function recoverySection(ctx, showCodes) {
  const out = h("div");
  const box = h("div", { class: "tool", "data-testid": "recovery-section" }, h("h3", {}, t("twofactor.recovery")),
    h("p", { class: "muted" }, t("twofactor.recoveryIntro")));
  try {
    const status = await api("GET", "/totp/recovery-codes");
    const left = h("p", { "data-testid": "recovery-left" }, t("twofactor.left", { left: status.left, total: status.total }));
    box.append(left);
    if (status.left === 0) box.append(message("error", t("twofactor.noneLeft"), "recovery-warning"));
    else if (status.left <= 3) box.append(message("error", t("twofactor.fewLeft", { left: status.left }), "recovery-warning"));
  } catch (err) {
    box.append(message("error", errorText(err)));
  }
  const proof = h("input", { type: "password", autocomplete: "current-password", required: true,
    maxlength: 128, "data-testid": "recovery-proof" });
  const form = h("form", { class: "stack" },
    field(t("twofactor.passwordOrCode"), proof),
    h("p", { class: "muted" }, t("twofactor.regenerateHint")),
    h("button", { type: "submit", class: "secondary", "data-testid": "recovery-regenerate" }, t("twofactor.regenerate")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(out);
    const value = proof.value.trim();
    const body = /^\d{6}$/.test(value) ? { code: value } : { password: proof.value };
    try {
      const made = await api("POST", "/totp/recovery-codes", body);
      showCodes(made.recovery_codes);
    } catch (err) {
      out.append(message("error", errorText(err)));
    }
  });
  box.append(form, out);
  return box;
}

async function totpCard(ctx, rerender, showCodes) {
  const out = h("div");
  const card = h("div", { class: "card", "data-testid": "totp-card" }, h("h2", {}, t("settings.totp")));
  if (ctx.state.me.totp_enabled) {
    const password = h("input", { type: "password", autocomplete: "current-password", required: true });
    const code = h("input", { autocomplete: "off", maxlength: 16, required: true, "data-testid": "totp-disable-code" });
    const form = h("form", { class: "stack" }, h("p", {}, t("twofactor.disableHint")),
      field(t("auth.password"), password), field(t("twofactor.codeOrRecovery"), code),
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
    card.append(h("p", { "data-testid": "totp-on" }, t("twofactor.on")),
      await recoverySection(ctx, showCodes), h("div", { class: "tool" }, form), out);
    return card;
  }
  const start = h("button", { type: "button", "data-testid": "totp-setup" }, t("settings.totpStart"));
  start.addEventListener("click", async () => {
    try {
      const setup = await api("POST", "/totp/setup");
      const code = h("input", { inputmode: "numeric", autocomplete: "one-time-code", maxlength: 6, required: true,
        "data-testid": "totp-confirm-code" });
      const form = h("form", { class: "stack" },
        h("p", {}, t("twofactor.scan")),
        h("img", { src: setup.qr_svg, alt: t("twofactor.qrAlt"), width: 200, height: 200,
          class: "qr", "data-testid": "totp-qr" }),
        h("p", { class: "muted" }, t("twofactor.manual")),
        h("div", { class: "secret", "data-testid": "totp-secret" }, setup.secret),
        h("details", {}, h("summary", { class: "muted" }, t("twofactor.uri")),
          h("div", { class: "secret", "data-testid": "totp-uri" }, setup.uri)),
        field(t("auth.totpCode"), code),
        h("button", { type: "submit", "data-testid": "totp-confirm" }, t("settings.totpConfirm")));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        try {
          const enabled = await api("POST", "/totp/enable", { code: code.value });
          await ctx.refreshMe();
          showCodes(enabled.recovery_codes);
        } catch (err) {
          clear(out).append(message("error", errorText(err)));
        }
      });
      start.replaceWith(form);
      code.focus();
    } catch (err) {
      clear(out).append(message("error", errorText(err)));
    }
  });
  card.append(h("p", {}, t("settings.totpOff")), start, out);
  return card;
}

// The result of a link the provider's flow came back with (then dropped from the address).
function linkResult() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const result = params.get("link");
  const failed = params.get("link_error");
  if (params.has("link") || params.has("link_error")) history.replaceState(null, "", "#/settings");
  if (result === "linked" || result === "already_linked") {
    return message("ok", t(`identities.${result}`), "link-result");
  }
  if (failed && /^[a-z_]{1,64}$/.test(failed)) {
    return message("error", errorText({ code: failed, message: t("identities.failed", { code: failed }) }),
      "link-result");
  }
  return null;
}

async function identitiesCard(rerender) {
  const out = h("div");
  const result = linkResult();
  const card = h("div", { class: "card", "data-testid": "identities-card" },
    h("h2", {}, t("identities.title")), h("p", { class: "muted" }, t("identities.intro")));
  let data;
  try {
    data = await api("GET", "/identities");
  } catch (err) {
    card.append(result || "", message("error", errorText(err)));
    return card;
  }
  const linked = new Map(data.identities.map((i) => [i.provider, i]));
  const shown = [...data.providers];
  for (const i of data.identities) {
    if (!shown.some((p) => p.id === i.provider)) shown.push({ id: i.provider, name: i.name });
  }
  if (!shown.length) {
    card.append(h("p", { "data-testid": "identities-none" }, t("identities.none")));
    return card;
  }
  const canLink = data.providers.some((p) => !linked.has(p.id));
  const password = data.has_password && canLink
    ? h("input", { type: "password", autocomplete: "current-password", maxlength: 128,
      "data-testid": "link-password" })
    : null;
  const linkedCount = data.identities.filter((i) => i.configured).length;
  const rows = shown.map((p) => {
    const ident = linked.get(p.id);
    const detail = ident
      ? t("identities.linkedAt", { when: formatTime(ident.linked_at) }) + (ident.email ? ` · ${ident.email}` : "")
      : t("identities.notLinked");
    let button;
    if (ident) {
      button = h("button", { type: "button", class: "secondary", "data-testid": `unlink-${p.id}` },
        t("identities.unlink"));
      if (!data.has_password && linkedCount <= 1 && ident.configured) {
        button.disabled = true;
        button.title = t("identities.lastWayIn");
      }
      button.addEventListener("click", async () => {
        clear(out);
        if (!confirm(t("identities.confirmUnlink", { name: p.name }))) return;
        try {
          await api("DELETE", `/identities/${encodeURIComponent(p.id)}`);
          rerender();
        } catch (err) {
          out.append(message("error", errorText(err)));
        }
      });
    } else {
      button = h("button", { type: "button", "data-testid": `link-${p.id}` }, t("identities.link", { name: p.name }));
      button.addEventListener("click", async () => {
        clear(out);
        if (password && !password.value) {
          out.append(message("error", t("identities.passwordNeeded")));
          password.focus();
          return;
        }
        button.disabled = true;
        try {
          const started = await api("POST", `/oauth/${encodeURIComponent(p.id)}/link`,
            password ? { password: password.value } : {});
          location.assign(started.url);
        } catch (err) {
          out.append(message("error", errorText(err)));
          button.disabled = false;
        }
      });
    }
    return h("div", { class: "row identity", "data-testid": `identity-${p.id}` },
      h("div", {}, h("strong", {}, p.name),
        h("div", { class: "muted", "data-testid": `identity-${p.id}-state` }, detail)),
      button);
  });
  card.append(...rows);
  if (password) {
    card.append(h("div", { class: "tool" }, field(t("identities.password"), password),
      h("p", { class: "muted" }, t("identities.passwordHint"))));
  }
  card.append(out);
  if (result) card.insertBefore(result, card.children[2] || null);
  return card;
}

export async function render(ctx, root, codes = null) {
  const rerender = () => { clear(root); render(ctx, root); };
  const showCodes = (made) => { clear(root); render(ctx, root, made); };
  const top = h("h1", {}, t("nav.settings"));
  if (codes) {
    // the new codes come first, alone: nothing else on the page until they are saved
    root.append(top, savedCodes(ctx, codes, rerender));
    return;
  }
  root.append(top, passwordCard(), await totpCard(ctx, rerender, showCodes), await identitiesCard(rerender));
}
