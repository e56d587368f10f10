"""Reading back the console's TOTP QR code in the tests: the SVG that ``segno`` draws
(``console/totp.py``) is checked for well-formedness, rasterised here and decoded with
``zxing-cpp`` (a real QR decoder), so a test sees what an authenticator app would read.

The rasteriser knows only what segno's SVG holds: a white background path and one stroked
path of horizontal runs (``M``/``m`` moves, ``h`` lines, stroke width 1, under a
``scale()``); anything else fails loudly rather than decoding something else."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import zxingcpp

SVG_NS = "{http://www.w3.org/2000/svg}"
DATA_PREFIX = "data:image/svg+xml;base64,"
PIXELS = 4  # per module


def svg_of(data_uri: str) -> ET.Element:
    """The parsed SVG of a ``data:`` URI (a parse error fails the test)."""
    assert data_uri.startswith(DATA_PREFIX), data_uri[:40]
    root = ET.fromstring(base64.b64decode(data_uri[len(DATA_PREFIX) :], validate=True))
    assert root.tag == SVG_NS + "svg", root.tag
    return root


def _runs(d: str) -> list[tuple[float, float, float]]:
    """(x, y, length) of each horizontal run of the path."""
    tokens = re.findall(r"[A-Za-z]|-?\d+(?:\.\d+)?", d)
    runs: list[tuple[float, float, float]] = []
    x = y = 0.0
    i = 0
    while i < len(tokens):
        op = tokens[i]
        if op == "M":
            x, y = float(tokens[i + 1]), float(tokens[i + 2])
            i += 3
        elif op == "m":
            x, y = x + float(tokens[i + 1]), y + float(tokens[i + 2])
            i += 3
        elif op == "h":
            n = float(tokens[i + 1])
            runs.append((x, y, n))
            x += n
            i += 2
        else:
            raise AssertionError(f"unexpected path command {op!r} in the QR code's SVG")
    return runs


def decode(data_uri: str) -> str:
    """The text of the QR code in the SVG ``data:`` URI."""
    root = svg_of(data_uri)
    width = int(float(root.attrib["width"]))
    height = int(float(root.attrib["height"]))
    group = root.find(SVG_NS + "g")
    scale = 1.0
    if group is not None and "transform" in group.attrib:
        found = re.fullmatch(r"scale\(([\d.]+)\)", group.attrib["transform"])
        assert found, group.attrib["transform"]
        scale = float(found.group(1))
    dark = [p for p in root.iter(SVG_NS + "path") if p.attrib.get("stroke")]
    assert len(dark) == 1, "one stroked path of dark modules"
    modules_w, modules_h = round(width / scale), round(height / scale)
    pixels = bytearray(b"\xff" * (modules_w * PIXELS * modules_h * PIXELS))
    row_len = modules_w * PIXELS
    for x, y, n in _runs(dark[0].attrib["d"]):
        row = int(y)  # a run of stroke width 1 is drawn at the middle of its row (y + 0.5)
        for col in range(int(x), int(x + n)):
            for dy in range(PIXELS):
                start = (row * PIXELS + dy) * row_len + col * PIXELS
                pixels[start : start + PIXELS] = b"\x00" * PIXELS
    image = memoryview(pixels).cast("B", (modules_h * PIXELS, row_len))
    found_codes = zxingcpp.read_barcodes(image)
    assert len(found_codes) == 1, f"{len(found_codes)} QR codes read"
    return str(found_codes[0].text)
