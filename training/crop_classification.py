"""Crop classification: a U-Net with a ConvLSTM bottleneck over each tile's time series, from
Sentinel-1, Sentinel-2 or both (late fusion), trained off the live stream of tile sequences.

    python training/crop_classification.py --catalog URL_OR_PATH --inputs s1,s2 --out runs/crop
    python training/crop_classification.py --catalog URL_OR_PATH --inputs all --out runs/crop
    torchrun --nproc_per_node 2 training/crop_classification.py --config ... (DDP)

The model is ``sen12ts_stac.models.convlstm`` (spec 5.5, after Rustowicz et al. 2019): a shared
2-D encoder per date, a ConvLSTM over the dates at the bottleneck, a 2-D decoder; padded dates are
masked. ``--inputs s1``, ``s2`` or ``s1,s2`` (two branches whose logits are summed, then a 1x1
layer); ``all`` trains the three one after the other on the same tiles and writes one comparison
table. Classes: the ``top_k`` most frequent **crop** classes of the training tiles (the class
table's crop flags; ``--classes`` to list them yourself); every other pixel, unlabelled or not
one of them, is ignored (-1), never class 0. Loss: cross-entropy weighted by balanced
inverse-frequency weights from the training counts. Metrics on held-out tiles (test, monitored on
validate): overall accuracy, macro and per-class F1, precision, recall, IoU, kappa, mIoU, top-k
accuracy and the confusion matrix.

Outputs in ``--out`` (per variant in ``--out/<variant>`` with ``all``): config.yaml, checkpoints/
(``--resume``), train_log.csv, eval_log.csv, metrics.json, per_class.csv, classes.csv,
figures/ (confusion matrix, class maps), model.pt, model-item.json (STAC MLM); with ``all`` also
comparison.csv / comparison.md / metrics.json at the top.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sen12ts_stac.errors import UserError
from sen12ts_stac.fsio import write_bytes, write_json
from sen12ts_stac.metrics import ConfusionAccumulator, topk_accuracy
from sen12ts_stac.models.convlstm import build_classifier
from sen12ts_stac.spec.bands import S1 as S1_PRODUCT
from sen12ts_stac.spec.bands import S2 as S2_PRODUCT
from sen12ts_stac.spec.grid import RESOLUTION_M
from sen12ts_stac.stream import triplet_loader
from sen12ts_stac.train import config as cfgmod
from sen12ts_stac.train import figures, mlm
from sen12ts_stac.train.config import RunConfig, opt
from sen12ts_stac.train.data import Standardizer, class_name
from sen12ts_stac.train.loop import (
    Checkpointer,
    LoopState,
    Run,
    amp_enabled,
    check_shard,
    run_epochs,
    start,
    sum_meters,
)
from sen12ts_stac.train.runtime import (
    CsvLog,
    Dist,
    jsonable,
    load_checkpoint,
    loader_bench,
    progress,
    resolve_resume,
    run_main,
    save_checkpoint,
    say,
    setup,
    teardown,
    unwrap,
    wrap_ddp,
    write_csv,
)

PROG = "crop_classification"
S2_SPECTRAL = list(S2_PRODUCT.measurements)  # the 12 reflectance bands (not SCL, not the cloud mask)
VARIANTS = {"s1": "s1", "s2": "s2", "s1,s2": "s1+s2"}
TOPK = (1, 3, 5)


@dataclass
class Config(RunConfig):
    out: str = opt("runs/crop", "output folder")
    inputs: str = opt("s1,s2", "s1, s2, s1,s2 (late fusion) or all (the three, compared in one table)")
    epochs: int = opt(30, "epochs over the training tiles")
    batch_size: int = opt(4, "tile series per batch (per process under torchrun)")
    max_dates: int = opt(16, "dates per tile series (evenly spaced over the year when a tile has more)")
    crop: int | None = opt(64, "random training crop in pixels (the original trained on 64 px patches)")
    vflip: bool = opt(True, "random vertical flips")
    s1_bands: list[str] = opt(["vh_t0", "vv_t0", "coh_t0", "phase_t0"], "Sentinel-1 bands per date")
    s2_bands: list[str] = opt(S2_SPECTRAL, "Sentinel-2 bands per date")
    top_k: int = opt(10, "number of classes: the most frequent in the training tiles")
    crop_only: bool = opt(True, "choose among the class table's crop classes only")
    classes: list[int] = opt([], "explicit class codes (overrides top_k and crop_only)")
    class_weights: str = opt("balanced", "balanced (N / (k * N_c) from training counts) or none")
    base_filters: int = opt(32, "filters of the first U-Net level")
    levels: int = opt(3, "U-Net levels (crops must be divisible by 2**levels)")
    lr: float = opt(1e-3, "Adam learning rate")
    weight_decay: float = opt(0.0, "Adam weight decay")
    clip_norm: float = opt(3.0, "gradient norm clipping (the original's clipnorm; 0: off)")
    log_every: int = opt(5, "log training losses every N steps")
    panels: int = opt(6, "class-map panels to draw (held-out tiles)")

    def size_multiple(self) -> int:
        return 2**self.levels

    def check(self) -> None:
        super().check()
        self.variants()
        bad = [b for b in self.s1_bands if b not in S1_PRODUCT.names] + [
            b for b in self.s2_bands if b not in S2_PRODUCT.names
        ]
        if bad:
            raise UserError(f"unknown band(s) {bad}")
        if self.class_weights not in ("balanced", "none"):
            raise UserError(f"--class-weights must be balanced or none, got {self.class_weights!r}")
        if self.top_k < 1 or self.max_dates < 1:
            raise UserError("--top-k and --max-dates must be at least 1")

    def variants(self) -> list[str]:
        """The input sets to train: ``["s1"]``, ``["s2"]``, ``["s1,s2"]`` or all three."""
        v = self.inputs.replace(" ", "").lower()
        if v == "all":
            return list(VARIANTS)
        key = ",".join(sorted(set(v.split(","))))
        if key not in VARIANTS:
            raise UserError(f"--inputs must be s1, s2, s1,s2 or all; got {self.inputs!r}")
        return [key]


# --------------------------------------------------------------------------------------------
# Classes
# --------------------------------------------------------------------------------------------


def count_labels(cfg: Config, records, d: Dist) -> np.ndarray:
    """Pixel counts per label code (0..255) over the training tiles (one label read per tile,
    sharded over ranks, summed)."""
    first = {}
    for r in records:
        first.setdefault(r.tile, r)
    loader = triplet_loader(
        sorted(first.values(), key=lambda r: r.id),
        assets={"label": True},
        batch_size=cfg.batch_size,
        shuffle=False,
        num_workers=cfg.num_workers,
        rank=d.rank,
        world_size=d.world_size,
    )
    counts = torch.zeros(256, dtype=torch.int64)
    for batch in loader:
        lab = batch["label"]
        counts += torch.bincount(lab[(lab >= 0) & (lab < 256)].flatten().cpu(), minlength=256)
    return d.all_reduce_sum(counts).numpy()


def choose_classes(cfg: Config, counts: np.ndarray, table) -> list[int]:
    """Explicit ``classes``, else the ``top_k`` most frequent (crop) codes present in training."""
    if cfg.classes:
        absent = [c for c in cfg.classes if not 0 <= c < len(counts) or counts[c] == 0]
        if absent:
            raise UserError(f"--classes {absent} do not occur in the training tiles")
        return list(dict.fromkeys(cfg.classes))
    order = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c] > 0]
    if cfg.crop_only:
        if table is None:
            raise UserError("crop_only needs the AOI's class table (unknown AOI); give --classes or --crop-only false")
        order = [c for c in order if c in table.crop_values]
    if not order:
        raise UserError("the training tiles hold no crop pixels to learn" if cfg.crop_only else "no labelled pixels")
    return order[: cfg.top_k]


def balanced_weights(counts: np.ndarray, classes: list[int]) -> np.ndarray:
    """sklearn's "balanced": ``N / (k * N_c)`` over the chosen classes' training pixels."""
    n = counts[classes].astype(np.float64)
    return n.sum() / (len(classes) * n)


# --------------------------------------------------------------------------------------------
# Batches -> tensors
# --------------------------------------------------------------------------------------------


class Prepare:
    """A streamed tile-series batch -> model inputs (z-scored, padded dates zero) and class
    indices ``[B, H, W]`` (-1: ignored)."""

    def __init__(self, cfg: Config, inputs: str, records, classes: list[int], device):
        self.keys = inputs.split(",")
        self.norm = {"s1": Standardizer(records, "s1", cfg.s1_bands, device)} if "s1" in self.keys else {}
        if "s2" in self.keys:
            self.norm["s2"] = Standardizer(records, "s2", cfg.s2_bands, device)
        lut = torch.full((256,), -1, dtype=torch.int64)
        lut[torch.tensor(classes)] = torch.arange(len(classes))
        self.lut = lut.to(device)

    def target(self, label: torch.Tensor) -> torch.Tensor:
        ok = (label >= 0) & (label < 256)
        return torch.where(ok, self.lut[label.clamp(0, 255)], torch.full_like(label, -1))

    def __call__(self, batch: dict) -> tuple[dict, torch.Tensor]:
        x = {k: self.norm[k](batch[k], batch[f"{k}_valid"], batch["id"]) for k in self.keys}
        x["valid_steps"] = batch["valid_steps"]
        return x, self.target(batch["label"])


def make_loader(
    cfg: Config, inputs: str, records, *, train: bool, crop: int | None, d: Dist | None, seed_offset: int = 0
):
    assets: dict = {"label": True}
    if "s1" in inputs.split(","):
        assets["s1"] = cfg.s1_bands
    if "s2" in inputs.split(","):
        assets["s2"] = cfg.s2_bands
    aug: dict = {"crop": crop} if crop is not None and crop < 256 else {}
    if train:
        aug.update(hflip=cfg.hflip, vflip=cfg.vflip)
    shard = {"rank": d.rank, "world_size": d.world_size, "even_shards": True} if d else {"rank": 0, "world_size": 1}
    return triplet_loader(
        records,
        assets=assets,
        sequence="tile",
        max_steps=cfg.max_dates,
        batch_size=cfg.batch_size,
        shuffle=train,
        seed=cfg.seed + seed_offset,
        device=d.device if d else "cpu",
        num_workers=cfg.num_workers,
        prefetch=cfg.prefetch,
        augment=aug or None,
        **shard,
    )


def weighted_ce(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy over labelled pixels (``y`` >= 0), weighted per class and normalised by the
    sum of the weights; 0 (with a graph) when the batch has no labelled pixel."""
    if not bool((y >= 0).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), y, weight=weight, ignore_index=-1)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model, loader, prep: Prepare, k: int, device, amp: bool, panel_fn=None, pbar=None) -> dict:
    """Confusion matrix metrics and top-k accuracies of ``model`` over ``loader``."""
    model.eval()
    cm = ConfusionAccumulator(k, ignore_index=-1)
    hits = {t: [0, 0] for t in TOPK if t <= k}
    task = pbar.add_task("evaluate", total=len(loader), info="") if pbar is not None else None
    for batch in loader:
        x, y = prep(batch)
        with torch.autocast(device.type, enabled=amp):
            logits = model(x).float()
        pred = logits.argmax(1)
        cm.update(pred.cpu(), y.cpu())
        for t in hits:
            c, n = topk_accuracy(logits, y, k=t, ignore_index=-1, return_counts=True)
            hits[t][0] += c
            hits[t][1] += n
        if panel_fn is not None:
            panel_fn(batch, y, pred)
        if task is not None:
            pbar.advance(task)
    if task is not None:
        pbar.remove_task(task)
    model.train()
    res = cm.compute()
    for t, (c, n) in hits.items():
        res[f"top{t}_accuracy"] = c / n if n else float("nan")
    return res


