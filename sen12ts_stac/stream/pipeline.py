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

The parts live apart, in the manner of TorchGeo's datasets, samplers and transforms: the record
(:mod:`.record`), sampling (:mod:`.samplers`), reading (:mod:`.reader`), augmenting and
normalising (:mod:`.transforms`); this
module assembles them.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import torch
from torchdata.nodes import Batcher, Loader, Mapper, ParallelMapper, PinMemory, Prefetcher, SamplerWrapper
from torchdata.nodes.base_node import BaseNode

from sen12ts_stac.errors import UserError
from sen12ts_stac.stream.index import load_index
from sen12ts_stac.stream.read import ReadOptions
from sen12ts_stac.stream.reader import Failed, SampleReader, Slot, _check_bands, _plan, collate
from sen12ts_stac.stream.record import TripletRecord
from sen12ts_stac.stream.samplers import ShardSampler, _distributed, _units
from sen12ts_stac.stream.transforms import Augment

STATE_VERSION = 1


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
        return {
            "samples": self.samples,
            "skipped": self.skipped,
            "retries": self.retries,
            "failures": list(self.failures),
        }

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

    def __init__(
        self,
        records: Sequence[TripletRecord],
        *,
        plan: dict,
        batch_size: int,
        shuffle: bool,
        seed: int,
        device,
        num_workers: int,
        method: str,
        normalize: bool,
        augment: Augment | None,
        drop_last: bool,
        on_error: str,
        sequence: str | None,
        max_steps: int,
        rank: int,
        world_size: int,
        prefetch: int,
        pin_memory: bool,
        read_options: ReadOptions,
        even_shards: bool,
        io_threads: int,
    ):
        self.records = list(records)
        self.units = _units(self.records, sequence, max_steps)
        self.batch_size, self.drop_last, self.on_error = batch_size, drop_last, on_error
        self.rank, self.world_size, self.seed, self.shuffle = rank, world_size, seed, shuffle
        self.device = torch.device(device)
        self.pin_memory = pin_memory
        self.stats = LoaderStats()
        self.sampler = ShardSampler(
            len(self.units), rank=rank, world_size=world_size, shuffle=shuffle, seed=seed, even=even_shards
        )
        self._pending_epoch: int | None = None
        self._fingerprint = hashlib.sha1("\n".join(u[0].id for u in self.units).encode()).hexdigest()
        self.reader = SampleReader(
            self.units,
            plan,
            sequence=sequence is not None,
            max_steps=max_steps,
            normalize=normalize,
            augment=augment,
            seed=seed,
            options=read_options,
            batch_size=batch_size,
            per_epoch=len(self.sampler),
            shared_buffers=method == "thread" or num_workers == 0,
            io_threads=io_threads,
        )
        self._sampler_node = SamplerWrapper(self.sampler, initial_epoch=0, epoch_updater=self._next_epoch)
        node: BaseNode = self._sampler_node
        if num_workers > 0:
            node = ParallelMapper(
                node,
                self.reader,
                num_workers=num_workers,
                in_order=True,
                method=method,
                multiprocessing_context="spawn" if method == "process" else None,
            )
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
                    batch = {
                        k: v.to(self.device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
                        for k, v in batch.items()
                    }
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
        return {
            "version": STATE_VERSION,
            "fingerprint": self._fingerprint,
            "world_size": self.world_size,
            "rank": self.rank,
            "batch_size": self.batch_size,
            "loader": self._loader.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume from :meth:`state_dict` at the next ``iter``."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION or "loader" not in state:
            raise UserError("not a triplet_loader state_dict")
        mismatch = [
            k
            for k in ("fingerprint", "world_size", "rank", "batch_size")
            if state.get(k) != getattr(self, "_" + k if k == "fingerprint" else k)
        ]
        if mismatch:
            raise UserError(
                f"cannot resume: the saved loader differs in {', '.join(mismatch)} (same catalog, filters, "
                "sequence, world size, rank and batch size are needed)"
            )
        self._loader.load_state_dict(state["loader"])


def triplet_loader(
    catalog_or_records: str | os.PathLike | Sequence[TripletRecord],
    *,
    aoi=None,
    split=None,
    seasons=None,
    bbox=None,
    tiles=None,
    date_range=None,
    collections=None,
    assets: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    shuffle: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
    num_workers: int = 4,
    method: str = "thread",
    normalize: bool = False,
    augment: Mapping[str, Any] | None = None,
    drop_last: bool = False,
    on_error: str = "raise",
    sequence: str | None = None,
    max_steps: int = 16,
    rank: int | None = None,
    world_size: int | None = None,
    prefetch: int = 2,
    pin_memory: bool | None = None,
    even_shards: bool = False,
    io_threads: int | None = None,
    read_options: ReadOptions | Mapping[str, Any] | None = None,
    index_options: Mapping[str, Any] | None = None,
) -> TripletLoader:
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
        raise UserError(
            f"need batch_size >= 1, num_workers >= 0, prefetch >= 1 (got {batch_size}, {num_workers}, {prefetch})"
        )
    plan = _plan(assets)
    aug = Augment.make(augment)
    filters = dict(
        aoi=aoi, split=split, seasons=seasons, bbox=bbox, tiles=tiles, date_range=date_range, collections=collections
    )
    if isinstance(catalog_or_records, (str, os.PathLike)):
        records = load_index(catalog_or_records, **filters, **dict(index_options or {}))
        where = os.fspath(catalog_or_records)
    else:
        from sen12ts_stac.spec.filters import Filter

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
    return TripletLoader(
        records,
        plan=plan,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        device=dev,
        num_workers=num_workers,
        method=method,
        normalize=normalize,
        augment=aug,
        drop_last=drop_last,
        on_error=on_error,
        sequence=sequence,
        max_steps=max_steps,
        rank=r,
        world_size=ws,
        prefetch=prefetch,
        pin_memory=pin,
        read_options=read_options,
        even_shards=even_shards,
        io_threads=io,
    )
