"""Crop-type classifier: a 2-D U-Net with a ConvLSTM bottleneck (PyTorch).

Re-implements ``sen12ts/class_learning/model.py`` of the original SEN12TS repository (spec 5.5),
which follows the "2D U-Net + CLSTM" of Rustowicz et al., CVPRW 2019 ("Semantic Segmentation of
Crop Type in Africa"). A per-tile time series ``[B, T, C, H, W]`` (e.g. T = 16 dates of S1 with
C = 4, or S2 with C = 13) becomes per-pixel class **logits** ``[B, num_classes, H, W]``.

Differences from the original, on purpose:

* The head is a plain ``Conv2d`` producing logits. The original put BatchNorm + LeakyReLU after
  the last conv and then a softmax, which distorts the class scores; use
  ``torch.nn.CrossEntropyLoss(weight=..., ignore_index=...)`` on the logits instead.
* Optional ``valid_steps`` ([B, T] bool): tiles have fewer than 16 dates, so batches are padded
  in time. Padded frames are skipped by the shared 2-D encoder (so they do not enter BatchNorm
  statistics), do not update the ConvLSTM state, and are left out of every mean over time.
* The ConvLSTM uses the standard sigmoid gates (Keras 2.x used ``hard_sigmoid``) and, like Keras,
  initialises the forget-gate bias to 1.
* The L2 kernel regulariser (0.01) of the original was declared but never added to the loss;
  use the optimiser's ``weight_decay`` if you want one.

Measured size: ``UNetConvLSTM(13, 10)`` has 6,821,354 parameters (reference hand count ~6.82 M per
branch); ``LateFusionClassifier(4, 13, 10)`` has 13,640,226 (reference ~13.65 M, which
counts the BatchNorm moving statistics too).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = [
    "ConvLSTMCell",
    "ConvLSTM",
    "UNetConvLSTM",
    "LateFusionClassifier",
    "MultiInputClassifier",
    "build_classifier",
]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step (Shi et al. 2015): the LSTM gates are 2-D convolutions over ``[x, h]``.

    ``forward(x, (h, c)) -> (h, c)`` with x ``[B, in_ch, H, W]`` and h, c ``[B, hidden_ch, H, W]``.
    """

    def __init__(self, in_ch: int, hidden_ch: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden_ch = hidden_ch
        self.gates = nn.Conv2d(in_ch + hidden_ch, 4 * hidden_ch, kernel_size, padding=kernel_size // 2)
        assert self.gates.bias is not None  # Conv2d's bias=True default
        with torch.no_grad():  # gate order: input, forget, cell candidate, output
            self.gates.bias.zero_()
            self.gates.bias[hidden_ch : 2 * hidden_ch].fill_(1.0)  # Keras unit_forget_bias

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = x.shape
        zeros = x.new_zeros(b, self.hidden_ch, h, w)
        return zeros, zeros.clone()

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = self.init_state(x) if state is None else state
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """Unidirectional single-layer ConvLSTM over ``[B, T, C, H, W]``; returns all T hidden states
    ``[B, T, hidden_ch, H, W]`` (Keras ``return_sequences=True``).

    With ``valid_steps`` ([B, T] bool), a sample's state is carried unchanged through its invalid
    (padded) steps; the output at such a step is the carried state and should be ignored.
    """

    def __init__(self, in_ch: int, hidden_ch: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.cell = ConvLSTMCell(in_ch, hidden_ch, kernel_size)

    def forward(self, x: torch.Tensor, valid_steps: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"ConvLSTM expects [B, T, C, H, W], got shape {tuple(x.shape)}")
        state = self.cell.init_state(x[:, 0])
        outputs = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], state)
            if valid_steps is not None:
                keep = valid_steps[:, t].view(-1, 1, 1, 1)
                h, c = torch.where(keep, h, state[0]), torch.where(keep, c, state[1])
            state = (h, c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


def _conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Conv3x3 (no bias) -> BatchNorm -> LeakyReLU(0.3), the original's building block."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(0.3),
    )


def _up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """ConvTranspose(k3, s2, p1, output_padding 1; doubles H and W) -> BatchNorm -> ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(),
    )


def _check_valid_steps(valid_steps: torch.Tensor | None, b: int, t: int) -> torch.Tensor | None:
    if valid_steps is None:
        return None
    valid_steps = torch.as_tensor(valid_steps).to(torch.bool)
    if valid_steps.shape != (b, t):
        raise ValueError(f"valid_steps must have shape [B, T] = {(b, t)}, got {tuple(valid_steps.shape)}")
    if not bool(valid_steps.any(dim=1).all()):
        raise ValueError("every sample needs at least one valid timestep in valid_steps")
    return valid_steps


def _time_mean(x: torch.Tensor, valid_steps: torch.Tensor | None) -> torch.Tensor:
    """Mean over the time axis of ``[B, T, ...]``, counting only valid steps when given."""
    if valid_steps is None:
        return x.mean(dim=1)
    w = valid_steps.to(x.dtype).view(*valid_steps.shape, *([1] * (x.dim() - 2)))
    return (x * w).sum(dim=1) / w.sum(dim=1)


class UNetConvLSTM(nn.Module):
    """U-Net + ConvLSTM classifier branch (spec 5.5): ``[B, T, C, H, W] -> [B, num_classes, H, W]``.

    With ``f_i = base_filters * 2**i`` (defaults 32, 64, 128 and 256 at the bottom):

    * Encoder, **shared over time** (each frame goes through the same 2-D layers): for each of
      ``levels`` levels, two conv blocks (Conv3x3 -> BN -> LeakyReLU 0.3) with ``f_i`` filters,
      skip ``S_i`` = mean over time, then 2x2 max-pool. At the bottom one conv block ``f_levels``.
    * Bottleneck: ConvLSTM(``f_levels``) over the time series, then mean over time.
    * Decoder (2-D): conv block ``f_levels``; then from the deepest level up: ConvTranspose x2 ->
      concat ``S_i`` -> conv block ``f_i`` (two conv blocks at the deepest level, as the original).
    * Head: Conv3x3(``num_classes``, bias) -> **logits** (no BN/activation, no softmax).

    ``H`` and ``W`` must be divisible by ``2**levels``. ``valid_steps`` ([B, T] bool) marks the
    real (non-padded) dates; see the module docstring.
    """

    def __init__(self, in_channels: int, num_classes: int, base_filters: int = 32, levels: int = 3) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        self.levels = levels
        f = [base_filters * 2**i for i in range(levels + 1)]

        self.enc = nn.ModuleList()
        prev = in_channels
        for i in range(levels):
            self.enc.append(nn.Sequential(_conv_block(prev, f[i]), _conv_block(f[i], f[i])))
            prev = f[i]
        self.pool = nn.MaxPool2d(2)
        self.bottom = _conv_block(prev, f[levels])
        self.lstm = ConvLSTM(f[levels], f[levels], kernel_size=3)
        self.post_lstm = _conv_block(f[levels], f[levels])

        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        prev = f[levels]
        for i in reversed(range(levels)):
            self.up.append(_up_block(prev, f[i]))
            convs = [_conv_block(2 * f[i], f[i])]
            if i == levels - 1:
                convs.append(_conv_block(f[i], f[i]))
            self.dec.append(nn.Sequential(*convs))
            prev = f[i]
        self.head = nn.Conv2d(f[0], num_classes, 3, padding=1, bias=True)

        # N(0, 0.02) init for the convs, as the original; the ConvLSTM keeps its own init.
        for m in [
            *self.enc.modules(),
            *self.bottom.modules(),
            *self.post_lstm.modules(),
            *self.up.modules(),
            *self.dec.modules(),
            self.head,
        ]:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, valid_steps: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"UNetConvLSTM expects [B, T, C, H, W], got shape {tuple(x.shape)}")
        b, t, c, h, w = x.shape
        size = 2**self.levels
        if h % size or w % size:
            raise ValueError(f"UNetConvLSTM(levels={self.levels}) needs H and W divisible by {size}; got {(h, w)}")
        valid_steps = _check_valid_steps(valid_steps, b, t)

        # Fold time into the batch so the 2-D encoder is shared over time; drop padded frames.
        frames = x.reshape(b * t, c, h, w)
        keep = None if valid_steps is None else valid_steps.reshape(-1).nonzero().squeeze(1)
        if keep is not None:
            frames = frames[keep]

        def unfold(feat: torch.Tensor) -> torch.Tensor:
            """[n_frames, C', H', W'] -> [B, T, C', H', W'], zeros at padded frames."""
            if keep is not None:
                full = feat.new_zeros(b * t, *feat.shape[1:])
                feat = full.index_copy(0, keep, feat)
            return feat.reshape(b, t, *feat.shape[1:])

        skips = []
        for level in self.enc:
            frames = level(frames)
            skips.append(_time_mean(unfold(frames), valid_steps))
            frames = self.pool(frames)
        seq = unfold(self.bottom(frames))
        y = _time_mean(self.lstm(seq, valid_steps), valid_steps)

        y = self.post_lstm(y)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            y = dec(torch.cat([up(y), skip], dim=1))
        return self.head(y)


class LateFusionClassifier(nn.Module):
    """S1 + S2 late fusion (spec 5.5, ``stacked_s1s2_models``): two independent
    :class:`UNetConvLSTM` branches whose logits are **summed**, then a per-pixel dense layer
    (1x1 conv with bias) -> logits ``[B, num_classes, H, W]``.

    Extra keyword arguments (``base_filters``, ``levels``) go to both branches. S1 and S2 may have
    different numbers of timesteps; each can have its own ``valid_steps``.
    """

    def __init__(self, s1_channels: int, s2_channels: int, num_classes: int, **kw) -> None:
        super().__init__()
        self.s1 = UNetConvLSTM(s1_channels, num_classes, **kw)
        self.s2 = UNetConvLSTM(s2_channels, num_classes, **kw)
        self.fuse = nn.Conv2d(num_classes, num_classes, 1, bias=True)

    def forward(
        self,
        s1: torch.Tensor,
        s2: torch.Tensor,
        s1_valid_steps: torch.Tensor | None = None,
        s2_valid_steps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.fuse(self.s1(s1, s1_valid_steps) + self.s2(s2, s2_valid_steps))


class MultiInputClassifier(nn.Module):
    """Wraps a classifier so it takes a batch dict: ``{"s1": [B,T,C1,H,W], "s2": [B,T,C2,H,W]}``.

    Only the keys named in ``inputs`` are read. Time masks are taken from ``"s1_valid_steps"`` /
    ``"s2_valid_steps"`` if present, else from a shared ``"valid_steps"``, else none.
    """

    def __init__(self, inputs: tuple[str, ...], net: nn.Module) -> None:
        super().__init__()
        self.inputs = inputs
        self.net = net

    @staticmethod
    def _mask(batch: Mapping, name: str):
        mask = batch.get(f"{name}_valid_steps")
        return batch.get("valid_steps") if mask is None else mask

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [k for k in self.inputs if k not in batch]
        if missing:
            raise KeyError(f"batch lacks input(s) {missing}; this model uses {list(self.inputs)}")
        if self.inputs == ("s1", "s2"):
            return self.net(batch["s1"], batch["s2"], self._mask(batch, "s1"), self._mask(batch, "s2"))
        (name,) = self.inputs
        return self.net(batch[name], self._mask(batch, name))


def build_classifier(inputs: str, s1_channels: int, s2_channels: int, num_classes: int, **kw) -> MultiInputClassifier:
    """Build the classifier for ``inputs`` in ``{"s1", "s2", "s1,s2"}`` (S1-only, S2-only or
    late fusion). The result takes a batch dict (see :class:`MultiInputClassifier`) and returns
    logits ``[B, num_classes, H, W]``. ``kw`` goes to :class:`UNetConvLSTM`.
    """
    names = tuple(sorted({p.strip().lower() for p in inputs.split(",") if p.strip()}))
    if names == ("s1",):
        net: nn.Module = UNetConvLSTM(s1_channels, num_classes, **kw)
    elif names == ("s2",):
        net = UNetConvLSTM(s2_channels, num_classes, **kw)
    elif names == ("s1", "s2"):
        net = LateFusionClassifier(s1_channels, s2_channels, num_classes, **kw)
    else:
        raise ValueError(f"inputs must be 's1', 's2' or 's1,s2'; got {inputs!r}")
    return MultiInputClassifier(names, net)
