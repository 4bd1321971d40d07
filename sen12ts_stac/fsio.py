"""Crash-safe file writing: everything goes to a temporary name in the same folder, then is
renamed into place, so a reader (or a resumed run) never sees a half-written file. And the one
way to read a local JSON file or walk a local STAC tree, with one-line errors."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")  # the form _TEMP_NAME matches
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as e:
        # f.write() on a full disk names no file: name the one being written (not its temporary).
        if e.errno in _WRITE_ERRNOS and e.filename in (None, "", str(tmp)):
            raise OSError(e.errno, e.strerror or os.strerror(e.errno), str(final)) from e
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS)
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
# What a killed run can leave directly in a catalog root: the root catalog's temporary (written by
# every run, whatever its AOI) and the writability probe of check_writable.
_ROOT_LEFTOVER = re.compile(r"^(\.catalog\.json\.[0-9a-f]{8}\.tmp|\.write-test-[0-9a-f]{8})$")


def remove_stale_temps(folder: str | os.PathLike[str]) -> int:
    """Delete the temporaries :func:`atomic_path` leaves behind when its process is killed
    mid-write (its cleanup never runs); a resumed run calls this before it starts. Returns how
    many were removed."""
    n = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            if _TEMP_NAME.match(name):
                Path(dirpath, name).unlink(missing_ok=True)
                n += 1
    return n


def remove_stale_root_leftovers(
    root: str | os.PathLike[str], min_age_s: float = 30.0, probes_only: bool = False
) -> int:
    """Delete, directly in ``root`` (not below it), the root ``catalog.json`` temporaries and
    writability probes (only those if ``probes_only``) a killed run left, if older than
    ``min_age_s`` (a run for another AOI into the same root may be writing its own right now).
    Returns how many were removed."""
    n = 0
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        if (
            _ROOT_LEFTOVER.match(entry.name)
            and entry.is_file(follow_symlinks=False)
            and not (probes_only and entry.name.startswith(".catalog.json."))
        ):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime >= min_age_s:
                    os.unlink(entry.path)
                    n += 1
            except FileNotFoundError:
                pass
    return n


_DISK_FULL_TEXT = {os.strerror(errno.ENOSPC): errno.ENOSPC, os.strerror(errno.EDQUOT): errno.EDQUOT}


@contextlib.contextmanager
def disk_full_as_oserror(path: str | os.PathLike) -> Iterator[None]:
    """Around a write by C code (GDAL): a full disk becomes ``OSError(ENOSPC, ..., path)``, without
    the lines libtiff prints straight to file descriptor 2 (``_tiffWriteProc: No space left on
    device.``, several per file) or GDAL's misleading ``TIFFRewriteDirectory`` error. Anything
    else printed there is passed on to stderr unchanged."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to capture
        yield
        return
    try:  # in memory: the disk may be the full one
        cap = os.memfd_create("stderr") if hasattr(os, "memfd_create") else os.dup(tempfile.TemporaryFile().fileno())
    except OSError:
        os.close(saved)
        yield
        return
    os.dup2(cap, 2)
    failure: BaseException | None = None
    try:
        yield
    except BaseException as e:  # noqa: BLE001 - re-raised below, after stderr is restored
        failure = e
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.lseek(cap, 0, os.SEEK_SET)
        text = b"".join(iter(lambda: os.read(cap, 1 << 16), b"")).decode(errors="replace")
        os.close(cap)
    if isinstance(failure, Exception):
        code = next((c for msg, c in _DISK_FULL_TEXT.items() if msg in text or msg in str(failure)), None)
        failure_errno = getattr(failure, "errno", None)
        if code is None and failure_errno in _DISK_FULL_TEXT.values():
            code = failure_errno
        if code is not None:
            raise OSError(code, os.strerror(code), os.fspath(path)) from None
    if text:
        sys.stderr.write(text)
        sys.stderr.flush()
    if failure is not None:
        raise failure


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_json(path: str | os.PathLike, obj: Any, indent: bool = True) -> None:
    """Write JSON (2-space indented unless ``indent=False``) with orjson: ~10x faster than the
    standard library's indenting encoder, which matters at hundreds of thousands of items."""
    opts = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY | (orjson.OPT_INDENT_2 if indent else 0)
    write_bytes(path, orjson.dumps(obj, option=opts))


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove we can write there; a UserError otherwise."""
    from sen12ts_stac.errors import UserError

    p = Path(folder)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{p}: output folder is not writable ({e.strerror or e})") from None
    remove_stale_root_leftovers(p, probes_only=True)  # those of killed runs
    return p


def read_json(path: str | os.PathLike) -> dict:
    """A JSON file (orjson), or a one-line UserError naming the file and the problem."""
    from sen12ts_stac.errors import UserError

    try:
        return orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, orjson.JSONDecodeError) as e:
        raise UserError(f"{path}: not readable JSON ({e})") from None


def catalog_entry(path: str | os.PathLike, also: str = "") -> Path:
    """The JSON file a local catalog argument means: ``path/catalog.json`` for a folder, else
    ``path`` itself; a one-line UserError if there is no such file (``also`` names other
    accepted forms in it, e.g. ``" or an http(s) URL"``)."""
    from sen12ts_stac.errors import UserError

    p = Path(path)
    entry = p / "catalog.json" if p.is_dir() else p
    if not entry.is_file():
        raise UserError(f"{path}: no catalog.json here (give a catalog folder or a catalog/collection JSON file{also})")
    return entry


def walk_local(
    entry: str | os.PathLike, rels: tuple[str, ...] = ("child", "item"), descend: Callable[[dict], bool] | None = None
) -> Iterator[tuple[str, dict]]:
    """``(path, object)`` for ``entry`` and every local STAC JSON file reached from it through
    links with one of ``rels`` (the storage walker, local links only); each file is read once
    and loops are not followed. ``descend(obj)`` False: yield ``obj`` but do not follow its
    links. A file that cannot be read is a one-line UserError naming it."""
    from sen12ts_stac.errors import UserError
    from sen12ts_stac.storage.walk import DocumentError, walk_documents

    try:
        yield from walk_documents(os.path.abspath(entry), rels, descend=descend)
    except DocumentError as e:
        raise UserError(e.line()) from None
