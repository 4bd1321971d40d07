"""Running a recipe: seeds, the device and ``torch.distributed`` (launched by ``torchrun``: gloo
on CPU, NCCL on CUDA), checkpoints written atomically and read back for ``--resume``, CSV logs,
the progress bar, the time split between waiting for the loader and computing, and the
``main`` wrapper that turns user errors into one line and a non-zero exit."""

from __future__ import annotations

import csv
import datetime as dt
import inspect
import io
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as tdist

from sen12ts_stac.errors import UserError
from sen12ts_stac.fsio import atomic_path, write_bytes

# --------------------------------------------------------------------------------------------
# Seeds and devices
# --------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Python, numpy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def rng_state() -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Dist:
    """This process's place in the run: rank, world size and device. One process: rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str | None:
        return tdist.get_backend() if self.initialized else None

    def barrier(self) -> None:
        if self.initialized:
            tdist.barrier()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (float64 / int64 tensors keep exact sums; gloo handles both)."""
        if self.initialized:
            dev = t.device
            buf = t if (self.backend != "nccl" or dev.type == "cuda") else t.to(self.device)
            tdist.all_reduce(buf, op=tdist.ReduceOp.SUM)
            if buf is not t:
                t.copy_(buf.to(dev))
        return t

    def all_reduce_numpy(self, a: np.ndarray) -> np.ndarray:
        return self.all_reduce_sum(torch.from_numpy(np.ascontiguousarray(a))).numpy()

    def gather(self, obj: Any) -> list:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.initialized:
            return [obj]
        out: list = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.initialized:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]


def setup(device: str = "auto") -> Dist:
    """The device (``auto``: CUDA when present, else CPU) and, under ``torchrun``
    (``WORLD_SIZE`` > 1), the process group: NCCL with one GPU per process, gloo on CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but CUDA is not available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=dt.timedelta(minutes=30))
    return Dist(rank=rank, world_size=world, local_rank=local, device=dev, initialized=True)


def teardown(d: Dist) -> None:
    if d.initialized and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()


def wrap_ddp(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """``DistributedDataParallel`` when running distributed, the model itself otherwise.

    Buffers (BatchNorm statistics) are synchronised once at the start, not at every forward: a
    per-forward in-place overwrite breaks a GAN step that runs the discriminator twice before
    backward. Each rank keeps its own running statistics; checkpoints hold rank 0's."""
    if not d.initialized:
        return model
    ids = [d.device.index] if d.device.type == "cuda" else None
    ddp = torch.nn.parallel.DistributedDataParallel
    # torch >= 2.13 names it forward_sync_buffers (broadcast_buffers is deprecated there)
    no_sync: dict[str, Any] = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(ddp).parameters
        else {"broadcast_buffers": False}
    )
    return ddp(model, device_ids=ids, **no_sync)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------

CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save`` to a temporary name, then rename: a crash never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save({"version": CHECKPOINT_VERSION, **state}, tmp)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no checkpoint to resume from")
    try:
        state = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"{p}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise UserError(f"{p}: not a checkpoint written by this recipe")
    return state


def resolve_resume(resume: str | None, out: Path) -> Path | None:
    if resume is None:
        return None
    return out / "checkpoints" / "last.pt" if resume == "auto" else Path(resume)


def load_model_state(module: torch.nn.Module, state: dict, where: str) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(
            f"{where}: the checkpoint does not fit this model (were model options changed?): {first}"
        ) from None


# --------------------------------------------------------------------------------------------
# Logs and outputs
# --------------------------------------------------------------------------------------------


class CsvLog:
    """Append rows of fixed columns to a CSV file, flushed per row. A fresh run starts the file
    anew; on resume, ``keep_until`` (the checkpoint's step) keeps the rows up to that step and
    drops those a crashed run logged after its last checkpoint."""

    def __init__(self, path: str | Path, fields: Sequence[str], keep_until: int | None = None):
        self.path, self.fields = Path(path), list(fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows: list[dict] = []
        if keep_until is not None and self.path.exists():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if _as_int(r.get("step")) <= keep_until]
        write_csv(self.path, rows, self.fields)  # a fresh run starts the file anew
        self._f = open(self.path, "a", newline="")
        self._w = csv.DictWriter(self._f, self.fields, extrasaction="ignore")

    def write(self, row: dict) -> None:
        self._w.writerow({k: _fmt(v) for k, v in row.items()})
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _as_int(v) -> int:
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return 0


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else ""
    return v


