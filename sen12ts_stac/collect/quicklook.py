"""Quick-look PNGs so a browser shows pictures: S1 false colour, S2 true colour, label colours."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from sen12ts_stac.spec import bands
from sen12ts_stac.spec.classes import ClassTable

SIZE = 128  # pixels a side: small enough to commit and to load many at once in a browser


def _png(rgb: np.ndarray, alpha: np.ndarray | None = None) -> bytes:
    img = Image.fromarray(rgb, "RGB")
    if alpha is not None:
        img.putalpha(Image.fromarray(np.where(alpha, 255, 0).astype(np.uint8)))
    img = img.resize((SIZE, SIZE), Image.Resampling.BOX if alpha is None else Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _stretch(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip((np.nan_to_num(x, nan=lo) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def s1_png(data: np.ndarray) -> bytes:
    """R = VV, G = VH, B = VV - VH at the newest date (the usual dual-pol false colour)."""
    vh, vv = data[bands.S1.index(["vh_t0", "vv_t0"])]
    rgb = np.stack([_stretch(vv, -20, -3), _stretch(vh, -28, -10), _stretch(vv - vh, 0, 14)], -1)
    return _png(rgb)


def s2_png(data: np.ndarray) -> bytes:
    """True colour (B04, B03, B02), reflectance 0-0.3 with a gamma of 1/1.6."""
    rgb = data[bands.S2.index(["B04", "B03", "B02"])].astype(np.float32) * bands.S2_REFLECTANCE_SCALE
    rgb = (np.clip(rgb / 0.3, 0, 1) ** (1 / 1.6) * 255).astype(np.uint8).transpose(1, 2, 0)
    return _png(rgb)


def label_png(data: np.ndarray, table: ClassTable) -> bytes:
    """Class colours from the label's class table; no-data transparent."""
    classes = data[0]
    return _png(table.rgb_lut(256)[classes], alpha=classes != bands.LABEL.nodata)
