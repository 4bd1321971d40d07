"""The loader on a local catalog: batch contents against direct rasterio reads, band subsets,
normalisation, augmentation, tile sequences, epochs, resume, sharding and the bad-asset policy."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import rasterio
import torch
from streamfixtures import private_stream_cache  # noqa: F401 (autouse)

from sen12ts_stac.errors import UserError
from sen12ts_stac.stream import AssetReadError, load_index, triplet_loader


@pytest.fixture(scope="module")
def records(small_catalog):
    return load_index(small_catalog)


def _raw(href, bands=None):
    with rasterio.open(href) as ds:
        return ds.read(bands)


def _epoch(loader) -> list[str]:
    return [i for b in loader for i in b["id"]]


def test_batches_match_the_files(records):
    loader = triplet_loader(records, batch_size=4, shuffle=False, num_workers=2)
    batches = list(loader)
    assert len(batches) == len(loader) == -(-len(records) // 4)
    b = batches[0]
    assert b["s1"].dtype == torch.float32 and b["s1"].shape == (4, 19, 256, 256)
    assert b["s2"].dtype == torch.float32 and b["s2"].shape == (4, 14, 256, 256)
    assert b["label"].dtype == torch.int64 and b["label"].shape == (4, 256, 256)
    assert b["s1_valid"].dtype == torch.bool and b["s1_valid"].shape == (4, 256, 256)
    assert b["id"] == [r.id for r in records[:4]] and b["tile"] == [r.tile for r in records[:4]]
    assert b["s2_date"] == [r.s2_date.isoformat() for r in records[:4]]
    r = records[0]
    s1, s2, lab = _raw(r.hrefs["s1"]), _raw(r.hrefs["s2"]), _raw(r.hrefs["labels"], 1)
    np.testing.assert_array_equal(b["s1"][0].numpy(), np.nan_to_num(s1, nan=0.0))
    np.testing.assert_array_equal(b["s1_valid"][0].numpy(), ~np.isnan(s1).any(0))
    refl = np.where(s2[:12] == -32768, 0, s2[:12].astype(np.float32) * np.float32(1e-4))
    np.testing.assert_allclose(b["s2"][0, :12].numpy(), refl, rtol=1e-6)
    assert 0 <= float(b["s2"][:, :12].min()) and float(b["s2"][:, :12].max()) <= 1.0
    np.testing.assert_array_equal(b["s2"][0, 12:].numpy(), s2[12:].astype(np.float32))  # SCL, cloud mask as stored
    np.testing.assert_array_equal(b["label"][0].numpy(), np.where(lab == 255, -1, lab.astype(np.int64)))
    assert _epoch(loader) == [r.id for r in records]
    assert loader.stats.samples == 2 * len(records) and loader.stats.skipped == 0


def test_only_the_named_bands(records):
    loader = triplet_loader(
        records[:3], assets={"s1": ["vv_t0", "lia"], "s2": ["B04", "SCL"]}, batch_size=3, shuffle=False, num_workers=1
    )
    b = next(iter(loader))
    assert set(b) == {"s1", "s1_valid", "s2", "s2_valid", "id", "tile", "s2_date"}
    assert b["s1"].shape == (3, 2, 256, 256) and b["s2"].shape == (3, 2, 256, 256)
    s1 = _raw(records[0].hrefs["s1"], [2, 17])
    np.testing.assert_array_equal(b["s1"][0].numpy(), np.nan_to_num(s1))
    s2 = _raw(records[0].hrefs["s2"], [4, 13])
    np.testing.assert_allclose(b["s2"][0, 0].numpy(), s2[0] * np.float32(1e-4), rtol=1e-6)
    np.testing.assert_array_equal(b["s2"][0, 1].numpy(), s2[1])
    with pytest.raises(UserError, match=r"s2: unknown band\(s\) \['B10'\]"):
        triplet_loader(records, assets={"s2": ["B10"]})
    with pytest.raises(UserError, match="unknown asset"):
        triplet_loader(records, assets={"dem": True})


def test_normalize_uses_the_catalog_statistics(records):
    loader = triplet_loader(
        records[:2],
        assets={"s1": ["vh_t0", "valid"], "s2": ["B08", "SCL"]},
        normalize=True,
        batch_size=2,
        shuffle=False,
        num_workers=1,
    )
    b = next(iter(loader))
    r = records[0]
    mean, std = r.stats["s1"]["vh_t0"]
    raw = _raw(r.hrefs["s1"], [1, 19])
    valid = ~np.isnan(raw).any(0)
    np.testing.assert_allclose(b["s1"][0, 0].numpy()[valid], ((raw[0] - mean) / std)[valid], rtol=1e-4, atol=1e-5)
    assert float(b["s1"][0, 0].numpy()[~valid].__abs__().sum()) == 0.0
    np.testing.assert_array_equal(b["s1"][0, 1].numpy()[valid], raw[1][valid])  # the validity band stays 0/1
    m8, s8 = r.stats["s2"]["B08"]
    raw2 = _raw(r.hrefs["s2"], [8, 13])
    np.testing.assert_allclose(b["s2"][0, 0].numpy(), (raw2[0] * 1e-4 - m8 * 1e-4) / (s8 * 1e-4), rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(b["s2"][0, 1].numpy(), raw2[1])  # SCL untouched
    no_stats = [dataclasses.replace(x, stats={}) for x in records[:2]]
    with pytest.raises(UserError, match="no statistics for s1 band"):
        triplet_loader(no_stats, normalize=True)


def test_augmentations_are_the_same_on_every_modality(records):
    plain = next(iter(triplet_loader(records[:8], batch_size=8, shuffle=False, num_workers=2)))
    flips = next(
        iter(
            triplet_loader(
                records[:8], batch_size=8, shuffle=False, num_workers=2, augment={"hflip": True, "vflip": True}
            )
        )
    )
    seen = set()
    for i in range(8):
        for h in (False, True):
            for v in (False, True):

                def f(x, h=h, v=v):
                    x = x.flip(-1) if h else x
                    return x.flip(-2) if v else x

                if torch.equal(f(plain["s2"][i]), flips["s2"][i]):
                    assert torch.equal(f(plain["s1"][i]), flips["s1"][i])
                    assert torch.equal(f(plain["label"][i]), flips["label"][i])
                    assert torch.equal(f(plain["s1_valid"][i]), flips["s1_valid"][i])
                    seen.add((h, v))
                    break
            else:
                continue
            break
        else:
            pytest.fail(f"sample {i}: no flip of the original matches")
    assert len(seen) >= 2  # the flips really vary
    crops = next(iter(triplet_loader(records[:4], batch_size=4, shuffle=False, num_workers=2, augment={"crop": 64})))
    assert crops["s1"].shape == (4, 19, 64, 64) and crops["label"].shape == (4, 64, 64)
    for i in range(4):
        full, part = plain["s2"][i, 3].numpy(), crops["s2"][i, 3].numpy()
        hits = [
            (r, c)
            for r, c in np.argwhere(full == part[0, 0])
            if r <= 192 and c <= 192 and np.array_equal(full[r : r + 64, c : c + 64], part)
        ]
        assert len(hits) == 1
        r, c = hits[0]
        assert torch.equal(plain["label"][i, r : r + 64, c : c + 64], crops["label"][i])
        assert torch.equal(plain["s1"][i, :, r : r + 64, c : c + 64], crops["s1"][i])
    with pytest.raises(UserError, match="larger than the 256 x 256 grid"):
        next(iter(triplet_loader(records[:1], augment={"crop": 300}, num_workers=0)))
    with pytest.raises(UserError, match="unknown augmentation"):
        triplet_loader(records, augment={"rotate": True})


def test_tile_sequences(records):
    loader = triplet_loader(
        records,
        sequence="tile",
        max_steps=6,
        batch_size=2,
        shuffle=False,
        num_workers=2,
        assets={"s1": ["vv_t0"], "s2": ["B04", "B08"], "label": True},
    )
    tiles = sorted({r.tile for r in records})
    batches = list(loader)
    assert [t for b in batches for t in b["tile"]] == tiles
    b = batches[0]
    assert b["s1"].shape == (2, 6, 1, 256, 256) and b["s2"].shape == (2, 6, 2, 256, 256)
    assert (
        b["s1_valid"].shape == (2, 6, 256, 256)
        and b["valid_steps"].shape == (2, 6)
        and b["label"].shape == (2, 256, 256)
    )
    for j, tile in enumerate(b["tile"]):
        mine = sorted((r for r in records if r.tile == tile), key=lambda r: r.s2_date)
        n = min(6, len(mine))
        assert int(b["valid_steps"][j].sum()) == n and bool(b["valid_steps"][j, :n].all())
        assert b["s2_date"][j] == sorted(b["s2_date"][j]) and len(b["id"][j]) == n
        if len(mine) <= 6:
            assert b["id"][j] == [r.id for r in mine]
        assert float(b["s2"][j, n:].abs().sum()) == 0.0  # padding
        first = next(r for r in records if r.id == b["id"][j][0])
        np.testing.assert_allclose(b["s2"][j, 0, 1].numpy(), _raw(first.hrefs["s2"], 8) * np.float32(1e-4), rtol=1e-6)
        lab = _raw(first.hrefs["labels"], 1)
        np.testing.assert_array_equal(b["label"][j].numpy(), np.where(lab == 255, -1, lab))


def test_epochs_reshuffle_and_are_reproducible(records):
    make = lambda: triplet_loader(records, batch_size=5, seed=3, num_workers=2, assets={"label": True})  # noqa: E731
    a = make()
    e0, e1 = _epoch(a), _epoch(a)
    assert sorted(e0) == sorted(e1) == [r.id for r in records] and e0 != e1
    assert _epoch(make()) == e0
    b = make()
    b.set_epoch(1)
    assert _epoch(b) == e1 and b.epoch == 1
    assert _epoch(b) != e1 and b.epoch == 2  # counts on from the epoch that was set
    assert a.shard_ids(0) == e0 and a.shard_ids(1) == e1
    other_seed = triplet_loader(records, batch_size=5, seed=4, num_workers=2, assets={"label": True})
    assert _epoch(other_seed) != e0


@pytest.mark.parametrize("stop_after", [1, 3])
def test_resume_mid_epoch_without_repeats_or_losses(records, stop_after):
    make = lambda: triplet_loader(records, batch_size=3, seed=7, num_workers=2, assets={"label": True})  # noqa: E731
    reference = make()
    epoch0, epoch1 = _epoch(reference), _epoch(reference)
    first = make()
    seen = []
    for k, batch in enumerate(first):
        seen += batch["id"]
        if k + 1 == stop_after:
            break
    state = first.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    rest = _epoch(resumed)
    assert seen + rest == epoch0
    assert len(set(seen + rest)) == len(records)
    assert _epoch(resumed) == epoch1  # and the next epoch carries on as if never interrupted
    with pytest.raises(UserError, match="cannot resume"):
        triplet_loader(records, batch_size=4, seed=7, num_workers=2, assets={"label": True}).load_state_dict(state)


def test_shards_are_disjoint_and_cover(records):
    for ws in (2, 3):
        shards = [
            triplet_loader(records, rank=r, world_size=ws, batch_size=4, seed=1, num_workers=1, assets={"label": True})
            for r in range(ws)
        ]
        for _epoch_no in (0, 1):
            ids = [_epoch(s) for s in shards]
            flat = [i for s in ids for i in s]
            assert sorted(flat) == [r.id for r in records] and len(set(flat)) == len(flat)
            assert max(map(len, ids)) - min(map(len, ids)) <= 1
    even = [
        triplet_loader(records, rank=r, world_size=3, even_shards=True, num_workers=1, assets={"label": True})
        for r in range(3)
    ]
    assert len({e.num_units for e in even}) == 1 and even[0].num_units == len(records) // 3
    with pytest.raises(UserError, match="rank < world_size"):
        triplet_loader(records, rank=2, world_size=2)


def test_bad_asset_raises_with_its_href_or_is_skipped_and_counted(records, tmp_path):
    broken = tmp_path / "s2.tif"
    shutil.copy(records[2].hrefs["s2"], broken)
    broken.write_bytes(broken.read_bytes()[:3000])  # header intact, tiles cut off
    bad = [dataclasses.replace(r, hrefs={**r.hrefs, "s2": str(broken)}) if i == 2 else r for i, r in enumerate(records)]
    loader = triplet_loader(bad, batch_size=2, shuffle=False, num_workers=2, on_error="raise")
    with pytest.raises(AssetReadError, match=str(broken)) as info:
        _epoch(loader)
    assert "\n" not in str(info.value) and info.value.href == str(broken)
    missing = [
        dataclasses.replace(r, hrefs={**r.hrefs, "labels": str(tmp_path / "gone.tif")}) if i == 5 else r
        for i, r in enumerate(bad)
    ]
    skipping = triplet_loader(missing, batch_size=2, shuffle=False, num_workers=2, on_error="skip")
    got = _epoch(skipping)
    assert got == [r.id for i, r in enumerate(records) if i not in (2, 5)]
    assert skipping.stats.skipped == 2 and skipping.stats["samples"] == len(records) - 2
    assert any(str(broken) in f for f in skipping.stats.failures) and any(
        "gone.tif" in f for f in skipping.stats.failures
    )
    assert [
        len(b["id"])
        for b in triplet_loader(missing, batch_size=4, shuffle=False, num_workers=2, on_error="skip", drop_last=True)
    ] == [4] * ((len(records) - 2) // 4)


def test_argument_errors(records, small_catalog):
    with pytest.raises(UserError, match="on_error"):
        triplet_loader(records, on_error="ignore")
    with pytest.raises(UserError, match="no triplets match"):
        triplet_loader(small_catalog, aoi="iowa")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            triplet_loader(records, device="cuda")
    with pytest.raises(UserError, match="sequence"):
        triplet_loader(records, sequence="month")


@pytest.mark.slow
def test_process_workers_give_the_same_batches(records):
    kw = dict(batch_size=4, shuffle=True, seed=2, assets={"s2": ["B04"], "label": True}, augment={"hflip": True})
    threads = list(triplet_loader(records[:8], num_workers=2, **kw))
    procs = list(triplet_loader(records[:8], num_workers=2, method="process", **kw))
    assert [b["id"] for b in threads] == [b["id"] for b in procs]
    for a, b in zip(threads, procs):
        assert torch.equal(a["s2"], b["s2"]) and torch.equal(a["label"], b["label"])
