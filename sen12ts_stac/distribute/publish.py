"""``publish SRC DEST_URL``: upload a local catalog folder to an object-store prefix (``s3://``,
``az://``, ``gs://``), byte for byte, so its relative links work at the new address unchanged.

What goes up: every regular file below SRC (COGs, thumbnails, STAC JSON, the items.parquet /
items.ndjson exports, anything else a person put there), except hidden names (``.sen12ts/`` run
state, the temporaries of an interrupted write, ``.DS_Store``) and symlinks that lead out of SRC.

Order, so that a reader never meets a link to a file that is not there yet: assets first (COGs,
thumbnails), then items and the exports, then collections and catalogs from the deepest folder
up, the root ``catalog.json`` last; each stage finishes before the next starts. ``--delete``
removes what SRC no longer has only after that.

Idempotent and resumable, by size and checksum: a manifest, ``DEST/.sen12ts-publish.json``,
records the size and SHA2-256 multihash (``1220...``, as ``file:checksum``) of every object
publish wrote. A file is skipped when the object is there with its size and the manifest holds
the file's checksum; otherwise it is uploaded. The manifest is written after the uploads (also
after a failure or Ctrl-C, with what did get up), and only when it changed: a re-run of an
unchanged folder sends no PUT at all. An object rewritten by another tool with the same size is
not noticed; a manifest that is missing or unreadable only means everything is uploaded again.

Before anything is uploaded, the prefix is listed: wrong credentials or a missing bucket stop the
command there, in one line, with nothing written. Credentials come from the environment (see
:mod:`sen12ts_stac.storage.objects`); they never appear in the output.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import mimetypes
import os
import posixpath
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from sen12ts_stac.errors import Interrupted, UserError
from sen12ts_stac.storage import objects
from sen12ts_stac.storage.checksums import sha256_multihash

MANIFEST = ".sen12ts-publish.json"
MAX_MANIFEST_BYTES = 1 << 30
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
CONTENT_TYPES = {
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".tif": COG_TYPE,
    ".tiff": COG_TYPE,
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".parquet": "application/vnd.apache.parquet",
    ".geoparquet": "application/vnd.apache.parquet",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".html": "text/html; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
_STAC_PARENTS = ("catalog.json", "collection.json")
_ITEM_LIKE = (".json", ".geojson", ".parquet", ".geoparquet", ".ndjson", ".jsonl")


def content_type(name: str) -> str:
    """The Content-Type an object named ``name`` is published with."""
    ext = posixpath.splitext(name)[1].lower()
    return CONTENT_TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"


@dataclass(frozen=True)
class LocalFile:
    rel: str  # POSIX path below SRC: the object's key below the prefix
    path: Path
    size: int
    stage: int  # upload order: 0 assets, 1 items and exports, 2... catalogs deepest first, the root last


@dataclass
class PublishReport:
    dest: str
    planned: list[LocalFile] = field(default_factory=list)  # to upload, in upload order
    uploaded: list[str] = field(default_factory=list)  # in the order the uploads finished
    unchanged: int = 0
    to_delete: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped_links: int = 0
    bytes: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    def lines(self) -> list[str]:
        if self.dry_run:
            out = [f"would upload {f.rel} ({f.size:,} bytes, {content_type(f.rel)})" for f in self.planned]
            out += [f"would delete {rel}" for rel in self.to_delete]
            size = sum(f.size for f in self.planned)
            out.append(
                f"dry run: {len(self.planned)} files ({size / 1e6:.1f} MB) would be uploaded to {self.dest}, "
                f"{self.unchanged} already there, {len(self.to_delete)} would be deleted{self._skipped()}"
            )
            return out
        rate = self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0
        return [
            f"published {len(self.uploaded)} files ({self.bytes / 1e6:.1f} MB) to {self.dest} in {self.seconds:.1f} s "
            f"({rate:.1f} MB/s), {self.unchanged} already there, {len(self.deleted)} deleted{self._skipped()}"
        ]

    def _skipped(self) -> str:
        return f", {self.skipped_links} symlinks out of SRC skipped" if self.skipped_links else ""


# ---------------------------------------------------------------------------------------------
# What is there: the local folder, the remote prefix and its manifest
# ---------------------------------------------------------------------------------------------


def source_folder(src: str | os.PathLike) -> Path:
    """The catalog folder SRC names (a folder with catalog.json, or that catalog.json itself)."""
    text = os.fspath(src)
    if "://" in text:
        raise UserError(f"{text}: SRC must be a local catalog folder, not a URL")
    p = Path(text)
    if p.is_file() and p.name == "catalog.json":
        p = p.parent
    if not p.is_dir():
        raise UserError(f"{text}: no such folder (SRC must be a local catalog folder)")
    if not (p / "catalog.json").is_file():
        raise UserError(f"{text}: not a catalog folder (no catalog.json in it)")
    return p.resolve()


def dest_prefix(dest_url: str) -> objects.ObjectURL:
    """DEST_URL as an object-store prefix (its key ends with / unless it is the bucket itself)."""
    if not objects.is_object_url(dest_url):
        raise UserError(
            f"{dest_url}: DEST_URL must be an object-store URL: s3://bucket/prefix, az://container/prefix "
            "or gs://bucket/prefix"
        )
    try:
        u = objects.ObjectURL.parse(dest_url)
    except objects.ObjectStoreError as e:
        raise UserError(str(e)) from None
    key = u.key.strip("/")
    if key.endswith(".json"):
        raise UserError(f"{dest_url}: DEST_URL is the prefix (folder) to publish into, not a file")
    return u.with_key(key + "/" if key else "")


def local_files(root: Path) -> tuple[list[LocalFile], int]:
    """The files to publish below ``root`` with their stage, and how many symlinks were left
    out because they lead out of ``root`` (or nowhere)."""
    found: list[tuple[str, Path, int]] = []
    skipped = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath, name)
            if path.is_symlink():
                target = path.resolve()
                if not (target.is_file() and target.is_relative_to(root)):
                    skipped += 1
                    continue
            elif not path.is_file():
                continue
            found.append((path.relative_to(root).as_posix(), path, path.stat().st_size))
    deepest = max((rel.count("/") for rel, _, _ in found), default=0)

    def stage(rel: str) -> int:
        if rel == "catalog.json":
            return deepest + 3
        name = posixpath.basename(rel)
        if name in _STAC_PARENTS:
            return 2 + deepest - rel.count("/")
        return 1 if name.lower().endswith(_ITEM_LIKE) else 0

    return [LocalFile(rel, path, size, stage(rel)) for rel, path, size in found], skipped


def _remote(prefix: objects.ObjectURL) -> tuple[dict[str, int], dict[str, list]]:
    """(key below the prefix -> size, the manifest's files); the first request publish makes,
    so wrong credentials or a missing bucket end the command before anything is written."""
    try:
        listing = dict(objects.list_prefix(str(prefix)))
    except objects.ObjectStoreError as e:  # (without the hint on anonymous reads: that is for readers)
        raise UserError(f"{e.plain} (nothing was uploaded)") from None
    manifest: dict[str, list] = {}
    if MANIFEST in listing:
        try:
            data = orjson.loads(objects.get(str(prefix.with_key(prefix.key + MANIFEST)), MAX_MANIFEST_BYTES))
            files = data.get("files") if isinstance(data, dict) else None
            if isinstance(files, dict):
                manifest = {k: v for k, v in files.items() if isinstance(v, list) and len(v) == 2}
        except (objects.ObjectStoreError, orjson.JSONDecodeError):
            manifest = {}  # unreadable: everything is uploaded again and the manifest rewritten
    return listing, manifest


# ---------------------------------------------------------------------------------------------
# Publishing
# ---------------------------------------------------------------------------------------------


def publish(
    src: str | os.PathLike,
    dest_url: str,
    *,
    workers: int = 8,
    dry_run: bool = False,
    delete: bool = False,
    progress: bool = True,
) -> PublishReport:
    """Upload the catalog folder ``src`` to the object-store prefix ``dest_url`` (see the module
    docstring). Raises UserError (one line) for a bad SRC/DEST, a refused listing, or a failed
    upload (then with how far it got; running it again resumes)."""
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    root = source_folder(src)
    prefix = dest_prefix(dest_url)
    files, skipped = local_files(root)
    t0 = time.perf_counter()
    listing, manifest = _remote(prefix)
    report = PublishReport(str(prefix), skipped_links=skipped, dry_run=dry_run)
    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish") as pool:
        # A file may be unchanged only if the object has its size and the manifest its size too:
        # only those are hashed now; the others are hashed while they upload.
        maybe = [f for f in files if listing.get(f.rel) == f.size and (manifest.get(f.rel) or [None])[0] == f.size]
        with contextlib.closing(_bounded(pool, lambda f: sha256_multihash(f.path), maybe, 4 * workers)) as hashed:
            sums = {f.rel: fut.result() for f, fut in hashed}
        report.planned = sorted(
            (f for f in files if f.rel not in sums or sums[f.rel] != manifest[f.rel][1]), key=lambda f: (f.stage, f.rel)
        )
        report.unchanged = len(files) - len(report.planned)
        local = {f.rel for f in files}
        report.to_delete = sorted(k for k in listing if k not in local and k != MANIFEST) if delete else []
        if dry_run:
            return report
        written: dict[str, list] = {}
        try:
            _upload(pool, workers, prefix, report, written, progress)
            for rel in report.to_delete:
                objects.delete(str(prefix.with_key(prefix.key + rel)))
                report.deleted.append(rel)
        except objects.ObjectStoreError as e:
            _save_manifest(prefix, listing, manifest, written, report.deleted, quiet=True)
            root_note = "" if "catalog.json" in report.uploaded else ", the root catalog not yet"
            raise UserError(
                f"{e}; {len(report.uploaded)} of {len(report.planned)} files uploaded{root_note}; "
                "run the same command again to resume"
            ) from None
        except KeyboardInterrupt:
            _save_manifest(prefix, listing, manifest, written, report.deleted, quiet=True)
            raise Interrupted() from None
        except BaseException:
            _save_manifest(prefix, listing, manifest, written, report.deleted, quiet=True)
            raise
    try:
        _save_manifest(prefix, listing, manifest, written, report.deleted)
    except objects.ObjectStoreError as e:
        raise UserError(
            f"{e}; every file was published but the manifest not written, so the next run uploads them again"
        ) from None
    report.seconds = time.perf_counter() - t0
    return report


def _upload(
    pool: cf.Executor,
    workers: int,
    prefix: objects.ObjectURL,
    report: PublishReport,
    written: dict[str, list],
    progress: bool,
) -> None:
    """Upload ``report.planned`` stage by stage. The first failure stops new uploads; it is
    raised once those under way have finished and been recorded in ``written``."""
    columns = [
        TextColumn("[bold]publish"),
        BarColumn(),
        TextColumn("{task.fields[files]}/%d files" % len(report.planned)),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("publish", total=sum(f.size for f in report.planned) or None, files=0)
        for stage in sorted({f.stage for f in report.planned}):
            batch = [f for f in report.planned if f.stage == stage]
            leftover: list[tuple[LocalFile, cf.Future]] = []
            stop, error = threading.Event(), None
            running = _bounded(pool, lambda f: _put_file(prefix, f), batch, 4 * workers, stop, leftover)
            try:
                for f, fut in running:
                    try:
                        size, checksum = fut.result()
                    except Exception as e:  # noqa: BLE001 - raised below, after the uploads under way
                        error = error or e
                        stop.set()
                        continue
                    written[f.rel] = [size, checksum]
                    report.uploaded.append(f.rel)
                    report.bytes += size
                    bar.update(task, advance=size, files=len(report.uploaded))
            except BaseException:  # Ctrl-C: the uploads under way finish, and are recorded
                running.close()
                for f, fut in leftover:
                    if not fut.cancelled() and fut.exception() is None:
                        written[f.rel] = list(fut.result())
                        report.uploaded.append(f.rel)
                raise
            if error is not None:
                raise error


_END = object()


def _bounded(
    pool: cf.Executor, fn, items, limit: int, stop: threading.Event | None = None, leftover: list | None = None
):
    """``(item, finished future)`` of ``fn(item)`` for each item, run on ``pool`` with at most
    ``limit`` submitted at once (memory stays flat for a million files). Once ``stop`` is set
    nothing new starts; what is under way is still yielded. Ended early (closed, or an exception
    such as Ctrl-C), it cancels what has not started, waits for the rest and puts those
    ``(item, future)`` pairs in ``leftover``."""
    pending: dict[cf.Future, object] = {}
    it = iter(items)
    try:
        while True:
            while len(pending) < limit and not (stop is not None and stop.is_set()):
                item = next(it, _END)
                if item is _END:
                    break
                pending[pool.submit(fn, item)] = item
            if not pending:
                return
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                yield pending.pop(fut), fut
    finally:
        for fut in pending:
            fut.cancel()
        cf.wait(pending)
        if leftover is not None:
            leftover.extend((item, fut) for fut, item in pending.items())


def _put_file(prefix: objects.ObjectURL, f: LocalFile) -> tuple[int, str]:
    checksum = sha256_multihash(f.path)
    size = f.path.stat().st_size
    objects.put(str(prefix.with_key(prefix.key + f.rel)), f.path, content_type=content_type(f.rel))
    return size, checksum


def _save_manifest(
    prefix: objects.ObjectURL,
    listing: dict[str, int],
    old: dict[str, list],
    written: dict[str, list],
    deleted: list[str],
    quiet: bool = False,
) -> None:
    """Write the manifest when it changed: the old entries still backed by an object of their
    size, minus what was deleted, plus what was written now."""
    files = {k: v for k, v in old.items() if listing.get(k) == v[0]}
    for rel in deleted:
        files.pop(rel, None)
    files.update(written)
    if files == old:
        return
    body = orjson.dumps({"sen12ts:publish": 1, "files": dict(sorted(files.items()))})
    try:
        objects.put(str(prefix.with_key(prefix.key + MANIFEST)), body, content_type="application/json")
    except objects.ObjectStoreError:
        if not quiet:
            raise
