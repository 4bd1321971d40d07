"""Tests for the torch reference models (pix2pix SAR2VI and the U-Net + ConvLSTM classifier)."""

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from sen12ts_stac.models.convlstm import (  # noqa: E402
    ConvLSTM,
    ConvLSTMCell,
    LateFusionClassifier,
    UNetConvLSTM,
    build_classifier,
)
from sen12ts_stac.models.pix2pix import (  # noqa: E402
    PatchGAN,
    UNetGenerator,
    discriminator_loss,
    generator_loss,
)

torch.set_num_threads(2)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------- pix2pix


def test_generator_default_shape_and_size():
    g = UNetGenerator()
    assert n_params(g) == pytest.approx(54.44e6, rel=0.02)
    g.train()  # batch 1 in training mode: works because the 1x1 bottleneck has no BatchNorm
    with torch.no_grad():
        y = g(torch.randn(1, 18, 256, 256))
    assert y.shape == (1, 1, 256, 256)
    assert y.abs().max() <= 1.0


def test_generator_structure():
    g = UNetGenerator()
    assert g.filters == [64, 128, 256, 512, 512, 512, 512, 512]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g.down[0])  # block 1
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g.down[-1])  # innermost
    assert all(isinstance(g.down[i][1], nn.BatchNorm2d) for i in range(1, 7))
    assert isinstance(g.down[0][-1], nn.ELU)
    dropouts = [any(isinstance(m, nn.Dropout) for m in blk) for blk in g.up]
    assert dropouts == [True, True, True, False, False, False, False]
    assert [blk[0].out_channels for blk in g.up] == [512, 512, 512, 512, 256, 128, 64]
    assert g.head.bias is not None and g.down[0][0].bias is None
    # N(0, 0.02) init
    assert g.down[3][0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    # depth 2: a single decoder block, so a single dropout
    small = UNetGenerator(depth=2, base_filters=8)
    assert sum(isinstance(m, nn.Dropout) for m in small.modules()) == 1


def test_generator_small_config_and_size_check():
    g = UNetGenerator(depth=4, base_filters=16)
    assert g(torch.randn(2, 18, 64, 64)).shape == (2, 1, 64, 64)
    with pytest.raises(ValueError, match="divisible"):
        g(torch.randn(1, 18, 60, 64))
    g2 = UNetGenerator(in_channels=4, out_channels=2, depth=3, base_filters=8, activation="leaky_relu")
    assert g2(torch.randn(1, 4, 24, 16)).shape == (1, 2, 24, 16)


def test_patchgan_shapes_and_size():
    d = PatchGAN()
    assert n_params(d) == pytest.approx(2.78e6, rel=0.02)
    with torch.no_grad():
        assert d(torch.randn(1, 19, 256, 256)).shape == (1, 1, 30, 30)
    small = PatchGAN(base_filters=16)
    assert small(torch.randn(2, 19, 64, 64)).shape == (2, 1, 6, 6)
    assert isinstance(d.net[0][-1], nn.ELU)
    assert any(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.3 for m in d.modules())


def test_generator_loss_terms():
    fake = torch.zeros(2, 1, 4, 4)
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, 0, 0] = 1.0  # one error of 1 on a cropland pixel
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)  # [B, H, W] accepted
    mask[0, 0, :2] = True  # two cropland pixels
    logits = torch.zeros(2, 1, 2, 2)
    out = generator_loss(logits, fake, target, mask, lambda_l1=100.0, lambda_crop=10.0)
    assert out["gan"].item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert out["l1"].item() == pytest.approx(1 / 32)
    assert out["crop"].item() == pytest.approx(0.5)  # a mean over the 2 cropland pixels
    assert out["total"].item() == pytest.approx(out["gan"].item() + 100 / 32 + 10 * 0.5)
    empty = generator_loss(logits, fake, target, torch.zeros_like(mask), lambda_crop=10.0)
    assert empty["crop"].item() == 0.0 and torch.isfinite(empty["total"])
    assert generator_loss(logits, fake, target)["crop"].item() == 0.0


def _bce(logit: float, y: float) -> float:
    p = torch.sigmoid(torch.tensor(logit)).item()
    return -(y * torch.log(torch.tensor(p)) + (1 - y) * torch.log(torch.tensor(1 - p))).item()


def test_discriminator_loss_label_smoothing():
    real, fake = torch.full((1, 1, 2, 2), 2.0), torch.full((1, 1, 2, 2), -1.0)
    one = discriminator_loss(real, fake, label_smoothing=0.1)
    assert one["real"].item() == pytest.approx(_bce(2.0, 0.9), rel=1e-5)
    assert one["fake"].item() == pytest.approx(_bce(-1.0, 0.0), rel=1e-5)
    assert one["total"].item() == pytest.approx(one["real"].item() + one["fake"].item())
    keras = discriminator_loss(real, fake, label_smoothing=0.2, two_sided=True)  # the original
    assert keras["real"].item() == pytest.approx(_bce(2.0, 0.9), rel=1e-5)
    assert keras["fake"].item() == pytest.approx(_bce(-1.0, 0.1), rel=1e-5)


