// The playground: chat with any model of the catalogue through this gateway's own
// /v1/chat/completions, with one of the user's API keys. The key is kept in sessionStorage
// only (gone when the tab closes), sent only to /v1 as a Bearer token, never to /console/api,
// and never shown back in full. Answers are streamed in as text nodes.
import { modelNames } from "../api.js";
import { clear, field, h, message } from "../dom.js";
import { t } from "../i18n.js";

const KEY_STORE = "rg_playground_key";

function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORE) || "";
  } catch {
    return "";
  }
}

function storeKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
  } catch {
    /* storage refused: the key lasts for this page */
  }
}

// "zk-abcd…wxyz": enough to tell keys apart, never the whole key
export function keyHint(key) {
  if (!key) return "";
  if (key.length <= 12) return `${key.slice(0, 3)}…`;
  return `${key.slice(0, 7)}…${key.slice(-4)}`;
}

// The gateway's error text: the OpenAI body's error.message, else the envelope's msg.
export function errorMessage(body, status) {
  if (body && typeof body === "object") {
    const err = body.error;
    if (err && typeof err === "object" && err.message) {
      return err.code ? `${err.message} (${err.code})` : String(err.message);
    }
    if (typeof err === "string" && err) return err;
    if (body.msg && body.code !== 0) return body.code ? `${body.msg} (${body.code})` : String(body.msg);
  }
  return t("extras.pg.httpError", { status });
}

// Reads a text/event-stream body, calling onEvent(data) for each `data:` payload.
export async function readSse(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const flush = (block) => {
    const lines = block.split(/\r?\n/);
    const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
    if (data.length) onEvent(data.join("\n"));
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      flush(block);
    }
  }
  buffer += decoder.decode();
  if (buffer.trim()) flush(buffer);
}

function usageText(usage) {
  if (!usage) return "";
  return t("extras.pg.usage", {
    prompt: usage.prompt_tokens ?? 0,
    completion: usage.completion_tokens ?? 0,
    total: usage.total_tokens ?? ((usage.prompt_tokens ?? 0) + (usage.completion_tokens ?? 0)),
  });
}

