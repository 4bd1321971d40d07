"""Training building blocks (fast, no catalog): config layering and errors, split planning,
the closed-form baselines, class choice and weights, the ignore index, the loss on unlabelled
batches, vegetation indices on reflectance, standardisation, scale bars."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sen12ts_stac.errors import UserError
from sen12ts_stac.spec.classes import class_table
from sen12ts_stac.stream import TripletRecord
from sen12ts_stac.train import config as cfgmod
from sen12ts_stac.train.baselines import PixelLinearFit
from sen12ts_stac.train.config import opt
from sen12ts_stac.train.data import Standardizer, crop_lut, lookup, plan_splits, vegetation_index
from sen12ts_stac.train.figures import scale_bar_label, scale_bar_px
from sen12ts_stac.train.mlm import catalog_href

TRAINING = Path(__file__).resolve().parents[1] / "training"


def recipe(name: str):
    """Import training/<name>.py as a module (the recipes are scripts, not package modules)."""
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", TRAINING / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@dataclasses.dataclass
class Toy:
    catalog: str = opt("", "where")
    epochs: int = opt(3, "epochs")
    lr: float = opt(1e-3, "rate")
    amp: bool = opt(True, "mixed precision")
    crop: int | None = opt(64, "crop")
    bands: list[str] = opt(["a", "b"], "bands")

    def check(self):
        if not self.catalog:
            raise UserError("give the catalog: --catalog PATH_OR_URL")


def test_config_layers_defaults_yaml_flags(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("epochs: 5\nlr: 0.01\ncrop: null\nbands: [x, y, z]\ncatalog: /data\n")
    cfg, extra = cfgmod.parse(Toy, ["--config", str(y), "--epochs", "7", "--amp", "false"], "toy", "")
    got = (cfg.catalog, cfg.epochs, cfg.lr, cfg.amp, cfg.crop, cfg.bands)
    assert got == ("/data", 7, 0.01, False, None, ["x", "y", "z"])
    assert extra == {"config_path": str(y), "resume": None}
    cfg, extra = cfgmod.parse(Toy, ["--catalog", "c", "--bands", "p,q", "--resume"], "toy", "")
    assert cfg.bands == ["p", "q"] and cfg.epochs == 3 and extra["resume"] == "auto"
    # the saved config reads back to the same object
    cfgmod.save(cfg, tmp_path / "saved.yaml")
    again, _ = cfgmod.parse(Toy, ["--config", str(tmp_path / "saved.yaml")], "toy", "")
    assert again == cfg


@pytest.mark.parametrize(
    "argv,yaml_text,message",
    [
        (["--epochs", "two"], None, "--epochs: expected int, got 'two'"),
        (["--amp", "maybe"], None, "--amp: expected bool"),
        (["--nope", "1"], None, "unrecognized arguments: --nope 1"),
        ([], "epochs: 2\nbogus: 1\n", "unknown option 'bogus'"),
        ([], "- a\n- b\n", "a config file must be a mapping"),
        ([], "epochs: [1\n", "not valid YAML"),
    ],
)
def test_config_errors_name_the_culprit(tmp_path, argv, yaml_text, message):
    if yaml_text is not None:
        y = tmp_path / "bad.yaml"
        y.write_text(yaml_text)
        argv = ["--config", str(y), "--catalog", "c", *argv]
    else:
        argv = ["--catalog", "c", *argv]
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")) as e:
        cfgmod.parse(Toy, argv, "toy", "")
    if yaml_text is not None and "YAML" not in message and "mapping" not in message:
        assert "bad.yaml" in str(e.value)


def test_config_requires_catalog_and_checks_recipe_rules():
    with pytest.raises(UserError, match="--catalog"):
        cfgmod.parse(Toy, [], "toy", "")
    sar = recipe("sar2vi")
    with pytest.raises(UserError, match="--crop 48 must be a multiple of 32"):
        cfgmod.parse(sar.Config, ["--catalog", "c", "--gen-depth", "5", "--crop", "48"], "sar2vi", "")
    with pytest.raises(UserError, match="evi or ndvi"):
        cfgmod.parse(sar.Config, ["--catalog", "c", "--target", "savi"], "sar2vi", "")
    crop = recipe("crop_classification")
    with pytest.raises(UserError, match="--inputs must be"):
        cfgmod.parse(crop.Config, ["--catalog", "c", "--inputs", "s3"], "crop", "")
    cfg, _ = cfgmod.parse(crop.Config, ["--catalog", "c", "--inputs", "S2, s1"], "crop", "")
    assert cfg.variants() == ["s1,s2"]
    cfg, _ = cfgmod.parse(crop.Config, ["--catalog", "c", "--inputs", "all"], "crop", "")
    assert cfg.variants() == ["s1", "s2", "s1,s2"]


def _rec(i: int, split: str, tile: str) -> TripletRecord:
    return TripletRecord(
        id=f"t{i}",
        aoi="california",
        tile=tile,
        split=split,
        season="summer",
        s2_date=dt.date(2020, 7, 1),
        radar_dates=(),
        bbox=(0, 0, 1, 1),
        hrefs={},
        bands={},
        nodata={},
    )


def test_split_plan_reports_on_held_out_tiles_and_says_when_it_cannot():
    full = [_rec(0, "train", "a"), _rec(1, "train", "b"), _rec(2, "validate", "c"), _rec(3, "test", "d")]
    p = plan_splits(full)
    assert (p.report_split, [r.id for r in p.report], [r.id for r in p.monitor], p.note) == (
        "test",
        ["t3"],
        ["t2"],
        None,
    )
    p = plan_splits(full[:3])
    assert p.report_split == "validate" and not p.monitor and "no test tiles" in p.note
    p = plan_splits(full[:2])
    assert p.report_split == "train" and "TRAINING tiles" in p.note
    with pytest.raises(UserError, match="no triplets in the train split"):
        plan_splits(full[2:])
    with pytest.raises(UserError, match="no triplets in the test split"):
        plan_splits(full[:3], "test")


def test_pixel_linear_fit_recovers_coefficients_and_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 8, 8, generator=g)
    y = 0.3 + 0.5 * x[:, 0] - 0.2 * x[:, 2]
    mask = torch.ones(6, 8, 8, dtype=torch.bool)
    mask[:, :2] = False
    y_noisy = torch.where(mask, y, torch.full_like(y, 99.0))  # masked pixels must not count
    fit = PixelLinearFit(3)
    fit.update(x[:3], y_noisy[:3], mask[:3])
    fit.update(x[3:], y_noisy[3:], mask[3:])
    fit.finish()
    np.testing.assert_allclose(fit.coef, [0.3, 0.5, 0.0, -0.2], atol=1e-6)
    assert fit.mean == pytest.approx(float(y[mask].double().mean()), abs=1e-9)
    again = PixelLinearFit.from_state(fit.state())
    torch.testing.assert_close(again.predict(x), y.clamp(-1, 1), atol=1e-5, rtol=0)


def test_classes_are_crops_by_frequency_and_others_are_ignored_not_class_0():
    crop = recipe("crop_classification")
    cdl = class_table("cdl")
    counts = np.zeros(256, np.int64)
    counts[[176, 75, 36, 61, 3, 121]] = [900, 500, 300, 800, 100, 50]  # grass, almonds, alfalfa, fallow, rice, urban
    cfg = crop.Config(catalog="c", top_k=2)
    assert crop.choose_classes(cfg, counts, cdl) == [75, 36]  # 176 / 61 are more frequent but not crops
    assert crop.choose_classes(dataclasses.replace(cfg, crop_only=False), counts, cdl) == [176, 61]
    assert crop.choose_classes(dataclasses.replace(cfg, classes=[3, 75]), counts, cdl) == [3, 75]
    with pytest.raises(UserError, match="do not occur"):
        crop.choose_classes(dataclasses.replace(cfg, classes=[1]), counts, cdl)
    w = crop.balanced_weights(counts, [75, 36, 3])
    np.testing.assert_allclose(w, 900 / (3 * np.array([500, 300, 100])))
    assert np.dot(w, counts[[75, 36, 3]]) == pytest.approx(counts[[75, 36, 3]].sum())  # balanced: sum w*n = N

    prep = crop.Prepare.__new__(crop.Prepare)  # only the label mapping
    lut = torch.full((256,), -1, dtype=torch.int64)
    lut[torch.tensor([75, 36])] = torch.arange(2)
    prep.lut = lut
    labels = torch.tensor([[75, 36, 0, 176, -1, 255]])
    assert prep.target(labels).tolist() == [[0, 1, -1, -1, -1, -1]]


def test_weighted_loss_is_finite_without_labelled_pixels_and_weights_count():
    crop = recipe("crop_classification")
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = torch.full((2, 4, 4), -1)
    loss = crop.weighted_ce(logits, y, torch.ones(3))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(logits.grad).all()
    y[0, 0, 0], y[1, 1, 1] = 0, 2
    w = torch.tensor([1.0, 1.0, 3.0])
    manual = (
        torch.nn.functional.cross_entropy(logits[0:1, :, 0, 0], y[0:1, 0, 0])
        + 3 * torch.nn.functional.cross_entropy(logits[1:2, :, 1, 1], y[1:2, 1, 1])
    ) / 4
    assert float(crop.weighted_ce(logits, y, w).detach()) == pytest.approx(float(manual.detach()), rel=1e-5)


def test_vegetation_index_on_reflectance_uses_the_right_scale():
    names = ["B02", "B04", "B08", "cloud_mask"]
    s2 = torch.tensor([0.04, 0.05, 0.40, 1.0]).view(1, 4, 1, 1)
    e = float(vegetation_index("evi", s2, names))
    assert e == pytest.approx(2.5 * (0.40 - 0.05) / (0.40 + 6 * 0.05 - 7.5 * 0.04 + 1))
    n = float(vegetation_index("ndvi", s2, names))
    assert n == pytest.approx(0.35 / 0.45)
    # the original's bug: L = 1 applied to x10000 values makes L vanish; EVI would be 0.81 here
    assert e == pytest.approx(0.625, abs=1e-6)


def test_standardizer_uses_catalog_statistics_in_physical_units():
    r = dataclasses.replace(
        _rec(0, "train", "a"),
        bands={"s2": ("B02", "B04")},
        scale={"s2": (1e-4, 1e-4)},
        offset={"s2": (0.0, 0.0)},
        stats={"s2": {"B02": (500.0, 100.0), "B04": (800.0, 200.0)}},
    )
    st = Standardizer([r], "s2", ["B04"], "cpu")
    x = torch.tensor([0.08, 0.10, 0.06]).view(1, 1, 1, 3)
    valid = torch.tensor([[[True, True, False]]])
    torch.testing.assert_close(st(x, valid), torch.tensor([0.0, 1.0, 0.0]).view(1, 1, 1, 3))
    assert st.as_dict() == {"B04": {"mean": pytest.approx(0.08), "stddev": pytest.approx(0.02)}}
    with pytest.raises(UserError, match="no statistics"):
        Standardizer([r], "s2", ["B08"], "cpu")
    # two AOIs: each sample is scaled with its own collection's statistics, also in time series
    r2 = dataclasses.replace(r, id="t9", collection="other", stats={"s2": {"B04": (1800.0, 100.0)}})
    st = Standardizer([dataclasses.replace(r, collection="one"), r2], "s2", ["B04"], "cpu")
    x = torch.full((2, 3, 1, 1, 1), 0.18)  # [B, T, C, H, W]
    y = st(x, None, [["t0", "t0", "t0"], ["t9", "t9", "t9"]])
    torch.testing.assert_close(y[:, :, 0, 0, 0], torch.tensor([[5.0] * 3, [0.0] * 3]))
    with pytest.raises(ValueError, match="batch ids"):
        st(x)


def test_crop_lookup_from_class_flags():
    lut = crop_lut(class_table("cdl"), "cpu")
    labels = torch.tensor([75, 176, 61, 1, -1, 255])
    assert lookup(lut, labels, False).tolist() == [True, False, False, True, False, False]


def test_scale_bar_is_right_at_10_m():
    assert scale_bar_label(50, 10.0) == "500 m"  # the original labelled these 50 px "1 km"
    assert scale_bar_label(100, 10.0) == "1 km"
    assert scale_bar_px(256, 10.0) == 50
    assert scale_bar_px(64, 10.0) == 10


def test_catalog_href(tmp_path):
    assert catalog_href("https://example.org/cat/catalog.json") == "https://example.org/cat/catalog.json"
    (tmp_path / "catalog.json").write_text("{}")
    assert catalog_href(str(tmp_path)) == str(tmp_path.resolve() / "catalog.json")


@pytest.mark.parametrize("path", sorted(TRAINING.glob("configs/*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_parse(path):
    mod = recipe("sar2vi" if path.name.startswith("sar2vi") else "crop_classification")
    cfg, _ = cfgmod.parse(mod.Config, ["--config", str(path), "--catalog", "somewhere"], mod.PROG, "")
    assert cfg.catalog == "somewhere"
