"""Two CPU processes under torchrun (gloo): the loader takes its shard from torch.distributed,
and the shards are disjoint and cover the catalog, every epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sen12ts_stac.stream import load_index

WORKER = Path(__file__).parent / "streamfixtures" / "dist_worker.py"


@pytest.mark.slow
def test_torchrun_two_ranks_disjoint_and_covering(small_catalog, tmp_path):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "SEN12TS_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
        str(small_catalog),
        str(tmp_path),
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    everything = [r.id for r in load_index(small_catalog)]
    for epoch in range(2):
        a, b = ranks[0]["epochs"][epoch], ranks[1]["epochs"][epoch]
        assert not set(a) & set(b)
        assert sorted(a + b) == everything and abs(len(a) - len(b)) <= 1
    assert ranks[0]["epochs"][0] != ranks[0]["epochs"][1]  # reshuffled per epoch
    assert json.loads((tmp_path / "gathered.json").read_text()) == [r["epochs"] for r in ranks]
