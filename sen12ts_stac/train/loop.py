"""The epoch loop both recipes run, and their checkpoints.

:class:`Checkpointer` saves and restores everything a run needs to continue where it stopped:
models, optimisers, AMP scalers, epoch, step, the best monitored score, every rank's loader
position (``TripletLoader.state_dict``) and random generator states. :func:`run_epochs` drives
the epochs: the recipe's step function per batch (timed: waiting for data vs computing), a progress
bar with the running loss, CSV logs, ``max_steps``, checkpoints every N steps and at each epoch
end, and the monitored score that keeps ``best.pt``."""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from sen12ts_stac.errors import UserError
from sen12ts_stac.fsio import check_writable
from sen12ts_stac.storage import set_anonymous
from sen12ts_stac.stream import load_index
from sen12ts_stac.train import config as cfgmod
from sen12ts_stac.train.data import SplitPlan, label_table, plan_splits
from sen12ts_stac.train.runtime import (
    CsvLog,
    Dist,
    Meter,
    load_checkpoint,
    load_model_state,
    progress,
    resolve_resume,
    rng_state,
    save_checkpoint,
    say,
    seed_everything,
    set_rng_state,
    unwrap,
    warn,
)


@dataclass
class LoopState:
    epoch: int = 0  # epochs completed (the epoch in progress is epoch + 1)
    step: int = 0
    best: float | None = None


class Checkpointer:
    """Saves ``folder/last.pt`` (and copies it to ``best.pt``) with the state of ``models``,
    ``optimizers``, ``scalers`` and the train ``loader`` of every rank; ``extra`` is stored too
    (e.g. fitted baselines, the class list)."""

    def __init__(
        self, folder: str | Path, d: Dist, recipe: str, cfg, models: dict, optimizers: dict, scalers: dict, loader
    ):
        self.folder, self.d, self.recipe, self.cfg = Path(folder), d, recipe, cfg
        self.models, self.optimizers, self.scalers, self.loader = models, optimizers, scalers, loader
        self.extra: dict = {}

    def save(self, state: LoopState, name: str = "last.pt") -> None:
        loaders = self.d.gather(self.loader.state_dict())  # collective: every rank calls save
        rngs = self.d.gather(rng_state())
        if self.d.is_main:
            save_checkpoint(
                self.folder / name,
                {
                    "recipe": self.recipe,
                    "config": dataclasses.asdict(self.cfg),
                    "world_size": self.d.world_size,
                    "epoch": state.epoch,
                    "step": state.step,
                    "best": state.best,
                    "loader": loaders,
                    "rng": rngs,
                    "models": {k: unwrap(m).state_dict() for k, m in self.models.items()},
                    "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                    "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
                    "extra": self.extra,
                },
            )

    def mark_best(self) -> None:
        if self.d.is_main:
            shutil.copyfile(self.folder / "last.pt", self.folder / "best.pt")

    def restore(self, ckpt: dict, where: str) -> LoopState:
        """Load a checkpoint read by :func:`~sen12ts_stac.train.runtime.load_checkpoint`."""
        if ckpt.get("recipe") != self.recipe:
            raise UserError(f"{where}: not a {self.recipe} checkpoint (it is {ckpt.get('recipe')!r})")
        if ckpt["world_size"] != self.d.world_size:
            raise UserError(f"{where}: saved by {ckpt['world_size']} process(es); resume with the same number")
        for k, m in self.models.items():
            load_model_state(unwrap(m), ckpt["models"][k], where)
        for k, o in self.optimizers.items():
            o.load_state_dict(ckpt["optimizers"][k])
        for k, s in self.scalers.items():
            s.load_state_dict(ckpt["scalers"][k])
        self.loader.load_state_dict(ckpt["loader"][self.d.rank])
        set_rng_state(ckpt["rng"][self.d.rank])
        self.extra = dict(ckpt.get("extra") or {})
        return LoopState(ckpt["epoch"], ckpt["step"], ckpt["best"])


def check_shard(loader, d: Dist) -> None:
    """Every process needs at least one training unit (shards are even under DDP)."""
    if loader.num_units == 0:
        raise UserError(
            f"the train split has {len(loader.units)} unit(s) (triplets, or tiles for time series), fewer "
            f"than the {d.world_size} processes; use fewer processes or a catalog with more tiles"
        )


