"""The recipes' PNG figures, drawn with matplotlib's object API on the Agg canvas (no display,
no global pyplot state) and written atomically: SAR2VI prediction panels (VH input, true VI,
predicted VI, error), class-map panels, confusion matrices, per-class VI time series and loss
curves. Every map carries a scale bar computed from the pixel size (50 px at 10 m = 500 m; the
original labelled it 1 km)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from sen12ts_stac.fsio import atomic_path

VI_RANGE = (-0.1, 0.9)


def _save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)


def scale_bar_label(length_px: int, pixel_m: float) -> str:
    """``"500 m"`` for 50 px at 10 m; kilometres from 1 km up."""
    metres = length_px * pixel_m
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


def scale_bar_px(width_px: int, pixel_m: float) -> int:
    """A round bar length (1, 2 or 5 x 10^k metres) about a fifth of the image width, in pixels."""
    target = width_px * pixel_m / 5
    k = 10 ** math.floor(math.log10(max(target, pixel_m)))
    metres = max((m * k for m in (1, 2, 5) if m * k <= target), default=k)
    return max(1, int(round(metres / pixel_m)))


def add_scale_bar(ax, width_px: int, height_px: int, pixel_m: float, length_px: int | None = None) -> str:
    """Draw a white-on-black bar in the lower left; returns its label."""
    n = length_px or scale_bar_px(width_px, pixel_m)
    label = scale_bar_label(n, pixel_m)
    x0, y0 = 0.05 * width_px, 0.92 * height_px
    h = max(1.0, 0.018 * height_px)
    ax.add_patch(Rectangle((x0, y0), n, h, facecolor="white", edgecolor="black", linewidth=0.8))
    ax.text(
        x0 + n / 2,
        y0 - 0.012 * height_px,
        label,
        color="white",
        ha="center",
        va="bottom",
        fontsize=8,
        bbox={"facecolor": "black", "alpha": 0.45, "pad": 1, "linewidth": 0},
    )
    return label


def _image(ax, fig, data, title, cmap, vmin=None, vmax=None, cbar=None):
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if cbar is not None:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label(cbar, fontsize=8)
    return im


def sar2vi_panel(
    path: str | Path,
    vh_db: np.ndarray,
    true_vi: np.ndarray,
    pred_vi: np.ndarray,
    valid: np.ndarray,
    title: str,
    vi_name: str = "EVI",
    pixel_m: float = 10.0,
) -> Path:
    """One sample as four panels: VH input (dB), true VI, predicted VI and the error (pred - true),
    each with the same scale bar; invalid pixels are blank."""
    fig = Figure(figsize=(14.5, 3.6))
    axes = fig.subplots(1, 4)
    h, w = true_vi.shape
    mask = lambda a: np.where(valid, a, np.nan)  # noqa: E731
    finite = np.isfinite(vh_db)
    lo, hi = np.percentile(vh_db[finite], [2, 98]) if finite.any() else (-30.0, -10.0)
    _image(axes[0], fig, vh_db, "Sentinel-1 VH (newest date)", "gray", lo, hi, "dB")
    _image(axes[1], fig, mask(true_vi), f"true {vi_name}", "YlGn", *VI_RANGE, vi_name)
    _image(axes[2], fig, mask(pred_vi), f"predicted {vi_name}", "YlGn", *VI_RANGE, vi_name)
    err = mask(pred_vi - true_vi)
    _image(axes[3], fig, err, "error (predicted - true)", "RdBu_r", -0.4, 0.4, vi_name)
    for ax in axes:
        add_scale_bar(ax, w, h, pixel_m)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def class_panel(
    path: str | Path,
    rgb: np.ndarray | None,
    true_idx: np.ndarray,
    pred_idx: np.ndarray,
    colors: Sequence[str],
    names: Sequence[str],
    title: str,
    pixel_m: float = 10.0,
) -> Path:
    """Sentinel-2 true colour (when given), the true classes and the predicted classes (index maps,
    -1 = not one of the classes, shown grey)."""
    n = len(colors)
    cmap = ListedColormap(["#d9d9d9", *colors])
    panels = ([("Sentinel-2 true colour", rgb)] if rgb is not None else []) + [
        ("true classes", true_idx),
        ("predicted classes", pred_idx),
    ]
    fig = Figure(figsize=(4.3 * len(panels) + 1.8, 4.2))
    axes = fig.subplots(1, len(panels))
    h, w = true_idx.shape
    for ax, (t, data) in zip(np.atleast_1d(axes), panels):
        if data is rgb:
            ax.imshow(np.clip(rgb, 0, 1), interpolation="nearest")
            ax.set_title(t, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            _image(ax, fig, data + 1, t, cmap, -0.5, n + 0.5)
        add_scale_bar(ax, w, h, pixel_m)
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=nm) for c, nm in zip(colors, names)]
    handles.append(Patch(color="#d9d9d9", label="other / unlabelled"))
    fig.subplots_adjust(right=0.87, wspace=0.08)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.875, 0.5), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def confusion_matrix(path: str | Path, cm: np.ndarray, names: Sequence[str], title: str) -> Path:
    """Row-normalised (recall) colours with the pixel counts written in the cells."""
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        rec = cm / cm.sum(axis=1, keepdims=True)
    fig = Figure(figsize=(1.0 + 0.62 * k + 2.5, 1.0 + 0.55 * k + 1.5))
    ax = fig.subplots()
    im = ax.imshow(np.nan_to_num(rec), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label("fraction of the true class", fontsize=8)
    ax.set_xticks(range(k), [n[:18] for n in names], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), [n[:18] for n in names], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    f"{cm[i, j]:,}",
                    ha="center",
                    va="center",
                    fontsize=5.5,
                    color="white" if rec[i, j] > 0.5 else "black",
                )
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def vi_timeseries(
    path: str | Path,
    series: Mapping[str, Sequence[tuple[str, float, float, int]]],
    vi_name: str,
    title: str,
    max_classes: int = 9,
) -> Path:
    """Mean true vs predicted VI by date, one small panel per class (the ``max_classes`` with the
    most pixels). ``series[class name]`` = [(ISO date, mean true, mean predicted, pixels), ...]."""
    ranked = sorted(series.items(), key=lambda kv: -sum(p[3] for p in kv[1]))[:max_classes]
    n = max(1, len(ranked))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.2 * cols, 2.8 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    for ax, (name, pts) in zip(axes, ranked):
        pts = sorted(pts)
        d = [dt.date.fromisoformat(p[0]) for p in pts]
        ax.plot(d, [p[1] for p in pts], "o-", color="black", ms=3, lw=1, label="true")
        ax.plot(d, [p[2] for p in pts], "s--", color="tab:green", ms=3, lw=1, label="predicted")
        ax.set_title(f"{name} ({sum(p[3] for p in pts):,} px)", fontsize=8)
        ax.tick_params(labelsize=7)
        for lab in ax.get_xticklabels():
            lab.set_rotation(30)
        ax.grid(alpha=0.3)
    for ax in axes[len(ranked) :]:
        ax.set_visible(False)
    axes[0].set_ylabel(f"mean {vi_name}", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def curves(
    path: str | Path, steps: Sequence[int], values: Mapping[str, Sequence[float]], title: str, xlabel: str = "step"
) -> Path:
    """Training curves (one line per series) against the step."""
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    for name, v in values.items():
        ax.plot(steps[: len(v)], v, lw=1, label=name)
    ax.set_xlabel(xlabel)
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)
