"""From a catalog's triplet records to what a recipe trains and reports on: which tiles train,
which monitor, which are the held-out report (the catalog's spatial ``ml-aoi:split``), the label
class table of the AOI, per-band standardisation from the catalog's statistics, vegetation
indices from the streamed reflectance, and per-sample months."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from sen12ts_stac.errors import UserError
from sen12ts_stac.metrics import evi, ndvi
from sen12ts_stac.spec.aois import AOIS
from sen12ts_stac.spec.classes import ClassTable, class_table
from sen12ts_stac.stream import TripletRecord
from sen12ts_stac.stream.transforms import physical_stats
from sen12ts_stac.train.config import EVAL_SPLITS


@dataclass
class SplitPlan:
    """``train`` fits the model; ``monitor`` (validate, only when test exists too) is evaluated
    during training and picks the best checkpoint; ``report`` is where the final metrics come
    from. ``note`` says when the catalog lacks a split and what was done instead."""

    train: list[TripletRecord]
    monitor: list[TripletRecord]
    report: list[TripletRecord]
    report_split: str
    note: str | None = None

    def summary(self) -> dict:
        def count(rs):
            return {"triplets": len(rs), "tiles": len({r.tile for r in rs})}

        return {
            "train": count(self.train),
            "monitor": count(self.monitor),
            "report": count(self.report),
            "report_split": self.report_split,
            "note": self.note,
        }


def plan_splits(records: Sequence[TripletRecord], eval_split: str = "auto") -> SplitPlan:
    """Train on the ``train`` split; report on ``test`` (``auto``: test, else validate, else the
    training tiles themselves, with a note) and monitor on ``validate`` when both exist."""
    if eval_split not in EVAL_SPLITS:
        raise UserError(f"eval_split must be one of {', '.join(EVAL_SPLITS)}, got {eval_split!r}")
    by = {s: [r for r in records if r.split == s] for s in ("train", "validate", "test")}
    if not by["train"]:
        have = dict(Counter(r.split for r in records))
        raise UserError(f"the catalog has no triplets in the train split (splits: {have or 'none'})")
    note = None
    if eval_split == "auto":
        if by["test"]:
            report = "test"
        elif by["validate"]:
            report, note = "validate", "the catalog has no test tiles: metrics are on the validate split"
        else:
            report, note = (
                "train",
                (
                    "the catalog has no validate or test tiles: metrics are on the TRAINING tiles "
                    "and say nothing about generalisation (make a catalog with more tiles)"
                ),
            )
    else:
        report = eval_split
        if not by[report]:
            raise UserError(f"the catalog has no triplets in the {report} split")
        if report == "train":
            note = "metrics are on the TRAINING tiles (eval_split=train)"
    monitor = by["validate"] if report == "test" else []
    return SplitPlan(by["train"], monitor, by[report], report, note)


def label_table(records: Sequence[TripletRecord]) -> ClassTable | None:
    """The class table of the records' AOI (CDL, SIGPAC, WorldCover), None if unknown; an error
    if they mix AOIs whose labels use different tables."""
    tables = {AOIS[r.aoi.lower()].label_table if r.aoi.lower() in AOIS else None for r in records}
    if len(tables) > 1:
        raise UserError(
            f"the triplets mix AOIs with different label tables ({sorted(map(str, tables))}); choose one with --aoi"
        )
    t = tables.pop() if tables else None
    return class_table(t) if t else None


def class_name(table: ClassTable | None, value: int) -> str:
    if value < 0:
        return "unlabelled"
    if table is not None and value in table:
        return table.name(value).strip()
    return f"class {value}"


def crop_lut(table: ClassTable | None, device, size: int = 256) -> torch.Tensor:
    """Bool lookup ``lut[code]`` = the class is cropland (the table's crop flags)."""
    lut = torch.zeros(size, dtype=torch.bool)
    if table is not None:
        for v in table.crop_values:
            if v < size:
                lut[v] = True
    return lut.to(device)


def lookup(lut: torch.Tensor, labels: torch.Tensor, missing=0) -> torch.Tensor:
    """``lut[labels]`` with labels < 0 (ignored) or beyond the table mapped to ``missing``."""
    ok = (labels >= 0) & (labels < lut.numel())
    out = lut[labels.clamp(0, lut.numel() - 1)]
    return torch.where(ok, out, torch.as_tensor(missing, dtype=lut.dtype, device=lut.device))


class Standardizer:
    """``(x - mean) / std`` per band with the train-split statistics of each triplet's collection
    (physical units, as the loader's ``normalize=True``), applied on the device; pixels marked
    invalid become 0 (the band mean). ``records`` are every triplet the batches may hold: a sample
    finds its collection's statistics by its id."""

    def __init__(self, records: Sequence[TripletRecord], key: str, names: Sequence[str], device):
        self.names = list(names)
        groups: dict[str | None, int] = {}
        means, stds = [], []
        self._group: dict[str, int] = {}
        for r in records:
            g = groups.get(r.collection)
            if g is None:
                g = groups[r.collection] = len(groups)
                m, s = self._stats(r, key)
                means.append(m)
                stds.append(s)
            self._group[r.id] = g
        self.mean = torch.tensor(means, dtype=torch.float32, device=device)  # [G, C]
        self.std = torch.tensor(stds, dtype=torch.float32, device=device)

    def _stats(self, r: TripletRecord, key: str) -> tuple[list[float], list[float]]:
        stats = physical_stats(r, key, self.names)  # the loader's normalize=True uses the same
        missing = [n for n, st in zip(self.names, stats) if st is None]
        if missing:
            raise UserError(f"collection {r.collection} has no statistics for {key} band(s) {missing}")
        present = [st for st in stats if st is not None]  # all of them
        return [m for m, _ in present], [sd for _, sd in present]

    def __call__(self, x: torch.Tensor, valid: torch.Tensor | None = None, ids: Sequence | None = None) -> torch.Tensor:
        """``x`` ``[B, C, H, W]`` or ``[B, T, C, H, W]``; ``valid`` ``[B, (T,) H, W]`` bool; ``ids``
        the batch's ids (lists per sample for tile series), needed when collections differ."""
        if len(self.mean) == 1:
            mean, std = self.mean[0], self.std[0]
        else:
            if ids is None:
                raise ValueError("the records come from several collections: pass the batch ids")
            g = torch.tensor([self._group[i if isinstance(i, str) else i[0]] for i in ids], device=x.device)
            mean, std = self.mean[g], self.std[g]  # [B, C]
            lead = (x.shape[0],) + (1,) * (x.dim() - 4)
            mean, std = mean.view(*lead, -1), std.view(*lead, -1)
        y = (x - mean[..., None, None]) / std[..., None, None]
        if valid is not None:
            y = y * valid.unsqueeze(-3).to(y.dtype)
        return y

    def as_dict(self) -> dict:
        """Per band ``{"mean", "stddev"}`` (of the first collection, when there are several)."""
        return {n: {"mean": float(m), "stddev": float(s)} for n, m, s in zip(self.names, self.mean[0], self.std[0])}


VI_BANDS = {"evi": ("B02", "B04", "B08"), "ndvi": ("B04", "B08")}


def vegetation_index(kind: str, s2: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """EVI or NDVI ``[B, H, W]`` from a reflectance (0..1) batch ``[B, C, H, W]`` whose bands are
    ``names``; NaN where undefined (see :func:`sen12ts_stac.metrics.evi`)."""
    kind = kind.lower()
    if kind not in VI_BANDS:
        raise UserError(f"target must be evi or ndvi, got {kind!r}")
    idx = {n: i for i, n in enumerate(names)}
    bands = [s2[:, idx[n]] for n in VI_BANDS[kind]]
    if kind == "evi":
        blue, red, nir = bands
        return evi(blue, red, nir, scale=1.0)
    red, nir = bands
    return ndvi(red, nir, scale=1.0)


def months(dates: Sequence[str]) -> np.ndarray:
    """Month number (1..12) of each ISO date."""
    return np.array([dt.date.fromisoformat(d[:10]).month for d in dates], dtype=np.int64)
