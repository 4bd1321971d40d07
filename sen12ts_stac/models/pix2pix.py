"""SAR2VI reference model: a Pix2Pix U-Net generator and a 70x70 PatchGAN (PyTorch).

This re-implements the TensorFlow/Keras model of the original SEN12TS repository
(``sen12ts/sar2vi_learning/model.py``, spec sections 4.4-4.6): 18 Sentinel-1 channels
(4 dates x [VH, VV, coherence, phase] + local incidence angle + slope) go in, one
vegetation-index channel (EVI scaled to [-1, 1]) comes out.

Layer conventions (Keras -> PyTorch):

* ``Conv2D(k=4, s=2, padding="same")`` on an even input size is ``Conv2d(k=4, s=2, p=1)``
  (halves the size); ``Conv2DTranspose(k=4, s=2, "same")`` is ``ConvTranspose2d(k=4, s=2, p=1)``
  (doubles it).
* BatchNorm moving statistics are *buffers* in PyTorch, not parameters, so the parameter
  counts below are the "trainable" counts of the Keras model.

Measured parameter counts with the defaults: ``UNetGenerator()`` 54,425,217 (the reference's
hand count is ~54.44 M total / ~54.43 M trainable; the 1,024 difference is the BatchNorm we
drop at the innermost block, see below) and ``PatchGAN()`` 2,781,953 (~2.78 M).

Choices that differ from the original, on purpose:

* **No BatchNorm at the innermost (bottleneck) encoder block.** With 8 blocks on 256x256 the
  innermost feature map is 1x1; with batch size 1 a training-mode BatchNorm there sees a single
  value per channel, which PyTorch refuses ("Expected more than 1 value per channel") and which
  would normalise every activation to beta anyway. The official PyTorch pix2pix
  (junyanz/pytorch-CycleGAN-and-pix2pix, ``UnetSkipConnectionBlock(innermost=True)``) has no
  norm there either, so we follow it.
* **Crop loss is a mean, not a sum** (see :func:`generator_loss`).
* **Discriminator label smoothing is one-sided by default** (see :func:`discriminator_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "UNetGenerator",
    "PatchGAN",
    "generator_loss",
    "discriminator_loss",
    "init_weights",
]

_ACTIVATIONS = {
    "elu": lambda: nn.ELU(),
    "relu": lambda: nn.ReLU(),
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}


def _activation(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}") from None


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Pix2Pix initialisation: every (transposed) conv weight ~ N(0, std), conv biases 0.

    BatchNorm layers keep PyTorch's defaults (gamma 1, beta 0), as in the original Keras code.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _down(in_ch: int, out_ch: int, batchnorm: bool, activation: str) -> nn.Sequential:
    """Encoder block: Conv2d(k4, s2, p1, no bias) -> [BatchNorm] -> activation (ELU by default)."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(_activation(activation))
    return nn.Sequential(*layers)


