"""Local prompt counting (billing/tokens.py) on bodies at the encoder's limits."""

from __future__ import annotations

from typing import Any

import pytest

from relaygate.billing.tokens import count_prompt
from relaygate.errors import InvalidRequest


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        node = {"type": "object", "properties": {"x": node}}
    return node


def test_tools_count_and_grow_with_their_size() -> None:
    user = {"role": "user", "content": "hi"}
    small = {"type": "function", "function": {"name": "f", "parameters": _nested(1)}}
    big = {"type": "function", "function": {"name": "f", "parameters": _nested(20)}}
    base = count_prompt({"messages": [user]})
    assert base < count_prompt({"messages": [user], "tools": [small]})
    assert count_prompt({"messages": [user], "tools": [small]}) < count_prompt(
        {"messages": [user], "tools": [big]}
    )


@pytest.mark.parametrize("field", ["tools", "functions"])
def test_json_nested_beyond_the_encoder_is_the_clients_error(field: str) -> None:
    deep = [{"type": "function", "function": {"name": "f", "parameters": _nested(400)}}]
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        count_prompt({"messages": [{"role": "user", "content": "hi"}], field: deep})
    calls = [{"id": "c", "type": "function", "function": {"name": "f"}, "x": _nested(400)}]
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        count_prompt({"messages": [{"role": "assistant", "tool_calls": calls}]})
