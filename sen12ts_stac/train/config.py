"""Typed run configurations: a dataclass per recipe, filled from its defaults, then a YAML file
(``--config``), then command-line flags (one ``--flag-name`` per field, generated from the
dataclass, so a field exists in exactly one place). Values are checked against the field types
and unknown keys are errors that name the file."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any, Sequence

import yaml

from sen12ts_stac.errors import UserError
from sen12ts_stac.fsio import write_bytes

EVAL_SPLITS = ("auto", "test", "validate", "train")  # where a recipe's final metrics come from


def opt(default: Any, help: str, **kw) -> Any:
    """A config field with its help text (shown by ``--help``)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(
            default_factory=functools.partial(type(default), default), metadata={"help": help, **kw}
        )
    return dataclasses.field(default=default, metadata={"help": help, **kw})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base(tp) -> tuple[Any, bool]:
    """``(type, optional)`` of an annotation such as ``int | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(name: str, value: Any, tp) -> Any:
    """``value`` (from YAML or a command-line string) as the field type ``tp``."""
    base, optional = _base(tp)
    if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none", "~")):
        if optional:
            return None
        raise UserError(f"{name}: a value is required")
    origin = typing.get_origin(base)
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if origin in (list, tuple):
            (item,) = typing.get_args(base)[:1]
            items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
            return [coerce(name, v, item) for v in items]
    except (TypeError, ValueError):
        raise UserError(f"{name}: expected {getattr(base, '__name__', base)}, got {value!r}") from None
    raise TypeError(f"unsupported config type {tp!r} for {name}")  # a programming error


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise UserError(f"{p}: config file not found") from None
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{p}: a config file must be a mapping of option: value")
    return data


def _layer(cls, data: dict, where: str, flags: bool = False) -> dict:
    """Check and coerce one layer of options (a YAML mapping or the command-line flags)."""
    hints = _hints(cls)
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        label = _flag(name) if flags else f"{where}: {key}"
        if name not in hints:
            raise UserError(f"{where}: unknown option {key!r}; known options: {', '.join(sorted(hints))}")
        out[name] = coerce(label, value, hints[name])
    return out


def build(cls, *layers: dict):
    """A checked ``cls`` from its defaults updated by each (already coerced) layer in turn."""
    values: dict = {}
    for layer in layers:
        values.update(layer)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UserError(f"missing required option(s): {', '.join(_flag(m) for m in missing)}")
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        check()
    return obj


def from_mapping(cls, data: dict, where: str = "config"):
    """A ``cls`` instance from a mapping of field names (``_`` or ``-``) to values."""
    return build(cls, _layer(cls, data, where))


class _ArgError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump, exit 2 (via UserError)
        raise _ArgError(message)


def build_parser(cls, prog: str, description: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description=description, argument_default=argparse.SUPPRESS)
    p.add_argument("--config", help="YAML file of options (command-line flags override it)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        help="continue from OUT/checkpoints/last.pt (or the checkpoint given): model, optimisers, "
        "epoch and loader position",
    )
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help", "")
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "required"
        base, _ = _base(hints[f.name])
        meta = "N" if base in (int, float) else ("A,B" if typing.get_origin(base) in (list, tuple) else "X")
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        extra: dict[str, Any] = (
            {"nargs": "?", "const": "true", "metavar": "BOOL"} if base is bool else {"metavar": meta}
        )
        p.add_argument(_flag(f.name), dest=f.name, help=f"{help_text} (default: {shown})".replace("%", "%%"), **extra)
    return p


def parse(cls, argv: Sequence[str] | None, prog: str, description: str) -> tuple[Any, dict]:
    """``(config, extras)``: defaults <- ``--config`` YAML <- flags. ``extras`` holds
    ``config_path`` and ``resume`` (None, "auto" or a checkpoint path)."""
    parser = build_parser(cls, prog, description)
    try:
        ns = vars(parser.parse_args(argv))
    except _ArgError as e:
        raise UserError(str(e)) from None
    config_path = ns.pop("config", None)
    resume = ns.pop("resume", None)
    layers = [_layer(cls, read_yaml(config_path), str(config_path))] if config_path else []
    layers.append(_layer(cls, ns, "command line", flags=True))
    return build(cls, *layers), {"config_path": config_path, "resume": resume}


def to_yaml(cfg) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)


def save(cfg, path: str | Path) -> None:
    write_bytes(path, to_yaml(cfg).encode())


@dataclasses.dataclass
class RunConfig:
    """The options every recipe has (a recipe's ``Config`` subclasses it, adds its own and may
    redeclare a field to change its default)."""

    catalog: str = opt("", "catalog: folder, catalog.json, http(s)/s3/az/gs URL, STAC API, mlhub+ URL or .parquet")
    anonymous: bool = opt(False, "read a public bucket without credentials (unsigned s3/az/gs requests)")
    aoi: str | None = opt(None, "AOI(s) to use, comma-separated (default: every AOI in the catalog)")
    out: str = opt("runs/run", "output folder")
    seed: int = opt(7, "seed of the weights, the stream order and the augmentations")
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda, cuda:1 ...")
    epochs: int = opt(10, "epochs over the training tiles")
    max_steps: int | None = opt(None, "stop (with a checkpoint) after this many steps in total")
    batch_size: int = opt(4, "samples per batch (per process under torchrun)")
    crop: int | None = opt(None, "random training crop in pixels (null: whole 256 px tiles)")
    hflip: bool = opt(True, "random horizontal flips")
    vflip: bool = opt(False, "random vertical flips")
    eval_crop: int | None = opt(None, "evaluate on a seeded crop of each held-out sample (null: whole tiles)")
    num_workers: int = opt(4, "loader threads")
    prefetch: int = opt(2, "batches prepared ahead")
    amp: bool = opt(True, "mixed precision (CUDA only; ignored on CPU)")
    eval_split: str = opt("auto", "where final metrics come from: auto (test, else validate), test, validate, train")
    eval_every: int = opt(1, "score the validate split every N epochs (0: never)")
    checkpoint_every: int = opt(0, "also checkpoint every N steps (0: at the end of each epoch only)")
    log_every: int = opt(10, "log training losses every N steps")
    panels: int = opt(8, "prediction panels to draw (distinct held-out tiles)")
    loader_bench_batches: int = opt(10, "batches read by the loader alone to measure its rate (0: skip)")
    quiet: bool = opt(False, "no progress bar or messages")

    def size_multiple(self) -> int:
        """Crops must be multiples of this (the model's total downsampling)."""
        return 1

    def check(self) -> None:
        if not self.catalog:
            raise UserError("give the catalog: --catalog PATH_OR_URL")
        if self.epochs < 1 or self.batch_size < 1 or self.num_workers < 0 or self.prefetch < 1:
            raise UserError("--epochs, --batch-size and --prefetch must be at least 1, --num-workers at least 0")
        if self.eval_split not in EVAL_SPLITS:
            raise UserError(f"--eval-split must be one of {', '.join(EVAL_SPLITS)}, got {self.eval_split!r}")
        size = self.size_multiple()
        for name in ("crop", "eval_crop"):
            v = getattr(self, name)
            if v is not None and (v < size or v % size or v > 256):
                raise UserError(
                    f"--{name.replace('_', '-')} {v} must be a multiple of {size} up to 256 (the model's downsampling)"
                )