def _up(in_ch: int, out_ch: int, dropout: float) -> nn.Sequential:
    """Decoder block: ConvTranspose2d(k4, s2, p1, no bias) -> BatchNorm -> [Dropout] -> ReLU."""
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    """Pix2Pix U-Net generator (spec 4.4): ``[B, in_channels, H, W] -> [B, out_channels, H, W]``.

    * ``depth`` encoder blocks, each halving the size; filters go ``base_filters * 2**i`` capped at
      ``max_filters`` (defaults: 64, 128, 256, 512, 512, 512, 512, 512). Block 1 has no BatchNorm,
      nor has the innermost block (see the module docstring).
    * ``depth - 1`` decoder blocks mirroring the encoder; the first ``min(dropout_blocks, depth-1)``
      use Dropout(``dropout``). Each output is concatenated with the mirrored encoder output.
    * Head: ConvTranspose2d(k4, s2, p1, with bias) -> tanh, so outputs are in [-1, 1].

    ``H`` and ``W`` must be divisible by ``2**depth``. Dropout follows ``model.train()`` /
    ``model.eval()`` (the original used ``training=False`` at inference, i.e. no dropout noise).
    """

    def __init__(
        self,
        in_channels: int = 18,
        out_channels: int = 1,
        depth: int = 8,
        base_filters: int = 64,
        max_filters: int = 512,
        activation: str = "elu",
        dropout: float = 0.5,
        dropout_blocks: int = 3,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        self.depth = depth
        filters = [min(base_filters * 2**i, max_filters) for i in range(depth)]
        self.filters = filters

        self.down = nn.ModuleList()
        prev = in_channels
        for i, f in enumerate(filters):
            batchnorm = 0 < i < depth - 1  # not in block 1, not at the 1x1 bottleneck
            self.down.append(_down(prev, f, batchnorm, activation))
            prev = f

        self.up = nn.ModuleList()
        # decoder block j produces filters[depth-2-j] channels, then gets that skip concatenated
        for j in range(depth - 1):
            out_f = filters[depth - 2 - j]
            in_f = filters[-1] if j == 0 else 2 * filters[depth - 1 - j]
            self.up.append(_up(in_f, out_f, dropout if j < dropout_blocks else 0.0))

        self.head = nn.ConvTranspose2d(2 * filters[0], out_channels, 4, stride=2, padding=1, bias=True)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = 2**self.depth
        if x.shape[-1] % size or x.shape[-2] % size:
            raise ValueError(
                f"UNetGenerator(depth={self.depth}) needs H and W divisible by 2**depth={size}; "
                f"got {tuple(x.shape[-2:])}"
            )
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips = skips[:-1][::-1]  # innermost output is x itself, not a skip
        for block, skip in zip(self.up, skips):
            x = torch.cat([block(x), skip], dim=1)
        return torch.tanh(self.head(x))


class PatchGAN(nn.Module):
    """70x70 PatchGAN discriminator (spec 4.5): ``[B, in_channels, H, W] -> [B, 1, H/8 - 2, W/8 - 2]``.

    Input is the S1 stack concatenated with the real or generated VI (18 + 1 = 19 channels).
    ``n_layers`` stride-2 encoder blocks (ELU, as the original reuses the generator's encoder block;
    the first without BatchNorm), then Conv(k4, s1, pad 1, no bias) -> BN -> LeakyReLU(0.3)
    -> Conv(1, k4, s1, pad 1) giving raw **logits**. On 256x256 the output is 30x30.
    (Keras' ZeroPadding2D(1) + "valid" conv equals ``Conv2d(padding=1)``.)
    """

    def __init__(self, in_channels: int = 19, base_filters: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for i in range(n_layers):
            f = min(base_filters * 2**i, base_filters * 8)
            layers.append(_down(prev, f, batchnorm=i > 0, activation="elu"))
            prev = f
        f = min(base_filters * 2**n_layers, base_filters * 8)
        layers += [
            nn.Conv2d(prev, f, 4, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(f),
            nn.LeakyReLU(0.3),  # Keras LeakyReLU default slope
            nn.Conv2d(f, 1, 4, stride=1, padding=1, bias=True),
        ]
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def generator_loss(
    disc_fake_logits: torch.Tensor,
    fake: torch.Tensor,
    target: torch.Tensor,
    crop_mask: torch.Tensor | None = None,
    lambda_l1: float = 100.0,
    lambda_crop: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Pix2Pix generator loss (spec 4.6). Returns ``{"total", "gan", "l1", "crop"}`` tensors.

    ``total = gan + lambda_l1 * l1 + lambda_crop * crop`` where

    * ``gan``  = BCE-with-logits of D(x, G(x)) against 1 (no label smoothing, as the original);
    * ``l1``   = mean |target - fake| over all pixels;
    * ``crop`` = mean |target - fake| over cropland pixels (``crop_mask`` True, broadcast to
      ``fake``'s shape, e.g. ``[B, 1, H, W]`` or ``[B, H, W]``). It is 0 when there is no mask or
      the mask is empty, so batches without cropland do not produce NaN.

    The returned ``gan``/``l1``/``crop`` are unweighted; only ``total`` carries the lambdas.

    The original used ``(1/5000) * SUM`` over cropland pixels, whose strength silently depends
    on batch size and on how much cropland the batch holds. A mean is scale-free; the original's
    weight corresponds to ``lambda_crop = n_crop_pixels / 5000`` (e.g. ~26 for a batch of four
    256x256 tiles that are half cropland).
    """
    gan = F.binary_cross_entropy_with_logits(disc_fake_logits, torch.ones_like(disc_fake_logits))
    abs_err = (target - fake).abs()
    l1 = abs_err.mean()
    crop = fake.new_zeros(())
    if crop_mask is not None:
        mask = crop_mask.to(torch.bool)
        if mask.dim() == abs_err.dim() - 1:  # [B, H, W] -> [B, 1, H, W]
            mask = mask.unsqueeze(1)
        mask = mask.expand_as(abs_err)
        if mask.any():
            crop = abs_err[mask].mean()
    total = gan + lambda_l1 * l1 + lambda_crop * crop
    return {"total": total, "gan": gan, "l1": l1, "crop": crop}


def discriminator_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    label_smoothing: float = 0.1,
    two_sided: bool = False,
) -> dict[str, torch.Tensor]:
    """PatchGAN loss: BCE-with-logits on D(x, y) vs "real" plus D(x, G(x)) vs "fake".

    Returns ``{"total", "real", "fake"}`` with ``total = real + fake`` (no 1/2 factor, as the
    original). Targets with ``s = label_smoothing``:

    * default, one-sided smoothing (Salimans et al. 2016): real ``1 - s``, fake ``0``;
    * ``two_sided=True`` reproduces Keras' ``label_smoothing``: real ``1 - s/2``, fake ``s/2``.
      The original used Keras smoothing 0.2 (real 0.9, fake 0.1), i.e.
      ``label_smoothing=0.2, two_sided=True``.

    Remember to ``fake.detach()`` before computing ``fake_logits`` for this loss.
    """
    if two_sided:
        real_t, fake_t = 1.0 - label_smoothing / 2, label_smoothing / 2
    else:
        real_t, fake_t = 1.0 - label_smoothing, 0.0
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_t))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.full_like(fake_logits, fake_t))
    return {"total": real + fake, "real": real, "fake": fake}
