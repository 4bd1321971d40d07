"""create on a Dask distributed cluster (two worker processes) writes exactly the catalog a
local run writes: same items, same bytes in every file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sen12ts_stac.collect.executors import dask_executor
from sen12ts_stac.collect.run import CreateConfig, create
from sen12ts_stac.errors import UserError

pytest.importorskip("distributed")


def _checksums(root: Path) -> dict[str, str]:
    """Every file of the catalog (not the run state, whose records hold timings)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".sen12ts" not in p.parts
    }


@pytest.mark.slow
def test_dask_cluster_gives_the_identical_catalog(small_catalog, tmp_path):
    # the small_catalog fixture's settings: california, 6 tiles, summer and fall, seed 0
    config = CreateConfig(aoi="california", out=tmp_path, max_tiles=6, seasons=("summer", "fall"), seed=0)
    with dask_executor(local_workers=2) as executor:
        client = executor._client
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers.values())
        assert len({w["id"] for w in workers.values()}) == 2
        pids = set(client.run(__import__("os").getpid).values())
        assert len(pids) == 2, "workers must be separate processes"
        summary = create(config, executor=executor, progress=False)
    assert summary.tiles_done_now == 6
    local, remote = _checksums(small_catalog), _checksums(tmp_path)
    items = sorted(Path(k).stem for k in local if k.count("/") == 4 and k.endswith(".json"))
    assert items and items == sorted(Path(k).stem for k in remote if k.count("/") == 4 and k.endswith(".json"))
    assert local == remote


def test_bad_scheduler_is_one_clear_error():
    with pytest.raises(UserError, match="cannot reach the Dask scheduler"):
        with dask_executor(scheduler="tcp://127.0.0.1:1", timeout=2):
            pass
    with pytest.raises(UserError, match="expected an address"):
        with dask_executor(scheduler="somewhere"):
            pass
    with pytest.raises(UserError, match="not both"):
        with dask_executor(scheduler="tcp://127.0.0.1:1", local_workers=2):
            pass
    with dask_executor() as ex:
        assert ex is None