export async function render(ctx, root) {
  const models = await modelNames();
  // the priced models of the catalogue; a name can be typed when the catalogue lists none
  const model = models.length
    ? h("select", { "data-testid": "pg-model", name: "model" },
      models.map((m) => h("option", { value: m }, m)))
    : h("input", { "data-testid": "pg-model", name: "model", autocomplete: "off",
      placeholder: t("extras.pg.modelHint") });
  const keyInput = h("input", { type: "password", autocomplete: "off", spellcheck: "false",
    name: "api-key", "data-testid": "pg-key", placeholder: t("extras.pg.keyPlaceholder") });
  const keyState = h("span", { class: "muted", "data-testid": "pg-key-hint" });
  const forget = h("button", { type: "button", class: "secondary", "data-testid": "pg-forget-key" },
    t("extras.pg.forgetKey"));
  const system = h("textarea", { rows: 2, "data-testid": "pg-system", name: "system",
    placeholder: t("extras.pg.systemPlaceholder") });
  const prompt = h("textarea", { rows: 4, "data-testid": "pg-prompt", name: "prompt",
    placeholder: t("extras.pg.promptPlaceholder") });
  const temperature = h("input", { type: "number", min: 0, max: 2, step: 0.1, value: "1",
    inputmode: "decimal", "data-testid": "pg-temperature", name: "temperature" });
  const maxTokens = h("input", { type: "number", min: 1, step: 1, inputmode: "numeric",
    "data-testid": "pg-max-tokens", name: "max_tokens", placeholder: t("extras.pg.maxTokensHint") });
  const stream = h("input", { type: "checkbox", checked: true, "data-testid": "pg-stream", name: "stream" });
  const send = h("button", { type: "submit", "data-testid": "pg-send" }, t("extras.pg.send"));
  const stop = h("button", { type: "button", class: "danger", disabled: true, "data-testid": "pg-stop" },
    t("extras.pg.stop"));
  const reset = h("button", { type: "button", class: "secondary", "data-testid": "pg-clear" },
    t("extras.pg.clear"));
  const transcript = h("div", { class: "pg-transcript", "data-testid": "pg-transcript", "aria-live": "polite" });
  const status = h("div", { "data-testid": "pg-status" });
  const history = [];
  let running = null;

  function showKeyState() {
    const key = storedKey();
    keyState.textContent = key ? t("extras.pg.keyKept", { hint: keyHint(key) }) : t("extras.pg.noKey");
    forget.disabled = !key;
  }
  keyInput.addEventListener("change", () => {
    const key = keyInput.value.trim();
    if (key) storeKey(key);
    keyInput.value = "";  // not kept in the page: the hint says which key is in use
    showKeyState();
  });
  forget.addEventListener("click", () => { storeKey(""); showKeyState(); });
  reset.addEventListener("click", () => { history.length = 0; clear(transcript); clear(status); });
  stop.addEventListener("click", () => { if (running) running.abort(); });

  function bubble(role, text, testid) {
    const body = h("div", { class: "pg-text", "data-testid": testid }, text);
    transcript.append(h("div", { class: `pg-turn ${role}` },
      h("div", { class: "muted" }, t(`extras.pg.role.${role}`)), body));
    return body;
  }

  function request() {
    const messages = [];
    if (system.value.trim()) messages.push({ role: "system", content: system.value });
    messages.push(...history);
    const body = { model: model.value.trim(), messages };
    const temp = temperature.value.trim();
    if (temp !== "") body.temperature = Number(temp);
    const most = maxTokens.value.trim();
    if (most !== "") body.max_tokens = Number(most);
    if (stream.checked) {
      body.stream = true;
      body.stream_options = { include_usage: true };
    }
    return body;
  }

  async function run(key, body, out) {
    const controller = new AbortController();
    running = controller;
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
      credentials: "omit",
      signal: controller.signal,
    });
    const type = response.headers.get("content-type") || "";
    if (!response.ok || !type.includes("text/event-stream")) {
      let data = null;
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      if (!response.ok || (data && data.error) || (data && data.code && data.code !== 0)) {
        throw new Error(errorMessage(data, response.status));
      }
      const choice = (data && data.choices && data.choices[0]) || {};
      const text = (choice.message && choice.message.content) || "";
      out.append(document.createTextNode(text));
      return { text, usage: data && data.usage };
    }
    let text = "";
    let usage = null;
    let failure = "";
    await readSse(response.body, (data) => {
      if (data === "[DONE]") return;
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        return;
      }
      if (chunk.error) {
        failure = errorMessage(chunk, response.status);
        return;
      }
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices || []) {
        const piece = choice.delta && choice.delta.content;
        if (piece) {
          text += piece;
          out.append(document.createTextNode(piece));
        }
      }
    });
    if (failure) throw new Error(failure);
    return { text, usage };
  }

  const form = h("form", { class: "stack", "data-testid": "pg-form" },
    h("div", { class: "row" }, field(t("extras.pg.model"), model), field(t("extras.pg.key"), keyInput)),
    h("div", { class: "row" }, keyState, forget),
    field(t("extras.pg.system"), system),
    h("div", { class: "row" }, field(t("extras.pg.temperature"), temperature),
      field(t("extras.pg.maxTokens"), maxTokens),
      h("label", { class: "check" }, stream, t("extras.pg.stream"))),
    field(t("extras.pg.prompt"), prompt),
    h("div", { class: "row" }, send, stop, reset));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(status);
    if (keyInput.value.trim()) {
      storeKey(keyInput.value.trim());
      keyInput.value = "";
      showKeyState();
    }
    const key = storedKey();
    if (!key) {
      status.append(message("error", t("extras.pg.needKey"), "pg-error"));
      return;
    }
    if (!model.value.trim()) {
      status.append(message("error", t("extras.pg.needModel"), "pg-error"));
      return;
    }
    const said = prompt.value;
    if (!said.trim()) {
      status.append(message("error", t("extras.pg.needPrompt"), "pg-error"));
      return;
    }
    history.push({ role: "user", content: said });
    bubble("user", said, "pg-user");
    prompt.value = "";
    const out = bubble("assistant", "", "pg-output");
    send.disabled = true;
    stop.disabled = false;
    try {
      const answer = await run(key, request(), out);
      history.push({ role: "assistant", content: answer.text });
      if (answer.usage) status.append(h("p", { class: "muted", "data-testid": "pg-usage" }, usageText(answer.usage)));
    } catch (err) {
      history.pop();
      if (err && err.name === "AbortError") {
        status.append(message("ok", t("extras.pg.stopped"), "pg-stopped"));
      } else {
        status.append(message("error", (err && err.message) || String(err), "pg-error"));
      }
    } finally {
      running = null;
      send.disabled = false;
      stop.disabled = true;
    }
  });

  showKeyState();
  root.append(h("h1", {}, t("nav.playground")),
    h("p", { class: "muted" }, t("extras.pg.intro")),
    h("div", { class: "card" }, form),
    h("div", { class: "card" }, transcript, status));
}
