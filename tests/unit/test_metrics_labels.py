"""Label values come from the configuration, never from what a client sent
(``metrics/labels.py``): a model the catalog does not know is ``unknown``, a channel is
named as configured (``name#id`` when two share a name, renamed with the configuration),
and error codes are cut to a fixed alphabet and a bounded number of values."""

from __future__ import annotations

from pathlib import Path

from metrics_kit import channel, worker

from relaygate.metrics.labels import MAX_CODES, OTHER, UNKNOWN, Labels


async def test_models_and_channels_come_from_the_configuration(tmp_path: Path) -> None:
    async with worker(tmp_path) as w:
        a = await w.admin.create_channel(channel("alpha", ["m-one", "m-two"]))
        b = await w.admin.create_channel(channel("twin", ["m-one"]))
        c = await w.admin.create_channel(channel("twin", ["m-three"]))
        await w.catalog.load()
        labels = Labels(w.catalog)
        assert labels.model("m-one") == "m-one"
        assert labels.model("m-three") == "m-three"
        assert labels.model("m-one' OR 1=1 --") == UNKNOWN
        assert labels.model("x" * 10_000) == UNKNOWN
        assert labels.model(None) == labels.model("") == ""
        assert labels.channel(a.id) == "alpha"
        assert labels.channel(b.id) == f"twin#{b.id}" and labels.channel(c.id) == f"twin#{c.id}"
        assert labels.channel(None) == ""
        assert labels.channel(99_999) == "#99999"  # deleted meanwhile: still bounded
        await w.admin.update_channel(a.id, {"name": "alpha-renamed"})
        await w.catalog.load()
        assert labels.channel(a.id) == "alpha-renamed"
        assert labels.channels() == {
            a.id: "alpha-renamed",
            b.id: f"twin#{b.id}",
            c.id: f"twin#{c.id}",
        }


async def test_codes_are_bounded(tmp_path: Path) -> None:
    async with worker(tmp_path) as w:
        labels = Labels(w.catalog)
        assert labels.code(None) == ""
        assert labels.code("upstream_error") == "upstream_error"
        assert labels.code("Context_Length_Exceeded") == "context_length_exceeded"
        assert labels.code("has space") == OTHER
        assert labels.code("引号") == OTHER
        assert len(labels.code("a" * 500)) == 64
        for i in range(MAX_CODES * 3):
            labels.code(f"code_{i}")
        distinct = {labels.code(f"code_{i}") for i in range(MAX_CODES * 3)}
        assert len(distinct) <= MAX_CODES + 1 and OTHER in distinct
        assert labels.code("upstream_error") == "upstream_error"  # known ones keep their label
