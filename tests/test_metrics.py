"""Tests for sen12ts_stac.metrics: vegetation indices, regression, SSIM and classification."""

import math

import numpy as np
import pytest

from sen12ts_stac.metrics import (
    ConfusionAccumulator,
    RegressionAccumulator,
    evi,
    ndvi,
    per_image_pearson,
    ssim,
    topk_accuracy,
)

try:
    import torch

    torch.set_num_threads(2)
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")

# ---------------------------------------------------------------- vegetation indices


def test_evi_ndvi_known_values():
    # nir 0.5, red 0.1, blue 0.05: EVI = 2.5*0.4 / (0.5 + 0.6 - 0.375 + 1) = 1/1.725
    assert evi(0.05, 0.1, 0.5, scale=1.0) == pytest.approx(1 / 1.725)
    assert ndvi(0.1, 0.5, scale=1.0) == pytest.approx(0.4 / 0.6)
    # the same reflectances stored as int16 x 10,000
    b, r, n = (np.array([v], dtype=np.int16) for v in (500, 1000, 5000))
    assert evi(b, r, n)[0] == pytest.approx(0.5797101, rel=1e-6)
    assert ndvi(r, n)[0] == pytest.approx(2 / 3, rel=1e-6)
    # the original's bug: L = 1 on x10000 values gives a different (wrong) number
    buggy = 2.5 * (5000 - 1000) / (5000 + 6 * 1000 - 7.5 * 500 + 1)
    assert abs(buggy - 1 / 1.725) > 0.1


def test_evi_scaled_equals_unscaled():
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 8000, size=(3, 16, 16)).astype(np.int16)
    on_int = evi(*stored)  # scale=1e-4
    on_float = evi(*(stored.astype(np.float64) / 10000), scale=1.0)
    np.testing.assert_allclose(on_int, on_float, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert on_int.dtype == np.float32
    on_float = ndvi(stored[1] / 1e4, stored[2] / 1e4, scale=1.0)
    np.testing.assert_allclose(ndvi(stored[1], stored[2]), on_float, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_index_nan_clip_and_nodata():
    assert math.isnan(ndvi(0.0, 0.0, scale=1.0))
    assert math.isnan(evi(1 / 7.5, 0.0, 0.0, scale=1.0))  # denominator 0
    # denominator 0.025 -> EVI 30 -> clipped to 1
    assert evi(0.17, 0.0, 0.3, scale=1.0) == 1.0
    out = evi(np.array([500, -3000]), np.array([1000, 1000]), np.array([5000, 5000]), nodata=-3000)
    assert out[0] == pytest.approx(1 / 1.725, rel=1e-6) and math.isnan(out[1])


@needs_torch
def test_indices_on_torch():
    stored = torch.randint(0, 8000, (3, 8, 8), dtype=torch.int16)
    t = evi(*stored)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), evi(*stored.numpy()), rtol=1e-5, atol=1e-6, equal_nan=True)
    zero = torch.zeros(2)
    assert torch.isnan(ndvi(zero, zero)).all()
    assert evi(torch.tensor(0.05), torch.tensor(0.1), torch.tensor(0.5), scale=1.0).item() == pytest.approx(1 / 1.725)


# ---------------------------------------------------------------- regression


def test_regression_perfect_prediction():
    x = np.linspace(0, 1, 50).reshape(2, 1, 5, 5)
    acc = RegressionAccumulator()
    acc.update(x, x)
    r = acc.compute()
    assert r["r2"] == pytest.approx(1.0) and r["rmse"] == 0.0 and r["mae"] == 0.0
    assert r["pearson_r"] == pytest.approx(1.0) and r["bias"] == 0.0 and r["n"] == 50


def test_regression_hand_computed():
    acc = RegressionAccumulator()
    acc.update(np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 5]))
    r = acc.compute()
    assert r["mse"] == pytest.approx(0.25) and r["rmse"] == pytest.approx(0.5)
    assert r["mae"] == pytest.approx(0.25) and r["bias"] == pytest.approx(-0.25)
    assert r["r2"] == pytest.approx(1 - 1 / 8.75)  # SST = sum((t - 2.75)^2) = 8.75
    assert r["pearson_r"] == pytest.approx(np.corrcoef([1, 2, 3, 4], [1, 2, 3, 5])[0, 1])


