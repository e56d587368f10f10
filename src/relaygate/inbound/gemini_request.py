"""Gemini ``generateContent`` request → OpenAI chat-completions body (pure, no I/O).

The reverse of ``providers/gemini_request.py``. Rules:

* ``contents`` roles ``user`` (and the old ``function``) → user turns, ``model`` →
  assistant turns; ``systemInstruction`` → one ``system`` message first;
* parts: ``text``; ``inlineData`` → an ``image_url`` data URL (``audio/wav``/``mp3``:
  ``input_audio``; other MIME types: a ``file`` part with ``file_data``); ``fileData`` →
  ``image_url`` with its URI; ``functionCall`` (model turn) → ``tool_calls`` (the
  ``thoughtSignature`` kept in ``extra_content.google.thought_signature``, as the Gemini
  adaptor reads it back); ``functionResponse`` (user turn) → ``tool`` messages, placed
  before the turn's other parts. A call without ``id`` gets one, and a response without
  ``id`` answers the oldest unanswered call of its name; thought parts of model turns
  are dropped (the upstream does not take them back);
* ``tools[].functionDeclarations`` → function tools, the Gemini schema (upper-case
  types, ``nullable``) rewritten as JSON schema (``parametersJsonSchema`` as given);
  a built-in tool (``googleSearch``, ``codeExecution``, ``urlContext``, …) is refused
  with a 400 naming it: no channel behind this translation runs Google's tools;
* ``toolConfig.functionCallingConfig``: ``AUTO`` → ``auto``, ``ANY`` → ``required`` (one
  allowed name: that function), ``NONE`` → ``none``; ``allowedFunctionNames`` keeps only
  those tools;
* ``generationConfig``: sampling fields (``topK`` → ``top_k``, which the relay keeps only
  for channels that take it: ``relay/gemini_in.py``), ``maxOutputTokens`` → ``max_tokens``,
  ``stopSequences`` → ``stop``, ``candidateCount`` → ``n``, JSON MIME type / schemas →
  ``response_format``, ``thinkingConfig`` → ``reasoning_effort``.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.errors import InvalidRequest

__all__ = ["chat_body", "count_request", "openai_schema"]

Message = dict[str, Any]

_MODES = {"AUTO": "auto", "VALIDATED": "auto", "ANY": "required", "NONE": "none"}
_AUDIO = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3"}
_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
#: generationConfig fields copied under another name (numbers)
_NUMBERS = {
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
    "seed": "seed",
    "maxOutputTokens": "max_tokens",
    "candidateCount": "n",
    "logprobs": "top_logprobs",
}


def openai_schema(schema: Any) -> Any:
    """A Gemini ``Schema`` as JSON schema: lower-case types, ``nullable`` → a
    ``[type, "null"]`` union, nested properties/items/anyOf likewise."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    nullable = schema.get("nullable") is True
    for key, value in schema.items():
        if key == "nullable":
            continue
        if key == "type" and isinstance(value, str):
            kind = value.lower()
            if kind == "type_unspecified":
                continue
            out["type"] = [kind, "null"] if nullable else kind
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: openai_schema(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = openai_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out["anyOf"] = [openai_schema(v) for v in value]
        elif key == "propertyOrdering":
            continue
        else:
            out[key] = value
    return out


def chat_body(model: str, body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The chat-completions body for a ``generateContent`` request on ``model``."""
    messages = _system(body.get("systemInstruction", body.get("system_instruction")))
    messages.extend(_contents(body.get("contents")))
    if not any(m["role"] != "system" for m in messages):
        raise InvalidRequest("`contents` must hold at least one turn.", param="contents")
    out: dict[str, Any] = {"model": model, "messages": messages}
    _tools(body, out)
    _generation(body.get("generationConfig", body.get("generation_config")), out)
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def count_request(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """The chat body whose prompt ``countTokens`` counts: ``contents`` (with
    ``systemInstruction`` and ``tools`` when given), or a whole
    ``generateContentRequest``."""
    inner = body.get("generateContentRequest", body.get("generate_content_request"))
    if isinstance(inner, dict):
        body = inner
    return chat_body(model, body, stream=False)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"`{where}` must be an object.", param=where)
    return value


def _system(value: Any) -> list[Message]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "system", "content": value}] if value else []
    parts = _obj(value, "systemInstruction").get("parts")
    texts = [
        p["text"] for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str)
    ]
    return [{"role": "system", "content": "\n".join(texts)}] if texts else []


class _Calls:
    """Ids of the function calls made so far, for the responses that name no id."""

    def __init__(self) -> None:
        self.open: list[tuple[str, str]] = []  # (name, id) not yet answered
        self.n = 0

    def new(self, name: str, given: Any) -> str:
        self.n += 1
        call_id = given if isinstance(given, str) and given else f"call_{self.n}"
        self.open.append((name, call_id))
        return call_id

    def answer(self, name: str, given: Any) -> str:
        if isinstance(given, str) and given:
            self.open = [c for c in self.open if c[1] != given]
            return given
        for i, (open_name, call_id) in enumerate(self.open):
            if open_name == name:
                del self.open[i]
                return call_id
        self.n += 1
        return f"call_{self.n}"


def _contents(value: Any) -> list[Message]:
    if isinstance(value, dict):  # a single Content
        value = [value]
    if not isinstance(value, list):
        raise InvalidRequest("`contents` must be an array of turns.", param="contents")
    out: list[Message] = []
    calls = _Calls()
    for i, turn in enumerate(value):
        where = f"contents[{i}]"
        turn = _obj(turn, where)
        parts = turn.get("parts")
        if not isinstance(parts, list):
            raise InvalidRequest(f"`{where}.parts` must be an array.", param=f"{where}.parts")
        role = turn.get("role") or "user"
        if role == "model":
            out.append(_model_turn(parts, where, calls))
        elif role in ("user", "function"):
            out.extend(_user_turn(parts, where, calls))
        else:
            raise InvalidRequest(
                f"`{where}.role` must be 'user' or 'model'.", param=f"{where}.role"
            )
    return out


def _model_turn(parts: list[Any], where: str, calls: _Calls) -> Message:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        part = _obj(part, f"{where}.parts[{j}]")
        fc = part.get("functionCall", part.get("function_call"))
        if isinstance(fc, dict):
            name = fc.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(
                    f"`{where}.parts[{j}].functionCall.name` is required.", param=where
                )
            call: dict[str, Any] = {
                "id": calls.new(name, fc.get("id")),
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": orjson.dumps(fc.get("args") or {}).decode(),
                },
            }
            sig = part.get("thoughtSignature", part.get("thought_signature"))
            if isinstance(sig, str) and sig:
                call["extra_content"] = {"google": {"thought_signature": sig}}
            tool_calls.append(call)
        elif isinstance(part.get("text"), str) and part.get("thought") is not True:
            texts.append(part["text"])
    msg: Message = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    elif msg["content"] is None:
        msg["content"] = ""
    return msg


def _user_turn(parts: list[Any], where: str, calls: _Calls) -> list[Message]:
    tools: list[Message] = []
    content: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        part = _obj(part, at)
        fr = part.get("functionResponse", part.get("function_response"))
        if isinstance(fr, dict):
            name = fr.get("name")
            name = name if isinstance(name, str) else ""
            tools.append(
                {
                    "role": "tool",
                    "tool_call_id": calls.answer(name, fr.get("id")),
                    "content": _result_text(fr.get("response")),
                }
            )
            continue
        piece = _user_part(part, at)
        if piece is not None:
            content.append(piece)
    out = tools
    if content:
        if all(p["type"] == "text" for p in content):
            out.append({"role": "user", "content": "".join(p["text"] for p in content)})
        else:
            out.append({"role": "user", "content": content})
    return out


def _result_text(response: Any) -> str:
    """A ``functionResponse.response`` as tool-message text: ``{"result": "…"}`` (how
    a plain result is wrapped) unwrapped, anything else as JSON."""
    if isinstance(response, dict) and len(response) == 1:
        only = next(iter(response.values()))
        if next(iter(response)) in ("result", "output") and isinstance(only, str):
            return only
    return orjson.dumps(response if response is not None else {}).decode()


def _user_part(part: dict[str, Any], at: str) -> dict[str, Any] | None:
    text = part.get("text")
    if isinstance(text, str):
        return {"type": "text", "text": text}
    inline = part.get("inlineData", part.get("inline_data"))
    if isinstance(inline, dict):
        mime = inline.get("mimeType", inline.get("mime_type"))
        data = inline.get("data")
        if not isinstance(mime, str) or not isinstance(data, str):
            raise InvalidRequest(f"`{at}.inlineData` needs `mimeType` and `data`.", param=at)
        if mime in _AUDIO:
            return {"type": "input_audio", "input_audio": {"data": data, "format": _AUDIO[mime]}}
        url = f"data:{mime};base64,{data}"
        if mime.startswith("image/"):
            return {"type": "image_url", "image_url": {"url": url}}
        return {"type": "file", "file": {"file_data": url, "filename": "file"}}
    file = part.get("fileData", part.get("file_data"))
    if isinstance(file, dict):
        uri = file.get("fileUri", file.get("file_uri"))
        if not isinstance(uri, str) or not uri:
            raise InvalidRequest(f"`{at}.fileData.fileUri` is required.", param=at)
        return {"type": "image_url", "image_url": {"url": uri}}
    return None  # thought, executable code, …: nothing a chat upstream takes


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    if isinstance(tools, dict):
        tools = [tools]
    functions: list[dict[str, Any]] = []
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        tool = _obj(tool, f"tools[{i}]")
        if _builtin(tool, i):
            out["online"] = True  # Google Search: the gateway's online search (docs/online.md)
        decls = tool.get("functionDeclarations", tool.get("function_declarations"))
        for j, decl in enumerate(decls if isinstance(decls, list) else ()):
            decl = _obj(decl, f"tools[{i}].functionDeclarations[{j}]")
            name = decl.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest("Each function declaration needs a `name`.", param="tools")
            fn: dict[str, Any] = {"name": name}
            if isinstance(decl.get("description"), str):
                fn["description"] = decl["description"]
            schema = decl.get("parametersJsonSchema", decl.get("parameters_json_schema"))
            if schema is None and decl.get("parameters") is not None:
                schema = openai_schema(decl["parameters"])
            fn["parameters"] = schema if isinstance(schema, dict) else {"type": "object"}
            functions.append({"type": "function", "function": fn})
    config = body.get("toolConfig", body.get("tool_config"))
    fcc = config.get("functionCallingConfig") if isinstance(config, dict) else None
    if not isinstance(fcc, dict):
        if functions:
            out["tools"] = functions
        return
    allowed = fcc.get("allowedFunctionNames", fcc.get("allowed_function_names"))
    if isinstance(allowed, list) and allowed:
        functions = [f for f in functions if f["function"]["name"] in allowed]
    mode = fcc.get("mode")
    choice = _MODES.get(mode.upper()) if isinstance(mode, str) else None
    if mode is not None and choice is None and mode != "MODE_UNSPECIFIED":
        raise InvalidRequest(
            "`toolConfig.functionCallingConfig.mode` must be AUTO, ANY or NONE.",
            param="toolConfig",
        )
    if not functions:
        return
    out["tools"] = functions
    if choice == "required" and len(functions) == 1 and isinstance(allowed, list):
        out["tool_choice"] = {
            "type": "function",
            "function": {"name": functions[0]["function"]["name"]},
        }
    elif choice is not None:
        out["tool_choice"] = choice


#: the keys of a Gemini ``Tool`` that declare functions; any other is a built-in tool
_FUNCTION_KEYS = frozenset({"functionDeclarations", "function_declarations"})


#: Gemini's search tools: answered by the gateway's own online search
_SEARCH_KEYS = frozenset(
    {"googleSearch", "google_search", "googleSearchRetrieval", "google_search_retrieval"}
)


def _builtin(tool: dict[str, Any], i: int) -> bool:
    """Whether ``tool`` asks for Google Search (the gateway searches instead: an online
    request); any other built-in tool (code execution, URL context, …) is refused by name."""
    search = False
    for key in tool:
        if key in _SEARCH_KEYS:
            search = True
        elif key not in _FUNCTION_KEYS:
            raise InvalidRequest(
                f"tools[{i}].{key}: the built-in tool `{key}` is not supported by this "
                "gateway; declare functions with `functionDeclarations`.",
                param="tools",
            )
    return search


def _number(cfg: dict[str, Any], key: str) -> float | int | None:
    value = cfg.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(
            f"`generationConfig.{key}` must be a number.", param=f"generationConfig.{key}"
        )
    return value


def _generation(cfg: Any, out: dict[str, Any]) -> None:
    if cfg is None:
        return
    cfg = _obj(cfg, "generationConfig")
    for key, name in _NUMBERS.items():
        value = _number(cfg, key)
        if value is not None:
            out[name] = value
    if "top_logprobs" in out or cfg.get("responseLogprobs") is True:
        out["logprobs"] = True
    stop = cfg.get("stopSequences")
    if isinstance(stop, list) and stop:
        out["stop"] = [s for s in stop if isinstance(s, str)]
    schema = cfg.get("responseJsonSchema", cfg.get("response_json_schema"))
    if schema is None and cfg.get("responseSchema") is not None:
        schema = openai_schema(cfg["responseSchema"])
    if isinstance(schema, dict):
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": schema},
        }
    elif cfg.get("responseMimeType") == "application/json":
        out["response_format"] = {"type": "json_object"}
    _thinking(cfg.get("thinkingConfig", cfg.get("thinking_config")), out)


def _thinking(cfg: Any, out: dict[str, Any]) -> None:
    if not isinstance(cfg, dict):
        return
    level = cfg.get("thinkingLevel", cfg.get("thinking_level"))
    if isinstance(level, str) and level.lower() in _LEVELS:
        out["reasoning_effort"] = _LEVELS[level.lower()]
        return
    budget = cfg.get("thinkingBudget", cfg.get("thinking_budget"))
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
        return  # absent, or -1: the model decides
    if budget == 0:
        out["reasoning_effort"] = "none"
    elif budget <= 1024:
        out["reasoning_effort"] = "low"
    elif budget <= 8192:
        out["reasoning_effort"] = "medium"
    else:
        out["reasoning_effort"] = "high"
