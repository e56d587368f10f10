// The console's entry point: language, session, layout and the #fragment router.
import { api, setCsrf } from "./api.js";
import { clear, h } from "./dom.js";
import { LANGUAGES, currentLanguage, loadLanguage, savedLanguage, t } from "./i18n.js";
import * as auth from "./pages/auth.js";
import * as dashboard from "./pages/dashboard.js";
import * as keys from "./pages/keys.js";
import * as logs from "./pages/logs.js";
import * as models from "./pages/models.js";
import * as quickstart from "./pages/quickstart.js";
import * as redeem from "./pages/redeem.js";
import * as settings from "./pages/settings.js";
import { PAGES as EXTRA_PAGES } from "./pages/extras.js";
import { PAGES as ADMIN_OPS } from "./pages/admin/ops.js";
import { PAGES as ADMIN_ACCOUNTS } from "./pages/admin/accounts.js";
import { PAGES as ADMIN_CONFIG } from "./pages/admin/config.js";

const PAGES = {
  "/": { page: dashboard, title: "nav.dashboard" },
  "/keys": { page: keys, title: "nav.keys" },
  "/logs": { page: logs, title: "nav.logs" },
  "/models": { page: models, title: "nav.models" },
  "/redeem": { page: redeem, title: "nav.redeem" },
  "/quickstart": { page: quickstart, title: "nav.quickstart" },
  "/settings": { page: settings, title: "nav.settings" },
  ...EXTRA_PAGES,
};
// shown to admins only (the server refuses everyone else: admin_bridge.py)
const ADMIN_PAGES = { ...ADMIN_OPS, ...ADMIN_ACCOUNTS, ...ADMIN_CONFIG };

function isAdmin() {
  return Boolean(state.me && state.me.user && state.me.user.role === "admin");
}

function pageFor(path) {
  if (PAGES[path]) return PAGES[path];
  if (isAdmin() && ADMIN_PAGES[path]) return ADMIN_PAGES[path];
  return null;
}

function testId(path) {
  return path.slice(1).replace(/\//g, "-") || "dashboard";
}
const PUBLIC = { "/sign-in": "signin", "/sign-up": "signup" };

const state = { me: null, config: { signup: true, currency: "" } };

function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  return raw.split("?")[0];
}

export function go(path) {
  if (location.hash === `#${path}`) render();
  else location.hash = path;
}

async function refreshMe() {
  try {
    state.me = await api("GET", "/me");
    setCsrf(state.me.csrf_token);
  } catch (err) {
    state.me = null;
    setCsrf("");
    if (err.status !== 401) throw err;
  }
  return state.me;
}

function languageSwitch() {
  const select = h(
    "select",
    { "aria-label": t("common.language"), "data-testid": "language",
      onchange: async (e) => { await loadLanguage(e.target.value); render(); } },
    LANGUAGES.map((l) => h("option", { value: l.code, selected: l.code === currentLanguage() }, l.label)),
  );
  return select;
}

async function signOut() {
  try {
    await api("POST", "/sign-out");
  } finally {
    state.me = null;
    setCsrf("");
    go("/sign-in");
  }
}

function layout(path, content) {
  const user = state.me.user;
  const link = ([p, info]) =>
    h("a", { href: `#${p}`, class: p === path ? "active" : "", "data-testid": `nav-${testId(p)}` },
      t(info.title));
  const admin = isAdmin() && Object.keys(ADMIN_PAGES).length
    ? [h("div", { class: "menu-group", "data-testid": "nav-admin" }, t("nav.admin")),
       ...Object.entries(ADMIN_PAGES).map(link)]
    : [];
  const nav = h("nav", { class: "menu", "aria-label": t("nav.menu") },
    Object.entries(PAGES).map(link), admin);
  return [
    h("header", { class: "top" },
      h("span", { class: "brand" }, "relaygate"),
      h("div", { class: "tools" },
        languageSwitch(),
        h("span", { class: "muted", "data-testid": "whoami" }, user.username),
        h("button", { class: "secondary", "data-testid": "sign-out", onclick: signOut }, t("nav.signOut")))),
    h("div", { class: "layout" }, nav, h("main", {}, content)),
  ];
}

let rendering = 0;
async function render() {
  const root = document.getElementById("app");
  const ticket = ++rendering;
  const path = route();
  const ctx = { state, go, refreshMe, t };
  if (PUBLIC[path]) {
    if (state.me) return go("/");
    const view = await auth.render(ctx, PUBLIC[path], languageSwitch());
    if (ticket === rendering) clear(root).append(view);
    return;
  }
  if (!state.me) return go("/sign-in");
  const found = pageFor(path);
  const info = found || PAGES["/"];
  const shown = found ? path : "/";
  document.title = `${t(info.title)} · relaygate`;
  const content = h("div", { "data-testid": `page-${testId(shown)}` });
  clear(root).append(...layout(shown, content));
  try {
    await info.page.render(ctx, content);
  } catch (err) {
    if (err.status === 401) {
      state.me = null;
      return go("/sign-in");
    }
    content.append(h("div", { class: "msg error", role: "alert" }, err.message || String(err)));
  }
}

async function boot() {
  await loadLanguage(savedLanguage());
  try {
    state.config = await api("GET", "/config");
  } catch {
    /* keep the defaults */
  }
  await refreshMe();
  window.addEventListener("hashchange", render);
  await render();
}

boot();
