"""Run state for resume: ``<aoi>/.sen12ts/run.json`` (the settings that made the folder) and
``<aoi>/.sen12ts/tiles/<tile>.json`` (one record per finished tile), read back with one-line
errors naming the file, and the rule that keeps secrets out of them.

Secrets: a ``--source-option`` whose key looks like a credential (token, key, secret, password,
sas, signature, credential, auth, ...) or whose value is a URL carrying one (``user:pass@`` or
such a query parameter) is recorded as :data:`SECRET` only. Its value does not decide the
content, so a resumed run compares the keys alone; a run resumed without ``--source-option``
must be given the secret again on the command line (the error says which).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import orjson

from sen12ts_stac.collect.catalog import BandStats, ItemRecord
from sen12ts_stac.collect.layout import Layout
from sen12ts_stac.errors import UserError
from sen12ts_stac.spec import bands

SECRET = "<secret: not stored; give it again>"
_SECRET_KEY = re.compile(r"token|key|secret|passw|pwd|sas|sig|credential|auth|cookie|session|bearer|private", re.I)
_IDENTITY = {"aoi": str, "source": str, "seed": int, "seasons": list, "rules": dict, "source_options": dict}
_TILE = {"tile": str, "triplets": int, "files": int, "bytes": int, "rejected": dict, "records": list, "stats": dict}


def is_secret(key: str, value) -> bool:
    """Whether a source option holds a credential (by its key, or a URL value that carries one)."""
    if _SECRET_KEY.search(key):
        return True
    if not isinstance(value, str) or "://" not in value:
        return False
    try:
        url = urlsplit(value)
        return "@" in url.netloc or any(_SECRET_KEY.search(k) for k, _ in parse_qsl(url.query, keep_blank_values=True))
    except ValueError:
        return False


def redact(options: dict) -> dict:
    """``options`` as recorded in run state: secret values replaced by :data:`SECRET`."""
    return {k: SECRET if is_secret(k, v) else v for k, v in options.items()}


_RUN_HINT = "use --overwrite to start this AOI again, or delete the file to resume with the settings given now"


def _tile_hint(path: Path) -> str:
    return f"delete it to collect tile {path.stem} again, or use --overwrite"


def scrub(text: str, options: dict) -> str:
    """``text`` with the values of secret ``options`` (and a URL's password and secret query
    values) replaced by ``***``: for error messages and failure records."""
    for k, v in options.items():
        if not (isinstance(v, str) and is_secret(k, v)):
            continue
        parts = [v]
        if "://" in v:
            with contextlib.suppress(ValueError):
                url = urlsplit(v)
                parts += [url.password or ""] + [val for key, val in parse_qsl(url.query) if _SECRET_KEY.search(key)]
        for part in sorted(parts, key=len, reverse=True):
            if len(part) >= 3:
                text = text.replace(part, "***")
    return text


def scrub_error(e: BaseException, options: dict) -> None:
    """Scrub secrets out of an exception's message, in place (its class stays)."""
    if e.args and isinstance(e.args[0], str):
        clean = scrub(e.args[0], options)
        if clean != e.args[0]:
            e.args = (clean, *e.args[1:])


def _read(path: Path, what: str, hint: str) -> object:
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise UserError(f"{path}: damaged {what} (not JSON: {e}); {hint}") from None


def read_identity(layout: Layout) -> dict | None:
    """The settings recorded by an earlier run in this AOI folder (None if there is none)."""
    path = layout.state_dir / "run.json"
    if not path.exists():
        return None
    doc = _read(path, "run state", _RUN_HINT)
    ident = doc.get("identity") if isinstance(doc, dict) else None
    bad = (
        [k for k, t in _IDENTITY.items() if not isinstance(ident.get(k), t)]
        if isinstance(ident, dict)
        else ["identity"]
    )
    if bad:
        raise UserError(f"{path}: damaged run state (missing or wrong {', '.join(bad)}); {_RUN_HINT}")
    assert isinstance(ident, dict)  # else bad names "identity"
    return ident | {"source_options": redact(ident["source_options"])}  # a file written before secrets were redacted


def previous_source(layout: Layout, options: dict, damaged_ok: bool = False) -> tuple[str, dict]:
    """The source and options to resume with when ``--source`` is not given: those recorded in
    this folder (``options`` given now override them), else the live source and ``options``
    (also for a damaged run state when ``damaged_ok``, as with --overwrite)."""
    try:
        ident = read_identity(layout)
    except UserError:
        if not damaged_ok:
            raise
        ident = None
    if ident is None:
        return "stac-api", options
    recorded = ident["source_options"]
    missing = sorted(k for k, v in recorded.items() if v == SECRET and k not in options)
    if missing:
        raise UserError(
            f"{layout.state_dir / 'run.json'}: this folder was made with the secret source option(s) "
            f"{', '.join(missing)}, which are not stored; give them again: "
            + " ".join(f"--source-option {k}=..." for k in missing)
        )
    return ident["source"], {k: v for k, v in recorded.items() if v != SECRET} | options


def check_identity(layout: Layout, identity: dict) -> None:
    """A UserError if this folder was made with settings other than ``identity`` (redacted)."""
    before = read_identity(layout)
    if before is None or before == identity:
        return
    diff = sorted(k for k in set(before) | set(identity) if before.get(k) != identity.get(k))
    hint = ""
    lost = sorted(
        k for k, v in before["source_options"].items() if v == SECRET and k not in identity.get("source_options", {})
    )
    if lost:
        hint = f" (the secret source option(s) {', '.join(lost)} are not stored: give them again with --source-option)"
    raise UserError(
        f"{layout.aoi_dir}: made earlier with different {', '.join(diff)}{hint}; "
        "use another --out, the same settings, or --overwrite"
    )


@dataclass
class TileState:
    """A finished tile, as its state record says."""

    tile: str
    triplets: int
    files: int
    bytes: int
    rejected: dict
    records: list[ItemRecord]
    stats: dict[str, BandStats] = field(default_factory=dict)


def tile_state(path: Path, doc: object = None) -> TileState:
    """A tile state record (read from ``path`` unless ``doc`` is given), checked; a one-line
    UserError naming the file when it is damaged."""
    if doc is None:
        doc = _read(path, "tile state", _tile_hint(path))
    try:
        if not isinstance(doc, dict):
            raise ValueError(f"expected an object, found {type(doc).__name__}")
        bad = [k for k, t in _TILE.items() if not isinstance(doc.get(k), t)]
        if bad:
            raise ValueError(f"missing or wrong {', '.join(bad)}")
        records = [ItemRecord.from_json(r) for r in doc["records"]]
        stats = {k: BandStats.from_json(doc["stats"][k]) for k in ("s1", "s2")}
        for k, product in (("s1", bands.S1), ("s2", bands.S2)):
            if any(len(getattr(stats[k], f)) != len(product.bands) for f in ("n", "mean", "m2", "min", "max")):
                raise ValueError(f"stats.{k} does not have {len(product.bands)} bands")
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise UserError(
            f"{path}: damaged tile state ({str(e).strip(chr(39)) or type(e).__name__}); {_tile_hint(path)}"
        ) from None
    return TileState(doc["tile"], doc["triplets"], doc["files"], doc["bytes"], doc["rejected"], records, stats)


def finished_tiles(layout: Layout) -> dict[str, TileState]:
    """Every tile this folder has finished, by tile id, each record checked."""
    folder = layout.state_dir / "tiles"
    return {p.stem: tile_state(p) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}
