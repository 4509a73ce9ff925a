#!/usr/bin/env python3
"""Cross-check against NIST's NBIS WSQ codec (PyPI `wsq`, a Pillow plugin).

Usage: nbis_xcheck.py DIR

For every NAME.raw in DIR (8-bit grey pixels; NAME.json gives {"width", "height"}) and the
Tasjil encoding NAME.ours.wsq beside it, this writes:
  NAME.nbisdec.raw  our WSQ decoded by NBIS
  NAME.nbis.wsq     the original encoded by NBIS (its default rate, 0.75 bpp)
  NAME.nbis.nbisdec.raw  NBIS's own encoding decoded by NBIS
and prints one JSON line per case with NBIS's encode and decode times (best of REPEAT runs, in ms,
timing the plugin's C functions directly so Pillow's Python-side pixel copying is not counted).
The Rust test compares the pixels and sizes; this script only drives NBIS.
"""
import io
import json
import pathlib
import sys
import time

import _wsq  # the NBIS C extension the plugin wraps
import wsq  # noqa: F401  (registers the WSQ format with Pillow)
from PIL import Image

REPEAT = int(sys.argv[2]) if len(sys.argv) > 2 else 1


def best_ms(fn):
    best = None
    for _ in range(REPEAT):
        t = time.perf_counter()
        out = fn()
        ms = (time.perf_counter() - t) * 1000.0
        best = ms if best is None else min(best, ms)
    return out, best


def main(folder):
    for raw in sorted(pathlib.Path(folder).glob("*.raw")):
        if raw.name.endswith("nbisdec.raw"):
            continue
        name = raw.name[: -len(".raw")]
        meta = json.loads((raw.parent / f"{name}.json").read_text())
        w, h = meta["width"], meta["height"]
        original = Image.frombytes("L", (w, h), raw.read_bytes())

        ours = (raw.parent / f"{name}.ours.wsq").read_bytes()

        def nbis_decode():
            im = Image.open(io.BytesIO(ours))
            im.load()
            return im

        decoded = nbis_decode()
        _, decode_ms = best_ms(lambda: _wsq.decompress(ours))
        if decoded.size != (w, h) or decoded.mode != "L":
            raise SystemExit(f"{name}: NBIS decoded our file as {decoded.size} {decoded.mode}")
        (raw.parent / f"{name}.nbisdec.raw").write_bytes(decoded.tobytes())

        def nbis_encode():
            buf = io.BytesIO()
            original.save(buf, "WSQ")
            return buf.getvalue()

        encoded = nbis_encode()
        pixels = raw.read_bytes()
        # The plugin passes (pixels, height, width, ratio); NBIS encodes at 0.75 bpp.
        _, encode_ms = best_ms(lambda: _wsq.compress(pixels, h, w, 12))
        (raw.parent / f"{name}.nbis.wsq").write_bytes(encoded)
        own = Image.open(io.BytesIO(encoded))
        (raw.parent / f"{name}.nbis.nbisdec.raw").write_bytes(own.tobytes())
        print(json.dumps({"name": name, "nbis_encode_ms": encode_ms, "nbis_decode_ms": decode_ms,
                          "nbis_bytes": len(encoded)}))


if __name__ == "__main__":
    main(sys.argv[1])
