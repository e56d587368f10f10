"""relay/multipart.py, property tests (hypothesis): any field values and names, any
chunking; the form read back upstream has the shape the gateway read."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multipart_kit import (
    Spec,
    build,
    contents,
    encoded,
    parse,
    redirect_spools,
    spooled,
)

from relaygate.relay.multipart import Form


@pytest.fixture(autouse=True)
def spool_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return redirect_spools(tmp_path, monkeypatch)


# ---- property: any field values, any chunking ---------------------------------------------
_NAME = st.text(
    st.characters(blacklist_characters='"\\\r\n', blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
)
_SPEC = st.tuples(
    _NAME,
    st.one_of(st.none(), _NAME),
    st.sampled_from(["", "text/plain", "application/octet-stream"]),
    st.binary(max_size=300),
)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(specs=st.lists(_SPEC, max_size=6), seed=st.integers(0, 2**32 - 1))
async def test_property_round_trip(specs: list[Spec], seed: int, spool_root: Path) -> None:
    rng = random.Random(seed)
    form = await parse(build(specs), rng)
    try:
        assert contents(form) == specs
        ctype, length, data = await encoded(form)
        assert length == len(data)
        again = await parse(data, rng, content_type=ctype.encode())
        try:
            assert contents(again) == specs
        finally:
            again.close()
    finally:
        form.close()
    assert spooled(spool_root) == []


_ANY_NAME = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)


def _escaped(value: str) -> str:
    # what the upstream reads back: the WHATWG escapes of ``"``, CR and LF, and ``\``
    value = value.replace("\\", "%5C").replace('"', "%22")
    return value.replace("\r", "%0D").replace("\n", "%0A")


@settings(max_examples=100, deadline=None, database=None)
@given(
    names=st.lists(_ANY_NAME, min_size=1, max_size=4, unique=True),
    filename=st.one_of(st.none(), _ANY_NAME),
)
async def test_property_any_names_keep_the_form_shape(
    names: list[str], filename: str | None
) -> None:
    form = Form()
    for name in names:
        form.set_text(name, "v")
    form.parts[0].filename = filename
    ctype, length, data = await encoded(form)
    assert length == len(data)
    again = await parse(data, random.Random(len(data)), content_type=ctype.encode())
    expected = [(_escaped(n), None) for n in names]
    expected[0] = (expected[0][0], None if filename is None else _escaped(filename))
    try:
        assert [(p.name, p.filename) for p in again.parts] == expected
        assert all(p.size == 1 for p in again.parts)
    finally:
        again.close()