# --------------------------------------------------------------------------------------------
# One variant
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    cfg, extra = cfgmod.parse(Config, argv, PROG, __doc__.split("\n\n")[0])
    d = setup(cfg.device)
    try:
        return _run(cfg, extra, d)
    finally:
        teardown(d)


def _run(cfg: Config, extra: dict, d: Dist) -> int:
    variants = cfg.variants()
    if len(variants) > 1 and extra.get("resume") not in (None, "auto"):
        raise UserError("with --inputs all, give --resume without a path: each variant resumes from its own folder")
    run = start(PROG, cfg, {**extra, "resume": None}, d)  # checkpoints are per variant
    counts = count_labels(cfg, run.plan.train, d)
    classes = choose_classes(cfg, counts, run.table)
    weights = balanced_weights(counts, classes) if cfg.class_weights == "balanced" else np.ones(len(classes))
    say(
        d,
        cfg.quiet,
        f"{PROG}: {len(classes)} classes: " + ", ".join(f"{c} {class_name(run.table, c)}" for c in classes),
    )
    if d.is_main:
        write_csv(
            run.out / "classes.csv",
            [
                {
                    "index": i,
                    "code": c,
                    "name": class_name(run.table, c),
                    "crop": bool(run.table and c in run.table.crop_values),
                    "training_pixels": int(counts[c]),
                    "weight": float(w),
                }
                for i, (c, w) in enumerate(zip(classes, weights))
            ],
        )
    results = {}
    for v in variants:
        sub = run.out if len(variants) == 1 else run.out / VARIANTS[v]
        results[VARIANTS[v]] = train_variant(cfg, v, run, sub, classes, weights, counts, d, extra.get("resume"))
    if d.is_main and len(variants) > 1:
        _compare(cfg, run, results, classes)
    return 0


