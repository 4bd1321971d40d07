"""The loader: triplet records -> a ``torchdata.nodes`` graph -> batches of tensors on a device.

::

    SamplerWrapper(ShardSampler)      this rank's units for this epoch: (epoch, unit, position)
      -> ParallelMapper(SampleReader)  read + decode + normalise + augment, threads by default
      -> DropFailed                    on_error="skip": drop and count; "raise": pass the failure on
      -> Batcher(batch_size)
      -> Mapper(collate)               dict of tensors (+ lists of ids, tiles, dates)
      -> PinMemory                     only when the device is CUDA
      -> Prefetcher(prefetch)
      -> Loader                        state_dict() / load_state_dict(): resume mid-epoch

A *unit* is one triplet, or with ``sequence="tile"`` one tile's time series. Sharding happens
on units, before any read: every epoch all ranks draw the same seeded permutation and rank ``r``
takes positions ``r, r + world_size, ...``, so shards are disjoint and cover the set (sizes
differ by at most one unit unless ``even_shards=True``). Workers need no sharding of their own:
they are threads (or processes) fed by the one sampler of their rank.

With threads, each unit is decoded straight into its row of the batch's arrays (the row is
known from the unit's position), which ``collate`` then hands out without copying; the
per-sample path (arrays per unit, stacked by ``collate``) remains for worker processes and for
batches that a skipped unit has shifted.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import hashlib
import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from rasterio.windows import Window
from torch.utils.data import Sampler
from torchdata.nodes import Batcher, Loader, Mapper, ParallelMapper, PinMemory, Prefetcher, SamplerWrapper
from torchdata.nodes.base_node import BaseNode

from sen12ts_stac.errors import UserError
from sen12ts_stac.stream.index import TripletRecord, load_index
from sen12ts_stac.stream.read import AssetReadError, ReadOptions, read_bands

# Bands holding codes or masks: never normalised.
CATEGORICAL_BANDS = frozenset({"SCL", "cloud_mask", "valid", "class"})
LABEL_IGNORE = -1
STATE_VERSION = 1

# --------------------------------------------------------------------------------------------
# What to read
# --------------------------------------------------------------------------------------------


def _plan(assets: Mapping[str, Any] | None) -> dict[str, tuple[str, ...] | None]:
    """``{"s1": names | None (all), "s2": ..., "labels": None}`` from the user's ``assets``."""
    if assets is None:
        assets = {"s1": True, "s2": True, "label": True}
    plan: dict[str, tuple[str, ...] | None] = {}
    for key, value in assets.items():
        k = {"label": "labels"}.get(key, key)
        if k not in ("s1", "s2", "labels"):
            raise UserError(f"unknown asset {key!r} in assets; use s1, s2 and label")
        if value is False or value is None:
            continue
        if value is True:
            plan[k] = None
        elif isinstance(value, str):
            plan[k] = (value,)
        else:
            names = tuple(value)
            if not names:
                raise UserError(f"assets[{key!r}] is empty; give band names or True for all bands")
            if len(set(names)) != len(names):
                raise UserError(f"assets[{key!r}] names a band twice: {list(names)}")
            plan[k] = names
    if not plan:
        raise UserError("assets selects nothing to read")
    return plan


def _check_bands(records: Sequence[TripletRecord], plan: dict, normalize: bool) -> None:
    """Fail early, naming the band, when a requested band or its statistics are missing."""
    seen = set()
    for r in records:
        for key, names in plan.items():
            sig = (key, r.bands.get(key), id(r.stats.get(key)), r.hrefs.get(key) is None)
            if sig in seen:
                continue
            seen.add(sig)
            if key not in r.hrefs:
                raise UserError(f"{r.id}: has no {key!r} asset")
            have = r.bands[key]
            missing = [n for n in (names or ()) if n not in have]
            if missing:
                raise UserError(f"{key}: unknown band(s) {missing}; the catalog lists {list(have)}")
            if normalize and key != "labels":
                want = [n for n in (names or have) if n not in CATEGORICAL_BANDS]
                nostats = [n for n in want if n not in r.stats.get(key, {})]
                if nostats:
                    raise UserError(f"normalize=True but collection {r.collection} has no statistics for {key} band(s) {nostats}")


# --------------------------------------------------------------------------------------------
# Per-unit reading (runs in the worker threads / processes)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failed:
    """A unit that could not be read: travels down the pipeline instead of an exception."""

    unit: str
    href: str
    reason: str
    attempts: int = 1
    retries: int = 0
    slot: tuple[int, int] | None = None  # (epoch, batch) whose buffer row it leaves empty

    @property
    def error(self) -> AssetReadError:
        return AssetReadError(self.href, self.reason, self.attempts)


