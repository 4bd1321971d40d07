"""Which units a rank reads, and in which order: rank/worker sharding on units before any read
(every epoch all ranks draw the same seeded permutation and rank ``r`` takes positions ``r, r +
world_size, ...``), and how records are grouped into units (one triplet, or a tile's series)."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from sen12ts_stac.errors import UserError
from sen12ts_stac.stream.record import TripletRecord


class ShardSampler(Sampler):
    """Yields ``(epoch, unit index, position in this rank's epoch)``: a permutation seeded by
    ``(seed, epoch)`` (identity when ``shuffle=False``), positions ``rank::world_size``; with
    ``even=True`` every rank gets ``n // world_size`` units (the remainder is dropped, a
    different one each epoch)."""

    def __init__(
        self, n: int, *, rank: int = 0, world_size: int = 1, shuffle: bool = True, seed: int = 0, even: bool = False
    ):
        self.n, self.rank, self.world_size, self.shuffle, self.seed, self.even = (
            n,
            rank,
            world_size,
            shuffle,
            seed,
            even,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self, epoch: int | None = None) -> np.ndarray:
        e = self.epoch if epoch is None else epoch
        order = np.random.default_rng((self.seed, e)).permutation(self.n) if self.shuffle else np.arange(self.n)
        mine = order[self.rank :: self.world_size]
        return mine[: self.n // self.world_size] if self.even else mine

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        e = self.epoch
        for pos, i in enumerate(self.indices(e)):
            yield (e, int(i), pos)

    def __len__(self) -> int:
        if self.even:
            return self.n // self.world_size
        return len(range(self.rank, self.n, self.world_size))


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
