"""Per-pixel baselines fitted in closed form on training pixels, streamed over batches and summed
over DDP ranks: the training mean, and ordinary least squares ``y ~ b + w . x`` on the input
channels (normal equations in float64, solved once)."""

from __future__ import annotations

import numpy as np
import torch

from sen12ts_stac.train.runtime import Dist


class PixelLinearFit:
    """Accumulates ``sum y``, ``n``, ``X'X`` and ``X'y`` with ``X = [1, x_1 .. x_F]`` over the
    pixels given; :meth:`finish` sums them over ranks and solves."""

    def __init__(self, n_features: int, ridge: float = 1e-8):
        self.f = n_features
        self.ridge = ridge
        self.xtx = torch.zeros(n_features + 1, n_features + 1, dtype=torch.float64)
        self.xty = torch.zeros(n_features + 1, dtype=torch.float64)
        self.n = torch.zeros((), dtype=torch.float64)
        self.sum_y = torch.zeros((), dtype=torch.float64)
        self.mean: float | None = None
        self.coef: np.ndarray | None = None  # [F + 1]: intercept, weights

    def update(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
        """``x`` ``[B, F, H, W]``, ``y`` ``[B, H, W]``, ``mask`` ``[B, H, W]`` bool (pixels to use)."""
        if x.shape[1] != self.f:
            raise ValueError(f"expected {self.f} features, got {x.shape[1]}")
        keep = mask & torch.isfinite(y)
        xs = x.permute(0, 2, 3, 1)[keep].to(torch.float64)  # [N, F]
        ys = y[keep].to(torch.float64)
        if ys.numel() == 0:
            return
        xa = torch.cat([torch.ones_like(ys)[:, None], xs], dim=1)
        self.xtx += (xa.T @ xa).cpu()
        self.xty += (xa.T @ ys).cpu()
        self.n += ys.numel()
        self.sum_y += ys.sum().cpu()

    def finish(self, d: Dist | None = None) -> "PixelLinearFit":
        if d is not None:
            for t in (self.xtx, self.xty, self.n, self.sum_y):
                d.all_reduce_sum(t)
        if float(self.n) == 0:
            raise ValueError("no training pixels to fit the baselines on")
        self.mean = float(self.sum_y / self.n)
        a = self.xtx.numpy().copy()
        a[np.diag_indices_from(a)] += self.ridge * np.maximum(np.diag(a), 1.0)
        self.coef = np.linalg.solve(a, self.xty.numpy())
        return self

    def state(self) -> dict:
        """What :meth:`from_state` needs (stored in checkpoints)."""
        return {
            "n_features": self.f,
            "mean": self.mean,
            "coef": None if self.coef is None else self.coef.tolist(),
            "n": float(self.n),
        }

    @classmethod
    def from_state(cls, state: dict) -> "PixelLinearFit":
        fit = cls(state["n_features"])
        fit.mean, fit.coef = state["mean"], np.asarray(state["coef"], dtype=np.float64)
        fit.n = torch.tensor(state["n"], dtype=torch.float64)
        return fit

    def predict_mean(self, like: torch.Tensor) -> torch.Tensor:
        """The training mean everywhere, shaped like ``like`` ``[B, H, W]``."""
        assert self.mean is not None  # set by finish() or from_state()
        return torch.full_like(like, float(self.mean))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, F, H, W]`` -> ``[B, H, W]`` (clipped to the VI range [-1, 1])."""
        c = torch.as_tensor(self.coef, dtype=torch.float32, device=x.device)
        return (c[0] + torch.einsum("bfhw,f->bhw", x.float(), c[1:])).clamp(-1.0, 1.0)