@dataclass(frozen=True, eq=False)
class Slot:
    """A unit decoded straight into row ``row`` of ``buffer``, the shared arrays of batch
    ``key`` = (epoch, batch number)."""

    buffer: "_BatchBuffer"
    key: tuple[int, int]
    row: int
    meta: dict
    retries: int = 0


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


class _BatchBuffer:
    """The arrays of one batch, allocated when its first unit starts; workers decode into rows."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.rows = next(iter(arrays.values())).shape[0]
        self.remaining = self.rows


class SampleReader:
    """``(epoch, unit index, position) -> Slot | sample dict | Failed``.

    With threads, a unit is decoded straight into its row of a batch buffer shared by the
    workers (batch = position // batch_size): the file bytes are decompressed once into the
    array the batch will hand out, with no per-sample arrays and no copy at collate time. Where
    that cannot work (worker processes, grids of unknown size) a unit comes back as a dict of
    its own arrays and :func:`collate` stacks them. Picklable (``method="process"``)."""

    def __init__(self, units: Sequence[tuple[TripletRecord, ...]], plan: dict, *, sequence: bool, max_steps: int,
                 normalize: bool, augment: Augment | None, seed: int, options: ReadOptions, batch_size: int,
                 per_epoch: int, shared_buffers: bool = True, io_threads: int = 0):
        self.units, self.plan, self.sequence, self.max_steps = units, plan, sequence, max_steps
        self.normalize, self.augment, self.seed, self.options = normalize, augment, seed, options
        self.batch_size, self.per_epoch, self.shared = batch_size, per_epoch, shared_buffers
        self._cache: dict = {}
        self.io_threads = io_threads
        self._pool: cf.ThreadPoolExecutor | None = None
        self._buffers: dict[tuple[int, int], _BatchBuffer] = {}
        self._lock = threading.Lock()

    def __getstate__(self):  # worker processes get no shared buffers (and make their own pool)
        state = dict(self.__dict__)
        state.update(shared=False, _buffers={}, _lock=None, _pool=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- band plan, statistics, windows -------------------------------------------------------

    def _indexes(self, r: TripletRecord, key: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
        ck = ("idx", key, r.bands[key])
        hit = self._cache.get(ck)
        if hit is None:
            names = self.plan[key] or r.bands[key]
            pos = {n: i for i, n in enumerate(r.bands[key])}
            hit = self._cache[ck] = (tuple(pos[n] for n in names), tuple(names))
        return hit

    def _affine(self, r: TripletRecord, key: str, names: tuple[str, ...], idx: tuple[int, ...]):
        """``(a, b)`` float32 [C, 1, 1] (or None for identity) so that the output is
        ``stored * a + b``: the raster:bands scale/offset, then (x - mean) / std when
        normalising (categorical bands are never normalised)."""
        ck = ("affine", key, names, id(r.stats.get(key)), r.scale.get(key), r.offset.get(key))
        if ck in self._cache:
            return self._cache[ck]
        a = np.array([r.scale[key][i] for i in idx], np.float64)
        b = np.array([r.offset[key][i] for i in idx], np.float64)
        if self.normalize:
            st = r.stats.get(key, {})
            for j, n in enumerate(names):
                if n in CATEGORICAL_BANDS or n not in st:
                    continue
                mean, std = st[n][0] * a[j] + b[j], st[n][1] * abs(a[j])
                a[j], b[j] = a[j] / std, (b[j] - mean) / std
        hit = None if (np.all(a == 1) and np.all(b == 0)) else \
            (a.astype(np.float32)[:, None, None], b.astype(np.float32)[:, None, None])
        self._cache[ck] = hit
        return hit

    def _window(self, r: TripletRecord, rng) -> tuple[Window | None, tuple[int, int] | None, tuple[int, int] | None]:
        """``(window, late crop offsets, output grid (h, w))``: the crop window is the same for
        every asset (and step) of a unit; when the grid size is unknown, the crop is cut after
        the read and the output size is only known then."""
        c = self.augment.crop if self.augment is not None else None
        if c is None:
            return None, None, r.shape
        if r.shape is None:
            return None, (int(rng.integers(0, 1 << 30)), int(rng.integers(0, 1 << 30))), (c, c)
        h, w = r.shape
        if c > h or c > w:
            raise UserError(f"augment crop {c} is larger than the {h} x {w} grid of {r.id}")
        return Window(int(rng.integers(0, w - c + 1)), int(rng.integers(0, h - c + 1)), c, c), None, (c, c)

    # -- buffers --------------------------------------------------------------------------------

    def _shapes(self, r: TripletRecord, hw: tuple[int, int]) -> dict[str, tuple[tuple[int, ...], Any]]:
        """Per-unit array shapes and dtypes of every output key."""
        t = (self.max_steps,) if self.sequence else ()
        out: dict[str, tuple[tuple[int, ...], Any]] = {}
        for key, names in self.plan.items():
            if key == "labels":
                out["label"] = (hw, np.int64)
                continue
            n = len(names) if names is not None else len(r.bands[key])
            out[key] = ((*t, n, *hw), np.float32)
            out[f"{key}_valid"] = ((*t, *hw), np.bool_)
        if self.sequence:
            out["valid_steps"] = ((self.max_steps,), np.bool_)
        return out

    def _slot(self, epoch: int, pos: int, r: TripletRecord, hw) -> tuple[_BatchBuffer | None, int, int]:
        """The batch buffer and row of the unit at ``pos`` of this epoch (None: own arrays)."""
        if not self.shared or hw is None:
            return None, -1, -1
        shapes = self._shapes(r, hw)
        b, row = divmod(pos, self.batch_size)
        with self._lock:
            buf = self._buffers.get((epoch, b))
            if buf is None:
                rows = min(self.batch_size, self.per_epoch - b * self.batch_size)
                alloc = np.zeros if self.sequence else np.empty  # padded steps must read as 0
                buf = _BatchBuffer({k: alloc((rows, *shape), dtype) for k, (shape, dtype) in shapes.items()})
                self._buffers[(epoch, b)] = buf
        if any(buf.arrays[k].shape[1:] != shape for k, (shape, _) in shapes.items()):
            return None, -1, -1  # a unit with other bands or another grid: its own arrays
        return buf, b, row

    def forget(self, key: tuple[int, int]) -> None:
        """The batch buffer ``key`` was handed out whole: new units must not find it."""
        with self._lock:
            self._buffers.pop(key, None)

    def release(self, key: tuple[int, int] | None) -> None:
        """One row of a batch buffer will not be handed out as part of it (copied or failed)."""
        if key is None:
            return
        with self._lock:
            buf = self._buffers.get(key)
            if buf is not None:
                buf.remaining -= 1
                if buf.remaining <= 0:
                    del self._buffers[key]

    def clear(self) -> None:
        with self._lock:
            self._buffers.clear()

    def close(self) -> None:
        """Let the I/O pool's threads go (it is made again when needed): no idle threads stay
        behind between epochs, e.g. when something forks the process."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- decoding -------------------------------------------------------------------------------

    def _decode(self, r: TripletRecord, key: str, window, late, hw, dst: np.ndarray | None, valid: np.ndarray | None,
                label: bool = False) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Read ``key`` of ``r`` into ``dst`` (float32 [C, H, W] or int64 [H, W] for labels),
        converted in place; returns (data, valid, retries). ``dst`` None: arrays of its own."""
        idx, names = self._indexes(r, key)
        bands = [i + 1 for i in idx]
        direct = late is None and hw is not None
        if direct:
            if dst is None:
                dst = np.empty((1, *hw) if label else (len(idx), *hw), np.int64 if label else np.float32)
            target = dst[None] if (label and dst.ndim == 2) else dst
            _, retries = read_bands(r.hrefs[key], bands, window=window, options=self.options,
                                    expect_count=len(r.bands[key]), out=target)
        else:
            raw, retries = read_bands(r.hrefs[key], bands, window=window, options=self.options,
                                      expect_count=len(r.bands[key]))
            if late is not None:
                raw = self._crop_after(raw, late)
            if dst is None:
                dst = np.empty(raw.shape, np.int64 if label else np.float32)
            (dst[None] if (label and dst.ndim == 2) else dst)[...] = raw
        nd = r.nodata.get(key)
        nan_nodata = isinstance(nd, float) and math.isnan(nd)
        if label:
            lab = dst.reshape(dst.shape[-2:])
            if nd is not None and not nan_nodata:
                lab[lab == nd] = LABEL_IGNORE
            return lab, None, retries
        # no-data: NaN (S1) or a value (S2); detected before scaling
        if nan_nodata:
            ok = np.isfinite(dst.sum(axis=0))
            invalid = None if ok.all() else ~np.isfinite(dst)
        elif nd is not None:
            eq = dst == np.float32(nd)
            ok = ~eq.any(axis=0)
            invalid = None if ok.all() else eq
        else:
            ok, invalid = None, None
        if invalid is not None and nan_nodata:
            dst[invalid] = 0  # keep NaN out of the arithmetic below
        aff = self._affine(r, key, names, idx)
        if aff is not None:
            dst *= aff[0]
            dst += aff[1]
        if invalid is not None:
            dst[invalid] = 0
        if valid is None:
            valid = np.ones(dst.shape[-2:], bool) if ok is None else ok
        else:
            valid[...] = True if ok is None else ok
        return dst, valid, retries

    def _crop_after(self, a: np.ndarray, offsets) -> np.ndarray:
        c = self.augment.crop
        h, w = a.shape[-2:]
        if c > h or c > w:
            raise UserError(f"augment crop {c} is larger than the {h} x {w} asset")
        r0, c0 = offsets[0] % (h - c + 1), offsets[1] % (w - c + 1)
        return a[..., r0:r0 + c, c0:c0 + c]

    def _flip(self, arrays: dict[str, np.ndarray], rng) -> None:
        """Flip every image array of the unit in place (same flips for all of them)."""
        if self.augment is None:
            return
        h = self.augment.hflip and rng.random() < 0.5
        v = self.augment.vflip and rng.random() < 0.5
        for k, a in arrays.items():
            if k == "valid_steps" or not (h or v):
                continue
            f = a[..., ::-1] if h else a
            f = f[..., ::-1, :] if v else f
            a[...] = f.copy()

    # -- one unit -------------------------------------------------------------------------------

    def __call__(self, job: tuple[int, int, int]):
        epoch, index, pos = job
        unit = self.units[index]
        r = unit[0]
        rng = np.random.default_rng((self.seed, epoch, index)) if self.augment is not None else None
        window, late, hw = self._window(r, rng)
        buf, b, row = self._slot(epoch, pos, r, hw)
        out = {k: a[row] for k, a in buf.arrays.items()} if buf is not None else None
        retries = 0
        try:
            arrays, retries = self._read_unit(unit, window, late, hw, out)
        except AssetReadError as e:
            return Failed(r.tile if self.sequence else r.id, e.href, e.reason, e.attempts, retries + e.attempts - 1,
                          (epoch, b) if buf is not None else None)
        self._flip(arrays, rng)
        if self.sequence:
            meta = {"id": [x.id for x in unit[: self.max_steps]], "tile": r.tile,
                    "s2_date": [x.s2_date.isoformat() for x in unit[: self.max_steps]]}
        else:
            meta = {"id": r.id, "tile": r.tile, "s2_date": r.s2_date.isoformat()}
        if buf is not None:
            return Slot(buf, (epoch, b), row, meta, retries)
        return {**arrays, **meta, "_retries": retries}

    def _read_unit(self, unit, window, late, hw, out: dict | None) -> tuple[dict, int]:
        """Decode every asset (and step) of a unit into ``out`` (or new arrays). The files of a
        remote unit are read concurrently on the I/O pool, so its latency is that of its
        slowest file, not the sum over its files."""
        steps = unit[: self.max_steps] if self.sequence else unit[:1]
        jobs: list[tuple[TripletRecord, str, int | None]] = []
        for key in self.plan:
            if key == "labels":
                jobs.append((unit[0], key, None))
            else:
                jobs += [(rec, key, t if self.sequence else None) for t, rec in enumerate(steps)]

        def run(job):
            rec, key, t = job
            if key == "labels":
                return self._decode(rec, key, window, late, hw, None if out is None else out["label"], None, label=True)
            d = v = None
            if out is not None:
                d, v = (out[key], out[f"{key}_valid"]) if t is None else (out[key][t], out[f"{key}_valid"][t])
            return self._decode(rec, key, window, late, hw, d, v)

        pool = self._io_pool() if len(jobs) > 1 and any("://" in h for h in unit[0].hrefs.values()) else None
        results = list(pool.map(run, jobs)) if pool is not None else [run(j) for j in jobs]
        arrays: dict[str, np.ndarray] = {}
        for (rec, key, t), (data, valid, _) in zip(jobs, results):
            if key == "labels":
                arrays["label"] = data
            elif t is None:
                arrays[key], arrays[f"{key}_valid"] = data, valid
            else:
                if key not in arrays:  # own arrays are sized by the first step
                    arrays[key] = out[key] if out is not None else np.zeros((self.max_steps, *data.shape), np.float32)
                    arrays[f"{key}_valid"] = out[f"{key}_valid"] if out is not None else \
                        np.zeros((self.max_steps, *valid.shape), bool)
                if out is None:
                    arrays[key][t], arrays[f"{key}_valid"][t] = data, valid
        if self.sequence:
            vs = out["valid_steps"] if out is not None else np.zeros(self.max_steps, bool)
            vs[: len(steps)] = True
            arrays["valid_steps"] = vs
        return arrays, sum(r[2] for r in results)

    def _io_pool(self) -> cf.ThreadPoolExecutor | None:
        if self.io_threads <= 0:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = cf.ThreadPoolExecutor(max_workers=self.io_threads, thread_name_prefix="sen12ts-io")
            return self._pool


def collate(samples: list, reader: SampleReader | None = None) -> dict | Failed:
    """A dict of tensors (``[B, ...]``) and lists (ids, tiles, dates). A batch whose units were
    decoded into one shared buffer, in order, is handed out as it is (no copy); otherwise the
    units' arrays are stacked. A failed unit (only present with ``on_error="raise"``) makes the
    whole batch that failure."""
    for s in samples:
        if isinstance(s, Failed):
            return s
    arrays = None
    first = samples[0]
    if isinstance(first, Slot) and all(isinstance(s, Slot) and s.buffer is first.buffer and s.row == i
                                       for i, s in enumerate(samples)):
        arrays = first.buffer.arrays
        if first.buffer.rows != len(samples):  # the epoch's last batch lost units at its end
            arrays = {k: a[: len(samples)] for k, a in arrays.items()}
        if reader is not None:
            reader.forget(first.key)
    metas = [s.meta if isinstance(s, Slot) else s for s in samples]
    if arrays is None:
        rows = [{k: a[s.row] for k, a in s.buffer.arrays.items()} if isinstance(s, Slot) else s for s in samples]
        arrays = {k: np.stack([row[k] for row in rows]) for k, v in rows[0].items() if isinstance(v, np.ndarray)}
        if reader is not None:
            for s in samples:
                if isinstance(s, Slot):
                    reader.release(s.key)
    out: dict[str, Any] = {k: torch.from_numpy(a) for k, a in arrays.items()}
    for k in ("id", "tile", "s2_date"):
        out[k] = [m[k] for m in metas]
    return out


# --------------------------------------------------------------------------------------------
# Sampling, sharding, failure policy
# --------------------------------------------------------------------------------------------


class ShardSampler(Sampler):
    """Yields ``(epoch, unit index, position in this rank's epoch)``: a permutation seeded by
    ``(seed, epoch)`` (identity when ``shuffle=False``), positions ``rank::world_size``; with
    ``even=True`` every rank gets ``n // world_size`` units (the remainder is dropped, a
    different one each epoch)."""

    def __init__(self, n: int, *, rank: int = 0, world_size: int = 1, shuffle: bool = True, seed: int = 0,
                 even: bool = False):
        self.n, self.rank, self.world_size, self.shuffle, self.seed, self.even = n, rank, world_size, shuffle, seed, even
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self, epoch: int | None = None) -> np.ndarray:
        e = self.epoch if epoch is None else epoch
        order = np.random.default_rng((self.seed, e)).permutation(self.n) if self.shuffle else np.arange(self.n)
        mine = order[self.rank::self.world_size]
        return mine[: self.n // self.world_size] if self.even else mine

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        e = self.epoch
        for pos, i in enumerate(self.indices(e)):
            yield (e, int(i), pos)

    def __len__(self) -> int:
        if self.even:
            return self.n // self.world_size
        return len(range(self.rank, self.n, self.world_size))


@dataclass
class LoaderStats:
    """Running counts since the loader was made: units delivered, units skipped
    (``on_error="skip"``), read retries, and the last few failures (href: reason)."""

    samples: int = 0
    skipped: int = 0
    retries: int = 0
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, item) -> None:
        with self._lock:
            if isinstance(item, Failed):
                self.skipped += 1
                self.retries += item.retries
                self.failures = (self.failures + [str(item.error)])[-20:]
            else:
                self.samples += 1
                self.retries += item.retries if isinstance(item, Slot) else item.get("_retries", 0)

    def as_dict(self) -> dict:
        return {"samples": self.samples, "skipped": self.skipped, "retries": self.retries, "failures": list(self.failures)}

    def __getitem__(self, key: str):
        return self.as_dict()[key]


class DropFailed(BaseNode):
    """Counts every unit; with ``skip=True`` drops failed ones, else passes them on (the loader
    raises them in the consumer's thread, as one clean :class:`AssetReadError`)."""

    SOURCE_KEY = "source"

    def __init__(self, source: BaseNode, skip: bool, stats: LoaderStats, reader: SampleReader | None = None):
        super().__init__()
        self.source, self.skip, self.stats, self.reader = source, skip, stats, reader

    def reset(self, initial_state: dict | None = None):
        super().reset(initial_state)
        self.source.reset(initial_state[self.SOURCE_KEY] if initial_state is not None else None)

    def next(self):
        while True:
            item = next(self.source)
            if isinstance(item, Failed):
                if self.skip:
                    self.stats.record(item)
                    if self.reader is not None:
                        self.reader.release(item.slot)
                    continue
                return item
            self.stats.record(item)
            return item

    def get_state(self) -> dict:
        return {self.SOURCE_KEY: self.source.state_dict()}


def _distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None or world_size is not None:
        if rank is None or world_size is None:
            raise UserError("give both rank and world_size, or neither")
        if not (world_size >= 1 and 0 <= rank < world_size):
            raise UserError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        return int(rank), int(world_size)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _units(records: Sequence[TripletRecord], sequence: str | None, max_steps: int) -> list[tuple[TripletRecord, ...]]:
    if sequence is None:
        return [(r,) for r in records]
    if sequence != "tile":
        raise UserError(f"sequence must be None or 'tile', got {sequence!r}")
    if max_steps < 1:
        raise UserError(f"max_steps must be at least 1, got {max_steps}")
    by_tile: dict[str, list[TripletRecord]] = {}
    for r in records:
        by_tile.setdefault(r.tile, []).append(r)
    units = []
    for tile in sorted(by_tile):
        steps = sorted(by_tile[tile], key=lambda r: (r.s2_date, r.id))
        if len(steps) > max_steps:  # keep the year's spread: evenly spaced steps
            keep = np.unique(np.linspace(0, len(steps) - 1, max_steps).round().astype(int))
            steps = [steps[i] for i in keep]
        units.append(tuple(steps))
    return units


# --------------------------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------------------------


class TripletLoader:
    """Iterable of batches (dicts of tensors on ``device``). Made by :func:`triplet_loader`.

    * ``for batch in loader`` runs one epoch; the next ``for`` runs the next epoch with a new
      order (or call :meth:`set_epoch` first, as with ``DistributedSampler``).
    * :meth:`state_dict` / :meth:`load_state_dict`: save mid-epoch and resume on a fresh
      loader built with the same arguments: the remaining units of that epoch, none repeated,
      none lost.
    * :attr:`stats`: units delivered, skipped, retries, recent failures.
    * ``len(loader)``: batches per epoch for this rank (fewer if units are skipped).
    """

    def __init__(self, records: Sequence[TripletRecord], *, plan: dict, batch_size: int, shuffle: bool, seed: int,
                 device, num_workers: int, method: str, normalize: bool, augment: Augment | None, drop_last: bool,
                 on_error: str, sequence: str | None, max_steps: int, rank: int, world_size: int, prefetch: int,
                 pin_memory: bool, read_options: ReadOptions, even_shards: bool, io_threads: int):
        self.records = list(records)
        self.units = _units(self.records, sequence, max_steps)
        self.batch_size, self.drop_last, self.on_error = batch_size, drop_last, on_error
        self.rank, self.world_size, self.seed, self.shuffle = rank, world_size, seed, shuffle
        self.device = torch.device(device)
        self.pin_memory = pin_memory
        self.stats = LoaderStats()
        self.sampler = ShardSampler(len(self.units), rank=rank, world_size=world_size, shuffle=shuffle, seed=seed,
                                    even=even_shards)
        self._pending_epoch: int | None = None
        self._fingerprint = hashlib.sha1("\n".join(u[0].id for u in self.units).encode()).hexdigest()
        self.reader = SampleReader(self.units, plan, sequence=sequence is not None, max_steps=max_steps,
                                   normalize=normalize, augment=augment, seed=seed, options=read_options,
                                   batch_size=batch_size, per_epoch=len(self.sampler),
                                   shared_buffers=method == "thread" or num_workers == 0, io_threads=io_threads)
        self._sampler_node = SamplerWrapper(self.sampler, initial_epoch=0, epoch_updater=self._next_epoch)
        node: BaseNode = self._sampler_node
        if num_workers > 0:
            node = ParallelMapper(node, self.reader, num_workers=num_workers, in_order=True, method=method,
                                  multiprocessing_context="spawn" if method == "process" else None)
        else:
            node = Mapper(node, self.reader)
        node = DropFailed(node, skip=on_error == "skip", stats=self.stats, reader=self.reader)
        node = Batcher(node, batch_size=batch_size, drop_last=drop_last)
        node = Mapper(node, functools.partial(collate, reader=self.reader))
        if pin_memory:
            node = PinMemory(node)
        node = Prefetcher(node, prefetch_factor=prefetch)
        self._loader = Loader(node)

    # -- epochs ---------------------------------------------------------------------------------

    def _next_epoch(self, epoch: int) -> int:
        if self._pending_epoch is not None:
            return self._pending_epoch
        return epoch + 1

    @property
    def epoch(self) -> int:
        """The epoch the current (or next, if none is running) iteration uses."""
        return self._sampler_node.epoch

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next iteration (and count on from it). Call it before ``iter``."""
        self._pending_epoch = int(epoch)
        self._sampler_node.epoch = int(epoch)

    # -- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict]:
        self.reader.clear()  # buffers of an abandoned iteration
        it = iter(self._loader)
        self._pending_epoch = None
        non_blocking = self.pin_memory and self.device.type == "cuda"
        try:
            for batch in it:
                if isinstance(batch, Failed):
                    self.stats.record(batch)
                    raise batch.error
                if self.device.type != "cpu":
                    batch = {k: v.to(self.device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
                             for k, v in batch.items()}
                yield batch
        finally:
            self.reader.close()

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def num_units(self) -> int:
        """Units (triplets, or tiles with ``sequence="tile"``) this rank reads per epoch."""
        return len(self.sampler)

    def shard_ids(self, epoch: int | None = None) -> list[str]:
        """The ids (first triplet of each unit) this rank reads in ``epoch``, in order."""
        return [self.units[i][0].id for i in self.sampler.indices(epoch)]

    # -- resume ---------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Where this loader is: pass it to :meth:`load_state_dict` of a loader made with the
        same catalog, filters, seed, batch size and world size."""
        return {"version": STATE_VERSION, "fingerprint": self._fingerprint, "world_size": self.world_size,
                "rank": self.rank, "batch_size": self.batch_size, "loader": self._loader.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Resume from :meth:`state_dict` at the next ``iter``."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION or "loader" not in state:
            raise UserError("not a triplet_loader state_dict")
        mismatch = [k for k in ("fingerprint", "world_size", "rank", "batch_size") if state.get(k) != getattr(self, "_" + k if k == "fingerprint" else k)]
        if mismatch:
            raise UserError(f"cannot resume: the saved loader differs in {', '.join(mismatch)} (same catalog, filters, "
                            "sequence, world size, rank and batch size are needed)")
        self._loader.load_state_dict(state["loader"])


def triplet_loader(catalog_or_records: str | os.PathLike | Sequence[TripletRecord], *, aoi=None, split=None,
                   seasons=None, bbox=None, tiles=None, date_range=None, collections=None,
                   assets: Mapping[str, Any] | None = None, batch_size: int = 8, shuffle: bool = True, seed: int = 0,
                   device: str | torch.device = "cpu", num_workers: int = 4, method: str = "thread",
                   normalize: bool = False, augment: Mapping[str, Any] | None = None, drop_last: bool = False,
                   on_error: str = "raise", sequence: str | None = None, max_steps: int = 16,
                   rank: int | None = None, world_size: int | None = None, prefetch: int = 2,
                   pin_memory: bool | None = None, even_shards: bool = False, io_threads: int | None = None,
                   read_options: ReadOptions | Mapping[str, Any] | None = None,
                   index_options: Mapping[str, Any] | None = None) -> TripletLoader:
    """Stream triplets as batches of tensors.

    ``catalog_or_records``: anything :func:`~sen12ts_stac.stream.load_index` accepts (folder,
    catalog.json, http(s) URL, STAC API, ``mlhub+`` URL, ``.parquet``), or a list of
    :class:`TripletRecord` (the filters then apply to it). ``index_options`` go to
    ``load_index`` (``cache_dir``, ``concurrency``, ``api_key``, ...).

    ``assets``: ``{"s1": [band names] | True, "s2": [...] | True, "label": True}``; a missing or
    False key is not read (default: everything). Only the named bands are read from the files.

    Each batch is a dict (tensors on ``device``):

    * ``s1`` float32 ``[B, C, H, W]`` (physical units, dB / rad / deg...); ``s1_valid`` bool
      ``[B, H, W]``: True where every requested S1 band has data. NaN no-data is set to 0
      (after normalisation, so 0 is the band mean).
    * ``s2`` float32 ``[B, C, H, W]``: reflectance 0..1 for the spectral bands (``raster:bands``
      scale applied), ``SCL`` and ``cloud_mask`` as stored; ``s2_valid`` as for S1 (-32768 -> 0).
    * ``label`` int64 ``[B, H, W]``: class codes, no-data 255 -> -1 (use ``ignore_index=-1``).
    * ``id``, ``tile``, ``s2_date``: lists of str.

    With ``sequence="tile"`` a unit is one tile's triplets sorted by S2 date (at most
    ``max_steps``, evenly spaced over the year when there are more): ``s1``/``s2`` are
    ``[B, T, C, H, W]`` zero-padded to ``T = max_steps``, ``s1_valid``/``s2_valid``
    ``[B, T, H, W]``, ``valid_steps`` bool ``[B, T]``, ``label`` ``[B, H, W]`` (the tile's),
    ``id`` and ``s2_date`` lists of lists, ``tile`` a list.

    ``normalize=True``: ``(x - mean) / std`` per band with the statistics of the catalog's
    collections (``item_assets`` ``raster:bands`` statistics, scaled like the data); the bands
    ``SCL``, ``cloud_mask``, ``valid`` are left alone. ``augment``: ``{"hflip": True, "vflip":
    True, "crop": 128}``: random flips (p = 0.5 each) and a random ``crop`` x ``crop`` window,
    the same for every asset (and every time step) of a unit, seeded by ``(seed, epoch, unit)``.

    ``shuffle``/``seed``: a new seeded order every epoch. ``rank``/``world_size``: the shard
    (default: from ``torch.distributed`` if initialised, else 0/1). ``num_workers`` threads
    (``method="thread"``) or processes (``"process"``) read in parallel; ``prefetch`` batches are
    prepared ahead; ``pin_memory`` defaults to True on CUDA. For remote assets, the files of a
    unit (S1, S2, label, and every step of a sequence) are fetched concurrently on a pool of
    ``io_threads`` threads (default ``4 x num_workers``, at most 64; 0 reads them one by one).

    ``on_error="raise"``: a bad asset stops the epoch with :class:`AssetReadError` naming its
    href; ``"skip"``: the unit is dropped and counted in ``loader.stats``. Transient HTTP errors
    are retried first (``read_options``: :class:`ReadOptions` or a dict of its fields).
    """
    if on_error not in ("raise", "skip"):
        raise UserError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if method not in ("thread", "process"):
        raise UserError(f"method must be 'thread' or 'process', got {method!r}")
    if batch_size < 1 or num_workers < 0 or prefetch < 1:
        raise UserError(f"need batch_size >= 1, num_workers >= 0, prefetch >= 1 (got {batch_size}, {num_workers}, {prefetch})")
    plan = _plan(assets)
    aug = Augment.make(augment)
    filters = dict(aoi=aoi, split=split, seasons=seasons, bbox=bbox, tiles=tiles, date_range=date_range,
                   collections=collections)
    if isinstance(catalog_or_records, (str, os.PathLike)):
        records = load_index(catalog_or_records, **filters, **dict(index_options or {}))
        where = os.fspath(catalog_or_records)
    else:
        from sen12ts_stac.stream.index import Filter

        flt = Filter.make(**filters)
        records = sorted((r for r in catalog_or_records if flt.match(r)), key=lambda r: r.id)
        where = "the given records"
    if not records:
        given = ", ".join(f"{k}={v!r}" for k, v in filters.items() if v is not None) or "no filters"
        raise UserError(f"{where}: no triplets match ({given})")
    _check_bands(records, plan, normalize)
    r, ws = _distributed(rank, world_size)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but CUDA is not available")
    pin = (dev.type == "cuda") if pin_memory is None else bool(pin_memory and dev.type == "cuda")
    io = min(64, 4 * max(1, num_workers)) if io_threads is None else int(io_threads)
    if read_options is None:
        read_options = ReadOptions()
    elif not isinstance(read_options, ReadOptions):
        read_options = ReadOptions(**dict(read_options))
    return TripletLoader(records, plan=plan, batch_size=batch_size, shuffle=shuffle, seed=seed, device=dev,
                         num_workers=num_workers, method=method, normalize=normalize, augment=aug,
                         drop_last=drop_last, on_error=on_error, sequence=sequence, max_steps=max_steps, rank=r,
                         world_size=ws, prefetch=prefetch, pin_memory=pin, read_options=read_options,
                         even_shards=even_shards, io_threads=io)
