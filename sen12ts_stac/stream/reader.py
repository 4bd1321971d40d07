"""The reader: one unit (a triplet, or a tile's series) read, decoded, normalised and augmented
straight into its row of the batch's arrays; ``collate`` hands the batch out as tensors.

With threads, each unit is decoded straight into its row of the batch's arrays (the row is
known from the unit's position), which ``collate`` then hands out without copying; the
per-sample path (arrays per unit, stacked by ``collate``) remains for worker processes and for
batches that a skipped unit has shifted.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import threading
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from rasterio.windows import Window

from sen12ts_stac.errors import UserError
from sen12ts_stac.spec.bands import CATEGORICAL
from sen12ts_stac.stream.read import AssetReadError, ReadOptions, read_bands
from sen12ts_stac.stream.record import TripletRecord
from sen12ts_stac.stream.transforms import Augment, crop, flip, normalising_affine

LABEL_IGNORE = -1


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
                want = [n for n in (names or have) if n not in CATEGORICAL]
                nostats = [n for n in want if n not in r.stats.get(key, {})]
                if nostats:
                    raise UserError(
                        f"normalize=True but collection {r.collection} has no statistics for {key} band(s) {nostats}"
                    )


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

    def __init__(
        self,
        units: Sequence[tuple[TripletRecord, ...]],
        plan: dict,
        *,
        sequence: bool,
        max_steps: int,
        normalize: bool,
        augment: Augment | None,
        seed: int,
        options: ReadOptions,
        batch_size: int,
        per_epoch: int,
        shared_buffers: bool = True,
        io_threads: int = 0,
    ):
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
        """``(a, b)`` (or None) so that the output is ``stored * a + b``: see
        :func:`~sen12ts_stac.stream.transforms.normalising_affine`; cached per layout."""
        ck = ("affine", key, names, id(r.stats.get(key)), r.scale.get(key), r.offset.get(key))
        if ck not in self._cache:
            self._cache[ck] = normalising_affine(r, key, names, idx, self.normalize)
        return self._cache[ck]

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

    def _decode(
        self,
        r: TripletRecord,
        key: str,
        window,
        late,
        hw,
        dst: np.ndarray | None,
        valid: np.ndarray | None,
        label: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Read ``key`` of ``r`` into ``dst`` (float32 [C, H, W] or int64 [H, W] for labels),
        converted in place; returns (data, valid, retries). ``dst`` None: arrays of its own."""
        idx, names = self._indexes(r, key)
        bands = [i + 1 for i in idx]
        direct = late is None and hw is not None
        if direct:
            if dst is None:
                dst = np.empty((1, *hw) if label else (len(idx), *hw), np.int64 if label else np.float32)
            target = dst[None] if (label and dst.ndim == 2) else dst
            _, retries = read_bands(
                r.hrefs[key], bands, window=window, options=self.options, expect_count=len(r.bands[key]), out=target
            )
        else:
            raw, retries = read_bands(
                r.hrefs[key], bands, window=window, options=self.options, expect_count=len(r.bands[key])
            )
            if late is not None:
                assert (
                    self.augment is not None and self.augment.crop is not None
                )  # late offsets come from augment.crop (_window)
                raw = crop(raw, self.augment.crop, late)
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
            return Failed(
                r.tile if self.sequence else r.id,
                e.href,
                e.reason,
                e.attempts,
                retries + e.attempts - 1,
                (epoch, b) if buf is not None else None,
            )
        flip(arrays, self.augment, rng)
        if self.sequence:
            meta = {
                "id": [x.id for x in unit[: self.max_steps]],
                "tile": r.tile,
                "s2_date": [x.s2_date.isoformat() for x in unit[: self.max_steps]],
            }
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
        for (_, key, t), (data, valid, _) in zip(jobs, results):
            if key == "labels":
                arrays["label"] = data
            elif t is None:
                arrays[key], arrays[f"{key}_valid"] = data, valid
            else:
                if key not in arrays:  # own arrays are sized by the first step
                    arrays[key] = out[key] if out is not None else np.zeros((self.max_steps, *data.shape), np.float32)
                    arrays[f"{key}_valid"] = (
                        out[f"{key}_valid"] if out is not None else np.zeros((self.max_steps, *valid.shape), bool)
                    )
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
    if isinstance(first, Slot) and all(
        isinstance(s, Slot) and s.buffer is first.buffer and s.row == i for i, s in enumerate(samples)
    ):
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