def train_variant(
    cfg: Config, inputs: str, run: Run, out: Path, classes, weights, counts, d: Dist, resume: str | None
) -> dict | None:
    """Train and report one input set in ``out``; returns its report metrics (rank 0)."""
    plan = run.plan
    label = f"[{VARIANTS[inputs]}] "
    ckpt_path = resolve_resume(resume, out) if resume else None
    if ckpt_path is not None and not ckpt_path.exists() and resume == "auto" and out != run.out:
        ckpt_path = None  # --inputs all: a variant not started before the interruption starts fresh
    saved = load_checkpoint(ckpt_path) if ckpt_path else None
    torch.manual_seed(cfg.seed)
    prep = Prepare(cfg, inputs, run.records, classes, d.device)
    k = len(classes)
    model = build_classifier(
        inputs, len(cfg.s1_bands), len(cfg.s2_bands), k, base_filters=cfg.base_filters, levels=cfg.levels
    ).to(d.device)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp = amp_enabled(cfg.amp, d.device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loader = make_loader(cfg, inputs, plan.train, train=True, crop=cfg.crop, d=d)
    check_shard(loader, d)
    ck = Checkpointer(out / "checkpoints", d, PROG, cfg, {"model": model}, {"model": optim}, {"model": scaler}, loader)
    state, bench = LoopState(), None
    if saved is not None:
        state = ck.restore(saved, str(ckpt_path))
        if ck.extra.get("classes") != classes or ck.extra.get("inputs") != inputs:
            raise UserError(
                f"{ckpt_path}: saved for inputs {ck.extra.get('inputs')} and classes "
                f"{ck.extra.get('classes')}, not {inputs} and {classes}"
            )
        say(d, cfg.quiet, f"{PROG} {label}resumed from {ckpt_path} at epoch {state.epoch + 1}, step {state.step}")
    elif cfg.loader_bench_batches > 0:
        bench = loader_bench(
            lambda: make_loader(cfg, inputs, plan.train, train=True, crop=cfg.crop, d=d, seed_offset=2),
            "label",
            cfg.loader_bench_batches,
            d,
        )
        say(d, cfg.quiet, f"{PROG} {label}loader alone: {bench['samples_per_s']:.2f} tile series/s")
    ck.extra.update(classes=classes, inputs=inputs)
    model_t = wrap_ddp(model, d)
    w = torch.tensor(weights, dtype=torch.float32, device=d.device)

    def step_fn(batch) -> dict:
        x, y = prep(batch)
        with torch.autocast(d.device.type, enabled=amp):
            logits = model_t(x)
        loss = weighted_ce(logits, y, w)
        optim.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.clip_norm > 0:
            scaler.unscale_(optim)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        scaler.step(optim)
        scaler.update()
        labelled = y >= 0
        acc = float((logits.argmax(1)[labelled] == y[labelled]).float().mean()) if labelled.any() else float("nan")
        return {"loss": float(loss.detach()), "pixel_accuracy": acc}

    def monitor(bar) -> dict:
        mon = make_loader(cfg, inputs, plan.monitor, train=False, crop=cfg.eval_crop, d=None)
        return evaluate(unwrap(model_t), mon, prep, k, d.device, amp, pbar=bar)

    keep = state.step if saved is not None else None
    tlog = elog = None
    if d.is_main:
        out.mkdir(parents=True, exist_ok=True)
        tlog = CsvLog(
            out / "train_log.csv",
            ["step", "epoch", "loss", "pixel_accuracy", "samples_per_s", "loader_wait_fraction"],
            keep,
        )
        elog = CsvLog(
            out / "eval_log.csv", ["step", "epoch", "split", "overall_accuracy", "macro_f1", "kappa", "miou"], keep
        )
    started = time.perf_counter()
    meter = run_epochs(
        cfg=cfg,
        d=d,
        loader=loader,
        state=state,
        step_fn=step_fn,
        ckpt=ck,
        tlog=tlog,
        elog=elog,
        monitor=monitor if plan.monitor else None,
        monitor_key="macro_f1",
        higher_is_better=True,
        info=lambda sm: f"loss {sm['loss']:.3f} acc {sm['pixel_accuracy']:.2f}",
        label=label,
    )
    seconds = time.perf_counter() - started
    meters = d.gather(meter.report())
    if not d.is_main:
        return None
    tlog.close()
    elog.close()
    return _report(
        cfg,
        inputs,
        run,
        out,
        unwrap(model_t),
        prep,
        classes,
        counts,
        weights,
        amp,
        d,
        state,
        seconds,
        sum_meters(meters),
        bench,
    )


def _report(
    cfg: Config,
    inputs: str,
    run: Run,
    out: Path,
    model,
    prep: Prepare,
    classes,
    counts,
    weights,
    amp,
    d: Dist,
    state: LoopState,
    seconds: float,
    throughput: dict,
    bench,
) -> dict:
    plan, table = run.plan, run.table
    figs = out / "figures"
    names = [f"{c} {class_name(table, c)}" for c in classes]
    colors = [table[c].color if table is not None and c in table else f"C{i % 10}" for i, c in enumerate(classes)]
    drawn: set[str] = set()
    rgb = ("B04", "B03", "B02")
    rgb_idx = [cfg.s2_bands.index(b) for b in rgb] if set(rgb) <= set(cfg.s2_bands) else None

    def panel(batch, y, pred):
        for i, tile in enumerate(batch["tile"]):
            if len(drawn) >= cfg.panels or tile in drawn:
                continue
            drawn.add(tile)
            picture = None
            if "s2" in batch and rgb_idx is not None:  # true colour at the middle date
                steps = int(batch["valid_steps"][i].sum())
                picture = batch["s2"][i, steps // 2, rgb_idx].permute(1, 2, 0).cpu().numpy() / 0.3
            figures.class_panel(
                figs / f"classes_{len(drawn):02d}_{tile}.png",
                picture,
                y[i].cpu().numpy(),
                pred[i].cpu().numpy(),
                colors,
                names,
                f"{VARIANTS[inputs]}: tile {tile} ({plan.report_split})",
                RESOLUTION_M,
            )

    loader = make_loader(cfg, inputs, plan.report, train=False, crop=cfg.eval_crop, d=None)
    with progress(not cfg.quiet) as bar:
        res = evaluate(model, loader, prep, len(classes), d.device, amp, panel_fn=panel, pbar=bar)
    figures.confusion_matrix(
        figs / "confusion_matrix.png",
        np.array(res["confusion_matrix"]),
        names,
        f"{VARIANTS[inputs]}, {plan.report_split} tiles: OA {res['overall_accuracy']:.3f}, "
        f"macro F1 {res['macro_f1']:.3f}",
    )
    per_class = [
        {
            "index": i,
            "code": c,
            "name": class_name(table, c),
            "training_pixels": int(counts[c]),
            "weight": float(weights[i]),
            "support": res["support"][i],
            "precision": res["precision"][i],
            "recall": res["recall"][i],
            "f1": res["f1"][i],
            "iou": res["iou"][i],
        }
        for i, c in enumerate(classes)
    ]
    write_csv(out / "per_class.csv", per_class)
    cm_rows = [
        {"true": n, **{f"pred {m}": int(v) for m, v in zip(names, row)}}
        for n, row in zip(names, res["confusion_matrix"])
    ]
    write_csv(out / "confusion_matrix.csv", cm_rows)

    weights_path = out / "model.pt"
    save_checkpoint(
        weights_path,
        {
            "recipe": PROG,
            "config": dataclasses.asdict(cfg),
            "inputs": inputs,
            "classes": classes,
            "model": model.state_dict(),
            "normalization": {k: n.as_dict() for k, n in prep.norm.items()},
        },
    )
    headline = {
        k: res[k]
        for k in (
            "overall_accuracy",
            "macro_f1",
            "kappa",
            "miou",
            "n",
            "n_ignored",
            *[f"top{t}_accuracy" for t in TOPK if t <= len(classes)],
        )
    }
    metrics = {
        "recipe": PROG,
        "catalog": cfg.catalog,
        "inputs": VARIANTS[inputs],
        "splits": plan.summary(),
        "classes": [{"index": i, "code": c, "name": class_name(table, c)} for i, c in enumerate(classes)],
        "training": {
            "steps": state.step,
            "epochs": state.epoch,
            "seconds": seconds,
            "processes": d.world_size,
            "device": str(d.device),
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "throughput": {"loader_only": bench, "training": throughput},
        "report": {"split": plan.report_split, **headline},
        "per_class": per_class,
        "confusion_matrix": res["confusion_matrix"],
    }
    write_json(out / "metrics.json", jsonable(metrics))
    _model_item(cfg, inputs, run, out, model, prep, classes, weights_path, headline, d)
    if not cfg.quiet:
        print(
            f"\n[{VARIANTS[inputs]}] {plan.report_split} tiles: OA {res['overall_accuracy']:.3f}  macro F1 "
            f"{res['macro_f1']:.3f}  kappa {res['kappa']:.3f}  mIoU {res['miou']:.3f}  "
            f"({throughput['samples_per_s']:.2f} tile series/s, {100 * throughput['loader_wait_fraction']:.0f}% "
            f"waiting for data)",
            file=sys.stderr,
        )
    return metrics


def _model_item(
    cfg: Config, inputs: str, run: Run, out: Path, model, prep: Prepare, classes, weights_path, headline, d: Dist
) -> None:
    table = run.table
    size = cfg.eval_crop or 256
    t = cfg.max_dates
    products = {
        "s1": (S1_PRODUCT, cfg.s1_bands, "Sentinel-1 per date: VH, VV (dB), coherence, phase"),
        "s2": (S2_PRODUCT, cfg.s2_bands, "Sentinel-2 L2A reflectance (0..1) per date"),
    }
    inputs_mlm, bands = [], []
    for key in inputs.split(","):
        product, names, desc = products[key]
        inputs_mlm.append(
            mlm.mlm_input(
                key,
                names,
                [-1, t, len(names), size, size],
                ["batch", "time", "channel", "height", "width"],
                scaling=prep.norm[key].as_dict(),
                description=f"{desc}; z-scored; dates sorted, zero-padded to {t} "
                "(the valid_steps mask marks real dates)",
            )
        )
        bands += [{"name": b, "description": product.bands[product.names.index(b)].description} for b in names]
    stac_classes = {c["value"]: c for c in table.to_stac_classes()} if table is not None else {}
    out_classes = [
        {
            "value": i,
            "name": stac_classes[c]["name"] if c in stac_classes else f"class_{c}",
            "description": f"{table.id.upper() if table else 'label'} {c}: {class_name(table, c)}",
            **({"color_hint": stac_classes[c]["color_hint"]} if c in stac_classes else {}),
        }
        for i, c in enumerate(classes)
    ]
    item = mlm.model_item(
        item_id=f"sen12ts-crop-{VARIANTS[inputs]}-{Path(cfg.out).name}",
        title=f"Crop classification from {VARIANTS[inputs].upper()} time series (U-Net + ConvLSTM)",
        description=(
            f"U-Net with a ConvLSTM bottleneck over up to {t} dates ({VARIANTS[inputs]}), "
            f"{len(classes)} crop classes; held-out {run.plan.report_split}: OA "
            f"{headline['overall_accuracy']:.3f}, macro F1 {headline['macro_f1']:.3f}."
        ),
        catalog=cfg.catalog,
        records=run.plan.train,
        out_dir=out,
        weights=weights_path,
        architecture="U-Net + ConvLSTM" + (" (late fusion)" if inputs == "s1,s2" else ""),
        tasks=["semantic-segmentation", "classification"],
        inputs=inputs_mlm,
        outputs=[
            mlm.mlm_output(
                "classes",
                ["semantic-segmentation"],
                [-1, len(classes), size, size],
                ["batch", "class", "height", "width"],
                classes=out_classes,
                description="per-pixel class logits (argmax over 'class' gives the class index)",
            )
        ],
        hyperparameters={
            k: v
            for k, v in dataclasses.asdict(cfg).items()
            if k not in ("catalog", "out", "quiet", "device", "panels", "loader_bench_batches", "classes")
        }
        | {"classes": classes},
        total_parameters=sum(p.numel() for p in model.parameters()),
        bands=bands,
        device=d.device,
        batch_size=cfg.batch_size,
        assets={
            "metrics": {"href": "metrics.json", "type": "application/json", "roles": ["metadata"]},
            "config": {
                "href": "../config.yaml" if out != run.out else "config.yaml",
                "type": "application/yaml",
                "roles": ["metadata"],
            },
            "confusion-matrix": {"href": "figures/confusion_matrix.png", "type": "image/png", "roles": ["overview"]},
        },
        properties={"sen12ts:report_split": run.plan.report_split, "sen12ts:macro_f1": headline["macro_f1"]},
    )
    mlm.write_model_item(out / "model-item.json", jsonable(item))


def _compare(cfg: Config, run: Run, results: dict, classes) -> None:
    """The variants side by side: comparison.csv, comparison.md and a top-level metrics.json."""
    rows = []
    for name, m in results.items():
        r = m["report"]
        f1 = {f"f1 {p['code']} {p['name']}": p["f1"] for p in m["per_class"]}
        rows.append(
            {
                "inputs": name,
                "overall_accuracy": r["overall_accuracy"],
                "macro_f1": r["macro_f1"],
                "kappa": r["kappa"],
                "miou": r["miou"],
                **f1,
                "parameters": m["training"]["parameters"],
                "train_seconds": m["training"]["seconds"],
                "train_samples_per_s": m["throughput"]["training"]["samples_per_s"],
            }
        )
    write_csv(run.out / "comparison.csv", rows)
    head = ["inputs", "OA", "macro F1", "kappa", "mIoU", "parameters", "train s"]
    lines = [
        f"Held-out split: {run.plan.report_split} ({len({r.tile for r in run.plan.report})} tiles); "
        f"{len(classes)} classes.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        lines.append(
            f"| {r['inputs']} | {r['overall_accuracy']:.3f} | {r['macro_f1']:.3f} | {r['kappa']:.3f} | "
            f"{r['miou']:.3f} | {r['parameters']:,} | {r['train_seconds']:.0f} |"
        )
    write_bytes(run.out / "comparison.md", ("\n".join(lines) + "\n").encode())
    write_json(
        run.out / "metrics.json",
        jsonable(
            {
                "recipe": PROG,
                "catalog": cfg.catalog,
                "splits": run.plan.summary(),
                "comparison": rows,
                "variants": list(results),
            }
        ),
    )
    if not cfg.quiet:
        print("\n" + "\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run_main(PROG, main))
