"""SAR2VI: predict a vegetation index (EVI or NDVI) from the Sentinel-1 stack, trained off the
live triplet stream.

    python training/sar2vi.py --catalog URL_OR_PATH --aoi california --epochs 40 --out runs/sar2vi
    python training/sar2vi.py --config training/configs/sar2vi-cpu.yaml --catalog DIR --out runs/s
    torchrun --nproc_per_node 2 training/sar2vi.py --config ... (DDP; gloo on CPU, NCCL on CUDA)

The model is the pix2pix U-Net generator and 70x70 PatchGAN of the original (spec 4.4-4.6;
``sen12ts_stac.models.pix2pix``; depths and widths configurable). Inputs: the 18 S1 channels
(4 dates x VH, VV, coherence, phase + LIA + slope), z-scored with the catalog's train-split
statistics. Target: EVI (or NDVI) computed on 0..1 reflectance (the original applied L = 1 to
x10000 values) in [-1, 1], where the generator's tanh lives; cloudy, shadowed, no-data and
radar-invalid pixels are left out of the losses and the metrics. Loss: GAN + lambda_l1 * L1
(+ lambda_crop * L1 over cropland, from the class table's crop flags). Adam 2e-4 / beta1 0.5,
mixed precision on CUDA only.

Held-out tiles (the catalog's spatial splits: test, monitored on validate) are scored with RMSE,
MAE, R^2, pooled Pearson r, bias and SSIM, overall, per land-cover class and per month, beside
two baselines fitted on the training pixels in the same run: the training mean, and per-pixel
least squares on the radar channels. Outputs in ``--out``: config.yaml, checkpoints/ (last.pt,
best.pt; ``--resume``), train_log.csv, eval_log.csv, metrics.json, per_class.csv,
per_month.csv, timeseries.csv, figures/*.png, model.pt and model-item.json (STAC MLM).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sen12ts_stac.errors import UserError
from sen12ts_stac.fsio import write_json
from sen12ts_stac.metrics import RegressionAccumulator, ssim
from sen12ts_stac.models.pix2pix import PatchGAN, UNetGenerator, discriminator_loss, generator_loss
from sen12ts_stac.spec.bands import S1 as S1_PRODUCT
from sen12ts_stac.spec.grid import RESOLUTION_M
from sen12ts_stac.stream import triplet_loader
from sen12ts_stac.train import config as cfgmod
from sen12ts_stac.train import figures, mlm
from sen12ts_stac.train.baselines import PixelLinearFit
from sen12ts_stac.train.config import RunConfig, opt
from sen12ts_stac.train.data import VI_BANDS, Standardizer, class_name, crop_lut, lookup, months, vegetation_index
from sen12ts_stac.train.loop import Checkpointer, LoopState, amp_enabled, check_shard, run_epochs, start, sum_meters
from sen12ts_stac.train.runtime import (
    CsvLog,
    Dist,
    jsonable,
    loader_bench,
    progress,
    run_main,
    save_checkpoint,
    say,
    setup,
    teardown,
    unwrap,
    wrap_ddp,
    write_csv,
)

PROG = "sar2vi"
S1_INPUTS = list(S1_PRODUCT.measurements)  # every measurement band (not the validity mask)
METHODS = ("model", "train_mean", "linear_regression")


@dataclass
class Config(RunConfig):
    out: str = opt("runs/sar2vi", "output folder")
    epochs: int = opt(40, "epochs over the training tiles")
    crop: int | None = opt(256, "random training crop in pixels (null: whole 256 px tiles)")
    target: str = opt("evi", "vegetation index to predict: evi or ndvi")
    s1_bands: list[str] = opt(S1_INPUTS, "Sentinel-1 input bands")
    gen_depth: int = opt(8, "generator encoder blocks (crops must be divisible by 2**depth)")
    gen_filters: int = opt(64, "generator filters in the first block")
    gen_max_filters: int = opt(512, "generator filter cap")
    gen_dropout: float = opt(0.5, "dropout in the first three decoder blocks")
    disc_layers: int = opt(3, "PatchGAN stride-2 blocks (3 = 70x70 receptive field)")
    disc_filters: int = opt(64, "PatchGAN filters in the first block")
    lambda_l1: float = opt(100.0, "weight of the L1 term")
    lambda_crop: float = opt(25.0, "weight of the extra L1 over cropland pixels (0: off)")
    label_smoothing: float = opt(0.2, "discriminator label smoothing")
    two_sided_smoothing: bool = opt(True, "Keras-style smoothing (real 1-s/2, fake s/2) as the original")
    lr: float = opt(2e-4, "Adam learning rate (generator and discriminator)")
    beta1: float = opt(0.5, "Adam beta1")
    baseline_batches: int | None = opt(None, "training batches used to fit the baselines (null: one pass)")

    def size_multiple(self) -> int:
        return 2**self.gen_depth

    def check(self) -> None:
        super().check()
        if self.target.lower() not in VI_BANDS:
            raise UserError(f"--target must be evi or ndvi, got {self.target!r}")
        unknown = [b for b in self.s1_bands if b not in S1_PRODUCT.names]
        if unknown or not self.s1_bands:
            raise UserError(f"--s1-bands: unknown band(s) {unknown}; bands are {', '.join(S1_INPUTS)}")
        if not 2 <= self.gen_depth <= 8:
            raise UserError(f"--gen-depth must be 2..8 (256 px tiles), got {self.gen_depth}")


# --------------------------------------------------------------------------------------------
# Batches -> tensors
# --------------------------------------------------------------------------------------------


class Prepare:
    """A streamed batch -> (x z-scored [B, C, H, W], VI [B, H, W] (0 where invalid), valid [B, H, W],
    cropland [B, H, W], labels [B, H, W])."""

    def __init__(self, cfg: Config, records, table, device):
        self.s1 = Standardizer(records, "s1", cfg.s1_bands, device)
        self.target = cfg.target.lower()
        self.s2_bands = list(VI_BANDS[self.target]) + ["cloud_mask"]
        self.crop = crop_lut(table, device)

    def __call__(self, batch: dict):
        x = self.s1(batch["s1"], batch["s1_valid"], batch["id"])
        s2 = batch["s2"]
        vi = vegetation_index(self.target, s2, self.s2_bands)
        valid = batch["s1_valid"] & batch["s2_valid"] & (s2[:, -1] > 0.5) & torch.isfinite(vi)
        vi = torch.where(valid, vi, torch.zeros_like(vi))
        label = batch["label"]
        return x, vi, valid, lookup(self.crop, label, False) & valid, label


def make_loader(cfg: Config, records, *, train: bool, crop: int | None, d: Dist | None, seed_offset: int = 0):
    aug = {}
    if crop is not None and crop < 256:
        aug["crop"] = crop
    if train:
        aug.update(hflip=cfg.hflip, vflip=cfg.vflip)
    s2 = list(VI_BANDS[cfg.target.lower()]) + ["cloud_mask"]
    shard = {"rank": d.rank, "world_size": d.world_size, "even_shards": True} if d else {"rank": 0, "world_size": 1}
    return triplet_loader(
        records,
        assets={"s1": cfg.s1_bands, "s2": s2, "label": True},
        batch_size=cfg.batch_size,
        shuffle=train,
        seed=cfg.seed + seed_offset,
        device=d.device if d else "cpu",
        num_workers=cfg.num_workers,
        prefetch=cfg.prefetch,
        augment=aug or None,
        **shard,
    )


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


class Scores:
    """Regression metrics of one method: overall, per class, per month, crop vs non-crop, SSIM."""

    def __init__(self):
        self.by_class = RegressionAccumulator()
        self.by_month = RegressionAccumulator()
        self.by_crop = RegressionAccumulator()
        self.ssim: list[float] = []

    def update(self, pred, true, valid, label, cropland, month):
        self.by_class.update(pred, true, valid, groups=label)
        self.by_month.update(pred, true, valid, groups=month)
        self.by_crop.update(pred, true, valid, groups=cropland.long())
        p = torch.where(valid, pred, true).cpu().numpy()
        if min(p.shape[-2:]) >= 7:
            self.ssim.extend(np.atleast_1d(ssim(p, true.cpu().numpy(), data_range=2.0)).tolist())

    def overall(self) -> dict:
        out = self.by_class.compute()
        out["ssim"] = float(np.mean(self.ssim)) if self.ssim else float("nan")
        return out


@torch.no_grad()
def evaluate(
    gen,
    loader,
    prep: Prepare,
    fit: PixelLinearFit | None,
    cfg: Config,
    device,
    figures_dir: Path | None = None,
    pbar=None,
) -> dict:
    """Score the generator (and the baselines when ``fit`` is given) on every batch of ``loader``;
    with ``figures_dir``, draw prediction panels and collect the per-class time series."""
    gen.eval()
    scores = {m: Scores() for m in (METHODS if fit is not None else METHODS[:1])}
    series: dict[tuple[int, str], list[float]] = {}
    seen_tiles: set[str] = set()
    vh = cfg.s1_bands.index("vh_t0") if "vh_t0" in cfg.s1_bands else 0
    task = pbar.add_task("evaluate", total=len(loader), info="") if pbar is not None else None
    for batch in loader:
        x, vi, valid, cropland, label = prep(batch)
        with torch.autocast(device.type, enabled=amp_enabled(cfg.amp, device)):
            pred = gen(x)[:, 0].float()
        month = torch.as_tensor(months(batch["s2_date"]))
        preds = {"model": pred}
        if fit is not None:
            preds["train_mean"] = fit.predict_mean(vi)
            preds["linear_regression"] = fit.predict(x)
        for m, p in preds.items():
            scores[m].update(p, vi, valid, label, cropland, month)
        if figures_dir is not None:
            _series(series, pred, vi, valid, label, batch["s2_date"])
            for i, tile in enumerate(batch["tile"]):
                if len(seen_tiles) < cfg.panels and tile not in seen_tiles:
                    seen_tiles.add(tile)
                    figures.sar2vi_panel(
                        figures_dir / f"panel_{len(seen_tiles):02d}_{batch['id'][i]}.png",
                        torch.where(batch["s1_valid"][i], batch["s1"][i, vh], torch.nan).cpu().numpy(),
                        vi[i].cpu().numpy(),
                        pred[i].cpu().numpy(),
                        valid[i].cpu().numpy(),
                        f"{batch['id'][i]} (S2 {batch['s2_date'][i]})",
                        cfg.target.upper(),
                        RESOLUTION_M,
                    )
        if task is not None:
            pbar.advance(task)
    if task is not None:
        pbar.remove_task(task)
    gen.train()
    return {"scores": scores, "series": series}


def _series(acc: dict, pred, true, valid, label, dates) -> None:
    """Per (class, date): pixels, sum of true VI, sum of predicted VI."""
    for i, date in enumerate(dates):
        m = valid[i]
        lab, t, p = label[i][m], true[i][m].double(), pred[i][m].double()
        if lab.numel() == 0:
            continue
        codes, inv = torch.unique(lab, return_inverse=True)
        n = torch.bincount(inv).double()
        st = torch.zeros(len(codes), dtype=torch.float64, device=t.device).index_add_(0, inv, t)
        sp = torch.zeros(len(codes), dtype=torch.float64, device=t.device).index_add_(0, inv, p)
        for c, a, b, k in zip(codes.tolist(), st.tolist(), sp.tolist(), n.tolist()):
            cur = acc.setdefault((c, date), [0.0, 0.0, 0.0])
            cur[0] += k
            cur[1] += a
            cur[2] += b


def _rows_by_group(scores: dict[str, Scores], which: str, key: str, label_of) -> list[dict]:
    """One row per group (class, month, crop/other): pixels, mean true VI, then RMSE, MAE, R^2, r
    and bias of every method."""
    groups = {m: getattr(s, which).compute_groups() for m, s in scores.items()}
    rows = []
    for g, ref in sorted(groups["model"].items()):
        row = {
            key: g,
            "name": label_of(g),
            "pixels": ref["n"],
            "mean_true": ref["mean_target"],
            "mean_pred_model": ref["mean_pred"],
        }
        for m, res in groups.items():
            for k in ("rmse", "mae", "r2", "pearson_r", "bias"):
                row[f"{m}_{k}"] = res.get(g, {}).get(k, float("nan"))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def fit_baselines(cfg: Config, records, prep: Prepare, d: Dist) -> PixelLinearFit:
    """The training mean and per-pixel least squares on the radar channels, over the training
    pixels (one pass, this rank's shard, sums added over ranks)."""
    fit = PixelLinearFit(len(cfg.s1_bands))
    loader = make_loader(cfg, records, train=False, crop=cfg.crop, d=d, seed_offset=1)
    for i, batch in enumerate(loader):
        if cfg.baseline_batches is not None and i >= cfg.baseline_batches:
            break
        x, vi, valid, _, _ = prep(batch)
        fit.update(x, vi, valid)
    return fit.finish(d)


def main(argv: list[str] | None = None) -> int:
    cfg, extra = cfgmod.parse(Config, argv, PROG, __doc__.split("\n\n")[0])
    d = setup(cfg.device)
    try:
        return _run(cfg, extra, d)
    finally:
        teardown(d)


def _run(cfg: Config, extra: dict, d: Dist) -> int:
    run = start(PROG, cfg, extra, d)
    plan, table, out = run.plan, run.table, run.out
    prep = Prepare(cfg, run.records, table, d.device)

    gen = UNetGenerator(
        len(cfg.s1_bands),
        1,
        depth=cfg.gen_depth,
        base_filters=cfg.gen_filters,
        max_filters=cfg.gen_max_filters,
        dropout=cfg.gen_dropout,
    ).to(d.device)
    disc = PatchGAN(len(cfg.s1_bands) + 1, base_filters=cfg.disc_filters, n_layers=cfg.disc_layers).to(d.device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    amp = amp_enabled(cfg.amp, d.device)
    scale_g, scale_d = torch.amp.GradScaler("cuda", enabled=amp), torch.amp.GradScaler("cuda", enabled=amp)
    train_loader = make_loader(cfg, plan.train, train=True, crop=cfg.crop, d=d)
    check_shard(train_loader, d)
    ckpt = Checkpointer(
        out / "checkpoints",
        d,
        PROG,
        cfg,
        {"generator": gen, "discriminator": disc},
        {"generator": opt_g, "discriminator": opt_d},
        {"generator": scale_g, "discriminator": scale_d},
        train_loader,
    )
    state, fit, bench = LoopState(), None, None
    if run.checkpoint is not None:
        state = ckpt.restore(run.checkpoint, str(run.resume_path))
        fit = PixelLinearFit.from_state(ckpt.extra["baselines"])
        say(d, cfg.quiet, f"{PROG}: resumed from {run.resume_path} at epoch {state.epoch + 1}, step {state.step}")
    elif cfg.loader_bench_batches > 0:
        bench = loader_bench(
            lambda: make_loader(cfg, plan.train, train=True, crop=cfg.crop, d=d, seed_offset=2),
            "s1",
            cfg.loader_bench_batches,
            d,
        )
        say(d, cfg.quiet, f"{PROG}: loader alone: {bench['samples_per_s']:.1f} triplets/s")
    if fit is None:
        t0 = time.perf_counter()
        fit = fit_baselines(cfg, plan.train, prep, d)
        say(
            d,
            cfg.quiet,
            f"{PROG}: baselines fitted on {int(fit.n):,} training pixels in {time.perf_counter() - t0:.1f} s",
        )
    ckpt.extra["baselines"] = fit.state()
    gen_t, disc_t = wrap_ddp(gen, d), wrap_ddp(disc, d)

    keep = state.step if run.checkpoint is not None else None
    tlog = elog = None
    if d.is_main:
        tlog = CsvLog(
            out / "train_log.csv",
            [
                "step",
                "epoch",
                "g_total",
                "g_gan",
                "g_l1",
                "g_crop",
                "d_total",
                "d_real",
                "d_fake",
                "samples_per_s",
                "loader_wait_fraction",
            ],
            keep,
        )
        elog = CsvLog(
            out / "eval_log.csv", ["step", "epoch", "split", "rmse", "mae", "r2", "pearson_r", "bias", "ssim"], keep
        )

    def monitor(bar) -> dict:
        mon = make_loader(cfg, plan.monitor, train=False, crop=cfg.eval_crop, d=None)
        return evaluate(unwrap(gen_t), mon, prep, None, cfg, d.device, pbar=bar)["scores"]["model"].overall()

    meter = run_epochs(
        cfg=cfg,
        d=d,
        loader=train_loader,
        state=state,
        ckpt=ckpt,
        tlog=tlog,
        elog=elog,
        sample_key="s1",
        step_fn=lambda batch: train_step(batch, prep, gen_t, disc_t, opt_g, opt_d, scale_g, scale_d, cfg, amp),
        monitor=monitor if plan.monitor else None,
        monitor_key="rmse",
        higher_is_better=False,
        info=lambda sm: f"G {sm['g_total']:.3f} L1 {sm['g_l1']:.4f} D {sm['d_total']:.3f}",
    )
    train_seconds = time.perf_counter() - run.started
    meters = d.gather(meter.report())
    if d.is_main:  # the final report on rank 0; the others wait in teardown's barrier
        tlog.close()
        elog.close()
        _report(cfg, plan, prep, fit, unwrap(gen_t), table, d, out, state, train_seconds, sum_meters(meters), bench)
    return 0


def train_step(batch, prep: Prepare, gen, disc, opt_g, opt_d, scale_g, scale_d, cfg: Config, amp: bool) -> dict:
    """One pix2pix step: the discriminator on (x, y) vs (x, G(x)), then the generator."""
    x, vi, valid, cropland, _ = prep(batch)
    y = vi.unsqueeze(1)
    dev = x.device.type
    with torch.autocast(dev, enabled=amp):
        fake = gen(x)
        # invalid pixels: the target takes the prediction's value there, so they add nothing
        y_fill = torch.where(valid.unsqueeze(1), y, fake.detach().float())
        dl = discriminator_loss(
            disc(torch.cat([x, y_fill], 1)),
            disc(torch.cat([x, fake.detach()], 1)),
            cfg.label_smoothing,
            cfg.two_sided_smoothing,
        )
    opt_d.zero_grad(set_to_none=True)
    scale_d.scale(dl["total"]).backward()
    scale_d.step(opt_d)
    scale_d.update()
    with torch.autocast(dev, enabled=amp):
        gl = generator_loss(
            disc(torch.cat([x, fake], 1)), fake.float(), y_fill, cropland, cfg.lambda_l1, cfg.lambda_crop
        )
    opt_g.zero_grad(set_to_none=True)
    scale_g.scale(gl["total"]).backward()
    scale_g.step(opt_g)
    scale_g.update()
    vals = {
        "g_total": gl["total"],
        "g_gan": gl["gan"],
        "g_l1": gl["l1"],
        "g_crop": gl["crop"],
        "d_total": dl["total"],
        "d_real": dl["real"],
        "d_fake": dl["fake"],
    }
    return {k: float(v.detach()) for k, v in vals.items()}


def _report(
    cfg: Config,
    plan,
    prep: Prepare,
    fit: PixelLinearFit,
    gen,
    table,
    d: Dist,
    out: Path,
    state: LoopState,
    train_seconds: float,
    throughput: dict,
    bench: dict | None,
) -> None:
    """Score the final generator and the baselines on the report split; write every output."""
    figs = out / "figures"
    loader = make_loader(cfg, plan.report, train=False, crop=cfg.eval_crop, d=None)
    with progress(not cfg.quiet) as bar:
        res = evaluate(gen, loader, prep, fit, cfg, d.device, figures_dir=figs, pbar=bar)
    scores = res["scores"]
    overall = {m: s.overall() for m, s in scores.items()}
    name_of = lambda g: class_name(table, g)  # noqa: E731
    per_class = _rows_by_group(scores, "by_class", "class", name_of)
    for r in per_class:
        r["name"] = f"{r['name']} (crop)" if table is not None and r["class"] in table.crop_values else r["name"]
    crop_rows = _rows_by_group(scores, "by_crop", "class", lambda g: "all cropland" if g == 1 else "all other land")
    for r in crop_rows:
        r["class"] = "cropland" if r["class"] == 1 else "other"
    per_month = _rows_by_group(scores, "by_month", "month", lambda g: dt.date(2020, g, 1).strftime("%B"))
    write_csv(out / "per_class.csv", per_class + crop_rows)
    write_csv(out / "per_month.csv", per_month)
    ts = [
        {
            "class": c,
            "name": name_of(c),
            "date": date,
            "pixels": int(v[0]),
            "mean_true": v[1] / v[0],
            "mean_pred": v[2] / v[0],
        }
        for (c, date), v in sorted(res["series"].items())
    ]
    write_csv(out / "timeseries.csv", ts)
    by_name: dict[str, list] = {}
    for r in ts:
        if r["class"] >= 0:
            point = (r["date"], r["mean_true"], r["mean_pred"], r["pixels"])
            by_name.setdefault(f"{r['class']} {r['name']}", []).append(point)
    vi = cfg.target.upper()
    if by_name:
        figures.vi_timeseries(
            figs / "vi_timeseries.png",
            by_name,
            vi,
            f"mean {vi} per class and date, {plan.report_split} tiles: true vs predicted",
        )
    _loss_figure(out, figs)

    # weights + MLM item
    weights = out / "model.pt"
    save_checkpoint(
        weights,
        {
            "recipe": PROG,
            "config": dataclasses.asdict(cfg),
            "generator": gen.state_dict(),
            "normalization": prep.s1.as_dict(),
            "target": cfg.target,
        },
    )
    m, b1, b2 = overall["model"], overall["train_mean"], overall["linear_regression"]
    metrics = {
        "recipe": PROG,
        "catalog": cfg.catalog,
        "target": cfg.target,
        "splits": plan.summary(),
        "training": {
            "steps": state.step,
            "epochs": state.epoch,
            "seconds": train_seconds,
            "processes": d.world_size,
            "device": str(d.device),
            "baseline_pixels": int(fit.n),
        },
        "throughput": {"loader_only": bench, "training": throughput},
        "report": {
            "split": plan.report_split,
            "model": m,
            "baselines": {"train_mean": b1, "linear_regression": b2},
            "model_beats_baselines": {k: bool(m[k] < min(b1[k], b2[k])) for k in ("rmse", "mae")}
            | {"r2": bool(m["r2"] > max(b1["r2"], b2["r2"]))},
        },
        "baseline_fit": {
            "train_mean": fit.mean,
            "linear_regression_coef": dict(zip(["intercept", *cfg.s1_bands], map(float, fit.coef))),
        },
        "per_class": per_class + crop_rows,
        "per_month": per_month,
    }
    write_json(out / "metrics.json", jsonable(metrics))
    n_params = sum(p.numel() for p in gen.parameters())
    size = f"{cfg.eval_crop or 256}"
    item = mlm.model_item(
        item_id=f"sen12ts-sar2vi-{cfg.target.lower()}-{Path(cfg.out).name}",
        title=f"SAR2VI: Sentinel-1 to {vi} (pix2pix U-Net, depth {cfg.gen_depth})",
        description=(
            f"Pix2pix U-Net generator trained adversarially (70x70 PatchGAN) to predict {vi} from the "
            f"Sentinel-1 stack; held-out {plan.report_split} RMSE {m['rmse']:.4f} (training-mean baseline "
            f"{b1['rmse']:.4f}, linear regression {b2['rmse']:.4f})."
        ),
        catalog=cfg.catalog,
        records=plan.train,
        out_dir=out,
        weights=weights,
        architecture="pix2pix U-Net (GAN)",
        tasks=["regression", "generative"],
        inputs=[
            mlm.mlm_input(
                "sentinel-1",
                cfg.s1_bands,
                [-1, len(cfg.s1_bands), int(size), int(size)],
                ["batch", "channel", "height", "width"],
                scaling=prep.s1.as_dict(),
                description="Sentinel-1 stack of the triplet: 4 dates x VH, VV (dB), coherence, phase; "
                "LIA and slope; z-scored; no-data set to 0",
            )
        ],
        outputs=[
            mlm.mlm_output(
                vi.lower(),
                ["regression"],
                [-1, 1, int(size), int(size)],
                ["batch", "channel", "height", "width"],
                description=f"{vi} in [-1, 1] from 0..1 reflectance (tanh output)",
            )
        ],
        hyperparameters={
            k: v
            for k, v in dataclasses.asdict(cfg).items()
            if k not in ("catalog", "out", "quiet", "device", "panels", "loader_bench_batches")
        },
        total_parameters=n_params,
        bands=[
            {"name": b, "description": S1_PRODUCT.bands[S1_PRODUCT.names.index(b)].description} for b in cfg.s1_bands
        ],
        device=d.device,
        batch_size=cfg.batch_size,
        assets={
            "metrics": {
                "href": "metrics.json",
                "type": "application/json",
                "roles": ["metadata"],
                "title": "held-out metrics against the baselines",
            },
            "config": {"href": "config.yaml", "type": "application/yaml", "roles": ["metadata"]},
            "per-class": {"href": "per_class.csv", "type": "text/csv", "roles": ["metadata"]},
            "timeseries": {"href": "figures/vi_timeseries.png", "type": "image/png", "roles": ["overview"]},
        },
        properties={"sen12ts:report_split": plan.report_split, "sen12ts:rmse": m["rmse"]},
    )
    mlm.write_model_item(out / "model-item.json", jsonable(item))
    if not cfg.quiet:
        _print_summary(overall, plan, metrics["throughput"], out)


def _loss_figure(out: Path, figs: Path) -> None:
    import csv

    path = out / "train_log.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    keys = ("g_l1", "g_gan", "d_total")
    vals = {k: [float(r[k]) if r[k] else float("nan") for r in rows] for k in keys}
    figures.curves(figs / "losses.png", steps, vals, "training losses")


def _print_summary(overall: dict, plan, tp: dict, out: Path) -> None:
    print(f"\n{plan.report_split} tiles ({len(plan.report)} triplets):", file=sys.stderr)
    print(f"  {'method':<20}{'RMSE':>8}{'MAE':>8}{'R2':>8}{'r':>8}{'bias':>8}{'SSIM':>8}", file=sys.stderr)
    for m, r in overall.items():
        print(
            f"  {m:<20}{r['rmse']:8.4f}{r['mae']:8.4f}{r['r2']:8.3f}{r['pearson_r']:8.3f}{r['bias']:8.4f}"
            f"{r['ssim']:8.3f}",
            file=sys.stderr,
        )
    t = tp["training"]
    print(
        f"  training: {t['samples_per_s']:.1f} triplets/s, {100 * t['loader_wait_fraction']:.0f}% of the time "
        f"waiting for data"
        + (f"; loader alone {tp['loader_only']['samples_per_s']:.1f} triplets/s" if tp.get("loader_only") else ""),
        file=sys.stderr,
    )
    print(f"  outputs: {out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run_main(PROG, main))