def test_pix2pix_tiny_training_reduces_loss():
    g = UNetGenerator(in_channels=4, depth=3, base_filters=8, dropout=0.0)
    d = PatchGAN(in_channels=5, base_filters=8, n_layers=2)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x = torch.randn(4, 4, 32, 32)
    y = torch.tanh(x[:, :1] + 0.5 * x[:, 1:2])  # learnable target in [-1, 1]
    crop = x[:, 2] > 0
    l1s = []
    for _ in range(40):
        fake = g(x)
        gl = generator_loss(d(torch.cat([x, fake], 1)), fake, y, crop, lambda_crop=10.0)
        opt_g.zero_grad()
        gl["total"].backward()
        opt_g.step()
        dl = discriminator_loss(d(torch.cat([x, y], 1)), d(torch.cat([x, fake.detach()], 1)))
        opt_d.zero_grad()
        dl["total"].backward()
        opt_d.step()
        l1s.append(gl["l1"].item())
    assert sum(l1s[-5:]) / 5 < 0.6 * sum(l1s[:5]) / 5


# ---------------------------------------------------------------- ConvLSTM classifier


def test_convlstm_shapes_and_state_carry():
    cell = ConvLSTMCell(3, 5)
    h, c = cell(torch.randn(2, 3, 8, 8))
    assert h.shape == c.shape == (2, 5, 8, 8)
    lstm = ConvLSTM(3, 5)
    x = torch.randn(2, 4, 3, 8, 8)
    assert lstm(x).shape == (2, 4, 5, 8, 8)
    valid = torch.tensor([[True, True, False, False], [True, True, True, True]])
    out = lstm(x, valid)
    assert torch.equal(out[0, 2], out[0, 1]) and torch.equal(out[0, 3], out[0, 1])
    assert torch.allclose(out[1], lstm(x)[1])


def test_classifier_reference_size():
    m = UNetConvLSTM(13, 10)  # S2 branch of the original: ~6.82 M parameters
    assert n_params(m) == pytest.approx(6.82e6, rel=0.02)
    assert n_params(LateFusionClassifier(4, 13, 10)) == pytest.approx(13.65e6, rel=0.02)
    assert m.head.bias is not None  # plain conv logits head, no BN/LeakyReLU


SMALL = dict(base_filters=4, levels=2)


@pytest.mark.parametrize("inputs", ["s1", "s2", "s1,s2", "s2, s1"])
def test_build_classifier_variants(inputs):
    model = build_classifier(inputs, s1_channels=4, s2_channels=13, num_classes=5, **SMALL)
    batch = {"s1": torch.randn(2, 3, 4, 16, 16), "s2": torch.randn(2, 3, 13, 16, 16)}
    assert model(batch).shape == (2, 5, 16, 16)
    batch["valid_steps"] = torch.tensor([[True, True, False], [True, True, True]])
    assert model(batch).shape == (2, 5, 16, 16)


def test_build_classifier_errors():
    with pytest.raises(ValueError):
        build_classifier("s3", 4, 13, 5)
    model = build_classifier("s1,s2", 4, 13, 5, **SMALL)
    with pytest.raises(KeyError):
        model({"s1": torch.randn(1, 2, 4, 8, 8)})
    m = UNetConvLSTM(4, 5, **SMALL)
    with pytest.raises(ValueError, match="divisible"):
        m(torch.randn(1, 2, 4, 10, 8))
    with pytest.raises(ValueError, match="at least one valid"):
        m(torch.randn(2, 2, 4, 8, 8), torch.tensor([[True, False], [False, False]]))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_padded_timesteps_do_not_matter(mode):
    m = UNetConvLSTM(4, 5, **SMALL)
    getattr(m, mode)()
    x = torch.randn(2, 4, 4, 8, 8)
    valid = torch.tensor([[True, True, True, False], [True, False, True, True]])
    x2 = x.clone()
    x2[0, 3] = 100.0
    x2[1, 1] = -50.0
    torch.testing.assert_close(m(x, valid), m(x2, valid))
    # a fully valid mask is the same as no mask
    torch.testing.assert_close(m(x, torch.ones(2, 4, dtype=torch.bool)), m(x))


def test_late_fusion_separate_masks():
    m = LateFusionClassifier(4, 13, 3, **SMALL)
    s1, s2 = torch.randn(1, 5, 4, 8, 8), torch.randn(1, 2, 13, 8, 8)  # different T is fine
    assert m(s1, s2, torch.tensor([[1, 1, 1, 0, 0]]).bool()).shape == (1, 3, 8, 8)


def test_classifier_tiny_training_reduces_loss():
    model = build_classifier("s1,s2", 2, 3, num_classes=3, **SMALL)
    s1, s2 = torch.randn(2, 3, 2, 16, 16), torch.randn(2, 3, 3, 16, 16)
    target = (s2[:, :, 0].mean(1) > 0).long() + (s1[:, :, 0].mean(1) > 0.5).long()
    target[:, :2] = -1  # unlabelled pixels
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
    losses = []
    for _ in range(25):
        loss = loss_fn(model({"s1": s1, "s2": s2}), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
