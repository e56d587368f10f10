"""OpenAI Chat Completions request → Gemini ``generateContent`` request (pure, no I/O).

Rules (``docs/providers.md``, Google Gemini):

* roles are ``user`` and ``model``; ``system``/``developer`` messages become
  ``systemInstruction``; consecutive turns of one role are merged (the tool results
  of one assistant turn go back in one ``user`` turn, as Gemini expects);
* assistant ``tool_calls`` become ``functionCall`` parts (``args`` is the parsed
  arguments); the ``thoughtSignature`` Gemini gave with a call comes back from
  ``tool_calls[i].extra_content.google.thought_signature`` (the field Google's own
  OpenAI-compatible endpoint uses) and is put on the part again — Gemini 3 refuses a
  turn whose function calls lost it;
* ``tool`` messages become ``functionResponse`` parts, named after the call they
  answer; a JSON-object result is sent as the response, anything else as
  ``{"result": text}``;
* the Generative Language API (profile ``gemini``) gets the call ids
  (``functionCall.id``/``functionResponse.id``); Vertex AI does not take them;
* images: data URLs → ``inlineData``; other URLs → ``fileData`` (MIME type guessed
  from the extension);
* tools → ``functionDeclarations`` with the schema rewritten to Gemini's subset
  (:func:`gemini_schema`); ``tool_choice`` → ``toolConfig.functionCallingConfig``;
* sampling, ``response_format`` and ``reasoning_effort`` → ``generationConfig``.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from relaygate.errors import InvalidRequest
from relaygate.providers.base import Target, number_field, require_messages
from relaygate.providers.legacy_functions import upgrade_legacy_functions

__all__ = ["REASONING_BUDGETS", "build_generate_request", "gemini_schema", "thought_signature"]

#: ``reasoning_effort`` → ``thinkingBudget`` (a channel may override with
#: ``config.reasoning_budgets``); Gemini 3 models get ``thinkingLevel`` instead
REASONING_BUDGETS: dict[str, int] = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
}
_LEVELS = {"minimal": "low", "low": "low", "medium": "high", "high": "high"}

_MODES = {"auto": "AUTO", "required": "ANY", "any": "ANY", "none": "NONE"}

#: JSON-schema keys Gemini's ``Schema`` understands; everything else
#: (``additionalProperties``, ``$schema``, ``strict``, ``$defs``, …) is dropped
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "items",
        "properties",
        "required",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "anyOf",
        "propertyOrdering",
        "default",
        "example",
    }
)

Part = dict[str, Any]


def thought_signature(call: dict[str, Any]) -> str | None:
    """The signature a client sent back on an assistant tool call."""
    extra = call.get("extra_content")
    if isinstance(extra, dict):
        google = extra.get("google")
        if isinstance(google, dict) and isinstance(google.get("thought_signature"), str):
            return str(google["thought_signature"])
    sig = call.get("thought_signature")
    return sig if isinstance(sig, str) else None


def gemini_schema(schema: Any) -> Any:
    """A JSON schema rewritten to Gemini's OpenAPI subset: upper-case types,
    ``["x", "null"]`` → ``nullable``, unsupported keys dropped."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "type":
            if isinstance(value, list):
                kinds = [v for v in value if v != "null"]
                if len(kinds) < len(value):
                    out["nullable"] = True
                value = kinds[0] if kinds else "string"
            out["type"] = value.upper() if isinstance(value, str) else value
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: gemini_schema(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = gemini_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out["anyOf"] = [gemini_schema(v) for v in value]
        else:
            out[key] = value
    return out


def build_generate_request(target: Target, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``(generateContent body, whether the client used legacy functions)``."""
    body, legacy = upgrade_legacy_functions(body)
    messages = require_messages(body)
    with_ids = target.profile != "vertex"
    system: list[Part] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}

    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise InvalidRequest(f"`messages[{i}]` must be an object.", param=f"messages[{i}]")
        role = msg.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(msg.get("content"), i, text_only=True))
        elif role == "user":
            _append(contents, "user", _parts(msg.get("content"), i, text_only=False))
        elif role == "assistant":
            _append(contents, "model", _model_parts(msg, i, call_names, with_ids))
        elif role == "tool":
            _append(contents, "user", [_function_response(msg, i, call_names, with_ids)])
        else:
            raise InvalidRequest(
                f"`messages[{i}].role` {role!r} is not supported for this model; use "
                "system, developer, user, assistant or tool.",
                param=f"messages[{i}].role",
            )
    if not contents:
        raise InvalidRequest(
            "`messages` must contain at least one user or assistant message.", param="messages"
        )

    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system, "role": "user"}
    config = _generation_config(target, body)
    if config:
        out["generationConfig"] = config
    _tools(body, out)
    safety = target.config.get("safety_settings")
    if isinstance(safety, list) and safety:
        out["safetySettings"] = safety
    return out, legacy


def _append(contents: list[dict[str, Any]], role: str, parts: list[Part]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"parts": parts, "role": role})


def _parts(content: Any, i: int, *, text_only: bool) -> list[Part]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if content is None:
        return []
    if not isinstance(content, list):
        raise InvalidRequest(
            f"`messages[{i}].content` must be a string or an array of parts.",
            param=f"messages[{i}].content",
        )
    out: list[Part] = []
    for j, part in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"`{where}` must be an object.", param=where)
        kind = part.get("type")
        if kind in ("text", "input_text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"`{where}.text` must be a string.", param=f"{where}.text")
            if text:
                out.append({"text": text})
        elif kind == "image_url" and not text_only:
            out.append(_image(part.get("image_url"), where))
        elif kind == "input_audio" and not text_only:
            audio = part.get("input_audio")
            data = audio.get("data") if isinstance(audio, dict) else None
            fmt = audio.get("format") if isinstance(audio, dict) else None
            if not isinstance(data, str):
                raise InvalidRequest(f"`{where}.input_audio.data` is required.", param=where)
            out.append({"inlineData": {"mimeType": f"audio/{fmt or 'wav'}", "data": data}})
        elif kind == "file" and not text_only:
            file = part.get("file")
            data = file.get("file_data") if isinstance(file, dict) else None
            if not isinstance(data, str) or not data.startswith("data:"):
                raise InvalidRequest(
                    f"`{where}.file.file_data` must be a data URL for this model.", param=where
                )
            out.append(_data_url(data, where))
        else:
            raise InvalidRequest(
                f"`{where}.type` {kind!r} is not supported here.", param=f"{where}.type"
            )
    return out


def _image(image: Any, where: str) -> Part:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"`{where}.image_url.url` is required.", param=where)
    if url.startswith("data:"):
        return _data_url(url, where)
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _data_url(url: str, where: str) -> Part:
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise InvalidRequest(f"`{where}`: a data URL must be base64-encoded.", param=where)
    mime = head[5 : -len(";base64")] or "application/octet-stream"
    return {"inlineData": {"mimeType": mime, "data": data}}


def _model_parts(
    msg: dict[str, Any], i: int, call_names: dict[str, str], with_ids: bool
) -> list[Part]:
    parts = _parts(msg.get("content"), i, text_only=True)
    calls = msg.get("tool_calls")
    if calls is None:
        return parts
    if not isinstance(calls, list):
        raise InvalidRequest(
            f"`messages[{i}].tool_calls` must be an array.", param=f"messages[{i}].tool_calls"
        )
    for j, call in enumerate(calls):
        where = f"messages[{i}].tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"`{where}.function.name` is required.", param=where)
        raw_args = fn.get("arguments") if isinstance(fn, dict) else None
        args: Any = {}
        if isinstance(raw_args, str) and raw_args.strip():
            try:
                args = orjson.loads(raw_args)
            except orjson.JSONDecodeError:
                raise InvalidRequest(
                    f"`{where}.function.arguments` must be JSON.",
                    param=f"{where}.function.arguments",
                ) from None
        elif isinstance(raw_args, dict):
            args = raw_args
        if not isinstance(args, dict):
            args = {"value": args}
        fc: dict[str, Any] = {"name": name, "args": args}
        call_id = call.get("id") if isinstance(call, dict) else None
        if isinstance(call_id, str) and call_id:
            call_names[call_id] = name
            if with_ids:
                fc["id"] = call_id
        part: Part = {"functionCall": fc}
        sig = thought_signature(call) if isinstance(call, dict) else None
        if sig:
            part["thoughtSignature"] = sig
        parts.append(part)
    return parts


def _function_response(
    msg: dict[str, Any], i: int, call_names: dict[str, str], with_ids: bool
) -> Part:
    call_id = msg.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    if name is None and isinstance(msg.get("name"), str):
        name = msg["name"]
    if not name:
        raise InvalidRequest(
            f"`messages[{i}].tool_call_id` does not answer a tool call of an earlier "
            "assistant message.",
            param=f"messages[{i}].tool_call_id",
        )
    content = msg.get("content")
    if isinstance(content, list):
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    text = content if isinstance(content, str) else ""
    response: Any = None
    if text.lstrip().startswith("{"):
        try:
            response = orjson.loads(text)
        except orjson.JSONDecodeError:
            response = None
    if not isinstance(response, dict):
        response = {"result": text}
    fr: dict[str, Any] = {"name": name, "response": response}
    if with_ids and isinstance(call_id, str) and call_id:
        fr["id"] = call_id
    return {"functionResponse": fr}


def _generation_config(target: Target, body: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidRequest("`max_tokens` must be a positive integer.", param="max_tokens")
        cfg["maxOutputTokens"] = limit
    for src, dst in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ):
        value = number_field(body, src)
        if value is not None:
            cfg[dst] = value
    n = body.get("n")
    if n is not None and n != 1:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidRequest("`n` must be a positive integer.", param="n")
        cfg["candidateCount"] = n
    stop = body.get("stop")
    if isinstance(stop, str) and stop:
        cfg["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        cfg["stopSequences"] = [s for s in stop if isinstance(s, str) and s]
    _response_format(body.get("response_format"), cfg)
    _thinking(target, body, cfg)
    return cfg


def _response_format(fmt: Any, cfg: dict[str, Any]) -> None:
    if not isinstance(fmt, dict):
        return
    kind = fmt.get("type")
    if kind == "json_object":
        cfg["responseMimeType"] = "application/json"
    elif kind == "json_schema":
        cfg["responseMimeType"] = "application/json"
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            cfg["responseSchema"] = gemini_schema(schema)


def _thinking(target: Target, body: dict[str, Any], cfg: dict[str, Any]) -> None:
    effort = body.get("reasoning_effort")
    always = target.config.get("include_thoughts") is True
    if effort is None:
        if always:
            cfg["thinkingConfig"] = {"includeThoughts": True}
        return
    if not isinstance(effort, str) or effort not in REASONING_BUDGETS:
        known = ", ".join(REASONING_BUDGETS)
        raise InvalidRequest(
            f"`reasoning_effort` must be one of {known}.", param="reasoning_effort"
        )
    if effort == "none":
        cfg["thinkingConfig"] = {"thinkingBudget": 0}
        return
    if target.upstream_model.startswith("gemini-3"):
        cfg["thinkingConfig"] = {"thinkingLevel": _LEVELS[effort], "includeThoughts": True}
        return
    budgets = target.config.get("reasoning_budgets")
    budget = REASONING_BUDGETS[effort]
    if isinstance(budgets, dict) and isinstance(budgets.get(effort), int):
        budget = int(budgets[effort])
    cfg["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True}


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    declarations: list[dict[str, Any]] = []
    if isinstance(tools, list):
        for k, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise InvalidRequest(
                    f"`tools[{k}]` must be a function tool with a name.", param=f"tools[{k}]"
                )
            decl: dict[str, Any] = {"name": fn["name"]}
            if isinstance(fn.get("description"), str) and fn["description"]:
                decl["description"] = fn["description"]
            params = fn.get("parameters")
            if isinstance(params, dict) and params.get("properties"):
                decl["parameters"] = gemini_schema(params)
            declarations.append(decl)
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
    choice = body.get("tool_choice")
    if choice is None:
        return
    config: dict[str, Any]
    if isinstance(choice, str) and choice in _MODES:
        config = {"mode": _MODES[choice]}
    elif isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            raise InvalidRequest("`tool_choice.function.name` is required.", param="tool_choice")
        config = {"mode": "ANY", "allowedFunctionNames": [name]}
    else:
        raise InvalidRequest(
            "`tool_choice` must be auto, required, none or a function.", param="tool_choice"
        )
    if declarations or config["mode"] == "NONE":
        out["toolConfig"] = {"functionCallingConfig": config}
