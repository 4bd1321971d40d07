"""Run under ``torchrun --nproc_per_node N``: each rank streams two epochs of a catalog with the
shard taken from torch.distributed (gloo, CPU) and writes the ids it read to OUT/rank<r>.json;
rank 0 also writes what ``all_gather_object`` collected."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

from sen12ts_stac.stream import triplet_loader


def main(catalog: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    loader = triplet_loader(catalog, batch_size=3, seed=11, num_workers=2, assets={"s2": ["B04"], "label": True})
    assert (loader.rank, loader.world_size) == (rank, world)
    epochs = [[i for batch in loader for i in batch["id"]] for _ in range(2)]
    Path(out, f"rank{rank}.json").write_text(json.dumps({"rank": rank, "world": world, "epochs": epochs}))
    gathered: list = [None] * world
    dist.all_gather_object(gathered, epochs)
    if rank == 0:
        Path(out, "gathered.json").write_text(json.dumps(gathered))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