def write_csv(path: str | Path, rows: list[dict], fields: Sequence[str] | None = None) -> None:
    """A whole CSV file, atomically; columns from ``fields`` or the keys of the rows."""
    if fields is None:
        fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, list(fields), extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(v) for k, v in r.items()})
    write_bytes(path, buf.getvalue().encode())


def jsonable(obj):
    """NaN/inf -> None, numpy scalars -> Python, recursively (strict JSON for metrics.json)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    return obj


def progress(enabled: bool):
    """A rich progress bar on stderr (description, bar, count, elapsed, remaining, free text for
    the loss); drawn only on a terminal. ``bar.console.print`` writes lines above it."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        console=console,
        disable=not (enabled and console.is_terminal),
        transient=False,
        refresh_per_second=4,
    )


def say(d: Dist, quiet: bool, msg: str) -> None:
    """A line on stderr from rank 0 (unless quiet)."""
    if d.is_main and not quiet:
        print(msg, file=sys.stderr, flush=True)


def warn(d: Dist, msg: str) -> None:
    if d.is_main:
        print(f"warning: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Throughput: time waiting for the loader vs computing
# --------------------------------------------------------------------------------------------


@dataclass
class Meter:
    """Seconds spent waiting for batches and computing on them, and samples seen."""

    wait_s: float = 0.0
    compute_s: float = 0.0
    samples: int = 0
    batches: int = 0

    def timed(self, batches: Iterable[dict], device: torch.device, key: str) -> Iterator[dict]:
        """Yield the batches; the time inside ``next`` is waiting, the time until the consumer
        asks for the next batch is computing (CUDA synchronised first)."""
        it = iter(batches)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            t1 = time.perf_counter()
            self.wait_s += t1 - t0
            yield batch
            sync(device)
            self.compute_s += time.perf_counter() - t1
            self.samples += int(batch[key].shape[0])
            self.batches += 1

    def add(self, other: "Meter") -> None:
        self.wait_s += other.wait_s
        self.compute_s += other.compute_s
        self.samples += other.samples
        self.batches += other.batches

    def report(self) -> dict:
        total = self.wait_s + self.compute_s
        rate = lambda s: self.samples / s if s > 0 else float("nan")  # noqa: E731
        return {
            "samples": self.samples,
            "batches": self.batches,
            "wait_s": self.wait_s,
            "compute_s": self.compute_s,
            "samples_per_s": rate(total),
            "compute_samples_per_s": rate(self.compute_s),
            "loader_wait_fraction": self.wait_s / total if total > 0 else float("nan"),
        }


def loader_rate(loader: Iterable[dict], key: str, max_batches: int) -> dict:
    """Samples per second of the loader alone (no model): its first ``max_batches`` batches."""
    n = b = 0
    t0 = time.perf_counter()
    for batch in loader:
        n += int(batch[key].shape[0])
        b += 1
        if b >= max_batches:
            break
    s = time.perf_counter() - t0
    return {"samples": n, "batches": b, "seconds": s, "samples_per_s": n / s if s > 0 else float("nan")}


def loader_bench(make_loader: Callable[[], Iterable[dict]], key: str, max_batches: int, d: Dist) -> dict:
    """:func:`loader_rate` of a fresh loader on every rank at once; rates add up over ranks."""
    rates = d.gather(loader_rate(make_loader(), key, max_batches))
    return {"samples_per_s": sum(r["samples_per_s"] for r in rates), "batches": max_batches, "per_rank": rates}


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def run_main(prog: str, fn: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a recipe's ``fn(argv)``: user errors print one line ``prog: error: ...`` and exit 2,
    Ctrl-C exits 130 with a hint to ``--resume``."""
    try:
        return int(fn(argv) or 0)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run the same command with --resume to continue", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"{prog}: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