def test_regression_streaming_equals_pooled():
    rng = np.random.default_rng(1)
    t = rng.random(1000)
    p = 0.8 * t + 0.1 * rng.standard_normal(1000) + 5.0  # offset tests numerical stability
    acc = RegressionAccumulator()
    for lo, hi in [(0, 7), (7, 400), (400, 401), (401, 1000)]:
        acc.update(p[lo:hi], t[lo:hi])
    r = acc.compute()
    assert r["pearson_r"] == pytest.approx(np.corrcoef(p, t)[0, 1], rel=1e-10)
    assert r["rmse"] == pytest.approx(np.sqrt(np.mean((p - t) ** 2)), rel=1e-10)
    assert r["r2"] == pytest.approx(1 - np.sum((p - t) ** 2) / np.sum((t - t.mean()) ** 2), rel=1e-10)
    assert r["n"] == 1000


def test_regression_mask_nan_and_groups():
    rng = np.random.default_rng(2)
    p, t = rng.random((2, 1, 4, 4)), rng.random((2, 1, 4, 4))
    t[0, 0, 0, 0] = np.nan  # dropped automatically
    mask = rng.random((2, 4, 4)) > 0.3  # [B, H, W] mask for a [B, 1, H, W] prediction
    lc = rng.integers(0, 3, (2, 1, 4, 4))
    acc = RegressionAccumulator()
    acc.update(p, t, mask=mask, groups=lc)
    keep = mask[:, None] & np.isfinite(t)
    assert acc.compute()["n"] == keep.sum()
    assert acc.compute()["mae"] == pytest.approx(np.abs(p - t)[keep].mean())
    per = acc.compute_groups()
    for k, res in per.items():
        sel = keep & (lc == k)
        assert res["n"] == sel.sum()
        assert res["rmse"] == pytest.approx(np.sqrt(np.mean((p - t)[sel] ** 2)))
    # one group per sample (e.g. the month of each tile)
    months = RegressionAccumulator()
    months.update(p, t, groups=np.array([4, 7]))
    assert set(months.compute_groups()) == {4, 7}
    assert months.compute_groups()[7]["n"] == 16


def test_pooled_pearson_differs_from_mean_of_per_image():
    # each image is perfectly correlated, but the second is offset by +10 in prediction
    target = np.array([[0.0, 1.0], [0.0, 1.0]])
    pred = np.array([[0.0, 1.0], [10.0, 11.0]])
    np.testing.assert_allclose(per_image_pearson(pred, target), [1.0, 1.0])
    acc = RegressionAccumulator()
    for i in range(2):
        acc.update(pred[i], target[i])
    pooled = acc.compute()["pearson_r"]
    assert pooled == pytest.approx(np.corrcoef(pred.ravel(), target.ravel())[0, 1])
    assert pooled < 0.2  # mean of per-image r would report 1.0


def test_regression_empty_and_torch():
    acc = RegressionAccumulator()
    acc.update(np.ones(3), np.ones(3), mask=np.zeros(3, bool))
    r = acc.compute()
    assert r["n"] == 0 and math.isnan(r["rmse"])
    if torch is not None:
        acc.update(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 1.0, 2.5]))
        assert acc.compute()["n"] == 3
    with pytest.raises(ValueError):
        acc.update(np.ones(3), np.ones(4))


# ---------------------------------------------------------------- SSIM


def _ssim_bruteforce(x, y, win, data_range=1.0, gaussian=False, sigma=1.5):
    c = np.arange(win) - (win - 1) / 2
    if gaussian:
        g = np.exp(-(c**2) / (2 * sigma**2))
        w = np.outer(g, g) / np.outer(g, g).sum()
        norm = 1.0
    else:
        w = np.full((win, win), 1.0 / win**2)
        norm = win**2 / (win**2 - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    vals = []
    for i in range(x.shape[0] - win + 1):
        for j in range(x.shape[1] - win + 1):
            a, b = x[i : i + win, j : j + win], y[i : i + win, j : j + win]
            ua, ub = (w * a).sum(), (w * b).sum()
            va = norm * ((w * a * a).sum() - ua**2)
            vb = norm * ((w * b * b).sum() - ub**2)
            cov = norm * ((w * a * b).sum() - ua * ub)
            vals.append((2 * ua * ub + c1) * (2 * cov + c2) / ((ua**2 + ub**2 + c1) * (va + vb + c2)))
    return np.mean(vals)


def test_ssim():
    rng = np.random.default_rng(3)
    x = rng.random((12, 14))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, y) == pytest.approx(_ssim_bruteforce(x, y, 7), rel=1e-10)
    assert ssim(x, y, window=5, gaussian=True) == pytest.approx(_ssim_bruteforce(x, y, 5, gaussian=True), rel=1e-10)
    assert ssim(x, y) < 0.9
    batch = ssim(np.stack([x, x])[:, None], np.stack([x, y])[:, None])
    assert batch.shape == (2, 1)
    np.testing.assert_allclose(batch[:, 0], [1.0, ssim(x, y)])
    with pytest.raises(ValueError):
        ssim(x, y, window=4)
    with pytest.raises(ValueError):
        ssim(x[:5], y[:5])