def run_epochs(
    *,
    cfg,
    d: Dist,
    loader,
    state: LoopState,
    step_fn: Callable[[dict], dict],
    ckpt: Checkpointer,
    tlog: CsvLog | None,
    monitor: Callable[[object], dict] | None = None,
    monitor_key: str = "",
    higher_is_better: bool = False,
    elog: CsvLog | None = None,
    sample_key: str = "label",
    info: Callable[[dict], str] = lambda s: "",
    label: str = "",
) -> Meter:
    """Train from ``state`` until ``cfg.epochs`` (or ``cfg.max_steps``); returns the time meter.

    ``step_fn(batch)`` does one optimisation step and returns its losses (floats). ``monitor``
    (rank 0 only, given the progress bar) returns metrics of the validate split after every
    ``cfg.eval_every`` epochs; ``monitor_key`` of them picks ``best.pt``. ``cfg`` needs
    ``epochs``, ``max_steps``, ``checkpoint_every``, ``log_every``, ``eval_every``, ``quiet``."""
    total = Meter()
    smooth: dict[str, float] = {}
    stop = False
    with progress(d.is_main and not cfg.quiet) as bar:
        while state.epoch < cfg.epochs and not stop:
            task = bar.add_task(f"{label}epoch {state.epoch + 1}/{cfg.epochs}", total=len(loader), info="")
            meter = Meter()
            for batch in meter.timed(loader, d.device, sample_key):
                vals = step_fn(batch)
                state.step += 1
                smooth = {k: v if k not in smooth else 0.9 * smooth[k] + 0.1 * v for k, v in vals.items()}
                bar.update(task, advance=1, info=info(smooth))
                if tlog is not None and (state.step % cfg.log_every == 0 or state.step == 1):
                    rep = meter.report()
                    tlog.write(
                        {
                            "step": state.step,
                            "epoch": state.epoch + 1,
                            **vals,
                            "samples_per_s": rep["samples_per_s"],
                            "loader_wait_fraction": rep["loader_wait_fraction"],
                        }
                    )
                if cfg.max_steps is not None and state.step >= cfg.max_steps:
                    stop = True
                    break
                if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
                    ckpt.save(state)
            bar.remove_task(task)
            total.add(meter)
            if stop and meter.batches < len(loader):
                ckpt.save(state)  # stopped mid-epoch: --resume continues this epoch
                break
            state.epoch += 1
            improved, res = False, None
            if monitor is not None and cfg.eval_every and state.epoch % cfg.eval_every == 0:
                if d.is_main:
                    res = monitor(bar)
                    if elog is not None:
                        elog.write({"step": state.step, "epoch": state.epoch, "split": "validate", **res})
                score = d.broadcast(None if res is None else float(res[monitor_key]))
                if score == score:  # not NaN
                    better = state.best is None or (score > state.best if higher_is_better else score < state.best)
                    if better:
                        state.best, improved = score, True
            ckpt.save(state)
            if improved:
                ckpt.mark_best()
            if d.is_main and not cfg.quiet:
                rep = meter.report()
                mon = "" if res is None else f"; validate {monitor_key} {res[monitor_key]:.4f}"
                bar.console.print(
                    f"{label}epoch {state.epoch}/{cfg.epochs}: step {state.step}, "
                    f"{info(smooth) if smooth else 'no batches'}, "
                    f"{rep['samples_per_s']:.1f} samples/s, "
                    f"{100 * rep['loader_wait_fraction']:.0f}% waiting for data{mon}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
    return total


def sum_meters(meters: list[dict]) -> dict:
    """Training throughput of all ranks (each rank's :meth:`Meter.report`): samples/s add up,
    the waiting fraction is the mean over ranks."""
    out = dict(meters[0])
    if len(meters) > 1:
        for k in ("samples_per_s", "compute_samples_per_s", "samples"):
            out[k] = sum(m[k] for m in meters)
        out["loader_wait_fraction"] = sum(m["loader_wait_fraction"] for m in meters) / len(meters)
        out["per_rank"] = meters
    return out


def amp_enabled(cfg_amp: bool, device: torch.device) -> bool:
    """Mixed precision only on CUDA."""
    return bool(cfg_amp and device.type == "cuda")


@dataclass
class Run:
    """What both recipes set up first: the output folder, the checkpoint to resume from, the
    catalog's triplets (read once, on rank 0, and shared), the split plan and the label table."""

    out: Path
    resume_path: Path | None
    checkpoint: dict | None
    records: list
    plan: SplitPlan
    table: object  # ClassTable | None
    started: float


def start(prog: str, cfg, extra: dict, d: Dist) -> Run:
    """Output folder, resume checkpoint, seeds, triplet records, split plan, label table; writes
    the resolved ``config.yaml``. ``cfg`` needs ``out``, ``seed``, ``catalog``, ``aoi``,
    ``eval_split`` and ``quiet``."""
    started = time.perf_counter()
    out = Path(cfg.out)
    if d.is_main:
        check_writable(out)
    resume_path = resolve_resume(extra.get("resume"), out)
    ckpt = load_checkpoint(resume_path) if resume_path else None
    if ckpt is None and list(out.glob("**/checkpoints/last.pt")):
        warn(d, f"{out} holds checkpoints of an earlier run: starting afresh (--resume continues that run)")
    seed_everything(cfg.seed)
    set_anonymous(cfg.anonymous)
    records = d.broadcast(load_index(cfg.catalog, aoi=cfg.aoi) if d.is_main else None)
    if not records:
        raise UserError(f"{cfg.catalog}: no triplets" + (f" for AOI {cfg.aoi}" if cfg.aoi else ""))
    plan = plan_splits(records, cfg.eval_split)
    if plan.note:
        warn(d, plan.note)
    say(
        d,
        cfg.quiet,
        f"{prog}: {len(plan.train)} training triplets on {len({r.tile for r in plan.train})} tiles; "
        f"report on {plan.report_split} ({len(plan.report)} triplets on "
        f"{len({r.tile for r in plan.report})} tiles); {d.world_size} process(es) on {d.device}",
    )
    if d.is_main:
        cfgmod.save(cfg, out / "config.yaml")
    return Run(out, resume_path, ckpt, records, plan, label_table(records), started)
