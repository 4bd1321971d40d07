"""What is done to the pixels after they are read, kept apart from reading (as TorchGeo keeps
its transforms): the augmentations (random crop and flips, the same for every array of a unit)
and the one normalisation from catalog statistics that the loader and the training code share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from sen12ts_stac.errors import UserError
from sen12ts_stac.spec.bands import CATEGORICAL
from sen12ts_stac.stream.record import TripletRecord


@dataclass(frozen=True)
class Augment:
    hflip: bool = False
    vflip: bool = False
    crop: int | None = None

    @classmethod
    def make(cls, augment: Mapping[str, Any] | None) -> "Augment | None":
        if not augment:
            return None
        bad = set(augment) - {"hflip", "vflip", "crop"}
        if bad:
            raise UserError(f"unknown augmentation(s) {sorted(bad)}; use hflip, vflip, crop")
        crop = augment.get("crop")
        if crop is not None and (not isinstance(crop, int) or crop < 1):
            raise UserError(f"augment crop must be a positive int (pixels), got {crop!r}")
        return cls(bool(augment.get("hflip")), bool(augment.get("vflip")), crop)


def crop(a: np.ndarray, size: int, offsets: tuple[int, int]) -> np.ndarray:
    """A ``size`` x ``size`` view of ``a``'s last two axes at the seeded ``offsets`` (folded into
    the array)."""
    h, w = a.shape[-2:]
    if size > h or size > w:
        raise UserError(f"augment crop {size} is larger than the {h} x {w} asset")
    r0, c0 = offsets[0] % (h - size + 1), offsets[1] % (w - size + 1)
    return a[..., r0 : r0 + size, c0 : c0 + size]


def flip(arrays: dict[str, np.ndarray], augment: Augment | None, rng) -> None:
    """Flip every image array of a unit in place (the same flips for all of them)."""
    if augment is None:
        return
    h = augment.hflip and rng.random() < 0.5
    v = augment.vflip and rng.random() < 0.5
    for k, a in arrays.items():
        if k == "valid_steps" or not (h or v):
            continue
        f = a[..., ::-1] if h else a
        f = f[..., ::-1, :] if v else f
        a[...] = f.copy()


def physical_stats(r: TripletRecord, key: str, names: Sequence[str]) -> list[tuple[float, float] | None]:
    """Per band of ``names``: ``(mean, std)`` in physical units (the collection's train-split
    statistics, stored units, through the band's scale/offset), or None for a band without
    statistics or that holds codes or a mask (never normalised)."""
    stats = r.stats.get(key, {})
    pos = {n: i for i, n in enumerate(r.bands[key])}
    scale = r.scale.get(key) or (1.0,) * len(pos)
    offset = r.offset.get(key) or (0.0,) * len(pos)
    out: list[tuple[float, float] | None] = []
    for n in names:
        if n in CATEGORICAL or n not in stats or n not in pos:
            out.append(None)
            continue
        a, b = scale[pos[n]], offset[pos[n]]
        m, s = stats[n]
        out.append((m * a + b, max(abs(s * a), 1e-12)))
    return out


def normalising_affine(
    r: TripletRecord, key: str, names: Sequence[str], idx: Sequence[int], normalize: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(a, b)`` float32 [C, 1, 1] such that ``stored * a + b`` is the band in physical units
    (raster:bands scale/offset) and, with ``normalize``, then ``(x - mean) / std``
    (:func:`physical_stats`); None when that is the identity."""
    a = np.array([r.scale[key][i] for i in idx], np.float64)
    b = np.array([r.offset[key][i] for i in idx], np.float64)
    if normalize:
        for j, st in enumerate(physical_stats(r, key, names)):
            if st is not None:
                mean, std = st
                a[j], b[j] = a[j] / std, (b[j] - mean) / std
    if np.all(a == 1) and np.all(b == 0):
        return None
    return a.astype(np.float32)[:, None, None], b.astype(np.float32)[:, None, None]
