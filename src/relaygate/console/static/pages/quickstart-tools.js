// Quick start, per tool: where each chat app, translator or bot takes the gateway's address
// and which key kind to use. The facts behind it are in docs/console.md ("Quick start: tool
// set-up"); every text is in i18n/parts/quickstart-tools.<code>.json.
import { h } from "../dom.js";
import { t } from "../i18n.js";

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = t("qt.copied");
  } catch {
    button.textContent = t("qt.copyManually");
  }
}

// key: "personal" (zp-…, one person in an app) or "api" (zk-…, a server or bot)
function tools(origin, base) {
  const key = "YOUR_KEY";
  return [
    { slug: "nextchat", name: "ChatGPT-Next-Web (NextChat)", key: "personal", steps: 3,
      snippet: `OPENAI_API_KEY=${key}\nBASE_URL=${origin}\nCUSTOM_MODELS=+gpt-4o-mini` },
    { slug: "chatbox", name: "Chatbox", key: "personal", steps: 3 },
    { slug: "immersive-translate", name: t("qt.immersive-translate.name"), key: "personal", steps: 4 },
    { slug: "openai-translator", name: "OpenAI Translator", key: "personal", steps: 3 },
    { slug: "gpt-academic", name: t("qt.gpt-academic.name"), key: "personal", steps: 3,
      snippet: `API_KEY = "${key}"\nCUSTOM_API_KEY_PATTERN = "^zp-.+$"\nLLM_MODEL = "gpt-4o-mini"\n` +
        `API_URL_REDIRECT = {\n` +
        `    "https://api.openai.com/v1/chat/completions": "${base}/chat/completions"\n}` },
    { slug: "chatgpt-on-wechat", name: "chatgpt-on-wechat", key: "api", steps: 3,
      snippet: `{\n  "model": "gpt-4o-mini",\n  "open_ai_api_key": "${key}",\n` +
        `  "open_ai_api_base": "${base}"\n}` },
    { slug: "fastgpt", name: "FastGPT", key: "api", steps: 3,
      snippet: `OPENAI_BASE_URL=${base}\nCHAT_API_KEY=${key}` },
    { slug: "autogpt", name: "AutoGPT", key: "api", steps: 3,
      snippet: `OPENAI_API_KEY=${key}\nOPENAI_API_BASE_URL=${base}` },
  ];
}

function section(tool, vars) {
  const steps = [];
  for (let i = 1; i <= tool.steps; i += 1) steps.push(h("li", {}, t(`qt.${tool.slug}.step${i}`, vars)));
  const parts = [
    h("h3", {}, tool.name),
    h("p", { class: "muted", "data-testid": "tool-key-kind" }, t(`qt.key.${tool.key}`)),
    h("ol", {}, steps),
  ];
  if (tool.snippet) {
    const button = h("button", { type: "button", "data-testid": `copy-${tool.slug}` }, t("qt.copy"));
    button.addEventListener("click", () => copy(tool.snippet, button));
    parts.push(h("p", { class: "muted" }, t(`qt.${tool.slug}.file`)),
      h("pre", { class: "code", "data-testid": `snippet-${tool.slug}` }, tool.snippet),
      h("div", { class: "row" }, button));
  }
  return h("section", { class: "tool", "data-testid": `tool-${tool.slug}` }, parts);
}

export function toolsCard() {
  const origin = location.origin;
  const base = `${origin}/v1`;
  const vars = { origin, base, chat: `${base}/chat/completions` };
  return h("div", { class: "card", "data-testid": "tools" },
    h("h2", {}, t("quick.tools")),
    h("p", {}, t("qt.intro")),
    tools(origin, base).map((tool) => section(tool, vars)));
}