# ---------------------------------------------------------------- classification


CM = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])  # rows = target, columns = prediction


def _labels_from_cm(cm):
    t, p = [], []
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            t += [i] * cm[i, j]
            p += [j] * cm[i, j]
    return np.array(p), np.array(t)


def test_confusion_known_matrix():
    p, t = _labels_from_cm(CM)
    acc = ConfusionAccumulator(3)
    acc.update(p[:5], t[:5])  # streaming
    acc.update(p[5:], t[5:])
    r = acc.compute()
    assert r["confusion_matrix"] == CM.tolist()
    assert r["overall_accuracy"] == pytest.approx(12 / 16)
    # p_e = (6*7 + 6*4 + 4*5) / 16^2 = 86/256 -> kappa = (192 - 86) / (256 - 86)
    assert r["kappa"] == pytest.approx(106 / 170)
    np.testing.assert_allclose(r["precision"], [5 / 7, 3 / 4, 4 / 5])
    np.testing.assert_allclose(r["recall"], [5 / 6, 3 / 6, 4 / 4])
    f1 = [10 / 13, 6 / 10, 8 / 9]
    iou = [5 / 8, 3 / 7, 4 / 5]
    np.testing.assert_allclose(r["f1"], f1)
    np.testing.assert_allclose(r["iou"], iou)
    assert r["macro_f1"] == pytest.approx(np.mean(f1))
    assert r["miou"] == pytest.approx(np.mean(iou))
    assert r["support"] == [6, 6, 4] and r["n"] == 16


def test_confusion_ignore_index_excluded():
    p, t = _labels_from_cm(CM)
    p2 = np.concatenate([p, [0, 1, 2, 0]])
    t2 = np.concatenate([t, [-1, -1, -1, -1]])
    acc = ConfusionAccumulator(3, ignore_index=-1)
    acc.update(p2.reshape(4, 5), t2.reshape(4, 5))  # any shape with the same size
    r = acc.compute()
    assert r["confusion_matrix"] == CM.tolist()  # not counted as class 0
    assert r["n_ignored"] == 4
    acc255 = ConfusionAccumulator(3, ignore_index=255)
    acc255.update(np.array([0, 1]), np.array([0, 255]))
    assert acc255.compute()["n"] == 1
    with pytest.raises(ValueError):
        ConfusionAccumulator(3).update(np.array([0]), np.array([3]))
    with pytest.raises(ValueError):
        ConfusionAccumulator(3).update(np.array([0.5]), np.array([1]))


def test_confusion_absent_class_excluded_from_macro():
    acc = ConfusionAccumulator(4)
    acc.update(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))  # classes 2, 3 never appear
    r = acc.compute()
    assert math.isnan(r["f1"][2]) and math.isnan(r["iou"][3])
    assert r["macro_f1"] == pytest.approx(np.mean([2 / 3, 0.8]))
    if torch is not None:
        acc.update(torch.tensor([2]), torch.tensor([3]))
        assert acc.compute()["f1"][2] == 0.0 and acc.compute()["f1"][3] == 0.0


def test_topk_accuracy():
    # 4 pixels, 3 classes; logits [B=1, C=3, H=1, W=4]
    logits = np.array([[[[3.0, 0.0, 1.0, 0.0]], [[2.0, 1.0, 3.0, 5.0]], [[1.0, 2.0, 2.5, 4.0]]]])
    target = np.array([[[0, 0, 2, -1]]])
    # pixel 0: top1 0 (hit); pixel 1: ranks 2,1,0 -> hit only at k=3; pixel 2: top1 1, top2 {1,2}
    assert topk_accuracy(logits, target, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(logits, target, 2) == pytest.approx(2 / 3)
    assert topk_accuracy(logits, target, 3) == pytest.approx(1.0)
    assert topk_accuracy(logits, target, 2, return_counts=True) == (2, 3)
    if torch is not None:
        tl = torch.tensor(logits)
        tt = torch.tensor(target)
        for k in (1, 2, 3):
            assert topk_accuracy(tl, tt, k) == pytest.approx(topk_accuracy(logits, target, k))
    with pytest.raises(ValueError):
        topk_accuracy(logits, target, 4)
    assert math.isnan(topk_accuracy(logits, np.full((1, 1, 4), -1), 1))
