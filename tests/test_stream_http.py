"""The loader over http on 127.0.0.1: same batches as from disk, only the asked-for bands on the
wire, and a server that fails, rate-limits and stalls: retries, and the skip policy."""

from __future__ import annotations

import collections
import dataclasses
import os

import pytest
import torch
from streamfixtures import private_stream_cache  # noqa: F401 (autouse)
from streamfixtures.servers import flaky_handler

from sen12ts_stac.stream import AssetReadError, load_index, triplet_loader

FAST_RETRY = {
    "retries": 4,
    "backoff": 0.02,
    "max_backoff": 0.1,
    "gdal_retries": 1,
    "gdal_retry_delay": 0.05,
    "timeout": 10,
}


@pytest.fixture(scope="module")
def local_records(small_catalog):
    return load_index(small_catalog)


@pytest.mark.slow
def test_http_batches_equal_local_batches(small_catalog, local_records, serve_dir):
    url = serve_dir(small_catalog) + "/catalog.json"
    kw = dict(
        batch_size=4,
        shuffle=True,
        seed=5,
        num_workers=4,
        split=local_records[0].split,
        assets={"s1": ["vh_t0", "coh_t0"], "s2": True, "label": True},
    )
    remote = list(triplet_loader(url, **kw))
    local = list(triplet_loader(small_catalog, **kw))
    assert [b["id"] for b in remote] == [b["id"] for b in local] and remote
    for a, b in zip(remote, local):
        for k in ("s1", "s2", "label", "s1_valid", "s2_valid"):
            assert torch.equal(a[k], b[k]), k


def test_only_requested_bands_cross_the_wire(small_catalog, local_records, serve_dir):
    handler = flaky_handler()
    base = serve_dir(small_catalog, handler=handler)
    records = load_index(base + "/catalog.json")[:6]
    list(triplet_loader(records, assets={"s1": ["vv_t0"]}, batch_size=3, num_workers=2))
    s1_paths = {p for p in handler.served_bytes if p.endswith("/s1.tif")}
    assert len(s1_paths) == 6
    served = sum(handler.served_bytes[p] for p in s1_paths)
    by_id = {r.id: r for r in local_records}
    on_disk = sum(os.path.getsize(by_id[r.id].hrefs["s1"]) for r in records)
    assert served < 0.25 * on_disk, (served, on_disk)  # 1 of 19 bands (+ headers), not the files
    assert all(rng for m, p, status, rng in handler.log if m == "GET" and p.endswith(".tif"))  # range requests only


def test_a_mostly_read_file_arrives_in_one_request(small_catalog, serve_dir):
    # all 19 S1 bands: the opening request carries the whole file; off, GDAL asks band run by run
    gets = {}
    for whole in (16 << 20, 0):
        handler = flaky_handler()
        base = serve_dir(small_catalog, handler=handler)
        records = load_index(base + "/catalog.json")[:3]
        loader = triplet_loader(
            records, assets={"s1": True}, batch_size=3, num_workers=1, read_options={"whole_file_bytes": whole}
        )
        batches = list(loader)
        per_file = collections.Counter(p for m, p, _, _ in handler.log if m == "GET" and p.endswith("/s1.tif"))
        assert len(per_file) == 3
        gets[whole] = max(per_file.values())
        if whole:
            first = batches
    assert gets[16 << 20] == 1 and gets[0] > 1, gets
    assert torch.equal(first[0]["s1"], batches[0]["s1"])


def test_flaky_and_slow_server_retries_until_every_triplet_is_read(small_catalog, local_records, serve_dir):
    # every .tif answers 503 / 429 to its first 3 requests, and every 7th request stalls 0.3 s
    handler = flaky_handler(fail_first=3, codes=(503, 429), delay=0.3, slow_every=7)
    base = serve_dir(small_catalog, handler=handler)
    records = load_index(base + "/catalog.json")[:8]
    loader = triplet_loader(
        records, batch_size=4, num_workers=4, assets={"s2": ["B04"], "label": True}, read_options=FAST_RETRY
    )
    ids = [i for b in loader for i in b["id"]]
    assert sorted(ids) == [r.id for r in records]
    assert loader.stats.skipped == 0 and loader.stats.retries > 0
    assert sum(1 for _, p, s, _ in handler.log if s in (429, 503) and p.endswith(".tif")) >= 3 * 8


def test_a_timed_out_request_is_retried(small_catalog, serve_dir):
    handler = flaky_handler(stall_first=2.5)  # the first request per file hangs past the 1 s timeout
    base = serve_dir(small_catalog, handler=handler)
    records = load_index(base + "/catalog.json")[:1]
    loader = triplet_loader(
        records,
        batch_size=1,
        num_workers=1,
        assets={"s2": ["B03"]},
        read_options={**FAST_RETRY, "timeout": 1, "gdal_retries": 0},
    )
    assert [i for b in loader for i in b["id"]] == [records[0].id]
    assert loader.stats.retries >= 1 and loader.stats.skipped == 0


def test_a_dead_asset_is_skipped_and_counted_or_raises_naming_its_url(small_catalog, serve_dir):
    records = load_index(small_catalog)
    dead = records[1].hrefs["s2"].split(str(small_catalog))[1]
    handler = flaky_handler(always_fail=(dead,))
    base = serve_dir(small_catalog, handler=handler)
    remote = load_index(base + "/catalog.json")[:6]
    skipping = triplet_loader(
        remote,
        batch_size=2,
        shuffle=False,
        num_workers=2,
        assets={"s2": ["B02"]},
        on_error="skip",
        read_options=FAST_RETRY,
    )
    ids = [i for b in skipping for i in b["id"]]
    assert ids == [r.id for r in remote if r.id != remote[1].id]
    assert skipping.stats.skipped == 1 and skipping.stats.retries >= FAST_RETRY["retries"]
    assert (
        f"{base}{dead}: HTTP response code: 503 after {FAST_RETRY['retries'] + 1} attempts"
        in skipping.stats.failures[0]
    )
    raising = triplet_loader(
        remote, batch_size=2, shuffle=False, num_workers=2, assets={"s2": ["B02"]}, read_options=FAST_RETRY
    )
    with pytest.raises(AssetReadError, match=f"{base}{dead}: HTTP response code: 503"):
        list(raising)
    # a 404 is not transient: one attempt, no retries
    gone = [dataclasses.replace(remote[0], hrefs={**remote[0].hrefs, "s2": base + "/missing/s2.tif"})]
    with pytest.raises(AssetReadError, match=r"/missing/s2.tif: .*404") as info:
        list(triplet_loader(gone, assets={"s2": ["B02"]}, num_workers=1, read_options=FAST_RETRY))
    assert info.value.attempts == 1


def test_the_files_of_a_remote_unit_are_fetched_concurrently(small_catalog, serve_dir):
    # every answer takes 50 ms; one worker thread: only the I/O pool can overlap requests
    results = {}
    for io_threads in (0, 4):
        handler = flaky_handler(delay=0.05, slow_every=1)
        base = serve_dir(small_catalog, handler=handler)
        records = load_index(base + "/catalog.json")[:2]
        handler.max_inflight = 0
        loader = triplet_loader(
            records,
            batch_size=1,
            shuffle=False,
            num_workers=1,
            io_threads=io_threads,
            assets={"s1": ["vv_t0"], "s2": ["B04"], "label": True},
        )
        results[io_threads] = [b["s2"] for b in loader]
        assert (handler.max_inflight == 1) if io_threads == 0 else (handler.max_inflight >= 2), io_threads
    assert all(torch.equal(a, b) for a, b in zip(results[0], results[4]))
