"""Vegetation indices and evaluation metrics (numpy, optionally torch; no sklearn needed).

What is here and which problems of the original SEN12TS code it fixes (spec 4.1, 4.8, 5.8, 7.6-7.9):

* :func:`evi`, :func:`ndvi` -- computed on reflectance in 0-1. The original applied EVI's L = 1 to
  reflectance x 10,000, where it is effectively 0.
* :class:`RegressionAccumulator` -- RMSE, MAE, R^2, Pearson r, bias, streamed over batches with
  **exact pooled** statistics (the original averaged per-image correlations, weighted by pixel
  count, which is not the correlation of the pooled pixels), optionally broken down by integer
  groups (land-cover class, month, ...). :func:`per_image_pearson` gives the per-image values.
* :func:`ssim` -- structural similarity (absent in the original).
* :class:`ConfusionAccumulator`, :func:`topk_accuracy` -- pixels whose label is ``ignore_index``
  are left out. The original one-hot encoded them as all zeros, so ``argmax`` made them
  **class 0** in the confusion matrix and top-k accuracies. Adds OA, per-class
  precision/recall/F1/IoU, macro-F1, Cohen's kappa and mIoU.

Every function accepts numpy arrays or torch tensors (tensors are moved to CPU numpy, except in
the index functions and :func:`topk_accuracy`, which stay in torch and keep gradients/devices).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
else:
    try:  # torch is optional for this module
        import torch
    except ImportError:  # pragma: no cover
        torch = None

__all__ = [
    "evi",
    "ndvi",
    "RegressionAccumulator",
    "per_image_pearson",
    "ssim",
    "ConfusionAccumulator",
    "topk_accuracy",
]


def _is_tensor(x) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def _to_numpy(x) -> np.ndarray:
    if _is_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# --------------------------------------------------------------------------------------------
# Vegetation indices
# --------------------------------------------------------------------------------------------


def _reflectance(x, scale: float):
    """Stored values -> float reflectance (int16 x 10,000 -> 0-1 with ``scale=1e-4``)."""
    if _is_tensor(x):
        if not x.is_floating_point():
            x = x.to(torch.float32)
        return x * scale
    x = np.asarray(x)
    return x.astype(np.result_type(x.dtype, np.float32)) * scale


def _nodata_mask(bands, nodata):
    if nodata is None:
        return None
    bad = None
    for b in bands:
        m = (b if _is_tensor(b) else np.asarray(b)) == nodata
        bad = m if bad is None else bad | m
    return bad


def _finish_index(num, den, bad, eps: float):
    """num / den with NaN where |den| < eps or ``bad``; clipped to [-1, 1] (NaN stays NaN)."""
    if _is_tensor(num):
        invalid = den.abs() < eps
        if bad is not None:
            invalid = invalid | bad
        safe = torch.where(invalid, torch.ones_like(den), den)
        out = torch.where(invalid, torch.full_like(num, float("nan")), num / safe)
        return out.clamp(-1.0, 1.0)
    invalid = np.abs(den) < eps
    if bad is not None:
        invalid = invalid | np.asarray(bad)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(invalid, np.nan, num / np.where(invalid, 1.0, den))
    return np.clip(ratio, -1.0, 1.0).astype(num.dtype, copy=False)


def evi(blue, red, nir, scale: float = 1e-4, nodata=None, eps: float = 1e-6):
    """Enhanced Vegetation Index on reflectance in 0-1 (Huete et al. 2002)::

        EVI = 2.5 * (NIR - RED) / (NIR + 6 * RED - 7.5 * BLUE + 1)

    Inputs are the stored bands; ``scale`` turns them into 0-1 reflectance (``1e-4`` for
    SEN12TS' int16 x 10,000; pass ``scale=1.0`` for data already in 0-1). Computing on 0-1 is the
    fix for the original, which used L = 1 on x 10,000 values. The result is clipped to [-1, 1];
    it is NaN where |denominator| < ``eps`` or where any input equals ``nodata`` (e.g. -3000).
    Works on numpy arrays (float32 for integer input) and torch tensors.
    """
    bad = _nodata_mask((blue, red, nir), nodata)
    b, r, n = (_reflectance(v, scale) for v in (blue, red, nir))
    return _finish_index(2.5 * (n - r), n + 6.0 * r - 7.5 * b + 1.0, bad, eps)


def ndvi(red, nir, scale: float = 1e-4, nodata=None, eps: float = 1e-6):
    """Normalised Difference Vegetation Index ``(NIR - RED) / (NIR + RED)``.

    Same conventions as :func:`evi` (``scale`` cancels out here but keeps ``eps`` meaningful
    in reflectance units); NaN where ``NIR + RED`` ~ 0 or at ``nodata``; clipped to [-1, 1]
    (values outside can only come from negative reflectances).
    """
    bad = _nodata_mask((red, nir), nodata)
    r, n = (_reflectance(v, scale) for v in (red, nir))
    return _finish_index(n - r, n + r, bad, eps)


# --------------------------------------------------------------------------------------------
# Regression
# --------------------------------------------------------------------------------------------


def _align(arr: np.ndarray, shape: tuple, name: str) -> np.ndarray:
    """Broadcast a mask/group array to the prediction's shape.

    Besides numpy broadcasting, accepts one value per sample (``[B]``) and ``[B, H, W]`` for a
    ``[B, 1, H, W]`` prediction.
    """
    if arr.shape != tuple(shape) and len(shape) > 1:
        if arr.ndim == 1 and arr.shape[0] == shape[0]:
            arr = arr.reshape((shape[0],) + (1,) * (len(shape) - 1))
        elif arr.ndim == len(shape) - 1 and shape[1] == 1:
            arr = np.expand_dims(arr, 1)
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(f"{name} of shape {arr.shape} does not fit predictions of shape {shape}") from None


@dataclass
class _Moments:
    """Streaming pooled moments (Chan et al. parallel update: exact and numerically stable)."""

    n: int = 0
    mean_p: float = 0.0
    mean_t: float = 0.0
    m2_p: float = 0.0  # sum of squared deviations of predictions from their mean
    m2_t: float = 0.0
    c_pt: float = 0.0  # sum of co-deviations
    sse: float = 0.0  # sum of squared errors
    sae: float = 0.0  # sum of absolute errors
    se: float = 0.0  # sum of errors (pred - target)

    def merge(self, o: "_Moments") -> None:
        if o.n == 0:
            return
        n = self.n + o.n
        dp, dt = o.mean_p - self.mean_p, o.mean_t - self.mean_t
        w = self.n * o.n / n
        self.m2_p += o.m2_p + dp * dp * w
        self.m2_t += o.m2_t + dt * dt * w
        self.c_pt += o.c_pt + dp * dt * w
        self.mean_p += dp * o.n / n
        self.mean_t += dt * o.n / n
        self.n = n
        self.sse += o.sse
        self.sae += o.sae
        self.se += o.se

    def result(self) -> dict:
        nan = float("nan")
        if self.n == 0:
            keys = ("rmse", "mse", "mae", "r2", "pearson_r", "bias", "mean_pred", "mean_target")
            return {**dict.fromkeys(keys, nan), "n": 0}
        if self.m2_t > 0:
            r2 = 1.0 - self.sse / self.m2_t
        else:  # constant target: R^2 is undefined unless the prediction is perfect
            r2 = 1.0 if self.sse == 0 else nan
        denom = np.sqrt(self.m2_p * self.m2_t)
        r = float(np.clip(self.c_pt / denom, -1.0, 1.0)) if denom > 0 else nan
        return {
            "rmse": float(np.sqrt(self.sse / self.n)),
            "mse": self.sse / self.n,
            "mae": self.sae / self.n,
            "r2": float(r2),
            "pearson_r": r,
            "bias": self.se / self.n,
            "mean_pred": self.mean_p,
            "mean_target": self.mean_t,
            "n": int(self.n),
        }


def _batch_moments(p: np.ndarray, t: np.ndarray, inv: np.ndarray, k: int) -> list[_Moments]:
    """Moments of 1-D ``p``, ``t`` for each of ``k`` groups given by ``inv`` (0..k-1)."""
    cnt = np.bincount(inv, minlength=k).astype(np.float64)
    mp = np.bincount(inv, p, k) / cnt
    mt = np.bincount(inv, t, k) / cnt
    dp, dt, err = p - mp[inv], t - mt[inv], p - t
    cols = [
        np.bincount(inv, dp * dp, k),
        np.bincount(inv, dt * dt, k),
        np.bincount(inv, dp * dt, k),
        np.bincount(inv, err * err, k),
        np.bincount(inv, np.abs(err), k),
        np.bincount(inv, err, k),
    ]
    return [_Moments(int(cnt[i]), mp[i], mt[i], *(float(c[i]) for c in cols)) for i in range(k)]


class RegressionAccumulator:
    """Streaming regression metrics over any number of batches, with exact pooled statistics.

    ``update(pred, target, mask=None, groups=None)``:

    * ``pred`` and ``target`` of the same shape (numpy or torch), e.g. VI maps ``[B, 1, H, W]``;
    * ``mask`` (bool, e.g. cropland pixels) selects pixels; non-finite pred/target values are
      always dropped;
    * ``groups`` (integers, e.g. land-cover class per pixel, or month per sample as ``[B]``)
      additionally accumulates per-group statistics.

    ``compute()`` -> ``{"rmse", "mse", "mae", "r2", "pearson_r", "bias", "mean_pred",
    "mean_target", "n"}`` over all pixels seen (``bias`` = mean(pred - target); ``r2`` uses the
    pooled target mean; NaN where undefined). ``compute_groups()`` -> ``{group: same dict}``.

    Every pixel counts equally: this is the statistic of the pooled pixels, not a mean of
    per-image values (the original's "correlation" was the latter).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._all = _Moments()
        self._groups: dict[int, _Moments] = {}

    def update(self, pred, target, mask=None, groups=None) -> None:
        p = _to_numpy(pred).astype(np.float64)
        t = _to_numpy(target).astype(np.float64)
        if p.shape != t.shape:
            raise ValueError(f"pred shape {p.shape} != target shape {t.shape}")
        keep = np.isfinite(p) & np.isfinite(t)
        if mask is not None:
            keep &= _align(_to_numpy(mask).astype(bool), p.shape, "mask")
        p, t = p[keep], t[keep]
        if p.size == 0:
            return
        self._all.merge(_batch_moments(p, t, np.zeros(p.size, np.int64), 1)[0])
        if groups is not None:
            g = _to_numpy(groups)
            if not (np.issubdtype(g.dtype, np.integer) or g.dtype == bool):
                raise ValueError(f"groups must be integers, got dtype {g.dtype}")
            g = _align(g.astype(np.int64), keep.shape, "groups")[keep]
            keys, inv = np.unique(g, return_inverse=True)
            for key, m in zip(keys.tolist(), _batch_moments(p, t, inv.ravel(), len(keys))):
                self._groups.setdefault(int(key), _Moments()).merge(m)

    def compute(self) -> dict:
        return self._all.result()

    def compute_groups(self) -> dict[int, dict]:
        return {k: self._groups[k].result() for k in sorted(self._groups)}


def per_image_pearson(pred, target, mask=None) -> np.ndarray:
    """Pearson r of each sample (first axis) separately -> ``[B]`` array (NaN where undefined).

    Provided for comparison with the original's per-image correlations; prefer the pooled
    ``RegressionAccumulator(...).compute()["pearson_r"]`` as the headline number.
    """
    p = _to_numpy(pred)
    acc = RegressionAccumulator()
    acc.update(p, target, mask, groups=np.arange(p.shape[0]))
    per = acc.compute_groups()
    return np.array([per.get(i, {"pearson_r": np.nan})["pearson_r"] for i in range(p.shape[0])])


# --------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------


def _filter_valid(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable 2-D correlation with 1-D kernel ``k`` over the last two axes, 'valid' region."""
    win = k.size
    a = np.lib.stride_tricks.sliding_window_view(a, win, axis=-1) @ k
    return np.lib.stride_tricks.sliding_window_view(a, win, axis=-2) @ k


def ssim(
    pred,
    target,
    data_range: float = 1.0,
    window: int = 7,
    gaussian: bool = False,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
):
    """Mean structural similarity (Wang et al. 2004) of 2-D images over the last two axes.

    * ``pred``/``target``: ``[H, W]`` -> float, or a batch ``[..., H, W]`` -> array ``[...]``
      (one SSIM per image). ``data_range`` is max - min of the data (1.0 for VI in 0-1; 2.0
      for tanh outputs in [-1, 1]).
    * Window: by default **uniform** ``window x window`` (7x7) with sample-covariance
      normalisation, the defaults of ``skimage.metrics.structural_similarity``. With
      ``gaussian=True`` a Gaussian window of size ``window`` and std ``sigma`` is used without
      that normalisation (Wang et al. used 11x11, sigma 1.5: ``window=11, gaussian=True``).
    * The local SSIM map is averaged over positions where the window fits entirely (no padding;
      same as skimage, which crops the padded border). NaN in an image gives NaN.
    """
    x = _to_numpy(pred).astype(np.float64)
    y = _to_numpy(target).astype(np.float64)
    if x.shape != y.shape:
        raise ValueError(f"pred shape {x.shape} != target shape {y.shape}")
    if x.ndim < 2:
        raise ValueError("ssim needs images with at least 2 dimensions [..., H, W]")
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 3, got {window}")
    if min(x.shape[-2:]) < window:
        raise ValueError(f"images {x.shape[-2:]} are smaller than the {window}x{window} window")
    if gaussian:
        c = np.arange(window) - (window - 1) / 2
        k = np.exp(-(c**2) / (2 * sigma**2))
        k /= k.sum()
        cov_norm = 1.0
    else:
        k = np.full(window, 1.0 / window)
        cov_norm = window**2 / (window**2 - 1.0)

    ux, uy = _filter_valid(x, k), _filter_valid(y, k)
    vx = cov_norm * (_filter_valid(x * x, k) - ux * ux)
    vy = cov_norm * (_filter_valid(y * y, k) - uy * uy)
    vxy = cov_norm * (_filter_valid(x * y, k) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    out = s.mean(axis=(-2, -1))
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def _labels(x, name: str) -> np.ndarray:
    a = _to_numpy(x)
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise ValueError(f"{name} must be integer class labels, got dtype {a.dtype}")
    return a.astype(np.int64).ravel()


class ConfusionAccumulator:
    """Streaming pixel confusion matrix for ``num_classes`` classes (rows = target, cols = pred).

    ``update(pred_labels, target_labels)`` takes integer label maps of the same size; pixels
    whose **target** is ``ignore_index`` are excluded (and counted in ``n_ignored``). Any other
    label outside ``[0, num_classes)`` raises, instead of being silently folded into class 0 as
    in the original.

    ``compute()`` returns

    * ``overall_accuracy``, ``kappa`` (Cohen), ``macro_f1``, ``miou``, ``n``, ``n_ignored``;
    * per class (lists indexed by class): ``precision``, ``recall``, ``f1``, ``iou``, ``support``;
    * ``confusion_matrix`` as a list of lists of ints.

    Undefined values are NaN: precision of a class never predicted, recall of a class absent from
    the targets, F1/IoU of a class absent from both. ``macro_f1`` and ``miou`` average over the
    classes present in targets or predictions (sklearn's default label set).
    """

    def __init__(self, num_classes: int, ignore_index: int = -1) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.n_ignored = 0

    def update(self, pred_labels, target_labels) -> None:
        p, t = _labels(pred_labels, "pred_labels"), _labels(target_labels, "target_labels")
        if p.size != t.size:
            raise ValueError(f"pred_labels has {p.size} values but target_labels has {t.size}")
        valid = t != self.ignore_index
        self.n_ignored += int((~valid).sum())
        p, t = p[valid], t[valid]
        k = self.num_classes
        for name, a in (("target", t), ("pred", p)):
            if a.size and (a.min() < 0 or a.max() >= k):
                raise ValueError(
                    f"{name} labels must be in [0, {k}) (or ignore_index={self.ignore_index} for "
                    f"targets); got range [{a.min()}, {a.max()}]"
                )
        self.matrix += np.bincount(t * k + p, minlength=k * k).reshape(k, k)

    def compute(self) -> dict:
        cm = self.matrix.astype(np.float64)
        n = cm.sum()
        tp = np.diag(cm)
        support, predicted = cm.sum(axis=1), cm.sum(axis=0)
        fp, fn = predicted - tp, support - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = tp / predicted
            recall = tp / support
            f1 = 2 * tp / (2 * tp + fp + fn)
            iou = tp / (tp + fp + fn)
            oa = tp.sum() / n
            pe = (support * predicted).sum() / n**2
            kappa = (oa - pe) / (1 - pe) if pe != 1 else float("nan")
        present = ~np.isnan(f1)
        return {
            "overall_accuracy": float(oa),
            "kappa": float(kappa),
            "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
            "miou": float(iou[present].mean()) if present.any() else float("nan"),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "iou": iou.tolist(),
            "support": support.astype(np.int64).tolist(),
            "confusion_matrix": self.matrix.tolist(),
            "n": int(n),
            "n_ignored": self.n_ignored,
        }


def topk_accuracy(logits, target, k: int = 1, ignore_index: int = -1, return_counts: bool = False):
    """Fraction of labelled pixels whose target class is among the ``k`` highest scores.

    ``logits`` ``[B, C, ...]`` (class axis 1; probabilities work too), ``target`` ``[B, ...]``
    integer labels. Pixels with ``target == ignore_index`` are excluded (the original counted
    them as class 0). Returns a float (NaN if nothing is labelled), or ``(n_correct, n_labelled)``
    with ``return_counts=True`` -- sum those over batches for an exact dataset-level accuracy.
    """
    num_classes = logits.shape[1]
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must be in [1, {num_classes}], got {k}")
    if _is_tensor(logits):
        t = torch.as_tensor(target, device=logits.device).long()
        valid = t != ignore_index
        tv = t[valid]
        if tv.numel() and (tv.min() < 0 or tv.max() >= num_classes):
            raise ValueError(f"target labels must be in [0, {num_classes}) or ignore_index")
        top = logits.topk(k, dim=1).indices
        hit = (top == t.unsqueeze(1)).any(dim=1) & valid
        correct, total = int(hit.sum()), int(valid.sum())
    else:
        scores = np.asarray(logits)
        t_np = _to_numpy(target).astype(np.int64)
        valid_np = t_np != ignore_index
        tv_np = t_np[valid_np]
        if tv_np.size and (tv_np.min() < 0 or tv_np.max() >= num_classes):
            raise ValueError(f"target labels must be in [0, {num_classes}) or ignore_index")
        top = np.take(np.argpartition(-scores, k - 1, axis=1), np.arange(k), axis=1)
        hit = (top == t_np[:, None]).any(axis=1) & valid_np
        correct, total = int(hit.sum()), int(valid_np.sum())
    if return_counts:
        return correct, total
    return correct / total if total else float("nan")
